"""`stack`: run the local Kafka and PostgreSQL the services and tests use."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from local_stack import services, stack
from local_stack.processes import StackError, tail
from local_stack.settings import StackSettings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    style = "yellow" if message.startswith("warning:") else None
    out.print(escape(message), style=style)


def redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


@contextmanager
def failures_exit_nonzero() -> Iterator[None]:
    try:
        yield
    except StackError as failure:
        err.print(f"[bold red]stack: {escape(failure.message)}[/]")
        for log in failure.logs:
            _show_log(log, failure.show_log_tail)
        raise typer.Exit(1) from None


def _show_log(log: Path, show_tail: bool) -> None:
    err.print(f"log: {log}")
    excerpt = tail(log) if show_tail else ""
    if excerpt.strip():
        err.print(f"[dim]--- last lines of {log.name} ---[/]")
        err.print(excerpt, markup=False)


def _settings() -> StackSettings:
    with failures_exit_nonzero():  # STACK_BROKERS=2, say, is refused with a message
        return StackSettings()


def _command(action: Callable[[], None]) -> None:
    with failures_exit_nonzero():
        action()


@app.command()
def up() -> None:
    """Start Kafka and PostgreSQL (or check the external ones), create topics, migrate."""
    settings = _settings()

    def run() -> None:
        began = time.monotonic()
        endpoints = stack.ensure_up(settings, report=say)
        headline = "Stack is up" if endpoints.started else "Stack was already up"
        out.print(f"[bold green]{headline}[/] ({time.monotonic() - began:.1f} s)")
        _print_summary(settings, endpoints)

    _command(run)


def _print_summary(settings: StackSettings, endpoints: stack.StackEndpoints) -> None:
    paths = settings.paths
    out.print(f"  KAFKA_BOOTSTRAP_SERVERS={endpoints.kafka_bootstrap}")
    out.print(f"  DATABASE_URL={redact(endpoints.database_url)}")
    if not settings.external_kafka:
        for node in settings.nodes:
            out.print(f"  Kafka log: {paths.broker(node).log}")
    if not settings.external_database_url:
        out.print(f"  PostgreSQL log: {paths.pg_log}")
    out.print('  `eval "$(uv run stack env)"` exports these')
    if not (settings.external_kafka and settings.external_database_url):
        out.print("  `uv run stack down` stops the local servers")


@app.command()
def down() -> None:
    """Stop the Kafka and PostgreSQL this stack started (nothing else)."""

    def run() -> None:
        stopped = stack.down(_settings())
        if not stopped.stopped_anything:
            out.print("Nothing to stop: the local stack is not running")
            return
        if stopped.services_pid is not None:
            out.print(f"Services stopped (supervisord pid {stopped.services_pid})")
        if stopped.kafka_pids:
            out.print(f"Kafka stopped (pid {', '.join(map(str, stopped.kafka_pids))})")
        if stopped.postgres_pid is not None:
            out.print(f"PostgreSQL stopped (pid {stopped.postgres_pid})")

    _command(run)


@app.command()
def status() -> None:
    """Show what runs; exit 0 when Kafka and PostgreSQL both answer, else 1."""
    components = stack.status(_settings())
    for component in components:
        where = "external" if component.external else f"pid {component.pid or '-'}"
        # Padded before the colour markup, which would count in the width.
        state = "[green]up  [/]" if component.answering else "[red]down[/]"
        endpoint = escape(redact(component.endpoint))
        out.print(f"{component.name:<11} {state} {where:<10} {endpoint}")
    if not all(component.answering for component in components):
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL, else the local stack's) to the newest schema, and
    print the revision it is at."""
    from contracts.db.migrate import current, upgrade

    database_url = _settings().database_url
    _command(lambda: upgrade(database_url))
    typer.echo(current(database_url) or "(none)")


@app.command()
def env() -> None:
    """Print shell `export` lines for the stack's endpoints: eval "$(stack env)"."""
    settings = _settings()
    typer.echo(f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(settings.kafka_bootstrap)}")
    typer.echo(f"export DATABASE_URL={shlex.quote(settings.database_url)}")


@app.command("lock-jars")
def lock_jars() -> None:
    """Let Maven resolve the broker's jars for deploy/local/kafka/pom.xml and write what it
    fetched (paths and SHA-256) to jars.lock beside it: run it after changing the pom."""
    from local_stack import kafka_jars

    def run() -> None:
        lock = kafka_jars.lock_from_maven(kafka_jars.pom_path())
        kafka_jars.lock_path().write_text(kafka_jars.render_lock(lock))
        out.print(f"{kafka_jars.lock_path()}: Kafka {lock.kafka_version}, {len(lock.jars)} jars")

    _command(run)


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm deleting all stack data.")] = False,
) -> None:
    """Stop the stack and delete its data (topics, messages, database). Needs --yes."""
    settings = _settings()
    if not yes:
        err.print(f"This deletes {settings.paths.home}; run `stack reset --yes` to do it.")
        raise typer.Exit(2)

    def run() -> None:
        stack.reset(settings)
        out.print(f"Stack stopped and {settings.paths.home} deleted")

    _command(run)


demo_main = typer.Typer(help="Bring the stack up and load the demo data.", add_completion=False)


@demo_main.command()
def demo() -> None:
    """Bring the stack and the services up, load the demo data, run the whole pipeline."""

    def run() -> None:
        settings = _settings()
        compiling = services.compile_ahead(also=("local_stack.demo",))
        endpoints = stack.ensure_up(settings, report=say)
        if compiling is not None:
            compiling.wait()
        from local_stack import demo as demo_data  # the gateway and SQLAlchemy only for the demo

        demo = demo_data.run(endpoints.database_url, console=out)
        outcome = demo_data.run_pipeline(settings, demo, console=out)
        if outcome.status != "completed":
            raise typer.Exit(1)

    _command(run)
