"""GET run_cost, GET usage and the estimate's expected cost over HTTP against the gateway process,
on real PostgreSQL. The AI-call records, ledger rows and run read model are written here the way
the stage workers and the log-sink write them; the figures asserted are exact."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa

from api_gateway import accounts
from contracts.db import tables as t
from tests.support.gateway import (
    API,
    Tenant,
    insert_run,
    insert_stage,
)

NO_RETRIES = {"rate_limited": 0, "unavailable": 0, "refused": 0, "fatal": 0}
JUNE = {"from": "2025-06-01", "to": "2025-06-03"}


def call(stage: int, outcome: str = "answered", **values: object) -> dict:
    """An `ai_calls` row with every column given, so that rows insert together."""
    return {
        "stage": stage,
        "outcome": outcome,
        "at": datetime.now(UTC),
        "batch_id": f"batch-{stage}",
        "item_id": None,
        "items": 1,
        "provider": "openai",
        "function": "complete",
        "model_requested": "gpt-4o-mini",
        "model_answered": "gpt-4o-mini-2024-07-18" if outcome == "answered" else None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
        "images": 0,
        "image_size": None,
        "latency_ms": 100,
        "waited_ms": 0,
        "attempt": 1,
        "error": None if outcome == "answered" else outcome,
        "cost_usd": None,
        "price_version": "2026-01",
        "via": "call",
        "saved_usd": None,
        **values,
    }


def insert_calls(db, tenant: Tenant, run_id: str, *calls: dict, site_id: int | None = None):
    owner = {"account_id": tenant.account_id, "site_id": site_id or tenant.site_id}
    with db.begin() as conn:
        conn.execute(sa.insert(t.ai_calls), [{**owner, "run_id": run_id, **c} for c in calls])


def insert_charge(db, tenant: Tenant, amount: int, at: datetime, site_id: int | None = None):
    with db.begin() as conn:
        conn.execute(
            sa.insert(t.credit_ledger).values(
                account_id=tenant.account_id,
                site_id=site_id or tenant.site_id,
                amount=amount,
                balance_after=1000,
                reason="test",
                idempotency_key=f"test-{uuid.uuid4().hex}",
                created_at=at,
            )
        )


def second_site(db, tenant: Tenant) -> int:
    with db.begin() as conn:
        return accounts.create_site(conn, tenant.account_id, f"second {uuid.uuid4().hex[:6]}")


def pick(answer: dict, *names: str) -> tuple:
    return tuple(answer[name] for name in names)


def usage(tenant: Tenant, **params: object) -> httpx.Response:
    return tenant.client.get(f"{API}/usage", params=params)


# --- run_cost -------------------------------------------------------------------------------


def test_run_cost_sums_each_stage_and_flags_unknown_cost(tenant, db):
    run_id = insert_run(db, tenant, status="completed", stage=7, credits_used=11)
    for stage, credits in ((1, 2), (4, 5), (5, 2), (6, 2)):
        insert_stage(db, run_id, stage, status="completed", credits_used=credits)
    insert_calls(
        db,
        tenant,
        run_id,
        call(1, items=10, input_tokens=1000, output_tokens=200, cached_tokens=100,
             cost_usd=Decimal("0.00012"), waited_ms=1500),
        call(1, "rate_limited", items=10, waited_ms=500),
        call(4, item_id=41, input_tokens=2000, output_tokens=3000, cost_usd=Decimal("0.0021")),
        call(4, "unavailable", item_id=41),
        call(4, item_id=42, input_tokens=2000, output_tokens=2500, cost_usd=Decimal("0.0018")),
        call(6, item_id=61, function="image", model_requested="gpt-image-1-mini",
             model_answered="gpt-image-1-mini", images=1, image_size="1024x1024"),
        call(6, "refused", item_id=62, function="image", model_requested="gpt-image-1-mini"),
        call(6, "fatal", item_id=63, function="image", model_requested="gpt-image-1-mini"),
    )  # fmt: skip

    answer = tenant.get("/run_cost", run_id=run_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert pick(body, "run_id", "site_id", "status") == (run_id, tenant.site_id, "completed")
    stages = body["stages"]
    assert [s["stage_number"] for s in stages] == [1, 2, 3, 4, 5, 6, 7]
    assert stages[0] == {
        "stage_number": 1,
        "stage_name": "Keywords → Clusters",
        "stage_type": "AI",
        "calls": 1,
        "retries": 1,
        "retries_by_outcome": {**NO_RETRIES, "rate_limited": 1},
        "input_tokens": 1000,
        "output_tokens": 200,
        "cached_tokens": 100,
        "images": 0,
        "cost_usd": 0.00012,
        "unpriced_calls": 0,
        "cost_complete": True,
        "waited_seconds": 2.0,
        "provider_batch_calls": 0,
        "saved_usd": 0.0,
        "credits": 2,
        "usd_per_credit": 0.00006,
        "models_requested": ["gpt-4o-mini"],
        "models_answered": ["gpt-4o-mini-2024-07-18"],
    }
    writing = stages[3]
    assert pick(writing, "calls", "retries", "input_tokens", "output_tokens") == (2, 1, 4000, 5500)
    assert writing["retries_by_outcome"] == {**NO_RETRIES, "unavailable": 1}
    assert pick(writing, "cost_usd", "credits", "usd_per_credit") == (0.0039, 5, 0.00078)
    prompts = stages[4]  # credits in the read model, no AI call recorded
    assert pick(prompts, "calls", "credits", "cost_usd", "cost_complete") == (0, 2, 0.0, True)
    assert prompts["models_requested"] == []
    images = stages[5]
    assert pick(images, "calls", "images", "retries") == (1, 1, 2)
    assert images["retries_by_outcome"] == {**NO_RETRIES, "refused": 1, "fatal": 1}
    assert pick(images, "unpriced_calls", "cost_complete", "cost_usd") == (1, False, 0.0)
    assert images["usd_per_credit"] is None
    assert images["models_answered"] == ["gpt-image-1-mini"]
    for idle in (stages[1], stages[2], stages[6]):
        assert pick(idle, "calls", "retries", "credits", "waited_seconds") == (0, 0, 0, 0.0)
    total = body["total"]
    assert pick(total, "calls", "retries", "images", "waited_seconds") == (4, 4, 1, 2.0)
    assert total["retries_by_outcome"] == dict.fromkeys(NO_RETRIES, 1)
    assert pick(total, "input_tokens", "output_tokens", "cached_tokens") == (5000, 5700, 100)
    assert pick(total, "cost_usd", "unpriced_calls", "cost_complete") == (0.00402, 1, False)
    assert pick(total, "credits", "usd_per_credit") == (11, None)
    assert total["models_requested"] == ["gpt-4o-mini", "gpt-image-1-mini"]
    assert total["models_answered"] == ["gpt-4o-mini-2024-07-18", "gpt-image-1-mini"]


def test_run_cost_is_404_for_another_account_or_an_unknown_run_and_400_for_a_bad_id(
    tenant, other, db
):
    run_id = insert_run(db, tenant, status="completed", stage=7)
    assert tenant.get("/run_cost", run_id=run_id).status_code == 200
    hidden = other.get("/run_cost", run_id=run_id)
    assert hidden.status_code == 404 and hidden.json()["detail"] == f"run {run_id} not found"
    assert tenant.get("/run_cost", run_id="run_20260101_000000_manual_abcdef").status_code == 404
    malformed = tenant.get("/run_cost", run_id="../../etc/passwd")
    assert malformed.status_code == 400 and malformed.json()["field"] == "run_id"
    assert tenant.get("/run_cost").status_code == 400


def test_run_cost_of_a_priced_run_gives_the_money_per_credit(tenant, db):
    run_id = insert_run(db, tenant, status="running", stage=4, credits_used=4)
    insert_stage(db, run_id, 2, status="completed", credits_used=4)
    insert_calls(
        db,
        tenant,
        run_id,
        call(2, item_id=7, cost_usd=Decimal("0.003")),
        call(2, item_id=8, cost_usd=Decimal("0.001")),
    )
    total = tenant.get("/run_cost", run_id=run_id).json()["total"]
    assert pick(total, "cost_usd", "cost_complete", "credits") == (0.004, True, 4)
    assert total["usd_per_credit"] == 0.001


def test_a_run_without_ai_calls_costs_nothing_known(tenant, db):
    run_id = insert_run(db, tenant, status="running", stage=1)
    body = tenant.get("/run_cost", run_id=run_id).json()
    assert len(body["stages"]) == 7
    total = body["total"]
    assert pick(total, "calls", "cost_usd", "cost_complete") == (0, 0.0, True)
    assert pick(total, "credits", "usd_per_credit", "models_answered") == (0, None, [])


def _economy_calls(db, tenant: Tenant, run_id: str, at: datetime | None = None) -> None:
    """Stage 4 of a run: two articles through the provider's batch (each $0.005, saving as
    much), one call on its own, a batch request the provider could not answer."""
    when = {"at": at} if at else {}
    batch = {"via": "provider_batch", **when}
    insert_calls(
        db,
        tenant,
        run_id,
        call(4, item_id=1, cost_usd=Decimal("0.005"), saved_usd=Decimal("0.005"), **batch),
        call(4, item_id=2, cost_usd=Decimal("0.005"), saved_usd=Decimal("0.005"), **batch),
        call(4, item_id=3, cost_usd=Decimal("0.01"), **when),
        call(4, "refused", item_id=4, **batch),
    )


def test_run_cost_says_what_the_providers_batch_saved(tenant, db):
    run_id = insert_run(db, tenant, status="completed", stage=7, credits_used=15)
    insert_stage(db, run_id, 4, status="completed", credits_used=15)
    _economy_calls(db, tenant, run_id)
    body = tenant.get("/run_cost", run_id=run_id).json()
    writing, total = body["stages"][3], body["total"]
    assert pick(writing, "calls", "provider_batch_calls", "cost_usd", "saved_usd") == (
        3,
        2,
        0.02,
        0.01,
    )
    assert pick(total, "calls", "provider_batch_calls", "saved_usd") == (3, 2, 0.01)
    assert pick(body["stages"][0], "provider_batch_calls", "saved_usd") == (0, 0.0)


def test_usage_says_what_the_providers_batch_saved(tenant, db):
    run_id = insert_run(db, tenant, status="completed", stage=7)
    _economy_calls(db, tenant, run_id, at=datetime(2025, 6, 2, 9, tzinfo=UTC))
    body = usage(tenant, site_id=tenant.site_id, **JUNE).json()
    first, second, _ = body["days"]
    assert pick(first, "provider_batch_calls", "saved_usd") == (0, 0.0)
    assert pick(second, "calls", "provider_batch_calls", "saved_usd") == (3, 2, 0.01)
    assert pick(body["total"], "provider_batch_calls", "saved_usd", "cost_usd") == (2, 0.01, 0.02)


# --- usage ----------------------------------------------------------------------------------


def _june(db, tenant: Tenant) -> int:
    """Calls, charges and runs around 1-3 June 2025 on the tenant's site, and on 2 June on a
    second site of the same account; the second site's id."""
    plus_two = timezone(timedelta(hours=2))
    insert_calls(
        db,
        tenant,
        "run_x",
        call(4, at=datetime(2025, 6, 1, 10, tzinfo=UTC), input_tokens=100, output_tokens=50,
             cost_usd=Decimal("0.001"), waited_ms=250),
        # 01:00 at +02:00 is 23:00 UTC the day before: it counts on 1 June.
        call(4, at=datetime(2025, 6, 2, 1, tzinfo=plus_two), input_tokens=10, output_tokens=5,
             cost_usd=Decimal("0.002")),
        call(4, "rate_limited", at=datetime(2025, 6, 1, 23, 59, 59, tzinfo=UTC)),
        call(6, at=datetime(2025, 6, 3, tzinfo=UTC), images=1),  # no price
        call(4, at=datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC), cost_usd=Decimal(1)),
        call(4, at=datetime(2025, 6, 4, tzinfo=UTC), cost_usd=Decimal(1)),
    )  # fmt: skip
    insert_charge(db, tenant, -5, datetime(2025, 6, 1, 12, tzinfo=UTC))
    insert_charge(db, tenant, -3, datetime(2025, 6, 3, 9, tzinfo=UTC))
    insert_charge(db, tenant, 100, datetime(2025, 6, 3, 10, tzinfo=UTC))  # a top-up
    insert_run(db, tenant, status="completed", started_at=datetime(2025, 6, 1, 8, tzinfo=UTC))
    insert_run(db, tenant, status="rejected", started_at=datetime(2025, 6, 3, 7, tzinfo=UTC))
    insert_run(db, tenant, status="failed", started_at=datetime(2025, 6, 3, 8, tzinfo=UTC))
    second = second_site(db, tenant)
    noon = datetime(2025, 6, 2, 12, tzinfo=UTC)
    insert_calls(db, tenant, "run_y", call(2, at=noon, cost_usd=Decimal("0.5")), site_id=second)
    insert_charge(db, tenant, -7, noon, site_id=second)
    return second


def test_usage_of_a_site_has_a_row_per_utc_day_with_zeros(tenant, db):
    _june(db, tenant)
    answer = usage(tenant, site_id=tenant.site_id, **JUNE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert pick(body, "account_id", "site_id") == (tenant.account_id, tenant.site_id)
    assert pick(body, "from_day", "to_day") == ("2025-06-01", "2025-06-03")
    first, idle, third = body["days"]
    assert [d["day"] for d in body["days"]] == ["2025-06-01", "2025-06-02", "2025-06-03"]
    assert pick(first, "calls", "retries", "input_tokens", "output_tokens") == (2, 1, 110, 55)
    assert first["retries_by_outcome"] == {**NO_RETRIES, "rate_limited": 1}
    assert pick(first, "cost_usd", "cost_complete", "waited_seconds") == (0.003, True, 0.25)
    assert pick(first, "credits_charged", "runs_started") == (5, 1)
    assert idle == {
        "day": "2025-06-02",
        "calls": 0,
        "retries": 0,
        "retries_by_outcome": NO_RETRIES,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
        "images": 0,
        "cost_usd": 0.0,
        "unpriced_calls": 0,
        "cost_complete": True,
        "waited_seconds": 0.0,
        "provider_batch_calls": 0,
        "saved_usd": 0.0,
        "credits_charged": 0,
        "runs_started": 0,
    }
    assert pick(third, "calls", "images", "cost_usd") == (1, 1, 0.0)
    assert pick(third, "unpriced_calls", "cost_complete") == (1, False)
    assert pick(third, "credits_charged", "runs_started") == (3, 1)
    total = body["total"]
    assert pick(total, "calls", "retries", "cost_usd", "cost_complete") == (3, 1, 0.003, False)
    assert pick(total, "unpriced_calls", "credits_charged", "runs_started") == (1, 8, 2)


def test_usage_of_the_account_counts_every_site(tenant, db):
    _june(db, tenant)
    body = usage(tenant, **JUNE).json()
    assert body["site_id"] is None
    second_day = body["days"][1]
    assert pick(second_day, "calls", "cost_usd", "credits_charged") == (1, 0.5, 7)
    total = body["total"]
    assert pick(total, "calls", "cost_usd", "credits_charged", "runs_started") == (4, 0.503, 15, 2)


def test_usage_defaults_to_the_last_30_days(tenant):
    body = usage(tenant).json()
    today = datetime.now(UTC).date()
    assert len(body["days"]) == 30 and body["days"][-1]["day"] in {
        today.isoformat(),
        (today - timedelta(days=1)).isoformat(),  # the clock passed midnight meanwhile
    }


def test_another_account_cannot_read_the_sites_usage(tenant, other, db):
    _june(db, tenant)
    assert usage(other, site_id=tenant.site_id, **JUNE).status_code == 404
    assert usage(other, site_id=tenant.site_id, **JUNE).json()["detail"] == (
        f"site {tenant.site_id} not found"
    )
    assert usage(other, **JUNE).json()["total"]["calls"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-06-03", "to": "2025-06-01"}, "from"),
        ({"from": "2024-01-01", "to": "2025-01-01"}, "from"),  # 367 days
        ({"from": "2025-13-01"}, "from"),
        ({"to": "soon"}, "to"),
        ({"site_id": -1}, "site_id"),
    ],
)
def test_usage_refuses_a_bad_range(tenant, params, field):
    answer = usage(tenant, **params)
    assert answer.status_code == 400
    assert answer.json()["field"] == field and answer.json()["code"] == "invalid"


def test_usage_takes_366_days(tenant):
    body = usage(tenant, **{"from": "2024-01-01", "to": "2024-12-31"}).json()
    assert len(body["days"]) == 366  # 2024 is a leap year


# --- estimate -------------------------------------------------------------------------------


def _import_keywords(tenant: Tenant, count: int, site_id: int | None = None) -> None:
    rows = [{"keyword": f"kw {i}"} for i in range(count)]
    imported = tenant.client.post(
        f"{API}/keywords/import", params={"site_id": site_id or tenant.site_id}, json=rows
    )
    assert imported.status_code == 200, imported.text


def _finished_run_with_costs(db, tenant: Tenant) -> None:
    """One finished run of the site, priced per item: stage 1 $0.0001 a keyword, stage 2
    $0.002 a cluster, stage 4 $0.012 an article (two calls), stage 5 $0.001, stage 6 $0.011 an
    image. Unpriced and unanswered calls do not count; a run still going does not either."""
    yesterday = datetime.now(UTC) - timedelta(days=1)
    run_id = insert_run(db, tenant, status="completed", stage=7, ended_at=yesterday)
    image = {"function": "image", "model_requested": "gpt-image-1-mini"}
    insert_calls(
        db,
        tenant,
        run_id,
        call(1, items=20, cost_usd=Decimal("0.002")),
        call(1, "rate_limited", items=20),
        call(2, item_id=1, cost_usd=Decimal("0.003")),
        call(2, item_id=2, cost_usd=Decimal("0.001")),
        call(4, item_id=1, cost_usd=Decimal("0.010")),
        call(4, item_id=1, function="revise", cost_usd=Decimal("0.002")),
        call(5, item_id=1, cost_usd=Decimal("0.001")),
        *(call(6, item_id=n, cost_usd=Decimal("0.011"), **image) for n in (1, 2, 3, 4)),
        call(6, item_id=5, **image),  # no price: neither its cost nor its item counts
    )
    running = insert_run(db, tenant, status="running", stage=1)
    insert_calls(db, tenant, running, call(1, items=1, cost_usd=Decimal(100)))


def test_the_estimate_prices_the_projected_work_from_history(tenant, db):
    _import_keywords(tenant, 10)  # projected: 10 keywords, 2 clusters, 6 articles, 24 images
    blind = tenant.get("/estimate", site_id=tenant.site_id).json()
    assert (blind["expected_cost_usd"], blind["cost_basis"]) == (None, "no_history")

    _finished_run_with_costs(db, tenant)
    # 10 x 0.0001 + 2 x 0.002 + 6 x 0.012 + 6 x 0.001 + 24 x 0.011
    site = tenant.get("/estimate", site_id=tenant.site_id).json()
    assert (site["expected_cost_usd"], site["cost_basis"]) == (0.347, "site")

    new_site = second_site(db, tenant)
    _import_keywords(tenant, 10, site_id=new_site)
    account = tenant.get("/estimate", site_id=new_site).json()
    assert (account["expected_cost_usd"], account["cost_basis"]) == (0.347, "account")

    for _ in range(10):  # newer finished runs without AI calls push the priced one out
        insert_run(db, tenant, status="completed", stage=7, ended_at=datetime.now(UTC))
    forgotten = tenant.get("/estimate", site_id=tenant.site_id).json()
    assert (forgotten["expected_cost_usd"], forgotten["cost_basis"]) == (None, "no_history")


def test_the_estimate_of_no_work_costs_nothing(tenant):
    body = tenant.get("/estimate", site_id=tenant.site_id).json()
    assert (body["expected_cost_usd"], body["cost_basis"]) == (0.0, "no_pending_work")


def _new_clusters(db, tenant: Tenant, count: int) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.insert(t.clusters),
            [
                {"site_id": tenant.site_id, "name": f"c{n}", "source_key": uuid.uuid4().hex}
                for n in range(count)
            ],
        )


def test_the_estimate_prices_the_pending_work_at_the_standard_price_and_in_economy(
    tenant, other, db
):
    _import_keywords(tenant, 10)
    _new_clusters(db, tenant, 2)
    blind = tenant.get("/estimate", site_id=tenant.site_id).json()["money"]
    assert (blind["standard_usd"], blind["economy_usd"], blind["basis"]) == (
        None,
        None,
        "no_history",
    )
    assert blind["stages_without_history"] == [1, 2] and blind["window_days"] == 30

    run_id = insert_run(db, tenant, status="completed", stage=7)
    long_ago = datetime.now(UTC) - timedelta(days=31)
    insert_calls(
        db,
        tenant,
        run_id,
        # Through a provider batch: $0.001 charged and as much saved, $0.0001 a keyword.
        call(1, items=20, via="provider_batch", cost_usd=Decimal("0.001"),
             saved_usd=Decimal("0.001")),
        call(1, "rate_limited", items=20, via="provider_batch"),
        call(2, item_id=9, at=long_ago, cost_usd=Decimal(100)),  # older than the window
    )  # fmt: skip
    insert_calls(db, other, "run_other", call(2, item_id=9, cost_usd=Decimal(100)))
    partial = tenant.get("/estimate", site_id=tenant.site_id).json()["money"]
    assert (partial["standard_usd"], partial["stages_without_history"]) == (None, [2])
    assert [(s["stage_number"], s["items"], s["standard_usd"]) for s in partial["stages"]] == [
        (1, 10, 0.001),
        (2, 2, None),
    ]

    insert_calls(
        db,
        tenant,
        "run_second_site",
        call(2, item_id=1, cost_usd=Decimal("0.003")),
        call(2, item_id=2, cost_usd=Decimal("0.001")),
        call(2, item_id=3),  # no price: neither its cost nor its item counts
        site_id=second_site(db, tenant),
    )
    # 10 keywords x $0.0001 (the site's) + 2 clusters x $0.002 (the account's)
    money = tenant.get("/estimate", site_id=tenant.site_id).json()["money"]
    assert (money["standard_usd"], money["economy_usd"]) == (0.005, 0.0025)
    assert (money["basis"], money["stages_without_history"]) == ("site_and_account", [])
    assert [(s["basis"], s["standard_usd_per_item"]) for s in money["stages"]] == [
        ("site", 0.0001),
        ("account", 0.002),
    ]
