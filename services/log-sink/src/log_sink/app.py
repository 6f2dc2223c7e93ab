"""Wiring: `log-sink` (or `log-sink serve`) runs the sink; `log-sink rebuild` regenerates runs.

log-sink rebuild --run RUN_ID [--run ...]   rewrite those runs' folders (and mirror)
log-sink rebuild --all                      rewrite every run folder and the diagnostic log
add --read-model to upsert the rows too, --no-files for the rows alone
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import start_http_server

from contracts.db.migrate import engine, upgrade
from contracts.topics import Topics
from log_sink import metrics
from log_sink.consumer import LiveSink
from log_sink.outputs import Outputs
from log_sink.rebuild import rebuild
from log_sink.settings import Settings

log = logging.getLogger("log_sink")


def _migrate(settings: Settings) -> None:
    try:
        upgrade(settings.database_url)
    except Exception as exc:  # the files do not need the database; rows retry later
        log.warning("database migration failed, read-model writes will retry: %s", exc)


async def serve(settings: Settings) -> None:
    metrics.READY.set(0)
    start_http_server(settings.metrics_port, registry=metrics.REGISTRY)
    metrics.watch(settings)
    _migrate(settings)
    database = engine(settings.database_url, pool_pre_ping=True)
    topics = Topics.from_env()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True
    )
    outputs = Outputs(settings.log_base_dir, settings.log_mirror_dir, database)
    sink = LiveSink(
        consumer,
        producer,
        outputs,
        topics,
        settings.group_id,
        settings.flush_interval_seconds,
        settings.retry_interval_seconds,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await producer.start()
    await consumer.start()
    log.info("log-sink writing to %s (mirror %s)", settings.log_base_dir, settings.log_mirror_dir)
    try:
        await sink.run(stopping)
    finally:
        await consumer.stop()
        await producer.stop()
        database.dispose()


def run_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    database = None
    if args.read_model:
        _migrate(settings)
        database = engine(settings.database_url)
    outputs = Outputs(
        settings.log_base_dir,
        settings.log_mirror_dir,
        database,
        fresh_runs=True,
        fresh_diagnostic=args.all,
        files=args.files,
    )
    run_ids = None if args.all else frozenset(args.run)
    topic = Topics.from_env().run_events
    result = asyncio.run(rebuild(settings.kafka_bootstrap_servers, topic, outputs, run_ids))
    print(
        f"rebuilt {result.runs} runs from {result.events} events "
        f"({result.unreadable} unreadable records skipped)"
        + ("" if result.written else "; some writes FAILED, see above")
    )
    return 0 if result.written else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="log-sink", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="consume run events (the default)")
    rebuild_cmd = commands.add_parser("rebuild", help="regenerate runs from the event stream")
    which = rebuild_cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", action="append", default=[], metavar="RUN_ID")
    which.add_argument("--all", action="store_true")
    rebuild_cmd.add_argument("--read-model", action="store_true", help="upsert the rows too")
    rebuild_cmd.add_argument("--files", action=argparse.BooleanOptionalAction, default=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = _parser().parse_args(argv)
    settings = Settings()
    if args.command == "rebuild":
        sys.exit(run_rebuild(settings, args))
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
