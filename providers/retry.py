"""Waiting between tries: ``Retry-After`` values and jittered backoff.

Shared by the providers and the targets, so that every HTTP client of the
project reads ``Retry-After`` the same way and backs off the same way.
"""

from __future__ import annotations

import email.utils
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from providers.errors import TransientError

__all__ = ["backoff_delay", "retry_after_seconds", "retrying"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


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


def retrying(
    what: str,
    action: Callable[[], _T],
    *,
    max_retries: int,
    sleep: Callable[[float], None],
    base: float,
    cap: float,
) -> _T:
    """Run ``action``, trying again after :class:`TransientError` with backoff.

    ``Retry-After`` wins over the backoff. A failure that asks for a wait
    longer than ``cap`` is raised at once: waiting that long belongs to the
    pipeline, not to one call. The last error says how many tries were made.
    """
    for attempt in range(max_retries + 1):
        try:
            return action()
        except TransientError as exc:
            wanted = exc.retry_after
            if attempt == max_retries or (wanted or 0) > cap:
                if attempt == 0:
                    raise
                raise TransientError(
                    f"{exc} (gave up after {attempt + 1} tries)", retry_after=wanted
                ) from exc

            delay = (
                wanted
                if wanted is not None
                else backoff_delay(attempt, base=base, cap=cap)
            )
            logger.debug(
                "%s: %s; try %d of %d in %.1f s",
                what,
                exc,
                attempt + 2,
                max_retries + 1,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # Defensive: the loop returns or raises
