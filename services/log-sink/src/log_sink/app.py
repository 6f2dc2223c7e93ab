"""The log-sink process: `log-sink` (or `log-sink serve`) runs the sink that bootstrap.py wires;
`log-sink rebuild` regenerates runs.

log-sink rebuild --run RUN_ID [--run ...]   rewrite those runs' folders (and mirror)
log-sink rebuild --all                      rewrite every run folder and the diagnostic log
add --read-model to upsert the rows too, --no-files for the rows alone
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer
from prometheus_client import start_http_server

from contracts import tracing
from contracts.db.engines import sync_engine
from contracts.db.migrate import upgrade
from log_sink import metrics
from log_sink.bootstrap import bootstrap
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
    tracing.configure("log-sink", settings.otel_exporter_otlp_endpoint)
    metrics.READY.set(0)
    start_http_server(settings.metrics_port, registry=metrics.REGISTRY)
    metrics.watch(settings)
    _migrate(settings)
    service = bootstrap(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log.info("log-sink writing to %s (mirror %s)", settings.log_base_dir, settings.log_mirror_dir)
    await service.run(stopping)


def run_rebuild(
    settings: Settings, run_ids: frozenset[str] | None, read_model: bool, files: bool
) -> int:
    database = None
    if read_model:
        _migrate(settings)
        database = sync_engine(settings.database_url)
    outputs = Outputs(
        settings.log_base_dir,
        settings.log_mirror_dir,
        database,
        fresh_runs=True,
        fresh_diagnostic=run_ids is None,
        files=files,
    )
    topic = settings.topics.run_events
    result = asyncio.run(rebuild(settings.kafka_bootstrap_servers, topic, outputs, run_ids))
    print(
        f"rebuilt {result.runs} runs from {result.events} events "
        f"({result.unreadable} unreadable records skipped)"
        + ("" if result.written else "; some writes FAILED, see above")
    )
    return 0 if result.written else 1


cli = typer.Typer(help=__doc__.splitlines()[0], add_completion=False)


@cli.callback(invoke_without_command=True)
def main(context: typer.Context) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if context.invoked_subcommand is None:
        asyncio.run(serve(Settings()))


@cli.command("serve")
def serve_command() -> None:
    """Consume run events (the default)."""
    asyncio.run(serve(Settings()))


@cli.command("rebuild")
def rebuild_command(
    run: Annotated[
        list[str] | None, typer.Option(metavar="RUN_ID", help="A run to rebuild.")
    ] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every run, and the diagnostic log.")
    ] = False,
    read_model: Annotated[bool, typer.Option(help="Upsert the read-model rows too.")] = False,
    files: Annotated[bool, typer.Option(help="Rewrite the run folders.")] = True,
) -> None:
    """Regenerate runs from the event stream."""
    if bool(run) == all_runs:
        raise typer.BadParameter("give either --run RUN_ID (one or more) or --all")
    run_ids = None if all_runs else frozenset(run or ())
    raise typer.Exit(run_rebuild(Settings(), run_ids, read_model, files))
