"""GET vocabulary answers what the services define (events, endings, statuses, stages, config
fields with bounds and choices), read from their sources; the console copies none of it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from api_gateway.site_config import BATCH_MAX, BATCH_MIN, TIME_ZONES, ConfigUpdate
from contracts import events as ev
from contracts.stages import STAGES
from tests.support.gateway import API

STATIC = Path(__file__).resolve().parents[2] / (
    "services/api-gateway/src/api_gateway/console/static"
)


def test_the_vocabulary_is_read_from_the_services_definitions(gateway, tenant):
    assert httpx.get(f"{gateway.url}{API}/vocabulary").status_code == 401
    answer = tenant.get("/vocabulary")
    assert answer.status_code == 200
    words = answer.json()
    assert words["event_types"] == [event.TYPE for event in ev.RUN_EVENTS]
    assert words["run_endings"] == {e.TYPE: status for e, status in ev.RUN_ENDINGS.items()}
    assert set(words["run_endings"]) == ev.RUN_ENDING_TYPES
    assert words["active_statuses"] == ["paused", "running"]
    assert set(words["run_endings"].values()) <= set(words["run_statuses"])
    assert [s["name"] for s in words["stages"]] == [s.name for s in STAGES.values()]

    fields = {f["name"]: f for f in words["config_fields"]}
    assert list(fields) == list(ConfigUpdate.model_fields)
    assert all(f["label"] for f in fields.values())
    batch = fields["stage_1_batch_size"]
    assert (batch["kind"], batch["minimum"], batch["maximum"]) == ("integer", BATCH_MIN, BATCH_MAX)
    assert fields["frequency"]["choices"] == ["daily", "weekly", "monthly"]
    assert fields["timezone"]["choices"] == list(TIME_ZONES)
    assert fields["is_enabled"]["kind"] == "boolean"
    assert fields["scheduled_time"]["pattern"]
    mode = fields["ai_mode"]
    assert mode["choices"] == ["standard", "economy", "economy_when_scheduled"]
    assert "50%" in mode["hint"] and fields["frequency"]["hint"] is None


def test_the_console_scripts_copy_no_vocabulary():
    """What the vocabulary answers is nowhere spelled out in the console's JS."""
    scripts = "\n".join(path.read_text() for path in STATIC.glob("*.js"))
    for event_type in ev.RUN_ENDING_TYPES | {e.TYPE for e in ev.RUN_EVENTS}:
        assert f'"{event_type}"' not in scripts, event_type
    assert not re.search(r"completed\|cancelled", scripts)
    assert '"stage_1_batch_size"' not in scripts and '"monthly"' not in scripts
