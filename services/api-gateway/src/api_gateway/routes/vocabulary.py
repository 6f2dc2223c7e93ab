"""GET vocabulary: the words the console (or any client) needs to read the API's answers and the
live stream, read from where the services define them instead of copied into each client.

- the run event types, from contracts.events.RUN_EVENTS;
- the run endings (event type -> the status the run ends in), from contracts.events.RUN_ENDINGS;
- the run statuses, the active ones and the stage statuses, from the read model's answers;
- the seven stages, from contracts.stages.STAGES;
- the statuses each content listing filters by, from the listings' own types;
- the config fields update_config takes, with their kind, bounds and choices, from the JSON
  schema of its pydantic model (ConfigUpdate); only the label (and for some a line of
  explanation) a person reads is added here.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, get_args

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api_gateway import content_views as cv
from api_gateway import run_views
from api_gateway.auth import CallerDep
from api_gateway.site_config import ConfigUpdate
from contracts import events as ev
from contracts.stages import STAGES
from contracts.state import ACTIVE
from contracts.values import PROVIDER_BATCH_PRICE_SHARE, StageType

router = APIRouter(tags=["console"])

# What a person reads beside each field; everything else about a field comes from its schema.
LABELS = {
    "is_enabled": "Scheduled runs enabled",
    "frequency": "Frequency",
    "scheduled_time": "Time (HH:MM)",
    "timezone": "Time zone",
    **{f"stage_{n}_batch_size": f"Stage {n} batch size" for n in range(1, 7)},
    "within_stage_delay": "Delay within a stage (s)",
    "between_stage_delay": "Delay between stages (s)",
    "stage_concurrency": "Concurrency (batches in flight)",
    "start_check": "A start needs 1.2 × the",
    "resume_when_funded": "Resume a run paused for credits once they are added",
    "ai_mode": "AI mode",
}
# A line of explanation shown under the fields that need one.
HINTS = {
    "ai_mode": "Economy sends a run's AI work through the provider's batch interface: "
    f"{PROVIDER_BATCH_PRICE_SHARE:.0%} of the price, answers within 24 hours; "
    "economy_when_scheduled does so for scheduled runs only.",
}


class StageName(BaseModel):
    number: int
    name: str
    type: StageType


class ConfigField(BaseModel):
    name: str = Field(description="The field's name in config and update_config.")
    label: str
    kind: Literal["boolean", "integer", "string"]
    minimum: int | None = None
    maximum: int | None = None
    choices: list[str] | None = Field(None, description="The values it takes, when a list.")
    pattern: str | None = None
    description: str | None = None
    hint: str | None = Field(None, description="A line a person reads under the field.")


class Vocabulary(BaseModel):
    event_types: list[str] = Field(description="Every run event type the live stream sends.")
    run_endings: dict[str, str] = Field(
        description="The event types after which a run has ended, each with its final status."
    )
    run_statuses: list[str]
    active_statuses: list[str] = Field(description="A run in one of these has not ended.")
    stage_statuses: list[str]
    stages: list[StageName]
    config_fields: list[ConfigField] = Field(description="What update_config takes, in order.")
    content_statuses: dict[str, list[str]] = Field(
        description="The statuses each listing (keywords, clusters, ideas, tasks, content, "
        "images) filters by."
    )


def _config_field(name: str, schema: dict[str, Any]) -> ConfigField:
    value = next(s for s in schema.get("anyOf", [schema]) if s.get("type") != "null")
    return ConfigField(
        name=name,
        label=LABELS[name],
        kind=value["type"],
        minimum=value.get("minimum"),
        maximum=value.get("maximum"),
        choices=value.get("enum"),
        pattern=value.get("pattern"),
        description=schema.get("description"),
        hint=HINTS.get(name),
    )


@cache
def vocabulary() -> Vocabulary:
    fields = ConfigUpdate.model_json_schema()["properties"]
    return Vocabulary(
        event_types=[event.TYPE for event in ev.RUN_EVENTS],
        run_endings={event.TYPE: status for event, status in ev.RUN_ENDINGS.items()},
        run_statuses=list(get_args(run_views.RunStatus)),
        active_statuses=sorted(ACTIVE),
        stage_statuses=list(get_args(run_views.StageStatus)),
        stages=[StageName(number=s.number, name=s.name, type=s.type) for s in STAGES.values()],
        config_fields=[_config_field(name, schema) for name, schema in fields.items()],
        content_statuses={
            "keywords": list(get_args(cv.KeywordStatus)),
            "clusters": list(get_args(cv.ClusterStatus)),
            "ideas": list(get_args(cv.IdeaStatus)),
            "tasks": list(get_args(cv.TaskStatus)),
            "content": list(get_args(cv.ContentStatus)),
            "images": list(get_args(cv.ImageStatus)),
        },
    )


@router.get(
    "/vocabulary",
    response_model=Vocabulary,
    summary="Event types, run endings, statuses, stages and config fields",
    description="The same for every caller and every gateway of a version; the console reads "
    "it once per page instead of copying it.",
)
async def get_vocabulary(caller: CallerDep) -> Vocabulary:
    return vocabulary()
