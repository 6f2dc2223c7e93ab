"""The OpenAI provider through the real SDK against a local fake server: structured answers,
images, and which failures are retried (429, 500), which poison the item (400) and which stop
the batch (401, 403, 404: no item can get past a refused key, account or model)."""

from __future__ import annotations

import json

import pytest

from stage_workers.ai.base import FatalAIError
from stage_workers.ai.factory import lanes
from stage_workers.ai.openai_provider import OpenAIProvider
from stage_workers.ai.prices import DEFAULT_PRICES
from stage_workers.ai.retry import PoisonedItem
from stage_workers.gate.calls import SCOPE, CallRules, CallScope, GatedAI
from stage_workers.gate.gate import Gate
from stage_workers.gate.lane import Rules
from stage_workers.settings import WorkerSettings

FAST = CallRules(max_attempts=4, first_wait_seconds=0.01)


async def _inline(function, *args):
    return function(*args)


def gated_ai(fake, provider: OpenAIProvider) -> GatedAI:
    """The provider behind a gate with no shared lanes (no database): admission is immediate,
    what follows an error is the gate's call."""
    settings = WorkerSettings(ai_provider="openai", openai_base_url=fake.base_url)
    return GatedAI(
        provider, lanes(settings, provider), Gate(None, Rules(), _inline), FAST, DEFAULT_PRICES
    )


@pytest.fixture
def provider(fake) -> OpenAIProvider:
    return fake.provider()


@pytest.fixture
def gated(fake, provider) -> GatedAI:
    return gated_ai(fake, provider)


@pytest.fixture
def scope() -> CallScope:
    scope = CallScope(run_id="run_test")
    token = SCOPE.set(scope)
    yield scope
    SCOPE.reset(token)


async def test_clusters_come_back_structured_and_complete(fake, provider):
    fake.chat_answers.append(
        json.dumps(
            {"clusters": [{"name": "Espresso", "description": "d", "keyword_indexes": [0, 2, 9]}]}
        )
    )
    drafts = (await provider.cluster_keywords(["espresso", "moka pot", "espresso shot"])).draft
    assert drafts[0].name == "Espresso" and drafts[0].members == (0, 2)
    assert [d.members for d in drafts[1:]] == [(1,)]  # a keyword the model forgot is kept
    request = fake.requests[0]["body"]
    assert request["response_format"]["type"] == "json_schema"


async def test_article_is_plain_text_and_image_is_a_png(fake, provider):
    fake.chat_answers.append("# Title\n\nSome words here.")
    article = (await provider.write_article("Title", "brief", ["k"])).draft
    assert article.word_count == 5
    png = (await provider.render_image("a cup")).draft
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("status", [429, 500])
async def test_transient_errors_are_retried_then_succeed(fake, gated, scope, status):
    fake.failures.append(status)
    fake.chat_answers.append(json.dumps({"ideas": [{"title": "A", "outline": "o"}]}))
    ideas = await gated.write_ideas("c", ["k"])
    assert [i.title for i in ideas] == ["A"]
    assert len(fake.requests) == 2
    outcomes = [r.outcome for r in scope.records]
    assert outcomes == ["rate_limited" if status == 429 else "unavailable", "answered"]


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refused_key_account_or_model_is_fatal_not_an_item_failure(
    fake, gated, scope, status
):
    fake.failures.extend([status] * 5)
    with pytest.raises(FatalAIError, match=str(status)):
        await gated.write_ideas("c", ["k"])
    assert len(fake.requests) == 1
    assert [r.outcome for r in scope.records] == ["fatal"]


async def test_a_bad_request_poisons_the_item_without_retrying(fake, gated, scope):
    fake.failures.extend([400] * 5)
    with pytest.raises(PoisonedItem) as poisoned:
        await gated.write_ideas("c", ["k"])
    assert poisoned.value.attempts == 1
    assert len(fake.requests) == 1


async def test_persistent_server_errors_poison_after_the_last_attempt(fake, gated, scope):
    """With no shared circuit to open (no lanes here), the failures are the item's own."""
    fake.failures.extend([503] * 10)
    with pytest.raises(PoisonedItem) as poisoned:
        await gated.render_image("x")
    assert poisoned.value.attempts == 4
    assert len(fake.requests) == 4


async def test_an_account_out_of_quota_is_fatal_though_it_says_429(fake, gated, scope):
    """OpenAI answers 429 `insufficient_quota` when the account has no money left: no amount of
    waiting helps, an operator must act."""
    fake.failures.append(429)
    fake.failure_code = "insufficient_quota"
    with pytest.raises(FatalAIError, match="RateLimitError"):
        await gated.write_ideas("c", ["k"])


async def test_an_answered_call_is_recorded_with_its_usage_and_cost(fake, gated, scope):
    fake.chat_answers.append(json.dumps({"ideas": [{"title": "A", "outline": "o"}]}))
    await gated.write_ideas("c", ["k"])
    (record,) = scope.records
    assert record.outcome == "answered" and record.attempt == 1
    assert record.model_requested == "gpt-4o-mini"
    assert record.usage.input_tokens > 0 and record.usage.output_tokens > 0
    assert record.cost_usd is not None and record.cost_usd > 0
    assert record.price_version == DEFAULT_PRICES.version


async def test_a_model_the_price_table_does_not_know_costs_unknown_not_a_guess(fake, scope):
    gated = gated_ai(fake, fake.provider(text_model="gpt-unknown"))
    fake.chat_answers.append(json.dumps({"ideas": [{"title": "A", "outline": "o"}]}))
    await gated.write_ideas("c", ["k"])
    (record,) = scope.records
    assert record.outcome == "answered" and record.cost_usd is None
