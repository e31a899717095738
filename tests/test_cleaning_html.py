"""html_to_text and the HTML side of html_reply_to_text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.cleaning import html_reply_to_text, html_to_text
from connector.cleaning.html import html_text_and_reply
from connector.mail import parse_mail

OUTLOOK_HEAD = """<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta name=Generator content="Microsoft Word 15 (filtered medium)">
<style><!--
@font-face {font-family:Calibri; panose-1:2 15 5 2 2 2 4 3 2 4;}
p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm; font-family:"Calibri";}
--></style>
<!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--></head><body lang=NL>"""

OUTLOOK_CELL = (
    "<td width=120 valign=top style='border:solid windowtext 1.0pt;"
    "padding:0cm 5.4pt 0cm 5.4pt'><p class=MsoNormal>"
    "<span style='font-size:10.0pt'>{}<o:p></o:p></span></p></td>"
)


def _outlook_row(*cells: str) -> str:
    return "<tr>" + "".join(OUTLOOK_CELL.format(cell) for cell in cells) + "</tr>"


def _outlook_part(rows: int) -> str:
    table = "".join(
        _outlook_row(f"WO-2026-{n:06d}", f"Kerkstraat {n}", "1234 AB", "Utrecht")
        for n in range(rows)
    )
    return (
        f"{OUTLOOK_HEAD}<div class=WordSection1>"
        "<p class=MsoNormal>Beste collega,<o:p></o:p></p>"
        "<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
        f"<table class=MsoNormalTable border=0><tbody>{table}</tbody></table>"
        "<p class=MsoNormal>Met vriendelijke groet,<o:p></o:p></p></div></body></html>"
    )


def _assert_tidy(text: str) -> None:
    lines = text.split("\n")
    assert all(line == line.rstrip() for line in lines), "trailing whitespace"
    assert all(line.strip() or not line for line in lines), "whitespace-only line"
    assert "\n\n\n" not in text, "more than one blank line in a row"
    assert text == text.strip("\n"), "leading or trailing blank line"


def test_outlook_table_row_is_one_line_with_tab_separated_cells() -> None:
    """Each row of an MsoNormalTable is one line, its cells joined by a tab."""
    text = html_to_text(_outlook_part(rows=3))

    assert "WO-2026-000001\tKerkstraat 1\t1234 AB\tUtrecht" in text.split("\n")


def test_paragraphs_and_breaks_inside_a_data_cell_become_spaces() -> None:
    """<p>, <div> and <br> inside a cell of a data row give a space, not a newline."""
    html = (
        "<table><tr><td><p>Kerkstraat</p><p>12</p></td>"
        "<td><div>1234</div><div>AB</div></td><td>Utrecht<br>NL</td></tr></table>"
    )

    assert html_to_text(html) == "Kerkstraat 12\t1234 AB\tUtrecht NL"


def test_single_cell_layout_table_keeps_its_line_breaks() -> None:
    """A one-cell layout table (signatures, wrappers) keeps paragraphs as lines."""
    html = "<table><tr><td><p>Jan Jansen</p><p>T: 030-1234567</p></td></tr></table>"

    assert html_to_text(html) == "Jan Jansen\n\nT: 030-1234567"


def test_row_holding_a_nested_table_is_layout_not_data() -> None:
    """Cells of a row that holds a nested table are blocks, not tab-joined."""
    html = (
        "<table><tr><td>Menu</td><td><table><tr><td>a</td><td>b</td></tr></table>"
        "<p>Body text</p></td></tr></table>"
    )

    assert html_to_text(html) == "Menu\na\tb\n\nBody text"


def test_style_block_and_conditional_comments_do_not_leak() -> None:
    """No CSS from <style> and nothing from <!--[if mso]> comments in the text."""
    html = (
        OUTLOOK_HEAD
        + "<!--[if mso]><style>td {font-family:Arial}</style><![endif]-->"
        + "<style type='text/css'>p {margin:0}</style>"
        + "<p class=MsoNormal>Storing melden<o:p></o:p></p></body></html>"
    )

    text = html_to_text(html)

    assert text == "Storing melden"


def test_outlook_support_lists_bullet_becomes_a_dash() -> None:
    """Outlook's <![if !supportLists]> bullet glyph becomes '- ' and does not leak."""
    html = (
        "<p class=MsoListParagraph><![if !supportLists]><span style='font-family:"
        "Symbol'>·<span style='font:7.0pt'>&nbsp;&nbsp;&nbsp; </span></span>"
        "<![endif]>Ketel ontluchten<o:p></o:p></p>"
    )

    text = html_to_text(html)

    assert text == "- Ketel ontluchten"


def test_no_runs_of_blank_lines_and_no_whitespace_only_lines() -> None:
    """Empty Outlook paragraphs collapse to at most one blank line."""
    empty = "<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
    html = (
        f"<p class=MsoNormal>Boven</p>{empty * 5}<div>&nbsp; </div>{empty}<p>Onder</p>"
    )

    text = html_to_text(html)

    assert text == "Boven\n\nOnder"
    _assert_tidy(text)


def test_br_separates_lines_instead_of_gluing_words() -> None:
    """<br> ends the line, so 'a<br>b' never reads 'ab'."""
    html = "Verzonden: 3 nov 2026 10:12<br>Aan: service@x.nl<br><br>Hallo"

    assert (
        html_to_text(html) == "Verzonden: 3 nov 2026 10:12\nAan: service@x.nl\n\nHallo"
    )


def test_trailing_br_in_a_block_adds_no_extra_line() -> None:
    """'<div>Alex<br></div>' is one line, '<div><br></div>' an empty one."""
    html = (
        "<div>Hi</div><div><br></div><div>Thanks,</div><div>Alex<br></div><div>x</div>"
    )

    assert html_to_text(html) == "Hi\n\nThanks,\nAlex\nx"


def test_nbsp_becomes_a_plain_space() -> None:
    """&nbsp; turns into an ordinary space; none is left as U+00A0."""
    text = html_to_text("<p>1234&nbsp;AB&nbsp;&nbsp;Utrecht&nbsp;</p>")

    assert text == "1234 AB  Utrecht"


def test_nbsp_indentation_at_line_start_is_dropped() -> None:
    """Lines do not start with spaces left over from &nbsp; indentation."""
    assert html_to_text("<p>&nbsp;&nbsp;Kerkstraat 12</p>") == "Kerkstraat 12"


def test_whitespace_collapses_as_in_a_browser() -> None:
    """Runs of spaces, tabs and newlines in the source become one space."""
    assert html_to_text("<p>  Kerk\n\t straat   12 </p>") == "Kerk straat 12"


def test_list_items_get_a_dash_and_nested_items_an_indent() -> None:
    """<li> becomes '- item'; a nested list is indented by two spaces."""
    html = "<ul><li>Ketel</li><li><p>Radiator</p><ul><li>Kraan</li></ul></li></ul>"

    assert html_to_text(html) == "- Ketel\n- Radiator\n  - Kraan"


def test_blockquote_lines_are_prefixed_per_level() -> None:
    """Every line inside <blockquote> starts with '> ', once per level."""
    html = (
        "Ja.<blockquote>Kan het?<br>Groet<blockquote>Eerder</blockquote></blockquote>"
    )

    assert html_to_text(html) == "Ja.\n> Kan het?\n> Groet\n> > Eerder"


def test_preformatted_text_keeps_its_lines_and_indentation() -> None:
    """<pre> keeps newlines and leading spaces."""
    assert html_to_text("<pre>a\n    b</pre>") == "a\n    b"


def test_hidden_preheader_is_dropped() -> None:
    """Elements styled display:none do not appear in the text."""
    html = "<div style='display: none'>Preview text</div><p>Body</p>"

    assert html_to_text(html) == "Body"


@pytest.mark.parametrize(
    "html",
    [
        "",
        "   ",
        "<<<>>>",
        "\x00\x01\x02\xff\ufffe",
        "\ud800 lone surrogate",
        "<table><td>a<td>b<tr><td>c",
        "<div>" * 20_000 + "deep",
        "<blockquote>" * 500 + "quoted",
        "</p></div></table></blockquote>",
        "<!--[if mso]> never closed",
        "<pre>" + "x\n" * 10_000,
    ],
)
def test_never_crashes_on_broken_input(html: str) -> None:
    """Empty, broken, deeply nested or binary input gives text, not an exception."""
    text = html_to_text(html)
    reply = html_reply_to_text(html)

    _assert_tidy(text)
    assert isinstance(reply, str)


_MARKUP_PIECES = [
    "<p>", "</p>", "<div>", "</div>", "<br>", "<table>", "<tr>", "<td>", "</td>",
    "<ul>", "<li>", "<blockquote>", "</blockquote>", "<pre>", "</pre>", "<hr>",
    "<style>", "</style>", "<!--[if mso]>", "<![endif]-->", "<![if !supportLists]>",
    "<![endif]>", "&nbsp;", " ", "\n", "\t", "a", "b c", ">", "<", "\xa0", "\u200b",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_MARKUP_PIECES)).map("".join) | st.text())
def test_any_input_gives_tidy_text(html: str) -> None:
    """For any input the output has no trailing spaces or blank-line runs."""
    _assert_tidy(html_to_text(html))


def test_deeply_nested_markup_converts_in_about_linear_time() -> None:
    """200,000 nested <div> (quadratic for the parser) convert in under 3 s."""
    started = time.perf_counter()
    text = html_to_text("<div>" * 200_000 + "diep")

    assert text == "diep"
    assert time.perf_counter() - started < 3


def test_large_legacy_table_without_end_tags_keeps_its_rows() -> None:
    """Unclosed <td>/<tr> do not count as nesting, so big old tables stay intact."""
    html = "<table>" + "<tr><td>WO-1<td>Kerkstraat 1<td>Utrecht" * 3_000 + "</table>"

    lines = html_to_text(html).split("\n")

    assert len(lines) == 3_000
    assert set(lines) == {"WO-1\tKerkstraat 1\tUtrecht"}


def test_30_kb_outlook_part_converts_in_a_few_milliseconds() -> None:
    """A 30 KB Outlook part converts in under 10 ms (target about 2 ms)."""
    html = _outlook_part(rows=40)
    assert len(html) > 25_000

    html_to_text(html)
    started = time.perf_counter()
    for _ in range(10):
        html_to_text(html)
    per_part = (time.perf_counter() - started) / 10

    assert per_part < 0.010


# Reply mode


def test_reply_drops_gmail_quote_container() -> None:
    """div.gmail_quote (attribution and quote) is not part of the reply."""
    html = (
        "<div dir=ltr>Graag vrijdag.</div><div class=gmail_quote>"
        "<div class=gmail_attr>Op ma 3 nov. 2026 schreef Jan:</div>"
        "<blockquote class=gmail_quote>Wanneer?</blockquote></div>"
    )

    assert html_reply_to_text(html) == "Graag vrijdag."


def test_reply_drops_cited_blockquote_and_keeps_text_below_it() -> None:
    """blockquote type=cite is removed; a bottom-posted answer below it stays."""
    html = (
        "<div class=moz-cite-prefix>On 3-11-2026 Jan wrote:</div>"
        "<blockquote type=cite>Wanneer?</blockquote><div>Vrijdag om 9 uur.</div>"
    )

    assert html_reply_to_text(html) == "Vrijdag om 9 uur."


def test_reply_stops_at_outlook_div_rply_fwd_msg() -> None:
    """Everything from Outlook's divRplyFwdMsg on is history, at any depth."""
    html = (
        "<div>Akkoord.</div><hr style='display:inline-block'>"
        "<div id=divRplyFwdMsg><b>Van:</b> Jan<br><b>Verzonden:</b> maandag</div>"
        "<div>Oude tekst</div>"
    )

    assert html_reply_to_text(html) == "Akkoord."


def test_reply_stops_at_appendonsend() -> None:
    """Outlook's appendonsend marker ends the reply."""
    html = "<div>Ok.</div><div id=appendonsend></div><div>Van: Jan</div><p>Oud</p>"

    assert html_reply_to_text(html) == "Ok."


def test_reply_cuts_at_border_top_div_holding_outlook_header() -> None:
    """Outlook's border-top div with 'Van:/Verzonden:' lines starts the history."""
    html = (
        "<p class=MsoNormal>Monteur komt dinsdag.</p>"
        "<div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm'>"
        "<p class=MsoNormal><b>Van:</b> Piet<br><b>Verzonden:</b> 3 november 2026"
        "<br><b>Aan:</b> Service<br><b>Onderwerp:</b> Lekkage</p></div>"
        "<p class=MsoNormal>De kraan lekt.</p>"
    )

    assert html_reply_to_text(html) == "Monteur komt dinsdag."


def test_reply_keeps_text_after_hr_without_header_lines() -> None:
    """An <hr> that is not followed by 'From:'-style lines cuts nothing."""
    html = "<p>Deel een</p><hr><p>Deel twee</p>"

    assert html_reply_to_text(html) == "Deel een\n\nDeel twee"


def test_plain_conversion_keeps_the_quote_marked_with_prefix() -> None:
    """html_to_text keeps quoted history, marked '> ', for split_reply to find."""
    html = "Ja.<blockquote type=cite>Wanneer?</blockquote>"

    assert html_to_text(html) == "Ja.\n> Wanneer?"


_PIECES = [
    "<p>",
    "</p>",
    "<div>",
    "</div>",
    '<div class="gmail_quote">',
    '<blockquote type="cite">',
    "</blockquote>",
    '<div id="divRplyFwdMsg">',
    '<div id="x_appendonsend">',
    "<hr>",
    '<div style="border-top:solid #E1E1E1 1.0pt">',
    "<table><tr><td>a</td><td>b</td></tr></table>",
    "<br>",
    "<ul><li>item</li></ul>",
    '<span style="display:none">hidden</span>',
    "<style>p{color:red}</style>",
    "<!--[if !supportLists]-->·<!--[endif]-->",
    "Hallo Jan,",
    "From: Piet",
    "Sent: maandag",
    "Van: Piet",
    "Verzonden: maandag",
    "tekst",
    "\n",
]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_one_walk_gives_the_same_text_and_reply_as_two(pieces: list[str]) -> None:
    """html_text_and_reply equals html_to_text plus html_reply_to_text."""
    html = "".join(pieces)
    assert html_text_and_reply(html) == (html_to_text(html), html_reply_to_text(html))


def test_one_walk_agrees_on_every_html_part_of_the_examples() -> None:
    """The single walk renders the demo mails exactly as the two walks do."""
    root = Path(__file__).resolve().parents[1] / "examples" / "inbox"
    parts = [parse_mail(p.read_bytes()).html for p in sorted(root.glob("*.eml"))]
    for html in filter(None, parts):
        assert html_text_and_reply(html) == (
            html_to_text(html),
            html_reply_to_text(html),
        )
