"""The embedded ``local`` target: work orders, notes and attachments on disk.

Below ``<state>/local``::

    workorders/<WorkorderNo>.json   one JSON file per work order, with its notes
    attachments/<WorkorderNo>/      the files of the order and of its notes
    journal.jsonl, relations/, addresses/, contactpersons/, objects/
                                    directory additions: segmented TinyDB tables

A work order carries the full text of its mail, so it gets a file of its
own, replaced atomically (temporary file, fsync, rename): creating one or
adding a note writes that order only, and nothing is read until asked for.

The relation directory comes from CSV files (loaded when present) plus the
relations and addresses that mail2wo added itself or that ``relations
import`` brought in. It is built once; an addition is put into it as well.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from connector.directory import (
    Address,
    ContactPerson,
    Directory,
    Relation,
    WorkObject,
    from_row,
    read_csv,
)
from connector.targets.base import FileAttachment, Note, Target
from state.files import write_atomic
from state.segments import Segments, StateCorrupt

__all__ = ["LocalTarget"]

_KINDS: dict[str, tuple[type[Any], str]] = {
    "relations": (Relation, "debtor_number"),
    "addresses": (Address, "adr_code"),
    "contactpersons": (ContactPerson, "cpn_code"),
    "objects": (WorkObject, "obj_code"),
}


class LocalTarget(Target):
    """Work orders in the embedded store below ``folder``."""

    kind = "local"

    def __init__(self, folder: Path, csv_files: Mapping[str, Path | None]) -> None:
        self.folder = folder
        self.csv_files = dict(csv_files)
        self._added = Segments(folder, {kind: key for kind, (_, key) in _KINDS.items()})
        self._orders = folder / "workorders"
        self._orders.mkdir(parents=True, exist_ok=True)
        self._open_mark = self._orders / ".open"
        if self._open_mark.exists():
            # The last run did not close: a write it cut off may have left
            # a temporary file. Looked for only then, not in every start-up.
            for debris in self._orders.glob(".*.json.*"):
                debris.unlink(missing_ok=True)
        self._open_mark.touch()
        self._directory: Directory | None = None

    # directory ------------------------------------------------------------
    def load_directory(self) -> Directory:
        if self._directory is None:
            records: dict[str, dict[str, Any]] = {}
            for kind, (record_type, key) in _KINDS.items():
                merged: dict[str, Any] = {}
                path = self.csv_files.get(kind)
                if path is not None and path.exists():
                    for record in read_csv(path, record_type):
                        merged[getattr(record, key)] = record
                for row in self._added[kind].values():
                    merged[row[key]] = from_row(record_type, row)
                records[kind] = merged
            self._directory = Directory(
                records["relations"].values(),
                records["addresses"].values(),
                records["contactpersons"].values(),
                records["objects"].values(),
            )
        return self._directory

    def import_records(self, kind: str, path: Path) -> int:
        """Add every record of a directory CSV; return how many."""
        record_type, _ = _KINDS[kind]
        records = read_csv(path, record_type)
        for record in records:
            self._added[kind].put(dataclasses.asdict(record), durable=False)
        self._added.sync()
        self._directory = None
        return len(records)

    def add_relation(self, relation: Relation) -> None:
        self._added["relations"].put(dataclasses.asdict(relation))
        if self._directory is not None:
            self._directory = self._directory.with_added(relation=relation)

    def add_address(self, address: Address) -> None:
        self._added["addresses"].put(dataclasses.asdict(address))
        if self._directory is not None:
            self._directory = self._directory.with_added(address=address)

    # work orders ----------------------------------------------------------
    def _order_path(self, workorder_no: str) -> Path:
        name = quote(workorder_no, safe="")
        if name.startswith("."):  # never a hidden file, nor "." and ".."
            name = "%2E" + name[1:]
        return self._orders / f"{name}.json"

    def _write_order(self, record: Mapping[str, Any]) -> None:
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        write_atomic(self._order_path(str(record["WorkorderNo"])), payload.encode())

    def has_workorder(self, workorder_no: str) -> bool:
        return self._order_path(workorder_no).exists()

    def _save_files(
        self, workorder_no: str, attachments: Sequence[FileAttachment]
    ) -> list[dict[str, Any]]:
        saved = []
        folder = self.folder / "attachments" / workorder_no
        for attachment in attachments:
            path = folder / attachment.filename
            counter = 1
            while path.exists():  # a later note may bring a file of the same name
                counter += 1
                stem, dot, suffix = attachment.filename.rpartition(".")
                name = f"{stem}-{counter}.{suffix}" if dot else f"{suffix}-{counter}"
                path = folder / name
            write_atomic(path, attachment.data)
            saved.append(
                {
                    "FileName": path.name,
                    "ContentType": attachment.content_type,
                    "Size": len(attachment.data),
                    "Path": str(path),
                }
            )
        return saved

    def create_workorder(
        self, workorder: Mapping[str, Any], attachments: Sequence[FileAttachment]
    ) -> None:
        number = str(workorder["WorkorderNo"])
        if self.has_workorder(number):
            return
        record = dict(workorder)
        record["Attachments"] = self._save_files(number, attachments)
        record["notes"] = []
        record["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._write_order(record)

    def append_note(self, workorder_no: str, note: Note, note_key: str) -> None:
        record = self.workorder(workorder_no)
        if record is None:
            record = {"WorkorderNo": workorder_no, "notes": [], "Attachments": []}
        if any(n.get("key") == note_key for n in record["notes"]):
            return
        files = self._save_files(workorder_no, note.attachments)
        record["notes"].append(
            {
                "key": note_key,
                "text": note.text,
                "sender": note.sender,
                "subject": note.subject,
                "attachments": [f["FileName"] for f in files],
                "added_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        record["Attachments"] = [*record.get("Attachments", []), *files]
        self._write_order(record)

    def workorders(self) -> Iterator[dict[str, Any]]:
        """Every stored work order, oldest first (by creation, then number)."""
        records = [_read_order(path) for path in self._orders.glob("*.json")]
        records.sort(key=lambda r: (r.get("created_at", ""), str(r["WorkorderNo"])))
        return iter(records)

    def workorder(self, workorder_no: str) -> dict[str, Any] | None:
        """One stored work order."""
        try:
            return _read_order(self._order_path(workorder_no))
        except FileNotFoundError:
            return None

    def check_online(self) -> str:
        directory = self.load_directory()
        count = sum(1 for _ in self._orders.glob("*.json"))
        return (
            f"local store at {self.folder}: {count} work orders, "
            f"{len(directory.relations)} relations, {len(directory.objects)} objects"
        )

    def close(self) -> None:
        self._added.close()
        self._open_mark.unlink(missing_ok=True)


def _read_order(path: Path) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateCorrupt(f"{path}: not readable JSON ({exc})") from exc
    return record
