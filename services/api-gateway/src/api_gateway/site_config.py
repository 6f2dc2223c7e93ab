"""A site's automation config: read (created with defaults when missing), validated, changed."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Annotated

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from api_gateway import params
from contracts.credits import StartCheck
from contracts.db import tables as t
from contracts.envelope import utcnow
from contracts.schedule import next_slot
from contracts.values import (
    PROVIDER_BATCH_PRICE_SHARE,
    SCHEDULED_TIME_PATTERN,
    AiMode,
    Frequency,
    RunConfig,
)

BATCH_MIN, BATCH_MAX = t.BATCH_SIZE_RANGE
DELAY_MIN, DELAY_MAX = t.DELAY_RANGE_SECONDS
CONCURRENCY_MIN, CONCURRENCY_MAX = t.CONCURRENCY_RANGE
SCHEDULE_FIELDS = frozenset({"is_enabled", "frequency", "scheduled_time", "timezone"})


def _iana_zones() -> tuple[str, ...]:
    """The zone names of the tzdata package, whose version uv.lock pins: the same list on every
    machine, where `zoneinfo.available_timezones()` would add the machine's own zoneinfo (and
    `ZoneInfo` would also load `localtime`, `posixrules` or `right/UTC`)."""
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return tuple(sorted(names))


# What update_config takes as `timezone`, and what its OpenAPI document lists: one list.
TIME_ZONES = _iana_zones()
_KNOWN_ZONES = frozenset(TIME_ZONES)
TimeZone = Annotated[str, WithJsonSchema({"type": "string", "enum": list(TIME_ZONES)})]


AI_MODE = (
    "How runs reach the AI: standard (one call per item, at the provider's list price), economy "
    f"(through the provider's batch interface at {PROVIDER_BATCH_PRICE_SHARE:.0%} of the price, "
    "answered within 24 h), or economy_when_scheduled (economy for scheduled runs, standard for "
    "runs started by hand)."
)


class ConfigOut(BaseModel):
    site_id: int
    is_enabled: bool
    frequency: Frequency
    scheduled_time: str = Field(description="HH:MM in the site's time zone.")
    timezone: str
    stage_1_batch_size: int
    stage_2_batch_size: int
    stage_3_batch_size: int
    stage_4_batch_size: int
    stage_5_batch_size: int
    stage_6_batch_size: int
    within_stage_delay: int = Field(description="Seconds between batches of a stage.")
    between_stage_delay: int = Field(description="Seconds between stages.")
    stage_concurrency: int = Field(description="Batches of one stage in flight at once.")
    start_check: StartCheck = Field(
        description="What a start needs 1.2x of: the work pending now (default, SPEC's rule) or "
        "the projected total, what earlier stages will create included."
    )
    resume_when_funded: bool = Field(
        description="A run paused because credits ran out resumes by itself once the balance "
        "pays for its next item (checked every few seconds)."
    )
    ai_mode: AiMode = Field(description=AI_MODE)
    last_run_at: datetime | None
    next_run_at: datetime | None


def _batch() -> object:
    return Field(None, ge=BATCH_MIN, le=BATCH_MAX, description=f"{BATCH_MIN}..{BATCH_MAX}")


def _delay() -> object:
    return Field(None, ge=DELAY_MIN, le=DELAY_MAX, description=f"{DELAY_MIN}..{DELAY_MAX} s")


class ConfigUpdate(BaseModel):
    """Fields to change; those left out keep their value. Strict: `true` is no number, `"yes"`
    no boolean and `"20"` no batch size; each is refused, naming the field."""

    model_config = ConfigDict(extra="forbid", strict=True)

    is_enabled: bool | None = None
    frequency: Frequency | None = None
    scheduled_time: str | None = Field(
        None, pattern=SCHEDULED_TIME_PATTERN, description="HH:MM, 24-hour."
    )
    timezone: TimeZone | None = Field(
        None, description="IANA zone, e.g. Europe/Berlin: one of the tzdata package's names."
    )
    stage_1_batch_size: int | None = _batch()
    stage_2_batch_size: int | None = _batch()
    stage_3_batch_size: int | None = _batch()
    stage_4_batch_size: int | None = _batch()
    stage_5_batch_size: int | None = _batch()
    stage_6_batch_size: int | None = _batch()
    within_stage_delay: int | None = _delay()
    between_stage_delay: int | None = _delay()
    stage_concurrency: int | None = Field(None, ge=CONCURRENCY_MIN, le=CONCURRENCY_MAX)
    start_check: StartCheck | None = Field(
        None, description="pending (SPEC's rule) or projected: what a start needs 1.2x of."
    )
    resume_when_funded: bool | None = Field(
        None, description="Resume a run paused for credits by itself once the balance pays."
    )
    ai_mode: AiMode | None = Field(None, description=AI_MODE)

    @field_validator(
        *(f"stage_{n}_batch_size" for n in range(1, 7)),
        "within_stage_delay",
        "between_stage_delay",
        "stage_concurrency",
        mode="before",
    )
    @classmethod
    def integral(cls, value: object) -> object:
        return params.integral(value)

    @field_validator("timezone")
    @classmethod
    def known_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in _KNOWN_ZONES:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin")
        return value

    def changes(self) -> dict[str, object]:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


async def load(conn: AsyncConnection, site: Row) -> ConfigOut:
    await conn.execute(
        insert(t.automation_configs).values(site_id=site.id).on_conflict_do_nothing()
    )
    row = (
        await conn.execute(
            sa.select(t.automation_configs).where(t.automation_configs.c.site_id == site.id)
        )
    ).one()
    return ConfigOut(timezone=site.timezone, **row._mapping)


async def update(conn: AsyncConnection, site: Row, change: ConfigUpdate) -> ConfigOut:
    current = await load(conn, site)
    changes = change.changes()
    if "timezone" in changes:
        await conn.execute(
            sa.update(t.sites).where(t.sites.c.id == site.id).values(timezone=changes["timezone"])
        )
    merged = current.model_copy(update=changes)
    values = {k: v for k, v in changes.items() if k != "timezone"}
    if SCHEDULE_FIELDS & changes.keys():
        values["next_run_at"] = _next_run(merged)
    if values:
        await conn.execute(
            sa.update(t.automation_configs)
            .where(t.automation_configs.c.site_id == site.id)
            .values(**values)
        )
    return merged.model_copy(update={"next_run_at": values.get("next_run_at", merged.next_run_at)})


def _next_run(config: ConfigOut) -> datetime | None:
    if not config.is_enabled:
        return None
    return next_slot(utcnow(), config.frequency, config.scheduled_time, config.timezone)


def run_config(config: ConfigOut) -> RunConfig:
    """The config a run keeps to, as the StartRun command carries it."""
    return RunConfig.from_config(config.model_dump())
