"""The log-sink's pure parts: rendering a run's events into trace and log lines, the read-model
rows, and the file rules (append only what is missing, cut a torn line, tail)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from api_gateway.run_views import processing_state
from contracts import events as ev
from contracts import run_logs
from contracts.run_rows import run_row, stage_row
from contracts.state import fold
from contracts.values import ItemRef
from log_sink.files import DiagnosticLog, FileStore
from log_sink.outputs import Outputs
from log_sink.projection import Projector
from log_sink.read_model import changed_stage_rows
from tests.support.runs import T0, Clock, complete_run, message

RUN = "run_20261102_090000_manual_t1"
SPEC_EVENTS = {"run_started", "stage_start", "stage_item_processed", "stage_progress"}


def project(events) -> Projector:
    projector = Projector()
    for event in events:
        projector.apply(event)
    return projector


def trace_of(projector: Projector, run_id: str = RUN) -> list[dict]:
    return [json.loads(line) for line in projector.runs[run_id].files[run_logs.TRACE]]


def test_a_complete_run_traces_every_item_numbered_1_to_total():
    trace = trace_of(project(complete_run(items_per_stage=3)))

    assert trace[0]["event"] == "run_started" and trace[-1]["event"] == "run_completed"
    assert SPEC_EVENTS | {"stage_complete", "run_completed"} == {t["event"] for t in trace}
    for stage in range(1, 8):
        items = [t for t in trace if t["event"] == "stage_item_processed" and t["stage"] == stage]
        assert [(t["processed"], t["total"]) for t in items] == [(1, 3), (2, 3), (3, 3)]
        assert items[0]["item"] == {"id": stage * 100, "title": f"s{stage} item 0"}


def test_trace_times_come_from_the_events_not_the_clock():
    first = trace_of(project(complete_run()))[0]
    assert first["ts"] == "2026-11-02T09:00:01.000Z"


def test_human_lines_carry_time_stage_counts_elapsed_and_credits():
    view = project(complete_run(items_per_stage=3)).runs[RUN]
    stage_log = view.files[run_logs.stage_log(2)]

    assert stage_log[0].startswith("2026-11-02 09:00:")
    assert "stage 2" in stage_log[0] and "3 pending items" in stage_log[0]
    assert "Processed 2/3" in stage_log[3] and "2 credits" in stage_log[3]
    completed = stage_log[-1]
    assert "3 processed" in completed and "6 credits" in completed and "elapsed 6.0s" in completed
    assert "42 credits used" in view.files[run_logs.MAIN_LOG][-1]
    assert set(view.files) == {run_logs.MAIN_LOG, run_logs.TRACE} | {
        run_logs.stage_log(n) for n in range(1, 8)
    }


def test_repeated_events_render_nothing():
    events = complete_run()
    once = project(events).runs[RUN].files
    redelivered = [e for event in events for e in (event, event)] + events
    assert project(redelivered).runs[RUN].files == once


def test_pause_resume_cancel_and_failure_render_their_events():
    clock = Clock()
    items = (ItemRef(id=1, title="a\nnew line"), ItemRef(id=2, title="b"))
    payloads = [
        ev.RunStarted(trigger="manual"),
        ev.StageStarted(stage=1, items=items),
        ev.StageItemFailed(stage=1, batch_id="b", item=items[0], error="boom", attempts=3),
        ev.RunPaused(reason="insufficient_credits"),
        ev.RunResumed(requested_by="system:credits", reason="credits were added"),
        ev.StageFailed(stage=1, error="every item failed"),
        ev.RunFailed(error="stage 1 failed", stage=1),
    ]
    events = [message(p, "run_x", clock, seq=n) for n, p in enumerate(payloads)]
    view = project(events).runs["run_x"]
    names = [json.loads(line)["event"] for line in view.files[run_logs.TRACE]]

    assert names == [
        "run_started",
        "stage_start",
        "stage_error",
        "run_paused",
        "run_resumed",
        "stage_error",
        "run_failed",
    ]
    assert all("\n" not in line for line in view.files[run_logs.MAIN_LOG])
    assert any("run_x" in line and "failed" in line for line in view.diagnostic)
    # A run that resumed by itself says why, in the log and in the trace.
    assert any("Run resumed at stage 1: credits were added" in line for line in view.diagnostic)
    resumed = json.loads(view.files[run_logs.TRACE][4])
    assert resumed["reason"] == "credits were added"


def test_rejected_runs_get_a_diagnostic_line_only():
    event = message(ev.RunRejected(reason="not enough credits"), "run_r", Clock(), seq=0)
    view = project([event]).runs["run_r"]
    assert not view.has_row and not view.files and len(view.diagnostic) == 1


def test_read_model_rows_follow_the_fold():
    events = complete_run(items_per_stage=3)
    # Mid stage 1: dispatched, one item done.
    state = fold(events[:4])
    row = stage_row(RUN, state.stage(1))

    assert run_row(state, 10)["status"] == "running"
    assert row["processed_items"] == 1 and row["remaining_count"] == 2
    assert [i["id"] for i in row["currently_processing"]] == [101, 102]
    assert row["up_next"] == []
    pending = stage_row(RUN, state.stage(7))
    assert pending["status"] == "pending" and pending["total_items"] == 0
    assert pending["currently_processing"] == [] and pending["remaining_count"] == 0


def test_only_the_stage_rows_that_changed_are_written_again():
    events = complete_run(items_per_stage=3)
    view = project(events[:4]).runs[RUN]  # mid stage 1: dispatched, one item done

    first = changed_stage_rows(view.state, {})
    assert [row["stage"] for row in first] == list(range(1, 8))
    written = {row["stage"]: row for row in first}
    assert changed_stage_rows(view.state, written) == []

    view.apply(events[4])  # the second item of stage 1
    [moved] = changed_stage_rows(view.state, written)
    assert moved["stage"] == 1 and moved["processed_items"] == 2


class RecordedOutputs(Outputs):
    """Outputs whose database is a list of the rows each write would commit; `fail` makes the
    next write fail the way a lost connection does."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"), engine=object(), files=False)  # type: ignore[arg-type]
        self.committed: list[list[int]] = []
        self.fail = False

    def _upsert(self, runs: list, stage_rows: list[dict]) -> None:
        if self.fail:
            self.fail = False
            raise sa.exc.OperationalError("upsert", {}, Exception("connection lost"))
        self.committed.append([row["stage"] for row in stage_rows])


def test_stage_rows_of_a_failed_write_are_written_by_the_next_one():
    events = complete_run(items_per_stage=3)
    projector, outputs = project(events[:4]), RecordedOutputs()

    outputs.fail = True
    assert not outputs.flush(projector)
    assert outputs.flush(projector)
    projector.apply(events[4])
    assert outputs.flush(projector)

    assert outputs.committed == [list(range(1, 8)), [1]]


def test_up_next_lists_open_items_no_batch_holds():
    clock = Clock()
    items = tuple(ItemRef(id=i, title=f"k{i}") for i in range(15))
    payloads = [
        ev.RunStarted(trigger="manual"),
        ev.StageStarted(stage=1, items=items),
        ev.StageBatchDispatched(
            stage=1, batch_id="b1", item_ids=(0, 1), lease_until=T0 + timedelta(hours=1)
        ),
    ]
    state = fold(message(p, "run_u", clock, seq=n) for n, p in enumerate(payloads))
    row = stage_row("run_u", state.stage(1))
    assert [i["id"] for i in row["currently_processing"]] == [0, 1]
    assert [i["id"] for i in row["up_next"]] == list(range(2, 12))
    assert row["remaining_count"] == 15


def test_files_get_only_missing_lines_and_lose_a_torn_one(tmp_path):
    lines = [f"line {n}" for n in range(5)]
    path = tmp_path / "r" / "f.log"
    path.parent.mkdir()
    path.write_text("line 0\nline 1\nline 2 torn")

    assert FileStore(tmp_path).sync(path.relative_to(tmp_path), lines) == 3
    assert path.read_text().splitlines() == lines
    assert FileStore(tmp_path).sync(path.relative_to(tmp_path), lines) == 0


def test_a_deleted_file_is_written_again_from_its_first_line(tmp_path):
    store, relative = FileStore(tmp_path), run_logs.run_dir(tmp_path, 1, 2, "run_d") / "f"
    store.sync(relative, ["a", "b"])
    relative.unlink()
    store.sync(relative, ["a", "b", "c"])
    assert relative.read_text() == "a\nb\nc\n"


def test_the_diagnostic_log_knows_its_lines_by_content(tmp_path):
    log = DiagnosticLog(tmp_path / run_logs.DIAGNOSTIC_LOG)
    assert log.append(["x", "y"]) == 2
    assert DiagnosticLog(tmp_path / run_logs.DIAGNOSTIC_LOG).append(["y", "z", "x"]) == 1
    assert (tmp_path / run_logs.DIAGNOSTIC_LOG).read_text() == "x\ny\nz\n"


def test_tail_returns_the_last_complete_lines(tmp_path):
    path = run_logs.main_log_path(tmp_path, 7, 42, "run_t")
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"{n:05d} {'x' * 200}\n" for n in range(2000)) + "partial")

    tail = run_logs.tail(run_logs.main_log_path(tmp_path, 7, 42, "run_t"), 50)
    assert len(tail) == 50 and tail[0].startswith("01950") and tail[-1].startswith("01999")
    assert run_logs.tail(run_logs.main_log_path(tmp_path, 7, 42, "run_missing"), 50) == []
    assert len(run_logs.tail(path, 5000)) == 2000


def test_run_ids_that_could_leave_the_base_folder_are_refused():
    assert not run_logs.is_safe_run_id("../etc")
    assert not run_logs.is_safe_run_id("a/b")
    assert run_logs.is_safe_run_id("run_20261102_090000_manual_ab12")


def test_rows_of_a_run_still_replaying_wait_but_its_files_are_written(tmp_path):
    from log_sink.outputs import Outputs

    projector = Projector()
    for event in complete_run()[:10]:
        projector.apply(event, partition=0)
    outputs = Outputs(tmp_path)

    assert outputs.flush(projector, replaying=frozenset({0})) is False
    assert (run_logs.run_dir(tmp_path, 7, 42, RUN) / run_logs.TRACE).exists()
    assert outputs.flush(projector) is True


def _folded(payloads, run_id: str = "run_live"):
    clock = Clock()
    return fold(message(p, run_id, clock, seq=n) for n, p in enumerate(payloads))


def _dispatch(stage: int, batch_id: str, *item_ids: int) -> ev.StageBatchDispatched:
    lease = T0 + timedelta(hours=1)
    return ev.StageBatchDispatched(
        stage=stage, batch_id=batch_id, item_ids=item_ids, lease_until=lease
    )


def _processed(stage: int, batch_id: str, item: ItemRef) -> ev.StageItemProcessed:
    return ev.StageItemProcessed(stage=stage, batch_id=batch_id, item=item, total=1, credits=1)


def test_batches_in_flight_list_their_open_items_in_pick_order_and_the_rest_come_next():
    items = tuple(ItemRef(id=i, title=f"image {i}") for i in range(1, 31))
    state = _folded(
        [
            ev.RunStarted(trigger="manual"),
            ev.StageStarted(stage=6, items=items),
            _dispatch(6, "6-1", 1),
            _dispatch(6, "6-2", 3, 2),
            _dispatch(6, "6-3", 4),
            _processed(6, "6-1", items[0]),
            ev.StageBatchCompleted(stage=6, batch_id="6-1", processed=1, failed=0, credits=1),
            _processed(6, "6-2", items[2]),  # item 3 done, item 2 of the same batch still working
            ev.StageBatchCompleted(stage=6, batch_id="6-3", processed=0, failed=0, credits=0),
            _dispatch(6, "6-4", 5),
        ]
    )
    row = stage_row("run_live", state.stage(6))
    assert row["currently_processing"] == [
        {"id": 2, "title": "image 2"},
        {"id": 5, "title": "image 5"},
    ]
    # Item 4's batch ended without it (halted): it is open again and comes first.
    assert [i["id"] for i in row["up_next"]] == [4, *range(6, 15)]
    assert (row["processed_items"], row["remaining_count"]) == (2, 28)


def test_a_completed_review_gate_reads_as_done():
    """Stage 7 counts the content in review and processes nothing: finished, it must read
    3 of 3 at 100 %, nothing remaining, not 0 % with 3 remaining."""
    content = tuple(ItemRef(id=i, title=f"article {i}") for i in (11, 12, 13))
    state = _folded(
        [
            ev.RunStarted(trigger="manual"),
            ev.StageStarted(stage=7, items=content),
            ev.StageCompleted(stage=7, items_in=3, items_out=0),
            ev.RunCompleted(credits_used=0, ready_for_review=(11, 12, 13)),
        ]
    )
    row = stage_row("run_live", state.stage(7))
    assert (row["status"], row["total_items"]) == ("completed", 3)
    assert (row["processed_items"], row["failed_items"], row["remaining_count"]) == (3, 0, 0)
    assert row["currently_processing"] == [] and row["up_next"] == []

    run = SimpleNamespace(**run_row(state, 10))
    shown = processing_state(run, SimpleNamespace(**row))
    assert (shown.stage_type, shown.stage_status, shown.percentage) == ("Manual", "completed", 100)
    assert (shown.processed_items, shown.total_items, shown.remaining_count) == (3, 3, 0)


def test_a_review_gate_that_did_not_finish_still_shows_what_waits():
    content = tuple(ItemRef(id=i, title=f"article {i}") for i in (11, 12))
    state = _folded(
        [
            ev.RunStarted(trigger="manual"),
            ev.StageStarted(stage=7, items=content),
            ev.RunCancelled(),
        ]
    )
    row = stage_row("run_live", state.stage(7))
    assert (row["processed_items"], row["remaining_count"]) == (0, 2)


class CountingItems(tuple):
    """A stage's picked items that count how many of them are read."""

    reads = 0

    def __iter__(self):
        for item in super().__iter__():
            CountingItems.reads += 1
            yield item

    def __getitem__(self, index):
        CountingItems.reads += (
            1 if isinstance(index, int) else len(range(*index.indices(len(self))))
        )
        return super().__getitem__(index)


def test_a_stage_row_reads_what_is_in_flight_and_next_not_the_whole_stage():
    size = 2_000
    items = tuple(ItemRef(id=i, title=f"k{i}") for i in range(size))
    done = items[: size - 100]
    payloads = [
        ev.RunStarted(trigger="manual"),
        ev.StageStarted(stage=6, items=items),
        _dispatch(6, "6-1", *(item.id for item in done)),
        *(_processed(6, "6-1", item) for item in done),
        ev.StageBatchCompleted(stage=6, batch_id="6-1", processed=len(done), failed=0, credits=0),
        _dispatch(6, "6-2", size - 100),
    ]
    stage = _folded(payloads).stage(6)

    CountingItems.reads = 0
    row = stage_row("run_live", replace(stage, items=CountingItems(stage.items)))
    assert [i["id"] for i in row["currently_processing"]] == [size - 100]
    assert len(row["up_next"]) == 10 and row["remaining_count"] == 100
    assert CountingItems.reads <= 1 + 10 + 1


def test_a_wait_for_the_provider_reads_in_the_row_and_in_current_processing_until_it_ends():
    articles = tuple(ItemRef(id=i, title=f"task {i}") for i in (1, 2))
    since = T0 + timedelta(minutes=3)
    waiting = [
        ev.RunStarted(trigger="manual"),
        ev.StageStarted(stage=4, items=articles),
        _dispatch(4, "4-1", 1, 2),
        ev.StageWaitingForProvider(
            stage=4, provider="openai", model="gpt-4o-mini", reason="HTTP 503", since=since
        ),
    ]
    state = _folded(waiting)
    row = stage_row("run_live", state.stage(4))
    assert (row["waiting_provider"], row["waiting_model"]) == ("openai", "gpt-4o-mini")
    assert (row["waiting_reason"], row["waiting_since"]) == ("HTTP 503", since)
    run = SimpleNamespace(**run_row(state, 10))
    shown = processing_state(run, SimpleNamespace(**row)).waiting_for_provider
    assert shown is not None and (shown.model, shown.reason, shown.since) == (
        "gpt-4o-mini",
        "HTTP 503",
        since,
    )
    assert shown.waited_seconds > 0

    recovered = ev.StageProviderRecovered(
        stage=4, provider="openai", model="gpt-4o-mini", since=since
    )
    row = stage_row("run_live", _folded([*waiting, recovered]).stage(4))
    assert row["waiting_reason"] is None and row["waiting_since"] is None
    assert processing_state(run, SimpleNamespace(**row)).waiting_for_provider is None


def _batch_report(status: str, completed: int, failed: int = 0) -> ev.StageWaitingForProviderBatch:
    return ev.StageWaitingForProviderBatch(
        stage=4,
        batch_id="4-1",
        provider="openai",
        provider_batch_ids=("batch_abc",),
        status=status,
        total=2,
        completed=completed,
        failed=failed,
        since=T0 + timedelta(minutes=2),
    )


def test_a_wait_for_the_providers_batch_is_logged_traced_and_shown_until_the_batch_completes():
    articles = tuple(ItemRef(id=i, title=f"task {i}") for i in (1, 2))
    waiting = [
        ev.RunStarted(trigger="manual"),
        ev.StageStarted(stage=4, items=articles),
        _dispatch(4, "4-1", 1, 2),
        _batch_report("validating", 0),
        _batch_report("in_progress", 1, failed=1),
    ]
    clock = Clock()
    messages = [message(p, RUN, clock, seq=n) for n, p in enumerate(waiting)]
    view = project(messages).runs[RUN]
    stage_log = view.files[run_logs.stage_log(4)]
    assert stage_log[-1].endswith(
        "| stage 4 | Batch 4-1 waiting for the provider's batch (openai batch_abc): in_progress, "
        "1 of 2 answered, 1 failed, since 2026-11-02 09:02:00.000 UTC. Nothing is charged until "
        "the answers are written"
    )
    assert stage_log[-1] == view.files[run_logs.MAIN_LOG][-1]
    reports = [t for t in trace_of(project(messages)) if "status" in t]
    assert [(t["event"], t["status"], t["completed"], t["failed"]) for t in reports] == [
        ("stage_waiting_for_provider_batch", "validating", 0, 0),
        ("stage_waiting_for_provider_batch", "in_progress", 1, 1),
    ]
    assert reports[-1]["provider_batch_ids"] == ["batch_abc"]
    assert reports[-1]["since"] == "2026-11-02T09:02:00.000Z"

    state = _folded(waiting)
    row = stage_row("run_live", state.stage(4))
    run = SimpleNamespace(**run_row(state, 10))
    shown = processing_state(run, SimpleNamespace(**row)).waiting_for_provider_batch
    assert shown is not None
    assert (shown.provider, shown.provider_batch_ids, shown.status) == (
        "openai",
        ["batch_abc"],
        "in_progress",
    )
    assert (shown.total, shown.completed, shown.failed) == (2, 1, 1)
    assert shown.since == T0 + timedelta(minutes=2)

    answered = ev.StageBatchCompleted(stage=4, batch_id="4-1", processed=1, failed=1, credits=5)
    row = stage_row("run_live", _folded([*waiting, answered]).stage(4))
    assert row["provider_batch"] is None
    assert processing_state(run, SimpleNamespace(**row)).waiting_for_provider_batch is None
