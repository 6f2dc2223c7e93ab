"""Gateway settings, from the environment (or a .env file)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import AliasChoices, Field

from api_gateway.webhooks.addresses import AddressPolicy
from contracts.settings import ServiceSettings, default_log_dir, default_media_dir


class Settings(ServiceSettings):
    http_host: str = Field("127.0.0.1", validation_alias=AliasChoices("GATEWAY_HOST", "HTTP_HOST"))
    http_port: int = Field(8000, validation_alias=AliasChoices("GATEWAY_PORT", "HTTP_PORT"))
    metrics_port: int = Field(
        9104, description="Port of the Prometheus metrics endpoint, on the gateway's host."
    )
    metrics_on_api_port: bool = Field(
        False,
        description="Also serve /metrics on the API port, to anyone who reaches it (no token).",
    )
    media_dir: Path = Field(default_factory=default_media_dir)
    log_base_dir: Path = Field(default_factory=default_log_dir)
    outcome_timeout_seconds: float = Field(
        15.0, description="How long a run command waits for the orchestrator's answer."
    )
    live_buffer_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Per live stream, the most bytes of run events held for it in memory; a "
        "stream further behind reads the rest from the topic.",
    )
    session_secret: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        description="Signs console session cookies; set the same value on every gateway "
        "instance (a random one per process otherwise, so a restart signs everyone out).",
    )
    session_hours: float = Field(12.0, gt=0, description="How long a console session lasts.")
    openai_webhook_secret: str | None = Field(
        None,
        description="The signing secret of the OpenAI webhook pointed at "
        "/api/v1/automation/provider_webhooks/openai; unset, that route answers 404.",
    )
    webhook_allow_http: bool = Field(
        False, description="Let webhook endpoints use http:// URLs (local use and tests)."
    )
    webhook_allowed_networks: str = Field(
        "",
        description="Comma-separated CIDRs webhook endpoints may resolve to although they are "
        "not public (e.g. 127.0.0.0/8 for tests); cloud metadata addresses stay refused.",
    )
    webhook_concurrency: int = Field(
        64, ge=1, description="Webhook attempts in flight per webhooks process."
    )
    webhook_endpoint_concurrency: int = Field(
        4, ge=1, description="Webhook attempts in flight per endpoint, across processes."
    )
    webhook_poll_seconds: float = Field(
        1.0, gt=0, description="How often the webhooks process looks for due deliveries."
    )

    def webhook_policy(self) -> AddressPolicy:
        """Where webhook endpoints may point; ValueError for a malformed CIDR."""
        return AddressPolicy.of(self.webhook_allow_http, self.webhook_allowed_networks.split(","))
