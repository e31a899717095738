"""Configuration matching by sender type, and regex rules with a time limit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from connector.mail import InboundMail
from connector.settings import Configuration, RegexRule, SenderType

__all__ = ["RuleValue", "evaluate_rules", "matches", "strip_subject_prefixes"]

_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|antw|doorst|aw|wg|tr|sv|vs)\s*(?:\[\d+\])?\s*:\s*)+",
    re.IGNORECASE,
)


def strip_subject_prefixes(subject: str) -> str:
    """``RE: Fwd: AW: storing`` gives ``storing``; stacks are removed whole."""
    return _PREFIX.sub("", subject).strip()


def _domain_matches(domain: str, value: str) -> bool:
    domain = domain.lower().strip(".")
    value = value.lower().strip()
    if value.startswith("*."):
        base = value[2:]
        return domain == base or domain.endswith("." + base)
    return domain == value.lstrip("@")


def matches(configuration: Configuration, mail: InboundMail) -> bool:
    """Whether the configuration's sender type and value accept this mail."""
    value = configuration.sender_value.strip()
    kind = configuration.sender_type
    if kind is SenderType.ANY:
        return True
    if kind is SenderType.SENDER:
        return mail.from_addr.lower() == value.lower()
    if kind is SenderType.SENDER_DOMAIN:
        _, _, domain = mail.from_addr.rpartition("@")
        return bool(domain) and _domain_matches(domain, value)
    if kind is SenderType.TITLE_CONTAINS:
        return value.casefold() in mail.subject.casefold()
    if kind is SenderType.TITLE_EQUALS:
        return strip_subject_prefixes(mail.subject).casefold() == value.casefold()
    return value.casefold() in mail.text.casefold()


@dataclass(frozen=True)
class RuleValue:
    """What one regex rule extracted, and whether it ran out of time."""

    name: str
    value: str
    timed_out: bool = False


def _first_value(rule: RegexRule, text: str, timeout: float) -> str:
    match = rule.compiled.search(text, timeout=timeout)
    if match is None:
        return ""
    if "value" in match.groupdict():
        found = match.group("value")
    elif match.re.groups >= 1:
        found = match.group(1)
    else:
        found = match.group(0)
    return (found or "").strip()


def evaluate_rules(
    rules: Sequence[RegexRule], mail: InboundMail, timeout_ms: int
) -> list[RuleValue]:
    """Every rule's value: first match, ``value`` group, else group 1, else all.

    A pattern that runs past the time limit yields an empty value and is
    marked ``timed_out``; it never raises.
    """
    timeout = timeout_ms / 1000
    body = mail.text
    values = []
    for rule in rules:
        sources = {
            "body": [body],
            "subject": [mail.subject],
            "both": [mail.subject, body],
        }[rule.source]
        value, timed_out = "", False
        for text in sources:
            try:
                value = _first_value(rule, text, timeout)
            except TimeoutError:
                timed_out = True
                value = ""
                break
            if value:
                break
        values.append(RuleValue(rule.name, value, timed_out))
    return values
