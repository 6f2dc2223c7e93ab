"""The offline provider: deterministic, clusters the sample keywords sensibly, writes real
articles and real PNGs; stage 1's cluster key."""

from __future__ import annotations

import csv
import hashlib
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest

from stage_workers.ai.factory import offline_ai
from stage_workers.ai.png import PNG_SIGNATURE, draw_from_prompt
from stage_workers.stages.clusters import source_key
from stage_workers.stages.prompts import featured_first

SAMPLE = Path(__file__).parents[2] / "deploy" / "sample-data" / "keywords.csv"


def sample_keywords() -> list[str]:
    with SAMPLE.open() as f:
        return [row["keyword"] for row in csv.DictReader(f)]


def topic_of(index: int) -> int:
    return index // 10  # the sample file holds 12 topics of 10 keywords, in order


async def test_clustering_is_deterministic():
    keywords = sample_keywords()[:40]
    first = await offline_ai().cluster_keywords(keywords)
    again = await offline_ai().cluster_keywords(keywords)
    assert first == again


# Batches of 20 (the default) are what stage 1 clusters; one batch of all 120 is harder.
@pytest.mark.parametrize(("batch", "purity"), [(20, 0.85), (120, 0.75)])
async def test_clusters_of_the_sample_keywords_are_mostly_pure(batch, purity):
    keywords = sample_keywords()
    clusters, same_topic = [], 0
    for start in range(0, len(keywords), batch):
        drafts = await offline_ai().cluster_keywords(keywords[start : start + batch])
        for draft in drafts:
            topics = Counter(topic_of(start + i) for i in draft.members)
            same_topic += topics.most_common(1)[0][1]
        clusters += drafts
    assert same_topic / len(keywords) >= purity
    # Grouping happened: far fewer clusters than keywords, and some big ones.
    assert len(clusters) <= len(keywords) / 3
    assert max(len(d.members) for d in clusters) >= 6


async def test_every_keyword_lands_in_exactly_one_cluster():
    keywords = sample_keywords()[:20]
    drafts = await offline_ai().cluster_keywords(keywords)
    members = [i for d in drafts for i in d.members]
    assert sorted(members) == list(range(20))
    assert all(d.name and d.description for d in drafts)


async def test_a_cluster_is_named_after_its_shared_topic():
    drafts = await offline_ai().cluster_keywords(sample_keywords()[20:30])
    assert drafts[0].name == "French Press"


async def test_articles_are_deterministic_long_and_sectioned():
    ai = offline_ai()
    article = await ai.write_article("Cold Brew Basics", "Brief.", ["cold brew ratio", "steep"])
    assert article == await ai.write_article(
        "Cold Brew Basics", "Brief.", ["cold brew ratio", "steep"]
    )
    assert 700 <= article.word_count <= 1200
    assert article.markdown.startswith("# Cold Brew Basics")
    assert article.markdown.count("\n## ") >= 5


async def test_ideas_and_prompts():
    ai = offline_ai()
    ideas = await ai.write_ideas("Moka Pot", ["moka pot ratio", "best moka pot"])
    assert len(ideas) == 3 and len({i.title for i in ideas}) == 3
    prompts = await ai.write_image_prompts("T", "# T\n\n## One\n\ntext\n\n## Two\n")
    assert [p.kind for p in prompts] == ["featured", "in_article", "in_article", "in_article"]


def test_featured_first_keeps_one_featured_image_at_position_zero():
    from stage_workers.ai.base import PromptDraft

    mixed = [
        PromptDraft("in_article", "a"),
        PromptDraft("featured", "b"),
        PromptDraft("featured", "c"),
    ]
    ordered = featured_first(mixed)
    assert [p.kind for p in ordered] == ["featured", "in_article", "in_article"]
    assert ordered[0].prompt == "b"


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data.startswith(PNG_SIGNATURE)
    chunks, at = [], len(PNG_SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        at += 12 + length
    return chunks


async def test_rendered_images_are_valid_deterministic_pngs():
    ai = offline_ai()
    png = await ai.render_image("a latte in soft light")
    assert png == await ai.render_image("a latte in soft light")
    assert png != await ai.render_image("a moka pot")
    chunks = _png_chunks(png)
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    pixels = zlib.decompress(chunks[1][1])
    assert (depth, colour) == (8, 2)
    assert len(pixels) == height * (1 + 3 * width)


def test_a_prompt_draws_the_picture_it_always_has():
    """An image a run stored stays the one the same prompt draws after a change to the drawing
    code: these 200 pictures (discs at every edge among them) hash as they did."""
    pictures = hashlib.sha256()
    for n in range(200):
        pictures.update(draw_from_prompt(f"prompt number {n} of a cup"))
    assert pictures.hexdigest() == (
        "7878e155d4d06accf5db6a8224dd0005a4971f1680a648df24ba8ae9ea1b3212"
    )


def test_source_key_ignores_order():
    assert source_key([9, 3, 5]) == source_key([5, 9, 3]) == "kw:3,5,9"
