"""The pure parts of economy runs: a call as a provider-batch line and its answer read back, the
lines of the provider's files, which lines count as answered, the batch price, and what a step
asks of the AI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

from contracts.values import ItemRef
from stage_workers.ai.base import ArticleDraft, Usage
from stage_workers.ai.openai_provider import CHAT, IMAGES, OpenAIProvider
from stage_workers.ai.prices import DEFAULT_PRICES
from stage_workers.ai.provider_batches import parse_line, request_line
from stage_workers.batch import Unit
from stage_workers.economy import _asked
from stage_workers.gate.journal import UnitKey
from stage_workers.provider_batch_rows import ProviderBatch
from stage_workers.provider_batch_wait import Pending, Waited, _take_answers
from stage_workers.stages.articles import ArticlesStep, TaskInput

PROVIDER = OpenAIProvider(
    base_url="http://127.0.0.1:9",
    api_key="x",
    text_model="gpt-4o-mini",
    image_model="gpt-image-1-mini",
    timeout_seconds=1,
)


def test_a_call_becomes_a_line_and_its_answer_is_read_back():
    args = ("Title", "A brief", ["one", "two"])
    request = PROVIDER.request("write_article", args)
    line = json.loads(request_line("run:4:7", request))

    assert request.endpoint == line["url"] == CHAT
    assert line["custom_id"] == "run:4:7" and line["method"] == "POST"
    assert (
        line["body"]["model"] == "gpt-4o-mini"
        and "one, two" in line["body"]["messages"][0]["content"]
    )
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "## Body\ntext"},
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    answer = PROVIDER.read("write_article", args, completion)
    assert answer.draft == ArticleDraft(title="Title", markdown="## Body\ntext")
    assert answer.usage == Usage("gpt-4o-mini-2024-07-18", input_tokens=10, output_tokens=5)
    assert PROVIDER.request("render_image", ("a cat",)).endpoint == IMAGES


def test_output_and_error_lines_are_read_with_their_reason():
    answered = parse_line({"custom_id": "a", "response": {"status_code": 200, "body": {"x": 1}}})
    expired = parse_line(
        {
            "custom_id": "b",
            "response": None,
            "error": {"code": "batch_expired", "message": "not executed in time"},
        }
    )
    failed = parse_line(
        {
            "custom_id": "c",
            "response": {
                "status_code": 500,
                "body": {"error": {"message": "boom", "type": "server_error"}},
            },
        }
    )
    assert (answered.status_code, answered.body, answered.error) == (200, {"x": 1}, None)
    assert (expired.status_code, expired.error) == (None, "batch_expired: not executed in time")
    assert (failed.status_code, failed.error) == (500, "server_error: boom")


def test_answered_and_refused_lines_count_and_the_rest_go_to_the_next_round():
    def pending(n: int) -> Pending:
        unit = Unit((ItemRef(id=n, title=str(n)),), None, UnitKey("run", 4, str(n)))
        return Pending(unit, "write_article", (), PROVIDER.request("write_article", ("t", "b", [])))

    by_id = {p.custom_id: p for p in map(pending, range(1, 6))}
    row = ProviderBatch("n", 1, CHAT, tuple(by_id), datetime.now(UTC))
    lines = [
        parse_line({"custom_id": "run:4:1", "response": {"status_code": 200, "body": {}}}),
        parse_line({"custom_id": "run:4:2", "response": {"status_code": 400, "body": {}}}),
        parse_line({"custom_id": "run:4:3", "response": {"status_code": 429, "body": {}}}),
        parse_line({"custom_id": "run:4:4", "response": {"status_code": 503, "body": {}}}),
        parse_line({"custom_id": "run:4:5", "response": None, "error": {"code": "batch_expired"}}),
        parse_line({"custom_id": "other:4:1", "response": {"status_code": 200, "body": {}}}),
    ]
    waited = Waited()
    _take_answers(waited, row, lines, by_id)

    assert sorted(waited.answers) == ["run:4:1", "run:4:2"]


def test_the_batch_price_is_half_and_the_other_half_is_saved():
    usage = Usage("gpt-4o-mini", input_tokens=1_000_000, output_tokens=1_000_000)
    cost, saved = DEFAULT_PRICES.batch_cost("gpt-4o-mini", usage)
    assert cost == saved == (Decimal("0.15") + Decimal("0.60")) / 2
    unknown = Usage("an-unpriced-model", input_tokens=10, output_tokens=10)
    assert DEFAULT_PRICES.batch_cost("an-unpriced-model", unknown) == (None, None)


def test_what_a_step_would_ask_the_ai_is_taken_without_asking():
    source = TaskInput(7, 1, "How to brew", "A guide", ["coffee", "brew"])
    unit = Unit((ItemRef(id=7, title="How to brew"),), source, UnitKey("run", 4, "7"))
    function, args = asyncio.run(_asked(ArticlesStep(), unit))
    assert function == "write_article"
    assert args == ("How to brew", "A guide", ["coffee", "brew"])
