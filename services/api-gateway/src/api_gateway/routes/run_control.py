"""POST run_now, pause, resume, cancel: commands to the orchestrator, answered by its events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from api_gateway import site_config
from api_gateway.accounts import Caller, balance
from api_gateway.auth import CallerDep
from api_gateway.db import run_of, site_of
from api_gateway.errors import ApiError, ErrorBody, bad_request, not_found
from api_gateway.params import RunId, SiteId
from api_gateway.planning import active_run_id, estimate_for
from api_gateway.run_commands import CommandSender, new_run_id, request_span
from contracts import commands as cmd
from contracts import events as ev
from contracts.admission import refuse_resume, refuse_start
from contracts.envelope import Envelope
from contracts.state import FINISHED

TIMEOUT_RESPONSE = {504: {"model": ErrorBody, "description": "The orchestrator did not answer."}}
router = APIRouter(tags=["runs"], responses=TIMEOUT_RESPONSE)


class RunStartedOut(BaseModel):
    run_id: str
    site_id: int
    status: str = "running"
    estimated_credits: int
    balance: int
    required: int


class RunControlled(BaseModel):
    run_id: str
    status: str = Field(description="The run's status after the command: running, paused, ...")
    event: str = Field(description="Type of the event that answered the command.")


def _sender(request: Request) -> CommandSender:
    return request.app.state.commands


@router.post("/run_now", response_model=RunStartedOut, summary="Start a run now")
async def run_now(request: Request, caller: CallerDep, site_id: SiteId) -> RunStartedOut:
    async with request.app.state.engine.begin() as conn:
        site = await site_of(conn, caller, site_id)
        config = await site_config.load(conn, site)
        figures = await estimate_for(conn, caller.account_id, site_id)
        active = await active_run_id(conn, site_id)
    refused = refuse_start(
        active_run_id=active, estimate=figures.checked_credits, balance=figures.balance
    )
    if refused is not None:
        raise _rejected(refused)
    command = cmd.StartRun(
        run_id=new_run_id(),
        trigger="manual",
        requested_by=f"user:{caller.user_id}",
        config=site_config.run_config(config),
        estimate=figures.checked_credits,
        balance=figures.balance,
    )
    with request_span(request, command.run_id, starts_run=True):
        answer = await _sender(request).ask(
            command, account_id=caller.account_id, site_id=site_id, run_id=command.run_id
        )
        if isinstance(answer.data, ev.RunRejected):
            raise _rejected(answer.data)
    return RunStartedOut(
        run_id=command.run_id,
        site_id=site_id,
        estimated_credits=figures.estimated_credits,
        balance=figures.balance,
        required=figures.required,
    )


def _rejected(rejection: ev.RunRejected) -> ApiError:
    return bad_request(
        rejection.reason,
        code=rejection.code,
        active_run_id=rejection.active_run_id,
        estimated_credits=rejection.estimate,
        balance=rejection.balance,
        required=rejection.required,
    )


# A check of the run's read-model row before its command is sent; raises to refuse.
Precheck = Callable[[AsyncConnection, Caller, Row], Awaitable[None]]


async def _control(
    request: Request, caller: Caller, run_id: str, command: object, precheck: Precheck | None = None
) -> RunControlled:
    site_id = await _site_of_run(request, caller, run_id, precheck)
    with request_span(request, run_id):
        answer = await _sender(request).ask(
            command, account_id=caller.account_id, site_id=site_id, run_id=run_id
        )
        return _controlled(run_id, answer)


async def _site_of_run(
    request: Request, caller: Caller, run_id: str, precheck: Precheck | None
) -> int:
    """The run's site, from the read model or, while that lags, from events seen here."""
    async with request.app.state.engine.connect() as conn:
        run = await run_of(conn, caller, run_id)
        if run is not None:
            if run.status in FINISHED:
                raise bad_request(
                    f"run {run_id} is {run.status}; it can no longer be changed",
                    code="not_allowed",
                    status=run.status,
                )
            if precheck is not None:
                await precheck(conn, caller, run)
            return run.site_id
    owner = request.app.state.hub.owner_of(run_id)
    if owner is None or owner[0] != caller.account_id:
        raise not_found(f"run {run_id}")
    return owner[1]


def _controlled(run_id: str, answer: Envelope) -> RunControlled:
    data = answer.data
    if isinstance(data, ev.CommandRejected):
        raise bad_request(data.reason, code="not_allowed", status=data.status)
    status = {ev.RunPaused: "paused", ev.RunResumed: "running", ev.RunCancelled: "cancelled"}
    return RunControlled(run_id=run_id, status=status.get(type(data), "running"), event=answer.type)


@router.post("/pause", response_model=RunControlled, summary="Pause a running run")
async def pause(request: Request, caller: CallerDep, run_id: RunId) -> RunControlled:
    requested_by = f"user:{caller.user_id}"
    return await _control(
        request, caller, run_id, cmd.PauseRun(run_id=run_id, requested_by=requested_by)
    )


@router.post("/resume", response_model=RunControlled, summary="Resume a paused run")
async def resume(request: Request, caller: CallerDep, run_id: RunId) -> RunControlled:
    """Refused (400, `insufficient_credits`, with `balance` and `required`) while the balance
    cannot pay the next item of the run's stage."""
    requested_by = f"user:{caller.user_id}"
    return await _control(
        request,
        caller,
        run_id,
        cmd.ResumeRun(run_id=run_id, requested_by=requested_by),
        _can_pay_the_next_item,
    )


async def _can_pay_the_next_item(conn: AsyncConnection, caller: Caller, run: Row) -> None:
    if run.status != "paused":
        return  # the orchestrator refuses the resume of a run that is not paused
    funds = await conn.run_sync(lambda c: balance(c, caller.account_id))
    refused = refuse_resume(stage=run.current_stage, balance=funds)
    if refused is not None:
        reason, needed = refused
        raise bad_request(
            reason, code="insufficient_credits", balance=funds, required=needed, status="paused"
        )


@router.post("/cancel", response_model=RunControlled, summary="Cancel a running or paused run")
async def cancel(request: Request, caller: CallerDep, run_id: RunId) -> RunControlled:
    requested_by = f"user:{caller.user_id}"
    return await _control(
        request, caller, run_id, cmd.CancelRun(run_id=run_id, requested_by=requested_by)
    )
