"""Poison mail: retried with backoff, quarantined after 5 failures, never in the way.

The target is a loopback webhook receiver that refuses every event about
one mail (its subject holds ``GIFTIG``) and accepts the rest. Time moves
through ``MAIL2WO_NOW``; everything runs through the ``mail2wo`` command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from tests.fakes.webhook import FakeWebhook, ReceivedRequest, Reply

SECRET = "whsec-poison-test"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

SETTINGS = """\
max_new_per_sender_per_hour = 0

[state]
path = "{state}"

[target]
kind = "webhook"
url = "{url}"
relations = "{relations}"

[[mailbox]]
name = "inbox"
kind = "folder"
path = "{inbox}"

[[configuration]]
name = "Alles"
sender_type = "Any"
forced_debtor_number = "10001"

[configuration.forced_values]
ShortWorkDescription = "{{subject}}"
"""

RELATIONS = (
    "debtor_number,name,contact,phone_number,email,email_workorder,street,"
    "house_number,postal_code,city,remark\n"
    "10001,Woonstichting De Linde,Renske,050-1,a@delinde.nl,a@delinde.nl,"
    "Zuiderdiep,120,9711 HM,Groningen,\n"
)


class PoisonWebhook(FakeWebhook):
    """Refuses events that mention ``GIFTIG`` with ``refusal``; others get 200."""

    def __init__(self) -> None:
        super().__init__()
        self.refusal: Reply | None = Reply(503, headers={"Retry-After": "3600"})

    def _next_reply(self, request: ReceivedRequest) -> Reply:
        reply = super()._next_reply(request)
        if self.refusal is not None and b"GIFTIG" in request.body:
            return self.refusal
        return reply


@pytest.fixture
def hook() -> Iterator[PoisonWebhook]:
    with PoisonWebhook() as receiver:
        yield receiver


def mail(number: int, subject: str) -> bytes:
    return (
        f"From: huurder{number}@example.nl\r\nTo: service@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <poison-{number}@example.nl>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"De verwarming doet het niet ({number}).\r\n"
    ).encode()


@pytest.fixture
def settings(tmp_path: Path, hook: PoisonWebhook) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "01.eml").write_bytes(mail(1, "Storing eerste"))
    (inbox / "02.eml").write_bytes(mail(2, "Storing GIFTIG"))
    (inbox / "03.eml").write_bytes(mail(3, "Storing derde"))
    (inbox / "04.eml").write_bytes(mail(4, "Storing vierde"))
    relations = tmp_path / "relations.csv"
    relations.write_text(RELATIONS)
    path = tmp_path / "settings.toml"
    path.write_text(
        SETTINGS.format(
            state=tmp_path / "var", url=hook.url, inbox=inbox, relations=relations
        )
    )
    return path


def mail2wo(settings: Path, at: datetime, *args: str) -> Result:
    """Run the command as if it were ``at`` (``MAIL2WO_NOW``)."""
    return CliRunner().invoke(
        cli,
        ["--settings", str(settings), *args],
        env={"MAIL2WO_NOW": at.isoformat(), "MAIL2WO_WEBHOOK_SECRET": SECRET},
    )


def outcomes(result: Result) -> list[tuple[str, str]]:
    """``(provider id or message id, outcome)`` per JSON line."""
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [(r.get("provider_id") or r["message_id"], r["outcome"]) for r in rows]


def poison_log(settings: Path, at: datetime) -> list[dict[str, Any]]:
    logged = mail2wo(settings, at, "logs", "--json")
    assert logged.exit_code == 0, logged.output
    entries = [json.loads(line) for line in logged.stdout.splitlines()]
    return [e for e in entries if e["message_id"] == "poison-2@example.nl"]


def test_poison_mail_does_not_block_the_mail_after_it(settings: Path) -> None:
    """The failing mail is logged failed; the mails after it are created."""
    first = mail2wo(settings, T0, "sync", "--json")

    assert outcomes(first) == [
        ("01.eml", "created"),
        ("02.eml", "failed"),
        ("03.eml", "created"),
        ("04.eml", "created"),
    ]


def test_poison_mail_backs_off_then_is_quarantined_after_five_failures(
    settings: Path, hook: PoisonWebhook
) -> None:
    """Retries wait 1, 4, 16 and 64 minutes; the fifth failure quarantines."""
    mail2wo(settings, T0, "sync", "--json")
    at = T0
    for attempt, wait in enumerate((1, 4, 16, 64), start=2):
        early = at + timedelta(minutes=wait) - timedelta(seconds=5)
        assert outcomes(mail2wo(settings, early, "sync", "--json")) == []
        at += timedelta(minutes=wait, seconds=1)
        expected = "quarantined" if attempt == 5 else "failed"
        assert outcomes(mail2wo(settings, at, "sync", "--json")) == [
            ("02.eml", expected)
        ]

    later = mail2wo(settings, at + timedelta(days=2), "sync", "--json")

    assert outcomes(later) == []
    assert [e["outcome"] for e in poison_log(settings, at)] == [
        "failed",
        "failed",
        "failed",
        "failed",
        "quarantined",
    ]
    assert "HTTP 503" in poison_log(settings, at)[-1]["error"]
    tries = [r for r in hook.received if b"GIFTIG" in r.body]
    assert len(tries) == 5
    assert len({r.headers["Idempotency-Key"] for r in tries}) == 1


def test_reprocess_by_log_id_retries_a_quarantined_mail(
    settings: Path, hook: PoisonWebhook
) -> None:
    """Once the target accepts it, ``reprocess ID`` creates the work order once."""
    hook.refusal = Reply(422, body='{"error": "GIFTIG"}')
    assert ("02.eml", "quarantined") in outcomes(
        mail2wo(settings, T0, "sync", "--json")
    )
    (entry,) = poison_log(settings, T0)
    hook.refusal = None

    again = mail2wo(settings, T0, "reprocess", "--json", str(entry["id"]))

    assert outcomes(again) == [("02.eml", "created")]
    assert [e["outcome"] for e in poison_log(settings, T0)] == [
        "quarantined",
        "created",
    ]
    created = [
        r.json()
        for r in hook.received
        if r.headers.get("X-Mail2wo-Event") == "workorder.created"
    ]
    numbers = [event["workorder"]["WorkorderNo"] for event in created]
    assert len(numbers) == 5  # four good mails, and the poison one sent twice
    assert len(set(numbers)) == 4
    assert outcomes(mail2wo(settings, T0 + timedelta(days=1), "sync", "--json")) == []


def test_reprocess_by_message_id(settings: Path, hook: PoisonWebhook) -> None:
    """``reprocess`` also takes the Message-ID, with or without brackets."""
    hook.refusal = Reply(422, body='{"error": "GIFTIG"}')
    mail2wo(settings, T0, "sync", "--json")
    hook.refusal = None

    again = mail2wo(settings, T0, "reprocess", "--json", "<poison-2@example.nl>")

    assert outcomes(again) == [("02.eml", "created")]


def test_permanent_refusal_quarantines_at_once(
    settings: Path, hook: PoisonWebhook
) -> None:
    """A 4xx from the target can never succeed: quarantined on the first try."""
    hook.refusal = Reply(422, body='{"error": "GIFTIG"}')

    first = mail2wo(settings, T0, "sync", "--json")

    assert ("02.eml", "quarantined") in outcomes(first)
    assert outcomes(mail2wo(settings, T0 + timedelta(days=1), "sync", "--json")) == []


def test_unreadable_mail_is_logged_once_and_does_not_block(
    settings: Path, tmp_path: Path
) -> None:
    """An empty file is quarantined with one log entry; later syncs skip it."""
    (tmp_path / "inbox" / "02a.eml").write_bytes(b"")
    (tmp_path / "inbox" / "02.eml").write_bytes(mail(2, "Storing tweede"))

    first = outcomes(mail2wo(settings, T0, "sync", "--json"))
    second = outcomes(mail2wo(settings, T0 + timedelta(hours=1), "sync", "--json"))

    assert ("03.eml", "created") in first
    assert ("02a.eml", "quarantined") in first
    assert second == []
    logged = mail2wo(settings, T0, "logs", "--json")
    entries = [json.loads(line) for line in logged.stdout.splitlines()]
    assert [e["provider_id"] for e in entries].count("02a.eml") == 1
