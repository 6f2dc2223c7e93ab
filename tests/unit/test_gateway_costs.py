"""The pure parts of the cost views: sums and their figures, the day range, the zero-filled
days, the expected cost of an estimate; and the 400s of GET usage, which answer before any
database is asked."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.dialects import postgresql

from api_gateway import costs
from api_gateway.accounts import Caller
from api_gateway.app import API_PREFIX, create_app
from api_gateway.auth import current_caller
from api_gateway.costs import CallSums, CostRates, DayRange
from api_gateway.db import request_connection
from api_gateway.errors import ApiError
from api_gateway.money import money_estimate
from api_gateway.planning import pending_items, projected_items
from contracts.credits import PendingWork, estimate_now, estimate_projected
from contracts.stages import PRICES

TODAY = date(2026, 3, 10)


def test_sums_add_up_and_say_when_the_cost_is_incomplete():
    priced = CallSums(calls=2, rate_limited=1, cost_usd=Decimal("0.00012345"), waited_ms=1500)
    unpriced = CallSums(calls=1, fatal=1, unpriced_calls=1, models_requested=frozenset({"x"}))
    both = priced + unpriced
    assert (both.calls, both.rate_limited, both.fatal, both.waited_ms) == (3, 1, 1, 1500)
    assert both.models_requested == {"x"}
    line = costs.cost_line(priced, credits=3)
    assert line["cost_usd"] == 0.000123 and line["cost_complete"] is True
    assert (line["retries"], line["waited_seconds"]) == (1, 1.5)
    assert line["usd_per_credit"] == 0.000041
    incomplete = costs.cost_line(both, credits=3)
    assert incomplete["cost_complete"] is False and incomplete["usd_per_credit"] is None
    assert incomplete["retries"] == 2 and incomplete["retries_by_outcome"].fatal == 1
    assert costs.cost_line(priced, credits=0)["usd_per_credit"] is None


def test_the_day_range_defaults_to_the_last_30_days_and_refuses_bad_ones():
    default = costs.day_range(None, None, TODAY)
    assert (default.first, default.last, len(default.days())) == (date(2026, 2, 9), TODAY, 30)
    assert costs.day_range(None, date(2026, 1, 30), TODAY).first == date(2026, 1, 1)
    one = costs.day_range(TODAY, TODAY, TODAY)
    assert one.days() == [TODAY] and (one.end - one.start).days == 1
    assert len(costs.day_range(date(2025, 1, 1), date(2026, 1, 1), TODAY).days()) == 366
    with pytest.raises(ApiError) as backwards:
        costs.day_range(date(2026, 3, 2), date(2026, 3, 1), TODAY)
    assert backwards.value.body.field == "from" and backwards.value.status_code == 400
    with pytest.raises(ApiError) as too_long:
        costs.day_range(date(2025, 1, 1), date(2026, 1, 2), TODAY)
    assert "367 days" in too_long.value.body.detail


def test_every_day_of_the_range_has_a_row_and_the_total_adds_them():
    days = DayRange(date(2026, 3, 1), date(2026, 3, 3))
    report = costs.usage_report(
        7,
        None,
        days,
        {date(2026, 3, 1): CallSums(calls=4, cost_usd=Decimal("0.5"))},
        {date(2026, 3, 3): Decimal(9)},
        {date(2026, 3, 1): 1},
    )
    assert [row.day for row in report.days] == [date(2026, 3, d) for d in (1, 2, 3)]
    idle = report.days[1]
    assert (idle.calls, idle.cost_usd, idle.credits_charged, idle.runs_started) == (0, 0.0, 0, 0)
    assert idle.cost_complete is True
    assert report.days[2].credits_charged == 9
    total = report.total
    assert (total.calls, total.cost_usd, total.credits_charged, total.runs_started) == (
        4,
        0.5,
        9,
        1,
    )


def test_projected_items_follow_the_credit_projection():
    work = PendingWork(keywords=10)
    # 10 keywords -> 2 clusters -> 6 ideas and tasks -> 6 articles -> 24 images.
    assert projected_items(work) == {1: 10, 2: 2, 4: 6, 5: 6, 6: 24}
    assert estimate_projected(work) == 2 + 2 * 2 + 6 * 5 + 6 * 2 + 24 * 2


def test_expected_cost_uses_the_sites_history_then_the_accounts():
    items = {1: 10, 2: 2, 4: 6}
    site = {1: Decimal("0.001"), 2: Decimal("0.01"), 4: Decimal("0.1")}
    assert costs.expected_cost(items, CostRates(site, {})) == (0.63, "site")
    assert costs.expected_cost(items, CostRates({}, site)) == (0.63, "account")
    mixed = CostRates({1: Decimal("0.002")}, {2: Decimal("0.01"), 4: Decimal("0.1")})
    assert costs.expected_cost(items, mixed) == (0.64, "site_and_account")
    assert costs.expected_cost(items, CostRates({1: Decimal(1)}, {})) == (None, "no_history")
    assert costs.expected_cost({1: 0, 3: 5}, CostRates({}, {})) == (0.0, "no_pending_work")


def test_pending_items_are_what_the_credit_estimate_counts():
    work = PendingWork(keywords=12, clusters=3, ideas=7, tasks=2, content_without_images=1,
                       pending_images=5)  # fmt: skip
    items = pending_items(work)
    assert items == {1: 12, 2: 3, 4: 2, 5: 1, 6: 4 + 5}
    credits = sum(count * PRICES[n].credits / PRICES[n].per for n, count in items.items())
    assert round(credits, 6) == 12 / 5 + 3 * 2 + 2 * 5 + 1 * 2 + 9 * 2
    assert estimate_now(work) == math.ceil(credits)


def test_money_is_priced_at_the_standard_rate_and_halved_for_economy():
    items = {1: 10, 2: 2, 3: 7, 4: 0, 6: 8}
    rates = CostRates(
        {1: Decimal("0.001")}, {1: Decimal(5), 2: Decimal("0.01"), 6: Decimal("0.02")}
    )
    money = money_estimate(items, rates)
    # 10 x 0.001 (the site's) + 2 x 0.01 + 8 x 0.02 (the account's); stage 3 is free, 4 idle
    assert (money.standard_usd, money.economy_usd) == (0.19, 0.095)
    assert (money.basis, money.stages_without_history) == ("site_and_account", [])
    assert [(s.stage_number, s.items, s.basis) for s in money.stages] == [
        (1, 10, "site"),
        (2, 2, "account"),
        (6, 8, "account"),
    ]
    assert (money.stages[2].standard_usd, money.stages[2].economy_usd) == (0.16, 0.08)
    assert money.stages[2].standard_usd_per_item == 0.02


def test_money_of_a_stage_without_history_is_unknown_and_said_so():
    money = money_estimate({1: 10, 4: 3, 5: 3}, CostRates({1: Decimal("0.001")}, {}))
    assert (money.standard_usd, money.economy_usd, money.basis) == (None, None, "no_history")
    assert money.stages_without_history == [4, 5]
    assert (money.stages[0].standard_usd, money.stages[1].standard_usd) == (0.01, None)
    idle = money_estimate({1: 0, 3: 4}, CostRates({}, {}))
    assert (idle.standard_usd, idle.economy_usd, idle.basis) == (0.0, 0.0, "no_pending_work")
    assert idle.stages == []


def test_the_statements_compile_for_postgresql():
    dialect = postgresql.psycopg.dialect()
    run_cost = str(costs._RUN_COST.compile(dialect=dialect))
    assert "FULL OUTER JOIN" in run_cost and "array_agg(DISTINCT" in run_cost
    rates = str(costs._COST_RATES.compile(dialect=dialect))
    assert "sum(ai_calls.items)" in rates and "UNION ALL" in rates
    standard = str(costs._STANDARD_RATES.compile(dialect=dialect))
    assert "sum(ai_calls.cost_usd + coalesce(ai_calls.saved_usd" in standard


@pytest.fixture
def client():
    app = create_app()

    async def no_database():
        yield None

    app.dependency_overrides[current_caller] = lambda: Caller(account_id=1, user_id=1, token_id=1)
    app.dependency_overrides[request_connection] = no_database
    return TestClient(app)


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"from": "2026-03-05", "to": "2026-03-01"}, "from", "is after to"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from", "at most 366"),
        ({"from": "2026-02-30"}, "from", "date"),
        ({"to": "yesterday"}, "to", "date"),
        ({"site_id": "0"}, "site_id", "greater than or equal to 1"),
    ],
)
def test_usage_refuses_a_bad_range_with_400(client, params, field, says):
    answer = client.get(f"{API_PREFIX}/usage", params=params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["field"] == field and says in body["detail"] and body["code"] == "invalid"


def test_run_cost_refuses_a_malformed_run_id(client):
    answer = client.get(f"{API_PREFIX}/run_cost", params={"run_id": "../etc"})
    assert answer.status_code == 400 and answer.json()["field"] == "run_id"
    assert client.get(f"{API_PREFIX}/run_cost").status_code == 400
