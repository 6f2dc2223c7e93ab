"""A batch's lease, kept alive while the worker has it: when the first renewal comes."""

from __future__ import annotations

from datetime import timedelta

from contracts.commands import ProcessBatch
from stage_workers.lease import first_renewal_in
from tests.support.runs import T0

LENGTH = 120.0
BATCH = ProcessBatch(
    run_id="run_lease",
    stage=4,
    batch_id="4-1",
    item_ids=(1,),
    lease_until=T0 + timedelta(seconds=LENGTH),  # given at T0
)


def test_a_command_handled_at_once_renews_a_third_into_its_lease():
    assert first_renewal_in(BATCH, LENGTH, T0) == LENGTH / 3
    assert first_renewal_in(BATCH, LENGTH, T0 + timedelta(seconds=10)) == LENGTH / 3 - 10


def test_a_command_that_waited_renews_at_once():
    """Handled 100 s after it was given, 20 s of its lease are left: a third of the lease
    (40 s) from now would be too late."""
    assert first_renewal_in(BATCH, LENGTH, T0 + timedelta(seconds=100)) == 0
