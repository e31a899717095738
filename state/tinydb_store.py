"""The embedded state store: TinyDB segment files plus a raw-mail archive.

Layout below the state folder::

    archive/YYYY/MM/DD/<sha256>.eml   raw MIME, written once
    journal.jsonl                     writes since the last checkpoint
    mails/seg-*.json                  one record per mail (dedupe key)
    threads/seg-*.json                Message-ID / thread id -> work order
    workorders/seg-*.json             participants of each work order
    log/seg-*.json                    the processing log
    meta/seg-*.json                   cursors, counters, usage (bounded)
    local/                            the local target (its own journal)

The tables are :class:`~state.segments.Segments`: a write appends one line
to the journal, and a checkpoint now and then rewrites the few segments of
at most 500 documents that the journal touched, so the cost of a write does
not grow with the history. ``mails``, ``threads`` and ``workorders`` are
read into memory when the store opens; of the log only the newest two
segments are. ``meta`` stays small: daily usage keeps 60 days, and each
sender's counter of new work orders one day (a counter quiet for a day is
removed).

A write is fsynced when the contract in :mod:`state.base` says it must be
durable; the thread index, counters and log are appended without, and
become durable with the next mail record.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from state.base import MailRecord, StateStore
from state.files import write_atomic
from state.segments import Segments, make_folder

__all__ = ["StateLocked", "TinyDBStateStore"]


class StateLocked(Exception):
    """Another mail2wo process holds the state folder."""


class TinyDBStateStore(StateStore):
    """State in TinyDB files below one folder."""

    #: How many of the newest log entries :meth:`log` checks a ``ref`` against.
    LOG_REF_WINDOW = 1000

    def __init__(
        self, folder: Path, *, segment_size: int = 500, checkpoint_lines: int = 1000
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = (folder / ".lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StateLocked(
                f"{folder}: another mail2wo process is using this state folder"
            ) from None
        try:
            self._db = Segments(
                folder,
                _TABLES,
                lazy=("log",),
                segment_size=segment_size,
                checkpoint_lines=checkpoint_lines,
            )
        except BaseException:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            raise
        self._mails = self._db["mails"]
        self._threads = self._db["threads"]
        self._workorders = self._db["workorders"]
        self._log = self._db["log"]
        self._meta = self._db["meta"]

        self._by_provider: dict[tuple[str, str], str] = {}
        self._unfinished: dict[str, None] = {}
        for record in self._mails.values():
            self._index(record)

        self._next_log_id = 1
        self._log_refs: dict[str, int] = {}
        for entry in self._log.recent():
            self._next_log_id = max(self._next_log_id, int(entry["id"]) + 1)
            if entry.get("ref"):
                self._remember_ref(entry["ref"], int(entry["id"]))
        self._senders_pruned = ""

    # raw-mail archive -------------------------------------------------
    def archive(self, raw: bytes, received: datetime) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        reference = f"{received:%Y/%m/%d}/{digest}.eml"
        path = self.folder / "archive" / reference
        if not path.exists():
            make_folder(path.parent)  # a new day's folder
            write_atomic(path, raw, mode=0o600)
        return reference

    def read_archive(self, reference: str) -> bytes:
        return (self.folder / "archive" / reference).read_bytes()

    # mail records -----------------------------------------------------
    def mail(self, key: str) -> MailRecord | None:
        return self._mails.get(key)

    def put_mail(self, record: MailRecord) -> None:
        self._mails.put(record)
        self._index(record)

    def _index(self, record: MailRecord) -> None:
        """Index a mail under its provider ids; track it while unfinished."""
        key = record["key"]
        if record.get("provider_id"):
            self._by_provider[(record.get("mailbox", ""), record["provider_id"])] = key
        for mailbox, provider_id in record.get("aliases", ()):
            self._by_provider[(mailbox, provider_id)] = key
        if record.get("status") == "done":
            self._unfinished.pop(key, None)
        else:
            self._unfinished[key] = None

    def key_for_provider_id(self, mailbox: str, provider_id: str) -> str | None:
        return self._by_provider.get((mailbox, provider_id))

    def mails_with_status(self, *statuses: str) -> list[MailRecord]:
        if "done" in statuses:
            return [r for r in self._mails.values() if r.get("status") in statuses]
        found = (self._mails.get(key) for key in self._unfinished)
        return [r for r in found if r is not None and r.get("status") in statuses]

    # work-order numbers and the thread index --------------------------
    def _meta_doc(self, name: str) -> dict[str, Any]:
        return self._meta.get(name) or {"name": name}

    def reserve_workorder_no(self, year: int, prefix: str) -> str:
        counters = self._meta_doc("workorder_seq")
        sequence = int(counters.get(str(year), 0)) + 1
        counters[str(year)] = sequence
        self._meta.put(counters, durable=False)
        return f"{prefix.format(year=year)}{sequence:04d}"

    def link_thread(
        self,
        workorder_no: str,
        *,
        message_ids: Iterable[str] = (),
        thread_ids: Iterable[tuple[str, str]] = (),
        participants: Iterable[str] = (),
    ) -> None:
        for message_id in message_ids:
            if message_id and f"mid:{message_id}" not in self._threads:
                self._threads.put(
                    {"key": f"mid:{message_id}", "no": workorder_no}, durable=False
                )
        for mailbox, thread_id in thread_ids:
            key = f"thread:{mailbox}:{thread_id}"
            if thread_id and key not in self._threads:
                self._threads.put({"key": key, "no": workorder_no}, durable=False)
        record = self._workorders.get(workorder_no) or {
            "no": workorder_no,
            "participants": [],
        }
        known = set(record["participants"])
        wanted = {p.lower() for p in participants if p}
        if not wanted <= known or workorder_no not in self._workorders:
            record["participants"] = sorted(known | wanted)
            self._workorders.put(record, durable=False)

    def workorder_for_message_ids(self, message_ids: Iterable[str]) -> str | None:
        for message_id in message_ids:
            found = self._threads.get(f"mid:{message_id}")
            if found:
                return str(found["no"])
        return None

    def workorder_for_thread(self, mailbox: str, thread_id: str) -> str | None:
        found = self._threads.get(f"thread:{mailbox}:{thread_id}")
        return str(found["no"]) if found else None

    def participants(self, workorder_no: str) -> set[str] | None:
        record = self._workorders.get(workorder_no)
        return set(record["participants"]) if record else None

    # counters -----------------------------------------------------------
    def usage(self, day: date) -> int:
        return int(self._meta_doc("usage").get(day.isoformat(), 0))

    def count_usage(self, day: date) -> None:
        usage = self._meta_doc("usage")
        usage[day.isoformat()] = int(usage.get(day.isoformat(), 0)) + 1
        oldest = (day - timedelta(days=60)).isoformat()
        usage = {k: v for k, v in usage.items() if k == "name" or k >= oldest}
        self._meta.put(usage, durable=False)

    def new_workorders_by_sender(self, sender: str, since: datetime) -> int:
        stamps = self._meta_doc(_SENDER + sender.lower()).get("stamps", [])
        return sum(1 for stamp in stamps if stamp >= since.isoformat())

    def count_new_workorder(self, sender: str, at: datetime) -> None:
        """Count it in the sender's own counter, which keeps one day.

        Once a day the counters of senders quiet for a day are removed.
        """
        horizon = (at - timedelta(days=1)).isoformat()
        counter = self._meta_doc(_SENDER + sender.lower())
        stamps = [s for s in counter.get("stamps", []) if s >= horizon]
        self._meta.put({**counter, "stamps": [*stamps, at.isoformat()]}, durable=False)
        if at.date().isoformat() != self._senders_pruned:
            self._senders_pruned = at.date().isoformat()
            for document in list(self._meta.values()):
                name = document["name"]
                if name.startswith(_SENDER) and max(document["stamps"]) < horizon:
                    self._meta.delete(name, durable=False)

    # cursors --------------------------------------------------------------
    def cursor(self, mailbox: str) -> str | None:
        value = self._meta_doc("cursors").get(mailbox)
        return str(value) if value is not None else None

    def save_cursor(self, mailbox: str, cursor: str | None) -> None:
        cursors = self._meta_doc("cursors")
        if cursors.get(mailbox) == cursor:
            return
        cursors[mailbox] = cursor
        self._meta.put(cursors)

    def mailbox_status(self, mailbox: str) -> dict[str, Any]:
        return dict(self._meta_doc("mailbox_status").get(mailbox, {}))

    def set_mailbox_status(self, mailbox: str, **fields: Any) -> None:
        statuses = self._meta_doc("mailbox_status")
        current = dict(statuses.get(mailbox, {}))
        current.update(fields)
        statuses[mailbox] = current
        self._meta.put(statuses)

    # processing log -------------------------------------------------------
    def log(self, entry: dict[str, Any]) -> int:
        """Append an entry, unless its ``ref`` is among the newest ones.

        A ``ref`` is looked for in the newest :attr:`LOG_REF_WINDOW` entries,
        not in the whole log (which stays on disk): the entry of a step cut
        off by a kill is the newest of its mail, and the step is repeated
        when the mail resumes, at the start of the next pass.
        """
        ref = entry.get("ref")
        if ref and ref in self._log_refs:
            return self._log_refs[ref]
        entry_id = self._next_log_id
        self._log.put({**entry, "id": entry_id}, durable=False)
        self._next_log_id += 1
        if ref:
            self._remember_ref(ref, entry_id)
        return entry_id

    def _remember_ref(self, ref: str, entry_id: int) -> None:
        self._log_refs[ref] = entry_id
        if len(self._log_refs) > self.LOG_REF_WINDOW:
            del self._log_refs[next(iter(self._log_refs))]

    def log_entries(self) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first; older segments are read from disk."""
        return self._log.values()

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


_TABLES = {
    "mails": "key",
    "threads": "key",
    "workorders": "no",
    "log": "id",
    "meta": "name",
}

#: The name prefix of a sender's counter of new work orders in ``meta``.
_SENDER = "sender:"
