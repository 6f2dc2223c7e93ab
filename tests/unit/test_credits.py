import pytest

from contracts.admission import refuse_resume
from contracts.credits import (
    PendingWork,
    estimate,
    estimate_now,
    estimate_projected,
    required_for,
    runs_out_at_stage,
)
from contracts.stages import PRICES, STAGES
from contracts.values import DEFAULT_BATCH_SIZES
from tests.support.billing import stage_charge


def test_each_stage_charges_what_spec_says_whatever_the_batches():
    """Stage 1's 1 credit per 5 keywords included: the workers charge an item by its place in
    the stage, which the batches cut into slices without changing it."""
    for stage, price in PRICES.items():
        for picked in range(1, 42):
            for batch in (1, 3, 5, 20):
                charged = sum(
                    price.due(place)
                    for start in range(0, picked, batch)
                    for place in range(start, min(start + batch, picked))
                )
                assert charged == stage_charge(stage, picked), (stage, picked, batch)


@pytest.mark.parametrize(
    ("stage", "next_item_costs"), [(1, 1), (2, 2), (3, 0), (4, 5), (5, 2), (6, 2), (7, 0)]
)
def test_a_resume_needs_credits_for_the_next_item_of_the_stage(stage, next_item_costs):
    assert refuse_resume(stage=stage, balance=next_item_costs) is None
    if next_item_costs:
        reason, needed = refuse_resume(stage=stage, balance=next_item_costs - 1)
        assert needed == next_item_costs and f"costs {needed} credits" in reason


def test_spec_formula_for_pending_work():
    pending = PendingWork(keywords=100, clusters=3, tasks=2, content_without_images=1)
    # 100/5 + 3*2 + 2*5 + 1*2 + 1*8
    assert estimate_now(pending) == 20 + 6 + 10 + 2 + 8


def test_start_needs_a_fifth_more_than_the_estimate():
    assert required_for(50) == 60
    assert required_for(7) == 9  # 8.4 rounds up
    enough = estimate(PendingWork(keywords=250), balance=60)
    short = estimate(PendingWork(keywords=250), balance=59)
    assert (enough.estimated_credits, enough.required, enough.sufficient) == (50, 60, True)
    assert short.sufficient is False


def test_projection_counts_what_earlier_stages_will_create():
    pending = PendingWork(keywords=10)
    # 10 keywords -> 2 clusters -> 6 ideas/tasks -> 6 contents -> 24 images
    assert estimate_projected(pending) == 2 + 2 * 2 + 6 * 5 + 6 * 2 + 24 * 2
    assert estimate_projected(pending) > estimate_now(pending)


def test_a_projected_start_check_needs_a_fifth_more_than_the_projected_total():
    pending = PendingWork(keywords=10)  # 2 now, 96 projected
    spec = estimate(pending, balance=100)
    strict = estimate(pending, balance=100, start_check="projected")
    assert (spec.checked_credits, spec.required, spec.sufficient) == (2, 3, True)
    assert (strict.checked_credits, strict.required, strict.sufficient) == (96, 116, False)
    assert strict.estimated_credits == spec.estimated_credits == 2


@pytest.mark.parametrize(
    ("balance", "stage"),
    # 10 keywords, projected per stage: 2, 4, 0, 30, 12, 48 (running sums 2, 6, 6, 36, 48, 96)
    [(0, 1), (1, 1), (2, 2), (5, 2), (6, 4), (35, 4), (36, 5), (48, 6), (95, 6), (96, None)],
)
def test_the_estimate_names_the_stage_where_the_balance_runs_out(balance, stage):
    pending = PendingWork(keywords=10)
    assert runs_out_at_stage(pending, balance) == stage
    assert estimate(pending, balance).runs_out_at_stage == stage


def test_nothing_pending_never_runs_out():
    assert runs_out_at_stage(PendingWork(), 0) is None


@pytest.mark.parametrize(
    ("stage", "items", "credits"),
    [
        (1, 20, 4),
        (1, 3, 1),
        (1, 0, 0),
        (2, 1, 2),
        (3, 20, 0),
        (4, 1, 5),
        (5, 1, 2),
        (6, 4, 8),
        (7, 9, 0),
    ],
)
def test_stage_charges_follow_the_stage_rules(stage, items, credits):
    assert stage_charge(stage, items) == credits


def test_stage_table_matches_spec():
    assert [s.type for s in STAGES.values()] == ["AI", "AI", "Local", "AI", "AI", "AI", "Manual"]
    assert DEFAULT_BATCH_SIZES == {1: 20, 2: 1, 3: 20, 4: 1, 5: 1, 6: 1}
