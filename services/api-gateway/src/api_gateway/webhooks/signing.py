"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed
with the decoded bytes of a `whsec_` secret, one entry per secret, space-separated.

An endpoint may hold several secrets: rotating one gives the old secret an end, and until then
both sign, so a receiver can move to the new secret whenever it likes. Pure: the time is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from secrets import token_bytes

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64
SIGNATURE_VERSION = "v1"
# How long the old secret keeps signing after a rotation, unless the rotation says otherwise.
ROTATION_OVERLAP = timedelta(hours=24)
# A receiver refuses a timestamp further than this from its clock (the spec's advice).
TOLERANCE = timedelta(minutes=5)


def new_secret(random_bytes: Callable[[int], bytes] = token_bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(random_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a secret stands for; ValueError when it is not a `whsec_` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is base64 after its prefix") from exc
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def timestamp_of(at: datetime) -> int:
    """The `webhook-timestamp`: whole seconds since the epoch."""
    return math.floor(at.timestamp())


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    if not secrets:
        raise ValueError("nothing to sign with: the endpoint has no valid secret")
    return " ".join(signature(s, webhook_id, timestamp, body) for s in secrets)


def headers(webhook_id: str, at: datetime, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The headers of one attempt: the id stays, the timestamp and signatures are the attempt's."""
    timestamp = timestamp_of(at)
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, webhook_id, timestamp, body),
    }


def verify(secret: str, body: bytes, received: Mapping[str, str], now: datetime) -> bool:
    """Whether `received` headers carry a valid signature of `body` by `secret`, with a timestamp
    within TOLERANCE of `now`. For receivers written against this package; the tests check our
    deliveries with the `standardwebhooks` package instead."""
    lowered = {name.lower(): value for name, value in received.items()}
    webhook_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp", "")
    if not webhook_id or not stamp.isdigit():
        return False
    if abs(now.timestamp() - int(stamp)) > TOLERANCE.total_seconds():
        return False
    expected = signature(secret, webhook_id, int(stamp), body).encode()
    offered = lowered.get("webhook-signature", "").split(" ")
    return any(hmac.compare_digest(expected, entry.encode()) for entry in offered)


@dataclass(frozen=True)
class Secret:
    """One of an endpoint's secrets: it signs from `created_at` until `expires_at` (for ever
    when None)."""

    value: str
    created_at: datetime
    expires_at: datetime | None = None

    def signs_at(self, at: datetime) -> bool:
        return self.created_at <= at and (self.expires_at is None or at < self.expires_at)


def signing_secrets(held: Iterable[Secret], at: datetime) -> list[str]:
    """The secrets that sign an attempt made at `at`, newest first."""
    valid = sorted((s for s in held if s.signs_at(at)), key=lambda s: s.created_at, reverse=True)
    return [s.value for s in valid]


def rotate(
    held: Iterable[Secret], new: str, now: datetime, overlap: timedelta = ROTATION_OVERLAP
) -> list[Secret]:
    """The secrets after a rotation at `now`: every secret still signing stops at `now +
    overlap` at the latest (0 for a leaked one), the new one signs from now on; secrets that no
    longer sign are dropped."""
    if overlap < timedelta(0):
        raise ValueError("the overlap cannot be negative")
    secret_key(new)
    ends = now + overlap
    kept = [
        replace(s, expires_at=ends if s.expires_at is None else min(s.expires_at, ends))
        for s in held
        if s.expires_at is None or s.expires_at > now
    ]
    return [*(s for s in kept if s.expires_at > now), Secret(new, now)]
