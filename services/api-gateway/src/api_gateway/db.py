"""The async engine and the tenancy rule: every lookup goes through the caller's account.

A site or run of another account is looked up exactly like a missing one, so the answer (404)
cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api_gateway.accounts import Caller
from api_gateway.errors import not_found
from contracts.db import tables as t
from contracts.db.engines import async_engine


def create_engine(database_url: str) -> AsyncEngine:
    return async_engine(database_url, pool_size=10, max_overflow=10, pool_pre_ping=True)


async def request_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """The route's pooled connection, given back when the route returns (before a live stream
    starts, not after it ends). The caller's lookup is solved before it with a connection of its
    own, given back at once: a request never holds two, so a full pool cannot deadlock."""
    async with request.app.state.engine.connect() as conn:
        yield conn


DbConn = Annotated[AsyncConnection, Depends(request_connection, scope="function")]


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


async def known_run(conn: AsyncConnection, caller: Caller, run_id: str) -> Row:
    """The run's read-model row; 404 when the caller's account has no such run."""
    run = await run_of(conn, caller, run_id)
    if run is None:
        raise not_found(f"run {run_id}")
    return run


def _site_run(run: sa.ColumnElement[bool]) -> sa.Select:
    s, r = t.sites, t.automation_runs
    return (
        sa.select(r, s.c.id.label("site_found"))
        .select_from(s.outerjoin(r, (r.c.site_id == s.c.id) & run))
        .where(s.c.id == sa.bindparam("site_id"), s.c.account_id == sa.bindparam("account_id"))
        .order_by(r.c.started_at.desc().nulls_last())
        .limit(1)
    )


# Built once: these run on every poll of the live views.
_NAMED_RUN = _site_run(t.automation_runs.c.run_id == sa.bindparam("run_id"))
_ACTIVE_RUN = _site_run(t.automation_runs.c.status.in_(("running", "paused")))


async def site_run(
    conn: AsyncConnection, caller: Caller, site_id: int, run_id: str | None = None
) -> Row | None:
    """The run `run_id` of the caller's site, or without it the site's running or paused run;
    None if there is no such run. A site that is not the caller's is not found (404)."""
    params = {"site_id": site_id, "account_id": caller.account_id}
    statement = _ACTIVE_RUN if run_id is None else _NAMED_RUN
    row = (
        await conn.execute(statement, params if run_id is None else {**params, "run_id": run_id})
    ).first()
    if row is None:
        raise not_found(f"site {site_id}")
    return row if row.run_id is not None else None
