"""The webhook target, through requests, against a loopback receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator

import pytest

from connector.directory import Address, Directory, Relation
from connector.targets.base import FileAttachment, Note
from connector.targets.webhook import WebhookTarget
from providers.errors import PermanentError, SettingsError, TransientError
from tests.fakes.webhook import FakeWebhook, Reply

SECRET = b"whsec-test-4f0e8a"
ORDER = {
    "WorkorderNo": "2026-0042",
    "CustomerName": "Bakkerij Van Dijk B.V.",
    "CustomerDebtorNr": "D10023",
    "TypeOfWork": "Storing",
    "WorkObjects": ["OBJ-OVEN-2"],
}


@pytest.fixture
def hook() -> Iterator[FakeWebhook]:
    with FakeWebhook() as receiver:
        yield receiver


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def target(hook: FakeWebhook, sleeps: list[float]) -> Iterator[WebhookTarget]:
    client = WebhookTarget(
        hook.url, SECRET, directory=Directory(), timeout=5, sleep=sleeps.append
    )
    yield client
    client.close()


def test_signature_is_hmac_sha256_of_the_exact_body(
    target: WebhookTarget, hook: FakeWebhook
) -> None:
    """X-Mail2wo-Signature verifies with the shared secret over the raw body."""
    target.create_workorder(ORDER, [])

    [request] = hook.received
    expected = hmac.new(SECRET, request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Mail2wo-Signature"] == f"sha256={expected}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Mail2wo-Event"] == "workorder.created"
    assert request.headers["X-Mail2wo-Timestamp"].isdigit()


def test_created_event_carries_fields_and_base64_attachments(
    target: WebhookTarget, hook: FakeWebhook
) -> None:
    """workorder.created holds the fields and each file as base64 with its type."""
    pdf = FileAttachment("offerte.pdf", "application/pdf", b"%PDF-1.7 \x00\x01")

    target.create_workorder(ORDER, [pdf])

    payload = hook.received[0].json()
    assert payload["event"] == "workorder.created"
    assert payload["occurred_at"].endswith("+00:00")
    assert payload["workorder"]["WorkObjects"] == ["OBJ-OVEN-2"]
    [sent] = payload["workorder"]["Attachments"]
    assert sent["FileName"] == "offerte.pdf"
    assert sent["ContentType"] == "application/pdf"
    assert base64.b64decode(sent["Data"]) == pdf.data


def test_idempotency_key_is_stable_across_retries_and_calls(
    target: WebhookTarget, hook: FakeWebhook, sleeps: list[float]
) -> None:
    """Every try and every later call for one order carry the same key."""
    hook.answer(503, 502)

    target.create_workorder(ORDER, [])
    target.create_workorder(ORDER, [])

    keys = {r.headers["Idempotency-Key"] for r in hook.received}
    expected = hashlib.sha256(b"workorder.created:2026-0042").hexdigest()
    assert keys == {expected}
    assert {r.json()["id"] for r in hook.received} == {expected}
    assert len(hook.received) == 4
    assert len({r.body for r in hook.received[:3]}) == 1
    assert len(sleeps) == 2


def test_appended_event_is_keyed_by_the_note_key(
    target: WebhookTarget, hook: FakeWebhook
) -> None:
    """workorder.appended names the order, the note text and its files."""
    note = Note(
        text="Nu ook tijdens bakken.",
        attachments=(FileAttachment("foto.jpg", "image/jpeg", b"jpg"),),
        sender="marieke@bakkerijvandijk.example",
    )

    target.append_note("2026-0042", note, "reply-1")

    [request] = hook.received
    payload = request.json()
    assert request.headers["X-Mail2wo-Event"] == "workorder.appended"
    assert payload["id"] == hashlib.sha256(b"workorder.appended:reply-1").hexdigest()
    assert payload["workorder_no"] == "2026-0042"
    assert payload["note"]["text"] == "Nu ook tijdens bakken."
    assert payload["note"]["attachments"][0]["FileName"] == "foto.jpg"


def test_retry_after_on_429_is_honoured(
    target: WebhookTarget, hook: FakeWebhook, sleeps: list[float]
) -> None:
    """A 429 waits the receiver's Retry-After before the next try."""
    hook.answer(Reply(429, headers={"Retry-After": "7"}))

    target.create_workorder(ORDER, [])

    assert sleeps == [7.0]
    assert len(hook.received) == 2


def test_long_retry_after_is_left_to_the_pipeline(
    target: WebhookTarget, hook: FakeWebhook, sleeps: list[float]
) -> None:
    """A wish longer than the backoff cap ends the call at once, carrying it."""
    hook.answer(Reply(503, headers={"Retry-After": "3600"}))

    with pytest.raises(TransientError) as caught:
        target.create_workorder(ORDER, [])

    assert caught.value.retry_after == 3600
    assert sleeps == []
    assert len(hook.received) == 1


def test_server_errors_past_max_retries_are_transient(
    hook: FakeWebhook, sleeps: list[float]
) -> None:
    """After max_retries extra tries a 5xx becomes TransientError."""
    client = WebhookTarget(
        hook.url, SECRET, directory=Directory(), max_retries=2, sleep=sleeps.append
    )
    hook.answer(500, 500, 500, 500)

    with pytest.raises(TransientError, match=r"HTTP 500.*gave up after 3 tries"):
        client.create_workorder(ORDER, [])

    assert len(hook.received) == 3
    assert len(sleeps) == 2
    assert sleeps[0] <= sleeps[1] * 2


def test_client_error_is_permanent_with_status_and_body_excerpt(
    target: WebhookTarget, hook: FakeWebhook, sleeps: list[float]
) -> None:
    """A 422 is not retried; the error shows the status and 200 body chars."""
    hook.answer(Reply(422, body="unknown field TypeOfWork " + "x" * 400))

    with pytest.raises(PermanentError) as caught:
        target.create_workorder(ORDER, [])

    message = str(caught.value)
    assert "HTTP 422" in message
    assert "unknown field TypeOfWork" in message
    assert "x" * 175 in message
    assert "x" * 176 not in message
    assert sleeps == []


@pytest.mark.parametrize(
    "reply",
    [Reply(drop=True), Reply(delay=0.5), Reply(408)],
    ids=["dropped", "timeout", "http-408"],
)
def test_timeouts_and_dropped_connections_are_retried(
    hook: FakeWebhook, sleeps: list[float], reply: Reply
) -> None:
    """A dropped connection, a timeout and a 408 are tried again."""
    client = WebhookTarget(
        hook.url, SECRET, directory=Directory(), timeout=0.2, sleep=sleeps.append
    )
    hook.answer(reply)

    client.create_workorder(ORDER, [])

    assert len(sleeps) == 1
    assert hook.received[0].body == hook.received[-1].body


def test_redirect_is_permanent(target: WebhookTarget, hook: FakeWebhook) -> None:
    """A 301 is not followed: the signed POST must reach the configured url."""
    hook.answer(Reply(301, headers={"Location": "https://hooks.example/new?key=s3"}))

    with pytest.raises(
        PermanentError, match=re.escape("https://hooks.example/new;")
    ) as caught:
        target.create_workorder(ORDER, [])

    assert "s3" not in str(caught.value)


def test_directory_additions_stay_in_memory(
    target: WebhookTarget, hook: FakeWebhook
) -> None:
    """Relations and addresses are not posted; the next lookup still finds them."""
    relation = Relation("M-0001", "J. de Vries", email="jdevries@example.nl")
    address = Address("ADR-1", "M-0001", "Lindelaan 14a", "1234 AB", "Zwolle")

    target.add_relation(relation)
    target.add_address(address)

    directory = target.load_directory()
    assert directory.relations_by_email("jdevries@example.nl") == [relation]
    assert directory.addresses_of("M-0001") == [address]
    assert target.has_workorder("2026-0042") is False
    assert hook.received == []


def test_settings_are_checked_at_construction() -> None:
    """An empty secret or a non-http url is a settings error."""
    with pytest.raises(SettingsError, match="MAIL2WO_WEBHOOK_SECRET"):
        WebhookTarget("https://hooks.example/in", b"", directory=Directory())
    with pytest.raises(SettingsError, match="not an http"):
        WebhookTarget("hooks.example/in", SECRET, directory=Directory())


def test_body_is_compact_utf8_json(target: WebhookTarget, hook: FakeWebhook) -> None:
    """Non-ASCII text travels as UTF-8, not as escapes, and the body parses."""
    target.create_workorder({**ORDER, "CustomerName": "Café Ûtrecht"}, [])

    body = hook.received[0].body
    assert "Café Ûtrecht".encode() in body
    assert json.loads(body)["workorder"]["CustomerName"] == "Café Ûtrecht"
