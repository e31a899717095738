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
from datetime import datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from connector import app
from connector.settings import Mailbox, Settings
from providers.errors import SettingsError

__all__ = ["run_forever"]

logger = logging.getLogger("mail2wo")


def run_forever(settings: Settings) -> None:
    """Sync until SIGINT or SIGTERM; returns after the running pass ends."""
    mailboxes = [m for m in settings.mailbox if m.enabled]
    if not mailboxes:
        raise SettingsError(f"{settings.source}: no enabled [[mailbox]] to run")
    turn = threading.Lock()
    with app.open_workspace(settings) as workspace:
        scheduler = BlockingScheduler(timezone=settings.zone)

        def job(mailbox: Mailbox) -> None:
            with turn:
                report = app.sync_mailbox(workspace, mailbox)
            counts: dict[str, int] = {}
            for result in report.results:
                counts[str(result.outcome)] = counts.get(str(result.outcome), 0) + 1
            logger.warning(
                "%s: %s%s",
                mailbox.name,
                ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
                or "no new mail",
                f" ({report.status}: {report.error})" if report.error else "",
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
            logger.warning("signal %d: stopping after the running pass", signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.warning("running %d mailbox(es); Ctrl-C stops", len(mailboxes))
        scheduler.start()
        with turn:  # let a pass that is still running finish first
            pass
