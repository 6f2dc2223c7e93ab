"""The webhook tables as the webhooks process uses them: enqueue a webhook event for the
endpoints that want it, claim due deliveries under a lease, record an attempt's outcome.

Each function runs in the caller's transaction (a sync Connection: run it through
`AsyncConnection.run_sync` or a thread). Rows are the truth: a delivery is pending until an
outcome is committed, so a process killed at any point leaves it to be claimed again when its
lease runs out, with the same `webhook-id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.engine import Connection

from api_gateway.webhooks.fairness import choose
from api_gateway.webhooks.payloads import WebhookEvent, endpoint_disabled, webhook_id
from api_gateway.webhooks.retry import Next
from api_gateway.webhooks.signing import Secret
from contracts.db import tables as t

LEASE = timedelta(seconds=60)  # an attempt takes 15 s at most; the rest is slack
EXCERPT_CHARS = 2000  # of a response body, kept with the attempt

_e, _s, _d = t.webhook_endpoints.c, t.webhook_secrets.c, t.webhook_deliveries.c


# --- enqueue -----------------------------------------------------------------------------------


def endpoints_for(event: WebhookEvent) -> sa.Select:
    """The endpoints that get `event`: the account's, enabled, made before it happened, wanting
    its type, covering its site (any endpoint, for an event about the whole account)."""
    covers_site = (
        sa.true()
        if event.site_id is None
        else sa.or_(_e.site_ids.is_(None), _e.site_ids.any_() == event.site_id)
    )
    return sa.select(_e.id).where(
        _e.account_id == event.account_id,
        _e.enabled,
        _e.created_at <= event.timestamp,
        _e.event_types.any_() == event.type,
        covers_site,
    )


def enqueue(conn: Connection, event: WebhookEvent, now: datetime) -> int:
    """A pending delivery per endpoint that wants `event`; one that exists (the same event read
    again) is left as it is. Returns how many were new."""
    endpoint_ids = conn.execute(endpoints_for(event)).scalars().all()
    if not endpoint_ids:
        return 0
    body = event.body().decode()
    rows = [
        {
            "id": webhook_id(endpoint_id, event),
            "endpoint_id": endpoint_id,
            "event_type": event.type,
            "site_id": event.site_id,
            "run_id": event.run_id,
            "body": body,
            "status": "pending",
            "next_attempt_at": now,
        }
        for endpoint_id in endpoint_ids
    ]
    new = conn.execute(
        insert(t.webhook_deliveries).values(rows).on_conflict_do_nothing().returning(_d.id)
    )
    return len(new.all())


def enqueue_all(conn: Connection, events: Sequence[WebhookEvent], now: datetime) -> dict[str, int]:
    """`enqueue` for each event; how many deliveries were new, by webhook type (for the
    caller to count once its transaction has committed)."""
    new: dict[str, int] = {}
    for event in events:
        new[event.type] = new.get(event.type, 0) + enqueue(conn, event, now)
    return new


# --- claim -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to one attempt, with what the attempt needs."""

    delivery_id: UUID
    endpoint_id: int
    url: str
    event_type: str
    body: bytes
    attempt: int  # the number of this attempt, from 1
    lease_token: UUID
    failing_since: datetime | None
    secrets: tuple[Secret, ...]


def _due(now: sa.ColumnElement) -> sa.ColumnElement[bool]:
    return sa.and_(
        _d.status == "pending",
        _d.next_attempt_at <= now,
        sa.or_(_d.lease_until.is_(None), _d.lease_until <= now),
    )


def lock_endpoints(now: datetime, limit: int, per_endpoint: int) -> sa.Select:
    """The enabled endpoints with due deliveries and room under their cap, the most overdue
    first, locked: another process claiming at the same time skips them, so a per-endpoint cap
    holds across processes. Endpoints that could take nothing are left out before the limit, or
    a few hanging endpoints with backlogs would fill it at every claim and starve the rest."""
    at_cap = (
        sa.select(_d.endpoint_id)
        .where(_d.status == "pending", _d.lease_until > sa.literal(now))
        .group_by(_d.endpoint_id)
        .having(sa.func.count() >= per_endpoint)
    )
    most_overdue = (
        sa.select(_d.endpoint_id)
        .join(t.webhook_endpoints, _e.id == _d.endpoint_id)
        .where(_due(sa.literal(now)), _e.enabled, _d.endpoint_id.not_in(at_cap))
        .group_by(_d.endpoint_id)
        .order_by(sa.func.min(_d.next_attempt_at))
        .limit(limit)
    )
    return (
        sa.select(_e.id, _e.url, _e.failing_since)
        .where(_e.enabled, _e.id.in_(most_overdue.scalar_subquery()))
        .with_for_update(skip_locked=True)
    )


def in_flight(now: datetime, endpoint_ids: Sequence[int]) -> sa.Select:
    return (
        sa.select(_d.endpoint_id, sa.func.count())
        .where(_d.endpoint_id.in_(endpoint_ids), _d.status == "pending", _d.lease_until > now)
        .group_by(_d.endpoint_id)
    )


def due_rows(now: datetime, endpoint_ids: Sequence[int], per_endpoint: int) -> sa.Select:
    """Each endpoint's first `per_endpoint` due rows, in due order (an index range per endpoint,
    however long its backlog)."""
    endpoints = (
        sa.func.unnest(sa.cast(list(endpoint_ids), ARRAY(sa.BigInteger)))
        .table_valued("id")
        .render_derived(name="ep")
    )
    firsts = (
        sa.select(_d.id, _d.endpoint_id, _d.next_attempt_at)
        .where(_d.endpoint_id == endpoints.c.id, _due(sa.literal(now)))
        .order_by(_d.next_attempt_at)
        .limit(per_endpoint)
        .lateral("firsts")
    )
    return (
        sa.select(firsts.c.id, firsts.c.endpoint_id, firsts.c.next_attempt_at)
        .select_from(endpoints)
        .join(firsts, sa.true())
        .order_by(firsts.c.endpoint_id, firsts.c.next_attempt_at)
    )


def most_overdue_first(rows: Sequence[tuple[UUID, int, datetime]]) -> list[tuple[UUID, int]]:
    """(id, endpoint, due) rows grouped by endpoint, each in due order, the endpoint whose
    oldest row is the most overdue first: the order `choose` serves them in."""
    first_due: dict[int, datetime] = {}
    for _, endpoint, due in rows:
        first_due[endpoint] = min(due, first_due.get(endpoint, due))
    ordered = sorted(rows, key=lambda r: (first_due[r[1]], r[1], r[2]))
    return [(delivery, endpoint) for delivery, endpoint, _ in ordered]


def lease(ids: Sequence[UUID], now: datetime, token: UUID) -> sa.Update:
    return (
        sa.update(t.webhook_deliveries)
        .where(_d.id.in_(ids))
        .values(
            lease_until=now + LEASE,
            lease_token=token,
            attempts=_d.attempts + 1,
            updated_at=sa.func.now(),
        )
        .returning(_d.id, _d.endpoint_id, _d.event_type, _d.body, _d.attempts)
    )


def claim(conn: Connection, now: datetime, slots: int, per_endpoint: int) -> list[Claimed]:
    """Lease up to `slots` due deliveries, at most `per_endpoint` in flight per endpoint. Run it
    in a transaction of its own and commit before sending anything: the locks on the endpoints
    last only as long as the claim."""
    if slots <= 0:
        return []
    endpoints = {row.id: row for row in conn.execute(lock_endpoints(now, slots, per_endpoint))}
    if not endpoints:
        return []
    ids = sorted(endpoints)
    flying = dict(conn.execute(in_flight(now, ids)).all())
    due = conn.execute(due_rows(now, ids, per_endpoint)).all()
    chosen = choose(most_overdue_first(due), flying, per_endpoint, slots)
    if not chosen:
        return []
    token = uuid4()
    leased = conn.execute(lease(chosen, now, token)).all()
    held = secrets_of(conn, sorted({row.endpoint_id for row in leased}))
    return [
        Claimed(
            delivery_id=row.id,
            endpoint_id=row.endpoint_id,
            url=endpoints[row.endpoint_id].url,
            event_type=row.event_type,
            body=row.body.encode(),
            attempt=row.attempts,
            lease_token=token,
            failing_since=endpoints[row.endpoint_id].failing_since,
            secrets=held.get(row.endpoint_id, ()),
        )
        for row in leased
    ]


def secrets_of(conn: Connection, endpoint_ids: Sequence[int]) -> dict[int, tuple[Secret, ...]]:
    query = sa.select(_s.endpoint_id, _s.secret, _s.created_at, _s.expires_at).where(
        _s.endpoint_id.in_(endpoint_ids)
    )
    held: dict[int, list[Secret]] = {}
    for row in conn.execute(query):
        held.setdefault(row.endpoint_id, []).append(
            Secret(row.secret, row.created_at, row.expires_at)
        )
    return {endpoint: tuple(secrets) for endpoint, secrets in held.items()}


# --- record ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempted:
    """What one attempt did: its outcome (`delivered`, `failed`, `refused`), the HTTP status when
    an answer came, how long it took, the error when there was one, the answer's first bytes."""

    at: datetime
    outcome: str
    status: int | None
    latency_ms: int
    error: str | None = None
    response: str | None = None


def record(conn: Connection, claimed: Claimed, attempted: Attempted, step: Next) -> bool:
    """Write the attempt and what follows it, in the caller's transaction. False, and nothing
    written, when the lease was lost (another process claimed the delivery after this lease ran
    out, or the endpoint was disabled meanwhile): that process's attempt is the one that counts.
    """
    excerpt = attempted.response[:EXCERPT_CHARS] if attempted.response else None
    # The endpoint first, as a claim does: a claim holding it while this waits on a delivery
    # row the claim wants would be a deadlock.
    conn.execute(sa.select(_e.id).where(_e.id == claimed.endpoint_id).with_for_update())
    updated = conn.execute(
        sa.update(t.webhook_deliveries)
        .where(
            _d.id == claimed.delivery_id,
            _d.lease_token == claimed.lease_token,
            _d.status == "pending",
        )
        .values(
            status=step.delivery,
            next_attempt_at=step.next_attempt_at,
            lease_until=None,
            lease_token=None,
            last_attempt_at=attempted.at,
            last_status=attempted.status,
            last_latency_ms=attempted.latency_ms,
            last_error=attempted.error or step.reason,
            last_response=excerpt,
            updated_at=sa.func.now(),
        )
        .returning(_d.id)
    ).first()
    if updated is None:
        return False
    conn.execute(
        sa.insert(t.webhook_attempts).values(
            delivery_id=claimed.delivery_id,
            attempt=claimed.attempt,
            at=attempted.at,
            outcome=attempted.outcome,
            status=attempted.status,
            latency_ms=attempted.latency_ms,
            error=attempted.error,
            response=excerpt,
        )
    )
    # Attempts of one endpoint run side by side: a failure keeps the earliest failing_since,
    # rather than the value this attempt's claim read.
    failing = (
        sa.null()
        if step.delivery == "delivered"
        else sa.func.coalesce(_e.failing_since, attempted.at)
    )
    conn.execute(
        sa.update(t.webhook_endpoints)
        .where(_e.id == claimed.endpoint_id)
        .values(failing_since=failing)
    )
    if step.disable is not None:
        disable(conn, claimed.endpoint_id, step.disable, attempted.at)
    return True


def disable(conn: Connection, endpoint_id: int, reason: str, now: datetime) -> None:
    """The endpoint gets no more deliveries; its pending ones fail with the reason (attempts in
    flight then record nothing: see `record`). The account's other endpoints that want
    `endpoint.disabled` are told, in the same transaction."""
    disabled = conn.execute(
        sa.update(t.webhook_endpoints)
        .where(_e.id == endpoint_id, _e.enabled)
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=sa.func.now())
        .returning(_e.account_id, _e.url)
    ).first()
    if disabled is not None:
        told = endpoint_disabled(disabled.account_id, endpoint_id, disabled.url, reason, now)
        enqueue(conn, told, now)
    conn.execute(
        sa.update(t.webhook_deliveries)
        .where(_d.endpoint_id == endpoint_id, _d.status == "pending")
        .values(
            status="failed",
            next_attempt_at=None,
            last_error=f"the endpoint was disabled: {reason}",
            updated_at=sa.func.now(),
        )
    )
