"""Large base64 bodies kept out of the stdlib parser and decoded from the raw bytes.

The stdlib parser holds a body as a list of lines, then as one string, then as
bytes before it decodes it: a 25 MB attachment costs about seven times its size.
:meth:`LargeBodies.set_aside` replaces each long run of base64 lines by a short
token before parsing; :meth:`LargeBodies.decoded` decodes a body holding tokens
straight from the raw bytes, and :meth:`LargeBodies.restore` puts the text back
for every other use.

A run only holds lines of base64 letters and digits, and the token is such a
line too. The parser reads both alike: neither is a header, a boundary
(``--``) or a blank line, so the message structure is the same with tokens as
without. Padding (``=``) is never set aside, so the end of the data stays in
text the parser sees.
"""

from __future__ import annotations

import binascii
import email.message
import re
import secrets
from dataclasses import dataclass

__all__ = ["LargeBodies"]

_BASE64_RUN_RE = re.compile(rb"(?<![^\r\n])(?:[A-Za-z0-9+/]++(?:\r\n|\r|\n))++")


#: A placeholder no sender can predict, chosen once per process: a pattern
#: compiled per mail would cost more than the parse and crowd re's cache.
_MARKER = "M2WO" + secrets.token_hex(16)
_TOKEN_RE = re.compile(_MARKER + "([0-9]+)")


@dataclass(frozen=True)
class _Cut:
    """Where a set-aside run lies in its buffer, without its last line break."""

    buffer: bytes
    start: int
    end: int


class LargeBodies:
    """The runs set aside while parsing one mail, with the buffers they lie in.

    Runs of base64 lines longer than ``over`` bytes are set aside; ``None``
    sets none aside.
    """

    def __init__(self, over: int | None) -> None:
        self._over = over
        self._cuts: list[_Cut] = []
        self._marker = _MARKER
        self._token_re = _TOKEN_RE

    def set_aside(self, raw: bytes, start: int = 0) -> bytes:
        """``raw[start:]`` with every long base64 run replaced by a token."""
        if self._over is None or len(raw) - start <= self._over:
            return raw[start:]

        pieces: list[bytes] = []
        position = start
        for match in _BASE64_RUN_RE.finditer(raw, start):
            if match.end() - match.start() <= self._over:
                continue
            end = match.end() - (2 if raw.endswith(b"\r\n", 0, match.end()) else 1)
            pieces += [
                raw[position : match.start()],
                self._token(raw, match.start(), end),
            ]
            position = end
        if not pieces:
            return raw[start:]
        pieces.append(raw[position:])
        return b"".join(pieces)

    def decoded(self, part: email.message.Message) -> bytes | None:
        """The body of a base64 part holding tokens, decoded from the raw bytes.

        The bytes are those ``part.get_payload(decode=True)`` gives once the
        text is restored. ``None`` when that cannot be had without restoring:
        no token, another transfer encoding, or base64 so broken that the
        stdlib would retry it with extra padding.
        """
        text = _payload_text(part)
        if text is None or self._marker not in text:
            return None
        encoding = str(part.get("content-transfer-encoding", "")).lower()
        if encoding != "base64":
            return None
        span = self._span(text)
        if span is None:
            return None

        # The stdlib drops the line breaks and, with a length that is a
        # multiple of four, decodes what is left leniently; ``a2b_base64``
        # skips line breaks itself, so it can read the raw bytes in place.
        buffer, start, end = span
        letters = end - start - buffer.count(b"\r", start, end)
        letters -= buffer.count(b"\n", start, end)
        if letters % 4:
            return None
        try:
            return binascii.a2b_base64(memoryview(buffer)[start:end])
        except binascii.Error:
            return None

    def restore(self, message: email.message.Message) -> None:
        """Put the set-aside text back into ``message`` and all its parts."""
        if not self._cuts:
            return
        for part in message.walk():
            text = _payload_text(part)
            if text is not None and self._marker in text:
                part.set_payload(self._restored(text))
            for name in ("preamble", "epilogue"):
                value = getattr(part, name)
                if value is not None and self._marker in value:
                    setattr(part, name, self._restored(value))

    def _token(self, raw: bytes, start: int, end: int) -> bytes:
        self._cuts.append(_Cut(raw, start, end))
        return f"{self._marker}{len(self._cuts) - 1}".encode("ascii")

    def _restored(self, text: str) -> str:
        def original(match: re.Match[str]) -> str:
            cut = self._cuts[int(match[1])]
            return cut.buffer[cut.start : cut.end].decode("ascii")

        return self._token_re.sub(original, text)

    def _span(self, text: str) -> tuple[bytes, int, int] | None:
        """Where the whole restored ``text`` lies in one buffer, if it does.

        Between, before and after its tokens the text must be the very bytes
        around the set-aside runs; the parser only ever drops a line break
        at the end of a part, which the last piece then simply lacks.
        """
        pieces = self._token_re.split(text)
        if len(pieces) < 3:  # Defensive: the marker without a number
            return None
        try:
            between = [p.encode("ascii", "surrogateescape") for p in pieces[::2]]
        except UnicodeEncodeError:  # Defensive: the parser read bytes
            return None
        cuts = [self._cuts[int(number)] for number in pieces[1::2]]

        buffer = cuts[0].buffer
        start = cuts[0].start - len(between[0])
        if start < 0 or not buffer.startswith(between[0], start):
            return None
        for cut, after, following in zip(cuts, between[1:], cuts[1:], strict=False):
            if following.buffer is not buffer or not buffer.startswith(after, cut.end):
                return None
            if cut.end + len(after) != following.start:
                return None
        end = cuts[-1].end + len(between[-1])
        if not buffer.startswith(between[-1], cuts[-1].end):
            return None
        return buffer, start, end


def _payload_text(part: email.message.Message) -> str | None:
    """The body text as parsed; ``get_payload()`` would decode 8-bit bytes."""
    payload = getattr(part, "_payload", None)
    return payload if isinstance(payload, str) else None
