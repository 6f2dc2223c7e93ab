"""The fake OpenAI server behaves like the real API under load: rate limits quantized to the
second and refused the way OpenAI refuses them, outages, slow answers, usage, content fitting the
pipeline's schemas, and counts that prove what was called. Driven through the real SDK; time
passes only when a test moves the fake's clock."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from stage_workers.ai.openai_provider import CLUSTERS_FORMAT, IDEAS_FORMAT, PROMPTS_FORMAT
from tests.support.fake_openai import FakeOpenAI, ManualClock, TokenBucket, go_duration

MODEL = "gpt-4o-mini"
CHAT = "/v1/chat/completions"
IMAGES = "/v1/images/generations"
LIMIT_HEADERS = [
    f"x-ratelimit-{what}-{kind}"
    for what in ("limit", "remaining", "reset")
    for kind in ("requests", "tokens")
]
RETRY_HEADERS = ["retry-after", "retry-after-ms"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock):
    server = FakeOpenAI(clock).start()
    yield server
    server.stop()


@pytest.fixture
async def client(fake):
    sdk = AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    yield sdk
    await sdk.close()


async def chat(client: AsyncOpenAI, content: str = "hi", model: str = MODEL, **kwargs):
    return await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kwargs
    )


async def refused(client: AsyncOpenAI, **kwargs) -> httpx.Response:
    with pytest.raises(openai.RateLimitError) as error:
        await chat(client, **kwargs)
    return error.value.response


async def content_of(client: AsyncOpenAI, prompt: str, response_format: dict | None) -> str:
    extra = {"response_format": response_format} if response_format else {}
    completion = (await chat(client, prompt, **extra)).parse()
    return completion.choices[0].message.content


def fits(value: object, schema: dict) -> bool:
    """Enough of JSON Schema for the pipeline's strict schemas."""
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return (
            isinstance(value, dict)
            and set(schema.get("required", [])) <= set(value)
            and (schema.get("additionalProperties", True) or set(value) <= set(properties))
            and all(fits(value[k], properties[k]) for k in value if k in properties)
        )
    if kind == "array":
        return isinstance(value, list) and all(fits(v, schema["items"]) for v in value)
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
    return kind is None or isinstance(value, types[kind])


# The bucket


def test_a_bucket_admits_one_seconds_worth_at_once_then_refills_per_second():
    bucket = TokenBucket(300, now=0.0)
    for _ in range(5):
        assert bucket.room_in(1, 0.0) == 0
        bucket.take(1, 0.0)
    assert bucket.room_in(1, 0.0) == pytest.approx(0.2)
    assert bucket.room_in(1, 0.1) == pytest.approx(0.1)
    assert bucket.room_in(5, 1.0) == 0  # a whole second refills five
    bucket.take(5, 100.0)
    assert bucket.room_in(1, 100.0) == pytest.approx(0.2)  # and never more than five


def test_a_bucket_is_full_again_and_counts_what_is_left_in_per_minute_units():
    bucket = TokenBucket(300, now=0.0)
    bucket.take(1, 0.0)
    assert bucket.remaining(0.0) == 240  # a fifth of this second's allowance is spent
    assert bucket.full_in(0.0) == pytest.approx(0.2)
    assert bucket.remaining(0.2) == 300 and bucket.full_in(0.2) == 0


def test_a_limit_under_60_a_minute_still_admits_one_call():
    bucket = TokenBucket(30, now=0.0)
    assert bucket.capacity == 1
    bucket.take(1, 0.0)
    assert bucket.room_in(1, 0.0) == pytest.approx(2.0)


def test_a_cost_above_the_capacity_passes_a_full_bucket_and_leaves_it_in_debt():
    bucket = TokenBucket(600, now=0.0)  # ten tokens a second
    assert bucket.room_in(1001, 0.0) == 0
    bucket.take(1001, 0.0)
    assert bucket.room_in(1, 0.0) == pytest.approx(99.2)
    assert bucket.full_in(0.0) == pytest.approx(100.1)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (0.2, "200ms"),
        (0.0004, "1ms"),
        (1, "1s"),
        (8.64, "8.64s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
    ],
)
def test_durations_are_written_the_way_openai_writes_them(seconds, text):
    assert go_duration(seconds) == text


# Rate limits through the SDK


async def test_300_rpm_admits_5_at_once_then_5_a_second(fake, client, clock):
    fake.set_limits(rpm=300)
    for _ in range(5):
        await chat(client)
    await refused(client)
    clock.advance(1.0)
    for _ in range(5):
        await chat(client)
    await refused(client)
    assert fake.stats()["answered"] == 10 and fake.stats()["rate_limited"] == 2


async def test_limits_are_per_model_and_model_none_sets_every_model(fake, client):
    fake.set_limits(rpm=60)
    await chat(client, model="a")
    await chat(client, model="b")  # its own bucket
    await refused(client, model="a")
    fake.set_limits("a", rpm=120)
    await chat(client, model="a")
    await chat(client, model="a")
    await refused(client, model="a")
    await refused(client, model="b")
    fake.set_limits(rpm=None)  # every model, "a" included
    for _ in range(5):
        await chat(client, model="a")


async def test_a_refusal_answers_openais_429_body_and_every_header(fake, client):
    fake.set_limits(rpm=300, tpm=600_000)  # 5 requests and 10,000 tokens a second
    for _ in range(5):
        await chat(client)  # 1 prompt token + 1000 for the answer, as no max_tokens is given
    response = await refused(client)
    assert response.json() == {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-test on requests"
            " per min (RPM): Limit 300, Used 300, Requested 1. Please try again in 200ms. Visit"
            " https://platform.openai.com/account/rate-limits to learn more.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert {name: response.headers.get(name) for name in RETRY_HEADERS + LIMIT_HEADERS} == {
        "retry-after": "1",
        "retry-after-ms": "200",
        "x-ratelimit-limit-requests": "300",
        "x-ratelimit-limit-tokens": "600000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "299700",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "501ms",
    }


async def test_answers_carry_the_rate_limit_headers_too(fake, client):
    fake.set_limits(rpm=300, tpm=600_000)
    headers = (await chat(client)).headers
    assert {name: headers.get(name) for name in RETRY_HEADERS + LIMIT_HEADERS} == {
        "retry-after": None,
        "retry-after-ms": None,
        "x-ratelimit-limit-requests": "300",
        "x-ratelimit-limit-tokens": "600000",
        "x-ratelimit-remaining-requests": "240",
        "x-ratelimit-remaining-tokens": "539940",
        "x-ratelimit-reset-requests": "200ms",
        "x-ratelimit-reset-tokens": "101ms",
    }


async def test_retry_after_ms_is_the_time_until_the_bucket_has_room(fake, client, clock):
    fake.set_limits(rpm=60)
    await chat(client)
    clock.advance(0.25)
    response = await refused(client)
    assert response.headers["retry-after-ms"] == "750"
    assert response.headers["retry-after"] == "1"
    assert "Please try again in 750ms." in response.json()["error"]["message"]
    clock.advance(0.75)
    await chat(client)


async def test_a_slow_limit_asks_for_whole_seconds_and_a_minute_long_reset(fake, client):
    fake.set_limits(rpm=1)
    await chat(client)
    headers = (await refused(client)).headers
    assert headers["retry-after"] == "60" and headers["retry-after-ms"] == "60000"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"


async def test_tokens_count_the_prompt_and_the_most_the_answer_may_take(fake, client, clock):
    fake.set_limits(tpm=6000)  # 100 tokens a second
    prompt = "x" * 40  # 10 tokens
    await chat(client, prompt, max_tokens=40)
    await chat(client, prompt, max_completion_tokens=40)
    response = await refused(client, content=prompt, max_tokens=40)
    error = response.json()["error"]
    assert error["type"] == "tokens" and error["code"] == "rate_limit_exceeded"
    assert "on tokens per min (TPM): Limit 6000, Used 6000, Requested 50." in error["message"]
    assert response.headers["retry-after-ms"] == "500"
    assert "x-ratelimit-limit-requests" not in response.headers  # no request limit is set


async def test_a_call_without_max_tokens_counts_1000_and_an_image_100(fake, client, clock):
    fake.set_limits(tpm=60_000)  # 1000 tokens a second
    await chat(client)  # 1001 tokens: a full bucket lets it through, into debt
    assert (await refused(client)).headers["retry-after-ms"] == "1001"
    fake.set_limits(tpm=6000)
    await client.images.generate(model="gpt-image-1", prompt="a cup")
    with pytest.raises(openai.RateLimitError):
        await client.images.generate(model="gpt-image-1", prompt="a cup")
    clock.advance(1.0)
    await client.images.generate(model="gpt-image-1", prompt="a cup")


async def test_without_headers_a_refusal_and_an_answer_say_nothing_of_the_limits(fake, client):
    fake.set_limits(rpm=60, tpm=60_000)
    fake.header_mode = "none"
    assert not set(RETRY_HEADERS + LIMIT_HEADERS) & set((await chat(client)).headers)
    assert not set(RETRY_HEADERS + LIMIT_HEADERS) & set((await refused(client)).headers)


async def test_in_minus_one_mode_every_numeric_header_is_minus_one(fake, client):
    fake.set_limits(rpm=60, tpm=60_000)
    fake.header_mode = "minus_one"
    answered = (await chat(client)).headers
    assert [answered.get(name) for name in LIMIT_HEADERS] == ["-1"] * 6
    assert "retry-after" not in answered
    refusal = (await refused(client)).headers
    assert [refusal.get(name) for name in RETRY_HEADERS + LIMIT_HEADERS] == ["-1"] * 8
    with pytest.raises(ValueError):
        fake.header_mode = "some"


# Outages and slowness


async def test_an_outage_answers_every_call_and_spends_no_budget(fake, client):
    fake.set_limits(rpm=60)
    fake.outage(503)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as error:
            await chat(client)
        assert error.value.status_code == 503 and error.value.type == "server_error"
    with pytest.raises(openai.InternalServerError):
        await client.images.generate(model="gpt-image-1", prompt="a cup")
    fake.outage(None)
    await chat(client)  # the one call a second was still there
    stats = fake.stats()
    assert (stats["calls"], stats["unavailable"], stats["answered"]) == (5, 4, 1)


async def test_an_outage_for_some_seconds_ends_on_the_clock(fake, client, clock):
    fake.outage_for(10, status=502)
    clock.advance(9.9)
    with pytest.raises(openai.APIStatusError) as error:
        await chat(client)
    assert error.value.status_code == 502
    clock.advance(0.1)
    await chat(client)


async def test_a_hanging_outage_outlasts_the_clients_timeout_then_answers_503(fake):
    fake.outage("hang")
    impatient = AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        await chat(impatient)
    fake.hang_seconds = 0.01
    with pytest.raises(openai.InternalServerError):
        await chat(impatient)
    await impatient.close()
    assert fake.stats()["unavailable"] == 2


# What an answer holds


async def test_a_chat_answer_counts_its_usage_and_names_a_dated_model(fake, client):
    fake.chat_answers.append("y" * 40)
    completion = (await chat(client, "x" * 400)).parse()
    assert completion.model == "gpt-4o-mini-2024-07-18"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 10, 110)
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert (await chat(client, model="mine")).parse().model == "mine-2024-07-18"
    assert (await chat(client, model="gpt-4o-2024-08-06")).parse().model == "gpt-4o-2024-08-06"


@pytest.mark.parametrize(
    ("prompt", "again", "cached"),
    [("z" * 600, "z" * 600, 128), ("w" * 2000, "w" * 2000 + "?", 256), ("x" * 60, "x" * 60, 0)],
    ids=["same-prompt", "same-first-1024-chars", "too-short-to-cache"],
)
async def test_a_prompt_prefix_seen_before_is_partly_cached(client, prompt, again, cached):
    first = (await chat(client, prompt)).parse().usage.prompt_tokens_details.cached_tokens
    later = (await chat(client, again)).parse().usage.prompt_tokens_details.cached_tokens
    assert (first, later) == (0, cached)


@pytest.mark.parametrize(
    ("size", "output_tokens"), [("1024x1024", 1056), ("1536x1024", 1584), ("1024x1536", 1584)]
)
async def test_an_image_answer_is_a_png_with_usage_by_size(client, size, output_tokens):
    result = await client.images.generate(model="gpt-image-1", prompt="a cup of tea", size=size)
    assert base64.b64decode(result.data[0].b64_json).startswith(b"\x89PNG")
    assert isinstance(result.created, int)
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens) == (3, output_tokens)
    assert usage.total_tokens == 3 + output_tokens
    assert usage.input_tokens_details.text_tokens == 3
    assert usage.input_tokens_details.image_tokens == 0


# Content that fits the pipeline's schemas (the prompts are written as the provider writes them)


async def test_clusters_fit_the_schema_and_hold_every_keyword_once(client):
    keywords = ["espresso beans", "Espresso shot", "moka pot", "french press", "moka pot review"]
    listing = "\n".join(f"{i}: {k}" for i, k in enumerate(keywords))
    prompt = f"Group these search keywords into topical clusters.\n{listing}"
    answer = json.loads(await content_of(client, prompt, CLUSTERS_FORMAT))
    schema = CLUSTERS_FORMAT["json_schema"]["schema"]
    assert fits(answer, schema) and not fits({"clusters": [{"name": "no indexes"}]}, schema)
    indexes = sorted(i for cluster in answer["clusters"] for i in cluster["keyword_indexes"])
    assert indexes == list(range(len(keywords)))
    groups = [(c["name"], c["keyword_indexes"]) for c in answer["clusters"]]
    assert groups == [("Espresso", [0, 1]), ("Moka", [2, 4]), ("French", [3])]


async def test_ideas_fit_the_schema_and_name_the_topic(client):
    prompt = "Propose 3 article ideas for the topic 'Cold brew' covering these keywords: a, b."
    answer = json.loads(await content_of(client, prompt, IDEAS_FORMAT))
    assert fits(answer, IDEAS_FORMAT["json_schema"]["schema"])
    assert len(answer["ideas"]) == 3
    assert all("Cold brew" in idea["title"] for idea in answer["ideas"])


async def test_image_prompts_fit_the_schema_one_featured_then_three_in_article(client):
    prompt = "Write 4 image prompts for this article.\nTitle: Moka pot basics\n\nBody."
    answer = json.loads(await content_of(client, prompt, PROMPTS_FORMAT))
    assert fits(answer, PROMPTS_FORMAT["json_schema"]["schema"])
    assert [p["kind"] for p in answer["prompts"]] == ["featured"] + ["in_article"] * 3
    assert all("Moka pot basics" in p["prompt"] for p in answer["prompts"])


async def test_an_article_is_markdown_of_about_250_words(client):
    prompt = (
        "Write an article of 800-1200 words in Markdown titled 'Moka pot basics'. Brief: b. "
        "Use these keywords naturally: moka pot, stovetop. Use ## section headings."
    )
    article = await content_of(client, prompt, None)
    assert article.startswith("# Moka pot basics\n")
    assert len(re.findall(r"^## ", article, re.MULTILINE)) >= 3
    assert 200 <= len(article.split()) <= 300
    assert "moka pot, stovetop" in article


async def test_any_other_schema_gets_the_smallest_fitting_answer(client):
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "tags": {"type": "array", "items": {}}},
        "required": ["n", "tags"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "other", "schema": schema}}
    assert fits(json.loads(await content_of(client, "anything", response_format)), schema)


async def test_scripted_answers_come_before_made_up_ones(fake, client):
    fake.chat_answers.append("scripted")
    assert await content_of(client, "x", IDEAS_FORMAT) == "scripted"


async def test_scripted_failures_come_first_and_may_carry_an_error_code(fake, client):
    fake.set_limits(rpm=60)
    fake.failures.append(429)
    fake.failure_code = "insufficient_quota"
    with pytest.raises(openai.RateLimitError) as error:
        await chat(client)
    assert error.value.code == "insufficient_quota"
    await chat(client)  # the scripted failure spent nothing of the budget


# Counting


async def test_stats_count_calls_answers_refusals_outages_and_repeats(fake, client, clock):
    fake.set_limits(rpm=60)
    await chat(client, "same")
    await refused(client, content="same")
    clock.advance(1)
    await chat(client, "same")  # a repeat
    await chat(client, "same", model="other")  # a repeat too: the model is not the question
    await chat(client, "different", model="third")
    fake.failures.append(500)
    with pytest.raises(openai.InternalServerError):
        await client.images.generate(model="gpt-image-1", prompt="a cup")
    await client.images.generate(model="gpt-image-1", prompt="a cup")
    assert fake.stats() == {
        "calls": 7,
        "answered": 5,
        "rate_limited": 1,
        "unavailable": 1,
        "repeats": 2,
        "by_path": {CHAT: 5, IMAGES: 2},
        "batches": 0,
        "batch_answers": 0,
    }
    fake.reset_stats()
    assert fake.stats() == dict.fromkeys(
        ["calls", "answered", "rate_limited", "unavailable", "repeats", "batches", "batch_answers"],
        0,
    ) | {"by_path": {}}
    clock.advance(1)
    await chat(client, "same", model="other")  # the past answers are forgotten too
    assert fake.stats()["repeats"] == 0


async def test_another_process_can_steer_the_fake_and_read_its_counts(fake, client, clock):
    async with httpx.AsyncClient(base_url=fake.base_url.removesuffix("/v1")) as http:

        async def control(**settings) -> httpx.Response:
            return await http.post("/_control", json=settings)

        assert (await control(rpm=60, model=MODEL)).status_code == 200
        await chat(client)
        await refused(client)
        await chat(client, model="unlimited")
        await control(outage=503, outage_seconds=5)
        with pytest.raises(openai.InternalServerError):
            await chat(client, model="unlimited")
        clock.advance(5)
        await chat(client, model="unlimited")
        await control(outage="hang")
        await control(outage=None)
        await control(latency_seconds=0.0, header_mode="minus_one")
        assert (fake.latency_seconds, fake.header_mode) == (0.0, "minus_one")
        assert (await chat(client)).headers["x-ratelimit-remaining-requests"] == "-1"
        for bad in ({"bogus": 1}, {"header_mode": "loud"}, {"outage": "soon"}, {"rpm": 0}):
            response = await http.post("/_control", json=bad)
            assert response.status_code == 400, bad
            assert response.json()["error"]["message"]
        assert (await http.get("/_stats")).json() == fake.stats()
        await control(reset_stats=True)
        assert (await http.get("/_stats")).json()["calls"] == 0


def test_the_command_line_serves_on_the_port_it_prints():
    command = [sys.executable, "-m", "tests.support.fake_openai", "--port", "0", "--rpm", "60"]
    root = Path(__file__).parents[2]
    server = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        statuses = [httpx.post(f"{base_url}/chat/completions", json=body).status_code]
        statuses.append(httpx.post(f"{base_url}/chat/completions", json=body).status_code)
        assert statuses == [200, 429]
    finally:
        server.terminate()
        server.wait(timeout=10)
