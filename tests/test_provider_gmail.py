"""GmailProvider against the loopback Google fakes, through the real client code."""

from __future__ import annotations

import json
import stat
import threading
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from providers.base import FetchedMail, PostAction
from providers.errors import AuthError, SettingsError, TransientError
from providers.gmail import (
    GMAIL_MODIFY,
    GMAIL_READONLY,
    GmailProvider,
    connect_installed_app,
)
from tests.fakes.google import (
    FakeGoogle,
    fake_google,
    make_gmail_provider,
    make_service_account_file,
    sample_mail,
    write_token_file,
)
from tests.settings_files import write_client_secrets


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with fake_google() as server:
        yield server


@pytest.fixture
def gmail(fake: FakeGoogle, tmp_path: Path) -> Iterator[GmailProvider]:
    provider = make_gmail_provider(fake, tmp_path)
    yield provider
    provider.close()


@dataclass
class Recorder:
    """The caller's side: records mail by provider id, then saves the cursor."""

    cursor: str | None = None
    mails: dict[str, FetchedMail] = field(default_factory=dict)
    yielded: int = 0

    def run(self, provider: GmailProvider) -> list[FetchedMail]:
        """One sync pass; returns the mails that were new to the caller."""
        new = []
        for page in provider.sync(self.cursor):
            for mail in page.mails:
                self.yielded += 1
                if mail.provider_id not in self.mails:
                    self.mails[mail.provider_id] = mail
                    new.append(mail)
            if page.cursor is not None:
                self.cursor = page.cursor
        return new


def deliver_many(fake: FakeGoogle, count: int, start: int = 0) -> list[str]:
    return [fake.deliver(sample_mail(n)) for n in range(start, start + count)]


# -- first connection and incremental sync ---------------------------------


def test_first_connection_imports_nothing_and_marks_now(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """Without since, the first sync yields no mail and a cursor at the head."""
    deliver_many(fake, 3)

    pages = list(gmail.sync(None))

    assert [p.mails for p in pages] == [[]]
    assert pages[-1].cursor == str(fake.history_id)


def test_since_imports_only_newer_mail_oldest_first(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """With since, the first sync yields only mail received after it, oldest first."""
    now = datetime.now(UTC)
    fake.deliver(sample_mail(1), received_at=now - timedelta(days=3))
    newer = [
        fake.deliver(sample_mail(2), received_at=now - timedelta(hours=5)),
        fake.deliver(sample_mail(3), received_at=now - timedelta(hours=1)),
    ]
    fake.deliver(sample_mail(4), labels=["SENT"])
    provider = make_gmail_provider(fake, tmp_path, since=now - timedelta(days=1))

    recorder = Recorder()
    mails = recorder.run(provider)
    provider.close()

    assert [m.provider_id for m in mails] == newer
    assert recorder.cursor == str(fake.history_id)


def test_mail_delivered_between_syncs_is_yielded_once_with_its_thread(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """New mail comes once, with raw MIME, threadId and internalDate."""
    recorder = Recorder()
    recorder.run(gmail)
    first = fake.deliver(sample_mail(1), thread="thread-a")
    second = fake.deliver(sample_mail(2), thread="thread-a")

    mails = recorder.run(gmail)
    again = recorder.run(gmail)

    assert [(m.provider_id, m.thread_id) for m in mails] == [
        (first, "thread-a"),
        (second, "thread-a"),
    ]
    assert mails[0].raw == sample_mail(1)
    assert mails[0].received_at is not None
    assert abs(mails[0].received_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert again == []
    assert recorder.yielded == 2


def test_mail_outside_the_label_is_not_yielded(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """Sent mail and drafts added to the mailbox are not inbox mail."""
    recorder = Recorder()
    recorder.run(gmail)
    fake.deliver(sample_mail(1), labels=["SENT"])
    inbox = fake.deliver(sample_mail(2))

    assert [m.provider_id for m in recorder.run(gmail)] == [inbox]


def test_a_user_label_is_read_by_name(fake: FakeGoogle, tmp_path: Path) -> None:
    """label may name a user label; it is resolved to its id once."""
    support = fake.create_label("Support")
    provider = make_gmail_provider(fake, tmp_path, label="Support")
    recorder = Recorder()
    recorder.run(provider)
    fake.deliver(sample_mail(1))
    wanted = fake.deliver(sample_mail(2), labels=["INBOX", support])

    assert [m.provider_id for m in recorder.run(provider)] == [wanted]
    provider.close()


def test_an_unknown_label_is_a_settings_error(fake: FakeGoogle, tmp_path: Path) -> None:
    """A label that does not exist is named in a SettingsError."""
    provider = make_gmail_provider(
        fake, tmp_path, label="Nonexistent", since=datetime.now(UTC)
    )

    with pytest.raises(SettingsError, match="'Nonexistent' does not exist"):
        list(provider.sync(None))
    provider.close()


# -- paging and batches ----------------------------------------------------


def test_history_pages_move_the_cursor_only_on_the_last_page(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """Over two history pages and many batches, only the final page moves the cursor."""
    start = next(iter(gmail.sync(None))).cursor
    ids = deliver_many(fake, 520)

    pages = list(gmail.sync(start))

    assert [m.provider_id for p in pages for m in p.mails] == ids
    assert [p.cursor for p in pages[:-1]] == [start] * (len(pages) - 1)
    assert pages[-1].cursor == str(fake.history_id)
    assert max(len(p.mails) for p in pages) == 50
    assert fake.log.count("GET /gmail/v1/users/me/history") == 2


def test_since_import_pages_through_messages_list(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """A first import larger than one list page reads every page, once each."""
    ids = deliver_many(fake, 510)
    provider = make_gmail_provider(
        fake, tmp_path, since=datetime.now(UTC) - timedelta(hours=1)
    )

    pages = list(provider.sync(None))
    provider.close()

    got = [m.provider_id for p in pages for m in p.mails]
    assert sorted(got) == sorted(ids)
    assert len(set(got)) == len(ids)
    assert [p.cursor for p in pages[:-1]] == [None] * (len(pages) - 1)
    assert fake.log.count("GET /gmail/v1/users/me/messages") == 2


def test_bodies_come_in_batches_of_batch_size(fake: FakeGoogle, tmp_path: Path) -> None:
    """Raw MIME of n mails costs ceil(n / batch_size) batch requests."""
    provider = make_gmail_provider(fake, tmp_path, batch_size=20)
    start = next(iter(provider.sync(None))).cursor
    deliver_many(fake, 45)
    fake.reset_counters()

    mails = [m for p in provider.sync(start) for m in p.mails]
    provider.close()

    assert len(mails) == 45
    assert fake.log.count("POST /batch/gmail/v1") == 3
    assert fake.batch_items == 45


def test_mail_deleted_before_fetch_is_skipped(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """A 404 for one batch item skips that mail and keeps the others."""
    recorder = Recorder()
    recorder.run(gmail)
    gone, kept = deliver_many(fake, 2)
    fake.delete(gone)

    assert [m.provider_id for m in recorder.run(gmail)] == [kept]


# -- throttling ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (429, None),
        (403, "rateLimitExceeded"),
        (403, "userRateLimitExceeded"),
        (503, None),
    ],
)
def test_throttled_requests_are_waited_out_honouring_retry_after(
    fake: FakeGoogle, gmail: GmailProvider, status: int, reason: str | None
) -> None:
    """Whole-request 429, 403 rate limits and 503 are retried after Retry-After."""
    recorder = Recorder()
    recorder.run(gmail)
    ids = deliver_many(fake, 60)
    fake.fail_requests(4, status, retry_after=3, reason=reason)

    mails = recorder.run(gmail)

    assert [m.provider_id for m in mails] == ids
    assert recorder.yielded == 60
    assert len(fake.slept) == 4
    assert all(wait >= 3 for wait in fake.slept)


def test_throttled_batch_items_are_retried_alone(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """429 and rate-limit 403 inside a batch resend only those items."""
    recorder = Recorder()
    recorder.run(gmail)
    ids = deliver_many(fake, 50)
    fake.fail_batch_items(10, 429, retry_after=2)
    fake.fail_batch_items(5, 403, reason="userRateLimitExceeded")
    fake.reset_counters()

    mails = recorder.run(gmail)

    assert sorted(m.provider_id for m in mails) == sorted(ids)
    assert recorder.yielded == 50
    assert fake.batch_items == 50 + 15
    assert fake.slept and fake.slept[0] >= 2


def test_a_storm_of_whole_and_item_throttling_loses_and_doubles_nothing(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """Mixed 429/503 on requests and items over several syncs: every mail once."""
    recorder = Recorder()
    recorder.run(gmail)
    ids: list[str] = []
    for round_ in range(5):
        ids += deliver_many(fake, 37, start=round_ * 100)
        fake.fail_requests(2, 429, retry_after=1)
        fake.fail_batch_items(7, 503)
        fake.fail_requests(1, 503, path="/batch")
        recorder.run(gmail)

    assert sorted(recorder.mails) == sorted(ids)
    assert recorder.yielded == len(ids)
    assert recorder.cursor == str(fake.history_id)


def test_throttling_past_the_budget_raises_transient_error(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """Beyond max_retries the provider gives up with TransientError(retry_after)."""
    provider = make_gmail_provider(fake, tmp_path, max_retries=2)
    start = next(iter(provider.sync(None))).cursor
    fake.fail_requests(10, 429, retry_after=5)

    with pytest.raises(TransientError, match="mailbox 'gmail'") as caught:
        list(provider.sync(start))
    provider.close()

    assert caught.value.retry_after == 5
    assert len(fake.slept) == 2


def test_a_retry_after_longer_than_the_wait_cap_is_not_slept(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """A Retry-After beyond max_wait_seconds is handed to the caller at once."""
    provider = make_gmail_provider(fake, tmp_path, max_wait_seconds=60)
    fake.fail_requests(1, 429, retry_after=600)

    with pytest.raises(TransientError) as caught:
        list(provider.sync(None))
    provider.close()

    assert caught.value.retry_after == 600
    assert fake.slept == []


# -- expired history -------------------------------------------------------


def test_expired_history_resyncs_without_losing_mail(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """A 404 on history.list lists the label again; dedupe keeps every mail once."""
    recorder = Recorder()
    recorder.run(gmail)
    seen = deliver_many(fake, 3)
    recorder.run(gmail)
    fake.deliver(sample_mail(90), received_at=datetime.now(UTC) - timedelta(days=9))
    missed = deliver_many(fake, 2, start=10)
    fake.expire_history()
    later = deliver_many(fake, 2, start=20)

    new = recorder.run(gmail)

    assert [m.provider_id for m in new] == missed + later
    assert sorted(recorder.mails) == sorted(seen + missed + later)
    assert recorder.cursor is not None
    fake.reset_counters()
    assert recorder.run(gmail) == []
    assert "GET /gmail/v1/users/me/messages" not in fake.log


def test_expired_history_resync_starts_at_since_when_set(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """With since set, the resync after a 404 covers everything after since."""
    since = datetime.now(UTC) - timedelta(days=5)
    provider = make_gmail_provider(fake, tmp_path, since=since)
    recorder = Recorder()
    recorder.run(provider)
    old = fake.deliver(
        sample_mail(1), received_at=datetime.now(UTC) - timedelta(days=3)
    )
    fake.expire_history()

    assert [m.provider_id for m in recorder.run(provider)] == [old]
    provider.close()


# -- credentials -----------------------------------------------------------


def test_refreshed_and_rotated_token_is_written_back_owner_only(tmp_path: Path) -> None:
    """A refresh that rotates the refresh token is saved at once, mode 0600."""
    with fake_google(rotate_refresh_tokens=True) as fake:
        token_path = tmp_path / "token.json"
        old = write_token_file(fake, token_path)
        provider = make_gmail_provider(fake, tmp_path, token_path=token_path)

        list(provider.sync(None))
        provider.close()

        saved = json.loads(token_path.read_text())
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        assert saved["refresh_token"] != old
        assert fake.refresh_token_valid(saved["refresh_token"])
        assert not fake.refresh_token_valid(old)
        assert saved["token"].startswith("ya29.")

        fake.expire_access_tokens()
        again = make_gmail_provider(fake, tmp_path, token_path=token_path)
        assert list(again.sync(None))[-1].cursor == str(fake.history_id)
        again.close()


def test_an_access_token_refused_with_401_is_refreshed_and_retried(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """A 401 from the API refreshes the token once and repeats the request."""
    recorder = Recorder()
    recorder.run(gmail)
    ids = deliver_many(fake, 3)
    fake.expire_access_tokens()

    assert [m.provider_id for m in recorder.run(gmail)] == ids
    assert fake.log.count("POST /token") == 2


def test_a_group_readable_token_file_is_refused(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """A token file that others may read is refused, naming the file and the fix."""
    token_path = tmp_path / "token.json"
    write_token_file(fake, token_path, mode=0o644)
    provider = make_gmail_provider(fake, tmp_path, token_path=token_path)

    with pytest.raises(SettingsError, match=r"mode 644 .*chmod 600") as caught:
        list(provider.sync(None))

    assert str(token_path) in str(caught.value)
    assert fake.requests == 0


def test_a_missing_token_file_asks_to_connect(fake: FakeGoogle, tmp_path: Path) -> None:
    """A mailbox that was never connected says which command connects it."""
    provider = GmailProvider(
        "gmail", token_path=tmp_path / "absent.json", api_base=fake.api_base
    )

    with pytest.raises(AuthError, match="run 'mail2wo connect gmail'"):
        list(provider.sync(None))


def test_a_revoked_grant_raises_auth_error_without_the_token(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """invalid_grant becomes AuthError asking to reconnect; no token in the text."""
    token_path = tmp_path / "token.json"
    refresh = write_token_file(fake, token_path)
    provider = make_gmail_provider(fake, tmp_path, token_path=token_path)
    fake.revoke()

    with pytest.raises(AuthError) as caught:
        list(provider.sync(None))
    provider.close()

    message = str(caught.value)
    assert message == (
        "mailbox 'gmail': Google refused the stored grant (invalid_grant: token "
        "revoked or expired); run 'mail2wo connect gmail'"
    )
    assert refresh not in message
    assert fake.slept == []


def test_a_service_account_reads_as_the_delegated_user(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """A service account signs a JWT grant for the subject and reads its mailbox."""
    key_file = make_service_account_file(fake, tmp_path / "sa.json")
    provider = make_gmail_provider(
        fake,
        tmp_path,
        auth="service_account",
        service_account_file=key_file,
        subject=fake.email,
    )
    recorder = Recorder()
    recorder.run(provider)
    ids = deliver_many(fake, 2)

    assert [m.provider_id for m in recorder.run(provider)] == ids
    assert fake.log.count("POST /token") == 1
    provider.close()


def test_a_service_account_without_subject_is_a_settings_error(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """Gmail needs domain-wide delegation: a service account must name the user."""
    key_file = make_service_account_file(fake, tmp_path / "sa.json")
    provider = make_gmail_provider(
        fake, tmp_path, auth="service_account", service_account_file=key_file
    )

    with pytest.raises(SettingsError, match="subject"):
        list(provider.sync(None))


def test_an_untrusted_service_account_key_is_an_auth_error(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """A refused jwt-bearer grant names delegation, not the key."""
    with fake_google() as other:
        key_file = make_service_account_file(other, tmp_path / "sa.json")
    provider = make_gmail_provider(
        fake,
        tmp_path,
        auth="service_account",
        service_account_file=key_file,
        subject=fake.email,
    )

    with pytest.raises(AuthError, match="domain-wide delegation") as caught:
        list(provider.sync(None))
    provider.close()

    assert "PRIVATE KEY" not in str(caught.value)


# -- post-actions and proof of connection ----------------------------------


def first_mail(fake: FakeGoogle, provider: GmailProvider) -> str:
    start = next(iter(provider.sync(None))).cursor
    message_id = fake.deliver(sample_mail(1))
    [page] = list(provider.sync(start))
    return page.mails[0].provider_id if page.mails else message_id


def test_mark_read_removes_unread(fake: FakeGoogle, gmail: GmailProvider) -> None:
    """mark_read drops the UNREAD label and nothing else."""
    message_id = first_mail(fake, gmail)

    gmail.post_action(message_id, PostAction.parse("mark_read"))

    assert fake.message(message_id).label_ids == ["INBOX"]


def test_add_label_uses_an_existing_label_or_creates_it(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """add_label finds a label by name, case-insensitively, and creates it if absent."""
    existing = fake.create_label("Werkbon")
    message_id = first_mail(fake, gmail)

    gmail.post_action(message_id, PostAction.parse("add_label:werkbon"))
    gmail.post_action(message_id, PostAction.parse("add_label:Verwerkt"))

    created = fake.label_id("Verwerkt")
    assert created is not None
    assert fake.message(message_id).label_ids == ["INBOX", "UNREAD", existing, created]


def test_move_to_adds_the_label_and_leaves_the_inbox(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """move_to adds the target label and removes the watched label (INBOX)."""
    message_id = first_mail(fake, gmail)

    gmail.post_action(message_id, PostAction.parse("move_to:Afgehandeld"))

    assert fake.message(message_id).label_ids == [
        "UNREAD",
        fake.label_id("Afgehandeld"),
    ]


def test_a_post_action_without_the_write_scope_asks_to_reconnect(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    """A read-only grant cannot modify mail: AuthError naming gmail.modify."""
    provider = make_gmail_provider(fake, tmp_path, scopes=(GMAIL_READONLY,))
    message_id = first_mail(fake, provider)

    with pytest.raises(AuthError, match=r"gmail\.modify"):
        provider.post_action(message_id, PostAction.parse("mark_read"))
    provider.close()


def test_newest_subjects_reads_only_metadata(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """newest_subjects lists the newest mails and reads their Subject headers."""
    for number in range(5):
        fake.deliver(sample_mail(number, subject=f"Lekkage {number}"))

    assert gmail.newest_subjects(3) == ["Lekkage 4", "Lekkage 3", "Lekkage 2"]
    assert fake.log.count("POST /batch/gmail/v1") == 1


# -- cost ------------------------------------------------------------------


def test_steady_state_costs_few_http_requests_per_new_mail(
    fake: FakeGoogle, gmail: GmailProvider
) -> None:
    """Over 500 mails in 20 syncs, HTTP requests per new mail stay at or below 0.15."""
    recorder = Recorder()
    recorder.run(gmail)
    fake.reset_counters()

    for round_ in range(20):
        deliver_many(fake, 25, start=round_ * 25)
        recorder.run(gmail)

    per_mail = fake.requests / len(recorder.mails)
    print(
        f"gmail: {fake.requests} HTTP requests for {len(recorder.mails)} mails"
        f" = {per_mail:.3f} per mail"
    )
    assert len(recorder.mails) == 500
    assert per_mail <= 0.15


# -- connecting ------------------------------------------------------------


def consent(url: str) -> str:
    """What the browser ends on after the person allows access (a redirect)."""

    class Stop(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(Stop)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(url)
    caught.value.close()
    return str(caught.value.headers["Location"])


@pytest.mark.parametrize("paste", ["address", "code"])
def test_headless_connect_accepts_the_redirect_address_or_the_code(
    fake: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paste: str
) -> None:
    """Headless connect prints the URL, takes the pasted answer and saves 0600."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    printed: list[str] = []
    token_path = tmp_path / "token.json"

    def answer(prompt: str) -> str:
        url = next(line for line in printed if line.startswith(fake.auth_uri))
        location = consent(url)
        if paste == "code":
            return urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][
                0
            ]
        return location

    connect_installed_app(
        write_client_secrets(fake, tmp_path / "client.json"),
        token_path,
        [GMAIL_MODIFY],
        headless=True,
        input_func=answer,
        print_func=printed.append,
    )

    saved = json.loads(token_path.read_text())
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert fake.refresh_token_valid(saved["refresh_token"])
    assert saved["scopes"] == [GMAIL_MODIFY]
    provider = make_gmail_provider(fake, tmp_path, token_path=token_path)
    assert list(provider.sync(None))[-1].cursor == str(fake.history_id)
    provider.close()


def test_headless_connect_refuses_an_address_from_another_attempt(
    fake: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pasted address whose state differs is refused and nothing is saved."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    token_path = tmp_path / "token.json"

    with pytest.raises(AuthError, match="another attempt"):
        connect_installed_app(
            write_client_secrets(fake, tmp_path / "client.json"),
            token_path,
            [GMAIL_READONLY],
            headless=True,
            input_func=lambda prompt: "http://localhost/?state=stale&code=4/x",
            print_func=lambda line: None,
        )

    assert not token_path.exists()


def test_connect_with_a_browser_catches_the_redirect_locally(
    fake: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a browser, a one-shot local server receives the code; it is saved."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    threads: list[threading.Thread] = []

    class Browser:
        def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
            def visit() -> None:
                with urllib.request.urlopen(url) as page:
                    page.read()

            threads.append(threading.Thread(target=visit))
            threads[-1].start()
            return True

    monkeypatch.setattr(webbrowser, "get", lambda using=None: Browser())
    token_path = tmp_path / "token.json"

    connect_installed_app(
        write_client_secrets(fake, tmp_path / "client.json"),
        token_path,
        [GMAIL_READONLY],
        headless=False,
    )
    for thread in threads:
        thread.join(timeout=5)

    saved = json.loads(token_path.read_text())
    assert fake.refresh_token_valid(saved["refresh_token"])
