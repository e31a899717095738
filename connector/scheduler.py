"""Conversations mode: every enabled mailbox synced on its own schedule.

One APScheduler job per mailbox runs :func:`connector.app.sync_mailbox`
every ``poll_seconds``. Jobs never overlap (``max_instances=1``) and a
missed run is merged into the next one, so a slow mailbox cannot pile up
work. One workspace (state lock, target) is held for the whole run and
the jobs take turns on it; a failing mailbox is reported in its status and
never stops the others.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from datetime import datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from connector import app
from connector.settings import Mailbox, Settings
from providers.errors import SettingsError

__all__ = ["MailboxBackoff", "run_forever"]

logger = logging.getLogger("mail2wo")


class MailboxBackoff:
    """When a failing mailbox may be tried again: the poll interval, doubled
    after each failed pass in a row, at most an hour."""

    CAP_SECONDS = 3600.0

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.failures = 0
        self._not_before = 0.0

    def due(self, now: float) -> bool:
        """Whether a pass may run at monotonic time ``now``."""
        return now >= self._not_before

    def failed(self, now: float) -> float:
        """Record a failed pass; return the seconds until the next try."""
        self.failures += 1
        wait = min(self.poll_seconds * 2.0**self.failures, self.CAP_SECONDS)
        self._not_before = now + wait
        return wait

    def succeeded(self) -> None:
        """A pass went through: back to the normal schedule."""
        self.failures = 0
        self._not_before = 0.0


def run_forever(settings: Settings) -> None:
    """Sync until SIGINT or SIGTERM; returns after the running pass ends."""
    mailboxes = [m for m in settings.mailbox if m.enabled]
    if not mailboxes:
        raise SettingsError(f"{settings.source}: no enabled [[mailbox]] to run")
    turn = threading.Lock()
    with app.open_workspace(settings) as workspace:
        scheduler = BlockingScheduler(timezone=settings.zone)

        backoffs = {m.name: MailboxBackoff(m.poll_seconds) for m in mailboxes}

        def job(mailbox: Mailbox) -> None:
            backoff = backoffs[mailbox.name]
            if not backoff.due(time.monotonic()):
                logger.debug("%s: backing off after an error", mailbox.name)
                return
            with turn:
                report = app.sync_mailbox(workspace, mailbox)
            if report.error:
                wait = backoff.failed(time.monotonic())
                logger.warning(
                    "%s: %s: %s; next try in %d s",
                    mailbox.name,
                    report.status,
                    report.error,
                    wait,
                )
                return
            backoff.succeeded()
            counts = Counter(str(result.outcome) for result in report.results)
            logger.info(
                "%s: %s",
                mailbox.name,
                ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
                or "no new mail",
            )

        for mailbox in mailboxes:
            scheduler.add_job(
                job,
                "interval",
                args=[mailbox],
                seconds=mailbox.poll_seconds,
                id=mailbox.name,
                max_instances=1,
                coalesce=True,
                # The wall clock, not app.now_utc(): MAIL2WO_NOW fixes the
                # processing time only, and a first run in its past would be
                # dropped as missed.
                next_run_time=datetime.now(settings.zone),
            )

        def stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %d: stopping after the running pass", signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.info("running %d mailbox(es); Ctrl-C stops", len(mailboxes))
        scheduler.start()
        with turn:  # let a pass that is still running finish first
            pass
