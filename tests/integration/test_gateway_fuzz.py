"""Schemathesis fuzzes the gateway's own OpenAPI document against the running process: no
answer may be a 5xx, and every answer must match the document (status, content type, schema).
Bounded: a handful of examples per operation, once with random ids and once with a real site."""

from __future__ import annotations

import subprocess

from tests.integration.test_gateway_api import seed_content
from tests.integration.test_gateway_support import (
    console_script,
    make_tenant,
)

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


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
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(examples),
        "--header",
        f"Authorization: Bearer {token}",
        "--generation-deterministic",
        "--request-timeout",
        "20",
        "--no-color",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_fuzz_with_random_ids(gateway, db, orchestrator, tmp_path):
    tenant = make_tenant(db, gateway, credits=10)
    _schemathesis(gateway, tenant.token, "", tmp_path, examples=15)


def test_fuzz_on_a_site_with_data(gateway, db, orchestrator, tmp_path):
    orchestrator.complete_runs = True  # so a fuzzed live stream of a started run ends
    tenant = make_tenant(db, gateway, credits=100_000)
    ids = seed_content(db, tenant, gateway.media_dir)
    config = (
        "[parameters]\n"
        f'"query.site_id" = {tenant.site_id}\n'
        f'"path.content_id" = {ids["content"]}\n'
        f'"path.image_id" = {ids["image"]}\n'
    )
    _schemathesis(gateway, tenant.token, config, tmp_path, examples=15)
