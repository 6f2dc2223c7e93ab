"""The webhooks process's SQL, without a database: the statements say what the ADR says (locked
claims that skip what another process holds, records guarded by the lease), and the steps
between them do the right thing with what the database answers. The statements themselves run
against PostgreSQL in the integration tests."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy.dialects import postgresql

from api_gateway.webhooks import store
from api_gateway.webhooks.payloads import WebhookEvent, webhook_id
from api_gateway.webhooks.retry import Next
from api_gateway.webhooks.signing import Secret, new_secret
from api_gateway.webhooks.store import Attempted, Claimed

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
EVENT = WebhookEvent(
    type="run.failed",
    timestamp=NOW - timedelta(seconds=3),
    account_id=7,
    site_id=42,
    run_id="run_x",
    data={"run_id": "run_x", "site_id": 42, "error": "boom", "stage": 4},
    origin="3f1e2f8c-0000-5000-8000-000000000001",
)


def sql(statement: Any) -> str:
    return str(statement.compile(dialect=postgresql.dialect()))


class Result:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def __iter__(self):
        return iter(self.rows)

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalars(self) -> Result:
        return Result([row[0] for row in self.rows])

    def tuples(self) -> Result:
        return self


class Connection:
    """Answers each statement with the next scripted rows and keeps what it was asked."""

    def __init__(self, *answers: list[Any]) -> None:
        self.answers = list(answers)
        self.executed: list[Any] = []

    def execute(self, statement: Any, *_: Any) -> Result:
        self.executed.append(statement)
        return Result(self.answers.pop(0) if self.answers else [])

    @property
    def texts(self) -> list[str]:
        return [sql(s) for s in self.executed]


# --- enqueue -----------------------------------------------------------------------------------


def test_the_endpoints_for_an_event_are_the_accounts_that_want_it_and_cover_its_site():
    text = sql(store.endpoints_for(EVENT))
    for clause in (
        "webhook_endpoints.account_id = ",
        "webhook_endpoints.enabled",
        "webhook_endpoints.created_at <= ",
        "= ANY (webhook_endpoints.event_types)",
        "webhook_endpoints.site_ids IS NULL OR ",
        "= ANY (webhook_endpoints.site_ids)",
    ):
        assert clause in text, clause


def test_enqueue_makes_one_row_per_endpoint_with_its_webhook_id_and_ignores_repeats():
    conn = Connection([(3,), (5,)], [(webhook_id(5, EVENT),)])
    assert store.enqueue(conn, EVENT, NOW) == 1  # the row for endpoint 3 was there already
    insert = conn.executed[1]
    assert "ON CONFLICT DO NOTHING" in sql(insert)
    rows = insert.compile(dialect=postgresql.dialect()).params
    assert rows["id_m0"] == webhook_id(3, EVENT) and rows["id_m1"] == webhook_id(5, EVENT)
    assert rows["body_m0"] == EVENT.body().decode() == rows["body_m1"]
    assert rows["next_attempt_at_m0"] == NOW and rows["status_m0"] == "pending"
    assert (rows["site_id_m0"], rows["run_id_m0"], rows["event_type_m0"]) == (
        42,
        "run_x",
        "run.failed",
    )


def test_nothing_is_written_when_no_endpoint_wants_the_event():
    conn = Connection([])
    assert store.enqueue(conn, EVENT, NOW) == 0
    assert len(conn.executed) == 1


# --- claim -------------------------------------------------------------------------------------

EndpointRow = namedtuple("EndpointRow", "id url failing_since")
Leased = namedtuple("Leased", "id endpoint_id event_type body attempts")
SecretRow = namedtuple("SecretRow", "endpoint_id secret created_at expires_at")


def test_the_claim_locks_endpoints_skipping_those_another_process_holds():
    text = sql(store.lock_endpoints(NOW, 64, 4))
    assert text.endswith("FOR UPDATE SKIP LOCKED")
    assert "HAVING count(*) >= " in text  # endpoints at their cap take no place in the limit
    assert "webhook_endpoints.enabled" in text
    assert "ORDER BY min(webhook_deliveries.next_attempt_at)" in text
    due = sql(store.due_rows(NOW, [1, 2], 4))
    assert "JOIN LATERAL" in due and "LIMIT " in due
    assert "webhook_deliveries.lease_until IS NULL OR webhook_deliveries.lease_until <= " in due


def test_a_claim_leases_within_each_endpoints_cap_and_hands_over_what_an_attempt_needs():
    d1, d2, d3 = uuid4(), uuid4(), uuid4()
    since = NOW - timedelta(days=1)
    old, new = new_secret(), new_secret()
    conn = Connection(
        [
            EndpointRow(1, "https://dead.example/", since),
            EndpointRow(2, "https://ok.example/", None),
        ],
        [(1, 4)],  # endpoint 1 has 4 attempts in flight: its cap
        [(d1, 1, NOW - timedelta(hours=1)), (d2, 2, NOW), (d3, 2, NOW)],
        [Leased(d2, 2, "run.failed", "{}", 1), Leased(d3, 2, "run.failed", "{}", 3)],
        [
            SecretRow(2, old, NOW - timedelta(days=9), NOW + timedelta(hours=1)),
            SecretRow(2, new, NOW, None),
        ],
    )
    claimed = store.claim(conn, NOW, slots=64, per_endpoint=4)
    lease = conn.executed[3]
    assert lease.compile(dialect=postgresql.dialect()).params["id_1"] == [d2, d3]
    assert "attempts=(webhook_deliveries.attempts + " in sql(lease)
    assert [c.delivery_id for c in claimed] == [d2, d3]
    first = claimed[0]
    assert (first.url, first.attempt, first.body, first.failing_since) == (
        "https://ok.example/",
        1,
        b"{}",
        None,
    )
    assert claimed[1].attempt == 3
    assert first.secrets == (
        Secret(old, NOW - timedelta(days=9), NOW + timedelta(hours=1)),
        Secret(new, NOW),
    )
    assert first.lease_token == claimed[1].lease_token


def test_a_claim_with_no_free_slot_or_nothing_due_asks_little():
    assert store.claim(Connection(), NOW, slots=0, per_endpoint=4) == []
    conn = Connection([])
    assert store.claim(conn, NOW, slots=8, per_endpoint=4) == []
    assert len(conn.executed) == 1


def test_endpoints_are_served_most_overdue_first():
    a, b, c = uuid4(), uuid4(), uuid4()
    rows = [(a, 1, NOW), (b, 2, NOW - timedelta(hours=2)), (c, 2, NOW)]
    assert store.most_overdue_first(rows) == [(b, 2), (c, 2), (a, 1)]


# --- record ------------------------------------------------------------------------------------

CLAIMED = Claimed(
    delivery_id=UUID("6a0c9c3e-7f7b-5c55-9a55-3d8a3c1c9f10"),
    endpoint_id=2,
    url="https://ok.example/",
    event_type="run.failed",
    body=b"{}",
    attempt=3,
    lease_token=uuid4(),
    failing_since=None,
    secrets=(),
)
FAILED = Attempted(at=NOW, outcome="failed", status=503, latency_ms=120, response="busy" * 1000)


def test_a_record_is_guarded_by_the_lease_and_locks_the_endpoint_first():
    conn = Connection([(2,)], [(CLAIMED.delivery_id,)])
    step = Next("pending", NOW + timedelta(minutes=30), failing_since=NOW)
    assert store.record(conn, CLAIMED, FAILED, step)
    lock, update, attempt, endpoint = conn.texts
    assert lock.startswith("SELECT webhook_endpoints.id") and lock.endswith("FOR UPDATE")
    assert "webhook_deliveries.lease_token = " in update
    assert "webhook_deliveries.status = " in update
    params = conn.executed[1].compile(dialect=postgresql.dialect()).params
    assert params["status"] == "pending" and params["next_attempt_at"] == step.next_attempt_at
    assert params["lease_token"] is None and params["last_status"] == 503
    assert len(params["last_response"]) == store.EXCERPT_CHARS
    assert attempt.startswith("INSERT INTO webhook_attempts")
    assert "coalesce(webhook_endpoints.failing_since" in endpoint


def test_a_lost_lease_records_nothing():
    conn = Connection([(2,)], [])
    assert not store.record(conn, CLAIMED, FAILED, Next("pending", NOW, NOW))
    assert len(conn.executed) == 2


def test_a_success_clears_the_failing_clock():
    conn = Connection([(2,)], [(CLAIMED.delivery_id,)])
    ok = Attempted(at=NOW, outcome="delivered", status=204, latency_ms=80)
    assert store.record(conn, CLAIMED, ok, Next("delivered", None, None))
    assert "failing_since=NULL" in conn.texts[-1]


@pytest.mark.parametrize("reason", ["the endpoint answered 410 Gone"])
def test_disabling_fails_the_endpoints_pending_deliveries(reason: str):
    conn = Connection([(2,)], [(CLAIMED.delivery_id,)])
    gone = Attempted(at=NOW, outcome="failed", status=410, latency_ms=50)
    assert store.record(conn, CLAIMED, gone, Next("failed", None, NOW, disable=reason))
    endpoint, deliveries = conn.executed[-2:]
    assert endpoint.compile(dialect=postgresql.dialect()).params["disabled_reason"] == reason
    params = deliveries.compile(dialect=postgresql.dialect()).params
    assert params["status"] == "failed" and reason in params["last_error"]
