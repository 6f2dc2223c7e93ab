"""Drive whole runs for end-to-end tests: a tenant with keywords and credits, run commands
published the way the gateway publishes them, and the run's events read back from the stream."""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition

from api_gateway import accounts, keywords
from api_gateway.run_commands import new_run_id
from contracts import commands as cmd
from contracts.codec import UnreadableMessage, decode
from contracts.db import tables as t
from contracts.envelope import Envelope, Payload, new_message
from contracts.state import FINISHED, RunState, fold
from contracts.topics import Topics
from contracts.values import RunConfig
from tests.support.kafka import publish
from tests.support.wait import WaitTimeout, wait_until_async

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sample-data" / "keywords.csv"


@dataclass(frozen=True)
class Site:
    account_id: int
    site_id: int


def sample_keywords(count: int | None = None) -> list[keywords.KeywordIn]:
    with SAMPLE.open(encoding="utf-8") as f:
        rows = [
            keywords.KeywordIn(
                keyword=r["keyword"], volume=int(r["volume"]), difficulty=int(r["difficulty"])
            )
            for r in csv.DictReader(f)
        ]
    return rows[:count]


# Each sample keyword with each of these makes a distinct keyword: 120 × 10 of them.
VARIANTS = ("", "guide", "for beginners", "checklist", "mistakes", "ideas", "cost", "tools",
            "at home", "step by step")  # fmt: skip


def many_keywords(count: int) -> list[keywords.KeywordIn]:
    """`count` distinct keywords (up to 1,200) built from the sample ones."""
    sample = sample_keywords()
    made = [
        k.model_copy(update={"keyword": f"{k.keyword} {variant}".strip()})
        for variant in VARIANTS
        for k in sample
    ]
    assert count <= len(made), f"at most {len(made)} keywords"
    return made[:count]


def new_site(engine: sa.Engine, keyword_count: int, credits: int) -> Site:
    with engine.begin() as conn:
        account_id = accounts.create_account(conn, f"e2e {uuid.uuid4().hex[:8]}")
        if credits:
            accounts.add_credits(conn, account_id, credits)
        site_id = accounts.create_site(conn, account_id, "e2e site")
        keywords.import_keywords(conn, site_id, sample_keywords(keyword_count))
    return Site(account_id, site_id)


def api_client(engine: sa.Engine, site: Site, port: int) -> httpx.Client:
    """A client of the automation API on a gateway at `port`, signed in as a new user of the
    site's account."""
    with engine.begin() as conn:
        user_id = accounts.create_user(conn, site.account_id, f"{uuid.uuid4().hex}@e2e", "e2e")
        token = accounts.issue_token(conn, user_id, "e2e").token
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api/v1/automation",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def command(site: Site, payload: Payload, run_id: str | None = None) -> Envelope:
    return new_message(
        payload,
        source="/tests/e2e",
        account_id=site.account_id,
        site_id=site.site_id,
        run_id=run_id,
    )


class Pipeline:
    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap = bootstrap
        self.topics = topics

    async def send(self, *messages: Envelope) -> None:
        await publish(self.bootstrap, self.topics.run_commands, *messages)

    async def start(
        self, site: Site, estimate: int = 0, balance: int = 10**6, config: RunConfig | None = None
    ) -> str:
        run_id = new_run_id()
        await self.send(
            command(
                site,
                cmd.StartRun(
                    run_id=run_id,
                    trigger="manual",
                    requested_by="e2e",
                    config=config or RunConfig(),
                    estimate=estimate,
                    balance=balance,
                ),
                run_id,
            )
        )
        return run_id

    async def events(self, run_id: str) -> list[Envelope]:
        """Every event of the run on the stream so far."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            topic = self.topics.run_events
            spec = next(spec for spec in self.topics.specs() if spec.name == topic)
            partitions = [TopicPartition(topic, p) for p in range(spec.partitions)]
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            found: list[Envelope] = []
            while not await self._at_end(consumer, ends):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        try:
                            message = decode(record.value)
                        except UnreadableMessage:
                            continue
                        if message.run_id == run_id:
                            found.append(message)
            return found
        finally:
            await consumer.stop()

    @staticmethod
    async def _at_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        for partition, end in ends.items():
            if await consumer.position(partition) < end:
                return False
        return True

    async def state(self, run_id: str) -> RunState:
        return fold(await self.events(run_id))

    async def wait_for(
        self, run_id: str, predicate, timeout: float = 180.0, every: float = 0.5, what: str = ""
    ) -> RunState:
        last = RunState()

        async def holds() -> RunState | None:
            nonlocal last
            last = await self.state(run_id)
            return last if predicate(last) else None

        try:
            return await wait_until_async(holds, timeout=timeout, every=every)
        except WaitTimeout:
            waiting = f" waiting for {what}" if what else ""
            raise WaitTimeout(
                f"run {run_id} stuck{waiting} after {timeout:g} s: status {last.status}, "
                f"stage {last.current_stage}, processed "
                f"{[s.processed_count for s in last.stages]}, batches in flight "
                f"{[len(s.in_flight_ids) for s in last.stages]}"
            ) from None

    async def answer(self, command: Envelope, timeout: float = 60.0) -> Envelope:
        """Send a run command and wait for the orchestrator's answer to it (the event it caused).
        The orchestrator takes a site's records one at a time and a site's events share one
        partition: once the answer is on the stream, every run event it decided before taking
        the command is ahead of it."""
        await self.send(command)

        async def answered() -> Envelope | None:
            events = await self.events(command.run_id)
            return next((e for e in events if e.causation_id == command.message_id), None)

        return await wait_until_async(
            answered, timeout=timeout, every=0.5, what=f"the answer to {command.type}"
        )

    async def finished(self, run_id: str, timeout: float = 180.0) -> RunState:
        return await self.wait_for(run_id, lambda s: s.status in FINISHED, timeout)


def counts(engine: sa.Engine, site_id: int) -> dict[str, int]:
    with engine.connect() as conn:

        def n(table: sa.Table, *where) -> int:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.site_id == site_id, *where)
            ).scalar_one()

        return {
            "keywords_mapped": n(t.keywords, t.keywords.c.status == "mapped"),
            "clusters": n(t.clusters),
            "ideas": n(t.content_ideas),
            "tasks": n(t.tasks),
            "content": n(t.content),
            "content_in_review": n(t.content, t.content.c.status == "review"),
            "images": n(t.images),
            "images_generated": n(t.images, t.images.c.status == "generated"),
        }


def charged(engine: sa.Engine, account_id: int) -> int:
    with engine.connect() as conn:
        return -conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(t.credit_ledger.c.amount), 0)).where(
                t.credit_ledger.c.account_id == account_id, t.credit_ledger.c.amount < 0
            )
        ).scalar_one()


def balance(engine: sa.Engine, account_id: int) -> int:
    with engine.connect() as conn:
        return accounts.balance(conn, account_id)
