"""The journal of AI calls (stage_workers.gate.journal) over the real database, with two gated AIs
standing for two worker processes and the test provider counting calls: a unit's call is made
once, whoever asks for it; an answer stored before its write is used by a batch dispatched again;
the call of a worker that died mid-call is made again once its claim runs out; and the records
of a stored call are written once, with the unit."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from contracts.db import tables as t
from stage_workers.ai.base import ArticleDraft, ClusterDraft, IdeaDraft, PromptDraft
from stage_workers.ai.factory import make_ai
from stage_workers.gate.calls import SCOPE, CallRecord, CallScope, GatedAI
from stage_workers.gate.journal import (
    Journal,
    UnitKey,
    UnitWritten,
    consume,
    decode_draft,
    discard,
    encode_draft,
)
from stage_workers.gate.lane import Rules
from stage_workers.gate.store import LaneStore
from stage_workers.settings import WorkerSettings
from tests.support.fake_openai import FakeOpenAI
from tests.support.wait import wait_until_async

RULES = Rules()


def worker(db: sa.Engine, fake: FakeOpenAI) -> GatedAI:
    """The gated AI one worker process holds (its own gate, whose name its calls carry), made
    as the worker makes it."""
    settings = WorkerSettings(
        ai_provider="openai",
        openai_base_url=fake.base_url,
        openai_api_key="sk-journal",
        openai_timeout_seconds=10,
    )
    return make_ai(settings, LaneStore(db, RULES), asyncio.to_thread)


async def write_article(ai: GatedAI, key: UnitKey) -> tuple[ArticleDraft, CallScope]:
    scope = CallScope(run_id=key.run_id, unit=key)
    token = SCOPE.set(scope)
    try:
        return await ai.write_article("Title", "brief", ["k"]), scope
    finally:
        SCOPE.reset(token)


def new_key() -> UnitKey:
    return UnitKey.of(f"run_{uuid.uuid4().hex[:12]}", 4, [42])


def refused_claims(journal: Journal) -> list[UnitKey]:
    """Watch a worker's journal: the units whose claim it was refused because another worker's
    call for them is in flight (the journal then waits for that call's answer)."""
    refused: list[UnitKey] = []
    claim = journal.claim

    def claim_and_note(key: UnitKey, function: str, holder: str) -> bool:
        held = claim(key, function, holder)
        if not held:
            refused.append(key)
        return held

    journal.claim = claim_and_note
    return refused


def consumed(db: sa.Engine, key: UnitKey) -> list[CallRecord]:
    with db.begin() as conn:
        return [CallRecord(**fields) for fields in consume(conn, key)]


def test_every_draft_survives_the_journal():
    drafts = {
        "cluster_keywords": [ClusterDraft("Espresso", "d", (0, 2))],
        "write_ideas": [IdeaDraft("An idea", "outline")],
        "write_article": ArticleDraft("Title", "# Title\n\nBody."),
        "write_image_prompts": [PromptDraft("featured", "a cup")],
        "render_image": b"\x89PNG\r\n\x1a\n\x00binary",
    }
    for function, draft in drafts.items():
        assert decode_draft(function, encode_draft(function, draft)) == draft


async def test_two_workers_on_one_unit_make_one_call_and_share_its_answer(db, fake):
    fake.latency_seconds = 1.5
    first, second = worker(db, fake), worker(db, fake)
    key = new_key()

    (one, scope_one), (two, scope_two) = await asyncio.gather(
        write_article(first, key), write_article(second, key)
    )

    assert one == two
    assert fake.stats()["answered"] == 1
    # The call's record left both scopes for the journal, and comes back once with the unit.
    assert scope_one.records == [] and scope_two.records == []
    records = consumed(db, key)
    assert [r.outcome for r in records] == ["answered"]
    assert records[0].usage is not None and records[0].usage.output_tokens > 0
    assert consumed(db, key) == []


async def test_an_answer_stored_before_its_write_is_used_by_the_batch_dispatched_again(db, fake):
    key = new_key()
    kept, _ = await write_article(worker(db, fake), key)
    # The first worker died here, between the answer and its write.
    again, scope = await write_article(worker(db, fake), key)

    assert again == kept
    assert fake.stats()["answered"] == 1
    assert scope.records == []
    assert len(consumed(db, key)) == 1


async def test_two_batches_of_one_process_on_one_unit_make_one_call(db, fake):
    """A command redelivered after a worker's restart and its copy dispatched again can both
    reach one process: they share the call as two processes would."""
    fake.latency_seconds = 1.5
    ai = worker(db, fake)
    key = new_key()
    (one, _), (two, _) = await asyncio.gather(write_article(ai, key), write_article(ai, key))
    assert one == two
    assert fake.stats()["answered"] == 1


async def test_the_call_of_a_worker_that_died_mid_call_is_made_again_after_its_claim(db, fake):
    key = new_key()
    dead = Journal(db, "a-worker-that-died", hold_seconds=2)
    assert dead.claim(key, "write_article", dead.holder())

    started = asyncio.get_running_loop().time()
    article, _ = await write_article(worker(db, fake), key)

    assert article.title
    assert asyncio.get_running_loop().time() - started >= 1.0  # it waited for the claim
    assert fake.stats()["answered"] == 1
    assert len(consumed(db, key)) == 1


async def test_a_call_that_ends_without_an_answer_lets_the_next_one_go_at_once(db, fake):
    fake.failures.extend([400])  # the item's own fault: no answer, the item fails
    ai = worker(db, fake)
    key = new_key()
    with pytest.raises(Exception, match="scripted 400"):
        await write_article(ai, key)
    with db.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).select_from(t.ai_answers).where(key.where())
        ).scalar_one()
    assert left == 0


async def test_a_copy_waiting_on_a_unit_another_batch_wrote_stops_without_a_call(db, fake):
    key = new_key()
    other = Journal(db, "another-worker", hold_seconds=30)
    assert other.claim(key, "write_article", other.holder())
    copy = worker(db, fake)
    refused = refused_claims(copy.journal)
    waiting = asyncio.create_task(write_article(copy, key))

    async def found_in_flight() -> bool:
        return key in refused

    # The copy found the call in flight (its claim refused) and waits for its answer.
    await wait_until_async(found_in_flight, timeout=10, every=0.05, what="the copy's claim")
    consumed(db, key)  # the other batch wrote the unit (its call ended, say, in a failure)

    with pytest.raises(UnitWritten):
        await waiting
    assert fake.stats()["calls"] == 0


async def test_a_unit_that_ends_unwritten_is_asked_for_anew_by_its_next_batch(db, fake):
    key = new_key()
    await write_article(worker(db, fake), key)
    with db.begin() as conn:
        assert [r["outcome"] for r in discard(conn, key)] == ["answered"]  # the run paused

    await write_article(worker(db, fake), key)
    assert fake.stats()["answered"] == 2
