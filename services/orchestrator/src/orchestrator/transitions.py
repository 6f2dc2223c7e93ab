"""A site's state moved by one input, pure: (state, message, now) in, (outgoing, state) out.
Each asks decide.py what follows and folds in what it decided (its own events at once, the send
time of its commands), so the next decision sees it. No I/O: handlers.py keeps the state and
sends what comes out."""

from __future__ import annotations

from datetime import datetime

from contracts import events as ev
from contracts.envelope import Envelope
from orchestrator import decide
from orchestrator.decide import Limits, Outgoing
from orchestrator.sites import SiteState

Handled = tuple[list[Outgoing], SiteState]
# Item events only add to what is settled; nothing can be decided on them alone (a batch's
# completion follows its items), so they are folded without a tick: the hot path stays lean.
FOLD_ONLY = (ev.StageItemProcessed, ev.StageItemFailed)


def on_command(site: SiteState, message: Envelope, now: datetime, limits: Limits) -> Handled:
    """A run command: its outcome event (and a first stage command for a started run), then
    whatever the run needs next."""
    decided = decide.on_command(site, message, now)
    site = remember(site, decided, now)
    run_id = getattr(message.data, "run_id", None)
    run = site.run(run_id) if run_id is not None else None
    if run is None or not run.is_active:
        return decided, site
    more, site = on_tick(site, run_id, now, limits)
    return decided + more, site


def on_event(
    site: SiteState, message: Envelope, now: datetime, limits: Limits, *, deciding: bool
) -> Handled:
    """A run event folded in; unless only folding (catching up on history), what the run
    needs next."""
    folded = site.apply(message)
    if folded is site or not deciding or isinstance(message.data, FOLD_ONLY):
        return [], folded
    return on_tick(folded, message.run_id, now, limits)


def on_tick(site: SiteState, run_id: str, now: datetime, limits: Limits) -> Handled:
    """The clock: what the run needs now, from where it is (called any time, any number of
    times)."""
    run = site.run(run_id)
    if run is None:
        return [], site
    decided = decide.tick(run, site.notes_of(run_id), now, limits)
    return decided, remember(site, decided, now)


def remember(site: SiteState, decided: list[Outgoing], now: datetime) -> SiteState:
    for out in decided:
        site = site.apply(out.message) if out.is_event else site.after_sent(out.message, now)
    return site
