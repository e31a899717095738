"""parse_mail returns a mail or raises MailParseError, fast, on any bytes at all."""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.mail import InboundMail, MailParseError, parse_mail

CORPUS = (
    Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "ikvk-imap_tools"
)
SLOWEST_PARSE_SECONDS = 5.0

_BUILT_IN_SEEDS = [
    b"From: Jan <jan@example.nl>\r\nTo: service@example.nl\r\n"
    b"Subject: =?utf-8?Q?Storing_caf=C3=A9?=\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n"
    b"--b2\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nKapot =E9 ketel\r\n"
    b"--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p>Kapot <img src="cid:logo@x"></p>\r\n--b2--\r\n'
    b"--b1\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    b"--b1\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''R%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
    b"--b1\r\nContent-Type: application/ms-tnef; name=winmail.dat\r\n"
    b"Content-Disposition: attachment; filename=winmail.dat\r\n\r\n\x78\x9f\x3e\x22\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: x@y\r\nSubject: inner\r\n\r\ninner body\r\n--b1--\r\n",
    b'From: "M\xfcller" <m@example.de>\nSubject: Gr\xc3\xbc\xc3\x9fe\n\nHallo\n',
]
_BOGUS_CHARSETS = [
    b"",
    b'"',
    b"x-bogus",
    b"utf-8\x00",
    b"punycode",
    b"idna",
    b"unicode_escape",
    b"base64",
    b"rot13",
    b"utf-7",
    b"utf-16",
    b"utf-32-be",
    b"iso-2022-jp",
    b"ks_c_5601-1987",
    b"unknown-8bit",
    b"windows-1252'nl'",
    b"\xff\xfe",
]
_CHARSET_RE = re.compile(rb"(charset=\"?|=\?)[A-Za-z0-9_\-]*")


def _seeds() -> list[bytes]:
    """Corpus messages when the shared corpus is there; built-in ones always."""
    seeds = list(_BUILT_IN_SEEDS)
    if CORPUS.is_dir():
        seeds += [path.read_bytes() for path in sorted(CORPUS.rglob("*.eml"))]
    return seeds


SEEDS = _seeds()


def _parse_within_limits(raw: bytes) -> None:
    """The one property: a mail or MailParseError, within a few seconds."""
    started = time.perf_counter()
    try:
        mail = parse_mail(raw)
    except MailParseError as exc:
        assert str(exc)
    else:
        assert isinstance(mail, InboundMail)
        _assert_printable(mail)
    assert time.perf_counter() - started < SLOWEST_PARSE_SECONDS


def _assert_printable(mail: InboundMail) -> None:
    """Every text the parser hands on can be written out as UTF-8."""
    texts = [mail.subject, mail.from_addr, mail.from_name, mail.plain, mail.html]
    texts += [*mail.to, *mail.cc, *mail.reply_to, mail.message_id]
    texts += [a.filename for a in mail.attachments]
    texts += [value for values in mail.headers.values() for value in values]
    for text in texts:
        text.encode("utf-8")


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    raw = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        mutation = draw(st.sampled_from(_MUTATIONS))
        raw = mutation(draw, raw)
    return raw


def _truncate(draw: st.DrawFn, raw: bytes) -> bytes:
    return raw[: draw(st.integers(0, len(raw)))]


def _flip_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    if not raw:
        return raw
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 16))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] ^= draw(st.integers(1, 255))
    return bytes(data)


def _drop_boundaries(draw: st.DrawFn, raw: bytes) -> bytes:
    lines = raw.splitlines(keepends=True)
    keep_closing = draw(st.booleans())
    return b"".join(
        line
        for line in lines
        if not line.startswith(b"--")
        or (keep_closing and line.rstrip().endswith(b"--"))
    )


def _duplicate_headers(draw: st.DrawFn, raw: bytes) -> bytes:
    head, separator, body = raw.partition(b"\n\n")
    lines = head.splitlines(keepends=True)
    if not lines:
        return raw
    line = draw(st.sampled_from(lines))
    copies = draw(st.integers(2, 50))
    return line * copies + head + separator + body


def _bogus_charset(draw: st.DrawFn, raw: bytes) -> bytes:
    charset = draw(st.sampled_from(_BOGUS_CHARSETS))
    return _CHARSET_RE.sub(lambda match: match[1] + charset, raw)


def _huge_header_line(draw: st.DrawFn, raw: bytes) -> bytes:
    size = draw(st.sampled_from([1_000, 50_000, 300_000]))
    line = draw(
        st.sampled_from(
            [
                b"Subject: " + b"=?utf-8?B?w6k=?= " * (size // 17),
                b"Subject: " + b"=?" * (size // 2),
                b"To: " + b"a@b.nl, " * (size // 8),
                b"To: " + b'"' * size,
                b"Content-Type: multipart/mixed; " + b"a*0*=x; " * (size // 8),
                b"Content-Disposition: attachment; filename=" + b"\xe9" * size,
                b"X-Long: " + b"x" * size,
                b"References: " + b"<a@b> " * (size // 6),
            ]
        )
    )
    return line + b"\r\n" + raw


def _deep_nesting(draw: st.DrawFn, raw: bytes) -> bytes:
    depth = draw(st.sampled_from([10, 200, 2_000]))
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i)
        for i in range(depth)
    )
    return b"From: a@b.nl\n" + opening + raw


_MUTATIONS = [
    _truncate,
    _flip_bytes,
    _drop_boundaries,
    _duplicate_headers,
    _bogus_charset,
    _huge_header_line,
    _deep_nesting,
]
_FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_FUZZ
@given(st.binary(max_size=4_096))
def test_random_bytes_give_a_mail_or_a_parse_error(raw: bytes) -> None:
    """Arbitrary bytes never raise anything but MailParseError."""
    _parse_within_limits(raw)


@_FUZZ
@given(st.binary(max_size=512).map(lambda body: b"From: a@b.nl\r\n" + body))
def test_random_bytes_after_a_header_give_a_mail_or_a_parse_error(
    raw: bytes,
) -> None:
    """A header line followed by arbitrary bytes never crashes the parser."""
    _parse_within_limits(raw)


@_FUZZ
@given(_mutated())
def test_mutated_messages_give_a_mail_or_a_parse_error(raw: bytes) -> None:
    """Truncated, flipped, unbounded, repeated, mislabelled or huge MIME is safe."""
    _parse_within_limits(raw)


def test_every_seed_message_parses() -> None:
    """The unmutated seeds are all readable mails."""
    for raw in SEEDS:
        assert isinstance(parse_mail(raw), InboundMail)
