"""Fake Entra ID and Graph on one loopback HTTPS server, plus provider helpers.

Use it as a context manager (``with FakeMicrosoft() as fake:``) or through the
``fake_microsoft`` fixture. ``make_graph_provider`` and ``deliver`` are the
two hooks a provider contract suite needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from providers.graph import GraphProvider
from tests.fakes.entra import FakeEntra, oauth_error
from tests.fakes.graph import FakeGraph, graph_error
from tests.fakes.loopback import Exchange, Fault, LoopbackServer, Request, Response

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "TENANT_ID",
    "USER",
    "FakeMicrosoft",
    "deliver",
    "fake_microsoft",
    "make_graph_provider",
]

TENANT_ID = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
CLIENT_ID = "3b9e7c1a-2d4f-4e6a-9b8c-7d6e5f4a3b2c"
CLIENT_SECRET = "s3cr3t~Value.NeverLogged_42"
USER = "service@contoso.nl"


class FakeMicrosoft:
    """Entra ID and Graph for one tenant, one app and one mailbox."""

    def __init__(self) -> None:
        self.entra = FakeEntra(TENANT_ID)
        self.graph = FakeGraph(self.entra)
        self.server = LoopbackServer(self._route)
        self.entra.register_app(CLIENT_ID, secret=CLIENT_SECRET)
        self.entra.add_user(USER)
        self.graph.add_mailbox(USER)
        self.sleeps: list[float] = []

    def start(self) -> FakeMicrosoft:
        self.server.start()
        self.entra.base_url = self.graph.base_url = self.server.base_url
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> FakeMicrosoft:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def authority(self) -> str:
        """The ``authority`` setting: the fake's https root (tenant appended)."""
        return self.server.base_url

    @property
    def api_base(self) -> str:
        return f"{self.server.base_url}/v1.0"

    def session(self) -> requests.Session:
        """A client session that trusts the fake's certificate, and only that."""
        session = requests.Session()
        session.verify = str(self.server.ca_path)
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        self.server.on_stop(session.close)
        return session

    # -- fault injection ----------------------------------------------------

    def throttle(
        self,
        count: int = 1,
        *,
        status: int = 429,
        retry_after: str | None = "1",
        every: int = 1,
        path_contains: str = "",
    ) -> Fault:
        """The next ``count`` matching Graph requests are throttled."""
        code = "ApplicationThrottled" if status == 429 else "ServiceNotAvailable"
        message = (
            "Application is over its MailboxConcurrency limit."
            if status == 429
            else "The service is temporarily unavailable."
        )
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return self.fail_graph(
            status,
            code,
            message,
            count=count,
            every=every,
            path_contains=path_contains,
            headers=headers,
        )

    def fail_graph(
        self,
        status: int,
        code: str,
        message: str,
        *,
        count: int = 1,
        every: int = 1,
        path_contains: str = "",
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """The next ``count`` matching Graph requests answer this error."""

        def match(request: Request) -> bool:
            return request.path.startswith("/v1.0/") and path_contains in request.path

        answer = graph_error(status, code, message, headers)
        return self.server.inject(Fault(answer, match, count=count, every=every))

    def fail_token(
        self,
        status: int,
        error: str,
        description: str,
        codes: list[int],
        *,
        count: int = 1,
    ) -> Fault:
        """The next ``count`` token requests answer this OAuth2 error."""

        def match(request: Request) -> bool:
            return request.path.endswith("/oauth2/v2.0/token")

        answer = oauth_error(status, error, description, codes)
        return self.server.inject(Fault(answer, match, count=count))

    # -- request log --------------------------------------------------------

    @property
    def requests(self) -> list[Exchange]:
        return list(self.server.log)

    def graph_requests(self) -> list[Exchange]:
        return [e for e in self.server.log if e.path.startswith("/v1.0/")]

    def token_requests(self) -> list[Exchange]:
        return [e for e in self.server.log if e.path.endswith("/oauth2/v2.0/token")]

    def reset_log(self) -> None:
        with self.server.lock:
            self.server.log.clear()

    def _route(self, request: Request) -> Response:
        answer = self.entra.handle(request) or self.graph.handle(request)
        if answer is None:
            return Response.json(404, {"error": f"no route for {request.path}"})
        return answer


@pytest.fixture
def fake_microsoft() -> Iterator[FakeMicrosoft]:
    """A running fake Entra ID + Graph, stopped after the test."""
    with FakeMicrosoft() as fake:
        yield fake


def make_graph_provider(
    fake: FakeMicrosoft, tmp_path: Path, **kw: Any
) -> GraphProvider:
    """A GraphProvider wired to ``fake``; keyword arguments override defaults.

    Backoff waits are recorded in ``fake.sleeps`` instead of slept.
    """
    options: dict[str, Any] = {
        "tenant_id": TENANT_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "user": USER,
        "authority": fake.authority,
        "api_base": fake.api_base,
        "token_cache_path": tmp_path / "graph-token-cache.json",
        "session": fake.session(),
        "sleep": fake.sleeps.append,
    }
    options.update(kw)
    return GraphProvider(options.pop("name", "service"), **options)


def deliver(fake: FakeMicrosoft, raw: bytes, thread: str | None) -> None:
    """A mail arrives in the fake mailbox's Inbox, in conversation ``thread``."""
    fake.graph.deliver(USER, raw, conversation_id=thread)
