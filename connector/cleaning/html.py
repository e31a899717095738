"""Readable plain text from HTML mail parts, optionally without the quoted history.

The tree is walked once, without recursion, and ``LineWriter`` turns it into lines:

- a newline after block elements and ``<br>``; a blank line around ``<p>`` and
  headings, except Word's zero-margin ``Mso*`` paragraphs;
- a table row with two or more cells and no nested table goes on one line, with
  its cells separated by a tab. Inside such a row, ``<p>``, ``<div>`` and ``<br>``
  become a space. Single-cell rows and rows holding nested tables are layout, so
  their cells are plain blocks;
- list items get a "- " prefix (Outlook's ``<![if !supportLists]>`` bullets too),
  and lines inside ``<blockquote>`` get "> " per level.
"""

from __future__ import annotations

import re
from enum import Enum

from selectolax.lexbor import LexborHTMLParser, LexborNode

from connector.cleaning._lines import LineWriter
from connector.cleaning.reply import split_reply

__all__ = ["html_reply_to_text", "html_text_and_reply", "html_to_text"]

_INVISIBLE_TAGS = frozenset(
    {"head", "style", "script", "title", "template", "noscript", "svg", "xml"}
)
_KINDS = {
    "br": "br", "tr": "row", "td": "cell", "th": "cell", "li": "item",
    "blockquote": "quote", "pre": "pre",
    **dict.fromkeys(("ul", "ol", "dir", "menu"), "list"),
    **dict.fromkeys(("p", "h1", "h2", "h3", "h4", "h5", "h6"), "paragraph"),
    **dict.fromkeys((
        "address", "article", "aside", "caption", "center", "dd", "details",
        "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "header", "hgroup", "hr", "legend", "main", "nav", "section",
        "summary", "table", "tbody", "tfoot", "thead",
    ), "block"),
}  # fmt: skip
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)

# lexbor's tree builder takes time quadratic in nesting depth (200,000 nested
# <div> take minutes), so start tags deeper than this are dropped before parsing.
# Void elements, and elements that a sibling's start tag closes, add no depth.
_MAX_DEPTH = 2_000
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^<>]*>")
_UNNESTED_TAGS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
    "source", "track", "wbr", "p", "li", "dt", "dd", "td", "th", "tr", "tbody",
    "thead", "tfoot", "option", "optgroup", "colgroup", "rt", "rp",
})  # fmt: skip

# Reply mode: elements from which on a mail client put the quoted history.
_HISTORY_IDS = frozenset({
    "divRplyFwdMsg", "appendonsend", "OLK_SRC_BODY_SECTION", "stopSpelling",
    "mail-editor-reference-message-container",
})  # fmt: skip
_QUOTE_CLASSES = ("gmail_quote", "gmail_attr", "yahoo_quoted", "moz-cite-prefix")
_HEADER_LABEL = re.compile(r"\*?[^\W\d_][\w -]{0,24}:")


class _Step(Enum):
    DESCEND = 1
    SKIP = 2
    STOP = 3


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML mail part."""
    return "\n".join(_render(html, reply=False))


def html_reply_to_text(html: str) -> str:
    """Only the new text of an HTML reply.

    Quoted history is removed from the tree before conversion. That covers Gmail's
    ``gmail_quote``, ``blockquote type=cite``, Thunderbird's ``moz-cite-prefix``,
    Yahoo's ``yahoo_quoted``, and everything from Outlook's ``divRplyFwdMsg``,
    ``appendonsend``, ``OLK_SRC_BODY_SECTION`` or Hotmail's ``stopSpelling`` on.
    A ``<hr>`` or a border-top ``<div>`` cuts too, when header lines like
    "From: …" / "Sent: …" follow it. ``split_reply`` then removes what is left
    (Outlook 2010 header paragraphs, attributions, signatures).
    """
    return split_reply("\n".join(_render(html, reply=True))).reply


def html_text_and_reply(html: str) -> tuple[str, str]:
    """``html_to_text`` and ``html_reply_to_text`` of one part, in one walk."""
    full, reply = _render_both(html)
    return "\n".join(full), split_reply("\n".join(reply)).reply


def _render_both(html: str) -> tuple[list[str], list[str]]:
    """The full and the reply rendering from one walk over the tree.

    The walk is the full one; the reply writer follows it except inside a
    quote the reply rendering skips (tracked by the quote's ``mem_id``) and
    after the point where it stops.
    """
    full, reply = LineWriter(), LineWriter()
    skipping: int | None = None  # mem_id of the quote the reply leaves out
    stopped = False
    node: LexborNode | None = LexborHTMLParser(_limit_nesting(html)).root

    def leave(left: LexborNode) -> None:
        nonlocal skipping
        _leave(left, full)
        if skipping is None and not stopped:
            _leave(left, reply)
        elif skipping == left.mem_id:
            skipping = None

    while node is not None:
        following = skipping is None and not stopped
        if node.is_text_node:
            full.text(node.text_content or "")
            if following:
                reply.text(node.text_content or "")
        elif node.is_comment_node and _comment_starts(node, "[if !supportlists"):
            full.open("item")
            if following:
                reply.open("item")
            node = _end_of_list_marker(node)
        elif node.is_element_node:
            step = _enter(node, full, reply=False)
            if following and step is _Step.DESCEND:
                quoted = _enter(node, reply, reply=True)
                if quoted is _Step.STOP:
                    stopped = True
                elif quoted is _Step.SKIP:
                    skipping = node.mem_id
            if step is _Step.DESCEND:
                if (child := node.child) is not None:
                    node = child
                    continue
                leave(node)
        while node is not None and node.next is None:
            parent = node.parent
            if parent is None or parent.is_document_node:
                node = None
                break
            leave(parent)
            node = parent
        node = node.next if node is not None else None

    full.end_block()
    reply.end_block()
    reply_lines = _cut_at_header(reply.lines, reply.cut_candidates)
    return _tidy(full.lines), _tidy(reply_lines)


def _render(html: str, *, reply: bool) -> list[str]:
    writer = LineWriter()
    node: LexborNode | None = LexborHTMLParser(_limit_nesting(html)).root

    while node is not None:
        if node.is_text_node:
            writer.text(node.text_content or "")
        elif node.is_comment_node and _comment_starts(node, "[if !supportlists"):
            writer.open("item")
            node = _end_of_list_marker(node)
        elif node.is_element_node:
            step = _enter(node, writer, reply=reply)
            if step is _Step.STOP:
                break
            if step is _Step.DESCEND:
                if (child := node.child) is not None:
                    node = child
                    continue
                _leave(node, writer)
        node = _next_node(node, writer)

    writer.end_block()
    lines = writer.lines
    if reply:
        lines = _cut_at_header(lines, writer.cut_candidates)
    return _tidy(lines)


def _limit_nesting(html: str) -> str:
    """The HTML without start tags nested deeper than ``_MAX_DEPTH``."""
    if html.count("<") < _MAX_DEPTH:
        return html

    kept: list[str] = []
    depth = last = 0
    for tag in _TAG.finditer(html):
        if tag[2].lower() in _UNNESTED_TAGS or tag[0].endswith("/>"):
            continue
        depth += -1 if tag[1] else 1
        depth = max(depth, 0)
        if depth > _MAX_DEPTH and not tag[1]:
            kept.append(html[last : tag.start()])
            last = tag.end()

    return "".join(kept) + html[last:] if kept else html


def _next_node(node: LexborNode, writer: LineWriter) -> LexborNode | None:
    """The next node in document order, leaving the elements we climb out of."""
    while (sibling := node.next) is None:
        parent = node.parent
        if parent is None or parent.is_document_node:
            return None
        _leave(parent, writer)
        node = parent
    return sibling


def _enter(node: LexborNode, writer: LineWriter, *, reply: bool) -> _Step:
    tag = node.tag or ""
    attributes = node.attributes
    style = attributes.get("style") or ""
    if tag in _INVISIBLE_TAGS or (style and _HIDDEN_STYLE.search(style)):
        return _Step.SKIP

    if reply:
        if (attributes.get("id") or "").removeprefix("x_") in _HISTORY_IDS:
            return _Step.STOP
        classes = attributes.get("class") or ""
        if any(name in classes for name in _QUOTE_CLASSES):
            return _Step.SKIP
        if tag == "blockquote" and (attributes.get("type") or "").lower() == "cite":
            return _Step.SKIP
        if tag == "hr" or (tag == "div" and "border-top" in style):
            writer.mark_cut_candidate()

    kind = _kind(node, tag)
    if kind == "row":
        writer.open(kind, one_line=_is_data_row(node))
    elif kind:
        writer.open(kind)
    return _Step.DESCEND


def _leave(node: LexborNode, writer: LineWriter) -> None:
    if kind := _kind(node, node.tag or ""):
        writer.close(kind)


def _kind(node: LexborNode, tag: str) -> str | None:
    kind = _KINDS.get(tag)
    if kind == "paragraph" and (node.attributes.get("class") or "").startswith("Mso"):
        return "block"  # Word paragraphs have no margins
    return kind


def _is_data_row(row: LexborNode) -> bool:
    cells = sum(1 for child in row.iter() if _KINDS.get(child.tag or "") == "cell")
    return cells >= 2 and row.css_first("table") is None


def _comment_starts(node: LexborNode, prefix: str) -> bool:
    return (node.comment_content or "").lstrip().lower().startswith(prefix)


def _end_of_list_marker(node: LexborNode) -> LexborNode:
    """The ``<![endif]>`` closing Outlook's bullet glyph, or node if it is missing."""
    sibling = node.next
    while sibling is not None:
        if sibling.is_comment_node and _comment_starts(sibling, "[endif"):
            return sibling
        sibling = sibling.next
    return node


def _cut_at_header(lines: list[str], candidates: list[int]) -> list[str]:
    """Drop everything from the first rule that is followed by "From:"-style lines."""
    for start in candidates:
        following = [line for line in lines[start : start + 10] if line.strip()][:4]
        labelled = [line for line in following if _HEADER_LABEL.match(line)]
        if following and following[0] in labelled and len(labelled) >= 2:
            return lines[:start]
    return lines


def _tidy(lines: list[str]) -> list[str]:
    """No leading or trailing blank lines and never two blank lines in a row."""
    tidy: list[str] = []
    previous_blank = True
    for line in lines:
        blank = not line.replace(">", "").strip()
        if not (blank and previous_blank):
            tidy.append(line)
        previous_blank = blank

    while tidy and not tidy[-1].replace(">", "").strip():
        tidy.pop()
    return tidy
