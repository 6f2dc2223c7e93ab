"""SQLAlchemy engines for DATABASE_URL, the one place that picks the driver: psycopg 3, for the
synchronous and the asyncio engine alike, whether the URL names it or says just `postgresql://`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

BARE_SCHEMES = ("postgresql", "postgres")


def psycopg_url(database_url: str) -> sa.URL:
    url = sa.make_url(database_url)
    return url.set(drivername="postgresql+psycopg") if url.drivername in BARE_SCHEMES else url


def sync_engine(database_url: str, **kwargs: object) -> sa.Engine:
    return sa.create_engine(psycopg_url(database_url), **kwargs)


def async_engine(database_url: str, **kwargs: object) -> AsyncEngine:
    return create_async_engine(psycopg_url(database_url), **kwargs)
