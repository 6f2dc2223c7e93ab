"""Stage 1: the whole batch of keywords is clustered in one AI call and written in one
transaction. A cluster's source_key is its sorted keyword ids, so a redelivered batch finds
the cluster it made before instead of making a second one."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.envelope import Envelope
from contracts.events import StageItemFailed, StageItemProcessed
from contracts.stages import KEYWORDS_PER_CREDIT
from contracts.values import ItemRef
from stage_workers import items, tracking
from stage_workers.ai.base import ClusterDraft
from stage_workers.ai.retry import PoisonedItem, with_retries
from stage_workers.batch import complete_batch, open_batch, record_changed
from stage_workers.deps import WorkerDeps
from stage_workers.ledger import InsufficientCredits, charge
from stage_workers.outcomes import Tally


def keyword_credits(position_in_batch: int) -> int:
    """1 credit per 5 keywords, charged on the 1st, 6th, 11th... keyword of the batch."""
    return 1 if position_in_batch % KEYWORDS_PER_CREDIT == 0 else 0


def source_key(keyword_ids: list[int]) -> str:
    return "kw:" + ",".join(str(i) for i in sorted(keyword_ids))


@dataclass(frozen=True)
class Plan:
    earlier: list[dict]  # results of keywords this run already processed
    todo: list[ItemRef]  # keywords that still need a cluster
    changed: int = 0  # keywords changed since the stage picked them (e.g. disabled)


async def process_keyword_batch(deps: WorkerDeps, command: Envelope) -> None:
    opened = await open_batch(deps, command)
    if opened is None:
        return
    refs, total = opened
    tally = Tally()
    if not await deps.in_transaction(tracking.run_is_stopped, command.run_id):
        plan = await deps.in_transaction(_plan, deps, command, refs)
        tally.failed += plan.changed
        for result in plan.earlier:
            tally.processed += 1
            tally.credits += result["credits"]
        if plan.todo:
            await _cluster_and_write(deps, command, plan.todo, total, tally)
    await deps.in_transaction(complete_batch, deps, command, tally)


def _plan(conn: Connection, deps: WorkerDeps, command: Envelope, refs: list[ItemRef]) -> Plan:
    earlier, todo, changed = [], [], 0
    for ref in refs:
        result = tracking.earlier_result(conn, command.run_id, 1, ref.id)
        if result is not None:
            earlier.append(result)
        elif items.needs_work(conn, 1, command.site_id, ref.id):
            todo.append(ref)
        else:
            record_changed(conn, deps, command, ref)
            changed += 1
    return Plan(earlier, todo, changed)


async def _cluster_and_write(
    deps: WorkerDeps, command: Envelope, todo: list[ItemRef], total: int, tally: Tally
) -> None:
    texts = [ref.title for ref in todo]
    try:
        drafts = await with_retries(deps.retry, lambda: deps.ai.cluster_keywords(texts))
    except PoisonedItem as poisoned:
        tally.failed += await deps.in_transaction(_record_failures, deps, command, todo, poisoned)
        return
    try:
        written = await deps.in_transaction(_write_clusters, deps, command, todo, drafts, total)
    except InsufficientCredits:
        tally.halted = True
        return
    tally.processed += written.processed
    tally.credits += written.credits


@dataclass
class Written:
    processed: int = 0
    credits: int = 0


def _write_clusters(
    conn: Connection,
    deps: WorkerDeps,
    command: Envelope,
    todo: list[ItemRef],
    drafts: list[ClusterDraft],
    total: int,
) -> Written:
    positions = {item_id: n for n, item_id in enumerate(command.data.item_ids)}
    still_open = _lock_open_keywords(conn, command.site_id, [ref.id for ref in todo])
    written = Written()
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
                total=total,
                credits=credits,
                outputs=1 if created and n == 0 else 0,
            )
            deps.emit(
                conn, command, processed, tracking.item_processed_id(command.run_id, 1, ref.id)
            )
            written.processed += 1
            written.credits += credits
    return written


def _lock_open_keywords(conn: Connection, site_id: int, ids: list[int]) -> set[int]:
    k = t.keywords.c
    conn.execute(sa.select(k.id).where(k.id.in_(ids)).order_by(k.id).with_for_update())
    return {i for i in ids if items.needs_work(conn, 1, site_id, i)}


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
) -> int:
    for ref in todo:
        failed = StageItemFailed(
            stage=1,
            batch_id=command.data.batch_id,
            item=ref,
            error=poisoned.error[:2000],
            attempts=poisoned.attempts,
        )
        deps.emit(conn, command, failed, tracking.item_failed_id(command.run_id, 1, ref.id))
    return len(todo)
