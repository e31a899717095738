"""Parsing raw MIME into one :class:`InboundMail` value.

The stdlib parser with the ``compat32`` policy is used for speed (it parses
about 3.5 times faster than ``policy.default``) and tolerance. Everything it
leaves raw is decoded here: 8-bit header bytes, RFC 2047 encoded words, RFC 2231
parameters and body charsets, each with a fallback for a wrong or unknown label,
so that no mail crashes the parser and no output holds undecodable text.
Large base64 bodies bypass the stdlib parser and are decoded straight from the
raw bytes (:mod:`connector._large_bodies`), so a big attachment is held about
once rather than seven times.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.utils
import hashlib
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property

from connector._large_bodies import LargeBodies
from connector.cleaning.html import html_text_and_reply
from connector.cleaning.reply import split_reply
from connector.decoding import (
    decode_bytes,
    decode_header_value,
    decode_words,
    lenient_b64decode,
    raw_text,
    recover_bytes,
    unfold,
)
from providers.errors import PermanentError

__all__ = ["Attachment", "InboundMail", "MailParseError", "parse_mail"]

_ID_RE = re.compile(r"<([^<>\s]+)>")
_CID_RE = re.compile(r"""cid:([^"'\s)>]+)""", re.IGNORECASE)
_OBSOLETE_FIELD_RE = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_FIELD_RE = re.compile(rb"[!-9;-~]+:|[ \t]")
# The stdlib reads header parameters in quadratic time: a megabyte of them
# takes minutes. Real ones are a few hundred bytes.
_LONGEST_PARAMETER_FIELD = 65_536
_PARAMETER_FIELD_RE = re.compile(
    rb"^content-(?:type|disposition)[ \t]*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*",
    re.IGNORECASE | re.MULTILINE,
)
_TNEF_TYPES = {"application/ms-tnef", "application/vnd.ms-tnef"}
_LEADING_BREAKS_RE = re.compile(rb"[\r\n]*")
_VISIBLE_RE = re.compile(rb"\S")
#: Base64 bodies longer than this are decoded from the raw bytes, not parsed.
LARGE_BODY = 256 * 1024


class MailParseError(PermanentError):
    """The bytes are not a readable e-mail message."""


@dataclass(frozen=True)
class Attachment:
    """One attachment of a mail, decoded."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)
    content_id: str = ""
    disposition: str = ""
    inline: bool = False
    tnef: bool = False

    @property
    def size(self) -> int:
        """Decoded size in bytes."""
        return len(self.data)

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the decoded bytes."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class InboundMail:
    """A parsed mail: everything the rules look at, plus the original text.

    ``text`` and ``reply`` are derived on first use and kept: converting an
    HTML body is the dearest step, and rules, templates and the log all read
    them.
    """

    message_id: str
    raw_sha256: str
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    subject: str
    date: datetime | None
    plain: str
    html: str
    attachments: tuple[Attachment, ...]
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    headers: dict[str, list[str]]
    content_type: str
    size: int

    @property
    def key(self) -> str:
        """The dedupe key: Message-ID, else a hash of the raw bytes."""
        if self.message_id:
            return "mid:" + self.message_id
        return "sha256:" + self.raw_sha256

    @cached_property
    def _from_html(self) -> tuple[str, str]:
        """Text and reply of an HTML-only mail, from one walk over the HTML."""
        return html_text_and_reply(self.html)

    @cached_property
    def text(self) -> str:
        """The body: the text/plain part, else the HTML converted to text."""
        if self.plain.strip():
            return self.plain
        return self._from_html[0] if self.html else ""

    @cached_property
    def reply(self) -> str:
        """Only the new text: quoted history and signature removed."""
        if not self.plain.strip() and self.html:
            return self._from_html[1]
        return split_reply(self.text).reply

    def header(self, name: str) -> str:
        """The first value of a header, unfolded, or ``""``."""
        values = self.headers.get(name.lower())
        if not values:
            return ""
        return " ".join(values[0].split())


def _raw_values(message: email.message.Message, name: str) -> list[str]:
    return [
        raw_text(value) for key, value in message.raw_items() if key.lower() == name
    ]


def _first(message: email.message.Message, name: str) -> str:
    """The first value of a header, decoded and unfolded, or ``""``."""
    values = _raw_values(message, name)
    return decode_header_value(values[0]) if values else ""


def _addresses(message: email.message.Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs; none for a header too broken to read."""
    values = [unfold(value) for value in _raw_values(message, name)]
    try:
        parsed = email.utils.getaddresses(values)
    except RecursionError:  # Defensive: thousands of nested comments
        return []

    pairs = []
    for display, address in parsed:
        address = address.strip()
        if not address and not display:
            continue
        pairs.append((decode_words(display).strip(), address))
    return pairs


def _recipients(message: email.message.Message, name: str) -> tuple[str, ...]:
    """Addresses only: a group name or a bare local part cannot be written to."""
    return tuple(a for _, a in _addresses(message, name) if "@" in a)


def _ids(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_ID_RE.findall(value)))


def _param(
    part: email.message.Message, name: str, header: str
) -> str | tuple[str, str, str] | None:
    """A header parameter, RFC 2231 still packed; 8-bit bytes decoded first."""
    values = _raw_values(part, header)
    if not values:
        return None
    probe = email.message.Message()
    probe[header] = values[0]
    value = probe.get_param(name, header=header)
    if isinstance(value, tuple):
        charset, language, text = value
        return (charset or "", language or "", text)
    return value


def _filename(part: email.message.Message) -> str:
    """The file name from Content-Disposition, else from Content-Type."""
    for name, header in (("filename", "content-disposition"), ("name", "content-type")):
        value = _param(part, name, header)
        if isinstance(value, tuple):
            charset, _, text = value
            filename = decode_bytes(recover_bytes(text), charset or None)
        else:
            filename = decode_words(unfold(value or ""))
        if filename.strip():
            return filename.strip()
    return ""


def _payload(part: email.message.Message, bodies: LargeBodies) -> bytes:
    """The transfer-decoded body of a part, else its raw text as bytes."""
    decoded = bodies.decoded(part)
    if decoded is not None:
        return decoded

    bodies.restore(part)
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, LookupError, AssertionError):
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", errors="surrogateescape")
    return b""


def _headers(message: email.message.Message) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        headers.setdefault(name.lower(), []).append(raw_text(value))
    return headers


def _repair_obsolete_fields(raw: bytes) -> bytes:
    """Drop the white space before a field name's colon (RFC 5322 §4.5).

    The stdlib parser reads ``Subject  : Hi`` as the start of the body.
    """
    end = raw.find(b"\n\n")
    crlf_end = raw.find(b"\r\n\r\n")
    if end < 0 or 0 <= crlf_end < end:
        end = crlf_end
    head = raw if end < 0 else raw[:end]
    if not _OBSOLETE_FIELD_RE.search(head):
        return raw

    lines = head.splitlines(keepends=True)
    for index, line in enumerate(lines):
        repaired = _OBSOLETE_FIELD_RE.sub(rb"\1:", line, count=1)
        if repaired == line and not _FIELD_RE.match(line):
            break
        lines[index] = repaired
    return b"".join(lines) + (b"" if end < 0 else raw[end:])


def parse_mail(raw: bytes, *, large_body: int | None = LARGE_BODY) -> InboundMail:
    """Parse raw RFC 5322 bytes; raise :class:`MailParseError` if unreadable.

    Base64 bodies longer than ``large_body`` bytes are decoded straight from
    ``raw`` instead of passing through the stdlib parser, which holds several
    copies of a body; ``None`` passes every body through it. The result is
    the same either way.
    """
    if not _VISIBLE_RE.search(raw):  # raw.strip() would copy a large mail
        raise MailParseError("empty message: no headers and no body")

    try:
        return _parse(raw, LargeBodies(large_body))
    except MailParseError:
        raise
    # Defensive: the stdlib parser is tolerant, but a structure nested deeper
    # than the recursion limit, or a defect not foreseen here, must quarantine
    # the one mail rather than stop the loop.
    except (ValueError, LookupError, TypeError, AttributeError, RecursionError) as exc:
        raise MailParseError(
            f"unreadable MIME structure ({type(exc).__name__}: {exc})"
        ) from exc


def _refuse_runaway_parameters(raw: bytes) -> None:
    """Raise MailParseError for a Content-Type or -Disposition over 64 KiB."""
    if len(raw) <= _LONGEST_PARAMETER_FIELD:
        return
    for match in _PARAMETER_FIELD_RE.finditer(raw):
        if len(match[0]) > _LONGEST_PARAMETER_FIELD:
            name = match[0].partition(b":")[0].strip().decode("ascii")
            raise MailParseError(
                f"{name} header is {len(match[0])} bytes long; "
                f"expected at most {_LONGEST_PARAMETER_FIELD}"
            )


def _parse(raw: bytes, bodies: LargeBodies) -> InboundMail:
    _refuse_runaway_parameters(raw)
    leading = _LEADING_BREAKS_RE.match(raw)
    start = leading.end() if leading else 0
    message = email.message_from_bytes(
        _repair_obsolete_fields(bodies.set_aside(raw, start))
    )
    headers = _headers(message)
    if not headers:
        raise MailParseError("not an e-mail message: no header lines found")

    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in _parts(message, bodies):
        if part.get_content_type() == "message/rfc822":
            attachments.append(_attached_message(part, bodies))
        if part.is_multipart():
            continue
        _collect(part, bodies, plain, html, attachments)

    html_text = "".join(html)
    referenced = {cid.lower() for cid in _CID_RE.findall(html_text)}
    attachments = [_mark_inline(a, referenced) for a in attachments]

    from_pairs = _addresses(message, "from")
    from_name, from_addr = from_pairs[0] if from_pairs else ("", "")
    message_ids = _ids(_first(message, "message-id"))
    return InboundMail(
        message_id=message_ids[0] if message_ids else "",
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        from_addr=from_addr.lower(),
        from_name=from_name,
        to=_recipients(message, "to"),
        cc=_recipients(message, "cc"),
        reply_to=_recipients(message, "reply-to"),
        subject=_first(message, "subject"),
        date=_date(_first(message, "date")),
        plain="".join(plain),
        html=html_text,
        attachments=tuple(attachments),
        in_reply_to=_ids(_first(message, "in-reply-to")),
        references=_ids(_first(message, "references")),
        headers=headers,
        content_type=message.get_content_type(),
        size=len(raw),
    )


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _collect(
    part: email.message.Message,
    bodies: LargeBodies,
    plain: list[str],
    html: list[str],
    attachments: list[Attachment],
) -> None:
    content_type = part.get_content_type()
    disposition = (part.get_content_disposition() or "").lower()
    filename = _filename(part)
    raw_id = _first(part, "content-id")
    content_id = "".join(_ID_RE.findall(raw_id)) or raw_id.strip("<> \t")
    is_body_text = (
        content_type in ("text/plain", "text/html")
        and disposition != "attachment"
        and not filename
    )
    if is_body_text:
        text = decode_bytes(_payload(part, bodies), part.get_content_charset())
        (plain if content_type == "text/plain" else html).append(text)
        return
    if filename or content_id or disposition == "attachment":
        attachments.append(
            Attachment(
                filename=filename,
                content_type=content_type,
                data=_payload(part, bodies),
                content_id=content_id,
                disposition=disposition,
                tnef=content_type in _TNEF_TYPES or filename.lower() == "winmail.dat",
            )
        )


def _parts(
    part: email.message.Message, bodies: LargeBodies
) -> Iterator[email.message.Message]:
    """Every part, depth first, like ``walk``, with encoded messages decoded.

    RFC 2046 allows only 7bit, 8bit and binary for message/rfc822, but mailers
    do base64 it; the stdlib then parses the base64 text as a plain-text
    message, which would end up in the body.
    """
    yield part
    if part.get_content_type() == "message/rfc822" and _transfer_encoded(part):
        inner = bodies.set_aside(_attached_bytes(part, bodies))
        yield from _parts(email.message_from_bytes(inner), bodies)
        return
    if not part.is_multipart():
        return
    for child in part.get_payload():
        if isinstance(child, email.message.Message):
            yield from _parts(child, bodies)


def _transfer_encoded(part: email.message.Message) -> bool:
    encoding = _first(part, "content-transfer-encoding").lower()
    return encoding in ("base64", "quoted-printable")


def _attached_bytes(part: email.message.Message, bodies: LargeBodies) -> bytes:
    """The embedded message of a message/rfc822 part, transfer-decoded."""
    bodies.restore(part)
    inner = part.get_payload()
    if isinstance(inner, list) and inner:
        inner = inner[0]
    try:
        data = inner.as_bytes() if isinstance(inner, email.message.Message) else b""
    except (ValueError, LookupError, UnicodeError):
        data = b""

    encoding = _first(part, "content-transfer-encoding").lower()
    if encoding == "base64":
        return lenient_b64decode(data)
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


def _attached_message(part: email.message.Message, bodies: LargeBodies) -> Attachment:
    """A message/rfc822 part as a file."""
    return Attachment(
        filename=_filename(part),
        content_type="message/rfc822",
        data=_attached_bytes(part, bodies),
        disposition=(part.get_content_disposition() or "").lower(),
    )


def _mark_inline(attachment: Attachment, referenced: set[str]) -> Attachment:
    inline = bool(attachment.content_id) and (
        attachment.content_id.lower() in referenced
        or (attachment.disposition == "inline" and not attachment.filename)
    )
    return replace(attachment, inline=True) if inline else attachment
