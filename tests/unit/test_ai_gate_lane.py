"""A lane's budgets, cool-down and circuit breaker, as pure functions of its state and a time
the test chooses."""

from __future__ import annotations

import pytest

from stage_workers.gate import lane as L
from stage_workers.gate.lane import Budget, LaneState, Rules

RULES = Rules(headroom=1.0, burst_seconds=1.0)  # whole numbers: a second of the limit
PER_SECOND_5 = Budget(requests_per_minute=300)  # 5 a second, a burst of 5
T0 = 1_000_000.0


def fresh(budget: Budget = PER_SECOND_5) -> LaneState:
    return LaneState.full(budget, RULES, T0)


def test_a_full_bucket_admits_one_seconds_worth_then_paces():
    decision = L.admit(fresh(), PER_SECOND_5, RULES, T0, [10] * 8)
    assert decision.admitted == 5
    assert decision.wait == pytest.approx(0.2)  # the next request refills in 1/5 s
    assert decision.waiting is None  # our own pace, not the provider's doing


def test_the_bucket_refills_at_the_limit_and_never_beyond_a_burst():
    state = L.admit(fresh(), PER_SECOND_5, RULES, T0, [1] * 5).state
    assert L.admit(state, PER_SECOND_5, RULES, T0 + 0.4, [1] * 5).admitted == 2
    idle = L.admit(state, PER_SECOND_5, RULES, T0 + 60, [1] * 50)
    assert idle.admitted == 5


def test_headroom_keeps_the_pace_a_little_under_the_limit():
    rules = Rules(headroom=0.9, burst_seconds=1.0)
    state = LaneState.full(PER_SECOND_5, rules, T0)
    admitted = 0
    for tick in range(1, 601):  # ten simulated seconds, a look every 1/60 s
        decision = L.admit(state, PER_SECOND_5, rules, T0 + tick / 60, [1] * 10)
        state, admitted = decision.state, admitted + decision.admitted
    assert admitted == pytest.approx(4.5 * 10 + 4.5, abs=1)


def test_tokens_are_reserved_and_a_large_call_may_borrow_against_the_next_seconds():
    budget = Budget(tokens_per_minute=6000)  # 100 a second
    decision = L.admit(LaneState.full(budget, RULES, T0), budget, RULES, T0, [400, 10])
    assert decision.admitted == 1  # the bucket had 100; the 400 call went, leaving a debt
    assert decision.state.tokens == pytest.approx(-300)
    assert decision.wait == pytest.approx(3.0, abs=0.01)


def test_reconciling_gives_back_what_a_call_did_not_use():
    budget = Budget(tokens_per_minute=6000)
    state = L.admit(LaneState.full(budget, RULES, T0), budget, RULES, T0, [400]).state
    reconciled = L.succeeded(state, budget, RULES, T0, token_refund=350)
    assert reconciled.tokens == pytest.approx(50)


def test_unlimited_lanes_admit_everything():
    budget = Budget()
    decision = L.admit(LaneState.full(budget, RULES, T0), budget, RULES, T0, [10**6] * 100)
    assert decision.admitted == 100 and decision.wait == 0


def test_a_429_rests_the_whole_lane_for_what_the_provider_advised():
    state = L.rate_limited(fresh(), RULES, T0, cool_seconds=2.0)
    held = L.admit(state, PER_SECOND_5, RULES, T0 + 1, [1])
    assert held.admitted == 0 and held.wait == pytest.approx(1.0)
    assert held.waiting is None  # two seconds is the ordinary pace of a busy budget
    after = L.admit(held.state, PER_SECOND_5, RULES, T0 + 2.5, [1] * 5)
    assert after.admitted == 2  # the buckets were emptied and refill from the end of the rest


def test_a_long_rest_is_shown_as_waiting_for_the_provider():
    state = L.rate_limited(fresh(), RULES, T0, cool_seconds=30)
    decision = L.admit(state, PER_SECOND_5, RULES, T0 + 1, [1])
    assert decision.waiting == L.Wait("rate limited by the provider", T0)


def test_failures_in_a_row_open_the_circuit_and_a_success_between_resets_the_count():
    rules = Rules(failures_to_open=3)
    state = fresh()
    state = L.failed(state, rules, T0, "HTTP 503", probe=False)
    state = L.failed(state, rules, T0, "HTTP 503", probe=False)
    state = L.succeeded(state, PER_SECOND_5, rules, T0, 0)
    assert state.failures == 0
    for _ in range(3):
        state = L.failed(state, rules, T0 + 1, "HTTP 503", probe=False)
    assert state.circuit == "open" and state.opened_at == T0 + 1


def opened(rules: Rules) -> LaneState:
    state = fresh()
    for _ in range(rules.failures_to_open):
        state = L.failed(state, rules, T0, "HTTP 503: down", probe=False)
    return state


def test_an_open_circuit_admits_nothing_but_one_probe_when_its_time_comes():
    rules = Rules(failures_to_open=1, first_probe_seconds=2)
    state = opened(rules)
    early = L.admit(state, PER_SECOND_5, rules, T0 + 1, [1, 1, 1])
    assert early.admitted == 0 and early.wait == pytest.approx(1)
    assert early.waiting == L.Wait("HTTP 503: down", T0)
    due = L.admit(early.state, PER_SECOND_5, rules, T0 + 2, [1, 1, 1])
    assert (due.admitted, due.probe) == (1, True)
    others = L.admit(due.state, PER_SECOND_5, rules, T0 + 2.1, [1])
    assert others.admitted == 0  # one probe at a time


def test_failed_probes_back_off_doubling_up_to_the_longest_interval():
    rules = Rules(failures_to_open=1, first_probe_seconds=2, longest_probe_seconds=5)
    state, now, gaps = opened(rules), T0, []
    for _ in range(4):
        probe = L.admit(state, PER_SECOND_5, rules, state.probe_at, [1])
        assert probe.probe
        now = state.probe_at
        state = L.failed(probe.state, rules, now, "HTTP 503", probe=True)
        gaps.append(state.probe_at - now)
    assert gaps == [4, 5, 5, 5]
    assert state.opened_at == T0  # the wait is still the one that began at T0


def test_a_successful_probe_closes_the_circuit():
    rules = Rules(failures_to_open=1)
    probe = L.admit(opened(rules), PER_SECOND_5, rules, T0 + 10, [1])
    state = L.succeeded(probe.state, PER_SECOND_5, rules, T0 + 10.5, 0)
    assert state.circuit == "closed" and state.waiting(rules, T0 + 11) is None
    assert L.admit(state, PER_SECOND_5, rules, T0 + 11, [1, 1]).admitted == 2


def test_a_probe_whose_worker_died_is_replaced_after_its_lease():
    rules = Rules(failures_to_open=1, probe_lease_seconds=60)
    probe = L.admit(opened(rules), PER_SECOND_5, rules, T0 + 10, [1])
    assert L.admit(probe.state, PER_SECOND_5, rules, T0 + 69, [1]).admitted == 0
    again = L.admit(probe.state, PER_SECOND_5, rules, T0 + 71, [1])
    assert again.admitted == 1 and again.probe


def test_a_late_failure_of_a_call_admitted_before_the_circuit_opened_changes_nothing():
    rules = Rules(failures_to_open=1, first_probe_seconds=2)
    state = opened(rules)
    assert L.failed(state, rules, T0 + 1, "timeout", probe=False) == state


def test_giving_back_an_unused_reservation_leaves_an_open_circuit_open():
    """A call admitted but never made (its batch stopped) returns its tokens; only an answer
    says the provider is back."""
    budget = Budget(tokens_per_minute=6000)
    rules = Rules(headroom=1.0, burst_seconds=1.0, failures_to_open=1)
    spent = L.admit(LaneState.full(budget, rules, T0), budget, rules, T0, [300]).state
    state = L.failed(spent, rules, T0, "HTTP 503", probe=False)
    refunded = L.refunded(state, budget, rules, T0, token_refund=250)
    assert refunded.circuit == "open" and refunded.tokens == pytest.approx(50)
    assert L.succeeded(state, budget, rules, T0 + 1, token_refund=0).circuit == "closed"


def saturate(
    processes: dict[str, tuple[str, ...]], seconds: float, tick: float = 0.05
) -> dict[str, int]:
    """Every process asks for many calls each tick (as keepers do, in turn), reporting the runs
    it has waiting; returns the calls each was admitted."""
    budget = Budget(requests_per_minute=600)  # 10 a second
    state = LaneState.full(budget, RULES, T0)
    taken = dict.fromkeys(processes, 0)
    steps = round(seconds / tick)
    for step in range(1, steps + 1):
        order = list(processes) if step % 2 else list(reversed(processes))
        for process in order:
            decision = L.admit(
                state, budget, RULES, T0 + step * tick, [1] * 20, process, processes[process]
            )
            state, taken[process] = decision.state, taken[process] + decision.admitted
    return taken


def runs(*numbers: int) -> tuple[str, ...]:
    return tuple(f"run-{n}" for n in numbers)


def test_processes_share_a_lane_by_the_runs_they_have_waiting():
    taken = saturate({"a": runs(1, 2, 3), "b": runs(4)}, seconds=60)
    assert sum(taken.values()) == pytest.approx(600, abs=12)  # the lane's pace, whole
    assert taken["a"] / taken["b"] == pytest.approx(3.0, rel=0.05)


def test_a_run_waiting_in_two_processes_counts_once_half_in_each():
    # Runs 1 and 2 in a, run 2 also in b: a holds 1 + 1/2 of the 2 runs waiting, b 1/2.
    taken = saturate({"a": runs(1, 2), "b": runs(2)}, seconds=60)
    assert sum(taken.values()) == pytest.approx(600, abs=12)
    assert taken["a"] / taken["b"] == pytest.approx(3.0, rel=0.05)


def test_a_process_learns_in_how_many_processes_each_of_its_runs_waits():
    assert L.holders(runs(1, 2), [runs(2, 3), runs(2)]) == {"run-1": 1, "run-2": 3, "run-3": 1}
    assert L.part_of_runs(runs(1, 2), [runs(2, 3), runs(2)]) == pytest.approx((1 + 1 / 3) / 3)
    assert L.part_of_runs(runs(2), [runs(2)]) == pytest.approx(0.5)


def test_a_lone_process_has_the_whole_lane_and_a_silent_one_drops_out():
    assert saturate({"a": runs(1, 2)}, seconds=30)["a"] == pytest.approx(300, abs=12)
    budget = Budget(requests_per_minute=600)
    nine = runs(*range(9))
    state = L.admit(LaneState.full(budget, RULES, T0), budget, RULES, T0, [1], "b", nine).state
    # b reported 9 runs and went quiet; once its report is stale, a has the whole pace again.
    late = T0 + RULES.share_seconds + 1
    decision = L.admit(state, budget, RULES, late, [1] * 20, "a", runs(1))
    assert decision.admitted == 10
    assert [s.process for s in decision.state.shares] == ["a"]


def test_a_process_with_nothing_waiting_withdraws_its_share():
    budget = Budget(requests_per_minute=600)
    state = L.admit(
        LaneState.full(budget, RULES, T0), budget, RULES, T0, [1], "b", runs(1, 2)
    ).state
    assert [s.process for s in state.shares] == ["b"]
    assert L.admit(state, budget, RULES, T0 + 0.1, [], "b", ()).state.shares == ()
