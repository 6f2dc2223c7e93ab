"""Stage 1: the whole batch of keywords is clustered in one AI call and written in one
transaction, which also completes the batch. A cluster's source_key is its sorted keyword ids,
so a redelivered batch finds the cluster it made before instead of making a second one."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.envelope import Envelope
from contracts.events import StageItemFailed, StageItemProcessed
from contracts.stages import KEYWORDS_PER_CREDIT
from contracts.values import ItemRef
from stage_workers import items, tracking
from stage_workers.ai.base import ClusterDraft, FatalAIError
from stage_workers.ai.retry import PoisonedItem, with_retries
from stage_workers.batch import BatchContext, complete_batch, open_batch
from stage_workers.bookkeeping import RunBook
from stage_workers.deps import WorkerDeps
from stage_workers.ledger import InsufficientCredits, charge
from stage_workers.outcomes import FAILED, Outcome, Tally


def keyword_credits(position_in_stage: int) -> int:
    """1 credit per 5 keywords the stage picked, charged on the 1st, 6th, 11th... of them: the
    same sum whatever the batch size (a keyword's place in the stage never changes)."""
    return 1 if position_in_stage % KEYWORDS_PER_CREDIT == 0 else 0


def source_key(keyword_ids: list[int]) -> str:
    return "kw:" + ",".join(str(i) for i in sorted(keyword_ids))


async def process_keyword_batch(deps: WorkerDeps, command: Envelope) -> None:
    """Two transactions: open the batch (as stages 2-6 do), then after the one AI call write
    the clusters, charges and events and complete the batch."""
    opened = await deps.in_transaction(open_batch, deps, command, None)
    if opened is None:
        return
    tally = Tally.of(opened.done)
    todo = [ref for ref, _ in opened.todo]
    if opened.stopped or not todo:
        await deps.in_transaction(complete_batch, deps, command, tally)
        return
    texts = [ref.title for ref in todo]
    try:
        drafts = await with_retries(deps.retry, lambda: deps.ai.cluster_keywords(texts))
    except PoisonedItem as poisoned:
        await deps.in_transaction(_record_failures, deps, command, todo, poisoned, tally)
        return
    except FatalAIError as fatal:
        tally.fatal = str(fatal)
        await deps.in_transaction(complete_batch, deps, command, tally)
        return
    try:
        await deps.in_transaction(write_clusters, deps, opened.context, todo, drafts, tally)
    except InsufficientCredits:
        tally.halted = True
        await deps.in_transaction(complete_batch, deps, command, tally)


def write_clusters(
    conn: Connection,
    deps: WorkerDeps,
    context: BatchContext,
    todo: list[ItemRef],
    drafts: list[ClusterDraft],
    tally: Tally,
) -> None:
    """Write the clusters, map, charge and announce their keywords, and complete the batch
    with `tally` plus what was written here."""
    command, book = context.command, deps.book(conn)
    ids = [ref.id for ref in todo]
    positions = _places_in_stage(book, command, ids)
    still_open = items.lock_needing_work(conn, 1, command.site_id, ids)
    # Counted apart until the end: a charge refused midway rolls all of this back, and the
    # caller then completes the batch with `tally` as it was.
    written = Tally()
    for draft in drafts:
        members = [todo[i] for i in draft.members if todo[i].id in still_open]
        if not members:
            continue
        cluster_id, created = _upsert_cluster(conn, command, draft, members)
        for n, ref in enumerate(members):
            _map_keyword(conn, ref.id, cluster_id)
            credits = charge(
                conn,
                account_id=command.account_id,
                site_id=command.site_id,
                run_id=command.run_id,
                stage=1,
                item_id=ref.id,
                amount=keyword_credits(positions[ref.id]),
            )
            processed = StageItemProcessed(
                stage=1,
                batch_id=command.data.batch_id,
                item=ref,
                total=context.total,
                credits=credits,
                outputs=1 if created and n == 0 else 0,
            )
            deps.emit(
                conn, command, processed, tracking.item_processed_id(command.run_id, 1, ref.id)
            )
            outcome = Outcome("processed", credits, processed.outputs)
            book.record_result(command.run_id, 1, ref.id, outcome)
            written.add(outcome)
    tally.processed += written.processed
    tally.credits += written.credits
    complete_batch(conn, deps, command, tally)


def _places_in_stage(book: RunBook, command: Envelope, ids: list[int]) -> dict[int, int]:
    """Each keyword's place in the stage's pick order; a run picked before the workers kept
    their picks falls back to the place in the batch."""
    places = book.positions(command.run_id, 1, ids)
    if len(places) == len(ids):
        return places
    return {item_id: n for n, item_id in enumerate(command.data.item_ids)}


def _upsert_cluster(
    conn: Connection, command: Envelope, draft: ClusterDraft, members: list[ItemRef]
) -> tuple[int, bool]:
    key = source_key([ref.id for ref in members])
    new_id = conn.execute(
        insert(t.clusters)
        .values(
            site_id=command.site_id,
            name=draft.name[:200],
            description=draft.description,
            source_key=key,
            created_by_run_id=command.run_id,
        )
        .on_conflict_do_nothing(index_elements=["site_id", "source_key"])
        .returning(t.clusters.c.id)
    ).scalar_one_or_none()
    if new_id is not None:
        return new_id, True
    c = t.clusters.c
    existing = conn.execute(
        sa.select(c.id).where(c.site_id == command.site_id, c.source_key == key)
    ).scalar_one()
    return existing, False


def _map_keyword(conn: Connection, keyword_id: int, cluster_id: int) -> None:
    conn.execute(
        sa.update(t.keywords)
        .where(t.keywords.c.id == keyword_id)
        .values(status="mapped", cluster_id=cluster_id)
    )


def _record_failures(
    conn: Connection,
    deps: WorkerDeps,
    command: Envelope,
    todo: list[ItemRef],
    poisoned: PoisonedItem,
    tally: Tally,
) -> None:
    book = deps.book(conn)
    for ref in todo:
        failed = StageItemFailed(
            stage=1,
            batch_id=command.data.batch_id,
            item=ref,
            error=poisoned.error[:2000],
            attempts=poisoned.attempts,
        )
        deps.emit(conn, command, failed, tracking.item_failed_id(command.run_id, 1, ref.id))
        book.record_result(command.run_id, 1, ref.id, FAILED)
        items.count_failure(conn, 1, command.site_id, ref.id, command.run_id, poisoned.error)
    tally.failed += len(todo)
    complete_batch(conn, deps, command, tally)
