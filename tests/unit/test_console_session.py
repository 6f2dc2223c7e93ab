"""The console's session cookie and CSRF token: signed, expiring, and useless once altered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_gateway.session import SessionSigner

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def signer(secret: str = "s3cret") -> SessionSigner:
    return SessionSigner(secret, timedelta(hours=2))


def test_a_cookie_reads_back_as_its_session_until_it_expires():
    session, cookie = signer().issue(42, NOW)
    assert signer().read(cookie, NOW) == session
    assert session.token_id == 42 and session.expires_at == NOW + timedelta(hours=2)
    assert signer().read(cookie, NOW + timedelta(hours=2)) is None


def test_an_altered_or_foreign_cookie_is_no_session():
    _, cookie = signer().issue(42, NOW)
    body, signature = cookie.split(".")
    forged_body = signer().issue(43, NOW)[1].split(".")[0]
    assert signer().read(f"{forged_body}.{signature}", NOW) is None
    assert signer("another secret").read(cookie, NOW) is None
    for junk in ("", "abc", "a.b.c", f"{body}.", f".{signature}", "%%%.%%%"):
        assert signer().read(junk, NOW) is None


def test_the_cookie_does_not_carry_the_api_token():
    _, cookie = signer().issue(7, NOW)
    assert "cat_" not in cookie


def test_the_csrf_token_belongs_to_one_session():
    first, _ = signer().issue(1, NOW)
    second, _ = signer().issue(1, NOW)
    token = signer().csrf_token(first)
    assert signer().csrf_ok(first, token)
    assert not signer().csrf_ok(second, token)
    assert not signer().csrf_ok(first, None)
    assert not signer().csrf_ok(first, "")
    assert not signer("another secret").csrf_ok(first, token)
