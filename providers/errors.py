"""The one exception tree of mail2wo, shared by every layer.

    Mail2woError
    ├── TransientError      retry later (network, 429/503, a busy target)
    ├── AuthError           the grant is gone or refused: reconnect the mailbox
    ├── PermanentError      this mail or request can never succeed: quarantine
    └── SettingsError       a bad setting or input file: exit code 2

Every error names what it is about (mailbox, mail, rule) in its message.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "Mail2woError",
    "PermanentError",
    "SettingsError",
    "TransientError",
]


class Mail2woError(Exception):
    """Base of every error mail2wo raises on purpose."""


class TransientError(Mail2woError):
    """A failure that may pass: try again later.

    ``retry_after`` is the server's wish in seconds, when it stated one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(Mail2woError):
    """The mailbox or target refused our credentials; a person must reconnect."""


class PermanentError(Mail2woError):
    """A failure that will repeat on every try."""


class SettingsError(Mail2woError):
    """A setting or input file is wrong; the message names the place."""
