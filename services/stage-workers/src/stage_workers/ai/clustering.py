"""Keyword clustering without a model: TF-IDF vectors of words, word pairs and character
trigrams, cosine similarity, and average-linkage agglomerative merging down to a threshold."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from stage_workers.ai.base import ClusterDraft

# Words that say how a query is asked, not what it is about.
QUERY_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "at",
        "best",
        "buy",
        "can",
        "cheap",
        "do",
        "does",
        "for",
        "from",
        "good",
        "guide",
        "how",
        "i",
        "in",
        "is",
        "it",
        "make",
        "my",
        "of",
        "on",
        "or",
        "the",
        "to",
        "top",
        "use",
        "using",
        "vs",
        "what",
        "when",
        "where",
        "which",
        "why",
        "with",
        "without",
        "your",
    ]
)
MERGE_THRESHOLD = 0.09
Vector = dict[str, float]


def words(text: str) -> list[str]:
    tokens = re.findall(r"[a-z0-9]+", text.lower())
    return [_stem(w) for w in tokens if w not in QUERY_WORDS]


def _stem(word: str) -> str:
    # Enough to make "grinders" meet "grinder" and "beans" meet "bean".
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def features(text: str) -> Counter[str]:
    ws = words(text)
    found: Counter[str] = Counter(f"w:{w}" for w in ws)
    found.update(f"p:{a} {b}" for a, b in pairwise(ws))
    for w in ws:
        padded = f"^{w}$"
        # Trigrams count for less than whole words: they bridge spelling variants only.
        for i in range(len(padded) - 2):
            found[f"c:{padded[i : i + 3]}"] += 0.2
    return found


def tfidf(texts: list[str]) -> list[Vector]:
    counted = [features(text) for text in texts]
    document_frequency: Counter[str] = Counter()
    for feature_counts in counted:
        document_frequency.update(feature_counts.keys())
    n = len(texts)
    vectors = []
    for feature_counts in counted:
        vector = {
            f: weight * (math.log((1 + n) / (1 + document_frequency[f])) + 1)
            for f, weight in feature_counts.items()
            # A feature in a single keyword links nothing; drop it to keep vectors sparse.
            if document_frequency[f] > 1 or f.startswith("w:")
        }
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        vectors.append({f: v / norm for f, v in vector.items()})
    return vectors


def cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(f, 0.0) for f, v in a.items())


def agglomerate(vectors: list[Vector], threshold: float = MERGE_THRESHOLD) -> list[list[int]]:
    """Average linkage: repeatedly merge the two closest groups while they are close enough.
    Ties break on the lowest indexes, so the result is deterministic."""
    similarity = [[cosine(a, b) for b in vectors] for a in vectors]
    groups = [[i] for i in range(len(vectors))]
    while len(groups) > 1:
        best, pair = threshold, None
        for x in range(len(groups)):
            for y in range(x + 1, len(groups)):
                score = _average_link(similarity, groups[x], groups[y])
                if score > best + 1e-12:
                    best, pair = score, (x, y)
        if pair is None:
            break
        x, y = pair
        groups[x] = sorted(groups[x] + groups[y])
        del groups[y]
    return sorted(groups, key=lambda g: g[0])


def _average_link(similarity: list[list[float]], a: list[int], b: list[int]) -> float:
    return sum(similarity[i][j] for i in a for j in b) / (len(a) * len(b))


@dataclass(frozen=True)
class _Named:
    name: str
    description: str


def describe(texts: list[str], members: list[int]) -> _Named:
    """Name a cluster after the word pair or word most of its keywords share."""
    counts: Counter[str] = Counter()
    for i in members:
        ws = words(texts[i])
        pairs = {f"{a} {b}" for a, b in pairwise(ws)}
        counts.update(pairs | set(ws))
    # A pair that is as common as its words beats either word alone.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], -len(kv[0].split()), kv[0]))
    topic = ranked[0][0] if ranked else texts[members[0]]
    examples = ", ".join(texts[i] for i in members[:4])
    return _Named(
        name=topic.title(),
        description=f"Searches about {topic}: {examples}{'…' if len(members) > 4 else ''}.",
    )


def cluster(texts: list[str]) -> list[ClusterDraft]:
    if not texts:
        return []
    groups = agglomerate(tfidf(texts))
    drafts = []
    for members in groups:
        named = describe(texts, members)
        drafts.append(ClusterDraft(named.name, named.description, tuple(members)))
    return drafts
