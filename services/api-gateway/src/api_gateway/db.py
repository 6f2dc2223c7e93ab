"""The async engine and the tenancy rule: every lookup goes through the caller's account.

A site or run of another account is looked up exactly like a missing one, so the answer (404)
cannot tell the two apart.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api_gateway.accounts import Caller
from api_gateway.errors import not_found
from contracts.db import tables as t
from contracts.db.engines import async_engine


def create_engine(database_url: str) -> AsyncEngine:
    return async_engine(database_url, pool_size=10, max_overflow=10, pool_pre_ping=True)


async def site_of(conn: AsyncConnection, caller: Caller, site_id: int) -> Row:
    row = (
        await conn.execute(
            sa.select(t.sites).where(
                t.sites.c.id == site_id, t.sites.c.account_id == caller.account_id
            )
        )
    ).first()
    if row is None:
        raise not_found(f"site {site_id}")
    return row


async def run_of(conn: AsyncConnection, caller: Caller, run_id: str) -> Row | None:
    """The run's read-model row if it belongs to the caller's account (through its site)."""
    r = t.automation_runs
    return (
        await conn.execute(
            sa.select(r)
            .join(t.sites, t.sites.c.id == r.c.site_id)
            .where(r.c.run_id == run_id, t.sites.c.account_id == caller.account_id)
        )
    ).first()
