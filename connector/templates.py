"""Parameters and forced values: filling work-order fields from templates."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

__all__ = ["BUILTIN_PARAMETERS", "fill", "parameters", "unknown_tokens"]

_TOKEN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

BUILTIN_PARAMETERS = frozenset(
    {
        "subject",
        "sender_address",
        "email_display_name",
        "mail_content",
        "mail_reply",
        "time_mail_process",
        "date_mail_process_dmy",
        "date_mail_process_ymd",
        "obj_code",
    }
)


def parameters(
    *,
    subject: str,
    sender_address: str,
    display_name: str,
    mail_content: str,
    mail_reply: str,
    processed_at: datetime,
    rule_values: Mapping[str, str],
    obj_code: str = "",
) -> dict[str, str]:
    """Every ``{parameter}`` a template may use, with its value.

    ``processed_at`` must already be in the configured time zone.
    """
    values = dict(rule_values)
    values.update(
        subject=subject,
        sender_address=sender_address,
        email_display_name=display_name or sender_address,
        mail_content=mail_content,
        mail_reply=mail_reply,
        time_mail_process=f"{processed_at:%H:%M}",
        date_mail_process_dmy=f"{processed_at:%d-%m-%Y}",
        date_mail_process_ymd=f"{processed_at:%Y-%m-%d}",
        obj_code=obj_code or rule_values.get("obj_code", ""),
    )
    return values


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace known ``{tokens}``; unknown ones stay literal."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return values[name] if name in values else match.group(0)

    return _TOKEN.sub(replace, template)


def unknown_tokens(template: str, known: Iterable[str]) -> list[str]:
    """Tokens in ``template`` that no parameter or regex rule provides."""
    names = set(known) | BUILTIN_PARAMETERS
    return [t for t in _TOKEN.findall(template) if t not in names]
