"""A loopback webhook receiver that records every request and answers on cue.

``with FakeWebhook() as hook:`` gives ``hook.url``; ``hook.answer(503, 503)``
makes the next two requests fail before the default 200 comes back.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["FakeWebhook", "ReceivedRequest", "Reply", "webhook_receiver"]


@dataclass(frozen=True)
class Reply:
    """One programmed answer: a status, or ``drop`` / ``delay`` behaviour."""

    status: int = 200
    body: str = '{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeWebhook:
    """An HTTP receiver on 127.0.0.1 with a programmable answer queue."""

    def __init__(self, *, path: str = "/hooks/mail2wo") -> None:
        self.path = path
        self.received: list[ReceivedRequest] = []
        self._replies: list[Reply] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeWebhook:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-webhook",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeWebhook:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """What a client configures as the webhook ``url``."""
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def answer(self, *replies: int | Reply) -> None:
        """Queue answers for the next requests; afterwards 200 again."""
        with self._lock:
            self._replies.extend(
                r if isinstance(r, Reply) else Reply(status=r) for r in replies
            )

    def _next_reply(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self.received.append(request)
            return self._replies.pop(0) if self._replies else Reply()


def _handler_for(fake: FakeWebhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = ReceivedRequest(
                self.command, self.path, dict(self.headers.items()), body
            )
            reply = fake._next_reply(request)

            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                return
            data = reply.body.encode()
            headers = {"Content-Type": "application/json", **reply.headers}
            # After a delay the client may have given up and closed its end.
            with contextlib.suppress(OSError):
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = _answer  # noqa: N815
        do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the receiver keeps its own log."""

    return Handler


@pytest.fixture
def webhook_receiver() -> Iterator[FakeWebhook]:
    """A running webhook receiver, stopped after the test."""
    with FakeWebhook() as hook:
        yield hook
