"""Text from mail bytes: body charsets, 8-bit headers, RFC 2047 encoded words.

Every function here is total: a wrong, unknown or hostile charset label
falls back to detection or Windows-1252, so no input raises and no output
holds undecodable text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.header
import re

from charset_normalizer import from_bytes

__all__ = [
    "decode_bytes",
    "decode_header_value",
    "decode_words",
    "lenient_b64decode",
    "raw_text",
    "recover_bytes",
    "unfold",
]

_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "x-user-defined": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
# Text codecs Python knows that are no mail charset and would turn a body into
# nonsense or, for punycode, take quadratic time on a large one. Codecs that
# are no text encoding at all (base64, rot13, zlib) are refused as well.
_REFUSED_CODECS = {
    "idna",
    "punycode",
    "raw-unicode-escape",
    "undefined",
    "unicode-escape",
}
# Labels that mailers put on UTF-8 text by mistake; text in one of these that
# is valid UTF-8 is read as UTF-8, as natural single-byte text almost never is.
_SINGLE_BYTE_PREFIXES = ("ascii", "iso8859-", "cp125", "koi8", "mac-")
_ENCODED_WORD_RE = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
_FOLD_RE = re.compile(r"(?:\r\n|\r|\n)[ \t]*")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_NOT_BASE64_RE = re.compile(rb"[^A-Za-z0-9+/]")
_NOT_BASE64_TEXT_RE = re.compile(rb"[^A-Za-z0-9+/=\s]")


def decode_header_value(value: str | email.header.Header | None) -> str:
    """Decode a raw header value: 8-bit bytes, folding, RFC 2047 words.

    Never raises; an encoded word that cannot be decoded stays as written.
    """
    if value is None:
        return ""
    return decode_words(unfold(raw_text(value))).strip()


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes in a declared charset that may be wrong or unknown."""
    codec = _codec(charset)
    if codec and not (codec.startswith(_SINGLE_BYTE_PREFIXES) and _is_utf8(data)):
        try:
            return data.decode(codec)
        except (LookupError, ValueError):
            pass
    if _is_utf8(data):
        return data.decode("utf-8")
    if codec in ("", "ascii"):
        return data.decode("cp1252", errors="replace")

    # A label that fits all but a byte or two is trusted over detection, which
    # guesses poorly on the short texts of file names and subjects.
    text = data.decode(codec, errors="replace")
    if text.count("\ufffd") <= max(1, len(text) // 100):
        return text
    best = from_bytes(data).best()
    if best is not None:
        return str(best)
    return data.decode("cp1252", errors="replace")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _codec(charset: str | None) -> str:
    """The Python codec for a charset label, or ``""`` if there is none."""
    name = (charset or "").strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name:
        return ""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return ""
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return ""
    return info.name


def raw_text(value: str | email.header.Header) -> str:
    """A raw header value as text, its 8-bit bytes decoded; still folded."""
    text = value if isinstance(value, str) else str(value)
    if not _SURROGATE_RE.search(text):
        return text
    return decode_bytes(recover_bytes(text), None)


def recover_bytes(text: str) -> bytes:
    """The bytes behind text the parser decoded as Latin-1 or surrogateescape."""
    try:
        return text.encode("latin-1", errors="surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace")


def unfold(text: str) -> str:
    return _FOLD_RE.sub(" ", text)


def decode_words(text: str) -> str:
    """Replace RFC 2047 encoded words by their text.

    Adjacent words in one charset are joined before decoding, because mailers
    split multi-byte characters across words; white space between encoded
    words is dropped (RFC 2047 §6.2).
    """
    if "=?" not in text:
        return text

    pieces: list[str] = []
    pending = b""
    pending_charset: str | None = None
    position = 0
    for match in _ENCODED_WORD_RE.finditer(text):
        charset = match[1].partition("*")[0].lower()
        data = _word_bytes(match[2].lower(), match[3])
        if data is None:
            continue
        between = text[position : match.start()]
        if pending_charset is None or (between and not between.isspace()):
            if pending_charset is not None:
                pieces.append(decode_bytes(pending, pending_charset))
                pending_charset = None
            pieces.append(between)
        if charset == pending_charset:
            pending += data
        else:
            if pending_charset is not None:
                pieces.append(decode_bytes(pending, pending_charset))
            pending, pending_charset = data, charset
        position = match.end()

    if pending_charset is not None:
        pieces.append(decode_bytes(pending, pending_charset))
    pieces.append(text[position:])
    return "".join(pieces)


def _word_bytes(encoding: str, encoded: str) -> bytes | None:
    """The bytes of an encoded word, or None if it is no base64 at all."""
    data = encoded.encode("utf-8", errors="replace")
    if encoding == "q":
        return binascii.a2b_qp(data, header=True)
    if _NOT_BASE64_TEXT_RE.search(data):
        return None
    return lenient_b64decode(data)


def lenient_b64decode(data: bytes) -> bytes:
    """Base64 with stray characters skipped and missing padding supplied."""
    compact = _NOT_BASE64_RE.sub(b"", data)
    if len(compact) % 4 == 1:
        compact = compact[:-1]
    return base64.b64decode(compact + b"=" * (-len(compact) % 4))
