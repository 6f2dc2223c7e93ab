"""A site's configuration bounds have one home (contracts.values): the run's config validates
with them and the automation_configs CHECK constraints are built from them."""

from __future__ import annotations

import pydantic
import pytest
import sqlalchemy as sa

from contracts.db import tables
from contracts.values import (
    BATCH_SIZE_RANGE,
    CONCURRENCY_RANGE,
    DELAY_RANGE_SECONDS,
    FREQUENCIES,
    SCHEDULED_TIME_PATTERN,
    RunConfig,
)


def _checks() -> dict[str, str]:
    return {
        str(c.name).removeprefix("ck_automation_configs_"): str(c.sqltext)
        for c in tables.automation_configs.constraints
        if isinstance(c, sa.CheckConstraint)
    }


def test_the_table_checks_are_built_from_the_bounds():
    checks = _checks()
    low, high = BATCH_SIZE_RANGE
    for stage in range(1, 7):
        name = f"stage_{stage}_batch_size"
        assert checks[name] == f"{name} BETWEEN {low} AND {high}"
    low, high = DELAY_RANGE_SECONDS
    assert checks["within_stage_delay"] == f"within_stage_delay BETWEEN {low} AND {high}"
    assert checks["between_stage_delay"] == f"between_stage_delay BETWEEN {low} AND {high}"
    low, high = CONCURRENCY_RANGE
    assert checks["stage_concurrency"] == f"stage_concurrency BETWEEN {low} AND {high}"
    assert checks["frequency"] == "frequency IN (" + ", ".join(f"'{f}'" for f in FREQUENCIES) + ")"
    assert checks["scheduled_time_hh_mm"] == f"scheduled_time ~ '{SCHEDULED_TIME_PATTERN}'"


@pytest.mark.parametrize(
    "fields",
    [
        {"batch_sizes": {1: BATCH_SIZE_RANGE.high + 1}},
        {"batch_sizes": {4: BATCH_SIZE_RANGE.low - 1}},
        {"within_stage_delay": DELAY_RANGE_SECONDS.high + 1},
        {"between_stage_delay": DELAY_RANGE_SECONDS.low - 1},
        {"stage_concurrency": CONCURRENCY_RANGE.high + 1},
    ],
)
def test_a_run_config_outside_the_bounds_is_refused(fields):
    with pytest.raises(pydantic.ValidationError):
        RunConfig(**fields)


def test_a_run_config_at_the_bounds_is_taken():
    config = RunConfig(
        batch_sizes={1: BATCH_SIZE_RANGE.low, 3: BATCH_SIZE_RANGE.high},
        within_stage_delay=DELAY_RANGE_SECONDS.high,
        stage_concurrency=CONCURRENCY_RANGE.high,
    )
    assert config.batch_size(3) == BATCH_SIZE_RANGE.high
