"""The contract of mail2wo's durable state.

Everything that must survive a restart goes through a :class:`StateStore`:
the raw-mail archive, each mail's processing record, the thread index, the
processing log, cursors, counters, daily usage. Each write method is
idempotent, so a step cut off halfway may simply be repeated.

Writes are atomic and kept in order: a kill at any instant leaves each
write whole or absent, and loses none that returned. Against a power cut,
the writes that something outside the state waits for are durable when
they return -- :meth:`~StateStore.archive`, and :meth:`~StateStore.put_mail`,
:meth:`~StateStore.save_cursor` and :meth:`~StateStore.set_mailbox_status`,
which take every earlier write with them. The others (work-order number,
thread index, counters, log) become durable with the next of those: the
pipeline writes the mail record that holds a reserved number before it
calls the target, writes the record again after the bookkeeping, and a mail
resumed from its record repeats what a power cut took.

Records are plain JSON-able dicts so that another implementation (SQL) can
slot in behind the same methods.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

__all__ = ["MailRecord", "StateStore"]

#: A mail's processing record: ``key``, ``status`` (seen, decided, done,
#: failed, quarantined, deferred), ``mailbox``, ``provider_id``, ``mode``,
#: ``message_id``, ``attempts``, ``next_try``, ``decision``, ``archive``.
MailRecord = dict[str, Any]


class StateStore(abc.ABC):
    """Durable state of one mail2wo installation."""

    # raw-mail archive -------------------------------------------------
    @abc.abstractmethod
    def archive(self, raw: bytes, received: datetime) -> str:
        """Store the raw MIME; return its archive reference. Idempotent."""

    @abc.abstractmethod
    def read_archive(self, reference: str) -> bytes:
        """The raw MIME stored under ``reference``."""

    # mail records -----------------------------------------------------
    @abc.abstractmethod
    def mail(self, key: str) -> MailRecord | None:
        """The processing record of the mail with this dedupe key."""

    @abc.abstractmethod
    def put_mail(self, record: MailRecord) -> None:
        """Insert or replace a mail record (durable on return)."""

    @abc.abstractmethod
    def key_for_provider_id(self, mailbox: str, provider_id: str) -> str | None:
        """The dedupe key already recorded for this provider message."""

    @abc.abstractmethod
    def mails_with_status(self, *statuses: str) -> list[MailRecord]:
        """Records in one of these statuses, oldest first."""

    # work-order numbers and the thread index --------------------------
    @abc.abstractmethod
    def reserve_workorder_no(self, year: int, prefix: str) -> str:
        """A new, never used work-order number.

        Durable with the next :meth:`put_mail`: write the record that holds
        the number before the number leaves the state.
        """

    @abc.abstractmethod
    def link_thread(
        self,
        workorder_no: str,
        *,
        message_ids: Iterable[str] = (),
        thread_ids: Iterable[tuple[str, str]] = (),
        participants: Iterable[str] = (),
    ) -> None:
        """Record Message-IDs, (mailbox, thread id) pairs and participants."""

    @abc.abstractmethod
    def workorder_for_message_ids(self, message_ids: Iterable[str]) -> str | None:
        """The work order one of these Message-IDs belongs to."""

    @abc.abstractmethod
    def workorder_for_thread(self, mailbox: str, thread_id: str) -> str | None:
        """The work order this provider thread belongs to."""

    @abc.abstractmethod
    def participants(self, workorder_no: str) -> set[str] | None:
        """Addresses that took part in a work order; ``None`` if unknown."""

    # counters -----------------------------------------------------------
    @abc.abstractmethod
    def usage(self, day: date) -> int:
        """How many mails Conversations mode processed on this local day."""

    @abc.abstractmethod
    def count_usage(self, day: date) -> None:
        """Count one processed mail for this local day."""

    @abc.abstractmethod
    def new_workorders_by_sender(self, sender: str, since: datetime) -> int:
        """Work orders created from mail of ``sender`` since ``since``."""

    @abc.abstractmethod
    def count_new_workorder(self, sender: str, at: datetime) -> None:
        """Count a work order created from ``sender``'s mail."""

    # cursors --------------------------------------------------------------
    @abc.abstractmethod
    def cursor(self, mailbox: str) -> str | None:
        """The stored sync cursor of a mailbox."""

    @abc.abstractmethod
    def save_cursor(self, mailbox: str, cursor: str | None) -> None:
        """Store a mailbox's cursor (only after its mail is recorded)."""

    @abc.abstractmethod
    def mailbox_status(self, mailbox: str) -> dict[str, Any]:
        """Health of a mailbox: last sync, last error, needs_reconnect."""

    @abc.abstractmethod
    def set_mailbox_status(self, mailbox: str, **fields: Any) -> None:
        """Update a mailbox's health fields."""

    # processing log -------------------------------------------------------
    @abc.abstractmethod
    def log(self, entry: dict[str, Any]) -> int:
        """Append a processing-log entry; return its id.

        An entry whose ``ref`` is already in the log is not added again: the
        id of the logged one is returned. A step repeated after a kill thus
        leaves one entry.
        """

    @abc.abstractmethod
    def log_entries(self) -> Iterator[dict[str, Any]]:
        """Every log entry, oldest first."""

    def close(self) -> None:  # noqa: B027
        """Release files."""
