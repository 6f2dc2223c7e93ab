"""Every call of the API over HTTP against the gateway process, on real Kafka and PostgreSQL.
The orchestrator's answers come from a stand-in on the real broker; the run read model rows are
written here the way the log-sink writes them."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta
from unittest.mock import ANY

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api_gateway import accounts, admin
from api_gateway.run_commands import new_run_id
from contracts import events as ev
from contracts.db import tables as t
from contracts.stages import STAGES
from tests.support.gateway import API, insert_run, insert_stage, make_tenant, seed_content
from tests.support.parallel import SHARED_ROWS

pytestmark = SHARED_ROWS

RUN_ID = re.compile(r"^run_\d{8}_\d{6}_manual_[0-9a-f]{6}$")


# --- auth -----------------------------------------------------------------------------------


def test_token_use_is_recorded_and_listed_by_the_admin_cli(tenant, db, database_url, monkeypatch):
    assert tenant.get("/config", site_id=tenant.site_id).status_code == 200
    with db.connect() as conn:
        [used] = (
            conn.execute(
                sa.select(t.api_tokens.c.last_used_at).where(
                    t.api_tokens.c.account_id == tenant.account_id
                )
            )
            .scalars()
            .all()
        )
    assert used is not None

    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    tokens = runner.invoke(admin.app, ["list-tokens", str(tenant.account_id)])
    assert tokens.exit_code == 0 and "active" in tokens.output and "last used" in tokens.output
    assert tenant.token not in tokens.output and tenant.token[:10] in tokens.output
    sites = runner.invoke(admin.app, ["list-sites", str(tenant.account_id)])
    assert sites.exit_code == 0 and f"{tenant.site_id}\t" in sites.output
    missing = runner.invoke(admin.app, ["list-sites", "987654321"])
    assert missing.exit_code == 2 and "no account with id 987654321" in missing.output


def test_no_token_or_a_bad_one_is_401(gateway, tenant, db):
    bare = httpx.get(f"{gateway.url}{API}/config", params={"site_id": tenant.site_id})
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == "Bearer"
    bad = httpx.get(
        f"{gateway.url}{API}/config",
        params={"site_id": tenant.site_id},
        headers={"Authorization": "Bearer cat_not-a-token"},
    )
    assert bad.status_code == 401
    with db.begin() as conn:
        accounts.revoke_tokens(conn, tenant.user_id, "test")
    assert tenant.get("/config", site_id=tenant.site_id).status_code == 401


# --- config ---------------------------------------------------------------------------------


def test_config_is_made_with_defaults(tenant, db):
    with db.begin() as conn:
        conn.execute(
            sa.delete(t.automation_configs).where(t.automation_configs.c.site_id == tenant.site_id)
        )
    response = tenant.get("/config", site_id=tenant.site_id)
    assert response.status_code == 200
    body = response.json()
    assert body["site_id"] == tenant.site_id
    assert body["is_enabled"] is False and body["frequency"] == "daily"
    assert body["stage_1_batch_size"] == 20 and body["stage_4_batch_size"] == 1
    assert body["timezone"] == "UTC" and body["next_run_at"] is None


def test_head_answers_like_get_without_a_body(tenant):
    path, params = f"{API}/config", {"site_id": tenant.site_id}
    got, head = tenant.client.get(path, params=params), tenant.client.head(path, params=params)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == got.headers["content-length"]
    assert tenant.client.head(f"{API}/config", params={"site_id": 10**9}).status_code == 404
    assert tenant.client.head(f"{API}/config").status_code == 400


def test_malformed_or_missing_json_says_what_is_wrong(tenant):
    path, params = f"{API}/update_config", {"site_id": tenant.site_id}
    headers = {"content-type": "application/json"}
    broken = tenant.client.put(path, params=params, content=b'{"is_enabled": tru', headers=headers)
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("the request body is not valid JSON: ")
    missing = tenant.client.put(path, params=params)
    assert missing.status_code == 400 and missing.json()["detail"] == "request body: Field required"


def test_update_config_changes_fields_and_schedules(tenant):
    change = {
        "is_enabled": True,
        "frequency": "weekly",
        "scheduled_time": "06:30",
        "stage_1_batch_size": 50,
        "within_stage_delay": 5,
        "timezone": "Europe/Berlin",
    }
    response = tenant.client.put(
        f"{API}/update_config", params={"site_id": tenant.site_id}, json=change
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in change} == change
    assert body["next_run_at"] is not None
    again = tenant.get("/config", site_id=tenant.site_id).json()
    assert again["stage_1_batch_size"] == 50 and again["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stage_2_batch_size": 0}, "stage_2_batch_size"),
        ({"stage_1_batch_size": 501}, "stage_1_batch_size"),
        ({"within_stage_delay": -1}, "within_stage_delay"),
        ({"between_stage_delay": 3601}, "between_stage_delay"),
        ({"stage_concurrency": 33}, "stage_concurrency"),
        ({"scheduled_time": "25:00"}, "scheduled_time"),
        ({"frequency": "hourly"}, "frequency"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"colour": "blue"}, "colour"),
        ({"timezone": ""}, "timezone"),
        ({"is_enabled": "yes"}, "is_enabled"),
        ({"is_enabled": 1}, "is_enabled"),
        ({"stage_1_batch_size": True}, "stage_1_batch_size"),
        ({"stage_1_batch_size": "20"}, "stage_1_batch_size"),
        ({"start_check": "everything"}, "start_check"),
        ({"ai_mode": "cheap"}, "ai_mode"),
    ],
)
def test_update_config_refuses_bad_values_naming_the_field(tenant, change, field):
    response = tenant.client.put(
        f"{API}/update_config", params={"site_id": tenant.site_id}, json=change
    )
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert field in response.json()["detail"]


def test_update_config_without_a_json_body_is_400(tenant):
    response = tenant.client.put(
        f"{API}/update_config",
        params={"site_id": tenant.site_id},
        content=b"not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400


# Reads of one site's state, each named by `site_id`.
SITE_READS = (
    "/config",
    "/estimate",
    "/pipeline_overview",
    "/current_run",
    "/history",
    "/current_processing",
    "/clusters",
    "/keywords",
)


@pytest.mark.parametrize("path", SITE_READS)
def test_site_calls_need_a_site_id(tenant, path):
    missing = tenant.get(path)
    assert missing.status_code == 400
    assert missing.json()["field"] == "site_id"
    assert tenant.get(path, site_id="abc").status_code == 400
    assert tenant.get(path, site_id=-3).status_code == 400
    assert tenant.get(path, site_id=2**63).status_code == 400
    unknown = tenant.get(path, site_id=2**62)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == f"site {2**62} not found"


# --- keywords, estimate, overview -----------------------------------------------------------


def _import(tenant, content: str | bytes, content_type: str):
    return tenant.client.post(
        f"{API}/keywords/import",
        params={"site_id": tenant.site_id},
        content=content,
        headers={"content-type": content_type},
    )


def test_keyword_import_json_and_csv(tenant):
    rows = json.dumps(
        [
            {"keyword": "seo tips", "volume": 10},
            {"keyword": "link building"},
            {"keyword": ""},
            {"keyword": "SEO Tips"},
        ]
    )
    first = _import(tenant, rows, "application/json")
    assert first.status_code == 200, first.text
    assert first.json() | {"errors": []} == {
        "site_id": tenant.site_id,
        "added": 2,
        "duplicates": 1,
        "invalid": 1,
        "errors": [],
        "errors_truncated": False,
        "duplicate_rows": ['[3]: "SEO Tips" repeats [0]'],
        "duplicate_rows_truncated": False,
    }
    assert first.json()["errors"][0].startswith("[2]")
    csv_body = (
        "keyword,volume,difficulty\nlocal seo,5,20\nseo tips,1,1\nbad,-1,0\nschema markup,,\n"
    )
    second = _import(tenant, csv_body, "text/csv")
    assert second.status_code == 200, second.text
    assert (second.json()["added"], second.json()["duplicates"], second.json()["invalid"]) == (
        2,
        1,
        1,
    )
    assert second.json()["errors"][0].startswith("line 4")
    assert second.json()["duplicate_rows"] == ['line 3: "seo tips" is already present']
    listed = tenant.get("/keywords", site_id=tenant.site_id, status="new", limit=3)
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 4 and len(body["items"]) == 3 and body["limit"] == 3
    assert {item["text"] for item in body["items"]} <= {
        "seo tips",
        "link building",
        "local seo",
        "schema markup",
    }


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ('{"a": 1}', "application/json", 400),
        ("volume\n1\n", "text/csv", 400),
        ("keyword\nx\n", "application/xml", 415),
        (b"\xff\xfe\x00", "text/csv", 400),
        ('[{"keyword": "a\\u0000b"}]', "application/json", 200),
        ('keyword\n"an open quote\nswallows\nthe rest\n', "text/csv", 400),
    ],
)
def test_keyword_import_refuses_bad_bodies(tenant, content, content_type, status):
    response = _import(tenant, content, content_type)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["invalid"] == 1


def test_a_body_past_the_limit_is_refused_with_413_declared_or_streamed(tenant):
    path, params = f"{API}/keywords/import", {"site_id": tenant.site_id}
    url = httpx.URL(str(tenant.client.base_url))
    with socket.create_connection((url.host, url.port), timeout=10) as raw:
        # Declares 1 GB and sends nothing more: the answer must not wait for the body.
        raw.sendall(
            f"POST {path}?site_id={tenant.site_id} HTTP/1.1\r\nHost: {url.host}\r\n"
            f"Authorization: Bearer {tenant.token}\r\nContent-Type: text/csv\r\n"
            "Content-Length: 1000000000\r\n\r\n".encode()
        )
        assert raw.recv(1024).startswith(b"HTTP/1.1 413")

    def chunks():  # no Content-Length: the size is only known as the bytes arrive
        yield b"keyword\n"
        for _ in range(7):
            yield b"x" * (1024 * 1024)

    streamed = tenant.client.post(
        path, params=params, content=chunks(), headers={"content-type": "text/csv"}
    )
    assert streamed.status_code == 413 and "larger than" in streamed.json()["detail"]


def test_keyword_import_says_when_the_error_list_is_cut(tenant):
    rows = json.dumps([{"keyword": ""} for _ in range(150)])
    body = _import(tenant, rows, "application/json").json()
    assert (body["invalid"], len(body["errors"]), body["errors_truncated"]) == (150, 100, True)


def test_keyword_import_lists_the_duplicate_rows_and_says_when_the_list_is_cut(tenant):
    assert _import(tenant, "keyword\nseo tips\n", "text/csv").json()["added"] == 1
    csv_body = "keyword\nlocal seo\nSEO Tips\nlocal  SEO\nnew one\n" + "repeat\n" * 150
    body = _import(tenant, csv_body, "text/csv").json()
    assert (body["added"], body["duplicates"]) == (3, 151)
    assert body["duplicate_rows"][:3] == [
        'line 3: "SEO Tips" is already present',
        'line 4: "local SEO" repeats line 2',
        'line 7: "repeat" repeats line 6',
    ]
    assert (len(body["duplicate_rows"]), body["duplicate_rows_truncated"]) == (100, True)


def test_keyword_import_takes_json_values_as_typed(tenant):
    rows = [
        {"keyword": "k1", "volume": True},
        {"keyword": "k2", "volume": "10"},
        {"keyword": "k3", "difficulty": 1.0},
        {"keyword": "k4", "volume": 12, "difficulty": 40},
    ]
    body = _import(tenant, json.dumps(rows), "application/json").json()
    assert (body["added"], body["invalid"]) == (1, 3)
    assert [e.split(": ")[:2] for e in body["errors"]] == [
        ["[0]", "volume"],
        ["[1]", "volume"],
        ["[2]", "difficulty"],
    ]
    listed = tenant.get("/keywords", site_id=tenant.site_id).json()["items"]
    assert [(k["text"], k["volume"], k["difficulty"]) for k in listed] == [("k4", 12, 40)]


def test_a_keyword_imported_without_a_difficulty_keeps_it_unknown(tenant):
    rows = [
        {"keyword": "left out"},
        {"keyword": "null", "difficulty": None},
        {"keyword": "given", "difficulty": 70},
    ]
    assert _import(tenant, json.dumps(rows), "application/json").json()["added"] == 3
    csv_body = "keyword,difficulty\nempty cell,\nzero,0\n"
    assert _import(tenant, csv_body, "text/csv").json()["added"] == 2
    listed = tenant.get("/keywords", site_id=tenant.site_id).json()["items"]
    assert {k["text"]: k["difficulty"] for k in listed} == {
        "left out": None,
        "null": None,
        "given": 70,
        "empty cell": None,
        "zero": 0,
    }


@pytest.mark.parametrize(
    "header", ["keyword,keyword", "Keyword,volume,KEYWORD", "keyword,volume,Volume"]
)
def test_a_csv_header_naming_a_column_twice_is_400(tenant, header):
    response = _import(tenant, f"{header}\na,1,2\n", "text/csv")
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "body" and response.json()["code"] == "invalid"
    assert "more than once" in response.json()["detail"]
    assert tenant.get("/keywords", site_id=tenant.site_id).json()["total"] == 0


def test_estimate_and_pipeline_overview(tenant):
    rows = [{"keyword": f"kw {i}"} for i in range(12)]
    assert (
        tenant.client.post(
            f"{API}/keywords/import", params={"site_id": tenant.site_id}, json=rows
        ).status_code
        == 200
    )
    estimate = tenant.get("/estimate", site_id=tenant.site_id)
    assert estimate.status_code == 200
    body = estimate.json()
    assert body["estimated_credits"] == 3 and body["required"] == 4
    assert body["balance"] == 1000 and body["sufficient"] is True
    assert body["pending"]["keywords"] == 12
    assert body["projected_credits"] > body["estimated_credits"]
    overview = tenant.get("/pipeline_overview", site_id=tenant.site_id).json()
    stages = {s["stage_number"]: s for s in overview["stages"]}
    assert sorted(stages) == [1, 2, 3, 4, 5, 6, 7]
    assert stages[1] == {
        "stage_number": 1,
        "stage_name": "Keywords → Clusters",
        "stage_type": "AI",
        "pending": 12,
        "total": 12,
        "held_back": 0,
    }
    assert stages[3]["stage_type"] == "Local" and stages[7]["stage_type"] == "Manual"
    assert stages[4]["pending"] == 0 and stages[4]["total"] == 0


def test_items_that_spent_their_failure_budget_wait_for_retry_failed(tenant, db):
    """Two clusters: one failed three times across runs, one twice. Only the first is held back
    (not pending, not in the estimate); retry_failed releases it and forgets both counts."""
    with db.begin() as conn:
        c = t.clusters.c
        spent, trying = conn.execute(
            sa.insert(t.clusters)
            .values(
                [
                    {"site_id": tenant.site_id, "name": n, "source_key": f"kw:{n}"}
                    for n in ("spent", "trying")
                ]
            )
            .returning(c.id)
        ).scalars()
        conn.execute(
            sa.insert(t.item_failures).values(
                [
                    {
                        "stage": 2,
                        "item_id": spent,
                        "site_id": tenant.site_id,
                        "failures": 3,
                        "last_error": "bad answer",
                        "last_run_id": "run_x",
                    },
                    {
                        "stage": 2,
                        "item_id": trying,
                        "site_id": tenant.site_id,
                        "failures": 2,
                        "last_error": "bad answer",
                        "last_run_id": "run_x",
                    },
                ]
            )
        )

    def stage_2() -> dict:
        overview = tenant.get("/pipeline_overview", site_id=tenant.site_id).json()
        return overview["stages"][1]

    assert (stage_2()["pending"], stage_2()["held_back"], stage_2()["total"]) == (1, 1, 2)
    assert tenant.get("/estimate", site_id=tenant.site_id).json()["pending"]["clusters"] == 1
    assert tenant.post("/retry_failed", site_id=tenant.site_id, stage=8).status_code == 400
    other_stage = tenant.post("/retry_failed", site_id=tenant.site_id, stage=3).json()
    assert other_stage == {"site_id": tenant.site_id, "stage": 3, "released": 0}
    released = tenant.post("/retry_failed", site_id=tenant.site_id, stage=2)
    assert released.status_code == 200
    assert released.json() == {"site_id": tenant.site_id, "stage": 2, "released": 1}
    assert (stage_2()["pending"], stage_2()["held_back"]) == (2, 0)
    f = t.item_failures.c
    with db.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).where(f.site_id == tenant.site_id))
        assert left.scalar_one() == 0


# --- content listings, review, media --------------------------------------------------------


def test_listings_show_what_the_stages_made(tenant, db, gateway):
    ids = seed_content(db, tenant, gateway.media_dir)
    clusters = tenant.get("/clusters", site_id=tenant.site_id).json()
    assert clusters["total"] == 1 and clusters["items"][0]["keyword_count"] == 1
    assert tenant.get("/ideas", site_id=tenant.site_id).json()["items"][0]["id"] == ids["idea"]
    assert tenant.get("/tasks", site_id=tenant.site_id, status="queued").json()["total"] == 1
    assert tenant.get("/tasks", site_id=tenant.site_id, status="completed").json()["total"] == 0
    content = tenant.get("/content", site_id=tenant.site_id, status="review").json()
    assert content["items"][0]["id"] == ids["content"] and "body" not in content["items"][0]
    images = tenant.get("/images", site_id=tenant.site_id).json()
    assert images["total"] == 3
    urls = {image["id"]: image["url"] for image in images["items"]}
    assert urls[ids["image"]].endswith(f"{API}/media/{ids['image']}")
    assert urls[ids["pending"]] is None
    assert tenant.get("/images", site_id=tenant.site_id, status="done").status_code == 400
    assert tenant.get("/images", site_id=tenant.site_id, limit=0).status_code == 400
    assert tenant.get("/images", site_id=tenant.site_id, offset=-1).status_code == 400


def test_content_detail_media_and_review(tenant, db, gateway):
    ids = seed_content(db, tenant, gateway.media_dir)
    detail = tenant.get(f"/content/{ids['content']}")
    assert detail.status_code == 200
    assert detail.json()["body"].startswith("# What is SEO")
    assert [image["position"] for image in detail.json()["images"]] == [0, 1, 2]
    media = tenant.client.get(detail.json()["images"][0]["url"])
    assert media.status_code == 200 and media.headers["content-type"] == "image/png"
    assert media.content.startswith(b"\x89PNG")
    assert tenant.get(f"/media/{ids['escaping']}").status_code == 404
    assert tenant.get(f"/media/{ids['pending']}").status_code == 404
    assert tenant.get("/media/abc").status_code == 400
    approved = tenant.post(f"/content/{ids['content']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    again = tenant.post(f"/content/{ids['content']}/reject")
    assert again.status_code == 409 and again.json()["status"] == "approved"
    assert "only content in review" in again.json()["detail"]
    assert tenant.post("/content/999999999999/approve").status_code == 404
    assert tenant.get("/content/999999999999").status_code == 404
    draft = seed_content(db, tenant, gateway.media_dir, status="draft")
    assert tenant.post(f"/content/{draft['content']}/approve").status_code == 409
    review = seed_content(db, tenant, gateway.media_dir)
    assert tenant.post(f"/content/{review['content']}/reject").json()["status"] == "rejected"


# --- run control ----------------------------------------------------------------------------


def _import_keywords(tenant, n=10):
    rows = [{"keyword": f"run kw {i}"} for i in range(n)]
    tenant.client.post(f"{API}/keywords/import", params={"site_id": tenant.site_id}, json=rows)


def test_run_now_starts_a_run_through_the_orchestrator(gateway, tenant, orchestrator):
    _import_keywords(tenant)
    response = tenant.post("/run_now", site_id=tenant.site_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert RUN_ID.match(body["run_id"])
    assert body == {
        "run_id": body["run_id"],
        "site_id": tenant.site_id,
        "status": "running",
        "estimated_credits": 2,
        "balance": 1000,
        "required": 3,
    }
    [command] = [c for c in orchestrator.received if c.run_id == body["run_id"]]
    assert command.type == "automation.run.start" and command.key == str(tenant.site_id).encode()
    assert command.data.estimate == 2 and command.data.config.batch_sizes[1] == 20
    assert command.data.requested_by == f"user:{tenant.user_id}"
    answered = 'command="StartRun",outcome="started"'
    assert answered in httpx.get(gateway.metrics_url).text


def test_the_ai_mode_is_set_through_the_config_and_carried_by_the_runs_start(tenant, orchestrator):
    assert tenant.get("/config", site_id=tenant.site_id).json()["ai_mode"] == "standard"
    changed = tenant.client.put(
        f"{API}/update_config", params={"site_id": tenant.site_id}, json={"ai_mode": "economy"}
    )
    assert changed.status_code == 200 and changed.json()["ai_mode"] == "economy"
    assert tenant.get("/config", site_id=tenant.site_id).json()["ai_mode"] == "economy"
    refused = tenant.client.put(
        f"{API}/update_config", params={"site_id": tenant.site_id}, json={"ai_mode": "cheap"}
    )
    assert "'standard', 'economy' or 'economy_when_scheduled'" in refused.json()["detail"]
    _import_keywords(tenant)
    run_id = tenant.post("/run_now", site_id=tenant.site_id).json()["run_id"]
    [command] = [c for c in orchestrator.received if c.run_id == run_id]
    assert command.data.config.ai_mode == "economy" and command.data.config.economy("manual")


def test_run_now_refused_by_the_orchestrator_is_400_with_reason(tenant, orchestrator):
    orchestrator.reject_start[tenant.site_id] = ev.RunRejected(
        reason="run run_x is already active", code="active_run", active_run_id="run_x"
    )
    response = tenant.post("/run_now", site_id=tenant.site_id)
    assert response.status_code == 400
    assert response.json()["code"] == "active_run" and response.json()["active_run_id"] == "run_x"


def test_run_now_with_too_few_credits_is_400_with_figures(db, gateway, orchestrator):
    poor = make_tenant(db, gateway, credits=2)
    _import_keywords(poor, 10)
    response = poor.post("/run_now", site_id=poor.site_id)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "insufficient_credits"
    assert (body["estimated_credits"], body["required"], body["balance"]) == (2, 3, 2)
    assert "3" in body["detail"] and "2" in body["detail"]


def test_a_site_may_ask_for_the_projected_total_before_a_start(db, gateway, orchestrator):
    """SPEC's rule checks the work pending now (10 keywords: 2 credits); the stricter option
    checks the projected cascade (96 credits), which 100 credits do not cover 1.2 times."""
    site = make_tenant(db, gateway, credits=100)
    _import_keywords(site, 10)
    spec = site.get("/estimate", site_id=site.site_id).json()
    assert (spec["start_check"], spec["checked_credits"], spec["required"]) == ("pending", 2, 3)
    assert spec["sufficient"] is True and spec["runs_out_at_stage"] is None
    changed = site.client.put(
        f"{API}/update_config", params={"site_id": site.site_id}, json={"start_check": "projected"}
    )
    assert changed.status_code == 200 and changed.json()["start_check"] == "projected"
    strict = site.get("/estimate", site_id=site.site_id).json()
    assert (strict["checked_credits"], strict["required"], strict["sufficient"]) == (96, 116, False)
    assert strict["estimated_credits"] == 2 and strict["projected_credits"] == 96
    refused = site.post("/run_now", site_id=site.site_id)
    assert refused.status_code == 400
    body = refused.json()
    assert (body["code"], body["required"], body["balance"]) == ("insufficient_credits", 116, 100)
    assert not [c for c in orchestrator.received if c.site_id == site.site_id]


def test_the_estimate_names_the_stage_where_the_balance_runs_out(db, gateway):
    poor = make_tenant(db, gateway, credits=30)
    _import_keywords(poor, 10)  # projected running sums by stage: 2, 6, 6, 36, 48, 96
    assert poor.get("/estimate", site_id=poor.site_id).json()["runs_out_at_stage"] == 4


def test_run_now_with_an_active_run_is_400(tenant, db, orchestrator):
    active = insert_run(db, tenant, status="paused")
    response = tenant.post("/run_now", site_id=tenant.site_id)
    assert response.status_code == 400
    assert response.json()["code"] == "active_run" and response.json()["active_run_id"] == active


def test_run_now_without_an_answer_is_504(tenant, orchestrator):
    orchestrator.silent.add(tenant.site_id)
    response = tenant.post("/run_now", site_id=tenant.site_id)
    assert response.status_code == 504 and response.json()["code"] == "timeout"


def test_pause_resume_cancel_a_run(tenant, orchestrator):
    run_id = tenant.post("/run_now", site_id=tenant.site_id).json()["run_id"]
    # The read model has no row yet (no log-sink here): the gateway knows the run from its events.
    paused = tenant.post("/pause", run_id=run_id)
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"run_id": run_id, "status": "paused", "event": "automation.run.paused"}
    assert tenant.post("/resume", run_id=run_id).json()["status"] == "running"
    assert tenant.post("/cancel", run_id=run_id).json()["status"] == "cancelled"
    orchestrator.refuse[run_id] = "run is cancelled; only a running run can be paused"
    refused = tenant.post("/pause", run_id=run_id)
    assert refused.status_code == 400
    assert refused.json()["detail"] == orchestrator.refuse[run_id]


def test_resume_that_cannot_pay_the_next_item_is_400_with_figures(db, gateway, orchestrator):
    """A run paused for credits in stage 4 (5 credits an article) with 3 left would only pause
    again: the resume is refused with the figures; with credits added it goes through."""
    poor = make_tenant(db, gateway, credits=3)
    run_id = insert_run(db, poor, status="paused", stage=4, pause_reason="insufficient_credits")
    refused = poor.post("/resume", run_id=run_id)
    assert refused.status_code == 400
    body = refused.json()
    assert (body["code"], body["balance"], body["required"]) == ("insufficient_credits", 3, 5)
    assert "stage 4" in body["detail"] and "5 credits" in body["detail"]
    with db.begin() as conn:
        accounts.add_credits(conn, poor.account_id, 2)
    assert poor.post("/resume", run_id=run_id).json()["status"] == "running"


def test_control_of_unknown_finished_or_malformed_runs(tenant, db, orchestrator):
    for action in ("pause", "resume", "cancel"):
        assert tenant.post(f"/{action}").status_code == 400
        assert tenant.post(f"/{action}", run_id="../../etc").json()["field"] == "run_id"
        assert tenant.post(f"/{action}", run_id="run_20250101_000000_manual_abc").status_code == 404
    done = insert_run(db, tenant, status="completed")
    refused = tenant.post("/pause", run_id=done)
    assert refused.status_code == 400 and refused.json()["status"] == "completed"


# --- run read model -------------------------------------------------------------------------


def test_current_run_history_and_processing_while_paused(tenant, db):
    assert tenant.get("/current_run", site_id=tenant.site_id).json() == {
        "site_id": tenant.site_id,
        "run": None,
    }
    idle = tenant.get("/current_processing", site_id=tenant.site_id)
    assert idle.status_code == 200, idle.text
    assert idle.json() == {
        "run_id": None,
        "run_status": "idle",
        "stage_number": 1,
        "stage_name": STAGES[1].name,
        "stage_type": "AI",
        "stage_status": "pending",
        "total_items": 0,
        "processed_items": 0,
        "failed_items": 0,
        "percentage": 0.0,
        "currently_processing": [],
        "up_next": [],
        "remaining_count": 0,
        "waiting_for_provider": None,
        "waiting_for_provider_batch": None,
    }
    missing = tenant.get("/current_processing", site_id=tenant.site_id, run_id=new_run_id())
    assert missing.status_code == 404
    assert tenant.get("/current_processing", site_id=10**12).status_code == 404
    old = insert_run(db, tenant, status="completed", stage=7, credits_used=12)
    run_id = insert_run(
        db, tenant, status="paused", stage=4, pause_reason="requested", credits_used=7
    )
    insert_stage(
        db,
        run_id,
        1,
        status="completed",
        total_items=10,
        processed_items=10,
        items_out=2,
        credits_used=2,
    )
    insert_stage(
        db,
        run_id,
        4,
        status="running",
        total_items=5,
        processed_items=2,
        currently_processing=[{"id": 31, "title": "Write: A"}],
        up_next=[{"id": 32, "title": "Write: B"}, {"id": 33, "title": "Write: C"}],
        remaining_count=3,
    )
    current = tenant.get("/current_run", site_id=tenant.site_id).json()["run"]
    assert current["run_id"] == run_id and current["status"] == "paused"
    assert [s["stage_number"] for s in current["stages"]] == [1, 2, 3, 4, 5, 6, 7]
    assert current["stages"][0]["items_in"] == 10 and current["stages"][0]["items_out"] == 2
    assert current["stages"][1]["status"] == "pending"
    processing = tenant.get("/current_processing", site_id=tenant.site_id)
    assert processing.status_code == 200
    assert processing.json() == {
        "run_id": run_id,
        "run_status": "paused",
        "stage_number": 4,
        "stage_name": "Tasks → Content",
        "stage_type": "AI",
        "stage_status": "running",
        "total_items": 5,
        "processed_items": 2,
        "failed_items": 0,
        "percentage": 40.0,
        "currently_processing": [{"id": 31, "title": "Write: A"}],
        "up_next": [{"id": 32, "title": "Write: B"}, {"id": 33, "title": "Write: C"}],
        "remaining_count": 3,
        "waiting_for_provider": None,
        "waiting_for_provider_batch": None,
    }
    by_id = tenant.get("/current_processing", site_id=tenant.site_id, run_id=old).json()
    assert by_id["stage_number"] == 7 and by_id["stage_type"] == "Manual"
    assert (by_id["total_items"], by_id["percentage"], by_id["up_next"]) == (0, 0.0, [])
    history = tenant.get("/history", site_id=tenant.site_id).json()["runs"]
    assert {run["run_id"] for run in history} == {old, run_id}
    finished = tenant.get("/run", run_id=old)
    assert finished.status_code == 200
    assert finished.json()["run_id"] == old
    assert [s["stage_number"] for s in finished.json()["stages"]] == [1, 2, 3, 4, 5, 6, 7]
    assert tenant.get("/run", run_id="run_20260101_000000_manual_abcdef").status_code == 404
    assert tenant.get("/run", run_id="../../etc/passwd").status_code == 400


def test_a_stage_waiting_for_the_provider_says_so_in_current_run_and_current_processing(tenant, db):
    since = datetime.now(UTC) - timedelta(seconds=40)
    run_id = insert_run(db, tenant, status="running", stage=4)
    insert_stage(
        db,
        run_id,
        4,
        status="running",
        total_items=5,
        waiting_provider="openai",
        waiting_model="gpt-4o-mini",
        waiting_reason="HTTP 503: the server had an error",
        waiting_since=since,
    )
    processing = tenant.get("/current_processing", site_id=tenant.site_id).json()
    wait = processing["waiting_for_provider"]
    assert (wait["provider"], wait["model"]) == ("openai", "gpt-4o-mini")
    assert wait["reason"] == "HTTP 503: the server had an error"
    assert datetime.fromisoformat(wait["since"]) == since
    assert 40 <= wait["waited_seconds"] < 600
    run = tenant.get("/current_run", site_id=tenant.site_id).json()["run"]
    assert run["waiting_for_provider"] == {**wait, "waited_seconds": ANY}
    assert run["stages"][3]["waiting_for_provider"]["reason"] == wait["reason"]
    assert run["stages"][2]["waiting_for_provider"] is None


def test_current_processing_of_a_stage_with_no_items(tenant, db):
    run_id = insert_run(db, tenant, status="running", stage=2)
    insert_stage(db, run_id, 2, status="completed", total_items=0)
    state = tenant.get("/current_processing", site_id=tenant.site_id, run_id=run_id).json()
    assert state["stage_name"] == "Clusters → Ideas" and state["total_items"] == 0
    assert state["processed_items"] == 0 and state["remaining_count"] == 0
    assert (
        state["percentage"] == 100.0
        and state["currently_processing"] == []
        and state["up_next"] == []
    )


def test_history_keeps_the_last_20(tenant, db):
    for _ in range(22):
        insert_run(db, tenant, status="completed")
    assert len(tenant.get("/history", site_id=tenant.site_id).json()["runs"]) == 20


def test_logs_tail_the_main_log(tenant, db, gateway):
    run_id = insert_run(db, tenant, status="completed")
    assert tenant.get("/logs", run_id=run_id).json() == {
        "run_id": run_id,
        "lines": [],
        "file_exists": False,
    }
    folder = gateway.log_dir / str(tenant.account_id) / str(tenant.site_id) / run_id
    folder.mkdir(parents=True)
    (folder / "automation_run.log").write_text("".join(f"line {i}\n" for i in range(150)))
    default = tenant.get("/logs", run_id=run_id).json()
    assert default["file_exists"] is True and len(default["lines"]) == 100
    assert default["lines"][-1] == "line 149"
    assert tenant.get("/logs", run_id=run_id, lines=2).json()["lines"] == ["line 148", "line 149"]
    for bad in (
        {"run_id": run_id, "lines": 0},
        {"run_id": run_id, "lines": 1001},
        {},
        {"run_id": "../../../etc/passwd"},
        {"run_id": f"{run_id}/../x"},
    ):
        assert tenant.get("/logs", **bad).status_code == 400, bad
    assert tenant.get("/logs", run_id="run_20200101_000000_scheduled_ff").status_code == 404


# --- two accounts ---------------------------------------------------------------------------


def test_one_account_can_neither_read_nor_change_the_others(
    tenant, other, db, gateway, orchestrator
):
    ids = seed_content(db, tenant, gateway.media_dir)
    run_id = insert_run(db, tenant, status="running", stage=1)
    log_folder = gateway.log_dir / str(tenant.account_id) / str(tenant.site_id) / run_id
    log_folder.mkdir(parents=True)
    (log_folder / "automation_run.log").write_text("secret\n")
    site = tenant.site_id
    reads = [
        *SITE_READS,
        "/ideas",
        "/tasks",
        "/content",
        "/images",
    ]
    for path in reads:
        assert other.get(path, site_id=site).status_code == 404, path
    assert other.get("/current_processing", site_id=other.site_id, run_id=run_id).status_code == 404
    assert other.get("/logs", run_id=run_id).status_code == 404
    assert other.get("/run", run_id=run_id).status_code == 404
    assert other.get(f"/content/{ids['content']}").status_code == 404
    assert other.get(f"/media/{ids['image']}").status_code == 404
    assert other.get(f"/runs/{run_id}/events").status_code == 404
    writes = [
        other.client.put(
            f"{API}/update_config", params={"site_id": site}, json={"is_enabled": True}
        ),
        other.client.post(
            f"{API}/keywords/import", params={"site_id": site}, json=[{"keyword": "stolen"}]
        ),
        other.post("/run_now", site_id=site),
        other.post("/pause", run_id=run_id),
        other.post("/resume", run_id=run_id),
        other.post("/cancel", run_id=run_id),
        other.post(f"/content/{ids['content']}/approve"),
        other.post(f"/content/{ids['content']}/reject"),
    ]
    assert [w.status_code for w in writes] == [404] * len(writes)
    assert not [c for c in orchestrator.received if c.site_id == site]
    assert tenant.get("/config", site_id=site).json()["is_enabled"] is False
    assert tenant.get("/keywords", site_id=site).json()["total"] == 1
    assert tenant.get(f"/content/{ids['content']}").json()["status"] == "review"
    # A run the gateway knows only from events (read model lagging) is still the owner's alone.
    started = tenant.post("/run_now", site_id=tenant.site_id)
    if started.status_code == 200:
        assert other.post("/pause", run_id=started.json()["run_id"]).status_code == 404
