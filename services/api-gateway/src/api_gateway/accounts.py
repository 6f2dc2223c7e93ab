"""Accounts, users, API tokens, sites and credits: the admin side of tenancy.

Tokens are shown once and stored as a sha256 hash; they are random enough (256 bits) that a
plain hash is as good as a slow one, and lookup by hash keeps authentication one index probe.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t

TOKEN_PREFIX = "cat_"
TOKEN_USE_GRANULARITY = timedelta(minutes=1)


class AdminError(ValueError):
    """A request the data does not allow (unknown id, bad amount, ...); the message says why."""


@dataclass(frozen=True)
class IssuedToken:
    token_id: int
    token: str
    prefix: str


@dataclass(frozen=True)
class Caller:
    account_id: int
    user_id: int
    token_id: int
    last_used_at: datetime | None = None

    def use_is_stale(self, now: datetime) -> bool:
        """Whether last_used_at is worth writing again (at most once a minute per token)."""
        return self.last_used_at is None or now - self.last_used_at > TOKEN_USE_GRANULARITY


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_account(conn: Connection, name: str) -> int:
    if not name.strip():
        raise AdminError("account name must not be blank")
    return conn.execute(
        sa.insert(t.accounts).values(name=name.strip()).returning(t.accounts.c.id)
    ).scalar_one()


def create_user(conn: Connection, account_id: int, email: str, name: str = "") -> int:
    _require_account(conn, account_id)
    if "@" not in email:
        raise AdminError(f"not an email address: {email!r}")
    existing = conn.execute(
        sa.select(t.users.c.id, t.users.c.account_id).where(t.users.c.email == email.lower())
    ).first()
    if existing is not None:
        raise AdminError(f"a user with email {email} already exists (id {existing.id})")
    return conn.execute(
        sa.insert(t.users)
        .values(account_id=account_id, email=email.lower(), name=name)
        .returning(t.users.c.id)
    ).scalar_one()


def issue_token(conn: Connection, user_id: int, name: str = "") -> IssuedToken:
    account_id = conn.execute(
        sa.select(t.users.c.account_id).where(t.users.c.id == user_id)
    ).scalar_one_or_none()
    if account_id is None:
        raise AdminError(f"no user with id {user_id}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = token[: len(TOKEN_PREFIX) + 6]
    token_id = conn.execute(
        sa.insert(t.api_tokens)
        .values(
            account_id=account_id,
            user_id=user_id,
            name=name,
            token_prefix=prefix,
            token_hash=hash_token(token),
        )
        .returning(t.api_tokens.c.id)
    ).scalar_one()
    return IssuedToken(token_id, token, prefix)


def revoke_tokens(conn: Connection, user_id: int, name: str) -> int:
    """Revoke a user's live tokens with this name; returns how many."""
    return conn.execute(
        sa.update(t.api_tokens)
        .where(
            t.api_tokens.c.user_id == user_id,
            t.api_tokens.c.name == name,
            t.api_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=sa.func.now())
    ).rowcount


def authenticate(conn: Connection, token: str) -> Caller | None:
    """The caller a bearer token stands for, or None for an unknown or revoked token."""
    digest = hash_token(token)
    row = conn.execute(
        sa.select(
            t.api_tokens.c.id,
            t.api_tokens.c.account_id,
            t.api_tokens.c.user_id,
            t.api_tokens.c.token_hash,
            t.api_tokens.c.last_used_at,
        ).where(t.api_tokens.c.token_hash == digest, t.api_tokens.c.revoked_at.is_(None))
    ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return _caller(row)


def caller_by_session(conn: Connection, token_id: int, nonce: str) -> Caller | None:
    """The caller of a console session (its token's id and nonce), or None once the token is
    revoked or the session signed out: one lookup, as every request with the cookie makes it."""
    tokens, outs = t.api_tokens, t.console_sign_outs
    signed_out = sa.exists().where(outs.c.nonce == nonce)
    row = conn.execute(
        sa.select(tokens.c.id, tokens.c.account_id, tokens.c.user_id, tokens.c.last_used_at).where(
            tokens.c.id == token_id, tokens.c.revoked_at.is_(None), ~signed_out
        )
    ).first()
    return None if row is None else _caller(row)


def _caller(row: sa.Row) -> Caller:
    return Caller(
        account_id=row.account_id,
        user_id=row.user_id,
        token_id=row.id,
        last_used_at=row.last_used_at,
    )


def sign_out_session(conn: Connection, nonce: str, expires_at: datetime) -> None:
    """End a console session for good; sessions past their own expiry need no row any more."""
    outs = t.console_sign_outs
    conn.execute(sa.delete(outs).where(outs.c.expires_at < sa.func.now()))
    conn.execute(insert(outs).values(nonce=nonce, expires_at=expires_at).on_conflict_do_nothing())


def record_token_use(conn: Connection, token_id: int) -> None:
    conn.execute(
        sa.update(t.api_tokens)
        .where(t.api_tokens.c.id == token_id)
        .values(last_used_at=sa.func.now())
    )


def create_site(
    conn: Connection, account_id: int, name: str, domain: str | None = None, timezone: str = "UTC"
) -> int:
    _require_account(conn, account_id)
    if not name.strip():
        raise AdminError("site name must not be blank")
    site_id = conn.execute(
        sa.insert(t.sites)
        .values(account_id=account_id, name=name.strip(), domain=domain, timezone=timezone)
        .returning(t.sites.c.id)
    ).scalar_one()
    conn.execute(sa.insert(t.automation_configs).values(site_id=site_id))
    return site_id


def add_credits(
    conn: Connection,
    account_id: int,
    amount: int,
    reason: str = "top-up",
    idempotency_key: str | None = None,
) -> int:
    """Top up an account; returns the new balance. A repeated idempotency key adds nothing."""
    if amount <= 0:
        raise AdminError(f"amount must be a positive number of credits, got {amount}")
    _require_account(conn, account_id)
    key = idempotency_key or f"topup:{uuid.uuid4()}"
    already = conn.execute(
        sa.select(t.credit_ledger.c.balance_after).where(t.credit_ledger.c.idempotency_key == key)
    ).scalar_one_or_none()
    if already is not None:
        return balance(conn, account_id)
    new_balance = conn.execute(
        sa.update(t.accounts)
        .where(t.accounts.c.id == account_id)
        .values(credit_balance=t.accounts.c.credit_balance + amount)
        .returning(t.accounts.c.credit_balance)
    ).scalar_one()
    conn.execute(
        sa.insert(t.credit_ledger).values(
            account_id=account_id,
            amount=amount,
            balance_after=new_balance,
            reason=reason,
            idempotency_key=key,
        )
    )
    return new_balance


def balance(conn: Connection, account_id: int) -> int:
    return _require_account(conn, account_id)


def _require_account(conn: Connection, account_id: int) -> int:
    found = conn.execute(
        sa.select(t.accounts.c.credit_balance).where(t.accounts.c.id == account_id)
    ).scalar_one_or_none()
    if found is None:
        raise AdminError(f"no account with id {account_id}")
    return found


def list_accounts(conn: Connection) -> list[sa.Row]:
    a = t.accounts.c
    return list(conn.execute(sa.select(a.id, a.name, a.credit_balance).order_by(a.id)))


def list_sites(conn: Connection, account_id: int) -> list[sa.Row]:
    _require_account(conn, account_id)
    s, c = t.sites.c, t.automation_configs.c
    return list(
        conn.execute(
            sa.select(s.id, s.name, s.domain, s.timezone, c.is_enabled, c.next_run_at)
            .select_from(t.sites.outerjoin(t.automation_configs, c.site_id == s.id))
            .where(s.account_id == account_id)
            .order_by(s.id)
        )
    )


def list_tokens(conn: Connection, account_id: int) -> list[sa.Row]:
    """Tokens as people can tell them apart: prefix, name, owner, use; never the token."""
    _require_account(conn, account_id)
    k, u = t.api_tokens.c, t.users.c
    return list(
        conn.execute(
            sa.select(
                k.id, k.token_prefix, k.name, u.email, k.created_at, k.last_used_at, k.revoked_at
            )
            .select_from(t.api_tokens.join(t.users, u.id == k.user_id))
            .where(k.account_id == account_id)
            .order_by(k.id)
        )
    )
