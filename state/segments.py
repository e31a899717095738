"""TinyDB tables in bounded segment files behind one append-only journal.

TinyDB's JSON storage rewrites its whole file on every write and scans a
table for every query, so one growing file makes each write slower as
history grows. Here a folder holds a few tables that share one journal::

    journal.jsonl              writes since the last checkpoint, one per line
    <table>/seg-000001.json    a TinyDB database of at most segment_size documents

**Writes.** A write appends one line to the journal -- the table, the
segment and the whole new document (or the key it deletes) -- and updates
memory. Nothing else is written, so its cost depends on the document, not
on the segment or the history. A *durable* write also fsyncs the journal,
which makes every earlier line durable with it.

**Checkpoints.** When the journal holds ``checkpoint_lines`` lines, and when
the folder is closed, each segment those lines touched is written through
TinyDB's storage layer (temporary file, fsync, rename, fsync of the folder),
and then the journal is emptied. A checkpoint rewrites a few segments of
at most ``segment_size`` documents, once per ``checkpoint_lines`` writes.

**Crash safety.** A kill during an append leaves a torn last line: it is cut
off when the folder opens, so that write keeps its old content. Every line
before it is complete, since the journal is only ever appended to. A line
names its segment and replaces (or deletes) a whole document by key, so
replaying it twice is harmless: a kill during a checkpoint -- some segments
replaced, the journal not yet emptied -- replays the journal onto them when
the folder opens and ends with the same content.

**Reads** come from memory. An eager table loads every segment when the
folder opens. A lazy table (the processing log) is append-only: it keeps
its newest segments in memory, and :meth:`SegmentedTable.values` reads the
older ones from disk when asked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from state.files import fsync_directory, write_atomic

__all__ = [
    "AtomicJSONStorage",
    "Journal",
    "SegmentedTable",
    "Segments",
    "StateCorrupt",
    "make_folder",
]

Document = dict[str, Any]
Key = str | int

_TABLE = "_default"


class StateCorrupt(Exception):
    """A state file cannot be read; the message names the file."""


class AtomicJSONStorage(Storage):
    """TinyDB storage for one segment file, replaced atomically on write.

    Every write replaces the file through a temporary file, fsync and
    rename, so a kill at any instant leaves either the old or the new
    content.
    """

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data: dict[str, dict[str, Any]] = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateCorrupt(f"{self._path}: not readable JSON ({exc})") from exc
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        write_atomic(self._path, payload.encode("utf-8"))


class Journal:
    """An append-only file of JSON lines; a torn last line is cut off on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if created:
            fsync_directory(path.parent)
        self._size = os.fstat(self._fd).st_size

    def read(self) -> list[dict[str, Any]]:
        """Every complete entry, oldest first; cuts off a torn last line.

        Raises :class:`StateCorrupt` for an unreadable line that is not the
        last one: an append cannot have left it.
        """
        data = self.path.read_bytes()
        lines = data.split(b"\n")[:-1]  # what follows the last newline is torn
        entries: list[dict[str, Any]] = []
        end = 0
        for number, line in enumerate(lines, start=1):
            entry = _parse(line)
            if entry is None:
                if any(_parse(later) is not None for later in lines[number:]):
                    raise StateCorrupt(
                        f"{self.path}: line {number} is not a readable entry, "
                        "yet complete entries follow it"
                    )
                break
            entries.append(entry)
            end += len(line) + 1
        if end < len(data):
            # The append that a kill cut off: the write it carried never
            # returned, so its old content stands.
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        self._size = end
        return entries

    def append(self, entry: Mapping[str, Any], *, durable: bool) -> None:
        """Add one entry; with ``durable``, fsync before returning."""
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        payload = line.encode("utf-8")
        try:
            written = 0
            while written < len(payload):
                written += os.write(self._fd, payload[written:])
            if durable:
                os.fsync(self._fd)
        except BaseException:
            # Defensive: a failed append (disk full) must not leave half a
            # line for the next one to be glued to.
            os.ftruncate(self._fd, self._size)
            raise
        self._size += len(payload)

    def sync(self) -> None:
        """Make every appended entry durable."""
        os.fsync(self._fd)

    def clear(self) -> None:
        """Empty the journal (after a checkpoint wrote what it held)."""
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self._size = 0

    def close(self) -> None:
        os.close(self._fd)


class Segments:
    """A folder of segmented TinyDB tables that share one journal.

    ``tables`` maps each table's name to its key field; names in ``lazy``
    are append-only tables that keep only their newest segments in memory.
    One writer at a time: the caller holds the folder (the state lock).
    """

    def __init__(
        self,
        folder: Path,
        tables: Mapping[str, str],
        *,
        lazy: Collection[str] = (),
        segment_size: int = 500,
        checkpoint_lines: int = 1000,
    ) -> None:
        self.folder = folder
        self.checkpoint_lines = checkpoint_lines
        make_folder(folder)
        self.tables = {
            name: SegmentedTable(self, name, key_field, segment_size, lazy=name in lazy)
            for name, key_field in tables.items()
        }
        self._journal = Journal(folder / "journal.jsonl")
        try:
            self._lines = self._replay()
        except BaseException:
            self._journal.close()
            raise

    def _replay(self) -> int:
        """Apply the journal to the segments read; return its length."""
        entries = self._journal.read()
        for number, entry in enumerate(entries, start=1):
            table = self.tables.get(entry["t"])
            if table is None:
                raise StateCorrupt(
                    f"{self._journal.path}: line {number} names table "
                    f"{entry['t']!r}, expected one of {', '.join(self.tables)}"
                )
            table.replay(entry)
        return len(entries)

    def __getitem__(self, name: str) -> SegmentedTable:
        return self.tables[name]

    def append(self, entry: Mapping[str, Any], *, durable: bool) -> None:
        """Journal one write of a table (called by :class:`SegmentedTable`)."""
        self._journal.append(entry, durable=durable)
        self._lines += 1

    def maybe_checkpoint(self) -> None:
        """Checkpoint once the journal holds ``checkpoint_lines`` lines."""
        if self._lines >= self.checkpoint_lines:
            self.checkpoint()

    def sync(self) -> None:
        """Make every write so far durable."""
        self._journal.sync()

    def checkpoint(self) -> None:
        """Write the segments the journal touched, then empty the journal."""
        for table in self.tables.values():
            table.write_dirty()
        self._journal.clear()
        self._lines = 0
        for table in self.tables.values():
            table.release()

    def close(self) -> None:
        """Checkpoint what the journal holds and close it."""
        try:
            if self._lines:
                self.checkpoint()
        finally:
            self._journal.close()


class SegmentedTable:
    """Documents keyed by ``key_field``, stored in bounded segment files.

    Documents are kept in memory as shallow copies: :meth:`get` and
    :meth:`values` hand out copies, :meth:`put` stores one.
    """

    #: Segments a lazy table keeps in memory: the newest and the one before.
    KEEP = 2

    def __init__(
        self,
        database: Segments,
        name: str,
        key_field: str,
        segment_size: int,
        *,
        lazy: bool = False,
    ) -> None:
        self.name = name
        self.key_field = key_field
        self.segment_size = segment_size
        self.lazy = lazy
        self.folder = database.folder / name
        self._database = database
        make_folder(self.folder)
        for debris in self.folder.glob(".seg-*.json.*"):
            # A temporary file of a checkpoint that a kill cut off: never
            # valid, and no other process writes here while the state lock
            # is held.
            debris.unlink(missing_ok=True)
        self._segments: dict[int, dict[Key, Document]] = {}
        self._where: dict[Key, int] = {}
        self._dirty: set[int] = set()
        numbers = sorted(
            int(path.stem.removeprefix("seg-"))
            for path in self.folder.glob("seg-*.json")
        )
        self._on_disk = set(numbers)
        self._current = max(numbers, default=1)
        for number in numbers[-self.KEEP :] if lazy else numbers:
            self._load(number)

    def _path(self, number: int) -> Path:
        return self.folder / f"seg-{number:06d}.json"

    def _load(self, number: int) -> dict[Key, Document]:
        documents = {}
        for document in _read_segment(self._path(number)):
            key = document[self.key_field]
            documents[key] = document
            self._where[key] = number
        self._segments[number] = documents
        return documents

    def _segment(self, number: int) -> dict[Key, Document]:
        """A segment in memory, loaded first when it is on disk only."""
        found = self._segments.get(number)
        if found is not None:
            return found
        if number in self._on_disk:
            return self._load(number)
        documents: dict[Key, Document] = {}
        self._segments[number] = documents
        return documents

    # reads ------------------------------------------------------------------
    def get(self, key: Key) -> Document | None:
        """The document stored under ``key`` (a copy), or ``None``.

        A lazy table finds only documents of the segments in memory.
        """
        number = self._where.get(key)
        if number is None:
            return None
        return dict(self._segments[number][key])

    def __contains__(self, key: Key) -> bool:
        return key in self._where

    def __len__(self) -> int:
        """How many documents are in memory (all of them, unless lazy)."""
        return len(self._where)

    def values(self) -> Iterator[Document]:
        """Every document (copies), oldest segment first."""
        for number in sorted(self._on_disk | set(self._segments)):
            documents = self._segments.get(number)
            if documents is None:
                yield from _read_segment(self._path(number))
                continue
            for document in list(documents.values()):
                yield dict(document)

    def recent(self) -> Iterator[Document]:
        """The documents in memory (copies), oldest first."""
        for number in sorted(self._segments):
            for document in list(self._segments[number].values()):
                yield dict(document)

    # writes -----------------------------------------------------------------
    def put(self, document: Document, *, durable: bool = True) -> None:
        """Insert or replace the document with this key.

        With ``durable`` (the default) it is on disk when this returns;
        otherwise it gets there with the next durable write.
        """
        key = document[self.key_field]
        number = self._where.get(key)
        if number is None:
            if len(self._segment(self._current)) >= self.segment_size:
                self._current += 1
            number = self._current
        self._database.append(
            {"t": self.name, "s": number, "d": document}, durable=durable
        )
        self._store(number, key, dict(document))
        self._database.maybe_checkpoint()

    def delete(self, key: Key, *, durable: bool = True) -> None:
        """Remove the document with this key, if there is one in memory."""
        number = self._where.get(key)
        if number is None:
            return
        self._database.append({"t": self.name, "s": number, "k": key}, durable=durable)
        del self._segments[number][key]
        del self._where[key]
        self._dirty.add(number)
        self._database.maybe_checkpoint()

    def _store(self, number: int, key: Key, document: Document) -> None:
        self._segment(number)[key] = document
        self._where[key] = number
        self._dirty.add(number)

    def replay(self, entry: Mapping[str, Any]) -> None:
        """Apply one journal entry again (when the folder opens)."""
        number = int(entry["s"])
        self._current = max(self._current, number)
        if "d" in entry:
            document = dict(entry["d"])
            self._store(number, document[self.key_field], document)
            return
        self._segment(number).pop(entry["k"], None)
        self._where.pop(entry["k"], None)
        self._dirty.add(number)

    def write_dirty(self) -> None:
        """Write every segment changed since the last checkpoint."""
        for number in sorted(self._dirty):
            documents = self._segments[number].values()
            data = {str(doc_id): doc for doc_id, doc in enumerate(documents, start=1)}
            AtomicJSONStorage(self._path(number)).write({_TABLE: data})
            self._on_disk.add(number)
            self._dirty.discard(number)

    def release(self) -> None:
        """Let a lazy table drop the older segments it no longer needs."""
        if not self.lazy:
            return
        for number in sorted(self._segments)[: -self.KEEP]:
            if number not in self._dirty:
                for key in self._segments.pop(number):
                    self._where.pop(key, None)


def make_folder(folder: Path) -> None:
    """Create ``folder`` and missing parents so that a power cut keeps them."""
    if folder.is_dir():
        return
    make_folder(folder.parent)
    folder.mkdir(exist_ok=True)
    fsync_directory(folder.parent)


def _read_segment(path: Path) -> list[Document]:
    data = AtomicJSONStorage(path).read() or {}
    return list(data.get(_TABLE, {}).values())


def _parse(line: bytes) -> dict[str, Any] | None:
    """A journal line's entry, or ``None`` when the line is not one."""
    try:
        entry = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    readable = isinstance(entry, dict) and {"t", "s"} <= entry.keys()
    return entry if readable and ("d" in entry or "k" in entry) else None
