"""Webhook signatures are what the Standard Webhooks spec says: checked here with the
`standardwebhooks` package from PyPI, never with our own verifier alone. During a rotation the
old and the new secret both sign, so a receiver holding either accepts the delivery."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from api_gateway.webhooks import signing
from api_gateway.webhooks.signing import Secret
from tests.support.webhook_mock import ReceiverClock, hold_receiver_clock

NOW = datetime(2026, 12, 6, 12, 0, 0, 250_000, tzinfo=UTC)
BODY = json.dumps({"type": "run.completed", "timestamp": "2026-12-06T11:59:58Z", "data": {}})
WEBHOOK_ID = "0b6f8a43-5c1d-5e0a-9d62-0f3f1f8ac0de"


def secret_of(fill: int) -> str:
    return signing.new_secret(lambda n: bytes([fill]) * n)


OLD, NEW = secret_of(1), secret_of(2)


@pytest.fixture(autouse=True)
def receiver_clock(monkeypatch: pytest.MonkeyPatch) -> type[ReceiverClock]:
    return hold_receiver_clock(monkeypatch, NOW)


def delivery(secrets: list[str], at: datetime = NOW, body: str = BODY) -> dict[str, str]:
    return signing.headers(WEBHOOK_ID, at, body.encode(), secrets)


def test_the_package_verifies_a_delivery_and_reads_its_body():
    headers = delivery([NEW])
    assert Webhook(NEW).verify(BODY.encode(), headers) == json.loads(BODY)
    assert headers["webhook-id"] == WEBHOOK_ID
    assert headers["webhook-timestamp"] == "1796558400"  # whole seconds, rounded down
    assert headers["content-type"] == "application/json"
    [entry] = headers["webhook-signature"].split(" ")
    version, digest = entry.split(",")
    assert version == "v1" and len(base64.b64decode(digest)) == 32


def test_a_secret_is_whsec_and_base64_of_the_key_bytes():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(signing.secret_key(secret)) == signing.SECRET_BYTES
    assert signing.secret_key(secret_of(7)) == b"\x07" * 32
    # The package takes the raw key bytes as well: the same signature either way.
    raw = Webhook(signing.secret_key(NEW))
    assert raw.sign(WEBHOOK_ID, NOW, BODY) == signing.signature(
        NEW, WEBHOOK_ID, signing.timestamp_of(NOW), BODY.encode()
    )


@pytest.mark.parametrize("bad", ["", "whsec_", "abc", "whsec_not base64!", "WHSEC_AAAA"])
def test_a_malformed_secret_is_refused(bad: str):
    with pytest.raises(ValueError):
        signing.secret_key(bad)


def test_during_a_rotation_both_secrets_sign_and_either_verifies():
    headers = delivery([NEW, OLD])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (OLD, NEW):
        Webhook(secret).verify(BODY.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_of(3)).verify(BODY.encode(), headers)


def test_a_changed_body_id_or_timestamp_is_refused():
    headers = delivery([NEW])
    receiver = Webhook(NEW)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(BODY.replace("completed", "failed").encode(), headers)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(BODY.encode(), {**headers, "webhook-id": "another"})
    later = str(int(headers["webhook-timestamp"]) + 1)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(BODY.encode(), {**headers, "webhook-timestamp": later})


def test_each_attempt_is_signed_at_its_own_time():
    """A receiver refuses a timestamp over 5 minutes old, so a retry a day later is signed anew:
    same id and body, new timestamp and signature."""
    stale = delivery([NEW], at=NOW - timedelta(minutes=6))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(NEW).verify(BODY.encode(), stale)
    fresh = delivery([NEW], at=NOW)
    Webhook(NEW).verify(BODY.encode(), fresh)
    assert fresh["webhook-id"] == stale["webhook-id"]
    assert fresh["webhook-signature"] != stale["webhook-signature"]


def test_the_body_is_signed_byte_for_byte():
    text = json.dumps({"type": "run.failed", "data": {"error": "café ☕"}}, ensure_ascii=False)
    headers = delivery([NEW], body=text)
    Webhook(NEW).verify(text.encode(), headers)


def test_our_verifier_agrees_with_the_package():
    stamp = signing.timestamp_of(NOW)
    signed = {
        "webhook-id": WEBHOOK_ID,
        "webhook-timestamp": str(stamp),
        "webhook-signature": f"v1,{'A' * 44} " + Webhook(OLD).sign(WEBHOOK_ID, NOW, BODY),
    }
    assert signing.verify(OLD, BODY.encode(), signed, NOW)
    assert not signing.verify(NEW, BODY.encode(), signed, NOW)
    assert not signing.verify(OLD, BODY.encode() + b" ", signed, NOW)
    assert not signing.verify(OLD, BODY.encode(), signed, NOW + timedelta(minutes=6))
    assert not signing.verify(OLD, BODY.encode(), {**signed, "webhook-timestamp": "x"}, NOW)


def test_nothing_is_sent_unsigned():
    with pytest.raises(ValueError, match="no valid secret"):
        delivery([])


# --- rotation ------------------------------------------------------------------------------


def test_a_secret_signs_from_its_creation_until_its_end():
    secret = Secret(OLD, created_at=NOW, expires_at=NOW + timedelta(hours=1))
    assert not secret.signs_at(NOW - timedelta(seconds=1))
    assert secret.signs_at(NOW)
    assert secret.signs_at(NOW + timedelta(minutes=59))
    assert not secret.signs_at(NOW + timedelta(hours=1))
    assert Secret(OLD, created_at=NOW).signs_at(NOW + timedelta(days=3650))


def test_after_a_rotation_both_sign_until_the_overlap_ends_then_only_the_new_one(
    receiver_clock: type[ReceiverClock],
):
    held = [Secret(OLD, created_at=NOW - timedelta(days=30))]
    rotated = signing.rotate(held, NEW, NOW)
    assert signing.signing_secrets(rotated, NOW) == [NEW, OLD]
    assert signing.signing_secrets(rotated, NOW + timedelta(hours=23)) == [NEW, OLD]
    assert signing.signing_secrets(rotated, NOW + timedelta(hours=24)) == [NEW]

    receiver_clock.at = in_overlap = NOW + timedelta(hours=1)
    headers = delivery(signing.signing_secrets(rotated, in_overlap), at=in_overlap)
    for secret in (OLD, NEW):  # a receiver that has not switched yet, and one that has
        Webhook(secret).verify(BODY.encode(), headers)

    receiver_clock.at = after = NOW + timedelta(hours=25)
    headers = delivery(signing.signing_secrets(rotated, after), at=after)
    Webhook(NEW).verify(BODY.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(BODY.encode(), headers)


def test_a_leaked_secret_is_rotated_with_no_overlap():
    held = [Secret(OLD, created_at=NOW - timedelta(days=30))]
    rotated = signing.rotate(held, NEW, NOW, overlap=timedelta(0))
    assert rotated == [Secret(NEW, NOW)]
    assert signing.signing_secrets(rotated, NOW) == [NEW]


def test_rotating_twice_keeps_the_earlier_end_and_drops_what_no_longer_signs():
    third = secret_of(3)
    first = signing.rotate([Secret(OLD, NOW - timedelta(days=1))], NEW, NOW, timedelta(hours=2))
    later = NOW + timedelta(hours=1)
    second = signing.rotate(first, third, later)
    assert [(s.value, s.expires_at) for s in second] == [
        (OLD, NOW + timedelta(hours=2)),  # its end does not move later
        (NEW, later + timedelta(hours=24)),
        (third, None),
    ]
    assert signing.signing_secrets(second, later) == [third, NEW, OLD]
    after = signing.rotate(second, secret_of(4), NOW + timedelta(hours=3))
    assert OLD not in [s.value for s in after]


def test_a_rotation_needs_a_real_secret_and_a_sane_overlap():
    with pytest.raises(ValueError):
        signing.rotate([], "not-a-secret", NOW)
    with pytest.raises(ValueError):
        signing.rotate([], NEW, NOW, overlap=timedelta(seconds=-1))
