"""`credits.low`: the sites whose next scheduled run the balance would not start.

There is no event for it: a balance falls when any run of the account is charged and rises with
a top-up, and the pending work grows with imports. So the webhooks process asks, with the
figures the scheduler's start check uses (`contracts.credits.estimate` over
`contracts.db.pending.pending_work`), when a run of the account ends or pauses for credits, and
in a sweep over every site whose next slot is near. The webhook's id is rooted in the site and
the slot (`payloads.credits_low`), so asking again is harmless: one warning per scheduled run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api_gateway.webhooks.payloads import WebhookEvent, credits_low
from contracts.credits import estimate
from contracts.db import tables as t
from contracts.db.pending import pending_work

HORIZON = timedelta(hours=24)  # slots further off are checked by a later sweep

_c, _s, _e = t.automation_configs.c, t.sites.c, t.webhook_endpoints.c


def _someone_listens() -> sa.ColumnElement[bool]:
    """An enabled endpoint of the site's account wants `credits.low` for the site: nothing is
    computed for accounts that would hear nothing."""
    return sa.exists().where(
        _e.account_id == _s.account_id,
        _e.enabled,
        _e.event_types.any_() == "credits.low",
        sa.or_(_e.site_ids.is_(None), _e.site_ids.any_() == _s.id),
    )


def scheduled_sites(now: datetime, account_id: int | None = None) -> sa.Select:
    """Sites with a scheduled run within the horizon and a listener; one account's or all."""
    query = (
        sa.select(_s.id, _s.account_id, _c.next_run_at, _c.start_check, t.accounts.c.credit_balance)
        .join(t.automation_configs, _c.site_id == _s.id)
        .join(t.accounts, t.accounts.c.id == _s.account_id)
        .where(
            _c.is_enabled,
            _c.next_run_at.is_not(None),
            _c.next_run_at <= now + HORIZON,
            _someone_listens(),
        )
        .order_by(_s.id)
    )
    return query if account_id is None else query.where(_s.account_id == account_id)


def low_credit_events(
    conn: Connection, now: datetime, account_id: int | None = None
) -> list[WebhookEvent]:
    """A `credits.low` for each such site whose balance fails its start check."""
    made = []
    for row in conn.execute(scheduled_sites(now, account_id)):
        figures = estimate(pending_work(conn, row.id), row.credit_balance, row.start_check)
        event = credits_low(row.account_id, row.id, figures, row.next_run_at, now)
        if event is not None:
            made.append(event)
    return made
