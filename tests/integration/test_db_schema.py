"""The migrations build exactly the schema `contracts.db.tables` declares, and the constraints the
idempotency rules lean on hold in PostgreSQL.

Data tests run inside a transaction that is rolled back; names are unique anyway so runs sharing
the database never wait on each other's rows.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg.errors
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects.postgresql import insert

from contracts.db import tables
from contracts.db.engines import sync_engine
from contracts.db.migrate import current as current_revision
from contracts.db.migrate import head, upgrade
from tests.support.services import resolve


@pytest.fixture
def conn(db: sa.Engine) -> Iterator[sa.Connection]:
    with db.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@contextmanager
def _fresh_schema(database_url: str) -> Iterator[str]:
    """A URL whose connections see only a new, empty schema: a database of our own."""
    schema = f"schema_test_{uuid.uuid4().hex[:12]}"
    admin = sync_engine(database_url, poolclass=sa.pool.NullPool)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _catalog(url: str) -> dict[str, list[tuple]]:
    """Columns, constraints and indexes of our tables in the connection's schema, as PostgreSQL
    itself prints them (so CHECKs, partial and expression indexes are compared too)."""
    names = {"schema": None, "tables": sorted(tables.metadata.tables)}
    queries = {
        "columns": """
            SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
            FROM information_schema.columns
            WHERE table_schema = :schema AND table_name = ANY(:tables)""",
        "constraints": """
            SELECT r.relname, c.conname, pg_get_constraintdef(c.oid)
            FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
            WHERE c.connamespace = CAST(:schema AS regnamespace) AND r.relname = ANY(:tables)""",
        "indexes": """
            SELECT tablename, indexname, replace(indexdef, :schema || '.', '')
            FROM pg_indexes WHERE schemaname = :schema AND tablename = ANY(:tables)""",
    }
    db = sync_engine(url, poolclass=sa.pool.NullPool)
    try:
        with db.connect() as connection:
            names["schema"] = connection.execute(sa.text("SELECT current_schema()")).scalar_one()
            return {
                kind: sorted(tuple(row) for row in connection.execute(sa.text(sql), names))
                for kind, sql in queries.items()
            }
    finally:
        db.dispose()


def _violated_constraint(error: pytest.ExceptionInfo[sa.exc.IntegrityError]) -> str | None:
    return error.value.orig.diag.constraint_name


def _account(conn: sa.Connection, balance: int = 0) -> int:
    return conn.execute(
        sa.insert(tables.accounts)
        .values(name=_unique("account"), credit_balance=balance)
        .returning(tables.accounts.c.id)
    ).scalar_one()


def _site(conn: sa.Connection, account_id: int) -> int:
    return conn.execute(
        sa.insert(tables.sites)
        .values(account_id=account_id, name=_unique("site"))
        .returning(tables.sites.c.id)
    ).scalar_one()


# --- migrations ---------------------------------------------------------------------------


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    upgrade(database_url)
    before = _catalog(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == head()
    assert _catalog(database_url) == before


def test_autogenerate_finds_no_difference(db: sa.Engine) -> None:
    def ours(name: str | None, type_: str, parent_names: dict) -> bool:
        # Other components may keep tables of their own in the same database.
        return type_ != "table" or name in tables.metadata.tables

    with db.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "compare_server_default": True, "include_name": ours},
        )
        assert compare_metadata(context, tables.metadata) == []


def test_migration_builds_what_tables_declare(database_url: str) -> None:
    """Autogenerate ignores CHECKs and partial-index predicates; the catalogs do not."""
    with _fresh_schema(database_url) as migrated, _fresh_schema(database_url) as declared:
        upgrade(migrated)
        db = sync_engine(declared, poolclass=sa.pool.NullPool)
        tables.metadata.create_all(db)
        db.dispose()
        assert _catalog(migrated) == _catalog(declared)


def test_concurrent_upgrades_both_succeed(database_url: str) -> None:
    command = [resolve("stack"), "migrate"]
    with _fresh_schema(database_url) as url:
        env = {**os.environ, "DATABASE_URL": url}
        processes = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
        assert [p.returncode for p in processes] == [0, 0], outputs
        assert current_revision(url) == head()


# --- constraints --------------------------------------------------------------------------


def test_credit_balance_cannot_go_negative(conn: sa.Connection) -> None:
    account_id = _account(conn, balance=5)
    accounts = tables.accounts
    with pytest.raises(sa.exc.IntegrityError) as error, conn.begin_nested():
        conn.execute(
            sa.update(accounts)
            .where(accounts.c.id == account_id)
            .values(credit_balance=accounts.c.credit_balance - 6)
        )
    assert isinstance(error.value.orig, psycopg.errors.CheckViolation)
    assert _violated_constraint(error) == "ck_accounts_credit_balance_not_negative"


def test_a_charge_is_recorded_once(conn: sa.Connection) -> None:
    account_id = _account(conn, balance=10)
    charge = {
        "account_id": account_id,
        "run_id": _unique("run"),
        "stage": 4,
        "amount": -5,
        "balance_after": 5,
        "reason": "stage 4 batch 1",
        "idempotency_key": _unique("charge"),
    }
    conn.execute(sa.insert(tables.credit_ledger).values(charge))
    with pytest.raises(sa.exc.IntegrityError) as error, conn.begin_nested():
        conn.execute(sa.insert(tables.credit_ledger).values(charge))
    assert _violated_constraint(error) == "uq_credit_ledger_idempotency_key"

    replay = insert(tables.credit_ledger).values(charge).on_conflict_do_nothing()
    assert conn.execute(replay.returning(tables.credit_ledger.c.id)).first() is None


def test_a_redelivered_batch_cannot_make_a_second_cluster(conn: sa.Connection) -> None:
    account_id = _account(conn)
    site_id, other_site_id = _site(conn, account_id), _site(conn, account_id)
    cluster = {"site_id": site_id, "name": "SEO basics", "source_key": _unique("batch")}
    conn.execute(sa.insert(tables.clusters).values(cluster))
    with pytest.raises(sa.exc.IntegrityError) as error, conn.begin_nested():
        conn.execute(sa.insert(tables.clusters).values(cluster))
    assert _violated_constraint(error) == "uq_clusters_site_id_source_key"

    conn.execute(sa.insert(tables.clusters).values({**cluster, "site_id": other_site_id}))


def test_keywords_are_unique_per_site_ignoring_case(conn: sa.Connection) -> None:
    keywords = tables.keywords
    account_id = _account(conn)
    site_id, other_site_id = _site(conn, account_id), _site(conn, account_id)
    conn.execute(sa.insert(keywords).values(site_id=site_id, text="SEO Tips"))
    with pytest.raises(sa.exc.IntegrityError) as error, conn.begin_nested():
        conn.execute(sa.insert(keywords).values(site_id=site_id, text="seo tips"))
    assert _violated_constraint(error) == "uq_keywords_site_id_lower_text"

    conn.execute(sa.insert(keywords).values(site_id=other_site_id, text="seo tips"))
    same_text = [keywords.c.site_id, sa.func.lower(keywords.c.text)]
    reimport = (
        insert(keywords)
        .values([{"site_id": site_id, "text": "seo TIPS"}, {"site_id": site_id, "text": "new"}])
        .on_conflict_do_nothing(index_elements=same_text)
        .returning(keywords.c.text)
    )
    assert conn.execute(reimport).scalars().all() == ["new"]
    count = sa.select(sa.func.count()).where(keywords.c.site_id == site_id)
    assert conn.execute(count).scalar_one() == 2


def test_config_defaults_follow_the_spec(conn: sa.Connection) -> None:
    site_id = _site(conn, _account(conn))
    configs = tables.automation_configs
    row = conn.execute(sa.insert(configs).values(site_id=site_id).returning(configs)).one()._mapping
    assert not row["is_enabled"]
    assert (row["frequency"], row["scheduled_time"]) == ("daily", "02:00")
    batch_sizes = [row[f"stage_{n}_batch_size"] for n in range(1, 7)]
    assert batch_sizes == [20, 1, 20, 1, 1, 1]
    assert (row["within_stage_delay"], row["between_stage_delay"]) == (0, 0)
    assert row["stage_concurrency"] == 1


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("scheduled_time", "24:00"),
        ("scheduled_time", "2:00"),
        ("frequency", "hourly"),
        ("stage_1_batch_size", 0),
        ("stage_6_batch_size", 501),
        ("within_stage_delay", 3601),
        ("between_stage_delay", -1),
        ("stage_concurrency", 33),
    ],
)
def test_config_refuses_out_of_range_values(conn: sa.Connection, column: str, value) -> None:
    site_id = _site(conn, _account(conn))
    with pytest.raises(sa.exc.IntegrityError) as error, conn.begin_nested():
        conn.execute(
            sa.insert(tables.automation_configs).values(site_id=site_id, **{column: value})
        )
    assert isinstance(error.value.orig, psycopg.errors.CheckViolation)
