import csv
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql

from contracts.admission import refuse_resume
from contracts.credits import (
    PendingWork,
    estimate,
    estimate_now,
    estimate_projected,
    projected_clusters,
    required_for,
    runs_out_at_stage,
)
from contracts.db import pending
from contracts.stages import PRICES, STAGES
from contracts.values import DEFAULT_BATCH_SIZES
from stage_workers.ai import clustering
from tests.support.billing import stage_charge

SAMPLE = Path(__file__).parents[2] / "deploy" / "sample-data" / "keywords.csv"


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


def test_the_projection_is_a_range_of_clusters_per_batch_to_clusters_per_keyword():
    work = PendingWork(keywords=10)  # one batch of 20: 1 to 10 clusters, 2 expected
    assert projected_clusters(work) == (1, 2, 10)
    f = estimate(work, balance=0)
    # Stage 1 costs 2; each cluster 2 + 3 articles x (5 + 2 + 4 images x 2) = 47.
    low, expected, high = f.projected_credits_min, f.projected_credits, f.projected_credits_max
    assert (low, expected, high) == (2 + 47, 2 + 2 * 47, 2 + 10 * 47)
    assert f.projection == "range"


@pytest.mark.parametrize(
    "work",
    [PendingWork(clusters=2, tasks=1), PendingWork(keywords=10, keywords_per_batch=1)],
    ids=["no keywords", "batches of one keyword"],
)
def test_the_projection_is_exact_when_stage_1_has_no_choice(work):
    f = estimate(work, balance=0)
    assert f.projection == "exact"
    assert f.projected_credits_min == f.projected_credits == f.projected_credits_max


def test_the_sites_own_clusters_per_keyword_set_the_expected_figure():
    """The issue's run: 120 keywords projected 1,152 credits (24 clusters, 1 per 5 keywords);
    the run made 25 clusters and used 1,199. With that run as the site's history, 120 more
    keywords are expected to make 25 clusters."""
    assert estimate_projected(PendingWork(keywords=120)) == 1152
    known = PendingWork(keywords=120, clustered_keywords=120, clusters_made=25)
    assert projected_clusters(known).expected == 25
    assert estimate_projected(known) == 24 + 25 * 47 == 1199


def test_the_expected_clusters_stay_inside_the_range():
    lumpy = PendingWork(keywords=120, clustered_keywords=1000, clusters_made=1)
    assert projected_clusters(lumpy) == (6, 6, 120)  # at least one per batch of 20
    odd = PendingWork(keywords=7, clustered_keywords=3, clusters_made=1)
    assert projected_clusters(odd).expected == 3  # 7/3 rounds up, in whole clusters


def test_a_projected_start_check_covers_the_expected_figure_not_the_top_of_the_range():
    figures = estimate(PendingWork(keywords=10), balance=1000, start_check="projected")
    assert figures.checked_credits == figures.projected_credits == 96
    assert figures.projected_credits_max > figures.checked_credits
    assert figures.required == 116 and figures.sufficient


def _sample_keywords() -> list[str]:
    with SAMPLE.open(encoding="utf-8") as f:
        return [row["keyword"] for row in csv.DictReader(f)]


def _offline_stage_1(keywords: list[str], batch: int) -> int:
    """Clusters the offline provider makes of `keywords` in stage 1, which cuts them into
    batches of `batch` in pick order and clusters each batch in one call."""
    return sum(
        len(clustering.cluster(keywords[start : start + batch]))
        for start in range(0, len(keywords), batch)
    )


def _run_credits(keywords: int, clusters: int) -> int:
    """What a whole run charges: 3 ideas per cluster, an article per idea, 4 images each (as
    the offline provider makes them; the end-to-end run checks these counts)."""
    articles = 3 * clusters
    charges = [(1, keywords), (2, clusters), (4, articles), (5, articles), (6, 4 * articles)]
    return sum(stage_charge(stage, items) for stage, items in charges)


@pytest.mark.parametrize("batch", [5, 10, DEFAULT_BATCH_SIZES[1], 40, 120])
def test_the_projection_brackets_what_the_offline_stage_1_makes_of_the_sample(batch):
    keywords = _sample_keywords()
    made = _offline_stage_1(keywords, batch)
    used = _run_credits(len(keywords), made)
    before = estimate(PendingWork(keywords=len(keywords), keywords_per_batch=batch), balance=0)
    assert before.projection == "range"
    assert before.projected_credits_min <= used <= before.projected_credits_max
    # A site that ran these keywords before expects what that run made.
    again = PendingWork(
        keywords=len(keywords),
        keywords_per_batch=batch,
        clustered_keywords=len(keywords),
        clusters_made=made,
    )
    assert estimate(again, balance=0).projected_credits == used


def test_the_default_batches_of_the_sample_make_the_issues_25_clusters():
    assert _offline_stage_1(_sample_keywords(), DEFAULT_BATCH_SIZES[1]) == 25


def test_the_history_statement_compiles_for_postgresql():
    sql = str(pending.STAGE_1_HISTORY.compile(dialect=postgresql.psycopg.dialect()))
    assert "count(DISTINCT keywords.cluster_id)" in sql
    assert "keywords.cluster_id IS NOT NULL" in sql and "stage_1_batch_size" in sql
