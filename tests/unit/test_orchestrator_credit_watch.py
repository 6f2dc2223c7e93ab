"""A run paused because credits ran out is resumed by the orchestrator once its account's
balance pays for the next item of its stage, unless its site turned that off; other pauses are
left alone, and the command for one pause always has the same id."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from contracts.commands import ResumeRun
from contracts.state import RunState
from orchestrator.credit_watch import Funds, resumes, waiting_for_credits

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PAUSED_AT = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)


def run(run_id: str, status: str = "paused", reason: str | None = None, stage: int = 4):
    return replace(
        RunState(),
        run_id=run_id,
        account_id=1,
        site_id=2,
        status=status,
        current_stage=stage,
        pause_reason=reason,
        paused_at=PAUSED_AT,
    )


def test_only_runs_paused_for_credits_wait_for_them():
    runs = [
        run("a", reason="insufficient_credits"),
        run("b", reason="insufficient_credits: the next item costs 5"),
        run("c", reason="requested"),
        run("d", reason="ai_provider_unavailable: 503"),
        run("e", status="running", reason=None),
    ]
    assert [r.run_id for r in waiting_for_credits(runs)] == ["a", "b"]


def test_a_run_resumes_once_the_balance_pays_for_the_next_item_of_its_stage():
    waiting = [run("stage4", reason="insufficient_credits"), run("stage6", stage=6)]
    funds = {"stage4": Funds(5, True), "stage6": Funds(1, True)}  # stage 4 costs 5, 6 costs 2
    [command] = resumes(waiting, funds, NOW)
    assert command.run_id == "stage4" and command.site_id == 2 and command.account_id == 1
    assert isinstance(command.data, ResumeRun) and command.data.requested_by == "system:credits"
    assert "balance of 5" in command.data.reason
    assert resumes(waiting, {"stage4": Funds(4, True)}, NOW) == []


def test_a_site_that_turned_it_off_or_is_gone_is_left_paused():
    waiting = [run(run_id, reason="insufficient_credits") for run_id in ("off", "gone")]
    assert resumes(waiting, {"off": Funds(1000, False)}, NOW) == []


def test_the_command_for_one_pause_has_one_id_and_a_new_pause_another():
    waiting = [run("r", reason="insufficient_credits")]
    funds = {"r": Funds(100, True)}
    first, again = resumes(waiting, funds, NOW), resumes(waiting, funds, NOW.replace(hour=13))
    assert first[0].message_id == again[0].message_id
    later = [replace(waiting[0], paused_at=NOW)]
    assert resumes(later, funds, NOW)[0].message_id != first[0].message_id
