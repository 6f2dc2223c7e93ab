"""The run-id shape and keyword parsing: pure parts of the gateway."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from api_gateway import request_body
from api_gateway.admin import _read_keywords
from api_gateway.errors import ApiError
from api_gateway.keywords import NotKeywords, parse_csv, parse_json
from api_gateway.params import RUN_ID_PATTERN
from api_gateway.run_commands import new_run_id

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday


def test_run_ids_match_the_validated_pattern():
    run_id = new_run_id(NOW)
    assert run_id.startswith("run_20260304_100000_manual_")
    assert re.match(RUN_ID_PATTERN, run_id)
    assert not re.match(RUN_ID_PATTERN, "run_20260304_100000_manual_ab/../x")
    arabic_indic = "٢٠٢٦٠٣٠٤"  # digits, to `\d`, but not to a run id
    assert not re.match(RUN_ID_PATTERN, f"run_{arabic_indic}_100000_manual_ab")


def test_keyword_rows_from_json_and_csv():
    rows, errors = parse_json(
        [{"keyword": "a"}, {"keyword": "b", "volume": 3}, {"keyword": "  "}, 5]
    )
    assert [r.keyword for r in rows] == ["a", "b"]
    assert [e.split(":")[0] for e in errors] == ["[2]", "[3]"]
    rows, errors = parse_csv("keyword,volume\nx,1\ny,lots\n")
    assert [r.keyword for r in rows] == ["x"] and errors[0].startswith("line 3")
    with pytest.raises(NotKeywords, match="JSON body must"):
        parse_json({"nope": 1})


def test_keyword_import_refuses_what_it_cannot_take_as_given():
    rows, errors = parse_json([{"keyword": "x", "site_id": 2}, "bare string"])
    assert rows == []
    assert errors[0].startswith("[0]: site_id: Extra inputs are not permitted")
    assert errors[1].startswith("[1]: a row must be an object")
    with pytest.raises(csv.Error):  # the route answers 400 naming the problem
        parse_csv('keyword\n"open quote\nnext\nand the rest\n')


def test_keyword_csv_header_in_any_case_and_rows_too_long():
    rows, errors = parse_csv("Keyword,VOLUME\nx,1\ny,2,extra\n")
    assert [(r.keyword, r.volume) for r in rows] == [("x", 1)]
    assert errors == ["line 3: more values than the header has columns"]


def test_json_keyword_values_are_taken_as_typed_and_csv_text_as_numbers():
    rows, errors = parse_json(
        [
            {"keyword": "k1", "volume": True},
            {"keyword": "k2", "volume": "10"},
            {"keyword": "k3", "difficulty": 1.0},
            {"keyword": "k4", "difficulty": "5"},
            {"keyword": "k5", "volume": 10, "difficulty": 5},
        ]
    )
    assert [(r.keyword, r.volume, r.difficulty) for r in rows] == [("k5", 10, 5)]
    assert [e.split(": ")[:2] for e in errors] == [
        ["[0]", "volume"],
        ["[1]", "volume"],
        ["[2]", "difficulty"],
        ["[3]", "difficulty"],
    ]
    rows, errors = parse_csv("keyword,volume,difficulty\nk6,10,5\n")
    assert [(r.keyword, r.volume, r.difficulty, r.where) for r in rows] == [("k6", 10, 5, "line 2")]


def test_a_difficulty_not_given_stays_unknown():
    rows, _ = parse_json([{"keyword": "a"}, {"keyword": "b", "difficulty": None}])
    assert [r.difficulty for r in rows] == [None, None]
    rows, _ = parse_csv("keyword,difficulty\nc,\nd,0\n")
    assert [r.difficulty for r in rows] == [None, 0]


@pytest.mark.parametrize(
    "header", ["keyword,keyword", "Keyword,volume,KEYWORD", "keyword,volume,Volume"]
)
def test_a_csv_header_naming_a_column_twice_is_refused(header):
    with pytest.raises(NotKeywords, match="more than once"):
        parse_csv(f"{header}\na,1,2\n")


def test_the_admin_reads_a_json_file_as_the_api_does(tmp_path):
    file = tmp_path / "keywords.json"
    file.write_text('[{"keyword": "a", "volume": "10"}, {"keyword": "b", "volume": 3}]')
    rows, errors = _read_keywords(file)
    assert [(r.keyword, r.volume) for r in rows] == [("b", 3)]
    assert errors[0].startswith("[0]: volume: ")


@pytest.mark.parametrize(
    "text",
    [
        "{bad",
        "[NaN]",
        "[Infinity]",
        "[" * 1000 + "]" * 1000,
        '["\\ud800"]',
        "9" * 5000,
        "[1] trailing",
    ],
    ids=["broken", "nan", "infinity", "deep", "lone surrogate", "huge integer", "trailing"],
)
def test_json_bodies_that_cannot_be_read_are_malformed(text):
    with pytest.raises(ApiError) as refused:
        request_body.parse_json(text)
    assert refused.value.status_code == 400
    assert (refused.value.body.field, refused.value.body.code) == ("body", "malformed")
    assert refused.value.body.detail.startswith("the request body is not valid JSON: ")


def _request(headers: dict[str, str], *messages: dict) -> Request:
    """A request whose body arrives as these ASGI messages; reading past them is a bug."""
    pending = list(messages)

    async def receive() -> dict:
        return pending.pop(0)

    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "PUT", "headers": raw}, receive)


def _chunk(body: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_the_body_is_read_only_once_its_type_is_one_the_call_takes():
    xml = _request({"content-type": "application/xml", "content-length": "2"})  # no messages
    with pytest.raises(ApiError) as refused:
        await request_body.read_text(xml, (request_body.JSON,))
    assert (refused.value.status_code, refused.value.body.code) == (415, "unsupported_media_type")
    untyped = _request({"transfer-encoding": "chunked"})
    with pytest.raises(ApiError) as refused:
        await request_body.read_text(untyped, (request_body.JSON,))
    assert (refused.value.status_code, refused.value.body.field) == (415, "content-type")


async def test_a_missing_or_cut_off_body_is_400_never_500():
    for request in (
        _request({"content-type": "application/json"}),
        _request({"content-type": "application/json", "content-length": "0"}),
        _request({"content-type": "application/json", "transfer-encoding": "chunked"}, _chunk(b"")),
        _request(
            {"content-type": "application/json", "transfer-encoding": "chunked"},
            _chunk(b'{"a"', more=True),
            {"type": "http.disconnect"},
        ),
    ):
        with pytest.raises(ApiError) as refused:
            await request_body.read_text(request, (request_body.JSON,))
        assert (refused.value.status_code, refused.value.body.field) == (400, "body")


async def test_a_json_body_is_read_with_its_byte_order_mark_and_any_json_type():
    body = '\ufeff{"a": 1}'.encode()
    request = _request(
        {"content-type": "application/merge-patch+json", "content-length": str(len(body))},
        _chunk(body),
    )
    assert await request_body.read_text(request, (request_body.JSON,)) == (
        request_body.JSON,
        '{"a": 1}',
    )
