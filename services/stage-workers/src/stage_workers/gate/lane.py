"""One provider + model (+ key): its budgets, its cool-down after a 429 and its circuit breaker,
as a frozen state and pure functions over it. The state lives in PostgreSQL so every worker
process shares it (store.py); nothing here reads a clock or a database.

Budgets are token buckets refilled continuously, holding at most `burst_seconds` of the
per-minute limit, because providers enforce per-minute limits over shorter periods ("300 per
minute" may mean 5 per second). Half a second of it, not a whole one: calls admitted apart can
reach the provider later and closer together (a busy event loop or machine, the network), and a
bucket of the provider's own size leaves no room for that.

A call is admitted while the request bucket holds one request and the token bucket is not in
debt; the call's estimated tokens are reserved (the bucket may go below zero for one large call)
and reconciled with the real usage afterwards.

Shares: every worker process takes turns by run among its own waiting calls, and the processes
share a lane by the runs each has waiting, each run counted once: a run waiting in k processes
counts 1/k in each, and a process's part of the lane's pace is the sum of its runs' parts over
the number of runs waiting anywhere (its credit refills at that share, up to that share of a
burst). So every run waiting gets an even part of the lane, whichever processes hold its calls.
Without shares, processes would split the lane evenly whatever they hold, and the runs of a
process holding few would go faster than the rest; with shares by count alone, a run whose
batches were spread over two processes took a turn in each, twice a run's part. A process's
report counts for `share_seconds`.

The circuit: `failures_to_open` failures in a row (timeouts, dropped connections, 5xx) open it;
while open nothing is admitted but one probe at a time, first after `first_probe_seconds`, then
at doubling intervals up to `longest_probe_seconds`; the probe's success closes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

Circuit = Literal["closed", "open", "probing"]


@dataclass(frozen=True)
class Budget:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.requests_per_minute is None and self.tokens_per_minute is None


@dataclass(frozen=True)
class Rules:
    burst_seconds: float = 0.5  # see the module's docstring
    # Admit a little under the limit: the provider's clock and ours never agree exactly.
    headroom: float = 0.97
    failures_to_open: int = 5
    first_probe_seconds: float = 2.0
    longest_probe_seconds: float = 30.0
    # A probe that never reports back (its worker died) is replaced after this long: the
    # longest a call may take, and a little more.
    probe_lease_seconds: float = 150.0
    # A cool-down at least this long is shown as waiting for the provider; shorter ones are
    # the ordinary pace of a busy budget.
    visible_cool_seconds: float = 5.0
    # How long a process's report of the runs it has waiting counts for.
    share_seconds: float = 3.0


@dataclass(frozen=True)
class Share:
    """One worker process's part of a lane: the runs it reported waiting, and the calls it may
    still take (refilled at its share of the lane's pace) as of `at`."""

    process: str
    runs: tuple[str, ...]  # the run ids
    credit: float
    at: float


@dataclass(frozen=True)
class Wait:
    """Why calls to the lane are held back by the provider, and since when (epoch seconds)."""

    reason: str
    since: float


@dataclass(frozen=True)
class LaneState:
    requests: float
    tokens: float
    refilled_at: float
    cool_until: float = 0.0
    cool_since: float = 0.0
    circuit: Circuit = "closed"
    failures: int = 0  # in a row, while closed
    opened_at: float | None = None
    reason: str | None = None  # why the circuit opened
    probe_at: float = 0.0  # while open: when the next probe may go
    probe_until: float = 0.0  # while probing: when the probe counts as lost
    backoff: float = 0.0  # the interval before the next probe after a failed one
    shares: tuple[Share, ...] = ()

    @classmethod
    def full(cls, budget: Budget, rules: Rules, now: float) -> LaneState:
        requests, tokens = _capacity(budget, rules)
        return cls(requests=requests, tokens=tokens, refilled_at=now)

    def waiting(self, rules: Rules, now: float) -> Wait | None:
        if self.circuit != "closed":
            return Wait(self.reason or "the provider is unavailable", self.opened_at or now)
        if (
            self.cool_until - self.cool_since >= rules.visible_cool_seconds
            and now < self.cool_until
        ):
            return Wait("rate limited by the provider", self.cool_since)
        return None


@dataclass(frozen=True)
class Decision:
    state: LaneState
    admitted: int  # how many of the costs asked for, from the first
    probe: bool  # the one admitted call is the circuit's probe
    wait: float  # seconds until asking again is worth it (0 when all were admitted)
    waiting: Wait | None  # set when the provider holds the calls back (not our own pace)


def _rates(budget: Budget, rules: Rules) -> tuple[float | None, float | None]:
    def per_second(limit: int | None) -> float | None:
        return None if limit is None else limit * rules.headroom / 60

    return per_second(budget.requests_per_minute), per_second(budget.tokens_per_minute)


def _capacity(budget: Budget, rules: Rules) -> tuple[float, float]:
    rate_r, rate_t = _rates(budget, rules)
    requests = max(1.0, rate_r * rules.burst_seconds) if rate_r is not None else 0.0
    tokens = max(1.0, rate_t * rules.burst_seconds) if rate_t is not None else 0.0
    return requests, tokens


def refill(state: LaneState, budget: Budget, rules: Rules, now: float) -> LaneState:
    elapsed = max(now - state.refilled_at, 0.0)
    rate_r, rate_t = _rates(budget, rules)
    cap_r, cap_t = _capacity(budget, rules)
    requests = min(cap_r, state.requests + elapsed * rate_r) if rate_r is not None else 0.0
    tokens = min(cap_t, state.tokens + elapsed * rate_t) if rate_t is not None else 0.0
    # A rest after a 429 sets refilled_at ahead: nothing refills before it ends.
    return replace(state, requests=requests, tokens=tokens, refilled_at=max(now, state.refilled_at))


def admit(
    state: LaneState,
    budget: Budget,
    rules: Rules,
    now: float,
    costs: Sequence[int],
    process: str | None = None,
    runs: tuple[str, ...] = (),
) -> Decision:
    """Admit as many of `costs` (estimated tokens per call, in the order asked) as the lane lets
    through now, for `process`, which has calls of `runs` (run ids) waiting."""
    state = refill(state, budget, rules, now)
    live = tuple(s for s in state.shares if now < s.at + rules.share_seconds)
    state = replace(state, shares=live)
    if state.circuit != "closed":
        return _probe(state, rules, now)
    if now < state.cool_until:
        wait = state.cool_until - now
        return Decision(state, 0, False, wait, state.waiting(rules, now))
    rate_r, rate_t = _rates(budget, rules)
    before = next((s for s in live if s.process == process), None)
    state = replace(state, shares=tuple(s for s in live if s.process != process))
    part = _part(state, budget, rules, now, process, runs, costs, before)
    requests, tokens, admitted = state.requests, state.tokens, 0
    for cost in costs:
        if (rate_r is not None and requests < 1) or (rate_t is not None and tokens <= 0):
            break
        if part is not None and part.credit - admitted < 1:
            break
        requests -= 1 if rate_r is not None else 0
        tokens -= cost if rate_t is not None else 0
        admitted += 1
    state = replace(state, requests=requests, tokens=tokens)
    if part is not None:
        part = replace(part, credit=part.credit - admitted)
        state = replace(state, shares=(*state.shares, part))
    if admitted == len(costs):
        return Decision(state, admitted, False, 0.0, None)
    wait = max(
        (1 - requests) / rate_r if rate_r is not None and requests < 1 else 0.0,
        (1e-3 - tokens) / rate_t if rate_t is not None and tokens <= 0 else 0.0,
        _credit_wait(part, state, budget, rules, costs),
    )
    return Decision(state, admitted, False, wait, None)


def _pace(budget: Budget, rules: Rules, costs: Sequence[int]) -> float | None:
    """The lane's calls per second: the request budget's, or the token budget's at the mean
    estimated cost of the calls asked for, whichever is lower."""
    rate_r, rate_t = _rates(budget, rules)
    paces = [rate_r] if rate_r is not None else []
    if rate_t is not None and costs:
        paces.append(rate_t / max(1.0, sum(costs) / len(costs)))
    return min(paces) if paces else None


def _part(
    state: LaneState,
    budget: Budget,
    rules: Rules,
    now: float,
    process: str | None,
    runs: tuple[str, ...],
    costs: Sequence[int],
    before: Share | None,
) -> Share | None:
    """The asking process's share (the others' are in `state`), its credit refilled to now;
    None when shares do not apply (no process named, nothing asked, a lane without a budget)."""
    pace = _pace(budget, rules, costs)
    if process is None or not runs or pace is None:
        return None
    share = part_of_runs(runs, [s.runs for s in state.shares])
    cap = max(1.0, share * pace * rules.burst_seconds)
    if before is None:
        return Share(process, runs, cap, now)
    credit = min(cap, before.credit + share * pace * max(now - before.at, 0.0))
    return Share(process, runs, credit, now)


def _credit_wait(
    part: Share | None, state: LaneState, budget: Budget, rules: Rules, costs: Sequence[int]
) -> float:
    if part is None or part.credit >= 1:
        return 0.0
    pace = _pace(budget, rules, costs) or 0.0
    others = [s.runs for s in state.shares if s.process != part.process]
    share = part_of_runs(part.runs, others)
    return (1 - part.credit) / (share * pace) if pace else 0.0


def holders(own: Iterable[str], others: Iterable[Iterable[str]]) -> Counter[str]:
    """For each run waiting anywhere: in how many processes its calls wait."""
    counts = Counter(set(own))
    for runs in others:
        counts.update(set(runs))
    return counts


def part_of_runs(own: Iterable[str], others: Iterable[Iterable[str]]) -> float:
    """A process's part of a lane: each of its runs' part (1 over the processes the run waits
    in), over the runs waiting anywhere."""
    counts = holders(own, others)
    return sum(1 / counts[run] for run in set(own)) / len(counts)


def _probe(state: LaneState, rules: Rules, now: float) -> Decision:
    waiting = state.waiting(rules, now)
    if state.circuit == "probing" and now < state.probe_until:
        return Decision(state, 0, False, min(state.probe_until - now, 1.0), waiting)
    if state.circuit == "open" and now < state.probe_at:
        return Decision(state, 0, False, state.probe_at - now, waiting)
    probing = replace(state, circuit="probing", probe_until=now + rules.probe_lease_seconds)
    return Decision(probing, 1, True, 0.0, waiting)


def rate_limited(state: LaneState, rules: Rules, now: float, cool_seconds: float) -> LaneState:
    """A 429: the lane rests for what the provider advised, and its buckets are emptied (they
    were wrong about what the provider would take)."""
    until = now + max(cool_seconds, 0.0)
    if until <= state.cool_until:
        return state
    since = state.cool_since if now < state.cool_until else now
    return replace(
        state,
        cool_until=until,
        cool_since=since,
        requests=min(state.requests, 0.0),
        tokens=min(state.tokens, 0.0),
        refilled_at=until,
    )


def exhausted(state: LaneState, now: float, seconds: float) -> LaneState:
    """An answer said a budget is spent for `seconds`: wait for that without a 429."""
    if now + seconds <= state.cool_until:
        return state
    since = state.cool_since if now < state.cool_until else now
    return replace(state, cool_until=now + seconds, cool_since=since)


def failed(state: LaneState, rules: Rules, now: float, reason: str, probe: bool) -> LaneState:
    """A timeout, a dropped connection or a 5xx."""
    if probe or state.circuit == "probing":
        backoff = min(
            max(state.backoff * 2, rules.first_probe_seconds), rules.longest_probe_seconds
        )
        return replace(
            state, circuit="open", probe_at=now + backoff, backoff=backoff, probe_until=0.0
        )
    if state.circuit == "open":
        return state  # a call admitted before it opened, failing late: nothing new
    failures = state.failures + 1
    if failures < rules.failures_to_open:
        return replace(state, failures=failures)
    return replace(
        state,
        circuit="open",
        failures=failures,
        opened_at=now,
        reason=reason,
        probe_at=now + rules.first_probe_seconds,
        backoff=rules.first_probe_seconds,
    )


def refunded(
    state: LaneState, budget: Budget, rules: Rules, now: float, token_refund: float
) -> LaneState:
    """Tokens reserved beyond what was used come back (or, if a call used more than it
    reserved, the difference is taken); a call admitted but never made gives back all."""
    state = refill(state, budget, rules, now)
    _, cap_t = _capacity(budget, rules)
    tokens = min(cap_t, state.tokens + token_refund) if budget.tokens_per_minute else 0.0
    return replace(state, tokens=tokens)


def succeeded(
    state: LaneState, budget: Budget, rules: Rules, now: float, token_refund: float
) -> LaneState:
    """An answer: its reserved tokens are reconciled with what it used, and the circuit closes."""
    state = refunded(state, budget, rules, now, token_refund)
    if state.circuit == "closed" and not state.failures:
        return state
    return replace(
        state,
        circuit="closed",
        failures=0,
        opened_at=None,
        reason=None,
        probe_at=0.0,
        probe_until=0.0,
        backoff=0.0,
    )
