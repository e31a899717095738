"""Ten regex rules over a 10 KB mail body, through ``connector.rules.evaluate_rules``.

The rules are the extraction patterns of ``reference/perf-baseline.md`` §5
(postcode, phone, street and number, work-order reference, ticket, PO number,
e-mail, date, IBAN, KvK). The body is prose with the values in a signature
at the end, and no IBAN or PO number at all, so most rules scan most of the
text, as they do in real mail. The same patterns precompiled with the stdlib
``re`` module and without a time limit are the reference.
"""

from __future__ import annotations

import random
import re
import statistics
import time

from benchmarks.corpus import plain_mail
from benchmarks.report import Report
from connector.mail import parse_mail
from connector.rules import evaluate_rules
from connector.settings import RegexRule

__all__ = ["RULES", "run"]

#: (name, pattern, flags) of the ten rules.
RULES: tuple[tuple[str, str, list[str]], ...] = (
    ("customer_postal_code", r"\b(\d{4}\s?[A-Z]{2})\b", []),
    ("customer_phone", r"\b((?:\+31|0)[1-9](?:[ -]?\d){8})\b", []),
    (
        "customer_street",
        r"\b([A-Z][a-z]+(?:straat|weg|laan|plein|dijk|singel))\s+\d",
        [],
    ),
    ("workorder_ref", r"\b(WO-\d{4}-\d{6})\b", []),
    (
        "ticket",
        r"\b(?:ticket|melding)(?:nummer|nr\.?)?:?\s*#?(\d{5,8})\b",
        ["IGNORECASE"],
    ),
    ("po_number", r"\b(?:PO|inkoopordernummer)[ :#-]*(\d{6,10})\b", []),
    ("customer_email", r"\b([\w.+-]+@[\w-]+(?:\.[\w-]+)+)\b", []),
    ("visit_date", r"\b(\d{1,2}[-/]\d{1,2}[-/]\d{4})\b", []),
    ("iban", r"\b(NL\d{2}[A-Z]{4}\d{10})\b", []),
    ("kvk", r"\bKvK(?:-nummer)?:?\s*(\d{8})\b", ["IGNORECASE"]),
)

REPETITIONS = 7
QUICK_REPETITIONS = 3
MAILS_PER_REPETITION = 50

_PROSE = (
    "De cv-ketel in de technische ruimte geeft al een paar dagen een storing.",
    "Na het resetten loopt hij een uur en daarna valt hij weer uit.",
    "De huurders op de tweede verdieping hebben geen warm water meer.",
    "Kunt u een monteur sturen die ook de expansievaten kan nakijken?",
    "De sleutel ligt bij de huismeester; hij is tot vijf uur aanwezig.",
    "Vorige maand is de ketel nog onderhouden, het rapport zit in de bijlage.",
)
_SIGNATURE = (
    "\n\nMet vriendelijke groet,\n\nRenske Hoekstra\nWoonstichting De Linde\n"
    "Zuiderdiep 120\n9711 HM Groningen\nT 050-3112045\n"
    "E r.hoekstra@delinde.nl\nKvK 02045678\nKenmerk WO-2026-004471, "
    "melding 7741203, bezoek gewenst op 04-12-2026\n"
)


def body(size: int = 10_000, seed: int = 5) -> str:
    """About ``size`` characters of mail prose ending in a signature."""
    rnd = random.Random(seed)
    lines: list[str] = []
    while sum(len(line) + 1 for line in lines) < size - len(_SIGNATURE):
        lines.append(rnd.choice(_PROSE))
    return "\n".join(lines) + _SIGNATURE


def run(quick: bool) -> Report:
    rules = [
        RegexRule(name=name, pattern=pattern, source="body", flags=flags)  # type: ignore[arg-type]
        for name, pattern, flags in RULES
    ]
    headers, _, _ = plain_mail(0).partition(b"\r\n\r\n")
    headers = headers.replace(b"quoted-printable", b"8bit")
    mail = parse_mail(headers + b"\r\n\r\n" + body().encode())
    stdlib = [
        re.compile(pattern, re.IGNORECASE if flags else 0)
        for _, pattern, flags in RULES
    ]

    ours: list[float] = []
    floor: list[float] = []
    for _ in range(QUICK_REPETITIONS if quick else REPETITIONS):
        started = time.perf_counter()
        for _ in range(MAILS_PER_REPETITION):
            values = evaluate_rules(rules, mail, timeout_ms=500)
        ours.append((time.perf_counter() - started) / MAILS_PER_REPETITION)

        started = time.perf_counter()
        for _ in range(MAILS_PER_REPETITION):
            for pattern in stdlib:
                pattern.search(mail.text)
        floor.append((time.perf_counter() - started) / MAILS_PER_REPETITION)

    found = sum(1 for value in values if value.value)
    ms, floor_ms = statistics.median(ours) * 1000, statistics.median(floor) * 1000
    report = Report(f"6. Regex rules: 10 rules over a {len(mail.text):,}-char body")
    report.figures.update(
        regex_ms_per_mail=round(ms, 3),
        regex_stdlib_ms_per_mail=round(floor_ms, 3),
        regex_rules_with_value=found,
    )
    report.row("evaluate_rules (regex module, timeout)", f"{ms:.3f} ms/mail")
    report.row("same patterns, stdlib re, no timeout", f"{floor_ms:.3f} ms/mail")
    report.row("rules that found a value", f"{found} of {len(rules)}")
    return report
