"""The webhooks API over HTTP against gateway processes on the real PostgreSQL: endpoints of an
account and nobody else's, the address rules on save, the secret and its rotation, a test event,
the delivery log, and redelivery. The attempts the webhooks process would make are written here
as rows; nothing is sent.

Two gateways: the module's usual one with the default settings (https only, public addresses
only), and one that allows http and TEST-NET-1, where the endpoints that are kept point."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest

from api_gateway.webhooks import signing
from api_gateway.webhooks.payloads import WEBHOOK_TYPES
from tests.support.gateway import API, Tenant, make_tenant, start_gateway
from tests.support.parallel import SHARED_ROWS
from tests.support.webhook_rows import (
    NOWHERE,
    NOWHERE_NETWORK,
    delivery_row,
    endpoint_row,
    insert_attempt,
    insert_delivery,
    lease,
    remove_endpoints,
    stored_secrets,
)

pytestmark = SHARED_ROWS

HOOKS = f"{API}/webhooks"


@pytest.fixture(scope="module")
def open_gateway(stack, topics, db, tmp_path_factory):
    """A gateway whose endpoints may use http and TEST-NET-1 addresses."""
    env = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOWED_NETWORKS": NOWHERE_NETWORK}
    services, started = start_gateway(
        stack, topics, tmp_path_factory.mktemp("webhooks-gateway"), env
    )
    yield started
    services.stop_all()


def _account(db, gateway):
    tenant = make_tenant(db, gateway)
    yield tenant
    remove_endpoints(db, tenant.account_id)


@pytest.fixture
def owner(db, open_gateway):
    yield from _account(db, open_gateway)


@pytest.fixture
def stranger(db, open_gateway):
    yield from _account(db, open_gateway)


def create(tenant: Tenant, **body: object) -> httpx.Response:
    return tenant.client.post(HOOKS, json={"url": NOWHERE, "event_types": ["run.failed"], **body})


def created(tenant: Tenant, **body: object) -> dict:
    response = create(tenant, **body)
    assert response.status_code == 201, response.text
    return response.json()


def refusal(response: httpx.Response, field: str, *words: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == field and body["code"] == "invalid", body
    for word in words:
        assert word in body["detail"], body


# --- endpoints -------------------------------------------------------------------------------


def test_an_endpoint_is_created_listed_changed_and_deleted(owner):
    made = created(owner, event_types=["run.completed", "review.ready"], description="CMS")
    assert made["secret"].startswith("whsec_")
    assert made["url"] == NOWHERE and made["description"] == "CMS"
    assert made["event_types"] == ["run.completed", "review.ready"]
    assert made["site_ids"] is None and made["enabled"] is True
    assert made["disabled_reason"] is None and made["failing_since"] is None
    endpoint = f"{HOOKS}/{made['id']}"

    got = owner.client.get(endpoint).json()
    assert got == {k: v for k, v in made.items() if k != "secret"}
    listed = owner.client.get(HOOKS).json()
    assert listed["total"] == 1 and [e["id"] for e in listed["items"]] == [made["id"]]

    change = {"site_ids": [owner.site_id], "event_types": ["credits.low"], "description": ""}
    changed = owner.client.patch(endpoint, json=change)
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in change} == change
    assert changed.json()["url"] == NOWHERE  # left out: kept
    every_site = owner.client.patch(endpoint, json={"site_ids": None, "url": None})
    assert every_site.json()["site_ids"] is None and every_site.json()["url"] == NOWHERE

    deleted = owner.client.delete(endpoint)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert owner.client.get(endpoint).status_code == 404
    assert owner.client.delete(endpoint).status_code == 404
    assert owner.client.get(HOOKS).json()["total"] == 0


def test_the_list_pages_and_filters_by_enabled(owner):
    ids = [created(owner, description=str(n))["id"] for n in range(3)]
    owner.client.patch(f"{HOOKS}/{ids[1]}", json={"enabled": False})
    page = owner.client.get(HOOKS, params={"limit": 2, "offset": 1}).json()
    assert (page["total"], [e["id"] for e in page["items"]]) == (3, ids[1:])
    off = owner.client.get(HOOKS, params={"enabled": "false"}).json()
    assert [e["id"] for e in off["items"]] == [ids[1]]
    on = owner.client.get(HOOKS, params={"enabled": "true"}).json()
    assert [e["id"] for e in on["items"]] == [ids[0], ids[2]]


def test_another_account_sees_none_of_it(owner, stranger, db):
    made = created(owner)
    delivery = insert_delivery(db, made["id"])
    endpoint = f"{HOOKS}/{made['id']}"
    calls = [
        ("GET", endpoint, None),
        ("PATCH", endpoint, {"description": "mine now"}),
        ("DELETE", endpoint, None),
        ("GET", f"{endpoint}/secret", None),
        ("POST", f"{endpoint}/rotate_secret", None),
        ("POST", f"{endpoint}/test", None),
        ("GET", f"{endpoint}/deliveries", None),
        ("GET", f"{endpoint}/deliveries/{delivery}", None),
        ("POST", f"{endpoint}/deliveries/{delivery}/redeliver", None),
    ]
    for method, url, body in calls:
        response = stranger.client.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["detail"] == f"webhook endpoint {made['id']} not found"
    missing = stranger.client.get(f"{HOOKS}/{made['id'] + 10**9}")
    assert missing.json()["detail"] == f"webhook endpoint {made['id'] + 10**9} not found"
    assert stranger.client.get(HOOKS).json()["total"] == 0
    assert owner.client.get(endpoint).json()["description"] == ""
    assert delivery_row(db, delivery).status == "delivered"


def test_sites_must_be_the_accounts_own(owner, stranger):
    for site_ids in ([stranger.site_id], [owner.site_id, 2**62]):
        foreign = create(owner, site_ids=site_ids)
        refusal(foreign, "site_ids", "no site", str(site_ids[-1]))
    made = created(owner, site_ids=[owner.site_id])
    change = owner.client.patch(f"{HOOKS}/{made['id']}", json={"site_ids": [stranger.site_id]})
    refusal(change, "site_ids", str(stranger.site_id))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": []}, "event_types"),
        ({"event_types": ["run.started"]}, "event_types.0"),
        ({"event_types": ["webhook.test"]}, "event_types.0"),  # sent on request, not subscribed
        ({"event_types": ["run.failed", "run.failed"]}, "event_types"),
        ({"site_ids": []}, "site_ids"),
        ({"site_ids": [True]}, "site_ids.0"),
        ({"site_ids": ["1"]}, "site_ids.0"),
        ({"url": ""}, "url"),
        ({"url": 5}, "url"),
        ({"secret": "whsec_mine"}, "secret"),
        ({"description": "x" * 501}, "description"),
    ],
)
def test_values_the_api_does_not_take_are_refused_naming_the_field(owner, body, field):
    refusal(create(owner, **body), field)


def test_every_subscribable_type_can_be_chosen(owner):
    assert created(owner, event_types=list(WEBHOOK_TYPES))["event_types"] == list(WEBHOOK_TYPES)


# --- where an endpoint may point -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hooks", "127.0.0.1 is a loopback address"),
        ("https://10.1.2.3:8443/hooks", "10.1.2.3 is a private address"),
        ("https://[::1]/hooks", "a loopback address"),
        ("https://169.254.169.254/latest", "a cloud metadata address"),
        (NOWHERE, "192.0.2.10 is a private address"),  # open only where a setting opens it
        ("https://localhost/hooks", "localhost resolves to 127.0.0.1, a loopback address"),
        ("https://no-such-host.invalid/hooks", "no-such-host.invalid did not resolve"),
        ("https://user:pw@example.com/hooks", "user name or password"),
        ("ftp://example.com/hooks", "must use https"),
        ("http://192.0.2.10/hooks", "must use https (http is not allowed here)"),
    ],
)
def test_by_default_only_public_https_addresses_are_taken(gateway, db, url, reason):
    tenant = make_tenant(db, gateway)
    refused = tenant.client.post(HOOKS, json={"url": url, "event_types": ["run.failed"]})
    refusal(refused, "url", reason)
    assert tenant.client.get(HOOKS).json()["total"] == 0


def test_the_settings_open_http_and_chosen_networks_but_nothing_else(owner, db):
    plain = created(owner, url="http://192.0.2.10:8080/hooks")
    assert plain["url"] == "http://192.0.2.10:8080/hooks"
    refusal(create(owner, url="http://localhost:8080/hooks"), "url", "a loopback address")
    refusal(create(owner, url="http://169.254.169.254/"), "url", "a cloud metadata address")
    moved = owner.client.patch(f"{HOOKS}/{plain['id']}", json={"url": "https://10.0.0.1/"})
    refusal(moved, "url", "10.0.0.1 is a private address")
    assert endpoint_row(db, plain["id"]).url == "http://192.0.2.10:8080/hooks"


# --- the secret ------------------------------------------------------------------------------


def test_the_secret_is_shown_again_and_rotation_lets_both_sign_for_a_day(owner, db):
    made = created(owner)
    endpoint = f"{HOOKS}/{made['id']}"
    shown = owner.client.get(f"{endpoint}/secret").json()
    assert shown["secret"] == made["secret"] and shown["previous_expires_at"] is None

    rotated = owner.client.post(f"{endpoint}/rotate_secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["secret"].startswith("whsec_") and new["secret"] != made["secret"]
    rotated_at = datetime.fromisoformat(new["created_at"])
    ends = datetime.fromisoformat(new["previous_expires_at"])
    assert ends - rotated_at == timedelta(hours=24)
    assert owner.client.get(f"{endpoint}/secret").json() == new

    held = stored_secrets(db, made["id"])
    assert signing.signing_secrets(held, rotated_at) == [new["secret"], made["secret"]]
    assert signing.signing_secrets(held, ends - timedelta(seconds=1)) == [
        new["secret"],
        made["secret"],
    ]
    assert signing.signing_secrets(held, ends) == [new["secret"]]


def test_a_leaked_secret_stops_signing_at_once(owner, db):
    made = created(owner)
    endpoint = f"{HOOKS}/{made['id']}"
    first = owner.client.post(f"{endpoint}/rotate_secret").json()
    leaked = owner.client.post(f"{endpoint}/rotate_secret", params={"overlap_seconds": 0})
    assert leaked.status_code == 200, leaked.text
    new = leaked.json()
    assert new["previous_expires_at"] is None
    held = stored_secrets(db, made["id"])
    at = datetime.fromisoformat(new["created_at"])
    assert signing.signing_secrets(held, at) == [new["secret"]]
    assert {s.value for s in held} == {new["secret"]}  # those that sign no more are dropped
    assert first["secret"] != new["secret"]
    too_long = owner.client.post(f"{endpoint}/rotate_secret", params={"overlap_seconds": 10**7})
    assert too_long.status_code == 400 and too_long.json()["field"] == "overlap_seconds"


# --- test events, the log, redelivery ---------------------------------------------------------


def test_a_test_event_is_one_pending_delivery_to_that_endpoint_alone(owner, db):
    made = created(owner, event_types=["credits.low"])
    other = created(owner, event_types=["credits.low"])
    before = datetime.now(UTC)
    sent = owner.client.post(f"{HOOKS}/{made['id']}/test")
    assert sent.status_code == 202, sent.text
    answer = sent.json()
    assert answer["event_type"] == "webhook.test" and answer["status"] == "pending"
    assert answer["attempts"] == 0 and answer["in_flight"] is False

    row = delivery_row(db, answer["id"])
    assert row.endpoint_id == made["id"] and row.status == "pending"
    assert before <= row.next_attempt_at <= datetime.now(UTC)
    body = json.loads(row.body)
    assert body["type"] == "webhook.test" and body["data"]["endpoint_id"] == made["id"]
    assert datetime.fromisoformat(body["timestamp"]) >= before.replace(microsecond=0)

    again = owner.client.post(f"{HOOKS}/{made['id']}/test").json()
    assert again["id"] != answer["id"]
    log = owner.client.get(f"{HOOKS}/{made['id']}/deliveries").json()
    assert [d["id"] for d in log["items"]] == [again["id"], answer["id"]]
    assert owner.client.get(f"{HOOKS}/{other['id']}/deliveries").json()["total"] == 0


def test_disabling_fails_what_is_pending_and_enabling_clears_the_reason(owner, db):
    made = created(owner)
    endpoint = f"{HOOKS}/{made['id']}"
    pending = owner.client.post(f"{endpoint}/test").json()
    off = owner.client.patch(endpoint, json={"enabled": False}).json()
    assert off["enabled"] is False and off["disabled_reason"] == "disabled by its owner"
    assert off["disabled_at"] is not None
    assert delivery_row(db, pending["id"]).status == "failed"

    refused = owner.client.post(f"{endpoint}/test")
    assert refused.status_code == 409 and refused.json()["code"] == "endpoint_disabled"
    again = owner.client.post(f"{endpoint}/deliveries/{pending['id']}/redeliver")
    assert again.status_code == 409 and again.json()["code"] == "endpoint_disabled"

    on = owner.client.patch(endpoint, json={"enabled": True}).json()
    assert on["enabled"] is True
    assert (on["disabled_reason"], on["disabled_at"], on["failing_since"]) == (None, None, None)
    assert delivery_row(db, pending["id"]).status == "failed"  # redelivered one by one


def test_the_delivery_log_shows_each_delivery_and_its_attempts(owner, db):
    made = created(owner)
    endpoint = f"{HOOKS}/{made['id']}"
    start = datetime.now(UTC) - timedelta(hours=1)
    failed = insert_delivery(
        db, made["id"], "failed", created_at=start, attempts=8, last_status=503,
        last_latency_ms=41, last_error="HTTP 503", last_response="down for maintenance",
    )  # fmt: skip
    delivered = insert_delivery(
        db, made["id"], "delivered", created_at=start + timedelta(minutes=1), attempts=2,
        last_status=204, last_latency_ms=12,
    )  # fmt: skip
    for n in range(1, 9):
        insert_attempt(db, failed, n, at=start + timedelta(seconds=n), response="down")
    insert_attempt(db, delivered, 1, outcome="refused", status=None, error="a loopback address")
    insert_attempt(db, delivered, 2, outcome="delivered", status=204, latency_ms=12)
    pending = owner.client.post(f"{endpoint}/test").json()

    log = owner.client.get(f"{endpoint}/deliveries").json()
    assert log["total"] == 3 and log["endpoint_id"] == made["id"]
    assert [d["id"] for d in log["items"]] == [pending["id"], str(delivered), str(failed)]
    last = log["items"][2]
    assert (last["status"], last["attempts"], last["last_status"]) == ("failed", 8, 503)
    assert last["last_error"] == "HTTP 503" and last["last_response"] == "down for maintenance"
    assert last["last_latency_ms"] == 41 and last["next_attempt_at"] is None
    assert log["items"][0]["next_attempt_at"] is not None

    only = owner.client.get(f"{endpoint}/deliveries", params={"status": "delivered"}).json()
    assert (only["total"], [d["id"] for d in only["items"]]) == (1, [str(delivered)])
    page = owner.client.get(f"{endpoint}/deliveries", params={"limit": 1, "offset": 1}).json()
    assert (page["total"], [d["id"] for d in page["items"]]) == (3, [str(delivered)])
    wrong = owner.client.get(f"{endpoint}/deliveries", params={"status": "lost"})
    assert wrong.status_code == 400 and wrong.json()["field"] == "status"

    detail = owner.client.get(f"{endpoint}/deliveries/{failed}").json()
    assert detail["body"] == '{"type":"run.failed"}'
    assert [a["attempt"] for a in detail["attempt_log"]] == list(range(1, 9))
    assert detail["attempt_log"][0]["response"] == "down"
    two = owner.client.get(f"{endpoint}/deliveries/{delivered}").json()["attempt_log"]
    assert [(a["outcome"], a["status"], a["error"]) for a in two] == [
        ("refused", None, "a loopback address"),
        ("delivered", 204, None),
    ]

    elsewhere = created(owner)
    assert owner.client.get(f"{HOOKS}/{elsewhere['id']}/deliveries/{failed}").status_code == 404
    assert owner.client.get(f"{endpoint}/deliveries/{uuid4()}").status_code == 404
    assert owner.client.get(f"{endpoint}/deliveries/not-a-uuid").status_code == 400


def test_a_redelivery_is_pending_again_with_the_same_id_and_a_new_round(owner, db):
    made = created(owner)
    endpoint = f"{HOOKS}/{made['id']}"
    delivered = insert_delivery(db, made["id"], "delivered", attempts=2, last_status=204)
    insert_attempt(db, delivered, 1)
    insert_attempt(db, delivered, 2, outcome="delivered", status=204)
    before = datetime.now(UTC)

    again = owner.client.post(f"{endpoint}/deliveries/{delivered}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["id"] == str(delivered)
    row = delivery_row(db, delivered)
    assert (row.status, row.attempts, row.lease_until) == ("pending", 0, None)
    assert before <= row.next_attempt_at <= datetime.now(UTC)
    assert row.body == '{"type":"run.failed"}' and row.last_status == 204
    detail = owner.client.get(f"{endpoint}/deliveries/{delivered}").json()
    assert len(detail["attempt_log"]) == 2  # the first round stays in the log

    failed = insert_delivery(db, made["id"], "failed", attempts=8)
    assert owner.client.post(f"{endpoint}/deliveries/{failed}/redeliver").status_code == 202
    assert delivery_row(db, failed).status == "pending"
    missing = owner.client.post(f"{endpoint}/deliveries/{uuid4()}/redeliver")
    assert missing.status_code == 404


def test_a_delivery_being_attempted_is_not_redelivered(owner, db):
    made = created(owner)
    endpoint = f"{HOOKS}/{made['id']}"
    busy = insert_delivery(db, made["id"], "pending")
    lease(db, busy, timedelta(seconds=60))
    leased = delivery_row(db, busy)
    assert owner.client.get(f"{endpoint}/deliveries").json()["items"][0]["in_flight"] is True

    refused = owner.client.post(f"{endpoint}/deliveries/{busy}/redeliver")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "in_flight"
    assert delivery_row(db, busy) == leased  # not touched

    # The attempt's process died: its lease ran out. Its retry is an hour away, so no webhooks
    # process that runs meanwhile claims the delivery before the redelivery asked for here.
    lease(db, busy, timedelta(seconds=-1), retry_in=timedelta(hours=1))
    expired = delivery_row(db, busy)
    assert owner.client.get(f"{endpoint}/deliveries").json()["items"][0]["in_flight"] is False
    again = owner.client.post(f"{endpoint}/deliveries/{busy}/redeliver")
    # On a failure the row before and after tells whether another claim took the delivery
    # (its lease token and attempts change) or the lease check refused the same row.
    assert again.status_code == 202, (again.text, expired, delivery_row(db, busy))
    row = delivery_row(db, busy)
    assert (row.status, row.attempts, row.lease_token) == ("pending", 0, None)
    assert row.next_attempt_at < expired.next_attempt_at  # due now, not in an hour


# --- the console -----------------------------------------------------------------------------


def test_the_console_page_needs_a_session_and_its_changes_the_csrf_token(open_gateway, owner):
    browser = httpx.Client(base_url=open_gateway.url, timeout=30, follow_redirects=False)
    assert browser.get("/webhooks").status_code == 303  # not signed in: to the sign-in page
    assert browser.post("/sign-in", data={"token": owner.token}).status_code == 303
    page = browser.get("/webhooks")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert f'id="hook-site-{owner.site_id}"' in page.text
    csrf = re.search(r'data-csrf="([^"]+)"', page.text).group(1)

    body = {"url": NOWHERE, "event_types": ["review.ready"]}
    refused = browser.post(HOOKS, json=body)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf"
    made = browser.post(HOOKS, json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    listed = browser.get(HOOKS, params={"enabled": "true"}).json()
    assert [e["id"] for e in listed["items"]] == [made.json()["id"]]
