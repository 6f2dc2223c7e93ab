"""The gate in one worker process: calls wait in line per lane, taking turns by run, and one
keeper task per lane asks the shared lane (store.py) to admit the next of them. Every run with
calls waiting gets the next admission in turn, so a run with 5,000 items does not starve one
with 5; the stage pumps already spread every run's batches over the processes, and a run whose
calls wait in k processes takes a turn here for every k of the others' (lane.py: shares).

Reports of how calls ended change the shared lane at once when they matter to others (a 429, a
failure, a probe's result); the token refunds of ordinary answers (a call's reservation
reconciled with what it used) are summed and applied with the keeper's next round, which saves a
transaction per call."""

from __future__ import annotations

import asyncio
import heapq
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from stage_workers import metrics
from stage_workers.gate import lane as rules_of
from stage_workers.gate.lane import Budget, Decision, LaneState, Rules, Wait
from stage_workers.gate.store import LaneStore

log = logging.getLogger(__name__)
Offload = Callable[..., Awaitable[Any]]  # runs a blocking function off the event loop

# At most this many waiting calls are offered to one admission round.
ROUND_SIZE = 64
# While calls wait, look again at least this often: another process's probe may have closed the
# circuit, and the process's report of the runs it has waiting must stay fresh (its share).
RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Lane:
    key: str  # provider | endpoint | model | key fingerprint
    provider: str
    model: str
    budget: Budget
    shared: bool = True  # False: calls cost nothing and nothing limits them (the offline AI)


@dataclass(frozen=True)
class Ticket:
    lane: Lane
    cost: int
    probe: bool = False


@dataclass
class _Waiter:
    run_id: str
    cost: int
    admitted: asyncio.Future[Ticket]


@dataclass
class _Line:
    """The calls of one lane waiting in this process, by run, and the keeper serving them."""

    lane: Lane
    runs: OrderedDict[str, deque[_Waiter]] = field(default_factory=OrderedDict)
    keeper: asyncio.Task | None = None
    refund: float = 0.0  # tokens to give back with the next round
    answered: bool = False  # an answer came since the last round: failures are no longer in a row
    waiting: Wait | None = None  # what the provider holds the lane back for, as last seen
    reported: tuple[str, ...] = ()  # runs with calls waiting, as last told the shared lane
    # Per run waiting here: in how many processes it waits (as the last round saw the shared
    # lane), and its turns so far, each weighing that many: a run that also takes turns in
    # another process takes fewer here, so that it gets one run's part of the lane in all.
    spread: dict[str, int] = field(default_factory=dict)
    served: dict[str, float] = field(default_factory=dict)

    def next_in_turn(self, n: int) -> list[_Waiter]:
        """The next `n` waiters, without taking them: the run least served goes next (the one
        waiting longest among equals), its next turn weighing its spread."""
        start = min(self.served.values(), default=0.0)
        turns = [(self.served.get(run, start), i, run) for i, run in enumerate(self.runs)]
        heapq.heapify(turns)
        depth = dict.fromkeys(self.runs, 0)
        chosen: list[_Waiter] = []
        while turns and len(chosen) < n:
            served, i, run = heapq.heappop(turns)
            queue = self.runs[run]
            chosen.append(queue[depth[run]])
            depth[run] += 1
            if depth[run] < len(queue):
                heapq.heappush(turns, (served + self.spread.get(run, 1), i, run))
        return chosen

    def take(self, waiters: list[_Waiter]) -> list[_Waiter]:
        """Remove admitted waiters; each turn counts against its run; a served run goes to the
        back of the line among equals. Returns those still in line: one cancelled while its
        round ran (dropped) is not, and is not served."""
        start = min(self.served.values(), default=0.0)
        taken = []
        for waiter in waiters:
            run = waiter.run_id
            queue = self.runs.get(run)
            if queue is None or not any(w is waiter for w in queue):
                continue
            self.served[run] = self.served.get(run, start) + self.spread.get(run, 1)
            del self.runs[run]
            queue.remove(waiter)
            taken.append(waiter)
            if queue:
                self.runs[run] = queue
            else:
                self._gone(run)
        return taken

    def drop(self, waiter: _Waiter) -> None:
        queue = self.runs.get(waiter.run_id)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self.runs[waiter.run_id]
                self._gone(waiter.run_id)

    def _gone(self, run: str) -> None:
        """A run with nothing left waiting keeps no turns: when it comes back it starts level
        with the runs then waiting, neither ahead nor owed."""
        self.served.pop(run, None)
        self.spread.pop(run, None)

    @property
    def empty(self) -> bool:
        return not self.runs

    @property
    def count(self) -> int:
        return sum(len(queue) for queue in self.runs.values())


class Gate:
    def __init__(self, store: LaneStore | None, rules: Rules, offload: Offload) -> None:
        self.store = store
        self.rules = rules
        self.offload = offload
        self.lines: dict[str, _Line] = {}
        self.process = uuid.uuid4().hex[:12]  # names this process's share of each lane

    def _shares(self, lane: Lane) -> bool:
        """Whether the lane's calls pass the shared state at all (the offline AI's do not)."""
        return lane.shared and self.store is not None

    def waiting(self, lane: Lane) -> Wait | None:
        line = self.lines.get(lane.key)
        return line.waiting if line else None

    async def admit(self, lane: Lane, run_id: str, cost: int) -> Ticket:
        """Wait for the lane to admit one call of `cost` estimated tokens for `run_id`."""
        if not self._shares(lane):
            return Ticket(lane, cost)
        line = self.lines.setdefault(lane.key, _Line(lane))
        waiter = _Waiter(run_id, cost, asyncio.get_running_loop().create_future())
        line.runs.setdefault(run_id, deque()).append(waiter)
        self._keep(line)
        try:
            return await asyncio.shield(waiter.admitted)
        except asyncio.CancelledError:
            line.drop(waiter)
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                # Admitted as it was cancelled: the reservation comes back (no answer came).
                line.refund += waiter.cost
            raise

    # --- reports --------------------------------------------------------------------------

    async def answered(self, ticket: Ticket, used_tokens: int, exhausted_for: float | None) -> None:
        if not self._shares(ticket.lane):
            return
        line = self.lines.setdefault(ticket.lane.key, _Line(ticket.lane))
        refund = ticket.cost - used_tokens
        if ticket.probe or line.waiting is not None or exhausted_for:
            reconcile = partial(
                self._reconcile, lane=ticket.lane, refund=refund, exhausted_for=exhausted_for
            )
            await self._change(ticket.lane, reconcile)
            line.waiting = None
        else:
            line.refund += refund
            line.answered = True
            self._keep(line)

    async def unused(self, ticket: Ticket) -> None:
        """An admitted call that was not made: its reservation comes back (no answer came)."""
        if self._shares(ticket.lane):
            line = self.lines.setdefault(ticket.lane.key, _Line(ticket.lane))
            line.refund += ticket.cost
            self._keep(line)

    async def rate_limited(self, ticket: Ticket, cool_seconds: float) -> None:
        if self._shares(ticket.lane):
            await self._change(ticket.lane, partial(self._cool, cool_seconds=cool_seconds))

    async def failed(self, ticket: Ticket, reason: str) -> bool:
        """A timeout, a dropped connection or a 5xx; True while the lane's circuit stays closed
        (the failure may then be the item's own)."""
        if not self._shares(ticket.lane):
            return True
        fail = partial(self._fail, reason=reason, probe=ticket.probe)
        state = await self._change(ticket.lane, fail)
        return state.circuit == "closed"

    # --- the keeper -----------------------------------------------------------------------

    def _keep(self, line: _Line) -> None:
        if line.keeper is None or line.keeper.done():
            line.keeper = asyncio.create_task(self._serve(line), name=f"gate {line.lane.key}")

    async def _serve(self, line: _Line) -> None:
        try:
            await self._rounds(line)
        finally:
            metrics.gate_line(line.lane.provider, line.lane.model, line.count, held=False)

    async def _rounds(self, line: _Line) -> None:
        lane = line.lane
        # One more round once the line is empty, to withdraw the process's share.
        while not line.empty or line.refund or line.answered or line.reported:
            offered = line.next_in_turn(ROUND_SIZE)
            runs = tuple(line.runs)
            refund, line.refund = line.refund, 0.0
            answered, line.answered = line.answered, False
            costs = [w.cost for w in offered]
            try:
                admission = partial(
                    self._round,
                    lane=line.lane,
                    refund=refund,
                    answered=answered,
                    costs=costs,
                    runs=runs,
                )
                decision = await self._change(line.lane, admission)
            except Exception:  # the database is away: try again, nobody is failed for it
                log.exception("gate %s: admission failed; trying again", line.lane.key)
                line.refund += refund
                line.answered = line.answered or answered
                await asyncio.sleep(RECHECK_SECONDS)
                continue
            line.reported = runs
            line.spread = self._spread(runs, decision.state)
            admitted = offered[: decision.admitted]
            taken = {id(waiter) for waiter in line.take(admitted)}
            for n, waiter in enumerate(admitted):
                if id(waiter) not in taken:  # cancelled meanwhile: no call, its tokens back
                    line.refund += waiter.cost
                elif not waiter.admitted.done():
                    probe = decision.probe and n == 0
                    waiter.admitted.set_result(Ticket(line.lane, waiter.cost, probe))
            line.waiting = decision.waiting
            metrics.gate_line(lane.provider, lane.model, line.count, decision.waiting is not None)
            if not line.empty and decision.admitted < len(offered):
                await asyncio.sleep(max(min(decision.wait, RECHECK_SECONDS), 0.001))

    def _round(
        self,
        state: LaneState,
        now: float,
        lane: Lane,
        refund: float,
        answered: bool,
        costs: list[int],
        runs: tuple[str, ...],
    ) -> tuple[LaneState, Decision]:
        if answered:
            state = rules_of.succeeded(state, lane.budget, self.rules, now, refund)
        elif refund:
            state = rules_of.refunded(state, lane.budget, self.rules, now, refund)
        decision = rules_of.admit(
            state, lane.budget, self.rules, now, costs, process=self.process, runs=runs
        )
        return decision.state, decision

    def _spread(self, runs: tuple[str, ...], state: LaneState) -> dict[str, int]:
        """In how many processes each of this process's runs waits, as the lane's shares say
        after the round (its own share included)."""
        others = (s.runs for s in state.shares if s.process != self.process)
        counts = rules_of.holders(runs, others)
        return {run: counts[run] for run in runs}

    # Each change below takes the lane's state and the database's time and answers the new
    # state and what the caller learns.

    def _reconcile(
        self, state: LaneState, now: float, lane: Lane, refund: float, exhausted_for: float | None
    ) -> tuple[LaneState, LaneState]:
        state = rules_of.succeeded(state, lane.budget, self.rules, now, refund)
        if exhausted_for:
            state = rules_of.exhausted(state, now, exhausted_for)
        return state, state

    def _cool(self, state: LaneState, now: float, cool_seconds: float) -> tuple[LaneState, None]:
        return rules_of.rate_limited(state, self.rules, now, cool_seconds), None

    def _fail(
        self, state: LaneState, now: float, reason: str, probe: bool
    ) -> tuple[LaneState, LaneState]:
        state = rules_of.failed(state, self.rules, now, reason, probe)
        return state, state

    async def _change(self, lane: Lane, change: Callable[[LaneState, float], Any]) -> Any:
        return await self.offload(self.store.change, lane.key, lane.budget, change)
