"""A local stand-in for the OpenAI API (chat completions, image generations) that behaves like the
real service under load: per-model rate limits in requests and tokens per minute, enforced per
second as OpenAI quantizes them and refused with 429, OpenAI's error body and its retry-after and
x-ratelimit-* headers (those of the limits set); outages (an error status, or a hang ending in
503); slow answers; `usage` with plausible token counts; dated model names; deterministic content
fitting the requested JSON schema. Scripted `failures` (with `failure_code`) and `chat_answers`
come first. Steer it from Python or, from another process, over HTTP (`GET /_stats`,
`POST /_control`); serve one by hand with
`python -m tests.support.fake_openai --port 8700 [--rpm N] [--tpm N] [--latency S]`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stage_workers.ai.openai_provider import OpenAIProvider
from stage_workers.ai.png import draw_from_prompt
from tests.support.fake_batches import FakeBatches

KINDS = ("requests", "tokens")
LIMIT_NAMES = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}
HEADER_MODES = ("full", "none", "minus_one")
CONTROL_KEYS = {"rpm", "tpm", "model", "outage", "outage_seconds", "latency_seconds"}
CONTROL_KEYS |= {"header_mode", "reset_stats", "batch_completion_seconds", "batch_expire_after"}
CONTROL_KEYS |= {"batch_failing_ids"}
COUNTERS = ("calls", "answered", "rate_limited", "unavailable", "repeats")
DEFAULT_COMPLETION_TOKENS = 1000  # counted for the answer of a chat call naming no max_tokens
IMAGE_COST_TOKENS = 100
CACHE_PREFIX_CHARS = 1024
LARGE_IMAGE_SIZES = {"1024x1536", "1536x1024"}
OVERLOADED = "The server is overloaded or not ready yet."


def _ceil(x: float) -> int:
    # Float noise (0.2 * 5 = 1.0000000000000002) must not add a whole millisecond or token.
    return math.ceil(x - 1e-9)


def tokens_of(chars: int) -> int:
    return math.ceil(chars / 4)


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's x-ratelimit-reset-* headers write it (Go's): 20ms, 1s, 6m0s."""
    ms = _ceil(seconds * 1000)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    text = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def dated(model: str) -> str:
    return model if re.search(r"-\d{4}-\d\d-\d\d$", model) else f"{model}-2024-07-18"


def error_body(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class TokenBucket:
    """One per-minute limit quantized to the second: holds limit/60 (at least 1) and refills at
    limit/60 a second. A cost above the capacity is let through from a full bucket and leaves it
    in debt, so a big request under a small limit is slow rather than refused for ever."""

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.rate = limit / 60
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def room_in(self, cost: int, now: float) -> float:
        """Seconds until `cost` can be taken; 0 when it can be now."""
        self._refill(now)
        missing = min(cost, self.capacity) - self.level
        return missing / self.rate if missing > 1e-9 else 0.0

    def take(self, cost: int, now: float) -> None:
        self._refill(now)
        self.level -= cost

    def full_in(self, now: float) -> float:
        self._refill(now)
        return max(0.0, (self.capacity - self.level) / self.rate)

    def remaining(self, now: float) -> int:
        """What is left, in the per-minute units of OpenAI's headers and messages."""
        self._refill(now)
        return max(0, math.floor(self.level / self.capacity * self.limit + 1e-9))


@dataclass
class Reply:
    status: int
    document: dict
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # slept in the handler thread, outside the lock, before answering
    outcome: str | None = None  # the counter it adds to


@dataclass
class Raw:
    """File content, sent as it is."""

    content: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class ManualClock:
    """Time for a FakeOpenAI that passes only when a test says so."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeOpenAI:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, port: int = 0) -> None:
        self.failures: deque[int] = deque()  # statuses to answer before succeeding
        self.failure_code: str | None = None  # their error code, e.g. "insufficient_quota"
        self.chat_answers: deque[str] = deque()
        self.requests: list[dict] = []
        self.latency_seconds = 0.0
        self.hang_seconds = 30.0
        self._header_mode = "full"
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._limits: dict[str | None, tuple[int | None, int | None]] = {None: (None, None)}
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._outage: int | str | None = None
        self._outage_models: frozenset[str] | None = None  # None: every model is out
        self._outage_until: float | None = None
        self._prefixes: set[str] = set()
        self.batches = FakeBatches(self._batch_answer, clock)
        self.reset_stats()
        self.server = _Server(("127.0.0.1", port), _Handler)
        self.server.fake = self
        # stop() waits for the serving loop's next poll; a short one keeps tests quick.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping through a hang or a latency
        self.server.shutdown()
        self.server.server_close()

    @property
    def header_mode(self) -> str:
        return self._header_mode

    @header_mode.setter
    def header_mode(self, mode: str) -> None:
        if mode not in HEADER_MODES:
            raise ValueError(f"header_mode is one of {HEADER_MODES}, not {mode!r}")
        self._header_mode = mode

    def set_limits(
        self, model: str | None = None, rpm: int | None = None, tpm: int | None = None
    ) -> None:
        """Limits for one model, or (model None) for every model, replacing earlier ones."""
        if any(limit is not None and limit < 1 for limit in (rpm, tpm)):
            raise ValueError(f"a limit is a positive number or None: rpm={rpm}, tpm={tpm}")
        with self._lock:
            if model is None:
                self._limits = {}
            self._limits[model] = (rpm, tpm)
            kept = self._buckets.items() if model is not None else ()
            self._buckets = {key: bucket for key, bucket in kept if key[0] != model}

    def outage(self, status: int | str | None = 503, models: set[str] | None = None) -> None:
        """Answer every call (to `models`, or to any model) with `status` ("hang": sleep, then
        503) until outage(None)."""
        self._start_outage(status, None, models)

    def outage_for(self, seconds: float, status: int | str = 503) -> None:
        self._start_outage(status, seconds, None)

    def _start_outage(
        self, status: int | str | None, seconds: float | None, models: set[str] | None
    ) -> None:
        if not (status in (None, "hang") or (isinstance(status, int) and 400 <= status < 600)):
            raise ValueError(f"an outage is an HTTP error status, 'hang' or None, not {status!r}")
        with self._lock:
            self._outage = status
            self._outage_until = None if seconds is None else self._clock() + seconds
            self._outage_models = frozenset(models) if models else None

    def worker_env(self, **settings: str) -> dict[str, str]:
        """The environment of a stage-worker process that calls this provider."""
        provider = {"AI_PROVIDER": "openai", "OPENAI_BASE_URL": self.base_url}
        return provider | {"OPENAI_API_KEY": "sk-test"} | settings

    def provider(self, text_model: str = "gpt-4o-mini") -> OpenAIProvider:
        """The stage workers' OpenAIProvider (the real SDK), calling this provider."""
        return OpenAIProvider(
            base_url=self.base_url,
            api_key="test",
            text_model=text_model,
            image_model="img-test",
            timeout_seconds=5,
        )

    def stats(self) -> dict:
        with self._lock:
            counts = {**self._counts, "by_path": dict(self._by_path)}
        return counts | {"batches": self.batches.created, "batch_answers": self.batches.answered}

    def answer_times(self) -> list[tuple[float, str]]:
        """(clock time, model) of every call let through, in order: the pace the limits saw."""
        with self._lock:
            return list(self._answer_times)

    def reset_stats(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(COUNTERS, 0)
            self.batches.created = self.batches.answered = 0
            self._by_path: Counter[str] = Counter()
            self._answered: set[tuple[str, str]] = set()
            self._answer_times: list[tuple[float, str]] = []

    def _control(self, settings: Any) -> None:
        if unknown := set(settings) - CONTROL_KEYS:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(CONTROL_KEYS)}")
        if "rpm" in settings or "tpm" in settings:
            self.set_limits(settings.get("model"), settings.get("rpm"), settings.get("tpm"))
        if "outage_seconds" in settings:
            self.outage_for(float(settings["outage_seconds"]), settings.get("outage", 503))
        elif "outage" in settings:
            self.outage(settings["outage"])
        if "latency_seconds" in settings:
            self.latency_seconds = float(settings["latency_seconds"])
        if "header_mode" in settings:
            self.header_mode = settings["header_mode"]
        if settings.get("reset_stats"):
            self.reset_stats()
        if "batch_completion_seconds" in settings:
            self.batches.completion_seconds = float(settings["batch_completion_seconds"])
        if "batch_expire_after" in settings:
            self.batches.expire_after = settings["batch_expire_after"]
        if "batch_failing_ids" in settings:
            self.batches.failing_ids = set(settings["batch_failing_ids"])

    def _answer(self, path: str, body: Any) -> Reply:
        with self._lock:
            self._counts["calls"] += 1
            self._by_path[path] += 1
            if not isinstance(body, dict):
                message = "We could not parse the JSON body of your request."
                return Reply(400, error_body(message, "invalid_request_error"))
            self.requests.append({"path": path, "body": body})
            reply = self._decide(path, body)
            if reply.outcome:
                self._counts[reply.outcome] += 1
            if reply.outcome == "answered":
                # The same question asked again, of whichever model: a call made twice.
                key = (path, json.dumps({**body, "model": None}, sort_keys=True))
                self._counts["repeats"] += key in self._answered
                self._answered.add(key)
                self._answer_times.append((self._clock(), str(body.get("model", ""))))
            return reply

    def _batch_answer(self, path: str, body: dict) -> dict:
        """A request of a batch, answered as the synchronous call would be, outside the limits."""
        with self._lock:
            return self._chat(body) if path.endswith("/chat/completions") else image_answer(body)

    def _decide(self, path: str, body: dict) -> Reply:
        if self.failures:
            status = self.failures.popleft()
            outcome = "rate_limited" if status == 429 else "unavailable" if status >= 500 else None
            code = self.failure_code
            error = error_body(f"scripted {status}", code or "x", code)
            return Reply(status, error, outcome=outcome)
        now = self._clock()
        if (outage := self._outage_reply(str(body.get("model")), now)) is not None:
            return outage
        if path.endswith("/chat/completions"):
            make, cost = self._chat, chat_cost(body)
        elif path.endswith("/images/generations"):
            make, cost = image_answer, IMAGE_COST_TOKENS
        else:
            return Reply(404, error_body(f"Invalid URL (POST {path})", "invalid_request_error"))
        refusal, headers = self._admit(str(body.get("model", "")), cost, now)
        return refusal or Reply(200, make(body), headers, self.latency_seconds, "answered")

    def _outage_reply(self, model: str | None, now: float) -> Reply | None:
        """The answer of an outage, if one is on for `model` (None: the Batch API, out only when
        every model is)."""
        if self._outage_until is not None and now >= self._outage_until:
            self._outage = self._outage_until = None
        out = self._outage_models is None or (model is not None and model in self._outage_models)
        if self._outage is None or not out:
            return None
        hang = self._outage == "hang"
        status, delay = (503, self.hang_seconds) if hang else (int(self._outage), 0.0)
        return Reply(status, error_body(OVERLOADED, "server_error"), {}, delay, "unavailable")

    def batch_outage(self) -> Reply | None:
        with self._lock:
            outage = self._outage_reply(None, self._clock())
            if outage is not None:
                self._counts["unavailable"] += 1
            return outage

    def _admit(self, model: str, cost: int, now: float) -> tuple[Reply | None, dict[str, str]]:
        """Spend the call's request and tokens and give the answer's headers, or refuse the call
        with a 429, spending nothing."""
        buckets = {}
        for kind, limit in zip(KINDS, self._limits.get(model, self._limits[None]), strict=True):
            if limit is not None:
                buckets[kind] = self._buckets.setdefault((model, kind), TokenBucket(limit, now))
        costs = {"requests": 1, "tokens": cost}
        waits = {kind: bucket.room_in(costs[kind], now) for kind, bucket in buckets.items()}
        if not (blocked := [kind for kind, wait in waits.items() if wait > 0]):
            for kind, bucket in buckets.items():
                bucket.take(costs[kind], now)
            return None, self._rate_headers(buckets, now)
        kind, wait = blocked[0], max(waits.values())
        limit, left = buckets[kind].limit, buckets[kind].remaining(now)
        message = (
            f"Rate limit reached for {model} in organization org-test on {LIMIT_NAMES[kind]}: "
            f"Limit {limit}, Used {limit - left}, Requested {costs[kind]}. Please try again in "
            f"{go_duration(wait)}. Visit https://platform.openai.com/account/rate-limits to "
            "learn more."
        )
        headers = self._rate_headers(buckets, now, wait)
        body = error_body(message, kind, "rate_limit_exceeded")
        return Reply(429, body, headers, outcome="rate_limited"), {}

    def _rate_headers(self, buckets: dict, now: float, wait: float | None = None) -> dict:
        """Headers for the limits that are set, as the header mode wants them."""
        values: dict[str, object] = {}
        if wait is not None:
            values["retry-after"] = max(1, _ceil(wait))
            values["retry-after-ms"] = _ceil(wait * 1000)
        for kind, bucket in buckets.items():
            values[f"x-ratelimit-limit-{kind}"] = bucket.limit
            values[f"x-ratelimit-remaining-{kind}"] = bucket.remaining(now)
            values[f"x-ratelimit-reset-{kind}"] = go_duration(bucket.full_in(now))
        if self._header_mode == "none":
            return {}
        if self._header_mode == "minus_one":
            return dict.fromkeys(values, "-1")
        return {name: str(value) for name, value in values.items()}

    def _chat(self, request: dict) -> dict:
        texts = [_text(m) for m in request.get("messages", [])]
        prompt = "\n".join(texts)
        content = self.chat_answers.popleft() if self.chat_answers else compose(request, prompt)
        prompt_tokens, completion_tokens = tokens_of(sum(map(len, texts))), tokens_of(len(content))
        # Plausible prompt caching: a prefix seen before is partly cached, in steps of 128.
        seen = prompt[:CACHE_PREFIX_CHARS] in self._prefixes
        cached = min(prompt_tokens, CACHE_PREFIX_CHARS // 4) // 128 * 128 if seen else 0
        self._prefixes.add(prompt[:CACHE_PREFIX_CHARS])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        choice = {"index": 0, "finish_reason": "stop"}
        return {
            "id": f"chatcmpl-fake{self._counts['answered']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": dated(str(request.get("model", ""))),
            "choices": [{**choice, "message": {"role": "assistant", "content": content}}],
            "usage": usage,
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging answer must not hold up stop()
    request_queue_size = 128  # the default 5 drops bursts of connections: a 1 s SYN retry each
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.server.fake.batches.handles(self.path):
            if (outage := self.server.fake.batch_outage()) is not None:
                return self._send(outage)
            status, document = self.server.fake.batches.get(self.path)
            self._send(Reply(status, document) if isinstance(document, dict) else Raw(document))
        elif self.path == "/_stats":
            self._send(Reply(200, self.server.fake.stats()))
        else:
            self._send(Reply(404, error_body("Not found.", "invalid_request_error")))

    def do_POST(self) -> None:
        fake = self.server.fake
        data = self.rfile.read(int(self.headers.get("content-length") or 0))
        if fake.batches.handles(self.path):
            if (outage := fake.batch_outage()) is not None:
                fake._stopping.wait(outage.delay)
                return self._send(outage)
            content_type = self.headers.get("content-type", "")
            return self._send(Reply(*fake.batches.post(self.path, content_type, data)))
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        if self.path != "/_control":
            reply = fake._answer(self.path, body)
            fake._stopping.wait(reply.delay)
            return self._send(reply)
        try:
            fake._control(body)
            self._send(Reply(200, {"applied": True}))
        except (ValueError, TypeError, AttributeError) as error:
            self._send(Reply(400, error_body(str(error), "invalid_request_error")))

    def _send(self, reply: Reply | Raw) -> None:
        if isinstance(reply, Raw):
            data, kind = reply.content, "application/octet-stream"
        else:
            data, kind = json.dumps(reply.document).encode(), "application/json"
        headers = {"content-type": kind, "content-length": str(len(data))}
        try:
            self.send_response(reply.status)
            for name, value in (headers | reply.headers).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped waiting: a hang or a latency outlasted its timeout


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def chat_cost(request: dict) -> int:
    prompt = sum(len(_text(m)) for m in request.get("messages", []))
    most = request.get("max_completion_tokens") or request.get("max_tokens")
    return tokens_of(prompt) + (most or DEFAULT_COMPLETION_TOKENS)


def image_answer(request: dict) -> dict:
    prompt = str(request.get("prompt", ""))
    picture = {"b64_json": base64.b64encode(draw_from_prompt(prompt, 32, 32)).decode()}
    text = tokens_of(len(prompt))
    output = 1584 if request.get("size") in LARGE_IMAGE_SIZES else 1056
    usage = {"input_tokens": text, "output_tokens": output, "total_tokens": text + output}
    usage["input_tokens_details"] = {"text_tokens": text, "image_tokens": 0}
    return {"created": int(time.time()), "data": [picture], "usage": usage}


# Content: deterministic, fitting the schema the request's response_format names.


def compose(request: dict, prompt: str) -> str:
    response_format = request.get("response_format") or {"type": "text"}
    if response_format.get("type") == "text":
        return article(prompt)
    spec = response_format.get("json_schema") or {}
    writer = WRITERS.get(spec.get("name"))
    return json.dumps(writer(prompt) if writer else example_of(spec.get("schema") or {}))


def _find(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else None


def clusters(prompt: str) -> dict:
    """Keywords listed as `N: keyword`, grouped by their first word."""
    keywords = dict(re.findall(r"^(\d+): (\S.*)$", prompt, re.MULTILINE))
    groups: dict[str, list[int]] = {}
    for index in sorted(keywords, key=int):
        groups.setdefault(keywords[index].split()[0].lower(), []).append(int(index))
    return {
        "clusters": [
            {"name": word.title(), "description": f"Searches about {word}.", "keyword_indexes": ids}
            for word, ids in groups.items()
        ]
    }


def ideas(prompt: str) -> dict:
    topic = _find(r"topic '(.*?)' covering", prompt) or _find(r"topic '(.*?)'", prompt) or "it"
    keywords = _find(r"keywords: (.*?)\.?$", prompt) or topic
    titles = [f"A beginner's guide to {topic}", f"{topic}: mistakes to avoid", f"Choosing {topic}"]
    outline = f"Covers {keywords} with practical steps, examples and a short checklist."
    return {"ideas": [{"title": title, "outline": outline} for title in titles]}


def image_prompts(prompt: str) -> dict:
    title = _find(r"^Title: (.+)$", prompt) or "the article"
    scenes = ["A wide hero photograph", "A close-up detail", "A step-by-step scene", "A flat lay"]
    kinds = ["featured", "in_article", "in_article", "in_article"]
    texts = [f"{scene} illustrating {title}, natural light, no text" for scene in scenes]
    return {"prompts": [{"kind": k, "prompt": t} for k, t in zip(kinds, texts, strict=True)]}


WRITERS = {"keyword_clusters": clusters, "content_ideas": ideas, "image_prompts": image_prompts}
SECTIONS = ["Why it matters", "Getting started", "Common mistakes", "Putting it together"]
SECTION_TEXT = (
    "{heading} comes down to a few habits rather than expensive gear. Start small, change one "
    "thing at a time and keep notes, so that the next attempt begins from what worked instead of "
    "from scratch. People who look for {keywords} want a clear answer, so every step here stands "
    "on its own."
)


def article(prompt: str) -> str:
    """A Markdown article of about 250 words with a `# ` title and `## ` sections."""
    title = _find(r"titled '(.*?)'\. Brief", prompt) or "A practical guide"
    keywords = _find(r"keywords naturally: (.*?)\. Use", prompt) or title.lower()
    intro = (
        f"{title} is easier than it looks. This guide walks through what matters in the order "
        "you will need it and keeps the advice practical. Read it once, then come back to the "
        "section you need."
    )
    sections = [f"## {h}\n\n" + SECTION_TEXT.format(heading=h, keywords=keywords) for h in SECTIONS]
    return "\n\n".join([f"# {title}", intro, *sections]) + "\n"


def example_of(schema: dict) -> Any:
    """The smallest value fitting a JSON schema the fake has no writer for."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "array":
        return [example_of(schema.get("items") or {})]
    if kind == "object":
        return {name: example_of(sub) for name, sub in schema.get("properties", {}).items()}
    return {"string": "text", "integer": 0, "number": 0, "boolean": False}.get(kind)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--rpm", type=int, help="requests per minute, for every model")
    parser.add_argument("--tpm", type=int, help="tokens per minute, for every model")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(port=args.port)
    fake.set_limits(rpm=args.rpm, tpm=args.tpm)
    fake.latency_seconds = args.latency
    print(fake.base_url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake.server.serve_forever()


if __name__ == "__main__":
    main()
