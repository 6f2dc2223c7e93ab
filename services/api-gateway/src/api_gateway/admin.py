"""`automation-admin`: create accounts, users, sites and tokens, add credits, import keywords."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import pydantic_core
import typer
from sqlalchemy.engine import Connection

from api_gateway import accounts, keywords
from api_gateway.settings import Settings
from contracts.db.engines import sync_engine

app = typer.Typer(
    help="Administer accounts, sites, tokens, credits and keywords.", no_args_is_help=True
)
T = TypeVar("T")


def _in_transaction(work: Callable[[Connection], T]) -> T:
    engine = sync_engine(Settings().database_url)
    try:
        with engine.begin() as conn:
            return work(conn)
    except accounts.AdminError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


@app.command("create-account")
def create_account(name: str, credits: Annotated[int, typer.Option(min=0)] = 0) -> None:
    """Create an account, optionally with starting credits."""

    def work(conn: Connection) -> int:
        account_id = accounts.create_account(conn, name)
        if credits:
            accounts.add_credits(conn, account_id, credits, reason="starting credits")
        return account_id

    typer.echo(f"account {_in_transaction(work)} created")


@app.command("create-user")
def create_user(account_id: int, email: str, name: str = "") -> None:
    user_id = _in_transaction(lambda c: accounts.create_user(c, account_id, email, name))
    typer.echo(f"user {user_id} created")


@app.command("create-site")
def create_site(
    account_id: int, name: str, domain: str | None = None, timezone: str = "UTC"
) -> None:
    site_id = _in_transaction(lambda c: accounts.create_site(c, account_id, name, domain, timezone))
    typer.echo(f"site {site_id} created")


@app.command("create-token")
def create_token(user_id: int, name: str = "cli") -> None:
    """Issue an API token. It is printed once and stored only as a hash."""
    issued = _in_transaction(lambda c: accounts.issue_token(c, user_id, name))
    typer.echo(issued.token)


@app.command("revoke-token")
def revoke_token(user_id: int, name: str = "cli") -> None:
    """Revoke a user's live tokens with this name; calls with them then answer 401."""
    revoked = _in_transaction(lambda c: accounts.revoke_tokens(c, user_id, name))
    typer.echo(f"revoked {revoked} token(s)")


@app.command("add-credits")
def add_credits(account_id: int, amount: int, reason: str = "top-up") -> None:
    new_balance = _in_transaction(lambda c: accounts.add_credits(c, account_id, amount, reason))
    typer.echo(f"balance {new_balance}")


@app.command("list-accounts")
def list_accounts() -> None:
    """Accounts with their credit balance."""
    for row in _in_transaction(accounts.list_accounts):
        typer.echo(f"{row.id}\t{row.name}\tbalance {row.credit_balance}")


@app.command("list-sites")
def list_sites(account_id: int) -> None:
    """An account's sites, with whether scheduled runs are on and when the next one is due."""
    for row in _in_transaction(lambda c: accounts.list_sites(c, account_id)):
        schedule = f"next run {row.next_run_at:%Y-%m-%d %H:%M}Z" if row.next_run_at else "-"
        enabled = "enabled" if row.is_enabled else "disabled"
        typer.echo(
            f"{row.id}\t{row.name}\t{row.domain or '-'}\t{row.timezone}\t{enabled}\t{schedule}"
        )


@app.command("list-tokens")
def list_tokens(account_id: int) -> None:
    """An account's API tokens by prefix (the tokens themselves are not stored)."""
    for row in _in_transaction(lambda c: accounts.list_tokens(c, account_id)):
        state = "revoked" if row.revoked_at else "active"
        used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}Z" if row.last_used_at else "never used"
        typer.echo(f"{row.id}\t{row.token_prefix}…\t{row.name}\t{row.email}\t{state}\t{used}")


@app.command("import-keywords")
def import_keywords(
    site_id: int, file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]
) -> None:
    """Import keywords from a CSV (header with `keyword`) or a JSON list of objects."""
    rows, errors = _read_keywords(file)
    result = _in_transaction(lambda c: keywords.import_keywords(c, site_id, rows))
    for error in errors:
        typer.echo(f"skipped {error}", err=True)
    typer.echo(f"added {result.added}, already present {result.duplicates}, invalid {len(errors)}")


def _read_keywords(file: Path) -> tuple[list[keywords.KeywordIn], list[str]]:
    """Rows and per-row errors, read as the API reads them (JSON values of the types the schema
    says); a file that is no list of keywords at all ends the command."""
    try:
        text = file.read_text(encoding="utf-8-sig")
        if file.suffix.lower() == ".json":
            return keywords.parse_json(pydantic_core.from_json(text, allow_inf_nan=False))
        return keywords.parse_csv(text)
    except (ValueError, csv.Error) as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(2) from None


if __name__ == "__main__":
    app()
