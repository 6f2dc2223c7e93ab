"""The snapshot a live stream pushes after the run's events (`run.snapshot`): the run as `run`
answers it and its current stage as `current_processing` answers it, from the fold of the events
the stream has read (contracts.state, the same fold the log-sink writes the read model from).

The stream reads every event of the run in order, so its fold is as new as the last event it
sent: a page that renders the snapshot needs neither the read model (which follows a moment
later) nor guesses about what changed. Its rows are the ones the log-sink writes
(contracts.run_rows), turned into the API's models by the same functions the read endpoints use.
"""

from __future__ import annotations

from types import SimpleNamespace

from pydantic import BaseModel

from api_gateway import run_views
from api_gateway.run_views import ProcessingState, RunDetail
from contracts import events as ev
from contracts.envelope import Envelope
from contracts.run_rows import run_row, stage_row
from contracts.stages import STAGES
from contracts.state import RunState, mutate

EVENT = "run.snapshot"


class RunSnapshot(BaseModel):
    """What `run` and `current_processing` would answer once the read model has every event the
    stream sent so far."""

    run: RunDetail
    processing: ProcessingState


class Folder:
    """A run's state, folded from its events as a stream reads them."""

    def __init__(self) -> None:
        self.state = RunState()
        self.estimate: int | None = None

    def add(self, message: Envelope) -> None:
        if isinstance(message.data, ev.RunStarted) and self.state.status == "none":
            self.estimate = message.data.estimate
        self.state = mutate(self.state, message)

    def snapshot(self) -> RunSnapshot | None:
        """None until the run's first event (or for a run that was rejected: it never ran)."""
        state = self.state
        if state.status in ("none", "rejected"):
            return None
        run = SimpleNamespace(**run_row(state, self.estimate))
        stages = {n: SimpleNamespace(**stage_row(state.run_id, state.stage(n))) for n in STAGES}
        detail = run_views.run_detail(run, stages)
        number = state.current_stage if state.current_stage in STAGES else 1
        processing = run_views.processing_state(run, stages[number])
        return RunSnapshot(run=detail, processing=processing)
