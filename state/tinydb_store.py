"""The embedded state store: TinyDB segment files plus a raw-mail archive.

Layout below the state folder::

    archive/YYYY/MM/DD/<sha256>.eml   raw MIME, written once
    mails/seg-*.json                  one record per mail (dedupe key)
    threads/seg-*.json                Message-ID / thread id -> work order
    workorders/seg-*.json             participants of each work order
    log/seg-*.json                    the processing log
    meta/seg-*.json                   cursors, counters, usage (bounded)

Every table is a :class:`~state.segments.SegmentedTable`, so the cost of
one write is bounded by a segment, not by the history. ``meta`` stays
small: daily usage keeps 60 days, the per-sender counter one day.
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
from state.segments import SegmentedTable

__all__ = ["StateLocked", "TinyDBStateStore"]


class StateLocked(Exception):
    """Another mail2wo process holds the state folder."""


class TinyDBStateStore(StateStore):
    """State in TinyDB files below one folder."""

    def __init__(self, folder: Path, *, segment_size: int = 500) -> None:
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
        self._mails = SegmentedTable(folder / "mails", "key", segment_size)
        self._threads = SegmentedTable(folder / "threads", "key", segment_size)
        self._workorders = SegmentedTable(folder / "workorders", "no", segment_size)
        self._log = SegmentedTable(folder / "log", "id", segment_size)
        self._meta = SegmentedTable(folder / "meta", "name", segment_size)
        self._by_provider: dict[tuple[str, str], str] = {}
        for record in self._mails.values():
            self._index_provider_ids(record)
        self._next_log_id = 1
        self._log_refs: dict[str, int] = {}
        for entry in self._log.values():
            self._next_log_id = max(self._next_log_id, int(entry["id"]) + 1)
            if entry.get("ref"):
                self._log_refs[entry["ref"]] = int(entry["id"])

    # raw-mail archive -------------------------------------------------
    def archive(self, raw: bytes, received: datetime) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        reference = f"{received:%Y/%m/%d}/{digest}.eml"
        path = self.folder / "archive" / reference
        if not path.exists():
            write_atomic(path, raw, mode=0o600)
        return reference

    def read_archive(self, reference: str) -> bytes:
        return (self.folder / "archive" / reference).read_bytes()

    # mail records -----------------------------------------------------
    def mail(self, key: str) -> MailRecord | None:
        return self._mails.get(key)

    def put_mail(self, record: MailRecord) -> None:
        self._mails.put(record)
        self._index_provider_ids(record)

    def _index_provider_ids(self, record: MailRecord) -> None:
        """Index the mail under its provider id and those of later copies."""
        if record.get("provider_id"):
            self._by_provider[(record.get("mailbox", ""), record["provider_id"])] = (
                record["key"]
            )
        for mailbox, provider_id in record.get("aliases", ()):
            self._by_provider[(mailbox, provider_id)] = record["key"]

    def key_for_provider_id(self, mailbox: str, provider_id: str) -> str | None:
        return self._by_provider.get((mailbox, provider_id))

    def mails_with_status(self, *statuses: str) -> list[MailRecord]:
        return [r for r in self._mails.values() if r.get("status") in statuses]

    # work-order numbers and the thread index --------------------------
    def _meta_doc(self, name: str) -> dict[str, Any]:
        return self._meta.get(name) or {"name": name}

    def reserve_workorder_no(self, year: int, prefix: str) -> str:
        counters = self._meta_doc("workorder_seq")
        sequence = int(counters.get(str(year), 0)) + 1
        counters[str(year)] = sequence
        self._meta.put(counters)
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
                self._threads.put({"key": f"mid:{message_id}", "no": workorder_no})
        for mailbox, thread_id in thread_ids:
            key = f"thread:{mailbox}:{thread_id}"
            if thread_id and key not in self._threads:
                self._threads.put({"key": key, "no": workorder_no})
        record = self._workorders.get(workorder_no) or {
            "no": workorder_no,
            "participants": [],
        }
        known = set(record["participants"])
        wanted = {p.lower() for p in participants if p}
        if not wanted <= known or workorder_no not in self._workorders:
            record["participants"] = sorted(known | wanted)
            self._workorders.put(record)

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
        self._meta.put(usage)

    def new_workorders_by_sender(self, sender: str, since: datetime) -> int:
        stamps = self._meta_doc("senders").get(sender.lower(), [])
        return sum(1 for stamp in stamps if stamp >= since.isoformat())

    def count_new_workorder(self, sender: str, at: datetime) -> None:
        senders = self._meta_doc("senders")
        horizon = (at - timedelta(days=1)).isoformat()
        pruned: dict[str, Any] = {"name": "senders"}
        for name, stamps in senders.items():
            if name == "name":
                continue
            kept = [s for s in stamps if s >= horizon]
            if kept:
                pruned[name] = kept
        pruned.setdefault(sender.lower(), []).append(at.isoformat())
        self._meta.put(pruned)

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
        ref = entry.get("ref")
        if ref and ref in self._log_refs:
            return self._log_refs[ref]
        entry_id = self._next_log_id
        self._log.put({**entry, "id": entry_id})
        self._next_log_id += 1
        if ref:
            self._log_refs[ref] = entry_id
        return entry_id

    def log_entries(self) -> Iterator[dict[str, Any]]:
        return iter(sorted(self._log.values(), key=lambda e: int(e["id"])))

    def close(self) -> None:
        for table in (self._mails, self._threads, self._workorders, self._log):
            table.close()
        self._meta.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()
