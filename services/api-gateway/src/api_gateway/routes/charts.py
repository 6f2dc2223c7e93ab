"""A run's timeline, drawn from its events, and the site's credits and money per day: as JSON,
and as SVG drawn here (served as images; no chart library, no script in them, see ADR 10).

- GET run_timeline: each stage's start and end, the run's pauses (with the reason), the stages'
  waits for the AI provider and for the provider's batch (economy runs), the items in flight
  over time (dispatched, not yet settled), and the items that failed with their reasons. Read
  from the events topic (the run's partition, from its first event to where the gateway's
  consumer stands), like a live stream's past.
- GET run_timeline.svg: the same, drawn: one lane per stage, pauses and waits shaded, and the
  items in flight as a line under the lanes.
- GET usage_chart.svg: credits (bars) and money (line) per UTC day, the last 30 days of a site.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api_gateway import costs
from api_gateway.auth import CallerDep
from api_gateway.db import DbConn, known_run, site_of
from api_gateway.params import RunId, SiteId
from contracts import events as ev
from contracts.envelope import utcnow
from contracts.stages import STAGES

router = APIRouter(tags=["charts"])
SVG = "image/svg+xml"
SVG_DOC = {200: {"content": {SVG: {}}, "description": "An SVG image."}}
MAX_FAILED = 200


class StageSpan(BaseModel):
    stage: int
    name: str
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while the stage runs.")
    status: str = Field(description="running, completed or failed.")


class Span(BaseModel):
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while it lasts.")
    reason: str
    stage: int | None = Field(None, description="The stage that waited (waits only).")


class InFlight(BaseModel):
    at: datetime
    stage: int
    items: int = Field(description="Items dispatched to workers and not yet settled.")


class FailedItem(BaseModel):
    stage: int
    item_id: int
    title: str
    error: str
    at: datetime


class RunTimeline(BaseModel):
    run_id: str
    started_at: datetime | None
    ended_at: datetime | None
    stages: list[StageSpan]
    pauses: list[Span]
    waits: list[Span] = Field(description="Waits for the AI provider.")
    provider_batch_waits: list[Span] = Field(
        description="Waits of an economy run's stage batches for the provider's batch, from "
        "when the requests were handed over to when the batch's answers were written; the "
        "reason is the provider's last report."
    )
    in_flight: list[InFlight] = Field(description="A point at each change, in time order.")
    failed_items: list[FailedItem] = Field(description=f"The first {MAX_FAILED}.")


async def timeline(request: Request, run) -> RunTimeline:
    out = RunTimeline(
        run_id=run.run_id,
        started_at=run.started_at,
        ended_at=run.ended_at,
        stages=[],
        pauses=[],
        waits=[],
        provider_batch_waits=[],
        in_flight=[],
        failed_items=[],
    )
    if run.first_offset is None or run.stream_partition is None:
        return out
    hub = request.app.state.hub
    await hub.ready.wait()
    end = hub.position(run.stream_partition)
    past = request.app.state.replayer.read(run.run_id, run.stream_partition, run.first_offset, end)
    busy: dict[int, set[int]] = {}
    stages: dict[int, StageSpan] = {}
    batch_waits: dict[tuple[int, str], Span] = {}  # open, by stage and stage batch
    async for _, message in past:
        e, at = message.data, message.time
        if isinstance(e, ev.RunStarted):
            out.started_at = out.started_at or at
        elif isinstance(e, ev.RunPaused):
            out.pauses.append(Span(started_at=at, ended_at=None, reason=e.reason))
        elif isinstance(e, ev.RunResumed) and out.pauses and out.pauses[-1].ended_at is None:
            out.pauses[-1].ended_at = at
        elif type(e) in ev.RUN_ENDINGS:
            out.ended_at = at
        elif isinstance(e, ev.StageStarted) and e.stage not in stages:
            stages[e.stage] = StageSpan(
                stage=e.stage, name=STAGES[e.stage].name, started_at=at, ended_at=None,
                status="running",
            )  # fmt: skip
        elif isinstance(e, ev.StageCompleted | ev.StageFailed) and e.stage in stages:
            stages[e.stage].ended_at = at
            stages[e.stage].status = "completed" if isinstance(e, ev.StageCompleted) else "failed"
        elif isinstance(e, ev.StageWaitingForProvider):
            open_wait = [w for w in out.waits if w.stage == e.stage and w.ended_at is None]
            if not open_wait:
                reason = f"{e.provider} {e.model}: {e.reason}"
                out.waits.append(Span(started_at=at, ended_at=None, reason=reason, stage=e.stage))
        elif isinstance(e, ev.StageProviderRecovered):
            for wait in out.waits:
                if wait.stage == e.stage and wait.ended_at is None:
                    wait.ended_at = at
        if isinstance(e, ev.StageWaitingForProviderBatch | ev.StageBatchCompleted):
            _provider_batch_wait(out, batch_waits, e, at)
        elif isinstance(e, ev.StageCompleted | ev.StageFailed):
            for key in [key for key in batch_waits if key[0] == e.stage]:
                batch_waits.pop(key).ended_at = at
        if isinstance(e, ev.StageBatchDispatched | ev.StageItemProcessed | ev.StageItemFailed):
            held = busy.setdefault(e.stage, set())
            if isinstance(e, ev.StageBatchDispatched):
                held.update(e.item_ids)
            else:
                held.discard(e.item.id)
            if isinstance(e, ev.StageItemFailed) and len(out.failed_items) < MAX_FAILED:
                out.failed_items.append(
                    FailedItem(
                        stage=e.stage, item_id=e.item.id, title=e.item.title, error=e.error, at=at
                    )
                )
            out.in_flight.append(InFlight(at=at, stage=e.stage, items=len(held)))
    out.stages = [stages[n] for n in sorted(stages)]
    return out


def _provider_batch_wait(
    out: RunTimeline,
    open_waits: dict[tuple[int, str], Span],
    e: ev.StageWaitingForProviderBatch | ev.StageBatchCompleted,
    at: datetime,
) -> None:
    """A stage batch's wait begins with its first report, takes each later report as its
    reason, and ends when the batch completes."""
    key = (e.stage, e.batch_id)
    if isinstance(e, ev.StageBatchCompleted):
        if key in open_waits:
            open_waits.pop(key).ended_at = at
        return
    reason = (
        f"{e.provider} batch {', '.join(e.provider_batch_ids) or '(not created yet)'}: "
        f"{e.status}, {e.completed} of {e.total} answered, {e.failed} failed"
    )
    if key in open_waits:
        open_waits[key].reason = reason
        return
    wait = Span(started_at=e.since, ended_at=None, reason=reason, stage=e.stage)
    open_waits[key] = wait
    out.provider_batch_waits.append(wait)


@router.get(
    "/run_timeline",
    response_model=RunTimeline,
    summary="A run's stages, pauses, waits, items in flight and failed items, from its events",
)
async def run_timeline(request: Request, caller: CallerDep, conn: DbConn, run_id: RunId):
    return await timeline(request, await known_run(conn, caller, run_id))


@router.get(
    "/run_timeline.svg",
    response_class=Response,
    responses=SVG_DOC,
    summary="A run's timeline drawn as SVG",
)
async def run_timeline_svg(
    request: Request, caller: CallerDep, conn: DbConn, run_id: RunId
) -> Response:
    drawn = timeline_svg(await timeline(request, await known_run(conn, caller, run_id)))
    return Response(drawn, media_type=SVG, headers={"Cache-Control": "no-store"})


@router.get(
    "/usage_chart.svg",
    response_class=Response,
    responses=SVG_DOC,
    summary="Credits and money per UTC day over the last 30 days of a site, drawn as SVG",
)
async def usage_chart_svg(caller: CallerDep, conn: DbConn, site_id: SiteId) -> Response:
    await site_of(conn, caller, site_id)
    days = costs.day_range(None, None, today=utcnow().date())
    report = await costs.usage(conn, caller.account_id, site_id, days)
    return Response(usage_svg(report), media_type=SVG, headers={"Cache-Control": "no-store"})


# ---- drawing ------------------------------------------------------------------------------

WIDTH, LEFT, RIGHT, LANE, TOP = 760, 190, 20, 26, 30
INK, MUTED, LINE, ACCENT = "#1c2430", "#5b6675", "#d9dee5", "#1f5fbf"
STATUS_FILL = {"completed": "#1d7a46", "failed": "#b3261e", "running": ACCENT}


def _svg(height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" font-family="sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>"
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>{"".join(body)}</svg>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", fill: str = INK) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>'
    )


def timeline_svg(t: RunTimeline) -> str:
    title = f"Timeline of {t.run_id}"
    if not t.stages or t.started_at is None:
        return _svg(60, title, [_text(WIDTH / 2, 35, "No stage has started.", "middle", MUTED)])
    start = t.started_at
    end = t.ended_at or max(
        [utcnow(), *(s.ended_at for s in t.stages if s.ended_at)], default=utcnow()
    )
    span = max((end - start).total_seconds(), 1.0)
    plot = WIDTH - LEFT - RIGHT

    def x(at: datetime | None) -> float:
        at = at or end
        return LEFT + plot * max(0.0, min(1.0, (at - start).total_seconds() / span))

    lanes = len(t.stages)
    flight_top = TOP + lanes * LANE + 20
    flight_height = 60
    height = flight_top + flight_height + 40
    body = [_text(LEFT, 16, f"{_duration(span)} from {start:%Y-%m-%d %H:%M:%S} UTC", fill=MUTED)]
    for pause in t.pauses:
        body.append(
            f'<rect x="{x(pause.started_at):.1f}" y="{TOP - 4}" '
            f'width="{max(1.0, x(pause.ended_at) - x(pause.started_at)):.1f}" '
            f'height="{lanes * LANE + 4}" fill="#f0a500" fill-opacity="0.18">'
            f"<title>paused: {escape(pause.reason)}</title></rect>"
        )
    lane_of = {s.stage: i for i, s in enumerate(t.stages)}
    for i, stage in enumerate(t.stages):
        y = TOP + i * LANE
        body.append(_text(LEFT - 8, y + 15, f"{stage.stage}. {stage.name}", "end"))
        body.append(
            f'<rect x="{x(stage.started_at):.1f}" y="{y + 3}" '
            f'width="{max(2.0, x(stage.ended_at) - x(stage.started_at)):.1f}" height="{LANE - 8}" '
            f'rx="3" fill="{STATUS_FILL.get(stage.status, ACCENT)}">'
            f"<title>stage {stage.stage} {stage.status}</title></rect>"
        )
    for wait, fill, what in [
        *((w, "#9a5b00", "waiting") for w in t.waits),
        *((w, "#6b3fa0", "waiting for the provider's batch") for w in t.provider_batch_waits),
    ]:
        y = TOP + lane_of.get(wait.stage or 0, 0) * LANE
        body.append(
            f'<rect x="{x(wait.started_at):.1f}" y="{y + 3}" '
            f'width="{max(2.0, x(wait.ended_at) - x(wait.started_at)):.1f}" height="{LANE - 8}" '
            f'fill="{fill}" fill-opacity="0.6">'
            f"<title>{what}: {escape(wait.reason)}</title></rect>"
        )
    # Items in flight over time: all stages together, a step line.
    peak = max((p.items for p in t.in_flight), default=0)
    body.append(_text(LEFT - 8, flight_top + flight_height / 2, "Items in flight", "end"))
    body.append(
        f'<line x1="{LEFT}" y1="{flight_top + flight_height}" x2="{WIDTH - RIGHT}" '
        f'y2="{flight_top + flight_height}" stroke="{LINE}"/>'
    )
    if peak:
        floor = flight_top + flight_height
        points, level = [f"{LEFT:.1f},{floor:.1f}"], floor
        for point in t.in_flight:
            px = x(point.at)
            points.append(f"{px:.1f},{level:.1f}")
            level = floor - flight_height * point.items / peak
            points.append(f"{px:.1f},{level:.1f}")
        body.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{ACCENT}"/>')
        body.append(_text(LEFT + 4, flight_top + 10, f"peak {peak}", fill=MUTED))
    axis = flight_top + flight_height + 18
    for k in range(5):
        at = start + timedelta(seconds=span * k / 4)
        body.append(_text(x(at), axis, f"{at:%H:%M:%S}", "middle", MUTED))
    legend = (
        "bars: stages (green done, red failed, blue running); amber: paused; brown: waiting; "
        "purple: provider's batch"
    )
    body.append(_text(LEFT, axis + 18, legend, fill=MUTED))
    return _svg(height, title, body)


def usage_svg(report: costs.UsageReport) -> str:
    days = report.days
    title = f"Credits and money per day, {report.from_day} to {report.to_day}"
    height, base, top = 240, 190, 30
    plot = WIDTH - LEFT - RIGHT
    peak_credits = max((d.credits_charged for d in days), default=0) or 1
    peak_money = max((d.cost_usd for d in days), default=0.0) or 1.0
    step = plot / max(len(days), 1)
    body = [
        _text(LEFT, 16, f"credits (bars, peak {peak_credits}); money (line, peak "
              f"${peak_money:.4f})", fill=MUTED),
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="{LINE}"/>',
        _text(LEFT - 8, base, "0", "end", MUTED),
        _text(LEFT - 8, top + 10, f"{peak_credits} credits", "end", MUTED),
    ]  # fmt: skip
    line = []
    for i, day in enumerate(days):
        h = (base - top) * day.credits_charged / peak_credits
        bx = LEFT + i * step
        body.append(
            f'<rect x="{bx + 1:.1f}" y="{base - h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="{ACCENT}"><title>{day.day}: {day.credits_charged} credits, '
            f"${day.cost_usd:.4f}</title></rect>"
        )
        line.append(f"{bx + step / 2:.1f},{base - (base - top) * day.cost_usd / peak_money:.1f}")
        if i % 7 == 0 or i == len(days) - 1:
            body.append(_text(bx + step / 2, base + 16, f"{day.day:%m-%d}", "middle", MUTED))
    if line:
        body.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#b3261e"/>')
    return _svg(height, title, body)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {round(seconds % 60)} s"
