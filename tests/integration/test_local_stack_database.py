"""The local stack's PostgreSQL makes a database for whoever names one (the tests use one of their
own, beside the app's that a demo's services work in): created once, owned by the app's role."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from contracts.db.migrate import HEAD, current
from contracts.settings import local_database_url
from local_stack import postgres, stack
from local_stack.postgres import admin_conninfo, ensure_app_database
from local_stack.settings import StackSettings


@pytest.fixture
def admin(database_url):
    url = sa.make_url(database_url)
    try:
        conn = psycopg.connect(admin_conninfo(url.port), autocommit=True, connect_timeout=3)
    except psycopg.Error:
        pytest.skip("DATABASE_URL is not the local stack's PostgreSQL (no superuser here)")
    with conn:
        yield conn, url.port


def test_a_named_database_is_created_once_and_owned_by_the_app_role(admin):
    conn, port = admin
    name = f"automation_check_{uuid.uuid4().hex[:8]}"
    try:
        assert ensure_app_database(port, name) == [f"database {name}"]
        assert ensure_app_database(port, name) == []  # there already: nothing to do
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        assert owner == ("automation",)
    finally:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def test_the_stack_hands_out_the_named_database_migrated_and_keeps_the_apps(admin):
    conn, port = admin
    local = StackSettings(KAFKA_BOOTSTRAP_SERVERS=None, DATABASE_URL=None)
    if port != local.pg_port or postgres.running_postmaster_pid(local.paths) is None:
        pytest.skip("the session's PostgreSQL is not this tree's local stack")
    name = f"automation_check_{uuid.uuid4().hex[:8]}"
    try:
        up = stack.ensure_up(local, database=name)
        assert up.database_url == local_database_url(port, name) != local.local_database_url
        assert not up.started  # it was up already: the session's, left as it was
        assert current(up.database_url) == HEAD
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
