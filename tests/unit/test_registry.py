"""Upcasting: old payload versions are brought to the current one before validation."""

import json
from pathlib import Path
from typing import ClassVar

import pytest

from contracts.codec import UnreadableMessage, decode
from contracts.envelope import Payload
from contracts.registry import REGISTRY, Registry
from contracts.state import fold

FIXTURES = Path(__file__).parent / "fixtures"


class Renamed(Payload):
    TYPE: ClassVar[str] = "test.renamed"
    VERSION: ClassVar[int] = 3

    full_name: str
    stage: int


def registry_with_chain() -> Registry:
    registry = Registry([Renamed])

    @registry.upcaster("test.renamed", 1)
    def name_to_full_name(data: dict) -> dict:
        return {"full_name": data["name"], **{k: v for k, v in data.items() if k != "name"}}

    @registry.upcaster("test.renamed", 2)
    def add_stage(data: dict) -> dict:
        return {**data, "stage": 1}

    return registry


def envelope_json(version: int, data: dict) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "0b8f5a9e-3c2d-4d7e-9a61-2f3b4c5d6e7f",
            "source": "/t",
            "type": "test.renamed",
            "dataversion": version,
            "time": "2026-01-01T00:00:00Z",
            "subject": "site/1",
            "accountid": 1,
            "siteid": 1,
            "correlationid": "0b8f5a9e-3c2d-4d7e-9a61-2f3b4c5d6e7f",
            "data": data,
        }
    ).encode()


def test_v1_is_upcast_through_the_chain():
    message = decode(envelope_json(1, {"name": "x"}), registry_with_chain())
    assert message.data == Renamed(full_name="x", stage=1)
    assert message.version == 3


def test_newer_than_the_reader_is_refused():
    with pytest.raises(UnreadableMessage, match="newer than this reader"):
        decode(envelope_json(4, {"full_name": "x", "stage": 1}), registry_with_chain())


def test_gap_in_the_chain_is_refused():
    registry = Registry([Renamed])
    with pytest.raises(UnreadableMessage, match="no upcaster"):
        decode(envelope_json(2, {"full_name": "x"}), registry)


def test_two_payloads_cannot_share_a_type():
    with pytest.raises(ValueError, match="two payloads"):
        Registry([Renamed, Renamed])


def test_every_registered_type_is_namespaced_and_unique():
    types = REGISTRY.types()
    assert all(t.startswith("automation.") for t in types)
    assert len(types) == len(set(types.values()))


def test_stored_v1_run_still_folds_to_the_recorded_state():
    """A run recorded as version-1 messages must keep folding to the same state."""
    lines = (FIXTURES / "run_v1.jsonl").read_bytes().splitlines()
    expected = json.loads((FIXTURES / "run_v1.state.json").read_text())
    state = fold(decode(line) for line in lines)
    assert state.status == expected["status"]
    assert state.credits_used == expected["credits_used"]
    assert [s.processed_count for s in state.stages] == expected["processed_per_stage"]
    assert [s.status for s in state.stages] == expected["stage_status"]
