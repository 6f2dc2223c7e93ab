"""The OpenAI provider through the real SDK against a local fake server: structured answers,
images, and which failures are retried (429, 500), which poison the item (400) and which stop
the batch (401, 403, 404: no item can get past a refused key, account or model)."""

from __future__ import annotations

import json

import pytest

from stage_workers.ai.base import FatalAIError
from stage_workers.ai.openai_provider import OpenAIProvider
from stage_workers.ai.retry import PoisonedItem, RetryPolicy, with_retries
from tests.support.fake_openai import FakeOpenAI

FAST_RETRIES = RetryPolicy(max_attempts=4, first_wait_seconds=0.01, max_wait_seconds=0.05)


@pytest.fixture
def fake():
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def provider(fake) -> OpenAIProvider:
    return OpenAIProvider(
        base_url=fake.base_url,
        api_key="test",
        text_model="gpt-test",
        image_model="img-test",
        timeout_seconds=5,
    )


async def test_clusters_come_back_structured_and_complete(fake, provider):
    fake.chat_answers.append(
        json.dumps(
            {"clusters": [{"name": "Espresso", "description": "d", "keyword_indexes": [0, 2, 9]}]}
        )
    )
    drafts = await provider.cluster_keywords(["espresso", "moka pot", "espresso shot"])
    assert drafts[0].name == "Espresso" and drafts[0].members == (0, 2)
    assert [d.members for d in drafts[1:]] == [(1,)]  # a keyword the model forgot is kept
    request = fake.requests[0]["body"]
    assert request["response_format"]["type"] == "json_schema"


async def test_article_is_plain_text_and_image_is_a_png(fake, provider):
    fake.chat_answers.append("# Title\n\nSome words here.")
    article = await provider.write_article("Title", "brief", ["k"])
    assert article.word_count == 5
    png = await provider.render_image("a cup")
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("status", [429, 500])
async def test_transient_errors_are_retried_then_succeed(fake, provider, status):
    fake.failures.append(status)
    fake.chat_answers.append(json.dumps({"ideas": [{"title": "A", "outline": "o"}]}))
    ideas = await with_retries(FAST_RETRIES, lambda: provider.write_ideas("c", ["k"]))
    assert [i.title for i in ideas] == ["A"]
    assert len(fake.requests) == 2


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refused_key_account_or_model_is_fatal_not_an_item_failure(fake, provider, status):
    fake.failures.extend([status] * 5)
    with pytest.raises(FatalAIError, match=str(status)):
        await with_retries(FAST_RETRIES, lambda: provider.write_ideas("c", ["k"]))
    assert len(fake.requests) == 1


async def test_a_bad_request_poisons_the_item_without_retrying(fake, provider):
    fake.failures.extend([400] * 5)
    with pytest.raises(PoisonedItem) as poisoned:
        await with_retries(FAST_RETRIES, lambda: provider.write_ideas("c", ["k"]))
    assert poisoned.value.attempts == 1
    assert len(fake.requests) == 1


async def test_persistent_server_errors_poison_after_the_last_attempt(fake, provider):
    fake.failures.extend([503] * 10)
    with pytest.raises(PoisonedItem) as poisoned:
        await with_retries(FAST_RETRIES, lambda: provider.render_image("x"))
    assert poisoned.value.attempts == 4
    assert len(fake.requests) == 4
