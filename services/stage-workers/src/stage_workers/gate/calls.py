"""The stages' AI: every call to the provider passes the gate. A 429 rests the lane as the
provider advises and the call waits its turn again; a timeout, a dropped connection or a 5xx
counts toward the lane's circuit and, while the circuit stays closed, toward the item's own
attempts; while the circuit is open the call waits, and the run hears of it through the call's
scope. Nothing that waits is failed or charged. Every call is recorded with what it used and
cost; the batch writes the records with the item's result. Each call is one GenAI span, its
attempts events on it (ai/spans.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from contracts.values import clip
from stage_workers.ai import spans
from stage_workers.ai.base import (
    AI_FUNCTIONS,
    Answer,
    FatalAIError,
    PermanentAIError,
    Provider,
    ProviderUnavailable,
    RateLimited,
    Usage,
)
from stage_workers.ai.prices import PriceTable
from stage_workers.ai.retry import PoisonedItem
from stage_workers.gate.gate import Gate, Lane, Ticket
from stage_workers.gate.journal import Journal, UnitKey, decode_draft, encode_draft
from stage_workers.gate.lane import Wait


class ProviderWaitTooLong(Exception):
    """The provider has held calls back for longer than the longest wait: the run pauses."""

    def __init__(self, lane: Lane, wait: Wait) -> None:
        since = datetime.fromtimestamp(wait.since, UTC).isoformat(timespec="seconds")
        super().__init__(
            f"waiting for the AI provider ({lane.provider} {lane.model}): {wait.reason}, "
            f"since {since}"
        )
        self.wait = wait


@dataclass(frozen=True)
class CallRecord:
    function: str
    provider: str
    model_requested: str
    usage: Usage | None
    latency_ms: int
    waited_ms: int  # at the gate, before the call was sent
    outcome: str  # answered | rate_limited | unavailable | refused | fatal
    attempt: int
    error: str | None
    cost_usd: Decimal | None
    price_version: str
    via: str = "call"  # or "provider_batch": a line of an economy run's provider batch
    saved_usd: Decimal | None = None  # what the batch price saved against the standard one


Announce = Callable[[Lane, Wait], Awaitable[None]]


async def _nothing(lane: Lane, wait: Wait) -> None:
    return None


@dataclass
class CallScope:
    """Whose calls these are (admission takes turns by run), where waits are announced, and the
    records of the calls made so far."""

    run_id: str
    waiting: Announce = _nothing
    recovered: Announce = _nothing
    records: list[CallRecord] = field(default_factory=list)
    unit: UnitKey | None = None  # the unit the calls are for, when they are stored (journal.py)

    def take_records(self) -> list[CallRecord]:
        taken, self.records = self.records, []
        return taken


SCOPE: ContextVar[CallScope] = ContextVar("ai_call_scope")
# While another worker's call for the same unit is in flight, look for its answer this often.
CLAIM_POLL_SECONDS = 1.0
_IN_FLIGHT = object()  # what asking answers when another worker holds the call
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Try:
    """One attempt at a call: its number, how long it waited at the gate, when it was sent."""

    number: int
    waited_ms: int
    sent: float  # perf_counter


@dataclass(frozen=True)
class CallRules:
    call_timeout_seconds: float = 120.0
    # Failures a single item may meet while the provider otherwise answers.
    max_attempts: int = 4
    first_wait_seconds: float = 0.5
    longest_wait_seconds: float = 1800.0
    default_cool_seconds: float = 1.0
    # A call kept waiting this long at its model's gate goes to the function's second model.
    fallback_after_seconds: float = 60.0


@dataclass(frozen=True)
class Route:
    """A provider and the lane its calls of one function pass."""

    provider: Provider
    lane: Lane


class _TooLong(Exception):
    """Admission took longer than the call may wait before it goes to the second model."""


class GatedAI:
    """The `AIProvider` the stages use, over a `Provider` and the gate."""

    def __init__(
        self,
        provider: Provider,
        lanes: dict[str, Lane],
        gate: Gate,
        rules: CallRules,
        prices: PriceTable,
        journal: Journal | None = None,
        fallbacks: dict[str, Route] | None = None,
    ) -> None:
        self.provider = provider
        self.lanes = lanes  # by function
        self.gate = gate
        self.rules = rules
        self.prices = prices
        self.journal = journal
        self.fallbacks = fallbacks or {}  # the second model's route, by function

    def __getattr__(self, function: str) -> Any:
        if function not in AI_FUNCTIONS:
            raise AttributeError(function)

        async def call(*args: Any) -> Any:
            return await self._call(function, args)

        return call

    async def _call(self, function: str, args: tuple) -> Any:
        scope = SCOPE.get(None) or CallScope(run_id="")
        lane = self.lanes[function]
        key = scope.unit if self.journal is not None and lane.shared else None
        with spans.ai_call(function, lane.provider, lane.model):
            if key is None:
                return await self._ask(function, args, scope, lane, None)
            return await self._call_once(function, args, scope, lane, key)

    async def _call_once(
        self, function: str, args: tuple, scope: CallScope, lane: Lane, key: UnitKey
    ) -> Any:
        """The unit's call through the journal: its stored answer if there is one, else the call,
        claimed before it is sent, waiting while another worker's call for it is in flight."""
        first = len(scope.records)
        holder = self.journal.holder()
        answered = False
        try:
            while True:
                stored = await self.gate.offload(self.journal.answered, key, function)
                if stored is not None:
                    answered = True
                    spans.stored_answer()
                    return decode_draft(function, stored)
                draft = await self._ask(function, args, scope, lane, (key, holder))
                if draft is not _IN_FLIGHT:
                    break
                await asyncio.sleep(CLAIM_POLL_SECONDS)  # another worker's call is in flight
            answered = True
            await self._store(key, function, draft, scope, first)
            return draft
        finally:
            if not answered:
                await self.gate.offload(self.journal.release, key, function, holder)

    async def _claim(self, claim: tuple[UnitKey, str], function: str) -> bool:
        key, holder = claim
        return await self.gate.offload(self.journal.claim, key, function, holder)

    async def _store(
        self, key: UnitKey, function: str, draft: Any, scope: CallScope, first: int
    ) -> None:
        """Store the answer and the call's records until the unit's write takes them."""
        records = scope.records[first:]
        try:
            data = encode_draft(function, draft)
            stored = await self.gate.offload(self.journal.store, key, function, data, records)
        except Exception:  # the database is away: the records stay with the unit, unstored
            log.exception("could not store the answer of %s for %s", function, key)
            return
        if stored:
            del scope.records[first:]

    async def _ask(
        self,
        function: str,
        args: tuple,
        scope: CallScope,
        lane: Lane,
        claim: tuple[UnitKey, str] | None,
    ) -> Any:
        """Admission, the call and what follows its errors; with a `claim` (the unit, and the
        call's holder), the call is claimed before it is sent, or not sent at all."""
        cost = self.provider.estimate_tokens(function, *args)
        first = Route(self.provider, lane)
        item_failures, attempt, announced = 0, 0, None
        while True:
            asked = time.perf_counter()
            (route, ticket), announced = await self._route(function, first, scope, cost, announced)
            lane = route.lane
            if claim is not None and not await self._claim(claim, function):
                await self.gate.unused(ticket)
                return _IN_FLIGHT
            attempt += 1
            started = time.perf_counter()
            tried = _Try(attempt, round((started - asked) * 1000), started)
            try:
                async with asyncio.timeout(self.rules.call_timeout_seconds):
                    answer: Answer = await getattr(route.provider, function)(*args)
            except TimeoutError:
                error: Exception = ProviderUnavailable(
                    f"no answer within {self.rules.call_timeout_seconds:g} s"
                )
            except (RateLimited, ProviderUnavailable, PermanentAIError, FatalAIError) as known:
                error = known
            except Exception as unforeseen:  # an answer the provider could not make sense of
                error = PermanentAIError(str(unforeseen) or type(unforeseen).__name__)
            else:
                self._record(scope, function, lane, tried, "answered", answer.usage)
                spans.answered(answer, lane.provider, lane.model)
                exhausted = answer.advice.exhausted_for() if answer.advice else None
                await self.gate.answered(ticket, _tokens(answer.usage), exhausted)
                if announced is not None:
                    await scope.recovered(first.lane, announced)
                return answer.draft
            item_failures += await self._after_error(error, scope, function, lane, ticket, tried)
            if item_failures >= self.rules.max_attempts:
                raise PoisonedItem(f"gave up after {attempt} attempts: {error}", attempt)
            if item_failures and isinstance(error, ProviderUnavailable):
                await asyncio.sleep(self.rules.first_wait_seconds * 2 ** (item_failures - 1))

    async def _after_error(
        self,
        error: Exception,
        scope: CallScope,
        function: str,
        lane: Lane,
        ticket: Ticket,
        tried: _Try,
    ) -> int:
        """Record the failed call, tell the gate, and say whether it counts against the item
        (1) or not (0); raise when the item or the run cannot go on."""
        match error:
            case RateLimited(advice=advice):
                self._record(scope, function, lane, tried, "rate_limited", None, error)
                await self.gate.rate_limited(
                    ticket, advice.cool_down(self.rules.default_cool_seconds)
                )
                return 0
            case ProviderUnavailable():
                self._record(scope, function, lane, tried, "unavailable", None, error)
                healthy = await self.gate.failed(ticket, str(error))
                return 1 if healthy else 0
            case FatalAIError():
                self._record(scope, function, lane, tried, "fatal", None, error)
                raise error
            case _:
                self._record(scope, function, lane, tried, "refused", None, error)
                # The provider answered: for the lane that is a success.
                await self.gate.answered(ticket, ticket.cost, None)
                raise PoisonedItem(str(error), tried.number) from error

    async def _route(
        self, function: str, first: Route, scope: CallScope, cost: int, announced: Wait | None
    ) -> tuple[tuple[Route, Ticket], Wait | None]:
        """Admission at the first model's lane; for a function with a second model, at the
        second's once the first has kept the call waiting for `fallback_after_seconds`."""
        second = self.fallbacks.get(function)
        if second is None:
            ticket, announced = await self._admit(first.lane, scope, cost, announced)
            return (first, ticket), announced
        try:
            patience = self.rules.fallback_after_seconds
            ticket, announced = await self._admit(first.lane, scope, cost, announced, patience)
            return (first, ticket), announced
        except _TooLong as too_long:
            announced = too_long.args[0]
        ticket, _ = await self._admit(second.lane, scope, cost, None)
        return (second, ticket), announced

    async def _admit(
        self,
        lane: Lane,
        scope: CallScope,
        cost: int,
        announced: Wait | None,
        patience: float | None = None,
    ) -> tuple[Ticket, Wait | None]:
        """Wait for admission; announce a wait the provider imposes, once per wait; give up
        past the longest wait, or past `patience` (a second model waits)."""
        began = time.time()
        admission = asyncio.ensure_future(self.gate.admit(lane, scope.run_id, cost))
        try:
            while True:
                done, _ = await asyncio.wait({admission}, timeout=1.0)
                if done:
                    return admission.result(), announced
                wait = self.gate.waiting(lane)
                # Waited long enough, or the provider has held the lane back long enough.
                since = min(began, wait.since) if wait is not None else began
                if patience is not None and time.time() - since >= patience:
                    raise _TooLong(announced)
                if wait is None:
                    continue
                if wait != announced:
                    await scope.waiting(lane, wait)
                    announced = wait
                if time.time() - wait.since > self.rules.longest_wait_seconds:
                    raise ProviderWaitTooLong(lane, wait)
        finally:
            if not admission.done():
                admission.cancel()

    def _record(
        self,
        scope: CallScope,
        function: str,
        lane: Lane,
        tried: _Try,
        outcome: str,
        usage: Usage | None,
        error: Exception | None = None,
    ) -> None:
        cost = self.prices.cost(lane.model, usage) if usage is not None else Decimal(0)
        latency_ms = round((time.perf_counter() - tried.sent) * 1000)
        spans.attempted(outcome, tried.number, tried.waited_ms, latency_ms)
        scope.records.append(
            CallRecord(
                function=function,
                provider=lane.provider,
                model_requested=lane.model,
                usage=usage,
                latency_ms=latency_ms,
                waited_ms=tried.waited_ms,
                outcome=outcome,
                attempt=tried.number,
                error=clip(str(error)) if error is not None else None,
                cost_usd=cost,
                price_version=self.prices.version,
            )
        )


def _tokens(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens
