"""The log-sink as a process against the real Kafka and PostgreSQL: files and read model after a
run, kill -9 mid-stream, rebuild, disk trouble and an unreadable record."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from contracts import run_logs
from contracts.db import tables
from contracts.db.engines import sync_engine
from contracts.dead_letter import DeadLetter
from log_sink.projection import Projector
from tests.support.kafka import end_offsets, publish, read_until
from tests.support.runs import ACCOUNT, SITE, complete_run
from tests.support.wait import wait_until

LOG_SINK = str(Path(sys.executable).with_name("log-sink"))


def new_run_id() -> str:
    return f"run_20261102_090000_manual_{uuid.uuid4().hex[:10]}"


def expected_files(events) -> dict[str, bytes]:
    projector = Projector()
    for event in events:
        projector.apply(event)
    [view] = projector.runs.values()
    return {
        name: "".join(f"{line}\n" for line in lines).encode() for name, lines in view.files.items()
    }


def folder_of(base: Path, run_id: str) -> Path:
    return run_logs.run_dir(base, ACCOUNT, SITE, run_id)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def wait_for_files(base: Path, run_id: str, expected: dict[str, bytes], sink) -> None:
    folder = folder_of(base, run_id)
    try:
        wait_until(lambda: folder_bytes(folder) == expected, what=f"files of {run_id}")
    except AssertionError:
        got = folder_bytes(folder)
        print(sink.tail())
        assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in expected.items()}
        raise


def metric(sink, sample: str) -> float:
    """The value of one sample, e.g. `name{label="x"}`; 0 when not exported yet."""
    for line in sink.metrics().splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


@pytest.fixture
def base(services) -> Path:
    return Path(services.base_env["LOG_BASE_DIR"])


def test_a_complete_run_gives_files_trace_and_read_model(
    services, base, topics, kafka_bootstrap, database_url
):
    run_id = new_run_id()
    events = complete_run(run_id, items_per_stage=3)
    mirror = base.parent / "mirror"
    sink = services.start("log-sink", LOG_SINK, env={"LOG_MIRROR_DIR": str(mirror)})

    first, *_ = asyncio.run(publish(kafka_bootstrap, topics.run_events, *events))

    expected = expected_files(events)
    wait_for_files(base, run_id, expected, sink)
    wait_for_files(mirror, run_id, expected, sink)
    folder = folder_of(base, run_id)
    assert {run_logs.MAIN_LOG, run_logs.TRACE} <= set(expected)
    assert all((folder / run_logs.stage_log(n)).exists() for n in range(1, 8))
    processed = [
        line
        for line in (folder / run_logs.TRACE).read_text().splitlines()
        if '"stage_item_processed"' in line
    ]
    assert len(processed) == 21
    main_log = (folder / run_logs.MAIN_LOG).read_text().splitlines()
    assert len(main_log) == 51
    assert run_logs.tail(run_logs.main_log_path(base, ACCOUNT, SITE, run_id), 50) == main_log[-50:]
    assert run_id in (base / run_logs.DIAGNOSTIC_LOG).read_text()

    db = sync_engine(database_url)
    try:
        row = wait_until(lambda: _run_row(db, run_id, "completed"), what="read model row")
        assert row.credits_used == 42 and row.estimate == 10 and row.trigger == "manual"
        # Where the run begins on the topic, for live streams to read it from there.
        assert (row.stream_partition, row.first_offset) == (first.partition, first.offset)
        with db.connect() as connection:
            stages = connection.execute(
                sa.select(tables.automation_run_stages)
                .where(tables.automation_run_stages.c.run_id == run_id)
                .order_by(tables.automation_run_stages.c.stage)
            ).all()
        assert [(s.stage, s.status, s.processed_items, s.total_items) for s in stages] == [
            (n, "completed", 3, 3) for n in range(1, 8)
        ]
        with db.begin() as connection:
            connection.execute(
                sa.delete(tables.automation_runs).where(tables.automation_runs.c.run_id == run_id)
            )
        rebuilt = rebuild(services, "--run", run_id, "--read-model", "--no-files")
        assert rebuilt.returncode == 0, rebuilt.stderr
        rebuilt_row = _run_row(db, run_id, "completed")
        assert rebuilt_row.credits_used == 42 and rebuilt_row.first_offset == first.offset
    finally:
        db.dispose()


def rebuild(services, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOG_SINK, "rebuild", *args],
        env={**os.environ, **services.base_env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _run_row(db: sa.Engine, run_id: str, status: str):
    with db.connect() as connection:
        row = connection.execute(
            sa.select(tables.automation_runs).where(tables.automation_runs.c.run_id == run_id)
        ).first()
    return row if row is not None and row.status == status else None


def test_kill_9_mid_stream_then_rebuild_give_the_same_bytes(
    services, base, topics, kafka_bootstrap
):
    run_id = new_run_id()
    events = complete_run(run_id, items_per_stage=4)
    half = len(events) // 2
    sink = services.start("log-sink", LOG_SINK)
    asyncio.run(publish(kafka_bootstrap, topics.run_events, *events[:half]))
    wait_for_files(base, run_id, expected_files(events[:half]), sink)

    sink.kill9()
    # As if the kill had landed in the middle of a write.
    with open(folder_of(base, run_id) / run_logs.TRACE, "a") as trace:
        trace.write('{"ts":"2026-11-02T09:0')
    # Redeliveries of what was already written, as an outbox relay may do after a crash.
    asyncio.run(
        publish(kafka_bootstrap, topics.run_events, *events[half - 5 : half], *events[half:])
    )
    asyncio.run(publish(kafka_bootstrap, topics.run_events, *events[3:8]))
    sink = services.start("log-sink-2", LOG_SINK)

    expected = expected_files(events)
    wait_for_files(base, run_id, expected, sink)

    shutil.rmtree(folder_of(base, run_id))
    rebuilt = rebuild(services, "--run", run_id)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt 1 runs" in rebuilt.stdout
    assert folder_bytes(folder_of(base, run_id)) == expected


def test_a_path_that_cannot_be_written_is_counted_and_caught_up(
    services, base, topics, kafka_bootstrap
):
    # Root ignores permissions; a regular file where the site folder should be stops even root.
    blocker = base / str(ACCOUNT) / str(SITE)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    run_id = new_run_id()
    events = complete_run(run_id)
    sink = services.start("log-sink", LOG_SINK)

    asyncio.run(publish(kafka_bootstrap, topics.run_events, *events))
    name = 'automation_log_sink_write_errors_total{target="files"}'
    wait_until(lambda: metric(sink, name) >= 1, what="a counted write error")
    assert sink.process.poll() is None
    assert "writing files failed" in sink.tail()

    blocker.unlink()
    wait_for_files(base, run_id, expected_files(events), sink)


def test_an_unreadable_record_goes_to_dead_letter_and_the_sink_goes_on(
    services, base, topics, kafka_bootstrap
):
    sink = services.start("log-sink", LOG_SINK)
    start = asyncio.run(end_offsets(kafka_bootstrap, topics.dead_letter))
    marker = uuid.uuid4().hex.encode()

    async def publish_garbage() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topics.run_events, b"not json " + marker, key=b"1")
        finally:
            await producer.stop()

    asyncio.run(publish_garbage())
    run_id = new_run_id()
    events = complete_run(run_id)
    asyncio.run(publish(kafka_bootstrap, topics.run_events, *events))

    def ours(records) -> list[DeadLetter]:
        letters = [DeadLetter.decode(r.value) for r in records]
        return [letter for letter in letters if marker in letter.value()]

    records = asyncio.run(read_until(kafka_bootstrap, start, lambda rs: bool(ours(rs))))
    [letter] = ours(records)
    assert letter.reason.startswith("not JSON") and letter.topic == topics.run_events
    wait_for_files(base, run_id, expected_files(events), sink)
