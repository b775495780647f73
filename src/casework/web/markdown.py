"""Markdown in queries and responses, shown formatted and safe.

Two locks, so that text from traces (which anyone who can send spans controls) never runs in a reviewer's
browser: markdown-it-py parses CommonMark with raw HTML off (HTML in the text is shown as text), and nh3
(Ammonia) then keeps only an allow-list of tags and attributes and only http, https and mailto links. Images
are not rendered: a reviewer's page must not fetch from hosts the text names.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

# Past this, the text is shown as it is: parsing stays cheap, and a huge response is read raw anyway.
RENDER_LIMIT = 200_000

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "code": {"class"}}


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.disable("image")
    return parser


def render_markdown(text: str | None) -> Markup:
    """Sanitised HTML for ``text``; plain escaped text in a <pre> when it is over :data:`RENDER_LIMIT`."""
    if not text:
        return Markup("")
    if len(text) > RENDER_LIMIT:
        return Markup(f"<pre>{escape(text)}</pre>")
    html = _parser().render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)
