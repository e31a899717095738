"""The daily inbound limit (SPEC §9) through the ``mail2wo`` command.

The clock is ``MAIL2WO_NOW``; Amsterdam is UTC+1 in November, so local
midnight of 4 November is 23:00 UTC on the 3rd.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import cli
from tests.fakes.google import fake_google, write_token_file
from tests.settings_files import (
    folder_mailbox,
    gmail_mailbox,
    lines,
    service_mail,
    write_settings,
)

DAY_ONE = "2026-11-03T10:00:00+01:00"
DAY_ONE_LATE = "2026-11-03T23:50:00+01:00"
AFTER_MIDNIGHT = "2026-11-04T00:05:00+01:00"
DAY_THREE = "2026-11-05T08:00:00+01:00"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path, inbox: Path) -> Path:
    return write_settings(tmp_path, folder_mailbox("demo", inbox), daily_limit=2)


def arrive(inbox: Path, *numbers: int) -> None:
    for number in numbers:
        (inbox / f"{number:02d}.eml").write_bytes(service_mail(number))


def mail2wo(
    monkeypatch: pytest.MonkeyPatch, now: str, settings: Path, *args: str
) -> list[dict[str, Any]]:
    monkeypatch.setenv("MAIL2WO_NOW", now)
    result = CliRunner().invoke(cli, ["--settings", str(settings), *args])
    assert result.exit_code == 0, result.output
    return lines(result.stdout)


def outcomes(results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(r["message_id"]), str(r["outcome"])) for r in results]


def test_mail_over_the_limit_is_deferred_and_shown_as_waiting(
    monkeypatch: pytest.MonkeyPatch, settings: Path, inbox: Path
) -> None:
    """With daily_limit = 2, five new mails make two work orders and three wait."""
    arrive(inbox, 1, 2, 3, 4, 5)

    synced = mail2wo(monkeypatch, DAY_ONE, settings, "sync", "--json")
    (usage,) = mail2wo(monkeypatch, DAY_ONE, settings, "usage", "--json")

    assert outcomes(synced) == [
        ("e2e-1@example.nl", "created"),
        ("e2e-2@example.nl", "created"),
        ("e2e-3@example.nl", "deferred"),
        ("e2e-4@example.nl", "deferred"),
        ("e2e-5@example.nl", "deferred"),
    ]
    assert synced[2]["reason"] == "daily limit of 2 reached; waits for midnight"
    assert synced[2]["workorder"] is None
    assert usage["date"] == "2026-11-03"
    assert (usage["used"], usage["limit"], usage["remaining"]) == (2, 2, 0)
    assert usage["waiting"] == 3
    assert [w["message_id"] for w in usage["waiting_mail"]] == [
        "e2e-3@example.nl",
        "e2e-4@example.nl",
        "e2e-5@example.nl",
    ]
    assert usage["resets_at"] == "2026-11-04T00:00:00+01:00"


def test_deferred_mail_is_not_processed_or_logged_again_before_midnight(
    monkeypatch: pytest.MonkeyPatch, settings: Path, inbox: Path
) -> None:
    """While the limit holds, later syncs leave waiting mail alone: one log entry."""
    arrive(inbox, 1, 2, 3)
    mail2wo(monkeypatch, DAY_ONE, settings, "sync", "--json")

    again = mail2wo(monkeypatch, DAY_ONE, settings, "sync", "--json")
    late = mail2wo(monkeypatch, DAY_ONE_LATE, settings, "sync", "--json")
    log = mail2wo(monkeypatch, DAY_ONE_LATE, settings, "logs", "--json")

    assert again == []
    assert late == []
    assert [(e["message_id"], e["outcome"]) for e in log] == [
        ("e2e-1@example.nl", "created"),
        ("e2e-2@example.nl", "created"),
        ("e2e-3@example.nl", "deferred"),
    ]


def test_after_local_midnight_deferred_mail_goes_first(
    monkeypatch: pytest.MonkeyPatch, settings: Path, inbox: Path
) -> None:
    """The next local day processes the waiting mail before newly arrived mail."""
    arrive(inbox, 1, 2, 3, 4, 5)
    mail2wo(monkeypatch, DAY_ONE, settings, "sync", "--json")
    arrive(inbox, 6)

    next_day = mail2wo(monkeypatch, AFTER_MIDNIGHT, settings, "sync", "--json")
    (usage,) = mail2wo(monkeypatch, AFTER_MIDNIGHT, settings, "usage", "--json")
    third_day = mail2wo(monkeypatch, DAY_THREE, settings, "sync", "--json")
    orders = mail2wo(monkeypatch, DAY_THREE, settings, "workorders", "--json")

    assert outcomes(next_day) == [
        ("e2e-3@example.nl", "created"),
        ("e2e-4@example.nl", "created"),
        ("e2e-6@example.nl", "deferred"),
    ]
    assert (usage["date"], usage["used"], usage["waiting"]) == ("2026-11-04", 2, 2)
    assert outcomes(third_day) == [
        ("e2e-5@example.nl", "created"),
        ("e2e-6@example.nl", "created"),
    ]
    assert [o["WorkorderNo"] for o in orders] == [f"2026-{n:04d}" for n in range(1, 7)]


def test_a_replayed_waiting_mail_is_not_deferred_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A resync that yields waiting mail again leaves it to wait its turn."""
    with fake_google() as google:
        settings = write_settings(tmp_path, gmail_mailbox(google), daily_limit=1)
        write_token_file(google, tmp_path / "var" / "tokens" / "gmail.gmail.json")
        mail2wo(monkeypatch, DAY_ONE, settings, "sync", "--json")
        google.deliver(service_mail(1))
        google.deliver(service_mail(2))
        first = mail2wo(monkeypatch, DAY_ONE, settings, "sync", "--json")
        google.deliver(service_mail(3))
        google.expire_history()

        resynced = mail2wo(monkeypatch, DAY_ONE, settings, "sync", "--json")
        log = mail2wo(monkeypatch, DAY_ONE, settings, "logs", "--json")

    assert outcomes(first) == [
        ("e2e-1@example.nl", "created"),
        ("e2e-2@example.nl", "deferred"),
    ]
    assert outcomes(resynced) == [("e2e-3@example.nl", "deferred")]
    assert [e["outcome"] for e in log] == ["created", "deferred", "deferred"]
