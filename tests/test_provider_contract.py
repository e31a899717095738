"""One contract suite, run against every mailbox kind (``providers/base.py``).

Each kind is built against its loopback fake: ``folder`` on a temporary
directory, ``graph`` on the fake Entra ID and Graph (real msal), ``gmail`` on
the fake Google token endpoint and Gmail API (real googleapiclient). A test
names the rule it checks; the caller's side is played by :class:`Recorder`
or, where deduplication is the point, by the real pipeline
(:func:`connector.app.sync_mailbox`).
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from connector.app import open_workspace, sync_mailbox
from connector.settings import Mailbox, Settings
from providers.base import FetchedMail, Provider
from providers.folder import FolderProvider
from state.base import StateStore
from tests.fakes.google import FakeGoogle, make_gmail_provider
from tests.fakes.microsoft import USER, FakeMicrosoft, make_graph_provider

NOW = datetime.now(UTC)
Known = Callable[[str], bool]


def contract_mail(number: int, received: datetime) -> bytes:
    """A small mail, unique per ``number``, dated ``received``."""
    return (
        f"From: klant{number}@example.nl\r\n"
        f"To: {USER}\r\n"
        f"Subject: Melding {number}\r\n"
        f"Message-ID: <contract-{number}@example.nl>\r\n"
        f"Date: {format_datetime(received)}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Melding nummer {number}.\r\n"
    ).encode()


def message_id(raw: bytes) -> str:
    """The Message-ID of a contract mail, without angle brackets."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    line = next(h for h in head.split("\r\n") if h.startswith("Message-ID:"))
    return line.partition(":")[2].strip().strip("<>")


# -- the mailbox kinds ------------------------------------------------------------


class MailboxKind(abc.ABC):
    """A mailbox of one kind plus the knobs a contract test turns."""

    #: A folder holds mail handed over on purpose, so its first sync reads the
    #: files already present (providers/folder.py). Graph and Gmail mailboxes
    #: never import their history without ``since`` (SPEC §1).
    first_sync_reads_present_mail = False
    #: Whether the kind knows conversations (Graph conversationId, Gmail
    #: threadId); a folder of .eml files does not.
    has_threads = True

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._numbers = itertools.count(1)

    def deliver(
        self, *, thread: str | None = None, received: datetime | None = None
    ) -> str:
        """A new mail arrives; returns its Message-ID."""
        number = next(self._numbers)
        raw = contract_mail(number, received or datetime.now(UTC))
        self._put(raw, thread, received)
        return message_id(raw)

    @abc.abstractmethod
    def _put(self, raw: bytes, thread: str | None, received: datetime | None) -> None:
        """Put ``raw`` in the mailbox."""

    @abc.abstractmethod
    def provider(
        self,
        *,
        since: datetime | None = None,
        page_size: int | None = None,
        known: Known | None = None,
    ) -> Provider:
        """A new provider instance, as after a restart (same token files)."""

    @abc.abstractmethod
    def lose_cursor(self, store: StateStore | None = None) -> None:
        """The service forgets every cursor it handed out."""


class FolderKind(MailboxKind):
    first_sync_reads_present_mail = True
    has_threads = False

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.folder = tmp_path / "inbox"
        self.folder.mkdir()

    def _put(self, raw: bytes, thread: str | None, received: datetime | None) -> None:
        name = f"{message_id(raw).split('@')[0]}.eml"
        partial = self.folder / f".{name}.part"
        partial.write_bytes(raw)
        partial.rename(self.folder / name)

    def provider(
        self,
        *,
        since: datetime | None = None,
        page_size: int | None = None,
        known: Known | None = None,
    ) -> Provider:
        options: dict[str, Any] = {"since": since, "known": known}
        if page_size is not None:
            options["page_size"] = page_size
        return FolderProvider("contract", self.folder, **options)

    def lose_cursor(self, store: StateStore | None = None) -> None:
        # A folder's cursor is only a scan time; losing it means the caller
        # holds a value the provider never issued.
        if store is not None:
            store.save_cursor("contract", "not-a-cursor")


class GraphKind(MailboxKind):
    def __init__(self, tmp_path: Path, fake: FakeMicrosoft) -> None:
        super().__init__(tmp_path)
        self.fake = fake

    def _put(self, raw: bytes, thread: str | None, received: datetime | None) -> None:
        self.fake.graph.deliver(USER, raw, conversation_id=thread, received=received)

    def provider(
        self,
        *,
        since: datetime | None = None,
        page_size: int | None = None,
        known: Known | None = None,
    ) -> Provider:
        options: dict[str, Any] = {"name": "contract", "since": since}
        if page_size is not None:
            options["page_size"] = page_size
        return make_graph_provider(self.fake, self.tmp_path, **options)

    def lose_cursor(self, store: StateStore | None = None) -> None:
        self.fake.graph.expire_delta_tokens()


class GmailKind(MailboxKind):
    def __init__(self, tmp_path: Path, fake: FakeGoogle) -> None:
        super().__init__(tmp_path)
        self.fake = fake

    def _put(self, raw: bytes, thread: str | None, received: datetime | None) -> None:
        self.fake.deliver(raw, thread=thread, received_at=received)

    def provider(
        self,
        *,
        since: datetime | None = None,
        page_size: int | None = None,
        known: Known | None = None,
    ) -> Provider:
        options: dict[str, Any] = {"name": "contract", "since": since}
        if page_size is not None:
            options["batch_size"] = page_size
        return make_gmail_provider(self.fake, self.tmp_path, **options)

    def lose_cursor(self, store: StateStore | None = None) -> None:
        self.fake.expire_history()


@pytest.fixture(params=["folder", "graph", "gmail"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailboxKind]:
    """Each mailbox kind against its fake."""
    if request.param == "folder":
        yield FolderKind(tmp_path)
    elif request.param == "graph":
        with FakeMicrosoft() as microsoft:
            yield GraphKind(tmp_path, microsoft)
    else:
        with FakeGoogle() as google:
            yield GmailKind(tmp_path, google)


# -- the caller's side -------------------------------------------------------------


@dataclass
class Recorder:
    """Records mail by provider id, then saves the page's cursor (the contract)."""

    cursor: str | None = None
    mails: dict[str, FetchedMail] = field(default_factory=dict)
    replays: list[str] = field(default_factory=list)

    def knows(self, provider_id: str) -> bool:
        return provider_id in self.mails

    def sync(self, provider: Provider, *, pages: int | None = None) -> list[str]:
        """One pass (or its first ``pages`` pages); the Message-IDs new to us."""
        new: list[str] = []
        stream = provider.sync(self.cursor)
        try:
            for page in itertools.islice(stream, pages):
                for mail in page.mails:
                    if mail.provider_id in self.mails:
                        self.replays.append(mail.provider_id)
                        continue
                    self.mails[mail.provider_id] = mail
                    new.append(message_id(mail.raw))
                self.cursor = page.cursor
        finally:
            stream.close()
            provider.close()
        return new

    def ids_by_message(self) -> dict[str, str]:
        return {message_id(m.raw): pid for pid, m in self.mails.items()}


def connected(kind: MailboxKind, **options: Any) -> tuple[Recorder, Provider]:
    """A recorder after the first connection, and a fresh provider for later."""
    recorder = Recorder()
    recorder.sync(kind.provider(known=recorder.knows, **options))
    assert recorder.cursor is not None
    return recorder, kind.provider(known=recorder.knows, **options)


# -- first connection ---------------------------------------------------------------


def test_first_connection_without_since_imports_no_history(kind: MailboxKind) -> None:
    """A first sync yields no old mail, only a cursor; a folder reads its files."""
    old = [kind.deliver(received=NOW - timedelta(days=3)) for _ in range(3)]
    recorder = Recorder()

    first = recorder.sync(kind.provider(known=recorder.knows))
    arrived = kind.deliver()
    later = recorder.sync(kind.provider(known=recorder.knows))

    assert recorder.cursor is not None
    if kind.first_sync_reads_present_mail:
        assert first == old
    else:
        assert first == []
    assert later == [arrived]


def test_first_connection_with_since_yields_only_newer_mail(kind: MailboxKind) -> None:
    """``since`` imports exactly the mail received after it, oldest first."""
    kind.deliver(received=NOW - timedelta(days=5))
    newer = [
        kind.deliver(received=NOW - timedelta(hours=30)),
        kind.deliver(received=NOW - timedelta(hours=2)),
    ]
    recorder = Recorder()

    got = recorder.sync(kind.provider(since=NOW - timedelta(days=2)))

    assert got == newer
    assert recorder.cursor is not None


# -- incremental sync and restarts ---------------------------------------------------


def test_incremental_sync_yields_only_new_mail_once(kind: MailboxKind) -> None:
    """Mail arriving between syncs comes once, with raw MIME and thread id."""
    recorder, provider = connected(kind)
    first = kind.deliver(thread="conversation-a")
    second = kind.deliver(thread="conversation-a")

    got = recorder.sync(provider)
    again = recorder.sync(kind.provider(known=recorder.knows))

    assert got == [first, second]
    assert again == []
    assert recorder.replays == []
    threads = {m.thread_id for m in recorder.mails.values()}
    assert threads == ({"conversation-a"} if kind.has_threads else {None})
    for mail in recorder.mails.values():
        assert mail.raw.startswith(b"From: klant")


def test_restart_with_the_saved_cursor_yields_nothing_twice(kind: MailboxKind) -> None:
    """A new provider instance resumes from the saved cursor without replays."""
    recorder, provider = connected(kind)
    before = [kind.deliver() for _ in range(3)]
    recorder.sync(provider)

    restarted = recorder.sync(kind.provider(known=recorder.knows))
    after = kind.deliver()
    resumed = recorder.sync(kind.provider(known=recorder.knows))

    assert list(recorder.ids_by_message()) == [*before, after]
    assert restarted == []
    assert resumed == [after]
    assert recorder.replays == []


def test_restart_mid_round_loses_nothing_and_replays_only_recorded_mail(
    kind: MailboxKind,
) -> None:
    """Killed after one page: the next instance brings the rest; replays are
    only of mail already recorded, which the caller skips."""
    recorder, _ = connected(kind, page_size=2)
    delivered = [kind.deliver() for _ in range(5)]

    recorder.sync(kind.provider(known=recorder.knows, page_size=2), pages=1)
    recorded_before = set(recorder.mails)
    recorder.sync(kind.provider(known=recorder.knows, page_size=2))

    assert len(recorded_before) == 2
    assert sorted(recorder.ids_by_message()) == sorted(delivered)
    assert set(recorder.replays) <= recorded_before
    assert recorder.sync(kind.provider(known=recorder.knows)) == []


# -- expired cursors and stable ids --------------------------------------------------


def contract_settings(tmp_path: Path) -> tuple[Settings, Mailbox]:
    """Settings with no configuration: every new mail ends as no_configuration."""
    inbox = tmp_path / "unused-inbox"
    inbox.mkdir(exist_ok=True)
    settings = Settings.model_validate(
        {
            "state": {"path": tmp_path / "var"},
            "mailbox": [{"name": "contract", "kind": "folder", "path": inbox}],
            "source": tmp_path / "settings.toml",
        }
    )
    return settings, settings.mailbox[0]


def test_expired_cursor_resyncs_without_duplicates_after_pipeline_dedupe(
    kind: MailboxKind, tmp_path: Path
) -> None:
    """After the cursor is lost, the pipeline records every mail exactly once."""
    settings, mailbox = contract_settings(tmp_path)
    with open_workspace(settings) as workspace:
        store = workspace.store

        def known(provider_id: str) -> bool:
            """The wiring of connector.app.build_provider for a folder."""
            return store.key_for_provider_id("contract", provider_id) is not None

        def sync() -> list[str]:
            report = sync_mailbox(
                workspace, mailbox, provider=kind.provider(known=known)
            )
            assert report.error is None, report.error
            return [r.message_id for r in report.results]

        sync()
        seen = [kind.deliver() for _ in range(2)]
        first = sync()
        missed = [kind.deliver() for _ in range(2)]
        kind.lose_cursor(store)
        later = kind.deliver()
        resynced = sync()
        after = sync()
        entries = list(store.log_entries())

    assert first == seen
    assert resynced == [*missed, later]
    assert after == []
    logged = [e["message_id"] for e in entries]
    assert sorted(logged) == sorted([*seen, *missed, later])
    assert {e["outcome"] for e in entries} == {"no_configuration"}


def test_provider_ids_are_stable_across_instances_and_resyncs(
    kind: MailboxKind,
) -> None:
    """The same mail keeps its provider id when a new instance reads it again."""
    recorder, provider = connected(kind)
    for _ in range(3):
        kind.deliver()
    recorder.sync(provider)
    missed = kind.deliver()
    kind.lose_cursor()

    again = Recorder(cursor=recorder.cursor)
    again.sync(kind.provider())

    first_ids = recorder.ids_by_message()
    second_ids = again.ids_by_message()
    assert len(first_ids) == 3
    assert list(second_ids) == [*first_ids, missed]
    assert {m: second_ids[m] for m in first_ids} == first_ids
