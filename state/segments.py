"""A TinyDB table split into bounded segment files.

TinyDB's JSON storage rewrites its whole file on every write and scans a
table for every query, so one growing file makes each write slower as
history grows. Here a table is a folder of segment files of at most
``segment_size`` documents each. A write rewrites one segment (atomically,
with fsync), so its cost is bounded by the segment size, not the history.
Reads come from an in-memory index built once when the table opens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from state.files import write_atomic

__all__ = ["AtomicJSONStorage", "SegmentedTable", "StateCorrupt"]

Document = dict[str, Any]


class StateCorrupt(Exception):
    """A state file cannot be read; the message names the file."""


class AtomicJSONStorage(Storage):
    """TinyDB storage that keeps the data in memory and writes it atomically.

    Reads after the first are served from memory; every write replaces the
    file through a temporary file, fsync and rename, so a kill at any
    instant leaves either the old or the new content.
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._data: dict[str, dict[str, Any]] | None = None

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._data is None and self._path.exists():
            try:
                self._data = json.loads(self._path.read_bytes() or b"{}")
            except (ValueError, UnicodeDecodeError) as exc:
                raise StateCorrupt(f"{self._path}: not readable JSON ({exc})") from exc
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        write_atomic(self._path, payload.encode("utf-8"))

    def close(self) -> None:
        self._data = None


class SegmentedTable:
    """Documents keyed by ``key_field``, stored in bounded segment files."""

    def __init__(self, folder: Path, key_field: str, segment_size: int = 500) -> None:
        self.folder = folder
        self.key_field = key_field
        self.segment_size = segment_size
        folder.mkdir(parents=True, exist_ok=True)
        for debris in folder.glob(".seg-*.json.*"):
            # A temporary file of a write that a kill cut off: never valid,
            # and no other process writes here while the state lock is held.
            debris.unlink(missing_ok=True)
        self._docs: dict[str, Document] = {}
        self._where: dict[str, int] = {}
        self._count: dict[int, int] = {}
        self._open: dict[int, TinyDB] = {}
        for path in sorted(folder.glob("seg-*.json")):
            number = int(path.stem.removeprefix("seg-"))
            database = self._segment(number)
            documents = database.all()
            self._count[number] = len(documents)
            for document in documents:
                key = document[key_field]
                self._docs[key] = dict(document)
                self._where[key] = number
            if number != max(self._count, default=number):
                database.close()
                self._open.pop(number, None)
        self._current = max(self._count, default=1)
        self._count.setdefault(self._current, 0)

    def _segment(self, number: int) -> TinyDB:
        database = self._open.get(number)
        if database is None:
            path = self.folder / f"seg-{number:06d}.json"
            database = TinyDB(str(path), storage=AtomicJSONStorage)
            self._open[number] = database
        return database

    def get(self, key: str) -> Document | None:
        """The document stored under ``key`` (a copy), or ``None``."""
        document = self._docs.get(key)
        return dict(document) if document is not None else None

    def __contains__(self, key: str) -> bool:
        return key in self._docs

    def __len__(self) -> int:
        return len(self._docs)

    def values(self) -> Iterator[Document]:
        """Every document, oldest segment first."""
        for document in self._docs.values():
            yield dict(document)

    def put(self, document: Document) -> None:
        """Insert or replace the document with this key; durable on return."""
        key = document[self.key_field]
        number = self._where.get(key)
        if number is None:
            if self._count[self._current] >= self.segment_size:
                self._open.pop(self._current).close()
                self._current += 1
                self._count[self._current] = 0
            number = self._current
            self._count[number] += 1
        database = self._segment(number)
        table = database.table("_default")
        doc_id = self._doc_id(table, key)
        if doc_id is None:
            table.insert(document)
        else:
            table.update(lambda stored: _replace(stored, document), doc_ids=[doc_id])
        self._docs[key] = dict(document)
        self._where[key] = number
        if number != self._current and len(self._open) > 4:
            self._open.pop(number).close()

    def _doc_id(self, table: Any, key: str) -> int | None:
        for document in table:
            if document.get(self.key_field) == key:
                return int(document.doc_id)
        return None

    def close(self) -> None:
        """Close every open segment."""
        for database in self._open.values():
            database.close()
        self._open.clear()


def _replace(stored: MutableMapping[str, Any], document: Document) -> None:
    stored.clear()
    stored.update(document)
