"""Chaos: one run of 1,000 keywords while, in turn, each service and the broker are killed -9
and PostgreSQL restarts, each at its own point past 20 % of the run. Afterwards, by SQL and
against a rebuild from the stream: no item lost, no output doubled, one ledger row per paid
output, the balance what the ledger says, and the logs and read model what the stream says.

The broker and PostgreSQL it kills and restarts are its own (a private local stack on free
ports), so the tests running beside it keep theirs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from contracts.db import tables as t
from contracts.db.engines import sync_engine
from contracts.run_logs import run_dir
from local_stack import kafka, postgres
from local_stack import stack as local_stack
from local_stack.processes import is_alive
from local_stack.settings import StackSettings
from tests.support.billing import stage_charge
from tests.support.gateway import console_script, make_tenant
from tests.support.pipeline import Pipeline, balance, charged, many_keywords
from tests.support.private_stack import private_stack
from tests.support.services import Services, free_port, service_env
from tests.support.wait import wait_until

pytestmark = pytest.mark.chaos

KEYWORDS = 1000
CREDITS = 100_000
RUN_TIMEOUT_S = 1200
STEP_STAGES = range(1, 7)  # stage 7 is the review gate: it counts, it does not step


@dataclass(frozen=True)
class Fault:
    target: str  # a service name, "broker" or "postgresql"
    stage: int
    share: float  # of the stage's items processed when it strikes


# Stage 1 alone is about a fifth of a run's stage-steps: every fault strikes after it.
FAULTS = (
    Fault("stage-worker", 4, 0.2),
    Fault("orchestrator", 4, 0.6),
    Fault("broker", 5, 0.4),
    Fault("log-sink", 6, 0.15),
    Fault("gateway", 6, 0.4),
    Fault("postgresql", 6, 0.7),
)


@dataclass(frozen=True)
class Struck:
    fault: Fault
    steps_done: int  # stage-steps in the read model when it struck
    recovery_s: float  # from the fault until the read model moved on again


@pytest.fixture
def infra() -> Iterator[StackSettings]:
    """A broker and a PostgreSQL of this test's own, to kill and restart."""
    with private_stack() as settings:
        yield settings


@pytest.fixture
def db(infra: StackSettings) -> Iterator[sa.Engine]:
    engine = sync_engine(infra.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def services(infra: StackSettings, tmp_path_factory) -> Iterator[Services]:
    run_dir = tmp_path_factory.mktemp("chaos-services")
    env = service_env(infra.kafka_bootstrap, infra.database_url, infra.topics, run_dir)
    running = Services(base_env=env, log_dir=run_dir / "service-logs")
    yield running
    running.stop_all()


async def test_a_run_survives_kill_9_of_everything_and_a_database_restart(db, services, infra):
    port = free_port()
    gateway_env = {"GATEWAY_PORT": str(port)}
    running = {
        "log-sink": services.start("log-sink", console_script("log-sink"), timeout=90),
        "orchestrator": services.start(
            "orchestrator", console_script("orchestrator"), env={"TICK_SECONDS": "0.2"}
        ),
        "stage-worker": services.start("stage-worker", console_script("stage-worker")),
        "gateway": services.start("gateway", console_script("api-gateway"), env=gateway_env),
    }
    tenant = make_tenant(db, SimpleNamespace(url=f"http://127.0.0.1:{port}"), credits=CREDITS)
    rows = [{"keyword": k.keyword, "volume": k.volume} for k in many_keywords(KEYWORDS)]
    run_id = tenant.import_and_run(rows)

    struck = []
    for fault in FAULTS:
        wait_for_stage_share(db, run_id, fault)
        steps, began = steps_done(db, run_id), time.monotonic()
        strike(fault.target, services, running, infra, db)
        wait_until(
            lambda s=steps: steps_done(db, run_id) > s,
            timeout=300,
            every=0.1,
            retry_on=(DBAPIError,),
            what=f"the run moving on after the {fault.target} fault",
        )
        struck.append(Struck(fault, steps, time.monotonic() - began))

    state = await Pipeline(infra.kafka_bootstrap, infra.topics).finished(
        run_id, timeout=RUN_TIMEOUT_S
    )
    assert state.status == "completed", state.error
    total_steps = sum(state.stage(n).processed_count for n in STEP_STAGES)

    made = assert_nothing_lost_nor_doubled(db, tenant.site_id)
    paid = assert_one_ledger_row_per_paid_output(db, tenant.site_id, made)
    assert charged(db, tenant.account_id) == paid == state.credits_used
    assert balance(db, tenant.account_id) == CREDITS - paid
    assert_logs_and_read_model_equal_a_rebuild(db, services, tenant, run_id)

    shares = [s.steps_done / total_steps for s in struck]
    assert all(share > 0.2 for share in shares), shares
    assert shares == sorted(set(shares)), f"each fault at its own point: {shares}"
    events = await Pipeline(infra.kafka_bootstrap, infra.topics).events(run_id)
    redelivered = sum(n - 1 for n in Counter(e.message_id for e in events).values())
    report(struck, total_steps, len(events), redelivered, made)


def wait_for_stage_share(db: sa.Engine, run_id: str, fault: Fault) -> None:
    def reached() -> bool:
        with db.connect() as conn:
            current = conn.execute(
                sa.select(t.automation_runs.c.current_stage).where(
                    t.automation_runs.c.run_id == run_id
                )
            ).scalar_one_or_none()
            row = conn.execute(
                sa.select(
                    t.automation_run_stages.c.processed_items,
                    t.automation_run_stages.c.total_items,
                ).where(
                    t.automation_run_stages.c.run_id == run_id,
                    t.automation_run_stages.c.stage == fault.stage,
                )
            ).first()
        if current is not None and current > fault.stage:
            return True  # passed it while the last fault healed: strike now, later than planned
        return (
            row is not None
            and row.total_items > 0
            and (row.processed_items >= fault.share * row.total_items)
        )

    wait_until(
        reached,
        timeout=RUN_TIMEOUT_S,
        every=0.1,
        retry_on=(DBAPIError,),
        what=f"stage {fault.stage} at {fault.share:.0%}",
    )


def steps_done(db: sa.Engine, run_id: str) -> int:
    with db.connect() as conn:
        return conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(t.automation_run_stages.c.processed_items), 0)
            ).where(
                t.automation_run_stages.c.run_id == run_id,
                t.automation_run_stages.c.stage.in_(list(STEP_STAGES)),
            )
        ).scalar_one()


def strike(
    target: str, services: Services, running: dict, settings: StackSettings, db: sa.Engine
) -> None:
    """kill -9 the target and start it again (PostgreSQL: restart it)."""
    match target:
        case "broker":
            pid = kafka.running_broker_pid(settings.paths.broker(1))
            assert pid is not None, "the local broker is not running"
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not is_alive(pid), what="the broker gone")
            local_stack.ensure_up(settings)
        case "postgresql":
            assert postgres.stop_cluster(settings.paths) is not None
            local_stack.ensure_up(settings)
            db.dispose()  # this test's pooled connections died with the server
        case _:
            service = running[target]
            service.kill9()
            running[target] = services.start(
                f"{target}-after-kill",
                *service.argv,
                env={k: v for k, v in service.env.items() if k not in services.base_env},
                timeout=90,
            )


def assert_nothing_lost_nor_doubled(db: sa.Engine, site_id: int) -> dict[str, int]:
    """Every input went all the way through, once: each keyword in a cluster, each cluster with
    its ideas, one task per idea, one article per task, four generated images per article."""
    with db.connect() as conn:

        def scalar(query) -> int:
            return conn.execute(query).scalar_one()

        def count(table: sa.Table, *where) -> int:
            return scalar(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.site_id == site_id, *where)
            )

        def doubled(table: sa.Table, *by: sa.Column) -> int:
            groups = (
                sa.select(*by)
                .where(table.c.site_id == site_id)
                .group_by(*by)
                .having(sa.func.count() > 1)
                .subquery()
            )
            return scalar(sa.select(sa.func.count()).select_from(groups))

        k, cl, i, tk, c, im = (
            t.keywords.c,
            t.clusters.c,
            t.content_ideas.c,
            t.tasks.c,
            t.content.c,
            t.images.c,
        )
        assert count(t.keywords, (k.status != "mapped") | k.cluster_id.is_(None)) == 0
        assert count(t.clusters, cl.status != "mapped") == 0
        assert count(t.clusters, ~sa.exists().where(i.cluster_id == cl.id)) == 0
        assert count(t.content_ideas, ~sa.exists().where(tk.idea_id == i.id)) == 0
        assert (
            count(t.tasks, (tk.status != "completed") | ~sa.exists().where(c.task_id == tk.id)) == 0
        )
        assert count(t.content, (c.status != "review") | (c.word_count == 0)) == 0
        assert count(t.images, im.status != "generated") == 0
        assert doubled(t.clusters, cl.source_key) == 0
        assert doubled(t.content_ideas, i.cluster_id, i.position) == 0
        assert doubled(t.tasks, tk.idea_id) == 0
        assert doubled(t.content, c.task_id) == 0
        assert doubled(t.images, im.content_id, im.position) == 0
        made = {
            "keywords": count(t.keywords),
            "clusters": count(t.clusters),
            "ideas": count(t.content_ideas),
            "tasks": count(t.tasks),
            "content": count(t.content),
            "images": count(t.images),
        }
    assert made["keywords"] == KEYWORDS
    assert made["tasks"] == made["ideas"] == made["content"]
    assert made["images"] == 4 * made["content"]
    return made


def assert_one_ledger_row_per_paid_output(db: sa.Engine, site_id: int, made: dict) -> int:
    """One charge row per cluster, article, prompt set and image (stage 1: the stage's charge
    for all its keywords); returns the credits they add up to."""
    ledger = t.credit_ledger.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(
                ledger.stage,
                sa.func.count().filter(ledger.amount < 0),
                sa.func.coalesce(-sa.func.sum(ledger.amount).filter(ledger.amount < 0), 0),
            )
            .where(ledger.site_id == site_id)
            .group_by(ledger.stage)
        ).all()
    by_stage = {stage: (n, credits) for stage, n, credits in rows}
    paid_outputs = {2: made["clusters"], 4: made["content"], 5: made["content"], 6: made["images"]}
    for stage, outputs in paid_outputs.items():
        assert by_stage[stage] == (outputs, stage_charge(stage, outputs)), stage
    assert by_stage[1][1] == stage_charge(1, made["keywords"])
    assert set(by_stage) == {1, 2, 4, 5, 6}
    return sum(credits for _, credits in by_stage.values())


def assert_logs_and_read_model_equal_a_rebuild(
    db: sa.Engine, services: Services, tenant, run_id: str
) -> None:
    """The live log-sink, killed -9 once, wrote what a rebuild from the stream writes: the same
    bytes in every file of the run folder, and the same read-model rows."""
    live_base = Path(services.base_env["LOG_BASE_DIR"])
    rebuilt_base = live_base.parent / "rebuilt-logs"
    before = read_model_rows(db, run_id)
    with db.begin() as conn:
        conn.execute(sa.delete(t.automation_runs).where(t.automation_runs.c.run_id == run_id))
    log_sink_rebuild(services, {"LOG_BASE_DIR": str(rebuilt_base)}, "--run", run_id, "--read-model")
    assert read_model_rows(db, run_id) == before
    live = run_dir(live_base, tenant.account_id, tenant.site_id, run_id)
    rebuilt = run_dir(rebuilt_base, tenant.account_id, tenant.site_id, run_id)
    assert folder_bytes(live) == folder_bytes(rebuilt)


def read_model_rows(db: sa.Engine, run_id: str) -> tuple[dict, list[dict]]:
    def without_updated_at(row) -> dict:
        return {k: v for k, v in row._mapping.items() if k != "updated_at"}

    runs, stages = t.automation_runs, t.automation_run_stages
    with db.connect() as conn:
        run = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).one()
        stage_rows = conn.execute(
            sa.select(stages).where(stages.c.run_id == run_id).order_by(stages.c.stage)
        ).all()
    return without_updated_at(run), [without_updated_at(row) for row in stage_rows]


def log_sink_rebuild(services: Services, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [console_script("log-sink"), "rebuild", *args],
        env={**os.environ, **services.base_env, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def folder_bytes(folder: Path) -> dict[str, bytes]:
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    assert files, f"no files in {folder}"
    return files


def report(struck: list[Struck], total_steps: int, events: int, redelivered: int, made) -> None:
    print(f"\nchaos: {total_steps} stage-steps, {events} run events, {redelivered} redelivered")
    print(f"chaos: made {made}")
    for s in struck:
        print(
            f"chaos: {s.fault.target:<13} at {s.steps_done / total_steps:5.1%} of the run "
            f"(stage {s.fault.stage}): moving again after {s.recovery_s:5.1f} s"
        )
