"""The embedded ``local`` target: work orders, notes and attachments on disk.

The relation directory comes from CSV files (loaded when present) plus the
relations and addresses that mail2wo added itself or that ``relations
import`` brought in. Work orders and directory additions live in segmented
TinyDB tables below ``<state>/local``; attachments as files beside them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from state.segments import SegmentedTable

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
        self._workorders = SegmentedTable(folder / "workorders", "WorkorderNo")
        self._added = {
            kind: SegmentedTable(folder / kind, key)
            for kind, (_, key) in _KINDS.items()
        }
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
            self._added[kind].put(dataclasses.asdict(record))
        self._directory = None
        return len(records)

    def add_relation(self, relation: Relation) -> None:
        self._added["relations"].put(dataclasses.asdict(relation))
        self._directory = None

    def add_address(self, address: Address) -> None:
        self._added["addresses"].put(dataclasses.asdict(address))
        self._directory = None

    # work orders ----------------------------------------------------------
    def has_workorder(self, workorder_no: str) -> bool:
        return workorder_no in self._workorders

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
        if number in self._workorders:
            return
        record = dict(workorder)
        record["Attachments"] = self._save_files(number, attachments)
        record["notes"] = []
        record["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._workorders.put(record)

    def append_note(self, workorder_no: str, note: Note, note_key: str) -> None:
        record = self._workorders.get(workorder_no)
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
        self._workorders.put(record)

    def workorders(self) -> Iterator[dict[str, Any]]:
        """Every stored work order, oldest first."""
        return self._workorders.values()

    def workorder(self, workorder_no: str) -> dict[str, Any] | None:
        """One stored work order."""
        return self._workorders.get(workorder_no)

    def check_online(self) -> str:
        directory = self.load_directory()
        return (
            f"local store at {self.folder}: {len(self._workorders)} work orders, "
            f"{len(directory.relations)} relations, {len(directory.objects)} objects"
        )

    def close(self) -> None:
        self._workorders.close()
        for table in self._added.values():
            table.close()
