"""The contract every mailbox provider keeps.

A provider reads one mailbox. It authenticates, lists what is new since a
cursor, fetches raw MIME for those mails, and optionally runs a post-action.
It knows HTTP, OAuth, paging, throttling and cursor expiry, and nothing about
work orders.

Contract:

- ``sync(cursor)`` yields :class:`Page` objects in mailbox order. Each page
  carries the fetched mails and the cursor that is valid once *every* mail of
  that page and of the pages before it is durably recorded. The caller saves
  ``page.cursor`` only after recording the page's mails.
- With ``cursor=None`` (first connection) a provider yields only mail
  received after ``since`` when it is set, else it yields no mail at all and
  ends with a page whose cursor marks "now": history is never imported by
  accident. The ``folder`` kind is the one exception, on purpose: a folder
  holds mail handed over deliberately, so its first sync reads the files
  present (see :mod:`providers.folder`).
- An expired cursor (Graph 410 / ``syncStateNotFound``, Gmail 404) makes the
  provider resync on its own; it may yield mails again that were seen
  before. The caller deduplicates. So may a restart from a cursor saved
  between the pages of one round (a Gmail cursor moves on the last page
  only); after a completed round a new instance yields nothing twice.
- A mail keeps its ``provider_id`` across syncs, instances and resyncs.
- Throttling (429/503 with ``Retry-After``) is waited out inside the provider
  within its retry budget; past it, :class:`TransientError` is raised.
- A refused or revoked grant raises :class:`AuthError`; a request that can
  never succeed raises :class:`PermanentError`. Messages name the mailbox.
- Tokens and secrets never appear in messages or logs.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["FetchedMail", "Page", "PostAction", "Provider"]


@dataclass(frozen=True)
class FetchedMail:
    """One mail as the provider delivered it."""

    provider_id: str
    raw: bytes
    thread_id: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class Page:
    """A batch of new mail and the cursor that holds once it is recorded."""

    mails: list[FetchedMail] = field(default_factory=list)
    cursor: str | None = None


@dataclass(frozen=True)
class PostAction:
    """What to do to a mail after it is durably recorded.

    ``kind`` is ``none``, ``mark_read``, ``move_to`` or ``add_label``;
    ``argument`` is the folder or label for the last two.
    """

    kind: str = "none"
    argument: str = ""

    @classmethod
    def parse(cls, text: str) -> PostAction:
        """Read ``none``, ``mark_read``, ``move_to:<folder>``, ``add_label:<l>``."""
        kind, _, argument = text.partition(":")
        kind = kind.strip()
        argument = argument.strip()
        if kind in ("none", "mark_read") and not argument:
            return cls(kind)
        if kind in ("move_to", "add_label") and argument:
            return cls(kind, argument)
        raise ValueError(
            f"post_action {text!r}: expected none, mark_read, move_to:<folder> "
            "or add_label:<label>"
        )


class Provider(abc.ABC):
    """One connected mailbox."""

    #: The mailbox name from settings; used in every message.
    name: str

    @abc.abstractmethod
    def sync(self, cursor: str | None) -> Iterator[Page]:
        """Yield the new mail since ``cursor``, page by page (see module doc)."""

    def post_action(self, provider_id: str, action: PostAction) -> None:  # noqa: B027
        """Run ``action`` on one mail; the default provider has none to run."""

    def newest_subjects(self, count: int = 3) -> list[str]:
        """The subjects of the newest mails, as proof that a connection works."""
        return []

    def close(self) -> None:  # noqa: B027
        """Release sockets and files."""
