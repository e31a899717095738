"""Loopback fakes of Google's OAuth token endpoint and of the Gmail API.

One ``http.server.ThreadingHTTPServer`` on 127.0.0.1 serves both, speaking
the wire format of ``reference/mail-apis.md`` Part B so that the real
``google-auth``, ``google-auth-oauthlib`` and ``google-api-python-client``
code talks to it unchanged:

    POST /token                           refresh_token, authorization_code
                                          (PKCE S256) and jwt-bearer grants
    GET  /o/oauth2/auth                   consent, answered at once with a
                                          302 to ``redirect_uri?code&state``
    GET  /gmail/v1/users/{u}/profile
    GET  /gmail/v1/users/{u}/messages     labelIds, q=after:/before:,
                                          pageToken, maxResults
    GET  /gmail/v1/users/{u}/messages/{id}            format=raw|metadata|
                                                      minimal|full
    POST /gmail/v1/users/{u}/messages/{id}/modify
    GET  /gmail/v1/users/{u}/history      startHistoryId, historyTypes,
                                          labelId, pageToken, maxResults
    GET  /gmail/v1/users/{u}/labels       and POST to create one
    POST /batch, /batch/gmail/v1          multipart/mixed of the above

The mailbox is in memory; its history id grows by uneven steps with every
change. Faults are injected per HTTP request or per batch item, and every
HTTP request is counted (a batch is one request).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser, BytesParser, Parser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.gmail import GMAIL_MODIFY, GMAIL_READONLY, GmailProvider

__all__ = [
    "FakeGoogle",
    "deliver",
    "fake_google",
    "make_gmail_provider",
    "make_service_account_file",
    "write_token_file",
]

SYSTEM_LABELS = (
    "INBOX",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "SENT",
    "DRAFT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)
WRITE_SCOPES = frozenset({GMAIL_MODIFY, "https://mail.google.com/"})
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_STATUS_TEXT = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_ERROR_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Response:
    """One HTTP answer, before it goes on the wire."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeMessage:
    """A mail in the fake mailbox."""

    id: str
    thread_id: str
    raw: bytes
    label_ids: list[str]
    internal_ms: int
    history_id: int
    seq: int


@dataclass
class HistoryRecord:
    """One change to the mailbox, as ``history.list`` reports it."""

    id: int
    kind: str  # messageAdded | messageDeleted | labelAdded | labelRemoved
    message_id: str
    thread_id: str
    labels_then: list[str]
    changed: list[str] = field(default_factory=list)


@dataclass
class Fault:
    """The next ``remaining`` requests (or batch items) fail with ``status``."""

    status: int
    remaining: int
    retry_after: float | None = None
    reason: str | None = None
    path: str | None = None


@dataclass
class AccessToken:
    """An access token the fake issued."""

    expires_at: float
    user: str
    scopes: frozenset[str]


def json_response(status: int, payload: Any, **headers: str) -> Response:
    """A JSON answer as Google sends it."""
    body = json.dumps(payload).encode()
    return Response(
        status, body, {"Content-Type": "application/json; charset=UTF-8", **headers}
    )


def api_error(status: int, message: str, reason: str, **headers: str) -> Response:
    """A Google API error body (``error.code/message/errors/status``)."""
    error = {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": _ERROR_STATUS.get(status, "UNKNOWN"),
    }
    return json_response(status, {"error": error}, **headers)


def oauth_error(status: int, error: str, description: str) -> Response:
    """An OAuth 2.0 token-endpoint error body."""
    return json_response(status, {"error": error, "error_description": description})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeGoogle:
    """Google's token endpoint and one Gmail mailbox on a loopback port."""

    def __init__(
        self,
        *,
        email: str = "service@example.com",
        client_id: str = "test-client.apps.googleusercontent.com",
        client_secret: str = "test-client-secret",
        expires_in: int = 3600,
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self.email = email
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.rotate_refresh_tokens = rotate_refresh_tokens

        self._lock = threading.RLock()
        self._messages: dict[str, FakeMessage] = {}
        self._history: list[HistoryRecord] = []
        self._history_id = 1000
        self._oldest_history_id = 0
        self._steps = itertools.cycle((1, 3, 2, 5))
        self._seq = itertools.count(1)
        self._user_labels: dict[str, str] = {}

        self._refresh_tokens: dict[str, frozenset[str]] = {}
        self._access_tokens: dict[str, AccessToken] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._trusted_keys: list[rsa.RSAPublicKey] = []

        self._request_faults: list[Fault] = []
        self._item_faults: list[Fault] = []

        self.api_requests = 0
        self.token_requests = 0
        self.batch_items = 0
        self.log: list[str] = []
        self.slept: list[float] = []

        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakeGoogle:
        """Listen on 127.0.0.1 at a free port, in a daemon thread."""
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` without a trailing slash."""
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_base(self) -> str:
        """The Gmail API root, for ``client_options.api_endpoint``."""
        return self.base + "/"

    @property
    def token_uri(self) -> str:
        """The token endpoint."""
        return self.base + "/token"

    @property
    def auth_uri(self) -> str:
        """The consent page (answers with a redirect at once)."""
        return self.base + "/o/oauth2/auth"

    @property
    def requests(self) -> int:
        """HTTP requests to the Gmail API and the token endpoint together."""
        return self.api_requests + self.token_requests

    def reset_counters(self) -> None:
        """Start counting requests from zero."""
        with self._lock:
            self.api_requests = 0
            self.token_requests = 0
            self.batch_items = 0
            self.log.clear()

    # -- mailbox -----------------------------------------------------------

    @property
    def history_id(self) -> int:
        """The mailbox's current history id."""
        return self._history_id

    def deliver(
        self,
        raw: bytes,
        *,
        thread: str | None = None,
        labels: Iterable[str] = ("INBOX", "UNREAD"),
        received_at: datetime | None = None,
    ) -> str:
        """Put a mail in the mailbox and return its message id."""
        with self._lock:
            seq = next(self._seq)
            message_id = f"{0x18C2A0F000000000 + seq * 0x1B3:x}"
            when = received_at.timestamp() if received_at else time.time()
            message = FakeMessage(
                id=message_id,
                thread_id=thread or message_id,
                raw=raw,
                label_ids=list(labels),
                internal_ms=int(when * 1000),
                history_id=0,
                seq=seq,
            )
            self._messages[message_id] = message
            self._record("messageAdded", message)
            return message_id

    def delete(self, message_id: str) -> None:
        """Remove a mail for good (a ``messageDeleted`` history record)."""
        with self._lock:
            message = self._messages.pop(message_id)
            self._record("messageDeleted", message)

    def message(self, message_id: str) -> FakeMessage:
        """A mail by id."""
        return self._messages[message_id]

    def label_id(self, name: str) -> str | None:
        """The id of a user label by name."""
        return self._user_labels.get(name)

    def create_label(self, name: str) -> str:
        """Add a user label and return its id."""
        with self._lock:
            label_id = f"Label_{len(self._user_labels) + 1}"
            self._user_labels[name] = label_id
            return label_id

    def expire_history(self) -> None:
        """Forget every history record: older ``startHistoryId`` values get 404."""
        with self._lock:
            self._oldest_history_id = self._history_id
            self._history.clear()

    def _record(self, kind: str, message: FakeMessage, changed: list[str] = []) -> None:  # noqa: B006
        self._history_id += next(self._steps)
        message.history_id = self._history_id
        self._history.append(
            HistoryRecord(
                self._history_id,
                kind,
                message.id,
                message.thread_id,
                list(message.label_ids),
                list(changed),
            )
        )

    # -- grants ------------------------------------------------------------

    def issue_refresh_token(self, scopes: Iterable[str] = (GMAIL_READONLY,)) -> str:
        """A refresh token the fake will honour, as a connect would leave."""
        token = "1//fake-refresh-" + secrets.token_urlsafe(12)
        with self._lock:
            self._refresh_tokens[token] = frozenset(scopes)
        return token

    def revoke(self) -> None:
        """Revoke every grant: refresh tokens and access tokens stop working."""
        with self._lock:
            self._refresh_tokens.clear()
            self._access_tokens.clear()

    def expire_access_tokens(self) -> None:
        """Make every issued access token answer 401 from now on."""
        with self._lock:
            self._access_tokens.clear()

    def refresh_token_valid(self, token: str) -> bool:
        """Whether ``token`` would still be accepted."""
        return token in self._refresh_tokens

    def trust_service_account_key(self, public_key: rsa.RSAPublicKey) -> None:
        """Accept jwt-bearer assertions signed by this key."""
        self._trusted_keys.append(public_key)

    # -- faults ------------------------------------------------------------

    def fail_requests(
        self,
        count: int,
        status: int = 429,
        *,
        retry_after: float | None = None,
        reason: str | None = None,
        path: str | None = None,
    ) -> None:
        """Make the next ``count`` Gmail HTTP requests (path containing
        ``path`` when given) fail with ``status``."""
        with self._lock:
            self._request_faults.append(Fault(status, count, retry_after, reason, path))

    def fail_batch_items(
        self,
        count: int,
        status: int = 429,
        *,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        """Make the next ``count`` items inside batch requests fail."""
        with self._lock:
            self._item_faults.append(Fault(status, count, retry_after, reason))

    def _take_fault(self, faults: list[Fault], path: str) -> Response | None:
        with self._lock:
            for fault in faults:
                if fault.remaining and (fault.path is None or fault.path in path):
                    fault.remaining -= 1
                    return _fault_response(fault)
        return None

    # -- dispatch ----------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Response:
        """Answer one HTTP request (also used for each batch item)."""
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        path = url.path
        with self._lock:
            self.log.append(f"{method} {path}")

        if path == "/token" and method == "POST":
            with self._lock:
                self.token_requests += 1
            return self._token(headers, body)
        if path == "/o/oauth2/auth" and method == "GET":
            return self._consent(query)

        with self._lock:
            self.api_requests += 1
        fault = self._take_fault(self._request_faults, path)
        if fault is not None:
            return fault
        if path in ("/batch", "/batch/gmail/v1") and method == "POST":
            return self._batch(headers, body)
        return self._api(method, path, query, headers, body)

    # -- token endpoint ----------------------------------------------------

    def _token(self, headers: dict[str, str], body: bytes) -> Response:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            pair = base64.b64decode(basic[6:]).decode()
            client_id, _, client_secret = (
                urllib.parse.unquote(p) for p in pair.partition(":")
            )
        grant = form.get("grant_type")

        if grant == JWT_BEARER:
            return self._jwt_grant(form.get("assertion", ""))
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if grant == "refresh_token":
            return self._refresh_grant(form)
        if grant == "authorization_code":
            return self._code_grant(form)
        return oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r}")

    def _issue(self, user: str, scopes: frozenset[str], **extra: str) -> Response:
        token = "ya29.fake-" + secrets.token_urlsafe(16)
        with self._lock:
            self._access_tokens[token] = AccessToken(
                time.time() + self.expires_in, user, scopes
            )
        payload = {
            "access_token": token,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": " ".join(sorted(scopes)),
            **extra,
        }
        return json_response(200, payload, **{"Cache-Control": "no-store"})

    def _refresh_grant(self, form: dict[str, str]) -> Response:
        old = form.get("refresh_token", "")
        with self._lock:
            scopes = self._refresh_tokens.get(old)
            if scopes is None:
                return oauth_error(
                    400, "invalid_grant", "Token has been expired or revoked."
                )
            if not self.rotate_refresh_tokens:
                return self._issue(self.email, scopes)
            del self._refresh_tokens[old]
            new = "1//fake-refresh-" + secrets.token_urlsafe(12)
            self._refresh_tokens[new] = scopes
        return self._issue(self.email, scopes, refresh_token=new)

    def _code_grant(self, form: dict[str, str]) -> Response:
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return oauth_error(400, "invalid_grant", "Malformed auth code.")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if _b64url(digest).rstrip("=") != grant["challenge"]:
            return oauth_error(400, "invalid_grant", "Invalid code verifier.")
        refresh = self.issue_refresh_token(grant["scopes"])
        return self._issue(self.email, grant["scopes"], refresh_token=refresh)

    def _jwt_grant(self, assertion: str) -> Response:
        try:
            head, payload, signature = assertion.split(".")
            signed = f"{head}.{payload}".encode()
            claims = json.loads(_b64url_decode(payload))
        except ValueError:
            return oauth_error(400, "invalid_grant", "Invalid JWT.")
        for key in self._trusted_keys:
            with contextlib.suppress(Exception):
                key.verify(
                    _b64url_decode(signature),
                    signed,
                    padding.PKCS1v15(),
                    hashes.SHA256(),
                )
                break
        else:
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("exp", 0) < time.time():
            return oauth_error(400, "invalid_grant", "Invalid JWT: expired.")
        user = claims.get("sub") or claims.get("iss", "")
        return self._issue(user, frozenset(claims.get("scope", "").split()))

    def _consent(self, query: dict[str, list[str]]) -> Response:
        first = {k: v[0] for k, v in query.items()}
        if first.get("client_id") != self.client_id:
            return Response(400, b"unknown client")
        code = "4/fake-code-" + secrets.token_urlsafe(10)
        with self._lock:
            self._codes[code] = {
                "redirect_uri": first.get("redirect_uri"),
                "challenge": first.get("code_challenge", ""),
                "scopes": frozenset(first.get("scope", "").split()),
            }
        params = urllib.parse.urlencode({"state": first.get("state", ""), "code": code})
        location = f"{first.get('redirect_uri')}?{params}"
        return Response(302, b"", {"Location": location})

    # -- Gmail API ---------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        token = self._access_tokens.get(
            headers.get("authorization", "").removeprefix("Bearer ")
        )
        if token is None or token.expires_at < time.time():
            return api_error(
                401,
                "Request had invalid authentication credentials.",
                "authError",
                **{"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        match = re.fullmatch(r"/gmail/v1/users/([^/]+)/(.+)", path)
        if match is None:
            return api_error(404, "Not Found", "notFound")
        user = urllib.parse.unquote(match.group(1))
        if user not in ("me", self.email) or token.user != self.email:
            return api_error(403, "Delegation denied", "forbidden")
        rest = match.group(2)
        single = {k: v[0] for k, v in query.items()}
        if method == "POST" and not token.scopes & WRITE_SCOPES:
            return api_error(
                403,
                "Request had insufficient authentication scopes.",
                "insufficientPermissions",
            )
        with self._lock:
            if rest == "profile" and method == "GET":
                return self._profile()
            if rest == "messages" and method == "GET":
                return self._list(query, single)
            if rest == "history" and method == "GET":
                return self._history_list(query, single)
            if rest == "labels" and method == "GET":
                return self._labels()
            if rest == "labels" and method == "POST":
                return self._create_label(json.loads(body or b"{}"))
            found = re.fullmatch(r"messages/([^/]+)(/modify)?", rest)
            if found is not None:
                message = self._messages.get(found.group(1))
                if message is None:
                    return api_error(404, "Requested entity was not found.", "notFound")
                if found.group(2) and method == "POST":
                    return self._modify(message, json.loads(body or b"{}"))
                if not found.group(2) and method == "GET":
                    return self._get(message, query, single)
        return api_error(404, "Not Found", "notFound")

    def _profile(self) -> Response:
        return json_response(
            200,
            {
                "emailAddress": self.email,
                "messagesTotal": len(self._messages),
                "threadsTotal": len({m.thread_id for m in self._messages.values()}),
                "historyId": str(self._history_id),
            },
        )

    def _list(self, query: dict[str, list[str]], single: dict[str, str]) -> Response:
        wanted = set(query.get("labelIds", []))
        after, before = 0.0, float("inf")
        for term in single.get("q", "").split():
            name, _, value = term.partition(":")
            if name not in ("after", "before"):
                return api_error(
                    400, f"unsupported search term {term!r}", "invalidArgument"
                )
            seconds = _search_time(value)
            if name == "after":
                after = seconds
            else:
                before = seconds
        hidden = {"SPAM", "TRASH"} - wanted
        if single.get("includeSpamTrash") == "true":
            hidden = set()
        matches = sorted(
            (
                m
                for m in self._messages.values()
                if wanted <= set(m.label_ids)
                and not hidden & set(m.label_ids)
                and after * 1000 <= m.internal_ms < before * 1000
            ),
            key=lambda m: (m.internal_ms, m.seq),
            reverse=True,
        )
        if "pageToken" in single:
            ms, seq = (int(p) for p in single["pageToken"].split("_"))
            matches = [m for m in matches if (m.internal_ms, m.seq) < (ms, seq)]
        size = min(int(single.get("maxResults", 100)), 500)
        page, more = matches[:size], len(matches) > size
        payload: dict[str, Any] = {"resultSizeEstimate": len(matches)}
        if page:
            payload["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if more:
            payload["nextPageToken"] = f"{page[-1].internal_ms}_{page[-1].seq}"
        return json_response(200, payload)

    def _get(
        self, message: FakeMessage, query: dict[str, list[str]], single: dict[str, str]
    ) -> Response:
        form = single.get("format", "full")
        payload: dict[str, Any] = {
            "id": message.id,
            "threadId": message.thread_id,
            "labelIds": list(message.label_ids),
            "historyId": str(message.history_id),
            "internalDate": str(message.internal_ms),
            "sizeEstimate": len(message.raw),
        }
        if form == "raw":
            payload["raw"] = _b64url(message.raw)
        elif form in ("metadata", "full"):
            parsed = BytesHeaderParser().parsebytes(message.raw)
            names = {n.lower() for n in query.get("metadataHeaders", [])}
            payload["payload"] = {
                "mimeType": parsed.get_content_type(),
                "headers": [
                    {"name": k, "value": str(v)}
                    for k, v in parsed.items()
                    if form == "full" or not names or k.lower() in names
                ],
            }
        elif form != "minimal":
            return api_error(400, f"Invalid format {form!r}", "invalidArgument")
        return json_response(200, payload)

    def _history_list(
        self, query: dict[str, list[str]], single: dict[str, str]
    ) -> Response:
        try:
            start = int(single["startHistoryId"])
        except (KeyError, ValueError):
            return api_error(400, "Invalid startHistoryId", "invalidArgument")
        if start < self._oldest_history_id:
            return api_error(404, "Requested entity was not found.", "notFound")
        kinds = set(query.get("historyTypes", [])) or {
            "messageAdded",
            "messageDeleted",
            "labelAdded",
            "labelRemoved",
        }
        label = single.get("labelId")
        after = int(single.get("pageToken", start))
        records = [
            r
            for r in self._history
            if r.id > after
            and r.kind in kinds
            and (label is None or label in r.labels_then)
        ]
        size = min(int(single.get("maxResults", 100)), 500)
        page, more = records[:size], len(records) > size
        payload: dict[str, Any] = {"historyId": str(self._history_id)}
        if page:
            payload["history"] = [_history_json(r) for r in page]
        if more:
            payload["nextPageToken"] = str(page[-1].id)
        return json_response(200, payload)

    def _all_labels(self) -> dict[str, str]:
        return {**{name: name for name in SYSTEM_LABELS}, **self._user_labels}

    def _labels(self) -> Response:
        labels = [{"id": n, "name": n, "type": "system"} for n in SYSTEM_LABELS]
        labels += [
            {"id": i, "name": n, "type": "user"} for n, i in self._user_labels.items()
        ]
        return json_response(200, {"labels": labels})

    def _create_label(self, body: dict[str, Any]) -> Response:
        name = str(body.get("name", ""))
        if not name or name.casefold() in {n.casefold() for n in self._all_labels()}:
            return api_error(409, "Label name exists or conflicts", "duplicate")
        label_id = self.create_label(name)
        return json_response(200, {"id": label_id, "name": name, "type": "user"})

    def _modify(self, message: FakeMessage, body: dict[str, Any]) -> Response:
        known = set(self._all_labels().values())
        add = list(body.get("addLabelIds", []))
        remove = list(body.get("removeLabelIds", []))
        if not set(add + remove) <= known:
            return api_error(400, "Invalid label", "invalidArgument")
        added = [label for label in add if label not in message.label_ids]
        removed = [label for label in remove if label in message.label_ids]
        message.label_ids = [l for l in message.label_ids if l not in removed] + added  # noqa: E741
        if added:
            self._record("labelAdded", message, added)
        if removed:
            self._record("labelRemoved", message, removed)
        return json_response(
            200,
            {
                "id": message.id,
                "threadId": message.thread_id,
                "labelIds": message.label_ids,
            },
        )

    # -- batch -------------------------------------------------------------

    def _batch(self, headers: dict[str, str], body: bytes) -> Response:
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/mixed"):
            return api_error(400, "batch needs multipart/mixed", "badRequest")
        outer = BytesParser().parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        boundary = "batch_" + secrets.token_hex(12)
        out: list[str] = []
        for part in outer.get_payload():
            with self._lock:
                self.batch_items += 1
            content_id = str(part["Content-ID"]).strip()
            request_line, _, rest = str(part.get_payload()).partition("\n")
            method, target, _ = request_line.split(" ", 2)
            inner = Parser().parsestr(rest)
            inner_headers = {k.lower(): str(v) for k, v in inner.items()}
            if "authorization" not in inner_headers and "authorization" in headers:
                inner_headers["authorization"] = headers["authorization"]
            path = urllib.parse.urlsplit(target).path
            answer = self._take_fault(self._item_faults, path) or self._api(
                method,
                path,
                urllib.parse.parse_qs(urllib.parse.urlsplit(target).query),
                inner_headers,
                str(inner.get_payload()).encode(),
            )
            lines = [f"HTTP/1.1 {answer.status} {_STATUS_TEXT.get(answer.status, 'X')}"]
            lines += [f"{k}: {v}" for k, v in answer.headers.items()]
            out.append(
                f"--{boundary}\r\n"
                "Content-Type: application/http\r\n"
                f"Content-ID: <response-{content_id[1:-1]}>\r\n"
                "\r\n" + "\r\n".join(lines) + "\r\n\r\n" + answer.body.decode() + "\r\n"
            )
        out.append(f"--{boundary}--\r\n")
        return Response(
            200,
            "".join(out).encode(),
            {"Content-Type": f"multipart/mixed; boundary={boundary}"},
        )


def _fault_response(fault: Fault) -> Response:
    extra = (
        {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
    )
    if fault.status == 429:
        return api_error(
            429,
            "Too many concurrent requests for user",
            fault.reason or "rateLimitExceeded",
            **extra,
        )
    if fault.status == 403:
        reason = fault.reason or "userRateLimitExceeded"
        return api_error(403, "User Rate Limit Exceeded", reason, **extra)
    return api_error(
        fault.status, "Backend Error", fault.reason or "backendError", **extra
    )


def _search_time(value: str) -> float:
    if value.isdigit():
        return float(value)
    return datetime.strptime(value, "%Y/%m/%d").timestamp()


def _history_json(record: HistoryRecord) -> dict[str, Any]:
    ref = {"id": record.message_id, "threadId": record.thread_id}
    entry: dict[str, Any] = {"id": str(record.id), "messages": [ref]}
    if record.kind == "messageAdded":
        entry["messagesAdded"] = [{"message": {**ref, "labelIds": record.labels_then}}]
    elif record.kind == "messageDeleted":
        entry["messagesDeleted"] = [{"message": ref}]
    else:
        entry[f"{record.kind}s"] = [
            {
                "message": {**ref, "labelIds": record.labels_then},
                "labelIds": record.changed,
            }
        ]
    return entry


class _Handler(BaseHTTPRequestHandler):
    """Hands each HTTP request to the owning :class:`FakeGoogle`."""

    owner: FakeGoogle
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.owner.handle(self.command, self.path, headers, body)
        self.send_response(answer.status, _STATUS_TEXT.get(answer.status))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def do_GET(self) -> None:
        """Serve a GET."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST."""
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


# -- helpers for tests and the provider contract suite ---------------------


@contextlib.contextmanager
def fake_google(**options: Any) -> Iterator[FakeGoogle]:
    """A started :class:`FakeGoogle`, stopped on exit."""
    fake = FakeGoogle(**options)
    with fake:
        yield fake


def write_token_file(
    fake: FakeGoogle,
    path: Path,
    *,
    scopes: Iterable[str] = (GMAIL_READONLY,),
    mode: int = 0o600,
) -> str:
    """Leave an authorized-user token file as ``connect`` would; return its
    refresh token."""
    scope_list = sorted(scopes)
    refresh = fake.issue_refresh_token(scope_list)
    info = {
        "token": None,
        "refresh_token": refresh,
        "token_uri": "https://oauth2.googleapis.com/token",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "scopes": scope_list,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    path.chmod(mode)
    return refresh


def make_service_account_file(fake: FakeGoogle, path: Path) -> Path:
    """Write a service-account key file whose key the fake trusts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "mail2wo-test",
        "private_key_id": secrets.token_hex(8),
        "private_key": pem,
        "client_email": "mail2wo@mail2wo-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": fake.token_uri,
    }
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    fake.trust_service_account_key(key.public_key())
    return path


def make_gmail_provider(fake: FakeGoogle, tmp_path: Path, **kw: Any) -> GmailProvider:
    """A :class:`GmailProvider` wired to ``fake``, connected as an installed app.

    Waits go to ``fake.slept`` instead of sleeping, unless ``sleep`` is given.
    """
    token_path = kw.pop("token_path", tmp_path / "gmail-token.json")
    if kw.get("auth", "installed_app") == "installed_app" and not token_path.exists():
        write_token_file(fake, token_path, scopes=kw.pop("scopes", (GMAIL_MODIFY,)))
    kw.pop("scopes", None)
    kw.setdefault("sleep", fake.slept.append)
    return GmailProvider(
        kw.pop("name", "gmail"),
        token_path=token_path,
        api_base=fake.api_base,
        token_uri=fake.token_uri,
        **kw,
    )


def deliver(fake: FakeGoogle, raw: bytes, thread: str | None) -> None:
    """Deliver ``raw`` to the fake mailbox's inbox (contract-suite hook)."""
    fake.deliver(raw, thread=thread)


def sample_mail(number: int, *, subject: str | None = None) -> bytes:
    """A small RFC 5322 mail, unique per ``number``."""
    subject = subject or f"Storing {number}"
    return (
        f"From: klant{number}@example.nl\r\n"
        "To: service@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <mail-{number}@example.nl>\r\n"
        "Date: Tue, 03 Nov 2026 09:00:00 +0100\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"De verwarming doet het niet meer (melding {number}).\r\n"
    ).encode()
