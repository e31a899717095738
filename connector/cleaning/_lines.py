"""Plain-text lines built from the open/close events of an HTML tree walk."""

from __future__ import annotations

import re

__all__ = ["LineWriter"]

_COLLAPSIBLE = re.compile(r"[ \t\n\r\f]+")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200e\u200f\ufeff\xad"))


class LineWriter:
    """Lines of text for one document, fed in document order.

    ``open``/``close`` take an element kind: "br", "row", "cell", "item", "list",
    "quote", "pre", "paragraph" (blank line around) or "block" (newline around).
    Whitespace collapses as in a browser, and ``&nbsp;`` becomes a plain space.
    A row opened with ``one_line=True`` puts its cells on one line, separated by a
    tab; inside it, block and line ends become a space.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.cut_candidates: list[int] = []
        self._parts: list[str] = []
        self._bullet = ""
        self._has_text = False
        self._space = False
        self._quote_depth = 0
        self._list_depth = 0
        self._pre_depth = 0
        self._rows: list[bool] = []  # per open <tr>: does it go on one line?
        self._first_cell = False

    @property
    def _inline(self) -> bool:
        return bool(self._rows) and self._rows[-1]

    def text(self, value: str) -> None:
        value = value.translate(_ZERO_WIDTH)
        if self._pre_depth:
            for number, piece in enumerate(value.replace("\r", "").split("\n")):
                if number:
                    self.end_block(force=True)
                self._append(piece)
            return

        value = _COLLAPSIBLE.sub(" ", value)
        self._space = self._space or value.startswith(" ")
        self._append(value.strip(" "))
        self._space = self._space or value.endswith(" ")

    def open(self, kind: str, *, one_line: bool = False) -> None:
        if kind == "cell" and self._inline:
            if not self._first_cell:
                self._parts.append("\t")
                self._has_text, self._space = True, False
            self._first_cell = False
            return

        self.end_block(force=kind == "br")
        if kind == "row":
            self._rows.append(one_line)
            self._first_cell = True
        elif kind == "item" and not self._inline:
            self._bullet = "  " * max(self._list_depth - 1, 0) + "- "
        elif kind == "list":
            self._list_depth += 1
        elif kind == "quote":
            self._quote_depth += 1
        elif kind in ("paragraph", "pre"):
            self._blank_line()
            if kind == "pre":
                self._pre_depth += 1

    def close(self, kind: str) -> None:
        if kind == "br" or (kind == "cell" and self._inline):
            return

        if kind == "row" and self._rows:
            self._rows.pop()
        self.end_block()
        if kind == "item" and not self._has_text:
            self._bullet = ""
        elif kind == "list":
            self._list_depth = max(self._list_depth - 1, 0)
        elif kind == "quote":
            self._quote_depth = max(self._quote_depth - 1, 0)
        elif kind in ("paragraph", "pre"):
            self._blank_line()
            if kind == "pre":
                self._pre_depth = max(self._pre_depth - 1, 0)

    def end_block(self, *, force: bool = False) -> None:
        """End the line; a forced end (``<br>``) may leave an empty line."""
        if self._inline:
            self._space = True
        elif self._has_text or force:
            self._flush()

    def mark_cut_candidate(self) -> None:
        """Remember the current line as a place where quoted history may start."""
        self.end_block()
        self.cut_candidates.append(len(self.lines))

    def _append(self, value: str) -> None:
        if not value:
            return
        if self._space and self._has_text and self._parts[-1] != "\t":
            self._parts.append(" ")
        self._parts.append(value)
        self._has_text, self._space = True, False

    def _blank_line(self) -> None:
        if not self._inline and not self._list_depth:
            self.lines.append(("> " * self._quote_depth).rstrip())

    def _flush(self) -> None:
        line = "".join(self._parts).replace("\xa0", " ") if self._has_text else ""
        if not self._pre_depth:
            line = line.lstrip(" ")  # &nbsp; indentation is layout, not content
        if line:
            line = self._bullet + line
        self.lines.append(("> " * self._quote_depth + line).rstrip())
        self._parts, self._bullet = [], ""
        self._has_text = self._space = False
