"""An HTTPS server on 127.0.0.1 for fakes: routing, fault injection, request log.

The server answers with a throwaway self-signed certificate, because msal
accepts only https authorities. Clients trust it through ``ca_path``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Exchange", "Fault", "LoopbackServer", "Request", "Response"]


@dataclass
class Request:
    """One request as the fake sees it."""

    method: str
    path: str  # percent-decoded, without the query
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("ascii"), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}

    def header(self, name: str) -> str:
        return str(self.headers.get(name, ""))


@dataclass
class Response:
    """One answer of the fake."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> Response:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), merged)


@dataclass
class Fault:
    """An injected answer that replaces the real one for matching requests.

    It fires on every ``every``-th matching request until it has fired
    ``count`` times.
    """

    answer: Response
    match: Callable[[Request], bool] = lambda request: True
    count: int = 1
    every: int = 1
    seen: int = 0
    fired: int = 0


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, for counting and asserting."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    prefer: str
    authorized: bool
    injected: bool


class LoopbackServer:
    """A threaded HTTPS server that hands every request to ``handler``.

    Usable as a context manager. Requests are served one at a time under a
    lock, so handlers need no locking of their own.
    """

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self.handler = handler
        self.faults: list[Fault] = []
        self.log: list[Exchange] = []
        self.errors: list[BaseException] = []
        self.lock = threading.RLock()
        self._directory: Path | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._on_stop: list[Callable[[], None]] = []

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> Path:
        assert self._directory is not None, "server not started"
        return self._directory / "cert.pem"

    def start(self) -> LoopbackServer:
        self._directory = Path(tempfile.mkdtemp(prefix="mail2wo-fake-"))
        cert, key = self._directory / "cert.pem", self._directory / "key.pem"
        _write_certificate(cert, key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="loopback-fake",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for callback in self._on_stop:
            callback()
        self._on_stop.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        self._server = self._thread = self._directory = None
        if self.errors:
            raise AssertionError(f"the fake server failed: {self.errors[0]!r}")

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (close a client session, say) when the server stops."""
        self._on_stop.append(callback)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def answer(self, request: Request) -> tuple[Response, bool]:
        """The injected answer for ``request`` when a fault fires, else the real one."""
        with self.lock:
            for fault in list(self.faults):
                if not fault.match(request):
                    continue
                fault.seen += 1
                if (fault.seen - 1) % fault.every:
                    continue
                fault.fired += 1
                if fault.fired >= fault.count:
                    self.faults.remove(fault)
                return fault.answer, True
            return self.handler(request), False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def close_connections(self) -> None:
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.connections.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive answers without a 40 ms stall
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def _dispatch(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=unquote(parts.path),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            response, injected = owner.answer(request)
        except Exception as exc:  # a bug in the fake, reported at stop()
            owner.errors.append(exc)
            response, injected = Response(500, repr(exc).encode()), False

        with owner.lock:
            owner.log.append(
                Exchange(
                    method=request.method,
                    path=request.path,
                    query=request.query,
                    status=response.status,
                    prefer=request.header("Prefer"),
                    authorized=bool(request.header("Authorization")),
                    injected=injected,
                )
            )
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def _write_certificate(cert_path: Path, key_path: Path) -> None:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail2wo fake")])
    now = dt.datetime.now(dt.UTC)
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
