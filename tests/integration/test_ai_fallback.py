"""A stage's second model over the real database's gate: while the first model's circuit is
open, a call that waited past the patience goes to the second, which answers; the records say
which model served each attempt. Without a second model the call keeps waiting."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from stage_workers.ai.factory import make_ai
from stage_workers.gate.calls import SCOPE, CallScope, GatedAI
from stage_workers.gate.lane import Rules
from stage_workers.gate.store import LaneStore
from stage_workers.settings import WorkerSettings
from tests.support.fake_openai import FakeOpenAI

FIRST, SECOND = "gpt-4o-mini", "gpt-4.1-mini"
RULES = Rules(failures_to_open=2, first_probe_seconds=30)  # no probe within the test


def gated(db: sa.Engine, fake: FakeOpenAI, second_models: dict[int, str]) -> GatedAI:
    """The gated AI as the worker makes it, with these second models."""
    settings = WorkerSettings(
        ai_provider="openai",
        openai_base_url=fake.base_url,
        openai_api_key=f"sk-{uuid.uuid4().hex}",  # lanes of this test alone
        openai_text_model=FIRST,
        openai_timeout_seconds=5,
        ai_retry_first_wait_seconds=0.05,
        ai_fallback_models=second_models,
        ai_fallback_after_seconds=2,
    )
    return make_ai(settings, LaneStore(db, RULES), asyncio.to_thread)


async def write_article(ai: GatedAI) -> tuple[object, CallScope]:
    scope = CallScope(run_id="run_fallback")
    token = SCOPE.set(scope)
    try:
        return await ai.write_article("Title", "brief", ["k"]), scope
    finally:
        SCOPE.reset(token)


async def test_an_open_circuit_sends_the_call_to_the_stage_s_second_model(db, fake):
    fake.outage(503, models={FIRST})
    article, scope = await asyncio.wait_for(write_article(gated(db, fake, {4: SECOND})), 30)

    assert article.title
    served = [(r.model_requested, r.outcome) for r in scope.records]
    assert served == [(FIRST, "unavailable"), (FIRST, "unavailable"), (SECOND, "answered")]
    assert scope.records[-1].usage.model.startswith(SECOND)  # a dated version of it
    models = [request["body"]["model"] for request in fake.requests]
    assert models == [FIRST, FIRST, SECOND]


async def test_without_a_second_model_the_call_waits_for_the_first(db, fake):
    fake.outage(503, models={FIRST})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(write_article(gated(db, fake, {})), 5)
    assert {request["body"]["model"] for request in fake.requests} == {FIRST}
