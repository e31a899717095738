"""GraphProvider against loopback fakes of Entra ID and Graph, with real msal."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from providers.base import PostAction
from providers.errors import AuthError, SettingsError, TransientError
from providers.graph import GraphProvider
from tests.fakes.loopback import Fault, Response
from tests.fakes.microsoft import (
    CLIENT_ID,
    CLIENT_SECRET,
    USER,
    FakeMicrosoft,
    deliver,
    make_graph_provider,
)

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def fake() -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft() as server:
        yield server


def mail(number: int, subject: str = "Storing") -> bytes:
    return (
        f"From: klant{number}@example.nl\r\nTo: {USER}\r\n"
        f"Subject: {subject} {number}\r\nMessage-ID: <m{number}@example.nl>\r\n"
        f"\r\nDe cv-ketel doet het niet ({number}).\r\n"
    ).encode()


def connect(provider: GraphProvider) -> str:
    """The first sync of a mailbox; returns the cursor it ends with."""
    pages = list(provider.sync(None))
    assert pages[-1].cursor is not None
    return pages[-1].cursor


def drain(provider: GraphProvider, cursor: str | None) -> tuple[list[str], str]:
    """Every provider id one sync yields, in order, and the final cursor."""
    ids: list[str] = []
    for page in provider.sync(cursor):
        ids.extend(m.provider_id for m in page.mails)
        assert page.cursor is not None
        cursor = page.cursor
    assert cursor is not None
    return ids, cursor


# -- first connection and incremental sync --------------------------------


def test_first_connection_imports_no_history(fake: FakeMicrosoft, tmp_path: Path):
    """Without ``since`` the first sync yields no mail and ends with a cursor."""
    for number in range(3):
        fake.graph.deliver(USER, mail(number), received=NOW - dt.timedelta(days=3))
    provider = make_graph_provider(fake, tmp_path)

    pages = list(provider.sync(None))

    assert [m for page in pages for m in page.mails] == []
    assert pages[-1].cursor is not None
    first = fake.graph_requests()[0]
    assert first.query["$filter"][0].startswith("receivedDateTime ge ")
    assert first.query["changeType"] == ["created"]
    assert "odata.maxpagesize=50" in first.prefer


def test_since_imports_only_mail_received_after_it(fake: FakeMicrosoft, tmp_path: Path):
    """With ``since`` the first sync yields exactly the mail received after it."""
    fake.graph.deliver(USER, mail(1), received=NOW - dt.timedelta(days=5))
    wanted = fake.graph.deliver(USER, mail(2), received=NOW - dt.timedelta(days=1))
    provider = make_graph_provider(fake, tmp_path, since=NOW - dt.timedelta(days=2))

    ids, _ = drain(provider, None)

    assert ids == [wanted.id]


def test_mail_delivered_between_syncs_is_yielded_once(
    fake: FakeMicrosoft, tmp_path: Path
):
    """New mail comes once with its raw MIME, thread and time; updates do not."""
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    deliver(fake, mail(1), "conversation-1")
    deliver(fake, mail(2), None)

    pages = list(provider.sync(cursor))
    mails = [m for page in pages for m in page.mails]
    fake.graph.mark_read(USER, mails[0].provider_id)
    again, _ = drain(provider, pages[-1].cursor)

    assert [m.raw for m in mails] == [mail(1), mail(2)]
    assert mails[0].thread_id == "conversation-1"
    assert mails[1].thread_id
    assert mails[0].received_at is not None
    assert abs(mails[0].received_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert again == []


def test_each_delta_page_is_a_page_with_a_resumable_cursor(
    fake: FakeMicrosoft, tmp_path: Path
):
    """One Page per delta page; a nextLink cursor resumes in a new process.

    A resumed round is followed by one more round from its deltaLink, so
    mail delivered since the round began comes in the same pass.
    """
    provider = make_graph_provider(fake, tmp_path, page_size=5)
    cursor = connect(provider)
    delivered = [fake.graph.deliver(USER, mail(n)).id for n in range(12)]

    pages = iter(provider.sync(cursor))
    first = next(pages)
    pages.close()  # the process dies after recording the first page
    restarted = make_graph_provider(fake, tmp_path, page_size=5)
    rest = list(restarted.sync(first.cursor))

    assert len(first.mails) == 5
    assert "$skiptoken=" in str(first.cursor)
    assert [len(page.mails) for page in rest] == [5, 2, 0]
    assert "$deltatoken=" in str(rest[-1].cursor)
    yielded = [m.provider_id for page in [first, *rest] for m in page.mails]
    assert yielded == delivered


def test_replayed_delta_entries_do_not_double_mail(fake: FakeMicrosoft, tmp_path: Path):
    """Entries Graph sends again (in a round or the next) are yielded once."""
    fake.graph.replay_window = 4
    fake.graph.duplicate_entries = True
    provider = make_graph_provider(fake, tmp_path, page_size=3)
    cursor = connect(provider)
    delivered: list[str] = []
    yielded: list[str] = []

    for batch in range(3):
        delivered += [
            fake.graph.deliver(USER, mail(batch * 10 + n)).id for n in range(4)
        ]
        ids, cursor = drain(provider, cursor)
        yielded += ids

    assert yielded == delivered


def test_removed_entries_and_updates_of_seen_mail_are_skipped(
    fake: FakeMicrosoft, tmp_path: Path
):
    """``@removed`` tombstones and entries for mail already yielded fetch nothing."""
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    seen = fake.graph.deliver(USER, mail(1))
    ids, cursor = drain(provider, cursor)
    page = {
        "value": [
            {"id": "AAkALgGone", "@removed": {"reason": "deleted"}},
            {"id": seen.id, "isRead": True},
        ],
        "@odata.deltaLink": cursor.partition("#")[0],
    }
    fake.server.inject(Fault(Response.json(200, page)))
    fake.reset_log()

    again, _ = drain(provider, cursor)

    assert ids == [seen.id]
    assert again == []
    assert [e.path.rsplit("/", 1)[-1] for e in fake.requests] == ["delta"]


def test_mail_that_vanishes_before_its_mime_is_read_is_skipped(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A 404 on ``$value`` drops that mail and keeps the rest of the page."""
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    gone = fake.graph.deliver(USER, mail(1))
    kept = fake.graph.deliver(USER, mail(2))
    fake.fail_graph(404, "ErrorItemNotFound", "Not found.", path_contains=gone.id)

    ids, _ = drain(provider, cursor)

    assert ids == [kept.id]


# -- throttling and server errors ------------------------------------------


def test_throttle_storm_is_waited_out_without_losing_or_doubling_mail(
    fake: FakeMicrosoft, tmp_path: Path
):
    """429s with Retry-After are slept out as asked; every mail comes once."""
    provider = make_graph_provider(fake, tmp_path, page_size=10)
    cursor = connect(provider)
    delivered = [fake.graph.deliver(USER, mail(n)).id for n in range(25)]
    fake.throttle(4, retry_after="1")
    fake.throttle(8, retry_after="0", every=3)

    ids, _ = drain(provider, cursor)

    assert ids == delivered
    assert fake.sleeps.count(1.0) == 4
    assert fake.sleeps.count(0.0) == 8
    assert len([e for e in fake.requests if e.status == 429]) == 12


def test_throttling_past_the_retry_budget_raises_transient_error(
    fake: FakeMicrosoft, tmp_path: Path
):
    """After ``max_retries`` retries the provider gives up with ``retry_after``."""
    provider = make_graph_provider(fake, tmp_path, max_retries=3)
    cursor = connect(provider)
    delivered = fake.graph.deliver(USER, mail(1)).id
    fake.throttle(10, retry_after="2")

    with pytest.raises(TransientError) as caught:
        drain(provider, cursor)
    fake.server.faults.clear()
    ids, _ = drain(provider, cursor)

    assert caught.value.retry_after == 2.0
    assert fake.sleeps == [2.0, 2.0, 2.0]
    assert "'service'" in str(caught.value)
    assert ids == [delivered]


def test_retry_after_beyond_max_wait_is_not_slept(fake: FakeMicrosoft, tmp_path: Path):
    """A Retry-After longer than ``max_wait_seconds`` is handed to the caller."""
    provider = make_graph_provider(fake, tmp_path, max_wait_seconds=60)
    cursor = connect(provider)
    fake.throttle(1, retry_after="300")

    with pytest.raises(TransientError) as caught:
        drain(provider, cursor)

    assert caught.value.retry_after == 300.0
    assert fake.sleeps == []


def test_503_without_retry_after_backs_off_exponentially(
    fake: FakeMicrosoft, tmp_path: Path
):
    """5xx without Retry-After waits with growing, jittered, capped backoff."""
    provider = make_graph_provider(fake, tmp_path, max_wait_seconds=3)
    cursor = connect(provider)
    delivered = fake.graph.deliver(USER, mail(1)).id
    fake.throttle(4, status=503, retry_after=None)
    fake.throttle(1, status=504, retry_after=None)

    ids, _ = drain(provider, cursor)

    assert ids == [delivered]
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(fake.sleeps) == len(ceilings)
    for wait, ceiling in zip(fake.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling


# -- cursor expiry -----------------------------------------------------------


def test_expired_delta_token_resyncs_without_losing_mail(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A 410 SyncStateNotFound restarts the round; caller-side dedupe sees all."""
    fake.graph.deliver(USER, mail(0), received=NOW - dt.timedelta(days=3))
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    first = fake.graph.deliver(USER, mail(1)).id
    ids, cursor = drain(provider, cursor)
    later = [fake.graph.deliver(USER, mail(n)).id for n in (2, 3)]
    fake.graph.expire_delta_tokens()

    restarted = make_graph_provider(fake, tmp_path)
    again, cursor = drain(restarted, cursor)
    recorded = set(ids) | set(again)
    after, _ = drain(restarted, cursor)

    assert recorded == {first, *later}
    assert after == []
    assert any(e.status == 410 for e in fake.requests)


def test_expired_next_link_mid_round_resyncs(fake: FakeMicrosoft, tmp_path: Path):
    """A nextLink that goes stale between pages makes a fresh round, no loss."""
    provider = make_graph_provider(fake, tmp_path, page_size=2)
    cursor = connect(provider)
    delivered = {fake.graph.deliver(USER, mail(n)).id for n in range(5)}
    recorded: set[str] = set()

    for number, page in enumerate(provider.sync(cursor)):
        recorded.update(m.provider_id for m in page.mails)
        if number == 0:
            fake.graph.expire_delta_tokens()

    assert recorded == delivered


def test_410_on_every_round_gives_up_with_transient_error(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A Graph that keeps losing the delta state is a transient failure."""
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    fake.fail_graph(410, "SyncStateNotFound", "Gone.", count=10)

    with pytest.raises(TransientError, match="losing the delta state"):
        drain(provider, cursor)


# -- tokens --------------------------------------------------------------------


def test_token_expiry_mid_sync_renews_once_and_continues(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A 401 InvalidAuthenticationToken fetches a new token and retries."""
    provider = make_graph_provider(fake, tmp_path, page_size=2)
    cursor = connect(provider)
    delivered = [fake.graph.deliver(USER, mail(n)).id for n in range(4)]
    yielded: list[str] = []

    for number, page in enumerate(provider.sync(cursor)):
        yielded += [m.provider_id for m in page.mails]
        if number == 0:
            fake.entra.expire_access_tokens()

    assert yielded == delivered
    assert len(fake.token_requests()) == 2
    assert len([e for e in fake.requests if e.status == 401]) == 1


def test_token_refused_after_renewal_raises_auth_error(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A 401 is retried once with a new token, never in a loop."""
    provider = make_graph_provider(fake, tmp_path)
    fake.fail_graph(
        401, "InvalidAuthenticationToken", "Access token is empty.", count=5
    )

    with pytest.raises(AuthError, match="refused a fresh access token"):
        connect(provider)

    assert len([e for e in fake.requests if e.status == 401]) == 2


def test_wrong_client_secret_raises_auth_error_without_the_secret(
    fake: FakeMicrosoft, tmp_path: Path
):
    """invalid_client (AADSTS7000215) names the mailbox and app, never the secret."""
    secret = "Wrong~Secret.Value_123"
    provider = make_graph_provider(fake, tmp_path, client_secret=secret)

    with pytest.raises(AuthError) as caught:
        connect(provider)

    message = str(caught.value)
    assert "mailbox 'service'" in message
    assert "AADSTS7000215" in message
    assert CLIENT_ID in message
    assert secret not in message
    assert CLIENT_SECRET not in message


def test_expired_client_secret_raises_auth_error_saying_so(
    fake: FakeMicrosoft, tmp_path: Path
):
    """invalid_client AADSTS7000222 tells the administrator the secret expired."""
    fake.entra.apps[CLIENT_ID].secret_expired = True
    provider = make_graph_provider(fake, tmp_path)

    with pytest.raises(AuthError, match=r"AADSTS7000222.*expired") as caught:
        connect(provider)

    assert CLIENT_SECRET not in str(caught.value)


def test_missing_admin_consent_raises_auth_error(fake: FakeMicrosoft, tmp_path: Path):
    """AADSTS65001 asks an administrator to grant consent."""
    fake.fail_token(
        400,
        "invalid_grant",
        "AADSTS65001: The user or administrator has not consented.",
        [65001],
    )
    provider = make_graph_provider(fake, tmp_path)

    with pytest.raises(AuthError, match="admin consent"):
        connect(provider)


def test_unknown_tenant_raises_auth_error(fake: FakeMicrosoft, tmp_path: Path):
    """A tenant Entra does not know (AADSTS90002) is named in the error."""
    provider = make_graph_provider(fake, tmp_path, tenant_id="contoso-typo")

    with pytest.raises(AuthError, match=r"tenant 'contoso-typo'.*AADSTS90002"):
        connect(provider)


def test_mailbox_outside_the_access_policy_raises_auth_error(
    fake: FakeMicrosoft, tmp_path: Path
):
    """403 ErrorAccessDenied names the mailbox, the address and the policy."""
    fake.graph.denied_users.add(USER)
    provider = make_graph_provider(fake, tmp_path)

    with pytest.raises(AuthError) as caught:
        connect(provider)

    assert str(caught.value).startswith(
        "mailbox 'service': Graph refused access to service@contoso.nl "
        "(ErrorAccessDenied): the app's access policy may not include this mailbox"
    )


def test_certificate_credentials_sign_in_with_a_client_assertion(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A PEM key and thumbprint sign a JWT assertion; no secret is sent."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail2wo")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()
    key_path = tmp_path / "graph-key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    fake.entra.apps[CLIENT_ID].certificate_key = key.public_key()
    fake.entra.apps[CLIENT_ID].thumbprint = thumbprint
    provider = make_graph_provider(
        fake, tmp_path, client_secret=None, certificate=(str(key_path), thumbprint)
    )

    connect(provider)

    form = fake.entra.token_requests[-1]
    assert "client_assertion" in form
    assert "client_secret" not in form


def test_certificate_key_that_is_not_pem_is_a_settings_error(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A key file msal cannot use is refused when the mailbox is set up."""
    key_path = tmp_path / "graph-key.pem"
    key_path.write_text("not a key")
    key_path.chmod(0o600)

    with pytest.raises(SettingsError, match="not an unencrypted PEM private key"):
        make_graph_provider(
            fake, tmp_path, client_secret=None, certificate=(str(key_path), "AB")
        )


def test_token_cache_is_written_owner_only(fake: FakeMicrosoft, tmp_path: Path):
    """The msal token cache is saved with mode 0600 as soon as it changes."""
    provider = make_graph_provider(fake, tmp_path)

    connect(provider)

    cache = tmp_path / "graph-token-cache.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert "AccessToken" in json.loads(cache.read_text())


def test_group_readable_token_cache_is_refused(fake: FakeMicrosoft, tmp_path: Path):
    """A token cache that others may read is refused with a chmod hint."""
    cache = tmp_path / "graph-token-cache.json"
    cache.write_text("{}")
    os.chmod(cache, 0o644)

    with pytest.raises(SettingsError, match="chmod 600") as caught:
        make_graph_provider(fake, tmp_path)

    assert "mailbox 'service'" in str(caught.value)


def test_device_code_connects_once_then_refreshes_silently(
    fake: FakeMicrosoft, tmp_path: Path
):
    """Device code signs in once; later runs refresh and save the rotated token."""
    fake.entra.register_app("public-app")
    shown: list[str] = []

    def sign_in(flow: dict) -> None:
        shown.append(flow["message"])
        fake.entra.approve(flow["user_code"], USER)

    connecting = make_graph_provider(
        fake,
        tmp_path,
        auth="device_code",
        client_id="public-app",
        client_secret=None,
        device_flow_callback=sign_in,
    )
    fake.graph.deliver(USER, mail(1, "Welkom"))
    subjects = connecting.newest_subjects(3)
    fake.entra.expire_access_tokens()
    later = make_graph_provider(
        fake, tmp_path, auth="device_code", client_id="public-app", client_secret=None
    )
    connect(later)

    cache = json.loads((tmp_path / "graph-token-cache.json").read_text())
    saved = [entry["secret"] for entry in cache["RefreshToken"].values()]
    assert subjects == ["Welkom 1"]
    assert len(shown) == 1 and "devicelogin" in shown[0]
    assert saved == list(fake.entra.refresh_tokens)
    assert fake.entra.token_requests[-1]["grant_type"] == "refresh_token"


def test_device_code_mailbox_without_a_sign_in_asks_to_connect(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A delegated mailbox with an empty cache says which command connects it."""
    fake.entra.register_app("public-app")
    provider = make_graph_provider(
        fake, tmp_path, auth="device_code", client_id="public-app", client_secret=None
    )

    with pytest.raises(AuthError, match="mail2wo connect service"):
        connect(provider)


def test_revoked_grant_raises_auth_error_asking_to_reconnect(
    fake: FakeMicrosoft, tmp_path: Path
):
    """invalid_grant (AADSTS50173) on refresh means: reconnect the mailbox."""
    fake.entra.register_app("public-app")
    options = {"auth": "device_code", "client_id": "public-app", "client_secret": None}
    connecting = make_graph_provider(
        fake,
        tmp_path,
        device_flow_callback=lambda f: fake.entra.approve(f["user_code"], USER),
        **options,
    )
    connect(connecting)
    fake.entra.revoke_refresh_tokens()
    fake.entra.expire_access_tokens()
    later = make_graph_provider(fake, tmp_path, **options)

    with pytest.raises(AuthError, match=r"revoked.*AADSTS50173.*mail2wo connect"):
        connect(later)


# -- post actions, folders, subjects ----------------------------------------


def test_post_actions_hit_the_right_endpoints(fake: FakeMicrosoft, tmp_path: Path):
    """mark_read PATCHes isRead, move_to POSTs move, add_label adds a category."""
    processed = fake.graph.add_folder(USER, "Verwerkt")
    provider = make_graph_provider(fake, tmp_path)
    first, second, third = (fake.graph.deliver(USER, mail(n)) for n in range(3))
    third.categories = ["Klant"]
    fake.reset_log()

    provider.post_action(first.id, PostAction.parse("mark_read"))
    provider.post_action(second.id, PostAction.parse("move_to:Verwerkt"))
    provider.post_action(third.id, PostAction.parse("add_label:mail2wo"))

    prefix = f"/v1.0/users/{USER}"
    calls = [(e.method, e.path.removeprefix(prefix)) for e in fake.graph_requests()]
    assert calls == [
        ("PATCH", f"/messages/{first.id}"),
        ("GET", "/mailFolders"),
        ("POST", f"/messages/{second.id}/move"),
        ("GET", f"/messages/{third.id}"),
        ("PATCH", f"/messages/{third.id}"),
    ]
    assert first.is_read
    assert second.folder_id == processed.id
    assert third.categories == ["Klant", "mail2wo"]


def test_post_action_on_a_vanished_message_does_nothing(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A mail deleted before its post-action is not an error."""
    provider = make_graph_provider(fake, tmp_path)
    message = fake.graph.deliver(USER, mail(1))
    fake.graph.delete(USER, message.id)

    provider.post_action(message.id, PostAction.parse("mark_read"))


def test_post_action_without_write_permission_raises_auth_error(
    fake: FakeMicrosoft, tmp_path: Path
):
    """A read-only app registration is told it needs Mail.ReadWrite."""
    fake.entra.apps[CLIENT_ID].roles = {"Mail.Read"}
    provider = make_graph_provider(fake, tmp_path)
    message = fake.graph.deliver(USER, mail(1))

    with pytest.raises(AuthError, match=r"Mail\.ReadWrite"):
        provider.post_action(message.id, PostAction.parse("mark_read"))


def test_folder_path_is_resolved_by_display_name(fake: FakeMicrosoft, tmp_path: Path):
    """``folder = "Inbox/Storingen"`` reads that subfolder of the Inbox."""
    storingen = fake.graph.add_folder(USER, "Storingen", parent="inbox")
    provider = make_graph_provider(fake, tmp_path, folder="Inbox/Storingen")
    cursor = connect(provider)
    fake.graph.deliver(USER, mail(1))
    wanted = fake.graph.deliver(USER, mail(2), folder=storingen.id)

    ids, _ = drain(provider, cursor)

    assert ids == [wanted.id]


def test_newest_subjects_lists_the_folder_newest_first(
    fake: FakeMicrosoft, tmp_path: Path
):
    """newest_subjects proves the connection with the latest subjects."""
    for number in range(4):
        received = NOW - dt.timedelta(hours=4 - number)
        fake.graph.deliver(USER, mail(number), received=received)
    provider = make_graph_provider(fake, tmp_path)

    assert provider.newest_subjects(2) == ["Storing 3", "Storing 2"]


# -- hygiene -------------------------------------------------------------------


def test_every_graph_request_asks_for_immutable_ids(
    fake: FakeMicrosoft, tmp_path: Path
):
    """Ids must survive moves, so every Graph call prefers ImmutableId."""
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    message = fake.graph.deliver(USER, mail(1))
    drain(provider, cursor)
    provider.post_action(message.id, PostAction.parse("move_to:archive"))

    assert all('IdType="ImmutableId"' in e.prefer for e in fake.graph_requests())
    assert fake.graph.messages(USER, "archive")[0].id == message.id


def test_logs_carry_no_tokens_secrets_or_delta_tokens(
    fake: FakeMicrosoft, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Request log lines hold method, path and status, and nothing secret."""
    caplog.set_level(logging.DEBUG, logger="providers")
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    fake.graph.deliver(USER, mail(1))
    fake.entra.expire_access_tokens()
    drain(provider, cursor)

    ours = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("providers")
    )
    assert "GET /v1.0/users/service@contoso.nl/messages/" in ours
    assert "-> 401" in ours
    for secret in [CLIENT_SECRET, *fake.entra.access_tokens, "deltatoken"]:
        assert secret not in ours


def test_impossible_settings_are_refused_at_construction(tmp_path: Path):
    """Bad auth modes, credentials and authorities raise SettingsError."""
    base = {
        "tenant_id": "t",
        "client_id": "c",
        "user": USER,
        "token_cache_path": tmp_path / "cache.json",
    }
    bad = [
        {"auth": "password", "client_secret": "x"},
        {"client_secret": None},
        {"client_secret": "x", "certificate": ("k.pem", "AB")},
        {"client_secret": "x", "authority": "http://login.example"},
        {"client_secret": "x", "page_size": 0},
    ]
    for options in bad:
        with pytest.raises(SettingsError, match="mailbox 'service'"):
            GraphProvider("service", **base, **options)


# -- cost ----------------------------------------------------------------------


def test_steady_state_needs_at_most_1_1_requests_per_new_mail(
    fake: FakeMicrosoft, tmp_path: Path
):
    """500 mails over 10 syncs cost at most 1.1 HTTP requests each."""
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    fake.reset_log()
    yielded: list[str] = []

    for batch in range(10):
        for number in range(50):
            fake.graph.deliver(USER, mail(batch * 50 + number))
        ids, cursor = drain(provider, cursor)
        yielded += ids

    ratio = len(fake.requests) / len(yielded)
    print(f"\nGraph steady state: {ratio:.3f} HTTP requests per new mail")
    assert len(set(yielded)) == 500
    assert ratio <= 1.1


def test_large_raw_mime_arrives_byte_for_byte(fake: FakeMicrosoft, tmp_path: Path):
    """The raw MIME is returned byte for byte, whatever its size."""
    provider = make_graph_provider(fake, tmp_path)
    cursor = connect(provider)
    body = b"x" * 2_000_000
    raw = mail(1) + body
    fake.graph.deliver(USER, raw)

    pages = list(provider.sync(cursor))

    fetched = pages[-1].mails[0].raw
    assert hashlib.sha256(fetched).digest() == hashlib.sha256(raw).digest()


def test_a_resumed_round_also_reads_mail_that_came_in_meanwhile(
    fake: FakeMicrosoft, tmp_path: Path
):
    """After a restart mid-round, one pass yields the rest and the new mail."""
    provider = make_graph_provider(fake, tmp_path, page_size=5)
    cursor = connect(provider)
    delivered = [fake.graph.deliver(USER, mail(n)).id for n in range(7)]
    pages = iter(provider.sync(cursor))
    first = next(pages)
    pages.close()
    delivered += [fake.graph.deliver(USER, mail(n)).id for n in range(7, 9)]

    restarted = make_graph_provider(fake, tmp_path, page_size=5)
    rest = list(restarted.sync(first.cursor))

    yielded = [m.provider_id for page in [first, *rest] for m in page.mails]
    assert sorted(yielded) == sorted(delivered)
