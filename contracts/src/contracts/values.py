"""Small value types shared by commands, events and the fold, and the bounds of a site's
automation config (one home for the API, RunConfig and the table's CHECKs)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field

Trigger = Literal["manual", "scheduled"]
# SPEC's default batch sizes; stages 1-6 work in batches, stage 7 is the manual review gate.
DEFAULT_BATCH_SIZES: Mapping[int, int] = {1: 20, 2: 1, 3: 20, 4: 1, 5: 1, 6: 1}
BATCHED_STAGES = tuple(DEFAULT_BATCH_SIZES)
StageType = Literal["AI", "Local", "Manual"]


class Bounds(NamedTuple):
    """An inclusive range of a configuration number. Each bound below is written once: RunConfig
    validates with it, the gateway's config API does, and the automation_configs CHECK
    constraints are built from it (so changing one is a migration too)."""

    low: int
    high: int


# The most of a reason or an error message that a message or a row keeps: a provider's error text
# can run to pages. Longer text is cut where it is made (`clip`), never refused.
REASON_CHARS = 2000


def clip(text: str) -> str:
    return text[:REASON_CHARS]


BATCH_SIZE_RANGE = Bounds(1, 500)
DELAY_RANGE_SECONDS = Bounds(0, 3600)
CONCURRENCY_RANGE = Bounds(1, 32)

# How often a scheduled site runs, and at what local time (HH:MM, 24-hour).
Frequency = Literal["daily", "weekly", "monthly"]
FREQUENCIES: tuple[Frequency, ...] = get_args(Frequency)
SCHEDULED_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

# How a site's runs reach the AI: call by call at the provider's list price (standard), through
# the provider's batch interface at its lower price and slower pace (economy), or economy for
# scheduled runs only, which nobody is watching (economy_when_scheduled).
AiMode = Literal["standard", "economy", "economy_when_scheduled"]
AI_MODES: tuple[AiMode, ...] = get_args(AiMode)
# What a request through the provider's batch interface costs against the same call made alone:
# OpenAI's Batch API is priced at 50 % of the standard rates (platform.openai.com/docs/guides/
# batch). The workers' price table starts from it and the gateway's money estimate uses it.
PROVIDER_BATCH_PRICE_SHARE = Decimal("0.5")

# A stage of the pipeline, by its number.
StageNumber = Annotated[int, Field(ge=1, le=7)]
BatchSize = Annotated[int, Field(ge=BATCH_SIZE_RANGE.low, le=BATCH_SIZE_RANGE.high)]
Delay = Annotated[int, Field(ge=DELAY_RANGE_SECONDS.low, le=DELAY_RANGE_SECONDS.high)]
Concurrency = Annotated[int, Field(ge=CONCURRENCY_RANGE.low, le=CONCURRENCY_RANGE.high)]

# SPEC's run id: run_YYYYMMDD_HHMMSS_<trigger>_<hex that keeps it unique>. The gateway validates
# ids against the pattern before it looks anything up, so both live here, beside each other.
# ASCII digits only: `\d` would also take other scripts' digits, which no run id has.
RUN_ID_PATTERN = r"^run_[0-9]{8}_[0-9]{6}_(manual|scheduled)_[0-9a-f]+$"


def make_run_id(trigger: Trigger, at: datetime, suffix: str) -> str:
    return f"run_{at.astimezone(UTC):%Y%m%d_%H%M%S}_{trigger}_{suffix}"


def percentage(settled: int, total: int, *, finished: bool = False) -> float:
    """The settled (processed or failed) share of a stage's items in percent, to one decimal
    and never past 100. A stage with no items reads 0 % until it finishes, then 100 %."""
    if total <= 0:
        return 100.0 if finished else 0.0
    return min(round(100 * settled / total, 1), 100.0)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Elapsed seconds to the millisecond; None while either end is unknown."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


class ItemRef(BaseModel):
    """An item a stage works on, as shown to people: its id and a title."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int = Field(description="Database id of the item (keyword, cluster, idea, task, ...).")
    title: str = Field(description="What a person would call it: keyword text, idea title, ...")


class RunConfig(BaseModel):
    """The site's configuration as it was when the run started; the run keeps to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_sizes: dict[int, BatchSize] = Field(
        default_factory=lambda: dict(DEFAULT_BATCH_SIZES),
        description="Items per batch for stages 1-6.",
    )
    within_stage_delay: Delay = Field(0, description="Seconds between batches.")
    between_stage_delay: Delay = Field(0, description="Seconds between stages.")
    stage_concurrency: Concurrency = Field(1, description="Batches of one stage in flight at once.")
    ai_mode: AiMode = Field(
        "standard",
        description="standard: one call per item; economy: the provider's batch interface, at "
        "its lower price, answered within 24 h; economy_when_scheduled: economy for scheduled "
        "runs only.",
    )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RunConfig:
        """From a site's stored configuration (an automation_configs row, or the API's view of
        one): its stage_<n>_batch_size fields and the delays and concurrency."""
        return cls(
            batch_sizes={n: config[f"stage_{n}_batch_size"] for n in BATCHED_STAGES},
            within_stage_delay=config["within_stage_delay"],
            between_stage_delay=config["between_stage_delay"],
            stage_concurrency=config["stage_concurrency"],
            ai_mode=config["ai_mode"],
        )

    def batch_size(self, stage: int) -> int:
        return self.batch_sizes.get(stage, 1)

    def economy(self, trigger: Trigger) -> bool:
        """Whether a run of this trigger sends its AI stages through the provider's batch
        interface."""
        return self.ai_mode == "economy" or (
            self.ai_mode == "economy_when_scheduled" and trigger == "scheduled"
        )


def word_count(markdown: str) -> int:
    """An article's words as the content row counts them: what the writer made and what a
    reviewer's edit leaves."""
    return len(markdown.split())
