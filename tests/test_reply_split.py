"""split_reply and html_reply_to_text, on Dutch and English cases and on the corpus."""

from __future__ import annotations

import email
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from connector.cleaning import ReplySplit, html_reply_to_text, split_reply

MINIMUM_AGREEMENT = 0.90


def _corpus() -> Path:
    """The shared corpus next to the project, or $MAIL2WO_CORPUS; skip if absent."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "corpus"]
    if os.environ.get("MAIL2WO_CORPUS"):
        candidates.append(Path(os.environ["MAIL2WO_CORPUS"]))
    for candidate in candidates:
        if (candidate / "github-email_reply_parser" / "expected.json").is_file():
            return candidate
    pytest.skip("reply corpus not found (set MAIL2WO_CORPUS)")


def _expected(folder: str) -> dict[str, Any]:
    path = _corpus() / folder / "expected.json"
    expected: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return expected


def _first_text_part(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes())
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8", "replace")
    raise AssertionError(f"{path.name}: no text/plain part")


def _lines_stripped(text: str) -> str:
    """Normalisation of the Ruby gem: CRLF to LF, trailing spaces off every line."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def _no_whitespace(text: str) -> str:
    return re.sub(r"\s", "", text)


# Dutch clients


def test_outlook_dutch_header_block_starts_quoted_history() -> None:
    """A Van:/Verzonden:/Aan:/Onderwerp: block starts the quoted history."""
    text = (
        "De storing is verholpen.\n"
        "\n"
        "Van: Piet de Vries <piet@klant.nl>\n"
        "Verzonden: maandag 3 november 2026 10:12\n"
        "Aan: Service <service@installateur.nl>\n"
        "Onderwerp: Storing CV-ketel\n"
        "\n"
        "De ketel lekt."
    )

    split = split_reply(text)

    assert split.reply == "De storing is verholpen."
    assert split.quoted.startswith("Van: Piet de Vries")
    assert split.quoted.endswith("De ketel lekt.")


def test_outlook_separator_line_above_header_block_belongs_to_quote() -> None:
    """The ____ rule Outlook puts above the Van: block goes with the quote."""
    text = (
        "Prima, tot dan.\n"
        "________________________________\n"
        "Van: Jan <jan@x.nl>\n"
        "Verzonden: dinsdag 4 november 2026 08:00\n"
        "Aan: Piet <piet@y.nl>\n"
        "Onderwerp: Afspraak\n"
        "\n"
        "Kan het morgen?"
    )

    split = split_reply(text)

    assert split.reply == "Prima, tot dan."
    assert split.quoted.startswith("________________________________\nVan: Jan")


def test_dutch_gmail_attribution_starts_quoted_history() -> None:
    """'Op … schreef … :' starts the quoted history."""
    text = (
        "Graag donderdag.\n\n"
        "Op ma 3 nov. 2026 om 10:12 schreef Jan <jan@x.nl>:\n\n"
        "> Wanneer schikt het?\n"
    )

    split = split_reply(text)

    assert split.reply == "Graag donderdag."
    assert split.quoted.startswith("Op ma 3 nov. 2026")


def test_dutch_attribution_wrapped_over_two_lines_is_one_header() -> None:
    """An 'Op … schreef' attribution wrapped after '<' is cut as a whole."""
    text = (
        "Graag donderdag.\n\n"
        "Op ma 3 nov. 2026 om 10:12 schreef Jan Jansen <\n"
        "jan.jansen@voorbeeld.nl>:\n\n"
        "> Wanneer schikt het?\n"
    )

    split = split_reply(text)

    assert split.reply == "Graag donderdag."
    assert "jan.jansen@voorbeeld.nl" not in split.reply


def test_apple_mail_dutch_attribution_starts_quoted_history() -> None:
    """Apple Mail's 'Op … heeft … het volgende geschreven:' starts the quote."""
    text = (
        "Akkoord.\n\n"
        "Op 3 nov. 2026 om 10:12 heeft Jan <jan@x.nl> het volgende geschreven:\n\n"
        "Offerte in de bijlage."
    )

    assert split_reply(text).reply == "Akkoord."


def test_oorspronkelijk_bericht_separator_starts_quoted_history() -> None:
    """'-----Oorspronkelijk bericht-----' starts the quoted history."""
    text = (
        "Zie onderstaande melding.\n\n"
        "-----Oorspronkelijk bericht-----\n"
        "Van: klant@x.nl\n"
        "Verzonden: 3 november 2026\n\n"
        "Lekkage in de kelder."
    )

    split = split_reply(text)

    assert split.reply == "Zie onderstaande melding."
    assert split.quoted.startswith("-----Oorspronkelijk bericht-----")


def test_verstuurd_vanaf_mijn_iphone_is_signature() -> None:
    """'Verstuurd vanaf mijn iPhone' and what follows it is the signature."""
    split = split_reply("Ik ben er om 14:00.\n\nVerstuurd vanaf mijn iPhone\n")

    assert split.reply == "Ik ben er om 14:00."
    assert split.signature == "Verstuurd vanaf mijn iPhone"


def test_dutch_time_window_lines_are_not_a_header_block() -> None:
    """'Datum:/Van:/Tot:' lines with times in a request are not a quote header."""
    text = "Graag een monteur.\nDatum: 5 november\nVan: 08:00\nTot: 12:00\n"

    split = split_reply(text)

    assert split.quoted == ""
    assert split.reply.endswith("Tot: 12:00")


def test_closing_without_contact_block_stays_in_reply() -> None:
    """'Met vriendelijke groet,' and a bare name stay in the reply."""
    text = "De ketel doet het weer.\n\nMet vriendelijke groet,\nJan"

    split = split_reply(text)

    assert split.reply == text
    assert split.signature == ""


def test_closing_followed_by_contact_block_moves_block_to_signature() -> None:
    """A contact block after the closing is the signature; the closing stays."""
    text = (
        "De ketel doet het weer.\n\n"
        "Met vriendelijke groet,\n\n"
        "Jan Jansen\n"
        "Installatiebedrijf Jansen B.V.\n"
        "T: 030-1234567\n"
        "jan@jansen.nl"
    )

    split = split_reply(text)

    assert split.reply == "De ketel doet het weer.\n\nMet vriendelijke groet,"
    assert split.signature.startswith("Jan Jansen")
    assert split.signature.endswith("jan@jansen.nl")


# English clients


def test_english_outlook_header_block_starts_quoted_history() -> None:
    """A From:/Sent:/To:/Subject: block starts the quoted history."""
    text = (
        "Done.\n\n"
        "From: Service <service@example.com>\n"
        "Sent: Monday, November 3, 2026 10:12 AM\n"
        "To: Jan\n"
        "Subject: Ticket 123\n\n"
        "Please confirm."
    )

    assert split_reply(text).reply == "Done."


def test_on_wrote_attribution_wrapped_over_two_lines_is_one_header() -> None:
    """'On … wrote:' wrapped over two lines starts the quote at its first line."""
    text = (
        ":+1:\n\n"
        "On Tue, Sep 25, 2012 at 8:59 AM, Chris Wanstrath\n"
        "<notifications@github.com>wrote:\n\n"
        "> Steps 0-2 are in prod.\n"
    )

    split = split_reply(text)

    assert split.reply == ":+1:"
    assert split.quoted.startswith("On Tue, Sep 25")


def test_original_message_separator_starts_quoted_history() -> None:
    """'-----Original Message-----' starts the quoted history."""
    text = "Hello\n\n-----Original Message-----\nFrom: bob\nSubject: Test\n\nHi"

    assert split_reply(text).reply == "Hello"


def test_sent_from_my_mobile_device_is_signature() -> None:
    """'Sent from my <device>' of up to a few words is the signature."""
    split = split_reply("On my way.\n\nSent from my Verizon Wireless BlackBerry")

    assert split.reply == "On my way."
    assert split.signature == "Sent from my Verizon Wireless BlackBerry"


def test_sentence_starting_with_sent_from_my_is_kept() -> None:
    """A sentence that starts with 'Sent from my' is not a sign-off."""
    text = "Here it is.\n\nSent from my desk, is much easier then my mobile phone."

    assert split_reply(text).reply == text


def test_dash_dash_space_delimiter_starts_signature() -> None:
    """A line '-- ' starts the signature; '--' inside a line does not."""
    split = split_reply("Fixed -- see the log.\n\n-- \nrick\n")

    assert split.reply == "Fixed -- see the log."
    assert split.signature == "-- \nrick"


def test_quoted_lines_start_quoted_history() -> None:
    """Lines starting with '>' are quoted history."""
    split = split_reply("Yes.\n> Can you come on Friday?\n> Jan")

    assert split.reply == "Yes."
    assert split.quoted == "> Can you come on Friday?\n> Jan"


def test_bottom_posted_reply_below_the_quote_is_the_reply() -> None:
    """When the body opens with the quote, the text below it is the reply."""
    text = "On 04/02/2012 06:26 PM, Megan wrote:\n> Hi\nHello"

    split = split_reply(text)

    assert split.reply == "Hello"
    assert split.quoted == "On 04/02/2012 06:26 PM, Megan wrote:\n> Hi"


def test_bottom_posted_reply_after_blank_lines_below_the_attribution() -> None:
    """Blank lines between the attribution and the '>' lines still form one block."""
    text = "On Mon, Jan 5, 2026, Bob wrote:\n\n\n\n> Hi\n>\n\nHello Bob"

    assert split_reply(text).reply == "Hello Bob"


def test_text_without_quotes_or_signature_is_returned_unchanged() -> None:
    """A plain message comes back whole, with nothing quoted and no signature."""
    assert split_reply("Here’s a test.") == ReplySplit("Here’s a test.", "", "")


def test_crlf_line_endings_are_understood() -> None:
    """Windows line endings split the same as Unix ones."""
    split = split_reply("Ok.\r\n\r\nOn Mon, Jan 5, 2026, Bob wrote:\r\n> hi\r\n")

    assert split.reply == "Ok."


# Corpus


def _reply_cases() -> list[tuple[str, str, str, str]]:
    """(corpus, case, expected, actual) for every reply case with an expectation."""
    root = _corpus()
    cases: list[tuple[str, str, str, str]] = []

    for name, expected in _expected("github-email_reply_parser").items():
        if "visible_text" in expected:
            body = (root / "github-email_reply_parser" / name).read_text("utf-8")
            actual = _lines_stripped(split_reply(body).reply)
            wanted = _lines_stripped(expected["visible_text"])
            cases.append(("github-email_reply_parser", name, wanted, actual))

    for name, expected in _expected("mailgun-talon").items():
        path = root / "mailgun-talon" / name
        if name.startswith("standard_replies/"):
            body = _first_text_part(path)
            actual = split_reply(body).reply.strip()
            cases.append(
                ("talon standard_replies", name, expected["reply_text"], actual)
            )
        elif name.startswith("html_replies/"):
            actual = html_reply_to_text(path.read_text("utf-8"))
            wanted = _no_whitespace(expected["reply_text"])
            cases.append(("talon html_replies", name, wanted, _no_whitespace(actual)))

    return cases


def test_reply_agreement_with_corpus_is_at_least_90_percent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At least 90 % of the corpus reply cases give the expected reply."""
    cases = _reply_cases()
    per_corpus: dict[str, list[bool]] = {}
    for corpus, _, wanted, actual in cases:
        per_corpus.setdefault(corpus, []).append(wanted == actual)
    agreed = sum(wanted == actual for _, _, wanted, actual in cases)

    with capsys.disabled():
        for corpus, results in per_corpus.items():
            print(f"\n{corpus}: {sum(results)}/{len(results)} agree")
        print(f"reply agreement: {agreed}/{len(cases)} = {agreed / len(cases):.1%}")
        for corpus, name, wanted, actual in cases:
            if wanted != actual:
                print(f"  differs: {corpus} {name}: {actual!r} != {wanted!r}")

    assert len(cases) == 29
    assert agreed / len(cases) >= MINIMUM_AGREEMENT


@pytest.mark.parametrize(
    ("name", "reply_pattern", "quoted_pattern"),
    [
        ("email_1_3.txt", r"^Oh thanks.\n\nHaving", r"^On [^\:]+\:"),
        ("email_1_4.txt", r"^Awesome", r"^On(.|\n)*Loader"),
        ("email_1_6.txt", r"^I get", r"^On(.|\n)*Was this"),
        ("email_1_7.txt", r":\+1:", r"^On(.|\n)*Steps 0-2"),
        ("greedy_on.txt", r"^On your remote host", r"^On 9 Jan 2014"),
        ("email_one_is_not_on.txt", r"One outstanding question", r"^On Oct 1, 2012"),
    ],
)
def test_reply_parser_fragments_split_where_the_gem_splits(
    name: str, reply_pattern: str, quoted_pattern: str
) -> None:
    """The reply is the gem's first fragment and the quote starts at its second."""
    body = (_corpus() / "github-email_reply_parser" / name).read_text("utf-8")

    split = split_reply(body)

    assert re.search(reply_pattern, split.reply)
    assert re.match(quoted_pattern, split.quoted.replace("\r\n", "\n"))


@pytest.mark.parametrize(
    "name", ["email_1_5.txt", "email_sig_delimiter_in_middle_of_line.txt"]
)
def test_reply_parser_single_fragment_bodies_are_kept_whole(name: str) -> None:
    """Bullets and a mid-line '--' do not split a single-fragment body."""
    body = (_corpus() / "github-email_reply_parser" / name).read_text("utf-8")

    split = split_reply(body)

    assert split.reply == _lines_stripped(body)
    assert (split.quoted, split.signature) == ("", "")


def test_reply_parser_signature_keeps_its_delimiter() -> None:
    """correct_sig.txt: the signature is '-- \\nrick', delimiter included."""
    body = (_corpus() / "github-email_reply_parser" / "correct_sig.txt").read_text()

    assert re.match(r"^-- \nrick", split_reply(body).signature)


@pytest.mark.parametrize("name", ["email_long_quote.txt", "pathological.txt"])
def test_large_bodies_split_in_well_under_a_second(name: str) -> None:
    """The 767 KB long quote and the pathological body split in under 0.25 s."""
    body = (_corpus() / "github-email_reply_parser" / name).read_text("utf-8")

    started = time.perf_counter()
    split = split_reply(body)
    elapsed = time.perf_counter() - started

    assert elapsed < 0.25
    assert split.reply


def test_talon_signature_cases_never_lose_text_talon_keeps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Signature removal never cuts into text talon keeps as the message."""
    root = _corpus() / "mailgun-talon"
    cases = {
        name: expected
        for name, expected in _expected("mailgun-talon").items()
        if name.startswith("signature/emails/stripped/")
    }
    agreed = 0

    for name, expected in cases.items():
        split = split_reply((root / name).read_text("utf-8"))
        assert split.reply.startswith(expected["text_without_signature"].strip())
        agreed += split.reply == expected["text_without_signature"].strip()

    with capsys.disabled():
        print(f"\ntalon signature cases: {agreed}/{len(cases)} agree exactly")
    assert agreed >= 1


def test_talon_signature_sample_bodies_do_not_crash() -> None:
    """The sample bodies with signatures (non-ASCII among them) split cleanly."""
    for path in sorted(
        (_corpus() / "mailgun-talon" / "signature" / "emails" / "P").iterdir()
    ):
        split = split_reply(path.read_text("utf-8", errors="replace"))
        assert split.reply or split.quoted or split.signature


def test_talon_html_quote_under_olk_src_body_section_is_removed() -> None:
    """Outlook for Mac: everything from OLK_SRC_BODY_SECTION on is quoted."""
    html = (_corpus() / "mailgun-talon" / "OLK_SRC_BODY_SECTION.html").read_text()

    assert html_reply_to_text(html) == "Reply"


def test_talon_html_quote_after_hr_with_header_lines_is_removed() -> None:
    """A quote below <hr> and 'From:/To:' lines is removed, the reply kept."""
    html = (_corpus() / "mailgun-talon" / "reply-separated-by-hr.html").read_text()

    reply = html_reply_to_text(html)

    assert reply.startswith("Hi\nthere")
    assert "Hello" not in reply
    assert "From" not in reply


def test_talon_quotation_sharing_a_block_with_the_reply_is_removed() -> None:
    """A Yahoo '--- On … wrote:' attribution in the same block as the reply goes."""
    path = _corpus() / "mailgun-talon" / "reply-quotations-share-block.eml"
    message = email.message_from_bytes(path.read_bytes())
    html_part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    html = html_part.get_payload(decode=True)
    assert isinstance(html, bytes)

    from_plain = split_reply(_first_text_part(path)).reply
    from_html = html_reply_to_text(html.decode("utf-8"))

    for reply in (from_plain, from_html):
        assert reply.startswith("Hi Katharine.")
        assert "From" not in reply
        assert "wrote" not in reply
