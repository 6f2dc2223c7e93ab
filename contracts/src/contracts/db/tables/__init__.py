"""The PostgreSQL schema as SQLAlchemy Core tables, one module per service that owns the state:

- `gateway`: accounts, people, API tokens, sites, automation configs, webhooks;
- `shared`: what several services write: the pipeline's content and the credit ledger;
- `workers`: the stage workers' outbox, handled messages, stage records, run status, AI gate;
- `orchestrator`: the scheduler's slots and the fold's snapshots;
- `log_sink`: the run read model.

They declare into one MetaData (`schema.metadata`): one database schema, one migration history.
A change in any of them needs a new migration in `contracts/db/migrations/versions/`.
Services write with Core statements and import the tables from here (`tables.sites`), so a
table can move between modules without its readers noticing.
"""

from __future__ import annotations

from contracts.db.tables.gateway import (
    WEBHOOK_ATTEMPT_OUTCOMES,
    WEBHOOK_DELIVERY_STATUSES,
    accounts,
    api_tokens,
    automation_configs,
    console_sign_outs,
    sites,
    users,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_secrets,
)
from contracts.db.tables.log_sink import (
    RUN_STATUSES,
    STAGE_STATUSES,
    automation_run_stages,
    automation_runs,
)
from contracts.db.tables.orchestrator import orchestrator_snapshots, schedule_slots
from contracts.db.tables.schema import metadata
from contracts.db.tables.shared import (
    CLUSTER_STATUSES,
    CONTENT_STATUSES,
    IDEA_STATUSES,
    IMAGE_KINDS,
    IMAGE_STATUSES,
    KEYWORD_STATUSES,
    TASK_STATUSES,
    clusters,
    content,
    content_ideas,
    credit_ledger,
    images,
    keywords,
    tasks,
)
from contracts.db.tables.workers import (
    AI_CALL_OUTCOMES,
    AI_CALL_ROUTES,
    PROVIDER_BATCH_CHANNEL,
    PROVIDER_BATCH_STATUSES,
    ai_answers,
    ai_calls,
    ai_lanes,
    item_failures,
    outbox,
    processed_messages,
    provider_batches,
    stage_item_results,
    stage_picks,
    worker_run_status,
)
from contracts.values import (
    BATCH_SIZE_RANGE,
    CONCURRENCY_RANGE,
    DELAY_RANGE_SECONDS,
    FREQUENCIES,
)

__all__ = [
    "AI_CALL_OUTCOMES",
    "AI_CALL_ROUTES",
    "BATCH_SIZE_RANGE",
    "CLUSTER_STATUSES",
    "CONCURRENCY_RANGE",
    "CONTENT_STATUSES",
    "DELAY_RANGE_SECONDS",
    "FREQUENCIES",
    "IDEA_STATUSES",
    "IMAGE_KINDS",
    "IMAGE_STATUSES",
    "KEYWORD_STATUSES",
    "PROVIDER_BATCH_CHANNEL",
    "PROVIDER_BATCH_STATUSES",
    "RUN_STATUSES",
    "STAGE_STATUSES",
    "TASK_STATUSES",
    "WEBHOOK_ATTEMPT_OUTCOMES",
    "WEBHOOK_DELIVERY_STATUSES",
    "accounts",
    "ai_answers",
    "ai_calls",
    "ai_lanes",
    "api_tokens",
    "automation_configs",
    "automation_run_stages",
    "automation_runs",
    "clusters",
    "console_sign_outs",
    "content",
    "content_ideas",
    "credit_ledger",
    "images",
    "item_failures",
    "keywords",
    "metadata",
    "orchestrator_snapshots",
    "outbox",
    "processed_messages",
    "provider_batches",
    "schedule_slots",
    "sites",
    "stage_item_results",
    "stage_picks",
    "tasks",
    "users",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_secrets",
    "worker_run_status",
]
