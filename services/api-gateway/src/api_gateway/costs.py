"""What the AI work cost in money, beside the credits billed for it: per stage of a run, per UTC
day of a site or an account, and per item over recent runs (for the estimate).

The figures come from `ai_calls`, the stage workers' record of every AI call. Money is summed as
Decimal and answered as a JSON number rounded to 6 decimals (a millionth of a dollar). A call
the price table could not price has no cost: it is counted in `unpriced_calls` and makes
`cost_complete` false, so an unknown cost is flagged, never guessed or read as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncConnection

from api_gateway.errors import bad_request
from api_gateway.run_views import RunStatus
from contracts.db import tables as t
from contracts.stages import STAGES
from contracts.values import StageType

RETRY_OUTCOMES = ("rate_limited", "unavailable", "refused", "fatal")
USD_PLACES = 6
DEFAULT_USAGE_DAYS = 30
MAX_USAGE_DAYS = 366
HISTORY_RUNS = 10
FINISHED_STATUSES = ("completed", "cancelled", "failed")
CostBasis = Literal["site", "account", "site_and_account", "no_history", "no_pending_work"]
RateSource = Literal["site", "account"]
MONEY_WINDOW_DAYS = 30


class Retries(BaseModel):
    rate_limited: int = Field(description="429s: the provider asked for a rest.")
    unavailable: int = Field(description="Timeouts, dropped connections, 5xx.")
    refused: int = Field(description="The provider refused the request for what was in it.")
    fatal: int = Field(description="401, 403, an unknown model: the run fails on these.")


class CallFigures(BaseModel):
    calls: int = Field(description="Calls the provider answered.")
    retries: int = Field(description="Calls without an answer: every outcome but answered.")
    retries_by_outcome: Retries
    input_tokens: int
    output_tokens: int
    cached_tokens: int = Field(description="Of the input tokens, those served from a cache.")
    images: int
    cost_usd: float = Field(
        description="What the provider charged for the priced calls, in US dollars, as a number "
        f"rounded to {USD_PLACES} decimals."
    )
    unpriced_calls: int = Field(
        description="Answered calls whose model the price table does not know: their cost is "
        "unknown, not zero."
    )
    cost_complete: bool = Field(description="False when unpriced_calls > 0: cost_usd falls short.")
    waited_seconds: float = Field(description="Time the calls waited at the rate-limit gate.")
    provider_batch_calls: int = Field(
        description="Of the answered calls, those made through the provider's batch interface "
        "(economy runs)."
    )
    saved_usd: float = Field(
        description="What those calls cost less than the same calls at the standard price, in "
        f"US dollars rounded to {USD_PLACES} decimals: cost_usd + saved_usd is the standard "
        "price."
    )


class CostLine(CallFigures):
    credits: int = Field(description="Credits billed to the customer for this work.")
    usd_per_credit: float | None = Field(
        description="cost_usd / credits, the provider's money per credit billed; null without "
        "credits or when cost_complete is false."
    )
    models_requested: list[str]
    models_answered: list[str]


class StageCost(CostLine):
    stage_number: int
    stage_name: str
    stage_type: StageType


class RunCost(BaseModel):
    run_id: str
    site_id: int
    status: RunStatus = Field(description="Figures of a running or paused run still grow.")
    stages: list[StageCost] = Field(description="All seven stages, in order.")
    total: CostLine = Field(description="The run: credits are the run's credits_used.")


class UsageTotals(CallFigures):
    credits_charged: int = Field(description="Credits charged (the ledger's charges; no top-ups).")
    runs_started: int


class DayUsage(UsageTotals):
    day: date = Field(description="A UTC day.")


class UsageReport(BaseModel):
    account_id: int
    site_id: int | None = Field(description="null: every site of the account.")
    from_day: date
    to_day: date
    days: list[DayUsage] = Field(description="One per UTC day, oldest first; idle days as zeros.")
    total: UsageTotals


@dataclass(frozen=True)
class CallSums:
    """Sums over some AI calls, in the units they are stored in."""

    calls: int = 0
    rate_limited: int = 0
    unavailable: int = 0
    refused: int = 0
    fatal: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    images: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_calls: int = 0
    waited_ms: int = 0
    provider_batch_calls: int = 0
    saved_usd: Decimal = Decimal(0)
    models_requested: frozenset[str] = frozenset()
    models_answered: frozenset[str] = frozenset()

    @classmethod
    def of(cls, row: Row) -> CallSums:
        """From a row of `_call_sums()` columns; NULLs (no calls, an outer join) are zeros."""
        found = row._mapping
        values = {f.name: found[f.name] for f in fields(cls) if found.get(f.name) is not None}
        for name in ("models_requested", "models_answered"):
            values[name] = frozenset(values.get(name, ()))
        return cls(**values)

    def __add__(self, other: CallSums) -> CallSums:
        return CallSums(
            **{
                f.name: _combine(getattr(self, f.name), getattr(other, f.name))
                for f in fields(self)
            }
        )


def _combine(mine: Any, theirs: Any) -> Any:
    return mine | theirs if isinstance(mine, frozenset) else mine + theirs


def usd(amount: Decimal) -> float:
    return float(round(amount, USD_PLACES))


def figures(sums: CallSums) -> dict[str, Any]:
    retries = {outcome: getattr(sums, outcome) for outcome in RETRY_OUTCOMES}
    return {
        "calls": sums.calls,
        "retries": sum(retries.values()),
        "retries_by_outcome": Retries(**retries),
        "input_tokens": sums.input_tokens,
        "output_tokens": sums.output_tokens,
        "cached_tokens": sums.cached_tokens,
        "images": sums.images,
        "cost_usd": usd(sums.cost_usd),
        "unpriced_calls": sums.unpriced_calls,
        "cost_complete": sums.unpriced_calls == 0,
        "waited_seconds": round(sums.waited_ms / 1000, 3),
        "provider_batch_calls": sums.provider_batch_calls,
        "saved_usd": usd(sums.saved_usd),
    }


def cost_line(sums: CallSums, credits: int) -> dict[str, Any]:
    known = credits > 0 and sums.unpriced_calls == 0
    return {
        **figures(sums),
        "credits": credits,
        "usd_per_credit": usd(sums.cost_usd / credits) if known else None,
        "models_requested": sorted(sums.models_requested),
        "models_answered": sorted(sums.models_answered),
    }


def _sum_of(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.sum(column), 0)


def _call_sums(c: sa.ColumnCollection) -> list[sa.ColumnElement]:
    """The aggregates behind `CallSums`, for any grouping of `ai_calls`."""
    answered = c.outcome == "answered"
    counted = ("input_tokens", "output_tokens", "cached_tokens", "images", "waited_ms")
    return [
        sa.func.count().filter(answered).label("calls"),
        *(sa.func.count().filter(c.outcome == o).label(o) for o in RETRY_OUTCOMES),
        *(_sum_of(c[name]).label(name) for name in counted),
        _sum_of(c.cost_usd).label("cost_usd"),
        sa.func.count().filter(answered & c.cost_usd.is_(None)).label("unpriced_calls"),
        sa.func.count()
        .filter(answered & (c.via == "provider_batch"))
        .label("provider_batch_calls"),
        _sum_of(c.saved_usd).label("saved_usd"),
    ]


def _run_cost_query() -> sa.Select:
    """Per stage: the run's AI calls, full-joined to the stage's credits in the read model."""
    c, s = t.ai_calls.c, t.automation_run_stages.c
    calls = (
        sa.select(
            # As the read model's type: FULL JOIN wants one that both sides can hash or merge.
            sa.cast(c.stage, sa.Integer).label("stage"),
            *_call_sums(c),
            sa.func.array_agg(sa.distinct(c.model_requested)).label("models_requested"),
            sa.func.array_agg(sa.distinct(c.model_answered))
            .filter(c.model_answered.is_not(None))
            .label("models_answered"),
        )
        .where(c.run_id == sa.bindparam("run_id"), c.account_id == sa.bindparam("account_id"))
        .group_by(c.stage)
        .subquery("calls")
    )
    credits = (
        sa.select(s.stage, s.credits_used).where(s.run_id == sa.bindparam("run_id")).subquery()
    )
    return sa.select(
        sa.func.coalesce(calls.c.stage, credits.c.stage).label("stage"),
        *(column for column in calls.c if column.key != "stage"),
        credits.c.credits_used,
    ).select_from(calls.join(credits, calls.c.stage == credits.c.stage, full=True))


_RUN_COST = _run_cost_query()


async def run_cost(conn: AsyncConnection, run: Row) -> RunCost:
    """The run's cost per stage and in total; `run` is its read-model row."""
    params = {"run_id": run.run_id, "account_id": run.account_id}
    rows = {row.stage: row for row in await conn.execute(_RUN_COST, params)}
    sums = {n: CallSums.of(rows[n]) if n in rows else CallSums() for n in STAGES}
    stages = [
        StageCost(
            stage_number=n,
            stage_name=STAGES[n].name,
            stage_type=STAGES[n].type,
            **cost_line(sums[n], (rows[n].credits_used or 0) if n in rows else 0),
        )
        for n in STAGES
    ]
    total = CostLine(**cost_line(sum(sums.values(), CallSums()), run.credits_used))
    return RunCost(
        run_id=run.run_id, site_id=run.site_id, status=run.status, stages=stages, total=total
    )


@dataclass(frozen=True)
class DayRange:
    """UTC days from `first` to `last`, both included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The midnight after the last day; after 9999-12-31, the last moment Python has."""
        if self.last == date.max:
            return datetime.max.replace(tzinfo=UTC)
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def day_range(first: date | None, last: date | None, today: date) -> DayRange:
    """The asked range; by default the 30 days ending `last` (itself by default today). A range
    backwards or longer than 366 days is refused (400), naming `from`."""
    last = last or today
    # Not before 0001-01-01, the first day Python has.
    first = first or last - timedelta(days=min(DEFAULT_USAGE_DAYS - 1, (last - date.min).days))
    if first > last:
        raise bad_request(f"from: {first} is after to ({last})", field="from", code="invalid")
    length = (last - first).days + 1
    if length > MAX_USAGE_DAYS:
        raise bad_request(
            f"from: the range is {length} days; at most {MAX_USAGE_DAYS}",
            field="from",
            code="invalid",
        )
    return DayRange(first, last)


def _utc_day(column: sa.ColumnElement) -> sa.ColumnElement:
    # A literal, not a bound value: GROUP BY must repeat the select's expression exactly.
    return sa.cast(sa.func.timezone(sa.literal_column("'UTC'"), column), sa.Date)


def _by_day(
    table: sa.Table, at: sa.Column, account_id: int, site_id: int | None, days: DayRange
) -> tuple[sa.ColumnElement, list[sa.ColumnElement]]:
    """The UTC day of `at`, and the filter to the account (or site) and the days."""
    where = [table.c.account_id == account_id, at >= days.start, at < days.end]
    if site_id is not None:
        where.append(table.c.site_id == site_id)
    return _utc_day(at), where


async def usage(
    conn: AsyncConnection, account_id: int, site_id: int | None, days: DayRange
) -> UsageReport:
    """Per UTC day: the AI calls, the credits charged and the runs started, one query each."""
    ai_calls, ledger, runs = t.ai_calls, t.credit_ledger, t.automation_runs
    day, where = _by_day(ai_calls, ai_calls.c.at, account_id, site_id, days)
    calls = await conn.execute(
        sa.select(day.label("day"), *_call_sums(ai_calls.c)).where(*where).group_by(day)
    )
    sums = {row.day: CallSums.of(row) for row in calls}
    day, where = _by_day(ledger, ledger.c.created_at, account_id, site_id, days)
    charged = sa.func.sum(-ledger.c.amount)
    credits = await conn.execute(
        sa.select(day, charged).where(*where, ledger.c.amount < 0).group_by(day)
    )
    day, where = _by_day(runs, runs.c.started_at, account_id, site_id, days)
    started = await conn.execute(
        sa.select(day, sa.func.count()).where(*where, runs.c.status != "rejected").group_by(day)
    )
    return usage_report(
        account_id, site_id, days, sums, dict(credits.tuples().all()), dict(started.tuples().all())
    )


def usage_report(
    account_id: int,
    site_id: int | None,
    days: DayRange,
    sums: Mapping[date, CallSums],
    credits: Mapping[date, int],
    runs: Mapping[date, int],
) -> UsageReport:
    """Every day of the range, zeros where nothing happened, and the range's total."""
    rows = [
        DayUsage(
            day=day,
            credits_charged=int(credits.get(day, 0)),
            runs_started=runs.get(day, 0),
            **figures(sums.get(day, CallSums())),
        )
        for day in days.days()
    ]
    total = UsageTotals(
        credits_charged=sum(row.credits_charged for row in rows),
        runs_started=sum(row.runs_started for row in rows),
        **figures(sum(sums.values(), CallSums())),
    )
    return UsageReport(
        account_id=account_id,
        site_id=site_id,
        from_day=days.first,
        to_day=days.last,
        days=rows,
        total=total,
    )


@dataclass(frozen=True)
class CostRates:
    """Mean US dollars per item, by stage, over the recent finished runs of the site and of the
    account."""

    site: Mapping[int, Decimal]
    account: Mapping[int, Decimal]


def _recent_runs(owner: sa.ColumnElement[bool]) -> sa.Select:
    r = t.automation_runs.c
    return (
        sa.select(r.run_id)
        .where(owner, r.status.in_(FINISHED_STATUSES))
        .order_by(r.ended_at.desc().nulls_last(), r.run_id.desc())
        .limit(HISTORY_RUNS)
    )


def _per_item(
    scope: str, calls: sa.ColumnElement[bool], cost: sa.ColumnElement | None = None
) -> sa.Select:
    """Cost (what the provider charged, unless `cost` says otherwise) and items of the priced
    answers among `calls`. A call is for one item (`item_id`), or for `items` of them at once
    (stage 1 clusters a batch of keywords in one call)."""
    c = t.ai_calls.c
    items = sa.func.count(sa.distinct(c.item_id)) + sa.func.coalesce(
        sa.func.sum(c["items"]).filter(c.item_id.is_(None)), 0
    )
    return (
        sa.select(
            sa.literal_column(f"'{scope}'").label("scope"),
            c.stage,
            sa.func.sum(c.cost_usd if cost is None else cost).label("cost_usd"),
            items.label("items"),
        )
        .where(calls, c.outcome == "answered", c.cost_usd.is_not(None))
        .group_by(c.stage)
    )


def _of_recent_runs(owner: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    return t.ai_calls.c.run_id.in_(_recent_runs(owner))


_COST_RATES = sa.union_all(
    _per_item("site", _of_recent_runs(t.automation_runs.c.site_id == sa.bindparam("site_id"))),
    _per_item(
        "account",
        _of_recent_runs(t.automation_runs.c.account_id == sa.bindparam("account_id")),
    ),
)


def _standard_rates_query() -> sa.CompoundSelect:
    """Per item at the standard price (what a provider batch saved added back), over the calls
    since `since` of the site, and of the account."""
    c = t.ai_calls.c
    recent = sa.and_(c.account_id == sa.bindparam("account_id"), c.at >= sa.bindparam("since"))
    standard = c.cost_usd + sa.func.coalesce(c.saved_usd, 0)
    return sa.union_all(
        _per_item("site", sa.and_(recent, c.site_id == sa.bindparam("site_id")), standard),
        _per_item("account", recent, standard),
    )


_STANDARD_RATES = _standard_rates_query()


def _rates(conn: Connection, query: sa.Executable, params: dict[str, Any]) -> CostRates:
    rates: dict[str, dict[int, Decimal]] = {"site": {}, "account": {}}
    for row in conn.execute(query, params):
        if row.items:
            rates[row.scope][row.stage] = row.cost_usd / row.items
    return CostRates(site=rates["site"], account=rates["account"])


def cost_rates(conn: Connection, account_id: int, site_id: int) -> CostRates:
    """One query: the mean cost per item of each stage over the last 10 finished runs of the
    site, and of the account."""
    return _rates(conn, _COST_RATES, {"site_id": site_id, "account_id": account_id})


def standard_rates(conn: Connection, account_id: int, site_id: int, now: datetime) -> CostRates:
    """One query: the cost per processed item of each stage at the standard price, over the AI
    calls of the last MONEY_WINDOW_DAYS of the site, and of the account."""
    since = now - timedelta(days=MONEY_WINDOW_DAYS)
    params = {"site_id": site_id, "account_id": account_id, "since": since}
    return _rates(conn, _STANDARD_RATES, params)


def rate_for(stage: int, rates: CostRates) -> tuple[Decimal, RateSource] | None:
    """The stage's cost per item: the site's where it has one, else the account's."""
    if stage in rates.site:
        return rates.site[stage], "site"
    if stage in rates.account:
        return rates.account[stage], "account"
    return None


def expected_cost(items: Mapping[int, int], rates: CostRates) -> tuple[float | None, CostBasis]:
    """Money the projected items should cost: each AI stage's items times its measured cost
    per item, the site's where it has one, else the account's. None when a stage with work has
    neither: a guess would pass for a measurement."""
    total, sources = Decimal(0), set()
    for stage, count in items.items():
        if count <= 0 or STAGES[stage].type != "AI":
            continue
        rate = rate_for(stage, rates)
        if rate is None:
            return None, "no_history"
        total += rate[0] * count
        sources.add(rate[1])
    return usd(total), basis_of(sources)


def basis_of(sources: set[RateSource]) -> CostBasis:
    if not sources:
        return "no_pending_work"
    return sources.pop() if len(sources) == 1 else "site_and_account"
