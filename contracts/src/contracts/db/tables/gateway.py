"""The gateway's tables: accounts, their people and API tokens, console sign-outs, sites, each
site's automation config, and webhooks.

The gateway's API writes them. Two columns are others': the stage workers charge
`accounts.credit_balance` (with a `credit_ledger` row, in `shared`), and the orchestrator's
scheduler moves `automation_configs.last_run_at` / `next_run_at`.
"""

from __future__ import annotations

import sqlalchemy as sa

from contracts.credits import START_CHECKS
from contracts.db.tables.schema import (
    account_id,
    between,
    created_at,
    id_column,
    metadata,
    one_of,
    parent_id,
    site_id,
    updated_at,
)
from contracts.values import (
    AI_MODES,
    BATCH_SIZE_RANGE,
    CONCURRENCY_RANGE,
    DEFAULT_BATCH_SIZES,
    DELAY_RANGE_SECONDS,
    FREQUENCIES,
    SCHEDULED_TIME_PATTERN,
)

accounts = sa.Table(
    "accounts",
    metadata,
    id_column(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("credit_balance", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    created_at(),
    sa.CheckConstraint("credit_balance >= 0", name="credit_balance_not_negative"),
)

users = sa.Table(
    "users",
    metadata,
    id_column(),
    account_id(),
    sa.Column("email", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    created_at(),
    sa.Index("ix_users_account_id", "account_id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    id_column(),
    account_id(),
    parent_id("user_id", "users"),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    # The first characters of the token, shown to people so they can tell tokens apart.
    sa.Column("token_prefix", sa.Text, nullable=False),
    # sha256 hex of the token; the token itself is shown once and never stored.
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    created_at(),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("token_hash ~ '^[0-9a-f]{64}$'", name="token_hash_is_sha256_hex"),
    sa.Index("ix_api_tokens_account_id", "account_id"),
    sa.Index("ix_api_tokens_user_id", "user_id"),
)

# Console sessions that were signed out: the cookie is signed and stateless, so its nonce is
# kept here until the session would have expired anyway.
console_sign_outs = sa.Table(
    "console_sign_outs",
    metadata,
    sa.Column("nonce", sa.Text, primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

sites = sa.Table(
    "sites",
    metadata,
    id_column(),
    account_id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("domain", sa.Text),
    sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"),
    created_at(),
    sa.Index("ix_sites_account_id", "account_id"),
)


automation_configs = sa.Table(
    "automation_configs",
    metadata,
    site_id(primary_key=True),
    sa.Column("is_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("frequency", sa.Text, nullable=False, server_default="daily"),
    # HH:MM in the site's time zone.
    sa.Column("scheduled_time", sa.Text, nullable=False, server_default="02:00"),
    *(
        sa.Column(
            f"stage_{stage}_batch_size",
            sa.Integer,
            nullable=False,
            server_default=sa.text(str(size)),
        )
        for stage, size in DEFAULT_BATCH_SIZES.items()
    ),
    sa.Column("within_stage_delay", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("between_stage_delay", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("stage_concurrency", sa.Integer, nullable=False, server_default=sa.text("1")),
    # What the 1.2x start check covers: the work pending now (SPEC) or the projected total.
    sa.Column("start_check", sa.Text, nullable=False, server_default="pending"),
    # A run paused because credits ran out resumes by itself once the balance covers its next
    # item (the orchestrator's credit watch), unless this is off.
    sa.Column("resume_when_funded", sa.Boolean, nullable=False, server_default=sa.true()),
    # Call by call, or through the provider's batch interface (contracts.values.AiMode).
    sa.Column("ai_mode", sa.Text, nullable=False, server_default="standard"),
    sa.Column("last_run_at", sa.DateTime(timezone=True)),
    sa.Column("next_run_at", sa.DateTime(timezone=True)),
    updated_at(),
    one_of("frequency", FREQUENCIES),
    one_of("start_check", START_CHECKS),
    one_of("ai_mode", AI_MODES),
    sa.CheckConstraint(f"scheduled_time ~ '{SCHEDULED_TIME_PATTERN}'", name="scheduled_time_hh_mm"),
    *(between(f"stage_{stage}_batch_size", BATCH_SIZE_RANGE) for stage in DEFAULT_BATCH_SIZES),
    between("within_stage_delay", DELAY_RANGE_SECONDS),
    between("between_stage_delay", DELAY_RANGE_SECONDS),
    between("stage_concurrency", CONCURRENCY_RANGE),
    # The hourly scheduler looks for enabled sites whose slot has come.
    sa.Index("ix_automation_configs_due", "next_run_at", postgresql_where=sa.text("is_enabled")),
)


# --- Webhooks (docs/adr/0019): endpoints and their secrets are written by the gateway's API,
# deliveries and their attempts by the gateway's webhooks process. ---

WEBHOOK_DELIVERY_STATUSES = ("pending", "delivered", "failed")
# `refused`: the address check stopped it before any connection (api_gateway.webhooks.addresses).
WEBHOOK_ATTEMPT_OUTCOMES = ("delivered", "failed", "refused")

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    id_column(),
    account_id(),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # The webhook types it wants (api_gateway.webhooks.payloads.WEBHOOK_TYPES; checked by the
    # API, not here, so a new type needs no migration).
    sa.Column("event_types", sa.ARRAY(sa.Text), nullable=False),
    # NULL: every site of the account, now and later.
    sa.Column("site_ids", sa.ARRAY(sa.BigInteger)),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    # Set by the first failed attempt after a success, cleared by a success: 5 days of it
    # disable the endpoint.
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    created_at(),
    updated_at(),
    sa.CheckConstraint("cardinality(event_types) > 0", name="event_types_not_empty"),
    sa.CheckConstraint(
        "site_ids IS NULL OR cardinality(site_ids) > 0", name="site_ids_null_or_not_empty"
    ),
    sa.CheckConstraint("enabled OR disabled_reason IS NOT NULL", name="disabled_says_why"),
    sa.Index("ix_webhook_endpoints_account_id", "account_id"),
)

# Several per endpoint while a rotation overlaps: each signs from created_at until expires_at.
# Kept as they are, since signing needs them (API tokens, only ever checked, are hashed).
webhook_secrets = sa.Table(
    "webhook_secrets",
    metadata,
    id_column(),
    parent_id("endpoint_id", "webhook_endpoints"),
    sa.Column("secret", sa.Text, nullable=False),
    created_at(),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'", name="secret_is_whsec"),
    sa.Index("ix_webhook_secrets_endpoint_id", "endpoint_id"),
)

# One per endpoint and webhook event. The id is the `webhook-id`, derived from the endpoint and
# the event (api_gateway.webhooks.payloads.webhook_id): enqueueing an event again collides here.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    parent_id("endpoint_id", "webhook_endpoints"),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("site_id", sa.BigInteger),
    sa.Column("run_id", sa.Text),
    # The exact bytes every attempt sends (and signs): `{type, timestamp, data}` as JSON text.
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    # Attempts begun: a claim counts one, so an attempt whose process died still counts.
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    # A claimed delivery is leased to one attempt; past lease_until another may claim it, and
    # the first attempt's outcome (another lease_token) is then not recorded.
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("lease_token", sa.Uuid),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_latency_ms", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_response", sa.Text),
    created_at(),
    updated_at(),
    one_of("status", WEBHOOK_DELIVERY_STATUSES),
    sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    sa.CheckConstraint(
        "(status = 'pending') = (next_attempt_at IS NOT NULL)", name="pending_has_next_attempt"
    ),
    # The delivery loop's claim: endpoints with due rows, then each one's rows in due order.
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index(
        "ix_webhook_deliveries_endpoint_pending",
        "endpoint_id",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
    # The delivery log of an endpoint, newest first.
    sa.Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    id_column(),
    parent_id("delivery_id", "webhook_deliveries", sa.Uuid),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("status", sa.Integer),  # the HTTP status; NULL when no answer came
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("response", sa.Text),  # the first characters of the answer's body
    one_of("outcome", WEBHOOK_ATTEMPT_OUTCOMES),
    sa.CheckConstraint("attempt >= 1", name="attempt_from_1"),
    sa.CheckConstraint("latency_ms >= 0", name="latency_ms_not_negative"),
    sa.Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),
)
