"""Conversations mode end to end: ``mail2wo`` against the fake Graph and Gmail.

The settings point ``authority``/``api_base``/``token_uri`` at the loopback
fakes. The product trusts the fake Graph's self-signed certificate through
the standard ``REQUESTS_CA_BUNDLE`` variable, as it would a company proxy's
CA; the fake Gmail speaks plain http on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from tests.fakes.google import FakeGoogle, write_token_file
from tests.fakes.microsoft import CLIENT_ID, CLIENT_SECRET, USER, FakeMicrosoft
from tests.settings_files import (
    GRAPH_SECRET_ENV,
    gmail_mailbox,
    graph_mailbox,
    lines,
    service_mail,
    write_client_secrets,
    write_settings,
)

NOW = datetime.now(UTC)


@pytest.fixture
def microsoft(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMicrosoft]:
    """The fake Entra ID + Graph, trusted through REQUESTS_CA_BUNDLE."""
    with FakeMicrosoft() as fake:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.server.ca_path))
        monkeypatch.setenv(GRAPH_SECRET_ENV, CLIENT_SECRET)
        yield fake


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, microsoft: FakeMicrosoft, google: FakeGoogle) -> Path:
    """A Graph mailbox ``service`` and a connected Gmail mailbox ``gmail``."""
    path = write_settings(tmp_path, graph_mailbox(microsoft), gmail_mailbox(google))
    write_token_file(google, gmail_token(tmp_path))
    return path


def gmail_token(folder: Path) -> Path:
    """Where ``connect`` leaves the Gmail grant (connector.app.token_path)."""
    return folder / "var" / "tokens" / "gmail.gmail.json"


def mail2wo(settings: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--settings", str(settings), *args])


def sync(settings: Path) -> list[dict[str, Any]]:
    result = mail2wo(settings, "sync", "--json")
    assert result.exit_code == 0, result.output
    return lines(result.stdout)


def by_mailbox(results: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for r in results:
        found.setdefault(str(r["mailbox"]), []).append(
            (str(r.get("message_id")), str(r["outcome"]))
        )
    return found


# -- sync --------------------------------------------------------------------------


def test_sync_creates_work_orders_from_graph_and_gmail(
    settings: Path, microsoft: FakeMicrosoft, google: FakeGoogle
) -> None:
    """The first sync connects without history; later mail becomes work orders."""
    microsoft.graph.deliver(USER, service_mail(1), received=NOW - timedelta(days=2))
    google.deliver(service_mail(2), received_at=NOW - timedelta(days=2))

    connected = sync(settings)
    microsoft.graph.deliver(USER, service_mail(3))
    google.deliver(service_mail(4))
    synced = sync(settings)
    orders = lines(mail2wo(settings, "workorders", "--json").stdout)

    assert connected == []
    assert by_mailbox(synced) == {
        "service": [("e2e-3@example.nl", "created")],
        "gmail": [("e2e-4@example.nl", "created")],
    }
    assert [r["configuration"] for r in synced] == ["Storingen", "Storingen"]
    assert [r["customer_rule"] for r in synced] == ["forced_debtor_number"] * 2
    assert [o["ShortWorkDescription"] for o in orders] == [
        "Storing: Storing cv-ketel 3",
        "Storing: Storing cv-ketel 4",
    ]
    assert sync(settings) == []


def reply(number: int) -> bytes:
    """A reply without In-Reply-To, References, "Re:" or a [WO …] token."""
    return service_mail(
        number,
        subject="Aanvulling",
        sender="klant1@example.nl",
        body="Hij lekt nu ook water.\r\n\r\nMet vriendelijke groet,\r\nKlant 1",
    )


@pytest.mark.parametrize("kind", ["service", "gmail"])
def test_a_reply_in_the_same_conversation_is_appended_by_thread_id(
    settings: Path, microsoft: FakeMicrosoft, google: FakeGoogle, kind: str
) -> None:
    """Graph conversationId / Gmail threadId alone link a reply to its order."""

    def deliver(raw: bytes, thread: str) -> None:
        if kind == "service":
            microsoft.graph.deliver(USER, raw, conversation_id=thread)
        else:
            google.deliver(raw, thread=thread)

    sync(settings)
    deliver(service_mail(1), "thread-1")
    (created,) = sync(settings)
    deliver(reply(2), "thread-1")
    deliver(reply(3), "thread-2")
    appended, elsewhere = sync(settings)
    order = lines(
        mail2wo(
            settings, "workorders", "--json", created["workorder"]["WorkorderNo"]
        ).stdout
    )[0]
    log = lines(mail2wo(settings, "logs", "--json", "--outcome", "appended").stdout)

    assert created["outcome"] == "created"
    assert appended["outcome"] == "appended"
    assert appended["thread_signal"] == "thread_id"
    assert appended["workorder"]["WorkorderNo"] == created["workorder"]["WorkorderNo"]
    assert appended["workorder"]["note"]["text"].startswith("Hij lekt nu ook water.")
    assert elsewhere["outcome"] == "no_configuration"
    assert [n["text"] for n in order["notes"]] == [
        appended["workorder"]["note"]["text"]
    ]
    assert [(e["message_id"], e["thread_signal"]) for e in log] == [
        ("e2e-2@example.nl", "thread_id")
    ]


# -- a mailbox that needs reconnecting -----------------------------------------------


def test_a_revoked_gmail_grant_needs_reconnect_while_graph_still_syncs(
    settings: Path, microsoft: FakeMicrosoft, google: FakeGoogle, tmp_path: Path
) -> None:
    """invalid_grant marks gmail needs_reconnect; service goes on; connect heals."""
    sync(settings)
    google.revoke()
    microsoft.graph.deliver(USER, service_mail(1))
    google.deliver(service_mail(2))

    result = mail2wo(settings, "sync", "--json")
    statuses = {
        s["mailbox"]: s for s in lines(mail2wo(settings, "status", "--json").stdout)
    }
    people = mail2wo(settings, "status").stdout
    write_token_file(google, gmail_token(tmp_path))
    healed = sync(settings)
    after = {
        s["mailbox"]: s for s in lines(mail2wo(settings, "status", "--json").stdout)
    }

    assert result.exit_code == 0, result.output
    synced = lines(result.stdout)
    assert synced[0]["mailbox"] == "service"
    assert synced[0]["outcome"] == "created"
    message = (
        "mailbox 'gmail': Google refused the stored grant (invalid_grant: token "
        "revoked or expired); run 'mail2wo connect gmail'"
    )
    assert synced[1] == {"mailbox": "gmail", "outcome": "error", "reason": message}
    assert statuses["gmail"]["state"] == "needs_reconnect"
    assert statuses["gmail"]["error"] == message
    assert statuses["service"]["state"] == "ok"
    assert statuses["service"]["error"] is None
    assert "needs_reconnect" in people
    assert message in people
    assert [(r["mailbox"], r["outcome"]) for r in healed] == [("gmail", "created")]
    assert after["gmail"]["state"] == "ok"
    assert after["gmail"]["error"] is None


def test_an_expired_graph_secret_needs_reconnect_while_gmail_still_syncs(
    settings: Path, microsoft: FakeMicrosoft, google: FakeGoogle
) -> None:
    """AADSTS7000222 marks service needs_reconnect, naming the secret; gmail goes on."""
    sync(settings)
    microsoft.entra.apps[CLIENT_ID].secret_expired = True
    microsoft.entra.expire_access_tokens()
    google.deliver(service_mail(1))

    result = mail2wo(settings, "sync", "--json")
    statuses = {
        s["mailbox"]: s for s in lines(mail2wo(settings, "status", "--json").stdout)
    }

    assert result.exit_code == 0, result.output
    assert [(r["mailbox"], r["outcome"]) for r in lines(result.stdout)] == [
        ("gmail", "created"),
        ("service", "error"),
    ]
    assert statuses["service"]["state"] == "needs_reconnect"
    assert "client secret has expired" in statuses["service"]["error"]
    assert CLIENT_SECRET not in statuses["service"]["error"]
    assert statuses["gmail"]["state"] == "ok"


# -- connect -------------------------------------------------------------------------


def test_connect_graph_client_credentials_lists_the_three_newest_subjects(
    settings: Path, microsoft: FakeMicrosoft, tmp_path: Path
) -> None:
    """connect signs in app-only and proves it with the newest three subjects."""
    for number in range(1, 5):
        received = NOW - timedelta(hours=10 - number)
        raw = service_mail(number, subject=f"Lekkage {number}")
        microsoft.graph.deliver(USER, raw, received=received)

    result = mail2wo(settings, "connect", "service")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "mailbox service is connected. Newest mail:",
        "  - Lekkage 4",
        "  - Lekkage 3",
        "  - Lekkage 2",
    ]
    cache = tmp_path / "var" / "tokens" / "service.graph.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert CLIENT_SECRET not in cache.read_text()


def consent(url: str) -> str:
    """What the browser ends on after the person allows access."""

    class Stop(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        urllib.request.build_opener(Stop).open(url).close()
    except urllib.error.HTTPError as redirect:
        redirect.close()
        return str(redirect.headers["Location"])
    raise AssertionError("the consent page did not redirect")


def mail2wo_command() -> list[str]:
    script = Path(sys.executable).with_name("mail2wo")
    return [str(script)] if script.exists() else [shutil.which("mail2wo") or ""]


def test_connect_gmail_headless_stores_the_grant_owner_only(
    tmp_path: Path, google: FakeGoogle
) -> None:
    """Headless connect prints a URL, takes the pasted address and saves 0600."""
    secrets = write_client_secrets(google, tmp_path / "google-client.json")
    settings = write_settings(tmp_path, gmail_mailbox(google, secrets))
    for number in range(1, 5):
        google.deliver(service_mail(number, subject=f"Lekkage {number}"))
    # The fake's token endpoint is http; oauthlib accepts it only when told to.
    environment = {**os.environ, "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    command = ["--settings", str(settings), "connect", "gmail", "--headless"]
    process = subprocess.Popen(
        [*mail2wo_command(), *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    printed: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            printed.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        shown: list[str] = []
        while not any(line.startswith(google.auth_uri) for line in shown):
            shown.append(printed.get(timeout=30))
        url = next(line for line in shown if line.startswith(google.auth_uri))
        assert process.stdin is not None
        process.stdin.write(consent(url.strip()) + "\n")
        process.stdin.flush()
        code = process.wait(timeout=30)
        assert process.stderr is not None
        assert code == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join(timeout=5)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    while not printed.empty():
        shown.append(printed.get())

    token = gmail_token(tmp_path)
    saved = json.loads(token.read_text())
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert google.refresh_token_valid(saved["refresh_token"])
    redirect = urllib.parse.urlsplit(url.strip())
    assert urllib.parse.parse_qs(redirect.query)["redirect_uri"] == [
        "http://localhost/"
    ]
    output = "".join(shown)
    assert "mailbox gmail is connected. Newest mail:" in output
    assert "  - Lekkage 4\n  - Lekkage 3\n  - Lekkage 2\n" in output
    assert saved["refresh_token"] not in output
