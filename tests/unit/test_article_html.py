"""An article's body as the reviewer sees it: Markdown rendered on the server, where nothing in
the body can become script, a raw tag, a javascript: link or an image from elsewhere, and the
article's own images are placed in it."""

from __future__ import annotations

import re

import pytest

from api_gateway.article_html import Picture, render

HOSTILE = """# Hello

<script>alert(1)</script>

<img src=x onerror=alert(1)>

Inline <b onmouseover="alert(1)">bold</b> and [x](javascript:alert(1)).

[upper](JAVASCRIPT:alert(1)) [data](data:text/html,<script>alert(1)</script>)
[vb](vbscript:msgbox) <javascript:alert(1)> [spaced](java&#x09;script:alert(1))

![tracker](https://elsewhere.example/pixel.png) ![inline](data:image/png;base64,AAAA)
"""
MEDIA = "http://gateway.test/api/v1/automation/media/{}"


def tags(html: str) -> set[str]:
    return set(re.findall(r"<([a-z0-9]+)", html))


def test_a_hostile_body_renders_as_text():
    html = render(HOSTILE)
    assert tags(html) == {"h2", "p"}  # no script, img, b or a: every tag is the renderer's
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "[x](javascript:alert(1))" in html  # the refused link stays as its text
    assert "href" not in html and re.search(r"<[^>]*\son\w+=", html) is None
    assert "tracker" in html and "elsewhere.example" not in html  # only the alt text shows


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "vbscript:x", "data:text/html,x", "file:///e"],
)
def test_only_http_https_and_mailto_links_are_links(link):
    assert "<a" not in render(f"[go]({link})")
    assert "<a" not in render(f"<{link}>")


@pytest.mark.parametrize("link", ["https://a.example/x", "http://a.example", "mailto:me@a.example"])
def test_a_link_keeps_its_target_and_is_marked_untrusted(link):
    html = render(f"[go]({link})")
    assert f'<a href="{link}" rel="nofollow noopener noreferrer">go</a>' in html


def test_an_image_shows_only_from_the_articles_own_addresses():
    own = Picture(5, "featured", MEDIA.format(5), "a lake")
    html = render(
        "![a](/api/v1/automation/media/5) ![b](/api/v1/automation/media/6) "
        f"![c]({MEDIA.format(5)}) ![d]({MEDIA.format(6)})",
        [own],
    )
    body = html.split("</figure>", 1)[1]
    assert '<img src="/api/v1/automation/media/5" alt="a"' in body
    assert f'<img src="{MEDIA.format(5)}" alt="c"' in body
    assert body.count("<img") == 2 and "media/6" not in body


def test_the_images_are_placed_featured_first_then_one_after_each_section():
    pictures = [
        Picture(1, "featured", MEDIA.format(1), "cover <art>"),
        Picture(2, "in_article", MEDIA.format(2), "first"),
        Picture(3, "in_article", None, "second, not made"),
        Picture(4, "in_article", MEDIA.format(4), "third"),
    ]
    html = render("# Title\n\nIntro.\n\n## One\n\nA.\n\n## Two\n\nB.\n", pictures)
    order = [html.index(mark) for mark in ("media/1", "Intro.", "A.", "media/2", "B.", "second")]
    assert order == sorted(order)
    assert html.index("second") < html.index("media/4")  # more images than sections: at the end
    assert 'alt="cover &lt;art&gt;"' in html and "Featured image: cover &lt;art&gt;" in html
    assert "Image 2 not made yet: second, not made" in html
    assert "<h2>Title</h2>" in html and "<h3>One</h3>" in html  # one level below the page's


def test_a_body_without_sections_gets_its_images_after_it():
    pictures = [Picture(2, "in_article", MEDIA.format(2), "p")]
    html = render("Just text.", pictures)
    assert html.index("Just text.") < html.index("media/2")


def test_markdown_still_renders():
    html = render("Some **bold**, *it*, `code`.\n\n- a\n- b\n\n| h |\n|---|\n| c |\n")
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html and "<code>code</code>" in html
    assert "<ul>" in html and "<table>" in html
