"""parse_mail agrees with imap_tools on the fields of 112 varied real messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.mail import InboundMail, MailParseError, parse_mail

MINIMUM_AGREEMENT = 0.98
CORPUS = (
    Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "ikvk-imap_tools"
)


def _expected() -> dict[str, dict[str, Any]]:
    """The corpus expectations; skip the test if the corpus is not there."""
    path = CORPUS / "expected.json"
    if not path.is_file():
        pytest.skip(f"parser corpus not found at {CORPUS}")
    data: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _line_text(value: str) -> str:
    """Body text with LF line endings and no whitespace at its two ends."""
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _one_line(value: str) -> str:
    """A header value with each run of whitespace read as one space."""
    return " ".join(value.split())


def _address(value: str) -> str:
    """An address as mail servers compare it in practice: without case."""
    return value.strip().casefold()


def _address_list(values: list[str]) -> list[str]:
    """Addresses in order; imap_tools writes ``""`` for a name without one."""
    return [_address(value) for value in values if value.strip()]


def _wanted(entry: dict[str, Any]) -> dict[str, Any]:
    attachments = entry["attachments"]
    return {
        "subject": _one_line(entry["subject"]),
        "from": _address(entry["from_"]),
        "to": _address_list(entry["to"]),
        "cc": _address_list(entry["cc"]),
        "text": _line_text(entry["text"]),
        "attachment names": [a["filename"] or "" for a in attachments],
        "attachment hashes": [a["payload"]["sha256"] for a in attachments],
    }


def _actual(mail: InboundMail) -> dict[str, Any]:
    return {
        "subject": _one_line(mail.subject),
        "from": _address(mail.from_addr),
        "to": _address_list(list(mail.to)),
        "cc": _address_list(list(mail.cc)),
        "text": _line_text(mail.plain),
        "attachment names": [a.filename for a in mail.attachments],
        "attachment hashes": [a.sha256 for a in mail.attachments],
    }


def _difference(actual: Any, wanted: Any) -> tuple[str, str]:
    """Both values, cut to the neighbourhood of their first difference."""
    if not (isinstance(actual, str) and isinstance(wanted, str)):
        actual, wanted = repr(actual), repr(wanted)
    start = next(
        (i for i, (a, w) in enumerate(zip(actual, wanted, strict=False)) if a != w),
        min(len(actual), len(wanted)),
    )
    start = max(0, start - 40)
    return repr(actual[start : start + 120]), repr(wanted[start : start + 120])


def test_parser_agrees_with_imap_tools_on_at_least_98_percent_of_fields() -> None:
    """Subject, from, to, cc, plain text and attachments match the corpus."""
    expected = _expected()
    agreed = 0
    total = 0
    differences: list[str] = []

    for name in sorted(expected):
        wanted = _wanted(expected[name])
        try:
            actual = _actual(parse_mail((CORPUS / name).read_bytes()))
        except MailParseError as exc:
            actual = dict.fromkeys(wanted, f"MailParseError: {exc}")

        for key, value in wanted.items():
            total += 1
            if actual[key] == value:
                agreed += 1
                continue
            got, expected_text = _difference(actual[key], value)
            differences.append(
                f"  {name} {key}:\n    got      {got}\n    expected {expected_text}"
            )

    share = agreed / total
    print(f"\nparser agreement: {agreed}/{total} = {share:.1%}")
    for line in differences:
        print(line)
    assert share >= MINIMUM_AGREEMENT, f"parser agreement {share:.1%} is below 98%"


def test_corpus_names_every_message_it_holds() -> None:
    """Every .eml in the corpus has an expectation, so none escapes the count."""
    expected = _expected()

    messages = {str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*.eml")}

    assert messages == set(expected)
