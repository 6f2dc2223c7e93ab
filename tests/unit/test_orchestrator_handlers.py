"""The orchestrator's handlers over fake ports: no broker, no database. What they keep, what
they send where, and that the state is not settled while a decision is being handed over."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from contracts import commands as cmd
from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope
from contracts.topics import Topics
from contracts.values import RunConfig
from orchestrator import handlers
from orchestrator.ports import HandOvers, Ports
from orchestrator.sites import Sites
from tests.support.decisions import LIMITS, SITE, T0, Harness

TOPICS = Topics(namespace="unit")
PARTITION = 2


class FakeOutputs(HandOvers):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, Envelope]] = []
        self.letters: list[DeadLetter] = []
        self.settled_while_sending: list[bool] = []

    async def send(self, topic: str, key: bytes, message: Envelope) -> None:
        self.settled_while_sending.append(self.settled())
        self.sent.append((topic, message))

    async def dead_letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    def send_from_thread(self, topic: str, message: Envelope) -> None:
        self.sent.append((topic, message))

    def settled(self) -> bool:
        return not self.open

    async def flush(self) -> None:
        pass


def ports(**overrides) -> Ports:
    fields = {
        "topics": TOPICS,
        "group_id": "unit-orchestrator",
        "limits": LIMITS,
        "sites": Sites(),
        "outputs": FakeOutputs(),
        "read_funds": lambda runs: {},
        "run_scheduler": lambda now, publish: [],
        "clock": lambda: T0,
        **overrides,
    }
    return Ports(**fields)


def start_command(run_id: str = "run_a") -> Envelope:
    payload = cmd.StartRun(
        run_id=run_id, trigger="manual", estimate=1, balance=9, config=RunConfig()
    )
    return Harness().envelope(payload)


def sent_types(p: Ports) -> list[tuple[str, str]]:
    return [(topic, type(message.data).__name__) for topic, message in p.outputs.sent]


def test_a_start_keeps_the_running_run_and_sends_its_event_and_first_stage_command():
    p = ports()
    asyncio.run(handlers.on_run_command(p, PARTITION, start_command()))
    assert sent_types(p) == [
        (TOPICS.run_events, "RunStarted"),
        (TOPICS.stage(1), "StartStage"),
    ]
    site = p.sites.get(SITE, PARTITION)
    assert site.active_run_id == "run_a" and site.run("run_a").status == "running"
    # The new state is kept before its outputs are handed over: not settled until then.
    assert p.outputs.settled_while_sending == [False, False] and p.outputs.settled()


def test_a_repeated_command_sends_nothing_more():
    p, start = ports(), start_command()
    asyncio.run(handlers.on_run_command(p, PARTITION, start))
    asyncio.run(handlers.on_run_command(p, PARTITION, start))
    assert len(p.outputs.sent) == 2


def test_an_event_while_catching_up_is_folded_and_decides_nothing():
    p = ports()
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 1}))
    for event in h.stream:
        asyncio.run(handlers.on_run_event(p, PARTITION, event, deciding=False))
    assert p.outputs.sent == []
    assert p.sites.get(SITE, PARTITION).run("run_a").status == "running"


def test_an_unreadable_record_goes_to_the_dead_letters():
    p = ports()
    record = SimpleNamespace(
        topic=TOPICS.run_commands, partition=0, offset=7, key=b"k", value=b"{", headers=[]
    )
    asyncio.run(handlers.on_unreadable(p, record, "not JSON"))
    (letter,) = p.outputs.letters
    assert letter.kafka_key == DeadLetter.of("unit-orchestrator", record, "not JSON").kafka_key


def test_a_scheduler_pass_publishes_what_the_scheduler_claimed():
    start = start_command("run_s")

    def run_scheduler(now, publish):
        assert now == T0
        publish(start)
        return ["run_s"]

    p = ports(run_scheduler=run_scheduler)
    asyncio.run(handlers.schedule(p))
    assert p.outputs.sent == [(TOPICS.run_commands, start)]


def test_a_failing_scheduler_pass_waits_for_the_next_one():
    def run_scheduler(now, publish):
        raise OSError("database down")

    p = ports(run_scheduler=run_scheduler)
    asyncio.run(handlers.schedule(p))  # logged, not raised
    assert p.outputs.sent == []


def test_a_tick_with_no_active_run_sends_nothing():
    p = ports()
    asyncio.run(handlers.on_tick(p))
    assert p.outputs.sent == []
