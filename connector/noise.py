"""Loop and noise protection: auto-replies, bounces and our own mail."""

from __future__ import annotations

from collections.abc import Collection

from connector.mail import InboundMail

__all__ = ["noise_reason"]

_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")


def noise_reason(mail: InboundMail, own_addresses: Collection[str]) -> str | None:
    """Why this mail must not become a work order, or ``None``."""
    if mail.content_type == "multipart/report":
        return "delivery report (multipart/report)"
    local = mail.from_addr.partition("@")[0].lower()
    if local in _DAEMONS:
        return f"delivery report (sender {mail.from_addr})"
    auto_submitted = mail.header("auto-submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"auto-reply (Auto-Submitted: {auto_submitted})"
    for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress"):
        value = mail.header(name)
        if value and name != "x-auto-response-suppress":
            return f"auto-reply ({name}: {value})"
    precedence = mail.header("precedence").lower()
    if precedence in ("auto_reply", "bulk", "junk"):
        return f"auto-reply or bulk mail (Precedence: {precedence})"
    if mail.from_addr and mail.from_addr.lower() in own_addresses:
        return f"sent by a connected mailbox ({mail.from_addr})"
    return None
