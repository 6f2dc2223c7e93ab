"""Figure 9: the same keywords through a standard run and an economy run (RunConfig
ai_mode="economy": each AI stage's items go to the provider's Batch API as one provider batch),
against the test provider of tests/support/fake_openai.py, which answers both ways with the same
content. Each run has a fresh site, a fresh provider and its own deployment (orchestrator and one
stage-worker process), so neither run finds the other's prompts in the provider's cache.

Per run, from the AI-call records (`ai_calls`): the calls answered and their route (alone or in a
provider batch), tokens in, out and cached, images, the money (`cost_usd`, `saved_usd`, and their
sum: what the same calls cost at the standard price); from the provider: the calls it received
alone, the batch requests it answered and the batches created; from the database: credits charged
and outputs made; and the run's time, from just before its StartRun left to the Kafka timestamp of
the event that ended it (informative: an economy run waits for its batches by polling).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from contracts.db import tables as t
from contracts.values import RunConfig
from tests.bench.harness import Stack, deployment
from tests.support.fake_openai import FakeOpenAI
from tests.support.pipeline import charged, counts

CONCURRENCY = 8
MODES = {
    "standard": RunConfig(stage_concurrency=CONCURRENCY),
    "economy": RunConfig(ai_mode="economy", stage_concurrency=CONCURRENCY),
}
# The test provider limits nothing, nor does the gate here: the runs differ by route alone.
UNBOUNDED_GATE = {"AI_REQUESTS_PER_MINUTE": str(10**6), "AI_TOKENS_PER_MINUTE": str(10**9)}
SHORT_WAITS = {"ECONOMY_POLL_FIRST_SECONDS": "0.2", "ECONOMY_POLL_LONGEST_SECONDS": "1"}


@dataclass(frozen=True)
class Recorded:
    """Sums of a run's AI-call records."""

    answered: int = 0
    alone: int = 0
    in_batches: int = 0
    not_answered: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    images: int = 0
    unpriced: int = 0  # answered calls of a model the price table does not know
    cost_usd: Decimal = Decimal(0)
    saved_usd: Decimal = Decimal(0)

    @property
    def standard_price(self) -> Decimal:
        return self.cost_usd + self.saved_usd


@dataclass(frozen=True)
class RunFigures:
    mode: str
    seconds: float
    recorded: Recorded
    provider: dict  # the test provider's stats()
    credits: int
    articles: int
    images_made: int


def recorded(engine: sa.Engine, run_id: str) -> Recorded:
    c = t.ai_calls.c
    answered = c.outcome == "answered"

    def count(*where: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.count().filter(*where)

    def total(column: sa.ColumnElement) -> sa.ColumnElement:
        return sa.func.coalesce(sa.func.sum(column), 0)

    query = sa.select(
        count(answered),
        count(answered, c.via == "call"),
        count(answered, c.via == "provider_batch"),
        count(c.outcome != "answered"),
        total(c.input_tokens),
        total(c.output_tokens),
        total(c.cached_tokens),
        total(c.images),
        count(answered, c.cost_usd.is_(None)),
        total(c.cost_usd),
        total(c.saved_usd),
    ).where(c.run_id == run_id)
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return Recorded(*row)


async def one_run(stack: Stack, mode: str, keywords: int) -> RunFigures:
    fake = FakeOpenAI().start()
    try:
        env = fake.worker_env(**UNBOUNDED_GATE, **SHORT_WAITS)
        async with deployment(stack, "orchestrator", "workers", env=env) as deployed:
            runs = await deployed.run_new_sites(1, keywords, MODES[mode])
        stats = fake.stats()
    finally:
        fake.stop()
    (site,), (run_id,), (seconds,) = runs.sites, runs.run_ids, runs.seconds
    made = counts(stack.engine, site.site_id)
    return RunFigures(
        mode=mode,
        seconds=seconds,
        recorded=recorded(stack.engine, run_id),
        provider=stats,
        credits=charged(stack.engine, site.account_id),
        articles=made["content"],
        images_made=made["images_generated"],
    )


async def standard_and_economy(stack: Stack, keywords: int) -> list[RunFigures]:
    return [await one_run(stack, mode, keywords) for mode in MODES]


def money(value: Decimal) -> str:
    return f"${value:.4f}"


def rows(figures: list[RunFigures]) -> list[tuple[str, list[str]]]:
    rec = [f.recorded for f in figures]
    return [
        ("AI calls answered (records)", [str(r.answered) for r in rec]),
        ("… made alone / in provider batches", [f"{r.alone} / {r.in_batches}" for r in rec]),
        ("calls not answered (429, 5xx, refused)", [str(r.not_answered) for r in rec]),
        (
            "provider: calls alone / batch requests / batches",
            [
                f"{f.provider['calls']} / {f.provider['batch_answers']} / {f.provider['batches']}"
                for f in figures
            ],
        ),
        ("input tokens (of them cached)", [f"{r.input_tokens} ({r.cached_tokens})" for r in rec]),
        ("output tokens", [str(r.output_tokens) for r in rec]),
        ("images", [str(r.images) for r in rec]),
        ("cost_usd", [money(r.cost_usd) for r in rec]),
        ("saved_usd", [money(r.saved_usd) for r in rec]),
        ("at the standard price (cost + saved)", [money(r.standard_price) for r in rec]),
        ("credits charged", [str(f.credits) for f in figures]),
        ("articles / images made", [f"{f.articles} / {f.images_made}" for f in figures]),
        ("run time, s (informative)", [f"{f.seconds:.1f}" for f in figures]),
    ]


def ratio(part: Decimal, whole: Decimal) -> str:
    return f"{part / whole:.3f}" if whole else "n/a (nothing priced)"


def table(figures: list[RunFigures], keywords: int) -> list[str]:
    by_mode = {f.mode: f.recorded for f in figures}
    standard, economy = by_mode["standard"], by_mode["economy"]
    lines = [
        f"One site × {keywords} keywords per run, stage_concurrency {CONCURRENCY}, one worker "
        "process, a fresh test provider per run (no rate limits, answers at once, batches "
        "complete when first looked at); the gate's budgets unbounded; economy polls its "
        "batches after 0.2 s, then at most every 1 s.",
        "",
        "| | " + " | ".join(f.mode for f in figures) + " |",
        "|---|" + "---|" * len(figures),
    ]
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in rows(figures)]
    lines += [
        "",
        f"- money economy ÷ standard: {money(economy.cost_usd)} ÷ {money(standard.cost_usd)} = "
        f"{ratio(economy.cost_usd, standard.cost_usd)}; at the standard price the economy "
        f"run's calls would have cost {ratio(economy.standard_price, standard.cost_usd)} × "
        "the standard run's",
    ]
    if unpriced := {f.mode: f.recorded.unpriced for f in figures if f.recorded.unpriced}:
        lines.append(f"- calls of a model without a price (cost NULL, counted as $0): {unpriced}")
    return lines
