"""The console's session cookie and its CSRF token: signed values, no server-side storage.

The cookie names the API token the operator signed in with (by its id, never the token itself)
and when the session ends, signed with HMAC-SHA256. Each request still checks the token in the
database, so revoking the token ends every session made with it. The CSRF token is derived from
the session's random nonce, so only a page that was served to this session knows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

COOKIE_NAME = "console_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Session:
    token_id: int
    expires_at: datetime
    nonce: str


class SessionSigner:
    def __init__(self, secret: str, lifetime: timedelta) -> None:
        self._key = hashlib.sha256(("console-session:" + secret).encode()).digest()
        self.lifetime = lifetime

    def issue(self, token_id: int, now: datetime | None = None) -> tuple[Session, str]:
        """A new session for the token and the cookie value that carries it."""
        expires = (now or datetime.now(UTC)) + self.lifetime
        session = Session(token_id, expires.replace(microsecond=0), secrets.token_urlsafe(16))
        payload = {"t": token_id, "e": int(session.expires_at.timestamp()), "n": session.nonce}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return session, f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None, now: datetime | None = None) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged, bad or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
            session = Session(
                int(payload["t"]), datetime.fromtimestamp(int(payload["e"]), UTC), str(payload["n"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_at > (now or datetime.now(UTC)) else None

    def csrf_token(self, session: Session) -> str:
        return self._sign("csrf:" + session.nonce)

    def csrf_ok(self, session: Session, offered: str | None) -> bool:
        return bool(offered) and hmac.compare_digest(offered, self.csrf_token(session))

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
