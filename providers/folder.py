"""Local mailboxes: a folder of ``.eml`` files or a Maildir.

The ``folder`` kind is the embedded default for demos, exports and tests. A
folder holds mail that was handed over on purpose, so a first sync reads
every file in it (only those dated after ``since`` when it is set). Later
syncs read only files the caller has not recorded yet: the caller passes
``known`` and the provider skips those files without reading them.

The provider id of a file is its path relative to the mailbox folder; for a
Maildir it is the unique name without the ``:2,`` flags and without
``new/`` or ``cur/``, so a mail client moving a message from ``new`` to
``cur`` does not make it new again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from providers.base import FetchedMail, Page, PostAction, Provider
from providers.errors import PermanentError, SettingsError, TransientError

__all__ = ["FolderProvider"]

_HEADER_BYTES = 64 * 1024


class FolderProvider(Provider):
    """Reads ``.eml`` files (or a Maildir) from one local folder."""

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        since: datetime | None = None,
        page_size: int = 100,
        known: Callable[[str], bool] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.since = since
        self.page_size = page_size
        self.known = known or (lambda _provider_id: False)
        if not path.is_dir():
            raise SettingsError(
                f"mailbox '{name}': path {path} is not a folder"
                if path.exists()
                else f"mailbox '{name}': folder {path} does not exist"
            )

    @property
    def is_maildir(self) -> bool:
        """A Maildir has ``new`` and ``cur`` subfolders."""
        return (self.path / "new").is_dir() and (self.path / "cur").is_dir()

    def _files(self) -> list[tuple[str, Path]]:
        """``(provider_id, path)`` of every mail file, oldest name first."""
        found: list[tuple[str, Path]] = []
        try:
            if self.is_maildir:
                for sub in ("cur", "new"):
                    for entry in os.scandir(self.path / sub):
                        if entry.is_file() and not entry.name.startswith("."):
                            unique = entry.name.split(":2,", 1)[0]
                            found.append((unique, Path(entry.path)))
            else:
                for entry in os.scandir(self.path):
                    if entry.is_file() and entry.name.lower().endswith(".eml"):
                        found.append((entry.name, Path(entry.path)))
        except OSError as exc:
            raise TransientError(
                f"mailbox '{self.name}': cannot list {self.path}: {exc.strerror}"
            ) from None
        found.sort()
        return found

    def _received(self, path: Path, head: bytes) -> datetime:
        """The mail's ``Date`` header, else the file's modification time."""
        headers = BytesHeaderParser().parsebytes(head)
        value = headers.get("Date")
        if value:
            try:
                stamp = parsedate_to_datetime(str(value))
            except (TypeError, ValueError, IndexError):
                stamp = None
            if stamp is not None:
                return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)

    def sync(self, cursor: str | None) -> Iterator[Page]:
        """Yield unrecorded files in pages; the cursor is the scan time."""
        page: list[FetchedMail] = []
        for provider_id, path in self._files():
            if self.known(provider_id):
                continue
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue  # moved away between listing and reading
            except OSError as exc:
                raise TransientError(
                    f"mailbox '{self.name}': cannot read {path}: {exc.strerror}"
                ) from None
            received = self._received(path, raw[:_HEADER_BYTES])
            if self.since is not None and received < self.since:
                continue
            page.append(FetchedMail(provider_id, raw, None, received))
            if len(page) >= self.page_size:
                yield Page(page, _stamp())
                page = []
        yield Page(page, _stamp())

    def post_action(self, provider_id: str, action: PostAction) -> None:
        """``move_to:<sub>`` moves the file into a subfolder; ``mark_read``
        sets the Maildir seen flag; ``add_label`` has no meaning here."""
        if action.kind == "none":
            return
        matches = [p for pid, p in self._files() if pid == provider_id]
        if not matches:
            return
        path = matches[0]
        try:
            if action.kind == "move_to":
                folder = self.path / action.argument
                folder.mkdir(parents=True, exist_ok=True)
                path.rename(folder / path.name)
            elif action.kind == "mark_read" and self.is_maildir:
                unique, _, flags = path.name.partition(":2,")
                if "S" not in flags:
                    flags = "".join(sorted(flags + "S"))
                    path.rename(self.path / "cur" / f"{unique}:2,{flags}")
        except OSError as exc:
            raise PermanentError(
                f"mailbox '{self.name}': {action.kind} on {path.name} failed: "
                f"{exc.strerror}"
            ) from None

    def newest_subjects(self, count: int = 3) -> list[str]:
        files = sorted(self._files(), key=lambda item: item[1].stat().st_mtime)
        subjects: list[str] = []
        for _, path in reversed(files[-count:]):
            with path.open("rb") as handle:
                headers = BytesHeaderParser().parsebytes(handle.read(_HEADER_BYTES))
            subjects.append(str(headers.get("Subject", "")))
        return subjects


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
