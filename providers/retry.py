"""Waiting between tries: ``Retry-After`` values and jittered backoff.

Shared by the providers and the targets, so that every HTTP client of the
project reads ``Retry-After`` the same way and backs off the same way.
"""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime

__all__ = ["backoff_delay", "retry_after_seconds"]


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: a number or an HTTP date.

    ``None`` when the value is absent or unreadable; never negative.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # An HTTP date without a zone is GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Exponential delay for try ``attempt`` (0-based), half of it random."""
    delay = min(cap, base * 2.0**attempt)
    return delay / 2 + random.uniform(0, delay / 2)
