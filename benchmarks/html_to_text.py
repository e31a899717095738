"""Time html_to_text against BeautifulSoup (and inscriptis/html2text) on Outlook parts.

Run from the project root: ``python -m benchmarks html`` (or
``python -m benchmarks.html_to_text``). It generates 50 synthetic 30 KB
Outlook HTML parts, so it downloads nothing. Converters that are not
installed are listed as such; none is added as a dependency.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.report import Report
from connector.cleaning import html_to_text

__all__ = ["converters", "outlook_part", "run"]

Converter = Callable[[str], str]

PART_COUNT = 50
PART_SIZE = 30_000
REPETITIONS = 5
QUICK_PART_COUNT = 10
QUICK_REPETITIONS = 2
OPTIONAL = ("inscriptis", "html2text")

_WORK_ORDER = re.compile(r"WO-\d{4}-\d{6}")
_ROW_ON_ONE_LINE = re.compile(r"WO-\d{4}-\d{6}[^\n]*?\d{4} [A-Z]{2}[^\n]*?[A-Z][a-z]")
_CSS = re.compile(r"@font-face|font-family|mso-|\{")
_GLUED = re.compile(r"WO-\d{4}-\d{6}[A-Za-z]")

_HEAD = """<html xmlns:v="urn:schemas-microsoft-com:vml"
xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta http-equiv=Content-Type content="text/html; charset=utf-8">
<meta name=Generator content="Microsoft Word 15 (filtered medium)">
<style><!--
/* Font Definitions */
@font-face {font-family:"Cambria Math"; panose-1:2 4 5 3 5 4 6 3 2 4;}
@font-face {font-family:Calibri; panose-1:2 15 5 2 2 2 4 3 2 4;}
/* Style Definitions */
p.MsoNormal, li.MsoNormal, div.MsoNormal
  {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;}
p.MsoListParagraph {mso-style-priority:34; margin-left:36.0pt;}
a:link, span.MsoHyperlink {mso-style-priority:99; color:#0563C1;}
span.EmailStyle17 {mso-style-type:personal-compose; font-family:"Calibri";}
.MsoChpDefault {mso-style-type:export-only; font-family:"Calibri",sans-serif;}
@page WordSection1 {size:612.0pt 792.0pt; margin:70.85pt 70.85pt 70.85pt 70.85pt;}
div.WordSection1 {page:WordSection1;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--></head>
<body lang=NL link="#0563C1" vlink="#954F72"><div class=WordSection1>
"""
_CELL = (
    "<td width={width} valign=top style='width:{width}.0pt;border:solid windowtext"
    " 1.0pt;border-top:none;padding:0cm 5.4pt 0cm 5.4pt'><p class=MsoNormal>"
    "<span style='font-size:10.0pt'>{text}<o:p></o:p></span></p></td>"
)
_BULLET = (
    "<p class=MsoListParagraph style='text-indent:-18.0pt;mso-list:l0 level1 lfo1'>"
    "<![if !supportLists]><span style='font-family:Symbol'>·<span style='font:7.0pt"
    ' "Times New Roman"\'>&nbsp;&nbsp;&nbsp;&nbsp; </span></span><![endif]>'
    "{text}<o:p></o:p></p>"
)
_EMPTY_PARAGRAPH = "<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
_STREETS = ("Kerkstraat", "Dorpsstraat", "Molenweg", "Stationsplein", "Lindelaan")
_CITIES = ("Utrecht", "Zwolle", "Den Haag", "Amersfoort", "Groningen")
_FAULTS = ("CV-ketel lekt water", "Geen warm water", "Storing 6A", "Radiator koud")


def outlook_part(seed: int, size: int = PART_SIZE) -> str:
    """A synthetic Word-generated Outlook HTML part of roughly ``size`` characters."""
    rnd = random.Random(seed)
    out = [
        _HEAD,
        "<p class=MsoNormal>Beste collega,<o:p></o:p></p>",
        _EMPTY_PARAGRAPH,
        _BULLET.format(text="Graag onderstaande storingen inplannen."),
        _BULLET.format(text="Bij vragen graag bellen."),
        "<!--[if mso]><table><tr><td style='mso-hide:all'>x</td></tr></table>"
        "<![endif]-->",
        _EMPTY_PARAGRAPH,
        "<table class=MsoNormalTable border=0 cellspacing=0 cellpadding=0"
        " style='border-collapse:collapse'><tbody>",
        _row(["Werkorder", "Adres", "Postcode", "Plaats", "Omschrijving"]),
    ]
    size_so_far = sum(map(len, out))
    while size_so_far < size - 1_800:
        row = _row(
            [
                f"WO-2026-{rnd.randrange(10**6):06d}",
                f"{rnd.choice(_STREETS)} {rnd.randrange(1, 250)}",
                f"{rnd.randrange(1000, 9999)}&nbsp;{rnd.choice(['AB', 'KL', 'XZ'])}",
                rnd.choice(_CITIES),
                rnd.choice(_FAULTS),
            ]
        )
        out.append(row)
        size_so_far += len(row)
    out.append(
        "</tbody></table>"
        + _EMPTY_PARAGRAPH * 2
        + "<p class=MsoNormal>Met vriendelijke groet,<br>Jan Jansen<o:p></o:p></p>"
        + "<table class=MsoNormalTable border=0><tr><td><p class=MsoNormal>"
        + "<b>Installatiebedrijf Jansen B.V.</b><br>T: 030-1234567<br>"
        + "<a href='mailto:jan@jansen.nl'>jan@jansen.nl</a><o:p></o:p></p></td></tr>"
        + "</table></div></body></html>"
    )
    return "".join(out)


def _row(cells: list[str]) -> str:
    return (
        "<tr style='height:15.0pt'>"
        + "".join(_CELL.format(width=90 + 10 * n, text=c) for n, c in enumerate(cells))
        + "</tr>"
    )


def converters() -> dict[str, Converter]:
    """Our converter and the third-party ones that are installed."""
    found: dict[str, Converter] = {"mail2wo html_to_text": html_to_text}
    try:
        from selectolax.lexbor import LexborHTMLParser
    except ImportError:
        pass
    else:
        found["selectolax text() (raw)"] = lambda h: str(
            LexborHTMLParser(h).text(separator="")
        )
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        pass
    else:
        found["bs4 html.parser get_text()"] = lambda h: str(
            BeautifulSoup(h, "html.parser").get_text()
        )
    try:
        import inscriptis
    except ImportError:
        pass
    else:
        found["inscriptis.get_text"] = lambda h: str(inscriptis.get_text(h))
    try:
        import html2text
    except ImportError:
        pass
    else:
        found["html2text(bodywidth=0)"] = lambda h: str(
            html2text.html2text(h, bodywidth=0)
        )
    return found


def measure(
    parts: list[str], repetitions: int = REPETITIONS
) -> dict[str, dict[str, Any]]:
    """Median ms per part and output quality of every converter over ``parts``.

    Each repetition runs all converters over the same parts in a shuffled order.
    Quality counts the work-order rows whose reference, postcode and city end up on
    one line, the rows whose reference is glued to the next cell, and the parts
    whose output contains CSS.
    """
    available = converters()
    timings: dict[str, list[float]] = {name: [] for name in available}
    order = list(available)
    rnd = random.Random(0)

    for _ in range(repetitions):
        rnd.shuffle(order)
        for name in order:
            convert = available[name]
            started = time.perf_counter()
            for part in parts:
                convert(part)
            elapsed = time.perf_counter() - started
            timings[name].append(elapsed * 1000 / len(parts))

    rows_total = sum(len(_WORK_ORDER.findall(part)) for part in parts)
    results: dict[str, dict[str, Any]] = {}
    for name, convert in available.items():
        outputs = [convert(part) for part in parts]
        results[name] = {
            "ms_per_part": statistics.median(timings[name]),
            "rows_on_one_line": sum(len(_ROW_ON_ONE_LINE.findall(o)) for o in outputs),
            "rows_total": rows_total,
            "rows_glued": sum(len(_GLUED.findall(o)) for o in outputs),
            "css_leaked_parts": sum(bool(_CSS.search(o)) for o in outputs),
            "parts": len(parts),
        }
    return results


def run(quick: bool) -> Report:
    count = QUICK_PART_COUNT if quick else PART_COUNT
    parts = [outlook_part(seed) for seed in range(count)]
    mean_kb = sum(map(len, parts)) / len(parts) / 1000
    results = measure(parts, QUICK_REPETITIONS if quick else REPETITIONS)
    ours = results["mail2wo html_to_text"]["ms_per_part"]
    report = Report(f"2. HTML to text: {count} Outlook parts of {mean_kb:.1f} KB")

    report.figures["html_ms_per_part"] = round(ours, 3)
    report.figures["html_converters"] = {
        name: {**result, "ms_per_part": round(result["ms_per_part"], 3)}
        for name, result in results.items()
    }
    bs4 = results.get("bs4 html.parser get_text()")
    if bs4 is not None:
        report.figures["html_vs_bs4"] = round(ours / bs4["ms_per_part"], 3)
    for name, result in results.items():
        report.row(
            name,
            f"{result['ms_per_part']:7.2f} ms/part  rows on one line "
            f"{result['rows_on_one_line']}/{result['rows_total']}, glued "
            f"{result['rows_glued']}, CSS in {result['css_leaked_parts']}/"
            f"{result['parts']} parts",
        )
    missing = [name for name in OPTIONAL if name not in " ".join(results)]
    if missing:
        report.notes.append(f"not installed, so not compared: {', '.join(missing)}")
    report.notes.append(_quality_note(results))
    return report


def _quality_note(results: dict[str, dict[str, Any]]) -> str:
    ours = results["mail2wo html_to_text"]
    note = (
        f"quality: html_to_text keeps {ours['rows_on_one_line']} of "
        f"{ours['rows_total']} table rows on one line, glues "
        f"{ours['rows_glued']} and leaks CSS in {ours['css_leaked_parts']} parts"
    )
    bs4 = results.get("bs4 html.parser get_text()")
    if bs4 is not None:
        note += (
            f"; bs4 get_text() keeps {bs4['rows_on_one_line']} rows on one line and "
            f"glues {bs4['rows_glued']} (cells run together, which breaks \\b in "
            "regex rules)"
        )
    return note


def main() -> None:
    report = run(quick=False)
    print(report.title)
    for label, value in report.rows:
        print(f"  {label:<30} {value}")
    for note in report.notes:
        print(f"  {note}")


if __name__ == "__main__":
    main()
