"""The gateway for tests: the gateway as a process, tenants made through the admin functions,
read-model rows written as the log-sink writes them, and a stand-in orchestrator that answers
run commands on the real broker the way the real one does. The integration layer's conftest
turns these into fixtures."""

from __future__ import annotations

import shutil
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from api_gateway import accounts
from api_gateway.run_commands import new_run_id
from contracts import commands as cmd
from contracts import events as ev
from contracts.codec import decode
from contracts.db import tables as t
from contracts.envelope import Envelope, Payload, new_message
from contracts.topics import Topics
from tests.support.kafka import publish
from tests.support.services import ServiceProcess, Services, free_port
from tests.support.wait import wait_until_async

API = "/api/v1/automation"
ORCHESTRATOR = "/automation/orchestrator"


@dataclass
class Gateway:
    url: str
    media_dir: Path
    log_dir: Path
    topics: Topics
    bootstrap: str
    metrics_url: str  # on its metrics port: the API port serves no /metrics


@dataclass
class Tenant:
    account_id: int
    user_id: int
    site_id: int
    token: str
    client: httpx.Client

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.client.get(API + path, params=params)

    def post(self, path: str, **params: object) -> httpx.Response:
        return self.client.post(API + path, params=params)

    def import_and_run(self, rows: list[dict]) -> str:
        """Import these keywords into the site and start a run over HTTP; the run's id."""
        imported = self.client.post(
            f"{API}/keywords/import", params={"site_id": self.site_id}, json=rows
        )
        assert imported.status_code == 200, imported.text
        started = self.post("/run_now", site_id=self.site_id)
        assert started.status_code == 200, started.text
        return started.json()["run_id"]


def start_gateway(
    stack, topics: Topics, run_dir: Path, env: dict[str, str] | None = None
) -> tuple[Services, Gateway]:
    """A gateway process on the session's broker, database and topics; stop it with the
    Services returned."""
    port = free_port()
    base_env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "DATABASE_URL": stack.database_url,
        "TOPIC_NAMESPACE": topics.namespace,
        "KAFKA_GROUP_PREFIX": topics.namespace,
        "MEDIA_DIR": str(run_dir / "media"),
        "LOG_BASE_DIR": str(run_dir / "logs"),
        "GATEWAY_PORT": str(port),
        "OUTCOME_TIMEOUT_SECONDS": "4",
        **(env or {}),
    }
    services = Services(base_env=base_env, log_dir=run_dir / "service-logs")
    process = services.start("gateway", console_script("api-gateway"), timeout=60)
    (run_dir / "media").mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    metrics_url = f"http://127.0.0.1:{process.metrics_port}/metrics"
    return services, Gateway(
        url, run_dir / "media", run_dir / "logs", topics, stack.kafka_bootstrap, metrics_url
    )


def console_script(name: str) -> str:
    """A console script of the workspace, on PATH or next to this interpreter."""
    return shutil.which(name) or str(Path(sys.executable).parent / name)


@dataclass
class Console:
    """The gateway, which serves the API and the web console, as a process of a test's
    Services."""

    url: str
    gateway: ServiceProcess
    media_dir: Path


def start_console(services: Services, env: dict[str, str] | None = None) -> Console:
    """The gateway as a process of `services`, on a port of its own, with `env` added."""
    port = free_port()
    env = {"GATEWAY_PORT": str(port), **(env or {})}
    gateway = services.start("gateway", console_script("api-gateway"), env=env)
    return Console(f"http://127.0.0.1:{port}", gateway, Path(services.base_env["MEDIA_DIR"]))


def make_tenant(db: sa.Engine, gateway: Gateway | Console, credits: int = 0) -> Tenant:
    tag = uuid.uuid4().hex[:10]
    with db.begin() as conn:
        account_id = accounts.create_account(conn, f"account {tag}")
        if credits:
            accounts.add_credits(conn, account_id, credits)
        user_id = accounts.create_user(conn, account_id, f"{tag}@example.com", "Tester")
        site_id = accounts.create_site(conn, account_id, f"site {tag}")
        token = accounts.issue_token(conn, user_id, "test").token
    client = httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return Tenant(account_id, user_id, site_id, token, client)


def insert_run(
    db: sa.Engine,
    tenant: Tenant,
    status: str = "running",
    stage: int = 1,
    run_id: str | None = None,
    **values: object,
) -> str:
    """Play the log-sink: a row of the run read model."""
    run_id = run_id or new_run_id()
    with db.begin() as conn:
        conn.execute(
            sa.insert(t.automation_runs).values(
                run_id=run_id,
                account_id=tenant.account_id,
                site_id=tenant.site_id,
                trigger="manual",
                status=status,
                current_stage=stage,
                **{"started_at": datetime.now(UTC), **values},
            )
        )
    return run_id


def insert_stage(db: sa.Engine, run_id: str, stage: int, **values: object) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.insert(t.automation_run_stages).values(run_id=run_id, stage=stage, **values)
        )


def seed_content(db: sa.Engine, tenant: Tenant, media_dir: Path, status: str = "review") -> dict:
    """One item down the whole pipeline, written as the stage workers would."""
    with db.begin() as conn:

        def add(table, **values):
            return conn.execute(
                sa.insert(table).values(site_id=tenant.site_id, **values).returning(table.c.id)
            ).scalar_one()

        cluster = add(t.clusters, name="SEO basics", source_key=f"k{uuid.uuid4().hex}")
        conn.execute(
            sa.insert(t.keywords).values(
                site_id=tenant.site_id,
                text=f"seo basics {cluster}",
                cluster_id=cluster,
                status="mapped",
            )
        )
        idea = add(t.content_ideas, cluster_id=cluster, title="What is SEO", position=0)
        task = add(t.tasks, idea_id=idea, title="Write: What is SEO")
        content = add(
            t.content,
            task_id=task,
            title="What is SEO",
            body="# What is SEO\n\nText.",
            word_count=4,
            status=status,
        )
        media_dir.mkdir(parents=True, exist_ok=True)
        (media_dir / f"img_{content}.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
        image = add(
            t.images,
            content_id=content,
            kind="featured",
            position=0,
            prompt="a cat",
            status="generated",
            file_path=f"img_{content}.png",
        )
        escaping = add(
            t.images,
            content_id=content,
            kind="in_article",
            position=1,
            prompt="p",
            status="generated",
            file_path="../../../../etc/passwd",
        )
        pending = add(t.images, content_id=content, kind="in_article", position=2, prompt="q")
    return {
        "cluster": cluster,
        "idea": idea,
        "task": task,
        "content": content,
        "image": image,
        "escaping": escaping,
        "pending": pending,
    }


def run_event(
    owner: Tenant | Envelope,
    run_id: str | None,
    payload: Payload,
    caused_by: Envelope | None = None,
) -> Envelope:
    """A run event as the orchestrator sends it, of the owner's account and site."""
    return new_message(
        payload,
        source=ORCHESTRATOR,
        account_id=owner.account_id,
        site_id=owner.site_id,
        run_id=run_id,
        caused_by=caused_by,
    )


@dataclass
class FakeOrchestrator:
    """Answers run commands like the orchestrator: start, pause, resume, cancel are granted unless
    a test set a refusal for the site or run; sites in `silent` get no answer at all."""

    bootstrap: str
    topics: Topics
    received: list[Envelope] = field(default_factory=list)
    reject_start: dict[int, ev.RunRejected] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)
    silent: set[int] = field(default_factory=set)
    ready: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False
    complete_runs: bool = False

    def answer(self, command: Envelope) -> Payload | None:
        data = command.data
        if command.site_id in self.silent:
            return None
        if isinstance(data, cmd.StartRun):
            rejection = self.reject_start.get(command.site_id)
            return rejection or ev.RunStarted(
                trigger=data.trigger,
                requested_by=data.requested_by,
                config=data.config,
                estimate=data.estimate,
                balance=data.balance,
            )
        if command.run_id in self.refuse:
            return ev.CommandRejected(
                command=command.type, reason=self.refuse[command.run_id], status="completed"
            )
        granted = {
            cmd.PauseRun: ev.RunPaused(),
            cmd.ResumeRun: ev.RunResumed(),
            cmd.CancelRun: ev.RunCancelled(),
        }
        return granted.get(type(data))

    async def serve(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topics.run_commands,
            bootstrap_servers=self.bootstrap,
            group_id=f"{self.topics.namespace}fake-orchestrator-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:

            async def assigned() -> set:
                return consumer.assignment()

            await wait_until_async(assigned, every=0.05, what="partitions assigned")
            for partition in consumer.assignment():
                await consumer.position(partition)
            self.ready.set()
            while not self.stopping:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        await self._handle(decode(record.value))
        finally:
            await consumer.stop()

    async def _handle(self, command: Envelope) -> None:
        self.received.append(command)
        payload = self.answer(command)
        if payload is not None:
            outcome = run_event(command, command.run_id, payload, caused_by=command)
            await publish(self.bootstrap, self.topics.run_events, outcome)
            if self.complete_runs and isinstance(payload, ev.RunStarted):
                completed = ev.RunCompleted(credits_used=0)
                done = run_event(command, command.run_id, completed, caused_by=outcome)
                await publish(self.bootstrap, self.topics.run_events, done)
