"""Runs that paused because credits ran out resume by themselves once the balance covers their
next item, unless their site turned that off (`resume_when_funded`).

Every `CREDIT_CHECK_SECONDS` the orchestrator looks at the runs it holds that wait for credits,
reads their accounts' balances and sites' settings (one query, and none while no run waits),
and sends a ResumeRun for each that can pay: the same rule as a person's resume in the gateway
(contracts.admission.refuse_resume), through the same command path, so the decision and its
RunResumed event are the orchestrator's as always. The command's id is derived from the run and
its pause, so another replica or a restart sending it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contracts import ids
from contracts.admission import refuse_resume
from contracts.commands import ResumeRun
from contracts.db import tables as t
from contracts.envelope import Envelope, new_message
from contracts.state import RunState

SOURCE = "/automation/orchestrator/credit-watch"
CREDITS_PAUSE = "insufficient_credits"
RESUMED_BY = "system:credits"


@dataclass(frozen=True)
class Funds:
    """What the check reads for a waiting run: its account's balance and its site's setting."""

    balance: int
    resume_when_funded: bool


def waiting_for_credits(runs: Iterable[RunState]) -> list[RunState]:
    return [
        run
        for run in runs
        if run.status == "paused" and (run.pause_reason or "").startswith(CREDITS_PAUSE)
    ]


def read_funds(conn: Connection, runs: list[RunState]) -> dict[str, Funds]:
    """Per waiting run id, its funds; a run whose site is gone is left out."""
    if not runs:
        return {}
    sites = {run.site_id for run in runs}
    query = (
        sa.select(
            t.sites.c.id, t.accounts.c.credit_balance, t.automation_configs.c.resume_when_funded
        )
        .join(t.accounts, t.accounts.c.id == t.sites.c.account_id)
        .outerjoin(t.automation_configs, t.automation_configs.c.site_id == t.sites.c.id)
        .where(t.sites.c.id.in_(sites))
    )
    by_site = {
        row.id: Funds(row.credit_balance, row.resume_when_funded is not False)
        for row in conn.execute(query)
    }
    return {run.run_id: by_site[run.site_id] for run in runs if run.site_id in by_site}


def resumes(runs: list[RunState], funds: dict[str, Funds], now: datetime) -> list[Envelope]:
    """The ResumeRun commands due: for each waiting run whose site allows it and whose balance
    pays the next item of its stage."""
    due = []
    for run in runs:
        found = funds.get(run.run_id)
        if found is None or not found.resume_when_funded:
            continue
        if refuse_resume(stage=run.current_stage, balance=found.balance) is not None:
            continue
        reason = f"credits were added: the balance of {found.balance} pays for the next item"
        command = ResumeRun(run_id=run.run_id, requested_by=RESUMED_BY, reason=reason)
        paused_at = run.paused_at.isoformat() if run.paused_at else ""
        due.append(
            new_message(
                command,
                source=SOURCE,
                account_id=run.account_id,
                site_id=run.site_id,
                run_id=run.run_id,
                message_id=ids.resume_when_funded(run.run_id, paused_at),
                time=now,
            )
        )
    return due
