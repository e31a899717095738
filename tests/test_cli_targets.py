"""The OutSmart and webhook targets, driven through the ``mail2wo`` command."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.outsmart import FakeOutSmart
from tests.fakes.webhook import FakeWebhook, Reply
from tests.test_cli import INBOX, demo_settings, lines, mail2wo

NEW = INBOX / "13-english-heat-pump-repair.eml"
REPLY = INBOX / "19-english-reply-heat-pump.eml"
SECRET = "whsec-test-8d2f41"

SEAN = {
    "debtor_number": "10009",
    "name": "S. O'Connor",
    "contact": "Sean O'Connor",
    "phone_number": "06-98765432",
    "email": "sean.oconnor@outlook.com",
    "street": "Hoofdweg",
    "house_number": "7",
    "postal_code": "9765 AB",
    "city": "Paterswolde",
}


@pytest.fixture
def outsmart(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOutSmart]:
    with FakeOutSmart() as fake:
        fake.seed(
            relations=[SEAN],
            worktypes=[{"wrt_name": "Storing", "wrt_active": "1"}],
        )
        monkeypatch.setenv("MAIL2WO_OUTSMART_TOKEN", fake.token)
        monkeypatch.setenv("MAIL2WO_OUTSMART_SOFTWARE_TOKEN", fake.software_token)
        yield fake


def outsmart_settings(tmp_path: Path, fake: FakeOutSmart) -> Path:
    return demo_settings(
        tmp_path,
        **{'kind = "local"': f'kind = "outsmart"\nbase_url = "{fake.base_url}"'},
    )


def test_outsmart_work_order_and_follow_up_note(
    tmp_path: Path, outsmart: FakeOutSmart
) -> None:
    """A new mail becomes one OutSmart order; its reply becomes a note on it."""
    settings = outsmart_settings(tmp_path, outsmart)
    created = mail2wo(settings, "drop", "--json", str(NEW))
    assert created.exit_code == 0, created.output
    (line,) = lines(created)
    assert line["outcome"] == "created", line
    assert line["workorder"]["CustomerDebtorNr"] == "10009"
    (order,) = outsmart.orders_numbered("2026-0001")
    assert order["CustomerDebtorNr"] == "10009"

    appended = mail2wo(settings, "drop", "--json", str(REPLY))
    (line,) = lines(appended)
    assert line["outcome"] == "appended", line
    assert line["thread_signal"] == "references"
    assert len(outsmart.notes) == 1
    assert len(outsmart.orders_numbered("2026-0001")) == 1


def test_outsmart_refused_token_is_one_clear_line(
    tmp_path: Path, outsmart: FakeOutSmart, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check --online reports a refused token without printing it."""
    monkeypatch.setenv("MAIL2WO_OUTSMART_TOKEN", "wrong-token-1234")
    settings = outsmart_settings(tmp_path, outsmart)
    result = mail2wo(settings, "check", "--online", "--json")
    assert result.exit_code == 2
    (finding,) = [f for f in lines(result) if f["place"] == "target outsmart"]
    assert finding["level"] == "error"
    assert "wrong-token-1234" not in result.output


def test_outsmart_missing_token_names_the_variable(
    tmp_path: Path, outsmart: FakeOutSmart, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing token names its environment variable, exit 2."""
    monkeypatch.delenv("MAIL2WO_OUTSMART_TOKEN")
    settings = outsmart_settings(tmp_path, outsmart)
    result = mail2wo(settings, "drop", str(NEW))
    assert result.exit_code == 2
    assert "MAIL2WO_OUTSMART_TOKEN" in result.stderr


def test_check_online_reads_the_target(tmp_path: Path, outsmart: FakeOutSmart) -> None:
    """check --online reads OutSmart and creates nothing."""
    settings = outsmart_settings(tmp_path, outsmart)
    result = mail2wo(settings, "check", "--online", "--json")
    assert result.exit_code == 0, result.output
    (finding,) = [f for f in lines(result) if f["place"] == "target outsmart"]
    assert finding["level"] == "ok"
    assert "1 relations" in finding["message"]
    assert not outsmart.workorders


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWebhook]:
    monkeypatch.setenv("MAIL2WO_WEBHOOK_SECRET", SECRET)
    with FakeWebhook() as fake:
        yield fake


def webhook_settings(tmp_path: Path, hook: FakeWebhook) -> Path:
    return demo_settings(
        tmp_path, **{'kind = "local"': f'kind = "webhook"\nurl = "{hook.url}"'}
    )


def test_webhook_events_are_signed(tmp_path: Path, hook: FakeWebhook) -> None:
    """Each event is signed with HMAC-SHA256 over the exact body."""
    settings = webhook_settings(tmp_path, hook)
    assert mail2wo(settings, "drop", str(NEW)).exit_code == 0
    assert mail2wo(settings, "drop", str(REPLY)).exit_code == 0
    events = [r.headers["X-Mail2wo-Event"] for r in hook.received]
    assert events == ["workorder.created", "workorder.appended"]
    for request in hook.received:
        digest = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Mail2wo-Signature"] == f"sha256={digest}"
    assert hook.received[0].json()["workorder"]["WorkorderNo"] == "2026-0001"


def test_webhook_client_error_is_recorded_in_the_log(
    tmp_path: Path, hook: FakeWebhook
) -> None:
    """A 4xx answer ends the mail as failed with the status in the log."""
    settings = webhook_settings(tmp_path, hook)
    hook.answer(Reply(status=422, body='{"error": "unknown customer"}'))
    (line,) = lines(mail2wo(settings, "drop", "--json", str(NEW)))
    assert line["outcome"] in ("failed", "quarantined")
    assert "422" in line["reason"]
    (entry,) = lines(mail2wo(settings, "logs", "--json"))
    assert "422" in entry["error"]


def test_webhook_without_secret_stops_with_exit_2(
    tmp_path: Path, hook: FakeWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a signing secret nothing is sent and the command exits 2."""
    monkeypatch.delenv("MAIL2WO_WEBHOOK_SECRET")
    settings = webhook_settings(tmp_path, hook)
    result = mail2wo(settings, "drop", str(NEW))
    assert result.exit_code == 2
    assert "MAIL2WO_WEBHOOK_SECRET" in result.stderr
    assert hook.received == []


def test_outsmart_directory_is_read_again_on_each_pass(
    tmp_path: Path, outsmart: FakeOutSmart
) -> None:
    """A relation added in OutSmart between two passes of `run` is found."""
    from connector import app
    from connector.settings import load_settings

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings_path = outsmart_settings(tmp_path, outsmart)
    text = settings_path.read_text(encoding="utf-8")
    settings_path.write_text(text.replace(f'"{INBOX}"', f'"{inbox}"'), encoding="utf-8")
    settings = load_settings(settings_path)
    mailbox = settings.mailbox_named("demo")
    stranger = INBOX / "15-storing-onbekende-afzender.eml"
    (inbox / "1.eml").write_bytes(stranger.read_bytes())
    with app.open_workspace(settings) as workspace:
        first = app.sync_mailbox(workspace, mailbox)
        assert [str(r.outcome) for r in first.results] == ["customer_not_found"]
        outsmart.seed(
            relations=[
                {
                    "debtor_number": "30001",
                    "name": "Peter Smit",
                    "email": "petersmit1971@hotmail.com",
                    "street": "Kerkstraat",
                    "house_number": "1",
                    "postal_code": "9711 AA",
                    "city": "Groningen",
                }
            ]
        )
        again = stranger.read_bytes().replace(b"Message-ID: <", b"Message-ID: <2-")
        (inbox / "2.eml").write_bytes(again)
        second = app.sync_mailbox(workspace, mailbox)
    assert [str(r.outcome) for r in second.results] == ["created"]
