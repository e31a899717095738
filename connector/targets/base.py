"""The contract every work-order target keeps.

A target is where work orders land: the embedded ``local`` store, OutSmart's
API, or a webhook. The pipeline calls it only after the decision is recorded
with its work-order number, so every call here may be a retry of one that
was cut off:

- ``create_workorder`` must create the order at most once per
  ``WorkorderNo``: look it up first, and do nothing when it exists.
- ``append_note`` must add a note at most once per ``note_key``.
- ``add_relation`` / ``add_address`` are upserts by ``debtor_number`` /
  ``adr_code``.

Errors: :class:`~providers.errors.TransientError` (retry later),
:class:`~providers.errors.AuthError` (credentials refused),
:class:`~providers.errors.PermanentError` (this order can never be
accepted). Messages name the target and the work-order number and never
contain tokens.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.directory import Address, Directory, Relation

__all__ = ["FileAttachment", "Note", "Target"]


@dataclass(frozen=True)
class FileAttachment:
    """A file that goes onto a work order or a note."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Note:
    """A follow-up added to an existing work order."""

    text: str
    attachments: tuple[FileAttachment, ...] = ()
    sender: str = ""
    subject: str = ""


class Target(abc.ABC):
    """Where work orders go."""

    #: ``local``, ``outsmart`` or ``webhook``.
    kind: str

    @abc.abstractmethod
    def load_directory(self) -> Directory:
        """The relation directory the customer rules look things up in."""

    @abc.abstractmethod
    def add_relation(self, relation: Relation) -> None:
        """Add (or update) a relation that the customer rules decided to add."""

    @abc.abstractmethod
    def add_address(self, address: Address) -> None:
        """Add (or update) a work address of a relation."""

    @abc.abstractmethod
    def has_workorder(self, workorder_no: str) -> bool:
        """Whether a work order with this number exists."""

    @abc.abstractmethod
    def create_workorder(
        self, workorder: Mapping[str, Any], attachments: Sequence[FileAttachment]
    ) -> None:
        """Create the order once; a repeated call with the same number is a no-op."""

    @abc.abstractmethod
    def append_note(self, workorder_no: str, note: Note, note_key: str) -> None:
        """Add a follow-up note once per ``note_key``."""

    def refresh(self) -> None:  # noqa: B027
        """Start a new sync pass: a cached directory is read again when needed."""

    def check_online(self) -> str:
        """A harmless read that proves the target answers; returns what it saw."""
        return f"{self.kind}: nothing to check"

    def close(self) -> None:  # noqa: B027
        """Release connections and files."""
