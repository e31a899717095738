"""parse_mail decodes headers, names and bodies whatever their labels say."""

from __future__ import annotations

import time

import pytest

from connector.mail import MailParseError, parse_mail

_NESTED_3000_DEEP = b"".join(
    b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (depth, depth)
    for depth in range(3000)
)


def _mail(headers: bytes, body: bytes = b"Hallo\r\n") -> bytes:
    return b"From: Jan <jan@example.nl>\r\n" + headers + b"\r\n" + body


def test_encoded_words_split_inside_a_character_are_joined() -> None:
    """A UTF-8 character cut over two encoded words decodes as one character."""
    mail = parse_mail(_mail(b"Subject: =?utf-8?B?8J+O?=\r\n =?utf-8?B?iQ==?= ok\r\n"))

    assert mail.subject == "🎉 ok"


def test_folded_subject_keeps_the_space_before_an_encoded_word() -> None:
    """Unfolding keeps the white space between plain text and an encoded word."""
    mail = parse_mail(_mail(b"Subject: Re: storing\r\n =?utf-8?Q?caf=C3=A9?=\r\n"))

    assert mail.subject == "Re: storing café"


def test_malformed_encoded_word_stays_as_written() -> None:
    """An encoded word that is no base64 is left alone, not dropped."""
    mail = parse_mail(_mail(b"Subject: =?utf-8?B?!!!?= ketel\r\n"))

    assert mail.subject == "=?utf-8?B?!!!?= ketel"


def test_raw_8bit_headers_are_read_as_utf8_else_windows_1252() -> None:
    """Unencoded 8-bit header bytes become text, never surrogates."""
    mail = parse_mail(
        b'From: "M\xc3\xbcller" <m@example.de>\r\nTo: "Jos\xe9" <j@example.nl>\r\n'
        b"Subject: Gr\xfc\xdfe\r\n\r\nHallo\r\n"
    )

    assert (mail.from_name, mail.subject) == ("Müller", "Grüße")
    assert mail.header("to") == '"José" <j@example.nl>'


def test_utf8_body_labelled_latin1_is_read_as_utf8() -> None:
    """Valid UTF-8 under a single-byte label is the common mislabel."""
    mail = parse_mail(
        _mail(b"Content-Type: text/plain; charset=iso-8859-1\r\n", b"Caf\xc3\xa9\r\n")
    )

    assert mail.plain.strip() == "Café"


@pytest.mark.parametrize("charset", [b"base64", b"punycode", b"x-bogus", b'"'])
def test_body_in_an_unusable_charset_still_parses(charset: bytes) -> None:
    """A charset that is unknown or no text encoding falls back, not fails."""
    raw = _mail(b"Content-Type: text/plain; charset=" + charset + b"\r\n", b"\xe9t\xe9")

    assert parse_mail(raw).plain == "été"


def test_rfc2231_file_name_in_continuations_is_decoded() -> None:
    """filename*0*/filename*1* with a charset give one decoded file name."""
    raw = _mail(
        b"Content-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*0*=utf-8''R%C3%A9;\r\n"
        b" filename*1*=sum%C3%A9.pdf\r\n",
        b"%PDF",
    )

    assert [a.filename for a in parse_mail(raw).attachments] == ["Résumé.pdf"]


def test_winmail_dat_is_kept_but_marked_as_tnef() -> None:
    """TNEF is passed over: an attachment flagged tnef, the body still read."""
    raw = (
        b"From: a@example.nl\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nKetel lekt\r\n"
        b"--b\r\nContent-Type: application/ms-tnef; name=winmail.dat\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\neJ8+Ig==\r\n--b--\r\n"
    )

    mail = parse_mail(raw)

    assert mail.plain.strip() == "Ketel lekt"
    assert [(a.filename, a.tnef) for a in mail.attachments] == [("winmail.dat", True)]


def test_base64_attached_message_is_decoded_not_read_as_body() -> None:
    """A base64 message/rfc822 part yields the message, not its base64 text."""
    inner = b"From: x@example.nl\r\nSubject: binnen\r\n\r\nOud bericht\r\n"
    raw = (
        b"From: a@example.nl\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"RnJvbTogeEBleGFtcGxlLm5sDQpTdWJqZWN0OiBiaW5uZW4NCg0KT3VkIGJlcmljaHQNCg==\r\n"
        b"--b--\r\n"
    )

    mail = parse_mail(raw)

    assert [a.data for a in mail.attachments] == [inner]
    assert mail.plain.strip() == "Oud bericht"


def test_obsolete_space_before_colon_is_a_header() -> None:
    """RFC 5322 obsolete syntax ``Subject  : x`` still names the field."""
    mail = parse_mail(b"From  : jan@example.nl\r\nSubject   : Lek\r\n\r\nHallo\r\n")

    assert (mail.from_addr, mail.subject) == ("jan@example.nl", "Lek")


def test_address_header_too_deeply_nested_reads_as_empty() -> None:
    """Thousands of nested comments in To cost the recipients, not the mail."""
    mail = parse_mail(_mail(b"To: " + b"(" * 5_000 + b"\r\nSubject: lek\r\n"))

    assert (mail.to, mail.subject) == ((), "lek")


def test_recipients_without_a_domain_are_left_out() -> None:
    """Group names and bare local parts are no address a mail can go to."""
    mail = parse_mail(
        _mail(b"To: undisclosed-recipients:;, matmail, Piet <piet@example.nl>\r\n")
    )

    assert mail.to == ("piet@example.nl",)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b"just some words\r\nand more\r\n", "no header lines"),
        (b"From: a@b\r\n" + _NESTED_3000_DEEP, "RecursionError"),
        (b"From: a@b\r\nContent-Type: text/plain; " + b"a=b; " * 20_000, "bytes long"),
    ],
)
def test_unreadable_bytes_raise_mail_parse_error_with_a_reason(
    raw: bytes, reason: str
) -> None:
    """No headers, no bytes, runaway nesting or parameters: the error says which."""
    started = time.perf_counter()

    with pytest.raises(MailParseError, match=reason):
        parse_mail(raw)

    assert time.perf_counter() - started < 5
