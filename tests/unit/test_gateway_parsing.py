"""The run-id shape and keyword parsing: pure parts of the gateway."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime

import pytest

from api_gateway.keywords import parse_csv, parse_json
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
    assert parse_json({"nope": 1})[1][0].startswith("JSON body must")


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
