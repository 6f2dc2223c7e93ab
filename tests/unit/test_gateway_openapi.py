"""The committed OpenAPI document is what the app serves, and it promises only what the app does."""

from __future__ import annotations

import csv
import json
import re
import zoneinfo
from datetime import date
from functools import cache
from pathlib import Path
from typing import Annotated

import jsonschema_rs
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from api_gateway import costs, params
from api_gateway.app import API_PREFIX, create_app
from api_gateway.keywords import NotKeywords, parse_csv
from api_gateway.site_config import TIME_ZONES, ConfigUpdate

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
SPEC_CALLS = [
    ("get", "config"), ("put", "update_config"), ("post", "run_now"), ("get", "current_run"),
    ("get", "history"), ("get", "logs"), ("get", "estimate"), ("get", "pipeline_overview"),
    ("get", "current_processing"), ("post", "pause"), ("post", "resume"), ("post", "cancel"),
]  # fmt: skip


def _served() -> dict:
    return create_app().openapi()


def test_committed_document_matches_the_app():
    assert json.loads(DOCUMENT.read_text()) == _served(), (
        "regenerate docs/openapi.json: python -c 'import json; from api_gateway.app import "
        "create_app; print(json.dumps(create_app().openapi(), indent=2, ensure_ascii=False))'"
    )


def test_every_spec_call_is_served_with_its_errors():
    paths = _served()["paths"]
    for method, name in SPEC_CALLS:
        operation = paths[f"{API_PREFIX}/{name}"][method]
        assert {"200", "400", "401", "404"} <= set(operation["responses"]), name
        assert operation["security"] == [{"HTTPBearer": []}]


def test_no_422_and_errors_are_json():
    for path in _served()["paths"].values():
        for operation in path.values():
            assert "422" not in operation["responses"]
            for status, response in operation["responses"].items():
                if not status.startswith("2"):
                    assert list(response["content"]) == ["application/json"]


def test_no_route_has_fastapi_read_its_body():
    """FastAPI reads a body parameter before any dependency, authentication included: routes
    read their bodies themselves, with api_gateway.request_body."""
    contexts = iter_route_contexts(create_app().routes)  # the included routers' routes too
    api_routes = {
        c.path: c.original_route for c in contexts if isinstance(c.original_route, APIRoute)
    }
    assert f"{API_PREFIX}/update_config" in api_routes
    for path, route in api_routes.items():
        assert route.body_field is None, f"{path}: read the body with api_gateway.request_body"


def test_every_body_is_documented_with_its_refusals():
    document = _served()
    schemas = document["components"]["schemas"]
    bodies = 0
    for path in document["paths"].values():
        for operation in path.values():
            if "requestBody" not in operation:
                continue
            bodies += 1
            assert {"400", "401", "413", "415"} <= set(operation["responses"])
            for content in operation["requestBody"]["content"].values():
                reference = content["schema"].get("$ref", "")
                assert reference.removeprefix("#/components/schemas/") in schemas or not reference
    assert bodies >= 2


# --- what the document allows is what the server takes ---------------------------------------


@cache
def _schemas() -> dict:
    return _served()["components"]["schemas"]


def test_the_documented_time_zones_are_the_ones_update_config_takes():
    timezone = _schemas()["ConfigUpdate"]["properties"]["timezone"]
    listed = next(option["enum"] for option in timezone["anyOf"] if "enum" in option)
    assert listed == list(TIME_ZONES) == sorted(TIME_ZONES)
    assert {"UTC", "Etc/UTC", "Europe/Berlin", "America/New_York"} <= set(listed)
    for zone in listed:
        assert ConfigUpdate.model_validate({"timezone": zone}).timezone == zone
        zoneinfo.ZoneInfo(zone)  # and the schedule can compute its slots
    # What this machine's zoneinfo would also load, and near misses: not in the list, refused.
    unlisted = {"localtime", "posixrules", "right/UTC", "posix/Europe/Berlin", "Europe/berlin"}
    unlisted |= {"", " UTC", "UTC ", "Mars/Olympus_Mons", *zoneinfo.available_timezones()}
    for zone in unlisted - set(listed):
        with pytest.raises(ValidationError, match="unknown time zone"):
            ConfigUpdate.model_validate({"timezone": zone})


def test_a_number_the_document_calls_an_integer_is_taken_as_one():
    # JSON Schema's integer is a number without a fraction, 20.0 included.
    assert ConfigUpdate.model_validate({"stage_1_batch_size": 20.0}).stage_1_batch_size == 20
    for value in (20.5, True, "20"):
        with pytest.raises(ValidationError):
            ConfigUpdate.model_validate({"stage_1_batch_size": value})


def _csv_pattern() -> str:
    return _schemas()["KeywordCsv"]["pattern"]


@cache
def _csv_validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(_schemas()["KeywordCsv"])


def _documented(text: str) -> bool:
    """As JSON Schema reads the pattern (schemathesis validates with jsonschema-rs, in Rust)."""
    return _csv_validator().is_valid(text)


def _taken(text: str) -> bool:
    """Whether the import reads the body (the server decodes it as utf-8-sig: no BOM)."""
    try:
        parse_csv(text.removeprefix("\ufeff"))
    except (csv.Error, NotKeywords):
        return False
    return True


@pytest.mark.parametrize(
    "text",
    [
        "keyword",
        "keyword\nseo tips\n",
        "Keyword,VOLUME,Difficulty\r\nseo tips,10,\r\n",
        "difficulty , keyword\nhard one,90\n",
        '"keyword","volume"\n"seo, tips","12"\n"say ""hi""",3\n',
        "\ufeffkeyword,volume,,\nseo,1,,\n",
        "volume,keyword\nlots,seo\ntoo,many,values\n\n",  # rows skipped, not the body
        'keyword\n"two\nlines"\r',
    ],
)
def test_a_csv_body_the_document_allows_is_imported(text):
    assert re.fullmatch(_csv_pattern(), text) and _documented(text)
    assert _taken(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "volume\n1\n",  # no keyword column
        "keyword,Keyword\na,b\n",  # a column twice
        "keyword,cpc\nseo,1\n",  # a column the import does not know
        "\nkeyword\nseo\n",  # the header is the first line
        "\u212aeyword\nseo\n",  # KELVIN SIGN: lower-cases to k, but is no ASCII letter
        'keyword\n"open quote\nand the rest\n',
        'keyword\n"closed" then more\n',
        "keyword\nseo\rtips\n",  # a carriage return inside a line
        "\ufeff\ufeffkeyword\n",
    ],
)
def test_a_csv_body_the_document_refuses_is_refused(text):
    assert not re.fullmatch(_csv_pattern(), text) and not _documented(text)
    assert not _taken(text)


def test_the_documented_csv_example_is_imported():
    (example,) = _schemas()["KeywordCsv"]["examples"]
    assert _documented(example) and _taken(example)


PIECES = ["keyword", "KeyWord", "volume", "Difficulty", "seo", ",", '"', " ", "\t", "\r", "\n"]


@settings(max_examples=3000, derandomize=True)
@given(st.lists(st.sampled_from([*PIECES, "\ufeff", "\x00", "\u212a", "\xa0"])).map("".join))
def test_the_csv_pattern_allows_exactly_what_the_import_takes(text):
    documented = re.fullmatch(_csv_pattern(), text) is not None
    assert documented == _taken(text) == _documented(text), repr(text)


def test_integer_and_day_parameters_read_only_what_their_schema_allows():
    whole = TypeAdapter(Annotated[int, params.WholeNumber])
    assert [whole.validate_python(text) for text in ("5", "05", "+5", "-0")] == [5, 5, 5, 0]
    for text in (" 5", "5 ", "1_000", "5.0", "0x5", "\u0665"):
        with pytest.raises(ValidationError):
            whole.validate_python(text)
    day = TypeAdapter(params.Day)
    assert day.validate_python("2026-03-01") == date(2026, 3, 1)
    for text in ("0", "2026-03-01T00:00:00", "0000-01-01", "2026-02-30", "2026-3-1"):
        with pytest.raises(ValidationError):
            day.validate_python(text)


def test_every_day_the_usage_parameters_allow_is_answered():
    today = date(2026, 3, 1)
    assert costs.day_range(None, date(1, 1, 5), today).first == date.min
    last = costs.day_range(None, date.max, today)
    assert last.end > last.start and len(last.days()) == 30
