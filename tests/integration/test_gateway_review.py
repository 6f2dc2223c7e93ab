"""The review gate over HTTP on the real database: read an article with what it covers, edit it
with its version (the AI's original kept, a stale edit refused), approve or reject with a
reason, a page of the queue in one request, listings searched and filtered by run."""

from __future__ import annotations

import uuid

import pytest

from tests.support.content import add_article

API = "/api/v1/automation"


def patch(tenant, content_id: int, body: dict, if_match: str | None = None):
    headers = {"If-Match": if_match} if if_match is not None else {}
    return tenant.client.patch(f"{API}/content/{content_id}", json=body, headers=headers)


def run_id() -> str:
    return f"run_20261207_010000_manual_{uuid.uuid4().hex[:8]}"


def test_an_article_says_what_it_covers_which_run_made_it_and_its_version(tenant, db):
    made_by = run_id()
    article = add_article(db, tenant.site_id, run_id=made_by)
    answer = tenant.get(f"/content/{article.content_id}")
    assert answer.status_code == 200 and answer.headers["etag"] == '"1"'
    got = answer.json()
    assert got["version"] == 1 and got["run_id"] == made_by
    assert got["keywords"] == [f"seo {article.cluster_id}", f"what is seo {article.cluster_id}"]
    assert got["original_title"] is None and got["edited_at"] is None
    assert [image["id"] for image in got["images"]] == list(article.image_ids)


def test_an_edit_keeps_the_ais_original_records_who_and_refuses_a_stale_copy(tenant, db):
    article = add_article(db, tenant.site_id)
    id_ = article.content_id
    unversioned = patch(tenant, id_, {"title": "SEO, plainly"})
    assert unversioned.status_code == 400 and unversioned.json()["field"] == "version"

    first = patch(tenant, id_, {"title": "SEO, plainly", "body": "One two three.", "version": 1})
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'
    edited = first.json()
    assert (edited["title"], edited["body"], edited["word_count"]) == (
        "SEO, plainly",
        "One two three.",
        3,
    )
    assert edited["original_title"] == "What is SEO"
    assert edited["original_body"].startswith("# What is SEO")
    assert edited["edited_by"] == tenant.user_id and edited["edited_at"] is not None

    stale = patch(tenant, id_, {"body": "Written on version 1.", "version": 1})
    assert stale.status_code == 409 and stale.json()["code"] == "stale"
    assert "version 2" in stale.json()["detail"]
    assert tenant.get(f"/content/{id_}").json()["body"] == "One two three.", "nothing merged"

    second = patch(tenant, id_, {"body": "Four five.", "version": 2})
    assert second.status_code == 200 and second.json()["version"] == 3
    assert second.json()["original_body"].startswith("# What is SEO"), "still the AI's"
    weak = patch(tenant, id_, {"title": "Weak tag", "version": 3}, 'W/"3"')  # the ETag agrees
    assert weak.status_code == 200 and weak.json()["version"] == 4
    torn = patch(tenant, id_, {"title": "Torn", "version": 4}, '"3"')
    assert torn.status_code == 409 and torn.json()["code"] == "stale"


@pytest.mark.parametrize(
    "body",
    [
        {"version": 1},
        {"title": "", "version": 1},
        {"title": "   ", "version": 1},
        {"body": "", "version": 1},
        {"title": "x", "status": "approved", "version": 1},
        {"title": "x", "version": 0},
    ],
)
def test_an_edit_that_changes_nothing_or_something_else_is_400(tenant, db, body):
    article = add_article(db, tenant.site_id)
    answer = patch(tenant, article.content_id, body)
    assert answer.status_code == 400 and answer.json()["code"] == "invalid"


def test_only_an_article_in_review_of_ones_own_account_is_edited(tenant, other, db):
    approved = add_article(db, tenant.site_id, status="approved")
    refused = patch(tenant, approved.content_id, {"title": "Late", "version": 1})
    assert refused.status_code == 409 and refused.json()["status"] == "approved"
    mine = add_article(db, tenant.site_id)
    assert patch(other, mine.content_id, {"title": "Theirs", "version": 1}).status_code == 404
    assert other.post(f"/content/{mine.content_id}/approve").status_code == 404
    garbled = patch(tenant, mine.content_id, {"title": "x", "version": 1}, '"abc"')
    assert garbled.status_code == 409 and garbled.json()["field"] == "if-match", "matches none"


def test_a_rejection_keeps_its_reason_and_a_decision_on_a_stale_copy_is_refused(tenant, db):
    article = add_article(db, tenant.site_id)
    id_ = article.content_id
    assert patch(tenant, id_, {"title": "Edited meanwhile", "version": 1}).status_code == 200
    late = tenant.client.post(
        f"{API}/content/{id_}/reject", json={"reason": "thin"}, headers={"If-Match": '"1"'}
    )
    assert late.status_code == 409
    rejected = tenant.client.post(
        f"{API}/content/{id_}/reject",
        json={"reason": "Says nothing a search would want."},
        headers={"If-Match": '"2"'},
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reject_reason"] == "Says nothing a search would want."
    listed = tenant.get("/content", site_id=tenant.site_id, status="rejected").json()["items"]
    assert {"id": id_, "reject_reason": "Says nothing a search would want."}.items() <= next(
        item for item in listed if item["id"] == id_
    ).items()

    bare = add_article(db, tenant.site_id)  # bulk review rejects without a body
    assert tenant.post(f"/content/{bare.content_id}/reject").json()["reject_reason"] is None
    empty = tenant.client.post(f"{API}/content/{bare.content_id}/reject", json={"reason": ""})
    assert empty.status_code == 400  # an empty reason, refused before anything is looked up
    approved = tenant.client.post(
        f"{API}/content/{add_article(db, tenant.site_id).content_id}/approve",
        headers={"If-Match": '"1"'},
    )
    assert approved.status_code == 200 and approved.headers["etag"] == '"2"'


def test_a_page_of_the_queue_comes_in_one_request_with_excerpts_images_and_keywords(tenant, db):
    long_body = "# Title\n\n" + " ".join(f"word{n}" for n in range(200))
    queued = [add_article(db, tenant.site_id, body=long_body) for _ in range(3)]
    add_article(db, tenant.site_id, status="draft")
    first = tenant.get("/review_queue", site_id=tenant.site_id, limit=2).json()
    assert first["total"] == 3 and len(first["items"]) == 2
    item = first["items"][0]
    assert item["id"] == queued[0].content_id and "body" not in item
    assert item["excerpt"].startswith("Title word0 word1") and item["excerpt"].endswith("…")
    assert len(item["excerpt"]) <= 401
    assert [image["id"] for image in item["images"]] == list(queued[0].image_ids)
    assert item["keywords"] == [
        f"seo {queued[0].cluster_id}",
        f"what is seo {queued[0].cluster_id}",
    ]
    rest = tenant.get("/review_queue", site_id=tenant.site_id, limit=2, offset=2).json()
    assert [i["id"] for i in rest["items"]] == [queued[2].content_id]


def test_listings_are_searched_and_filtered_by_the_run_that_made_them(tenant, db):
    made_by = run_id()
    wanted = add_article(db, tenant.site_id, title="Growing 100% tomatoes", run_id=made_by)
    add_article(db, tenant.site_id, title="Growing 100 tomatoes")
    add_article(db, tenant.site_id, title="Keeping bees", body="Bees and tomatoes.")

    def ids(path: str, **params) -> set[int]:
        answer = tenant.get(path, site_id=tenant.site_id, **params)
        assert answer.status_code == 200, answer.text
        return {item["id"] for item in answer.json()["items"]}

    assert len(ids("/content", q="TOMATOES")) == 3  # titles and bodies, any case
    assert ids("/content", q="100%") == {wanted.content_id}, "% is a character, not a wildcard"
    assert ids("/content", run_id=made_by) == {wanted.content_id}
    assert ids("/clusters", run_id=made_by) == {wanted.cluster_id}
    assert len(ids("/keywords", q=f"seo {wanted.cluster_id}")) == 2
    assert tenant.get("/content", site_id=tenant.site_id, run_id="nope").status_code == 400
    assert tenant.get("/content", site_id=tenant.site_id, q="").status_code == 400
