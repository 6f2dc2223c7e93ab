"""An article's Markdown as HTML a reviewer's browser may show as it is: rendered here, on the
server, so no script of the page ever turns text into markup.

Raw HTML in the Markdown is escaped (it shows as text), a link goes only to http, https or
mailto (any other stays as the literal Markdown text), and an image shows only from one of the
article's own image URLs; any other image shows as its alt text. The article's generated
images are placed in it: the featured one first, the k-th in-article one at the end of the
k-th section (a `##` heading starts a section), those beyond the last section at the end.
Headings move down one level, so the body's `#` sits under the page's own title.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markdown_it import MarkdownIt
from markdown_it.token import Token

LINK_SCHEMES = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
MEDIA_PATH = "/api/v1/automation/media/{}"
MEDIA_ROUTE = re.compile(r"/api/v1/automation/media/[0-9]+")
REL = "nofollow noopener noreferrer"


@dataclass(frozen=True)
class Picture:
    """One of the article's images: where it is served (None until it exists) and its prompt."""

    id: int
    kind: str
    url: str | None
    prompt: str


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # Links and images both pass here; images are narrowed further in `_image`.
    md.validateLink = lambda url: bool(LINK_SCHEMES.match(url) or MEDIA_ROUTE.fullmatch(url))
    md.add_render_rule("image", _image)
    md.add_render_rule("link_open", _link_open)
    return md


def _image(self, tokens: Sequence[Token], idx: int, options, env) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    src = token.attrGet("src")
    if src not in env["image_sources"]:
        return escape(alt)
    return f'<img src="{escape(str(src))}" alt="{escape(alt)}" loading="lazy">'


def _link_open(self, tokens: Sequence[Token], idx: int, options, env) -> str:
    tokens[idx].attrSet("rel", REL)
    return self.renderToken(tokens, idx, options, env)


MARKDOWN = _parser()


def figure(picture: Picture, label: str) -> str:
    prompt = escape(picture.prompt)
    if picture.url is None:
        caption = f"<figcaption>{label} not made yet: {prompt}</figcaption>"
        return f'<figure class="article-image missing">{caption}</figure>'
    return (
        f'<figure class="article-image" data-image="{picture.id}">'
        f'<img src="{escape(picture.url)}" alt="{prompt}" loading="lazy">'
        f"<figcaption>{label}: {prompt}</figcaption></figure>"
    )


def _sections(tokens: list[Token]) -> list[list[Token]]:
    """The block tokens cut before each top-level `##` heading: the intro, then each section."""
    sections: list[list[Token]] = [[]]
    for token in tokens:
        if token.type == "heading_open" and token.level == 0 and token.tag == "h2":
            sections.append([])
        sections[-1].append(token)
    return sections


def _lower_headings(tokens: list[Token]) -> None:
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + 1)}"


def render(markdown: str, pictures: Sequence[Picture] = ()) -> str:
    """The body as safe HTML, with the article's images in place."""
    sources = {MEDIA_PATH.format(p.id) for p in pictures} | {p.url for p in pictures if p.url}
    env = {"image_sources": sources}
    tokens = MARKDOWN.parse(markdown, env)
    sections = _sections(tokens)
    _lower_headings(tokens)
    featured = [p for p in pictures if p.kind == "featured"]
    inside = [p for p in pictures if p.kind != "featured"]
    parts = [figure(p, "Featured image") for p in featured]
    for number, section in enumerate(sections):
        parts.append(MARKDOWN.renderer.render(section, MARKDOWN.options, env))
        if 1 <= number <= len(inside):
            parts.append(figure(inside[number - 1], f"Image {number}"))
    after = len(sections)  # more images than sections: the rest at the end
    parts.extend(figure(p, f"Image {n}") for n, p in enumerate(inside[after - 1 :], after))
    return "".join(parts)
