"""What the pending work should cost in money, in both AI modes: at the standard price (one
call per item) and through the provider's batch interface (economy). Each AI stage's pending
items times what one processed item of that stage cost at the standard price over the last
MONEY_WINDOW_DAYS (the site's calls, else the account's: costs.standard_rates); economy is that
times contracts.values.PROVIDER_BATCH_PRICE_SHARE. A stage with work and no such history has
no figure, and then neither has the total: a guess would pass for a measurement."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pydantic import BaseModel, Field

from api_gateway.costs import (
    MONEY_WINDOW_DAYS,
    CostBasis,
    CostRates,
    RateSource,
    basis_of,
    rate_for,
    usd,
)
from contracts.stages import STAGES
from contracts.values import PROVIDER_BATCH_PRICE_SHARE


class StageMoney(BaseModel):
    stage_number: int
    items: int = Field(description="Items pending for the stage (what the credit estimate counts).")
    basis: RateSource | None = Field(
        None,
        description="Whose calls gave the cost per item: the site's or the account's; null "
        "without history.",
    )
    standard_usd_per_item: float | None = None
    standard_usd: float | None = None
    economy_usd: float | None = None


class MoneyEstimate(BaseModel):
    """The pending work in US dollars (rounded to 6 decimals), at the standard price and
    through the provider's batch interface."""

    standard_usd: float | None = Field(
        description="One call per item at the provider's list price; null when a stage with "
        "work has no history (see stages_without_history)."
    )
    economy_usd: float | None = Field(
        description=f"Through the provider's batch interface: {PROVIDER_BATCH_PRICE_SHARE:.0%} "
        "of standard_usd; null with it."
    )
    basis: CostBasis = Field(
        description="Whose calls gave the costs per item: the site's, the account's, both (per "
        "stage), `no_history` (a stage lacks it: the totals are null) or `no_pending_work` (0)."
    )
    stages_without_history: list[int] = Field(
        description="AI stages with pending work whose cost per item is unknown: no priced "
        f"call of the site or the account in the last {MONEY_WINDOW_DAYS} days."
    )
    window_days: int = Field(MONEY_WINDOW_DAYS, description="The history the costs come from.")
    stages: list[StageMoney] = Field(description="The AI stages with pending work, in order.")


def _stage(stage: int, count: int, rate: tuple[Decimal, RateSource] | None) -> StageMoney:
    if rate is None:
        return StageMoney(stage_number=stage, items=count)
    per_item, source = rate
    standard = per_item * count
    return StageMoney(
        stage_number=stage,
        items=count,
        basis=source,
        standard_usd_per_item=usd(per_item),
        standard_usd=usd(standard),
        economy_usd=usd(standard * PROVIDER_BATCH_PRICE_SHARE),
    )


def money_estimate(items: Mapping[int, int], rates: CostRates) -> MoneyEstimate:
    """`items`: pending items by stage; `rates`: per item at the standard price."""
    stages, total = [], Decimal(0)
    for stage, count in sorted(items.items()):
        if count <= 0 or STAGES[stage].type != "AI":
            continue
        rate = rate_for(stage, rates)
        stages.append(_stage(stage, count, rate))
        total += rate[0] * count if rate else 0
    missing = [s.stage_number for s in stages if s.basis is None]
    known = not missing
    return MoneyEstimate(
        standard_usd=usd(total) if known else None,
        economy_usd=usd(total * PROVIDER_BATCH_PRICE_SHARE) if known else None,
        basis=basis_of({s.basis for s in stages if s.basis}) if known else "no_history",
        stages_without_history=missing,
        stages=stages,
    )
