import pytest

from contracts.credits import PendingWork, estimate, estimate_now, estimate_projected, required_for
from contracts.stages import STAGES
from contracts.values import DEFAULT_BATCH_SIZES
from tests.support.billing import stage_charge


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
