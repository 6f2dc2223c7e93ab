"""The demo: bring the stack up, make a demo account, site and token with credits, load the
sample keywords the repository ships, and show what is there. Safe to run again: it finds what
an earlier run made instead of making it twice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Connection

from api_gateway import accounts, keywords
from contracts.credits import estimate
from contracts.db import tables as t
from contracts.db.engines import sync_engine
from contracts.db.pending import pending_counts, pending_work
from contracts.run_logs import run_dir
from contracts.settings import default_log_dir, repo_root
from contracts.stages import STAGES
from local_stack import demo_run, services
from local_stack.settings import StackSettings

DEMO_EMAIL = "demo@example.com"
DEMO_SITE = "Home Coffee Brewing"
DEMO_CREDITS = 5000
TOKEN_NAME = "demo"
SAMPLE_KEYWORDS = repo_root() / "deploy" / "sample-data" / "keywords.csv"


@dataclass(frozen=True)
class Demo:
    account_id: int
    user_id: int
    site_id: int
    token: str
    imported: keywords.ImportResult


def seed(conn: Connection, sample: Path = SAMPLE_KEYWORDS) -> Demo:
    user = conn.execute(
        sa.select(t.users.c.id, t.users.c.account_id).where(t.users.c.email == DEMO_EMAIL)
    ).first()
    if user is None:
        account_id = accounts.create_account(conn, "Demo account")
        user_id = accounts.create_user(conn, account_id, DEMO_EMAIL, "Demo operator")
    else:
        account_id, user_id = user.account_id, user.id
    site_id = conn.execute(
        sa.select(t.sites.c.id).where(
            t.sites.c.account_id == account_id, t.sites.c.name == DEMO_SITE
        )
    ).scalar_one_or_none()
    if site_id is None:
        site_id = accounts.create_site(conn, account_id, DEMO_SITE, "coffee.example.com")
    shortfall = DEMO_CREDITS - accounts.balance(conn, account_id)
    if shortfall > 0:
        accounts.add_credits(conn, account_id, shortfall, reason="demo credits")
    # Tokens are stored hashed, so the demo cannot show an old one: it replaces it.
    accounts.revoke_tokens(conn, user_id, TOKEN_NAME)
    token = accounts.issue_token(conn, user_id, TOKEN_NAME).token
    rows, errors = keywords.parse_csv(sample.read_text(encoding="utf-8"))
    if errors:
        raise ValueError(f"{sample}: {errors[0]}")
    imported = keywords.import_keywords(conn, site_id, rows)
    return Demo(account_id, user_id, site_id, token, imported)


def show(conn: Connection, demo: Demo, console: Console) -> None:
    balance = accounts.balance(conn, demo.account_id)
    console.print(f"[bold]Account[/] {demo.account_id}  user {DEMO_EMAIL}  balance {balance}")
    console.print(f"[bold]Site[/] {demo.site_id}  {DEMO_SITE}")
    console.print(f"[bold]API token[/] {demo.token}")
    console.print(
        f"[bold]Keywords[/] from {SAMPLE_KEYWORDS.name}: added {demo.imported.added}, "
        f"already there {demo.imported.duplicates}; by status "
        f"{keywords.count_by_status(conn, demo.site_id)}"
    )
    table = Table(title="Pipeline: what each stage would pick now")
    for column in ("stage", "name", "type", "pending"):
        table.add_column(column)
    for number, count in pending_counts(conn, demo.site_id).items():
        stage = STAGES[number]
        table.add_row(str(number), stage.name, stage.type, str(count))
    console.print(table)
    figures = estimate(pending_work(conn, demo.site_id), balance)
    console.print(
        f"[bold]Estimate[/] {figures.estimated_credits} credits now "
        f"({figures.projected_credits} with what the run will create); needs "
        f"{figures.required}, balance {figures.balance}: "
        f"{'sufficient' if figures.sufficient else 'insufficient'}"
    )


def run(database_url: str, console: Console | None = None) -> Demo:
    """Seed and show the demo data (no services needed)."""
    console = console or Console()
    engine = sync_engine(database_url)
    try:
        with engine.begin() as conn:
            demo = seed(conn)
        with engine.connect() as conn:
            show(conn, demo, console)
        return demo
    finally:
        engine.dispose()


def run_pipeline(settings: StackSettings, demo: Demo, console: Console) -> demo_run.RunOutcome:
    """Bring the four services up, start a run through the REST API, follow it to the end."""
    console.print("[bold]Services[/] starting (orchestrator, stage workers, log-sink, gateway)")
    services.ensure_running(settings)
    base_url = f"http://127.0.0.1:{services.GATEWAY_PORT}"
    headers = {"Authorization": f"Bearer {demo.token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        demo_run.configure(client, demo.site_id)
        console.print(
            f"[bold]Config[/] {demo_run.CONCURRENCY} batches of a stage in flight at once"
        )
        run_id = demo_run.start_run(client, demo.site_id)
        console.print(f"[bold]Run[/] {run_id} started")
        outcome = demo_run.follow(client, run_id, console)
    engine = sync_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            balance = accounts.balance(conn, demo.account_id)
    finally:
        engine.dispose()
    log_dir = run_dir(default_log_dir(), demo.account_id, demo.site_id, run_id)
    demo_run.summary(outcome.run, balance, str(log_dir), console)
    console.print(f"API at {base_url}/docs with the token above; `make down` stops everything")
    console.print(
        f"[bold]Console[/] {base_url}/  sign in with the API token: {demo.token}",
        soft_wrap=True,
    )
    return outcome
