"""Deterministic writing for the offline provider: idea titles, articles and image prompts made
from templates, with choices driven by a hash of the input so the same input gives the same text."""

from __future__ import annotations

import hashlib

from stage_workers.ai.base import ArticleDraft, IdeaDraft, PromptDraft

IDEA_ANGLES = (
    ("The Complete Guide to {topic}", "What {topic} is, how it works, and how to get it right."),
    ("{topic}: Common Mistakes and How to Fix Them", "The errors people make with {topic}."),
    ("{topic} Compared: Which Option Suits You", "Options for {topic} side by side."),
    ("A Beginner's Checklist for {topic}", "Step-by-step first steps with {topic}."),
)
SECTIONS = (
    "Why {topic} matters",
    "What you need before you start",
    "Step by step",
    "Getting the details right",
    "Common mistakes",
    "How to tell it worked",
    "Going further",
)
SENTENCES = (
    "Most people who look into {kw} want a result they can repeat, not a one-off success.",
    "The short answer is that {kw} rewards patience and small, deliberate adjustments.",
    "Start with the basics of {kw} and change one variable at a time so you learn what matters.",
    "A common trap with {kw} is copying a recipe without checking whether it fits your setup.",
    "Keep notes on every attempt at {kw}; after a week the pattern is usually obvious.",
    "Good equipment helps with {kw}, but technique explains most of the difference you taste.",
    "When {kw} goes wrong, the cause is rarely mysterious: timing, ratio or temperature.",
    "Experienced hands at {kw} still measure, because guessing hides the cause of a change.",
    "If you only remember one thing about {kw}, make it consistency from one attempt to the next.",
    "Cleaning and maintenance are the unglamorous half of {kw}, and they pay off every day.",
    "There is no single right way to approach {kw}; there are trade-offs you can choose knowingly.",
    "Readers often ask whether {kw} is worth the effort; the honest answer depends on your goals.",
)


def _pick(seed: str, options: tuple, count: int) -> list:
    """`count` options in an order fixed by `seed` (repeating when there are too few)."""
    ranked = sorted(options, key=lambda o: hashlib.sha256(f"{seed}|{o}".encode()).hexdigest())
    return [ranked[i % len(ranked)] for i in range(count)]


def ideas(cluster_name: str, keywords: list[str], count: int = 3) -> list[IdeaDraft]:
    topic = cluster_name.strip() or (keywords[0] if keywords else "this topic")
    chosen = _pick(topic, IDEA_ANGLES, count)
    return [
        IdeaDraft(
            title=title.format(topic=topic),
            outline=outline.format(topic=topic) + _covering(keywords),
        )
        for title, outline in chosen
    ]


def _covering(keywords: list[str]) -> str:
    return f" Covers: {', '.join(keywords[:6])}." if keywords else ""


def article(title: str, brief: str, keywords: list[str]) -> ArticleDraft:
    terms = keywords or [title.lower()]
    lines = [f"# {title}", "", brief.strip() or f"A practical guide to {title.lower()}.", ""]
    for number, heading in enumerate(_pick(title, SECTIONS, 6)):
        lines += [f"## {heading.format(topic=title)}", ""]
        for paragraph in range(3):
            seed = f"{title}|{number}|{paragraph}"
            sentences = _pick(seed, SENTENCES, 3)
            lines.append(
                " ".join(s.format(kw=terms[(number + paragraph) % len(terms)]) for s in sentences)
            )
            lines.append("")
    lines += ["## Key takeaways", ""]
    lines += [
        f"- {term[:1].upper()}{term[1:]}: measure, adjust one thing, repeat." for term in terms[:5]
    ]
    return ArticleDraft(title=title, markdown="\n".join(lines).strip() + "\n")


def image_prompts(title: str, body: str) -> list[PromptDraft]:
    headings = [line[3:].strip() for line in body.splitlines() if line.startswith("## ")]
    scenes = [*headings, "detail shot", "overview", "close-up"][:3]
    featured = PromptDraft(
        "featured",
        f"Editorial hero photograph for an article titled '{title}', "
        "natural light, shallow depth of field",
    )
    return [featured] + [
        PromptDraft(
            "in_article",
            f"Illustration for the section '{scene}' of '{title}', "
            "clean, informative, soft colours",
        )
        for scene in scenes
    ]
