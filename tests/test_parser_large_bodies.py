"""Large base64 bodies decoded from the raw bytes give the very same mail."""

from __future__ import annotations

import base64
import email.message
import email.policy
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector._large_bodies import LargeBodies
from connector.mail import LARGE_BODY, InboundMail, MailParseError, parse_mail
from tests.test_parser_fuzz import _FUZZ, CORPUS, SEEDS, _mutated

_HEAD = b"From: Jan <jan@example.nl>\r\nSubject: Storing\r\n"


def _both_ways(raw: bytes, large_body: int) -> tuple[object, object]:
    """The mail (or parse error text) with and without setting bodies aside."""
    results: list[object] = []
    for threshold in (large_body, None):
        try:
            results.append(parse_mail(raw, large_body=threshold))
        except MailParseError as exc:
            results.append(f"MailParseError: {exc}")
    return results[0], results[1]


def _lines(data: bytes, newline: bytes = b"\r\n") -> bytes:
    """Base64 in 76-character lines, each ended by ``newline``."""
    text = base64.b64encode(data)
    return b"".join(text[i : i + 76] + newline for i in range(0, len(text), 76))


def _multipart(*parts: bytes, newline: bytes = b"\r\n") -> bytes:
    body = b"".join(b"--b1" + newline + part for part in parts)
    head = _HEAD + b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    return (head + body + b"--b1--" + newline).replace(b"\r\n", newline)


def _attachment(body: bytes, content_type: bytes = b"application/pdf") -> bytes:
    return (
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Disposition: attachment; filename=rapport.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body
    )


_DATA = random.Random(7).randbytes(6_000)
_TEXT_PART = b"Content-Type: text/plain\r\n\r\nKetel lekt\r\n"
_BROKEN_MAILS = {
    "crlf": _multipart(_TEXT_PART, _attachment(_lines(_DATA))),
    "lf": _multipart(_TEXT_PART, _attachment(_lines(_DATA, b"\n")), newline=b"\n"),
    "lone cr": _multipart(_TEXT_PART, _attachment(_lines(_DATA, b"\r")), newline=b"\r"),
    "missing padding": _multipart(
        _attachment(_lines(_DATA[:-1]).rstrip(b"=\r\n") + b"\r\n")
    ),
    "one letter too many": _multipart(_attachment(_lines(_DATA) + b"Q\r\n")),
    "junk line inside": _multipart(
        _attachment(_lines(_DATA[:3000]) + b"!! junk !!\r\n" + _lines(_DATA[3000:]))
    ),
    "padding inside": _multipart(
        _attachment(_lines(_DATA[:3001]) + _lines(_DATA[3001:]))
    ),
    "no closing boundary": _multipart(_attachment(_lines(_DATA)))[
        : -len(b"--b1--\r\n")
    ],
    "quoted-printable label": _multipart(
        _attachment(_lines(_DATA)).replace(b"base64", b"quoted-printable")
    ),
    "base64 text body": _HEAD
    + b"Content-Type: text/plain; charset=utf-8\r\n"
    + b"Content-Transfer-Encoding: base64\r\n\r\n"
    + _lines(b"Ketel lekt bij de voordeur. " * 300),
    "word lines in a plain body": _HEAD + b"\r\n" + b"Hallo\r\n" * 2_000,
    "headers end in base64": b"From: a@example.nl\r\n" + _lines(_DATA),
    "attached message": _multipart(
        b"Content-Type: message/rfc822\r\n\r\n"
        + _multipart(_TEXT_PART, _attachment(_lines(_DATA)))
    ),
    "base64 attached message": _multipart(
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + _lines(_multipart(_TEXT_PART, _attachment(_lines(_DATA))))
    ),
    "base64 in the preamble": _HEAD
    + b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
    + _lines(_DATA)
    + b"--b1\r\n"
    + _attachment(_lines(_DATA))
    + b"--b1--\r\n"
    + _lines(_DATA),
}


def _generated_mail(size: int) -> bytes:
    """A report mail with one PDF of ``size`` random bytes, as a mailer sends it."""
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = "Jan <jan@example.nl>"
    message["Subject"] = "Inspectierapport"
    message.set_content("Zie bijlage.\n")
    pdf = b"%PDF-1.7\n" + random.Random(size).randbytes(size - 9)
    message.add_attachment(
        pdf, maintype="application", subtype="pdf", filename="rapport.pdf"
    )
    return message.as_bytes()


def test_five_megabyte_attachment_is_the_same_decoded_from_raw() -> None:
    """Bytes and SHA-256 of a 5 MB attachment match the stdlib parser's."""
    raw = _generated_mail(5_000_000)

    fast, ordinary = _both_ways(raw, LARGE_BODY)

    assert len(LargeBodies(LARGE_BODY).set_aside(raw)) < 2_000
    assert isinstance(fast, InboundMail) and isinstance(ordinary, InboundMail)
    assert [a.size for a in fast.attachments] == [5_000_000]
    assert fast.attachments[0].sha256 == ordinary.attachments[0].sha256
    assert fast.attachments[0].data == ordinary.attachments[0].data
    assert fast == ordinary


def test_corpus_messages_are_the_same_with_every_base64_run_set_aside() -> None:
    """Each corpus message, attachments included, parses alike both ways."""
    if not CORPUS.is_dir():
        pytest.skip(f"parser corpus not found at {CORPUS}")
    paths = sorted(CORPUS.rglob("*.eml"))
    cut = 0

    for path in paths:
        raw = path.read_bytes()
        cut += LargeBodies(0).set_aside(raw) != raw

        fast, ordinary = _both_ways(raw, 0)

        assert fast == ordinary, Path(path).name
    assert cut >= 40


@pytest.mark.parametrize("name", sorted(_BROKEN_MAILS))
def test_odd_and_broken_base64_gives_the_same_mail(name: str) -> None:
    """Line endings, bad padding, junk, nesting: the result is unchanged."""
    raw = _BROKEN_MAILS[name]

    fast, ordinary = _both_ways(raw, 1_000)

    assert fast == ordinary


def test_well_formed_base64_is_decoded_without_restoring_the_text() -> None:
    """A clean base64 part is read from the raw bytes, not rebuilt as text."""
    raw = _BROKEN_MAILS["crlf"]
    bodies = LargeBodies(1_000)
    message = email.message_from_bytes(bodies.set_aside(raw))
    *_, part = message.walk()

    assert bodies.decoded(part) == _DATA
    assert len(part.get_payload()) < 200


# Each example is parsed twice, and the deeply nested ones take a second.
@settings(_FUZZ, max_examples=60)
@given(_mutated())
def test_mutated_messages_are_the_same_with_every_base64_run_set_aside(
    raw: bytes,
) -> None:
    """Truncated, flipped or unbounded MIME parses alike both ways."""
    fast, ordinary = _both_ways(raw, 0)

    assert fast == ordinary


@_FUZZ
@given(st.lists(st.sampled_from([*SEEDS[:2], *_BROKEN_MAILS.values()]), max_size=3))
def test_concatenated_messages_are_the_same_with_every_base64_run_set_aside(
    pieces: list[bytes],
) -> None:
    """Mails glued together, a stress on boundaries, parse alike both ways."""
    raw = _HEAD + b"".join(pieces)

    fast, ordinary = _both_ways(raw, 0)

    assert fast == ordinary
