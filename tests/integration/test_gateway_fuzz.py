"""Schemathesis fuzzes the gateway's own OpenAPI document against the running process with all
its checks: no answer may be a 5xx, every answer must match the document (status, content type,
headers, schema), data the document allows must be accepted and data it refuses must be refused,
and no call may go through without a valid token. Bounded and deterministic: a handful of
examples per operation, once with random ids and once with the ids of a seeded site."""

from __future__ import annotations

import dataclasses
import subprocess

from api_gateway import accounts
from tests.support.gateway import API, console_script, insert_run, make_tenant, seed_content
from tests.support.webhook_rows import (
    insert_attempt,
    insert_delivery,
    insert_endpoint,
    remove_endpoints,
)

# Valid data that these calls refuse with 400 by design: positive_data_acceptance takes a 400
# from them, and from no other call.
ACCEPTED_WITH_400 = '["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]'
USAGE_RANGE = f"""
# `from` after `to`, or more than 366 days apart: a rule between two parameters, which JSON
# Schema cannot state (each alone may be any day).
[[operations]]
include-path = "{API}/usage"
checks.positive_data_acceptance.expected-statuses = {ACCEPTED_WITH_400}
"""
WEBHOOK_ADDRESSES = f"""
# A webhook URL must resolve, now, to a public address, and its site_ids must be sites of the
# account: rules on DNS and on the data, which JSON Schema cannot state.
[[operations]]
include-name = ["POST {API}/webhooks", "PATCH {API}/webhooks/{{endpoint_id}}"]
checks.positive_data_acceptance.expected-statuses = {ACCEPTED_WITH_400}
"""
REVIEW_DONE = f"""
# Only content in review can be approved or rejected: once the first call has approved or
# rejected the seeded article, the others are refused transitions.
[[operations]]
include-path = ["{API}/content/{{content_id}}/approve", "{API}/content/{{content_id}}/reject"]
checks.positive_data_acceptance.expected-statuses = {ACCEPTED_WITH_400}
"""


def _schemathesis(gateway, token: str, config: str, tmp_path, examples: int):
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config)
    argv = [
        console_script("schemathesis"),
        "--config-file",
        str(config_file),
        "run",
        f"{gateway.url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(examples),
        "--header",
        f"Authorization: Bearer {token}",
        "--generation-deterministic",  # the same cases on every run: no seed to pass
        "--workers",
        "1",  # and in the same order, which the calls that change state depend on
        "--request-timeout",
        "20",
        "--no-color",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]


def test_fuzz_with_random_ids(gateway, db, orchestrator, tmp_path):
    tenant = make_tenant(db, gateway, credits=10)
    try:
        _schemathesis(gateway, tenant.token, USAGE_RANGE + WEBHOOK_ADDRESSES, tmp_path, 15)
    finally:
        remove_endpoints(db, tenant.account_id)


def test_fuzz_on_a_site_with_data(gateway, db, orchestrator, tmp_path):
    orchestrator.complete_runs = True  # so a live stream of a run that run_now started ends
    # Enough for any estimate the fuzzed imports and config changes (start_check) can reach.
    tenant = make_tenant(db, gateway, credits=1_000_000_000)
    ids = seed_content(db, tenant, gateway.media_dir)
    # The site's finished run, for the reads and its live stream (which ends at once); the run
    # controls get a running one of another site of the account, which the stand-in
    # orchestrator lets pause, resume and cancel (a finished run's control is refused: 400).
    finished = insert_run(db, tenant, status="completed", stage=7)
    with db.begin() as conn:
        other_site = accounts.create_site(conn, tenant.account_id, "second site")
    running = insert_run(db, dataclasses.replace(tenant, site_id=other_site), status="running")
    # A webhook endpoint with a delivery and its attempts, made as if this gateway allowed
    # their address (written directly: this gateway refuses TEST-NET, as it should).
    endpoint = insert_endpoint(db, tenant.account_id)
    delivery = insert_delivery(db, endpoint, "failed", attempts=1)
    insert_attempt(db, delivery, 1)
    config = f"""
[parameters]
"query.site_id" = {tenant.site_id}
"query.run_id" = "{finished}"
"path.run_id" = "{finished}"
"path.content_id" = {ids["content"]}
"path.image_id" = {ids["image"]}
"path.endpoint_id" = {endpoint}
"path.delivery_id" = "{delivery}"

[[operations]]
include-path = ["{API}/pause", "{API}/resume", "{API}/cancel"]
parameters = {{ "query.run_id" = "{running}" }}
{USAGE_RANGE}
{REVIEW_DONE}
{WEBHOOK_ADDRESSES}
"""
    try:
        _schemathesis(gateway, tenant.token, config, tmp_path, examples=15)
    finally:
        remove_endpoints(db, tenant.account_id)
