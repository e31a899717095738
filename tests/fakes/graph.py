"""A fake Microsoft Graph mail API: folders, messages, delta, raw MIME, writes.

Delta follows the documented shape: query options only on the first call,
absolute opaque ``@odata.nextLink``/``@odata.deltaLink``, ``@removed``
tombstones, moves as removed-here-added-there, deliberate replays on
request, and 410 ``SyncStateNotFound`` for an expired delta token.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import quote

from tests.fakes.entra import AccessGrant, FakeEntra
from tests.fakes.loopback import Request, Response

__all__ = ["FakeFolder", "FakeGraph", "FakeMessage", "graph_error"]

ROOT = "/v1.0"
WELL_KNOWN = ("inbox", "archive", "deleteditems", "drafts", "junkemail", "sentitems")
FIELDS = {
    "subject": lambda m: m.subject,
    "receivedDateTime": lambda m: _odata_time(m.received),
    "internetMessageId": lambda m: m.internet_message_id,
    "conversationId": lambda m: m.conversation_id,
    "isRead": lambda m: m.is_read,
    "categories": lambda m: list(m.categories),
    "parentFolderId": lambda m: m.folder_id,
}
_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$")
_NAME_FILTER = re.compile(r"^\s*displayName\s+eq\s+'((?:[^']|'')*)'\s*$")
_FOLDER_CALL = re.compile(r"mailFolders\('([^']*)'\)")


@dataclass
class FakeFolder:
    id: str
    display_name: str
    parent_id: str | None
    well_known: str | None = None


@dataclass
class FakeMessage:
    id: str
    folder_id: str
    raw: bytes
    conversation_id: str
    internet_message_id: str
    subject: str
    received: datetime
    is_read: bool = False
    categories: list[str] = field(default_factory=list)
    created_seq: int = 0
    changed_seq: int = 0


@dataclass
class _Tombstone:
    seq: int
    folder_id: str
    message_id: str
    reason: str


@dataclass
class _Mailbox:
    user: str
    folders: dict[str, FakeFolder] = field(default_factory=dict)
    messages: dict[str, FakeMessage] = field(default_factory=dict)
    tombstones: list[_Tombstone] = field(default_factory=list)


@dataclass(frozen=True)
class _DeltaQuery:
    user: str
    folder_id: str
    select: tuple[str, ...] | None
    floor: datetime | None
    floor_exclusive: bool
    change_type: str | None


@dataclass
class _DeltaState:
    query: _DeltaQuery
    since_seq: int | None = None  # a deltaLink: changes after this
    remaining: list[dict[str, Any]] | None = None  # a nextLink: rest of a round
    as_of: int = 0


def graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A Graph error answer with ``code``, ``message`` and ``innerError``."""
    inner = {
        "request-id": str(uuid.uuid4()),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "client-request-id": str(uuid.uuid4()),
    }
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return Response.json(status, body, headers)


class FakeGraph:
    """Mailboxes behind the Graph API, checked against the fake Entra's tokens."""

    def __init__(self, entra: FakeEntra) -> None:
        self.entra = entra
        self.base_url = ""  # set once the server listens
        self.mailboxes: dict[str, _Mailbox] = {}
        self.seq = 0
        self.delta_states: dict[str, _DeltaState] = {}
        self.expired_tokens: set[str] = set()
        self.denied_users: set[str] = set()
        self.replay_window = 0  # re-report the last N changes in every round
        self.duplicate_entries = False  # repeat every new message in a round
        self.default_page_size = 10

    # -- knobs for tests --------------------------------------------------

    def add_mailbox(self, user: str) -> None:
        mailbox = _Mailbox(user.lower())
        root = FakeFolder(_new_id("AQMkAD"), "Top of Information Store", None)
        mailbox.folders[root.id] = root
        names = {"deleteditems": "Deleted Items", "junkemail": "Junk Email"}
        for well_known in WELL_KNOWN:
            name = names.get(well_known, well_known.capitalize())
            folder = FakeFolder(_new_id("AQMkAD"), name, root.id, well_known)
            mailbox.folders[folder.id] = folder
        self.mailboxes[mailbox.user] = mailbox

    def add_folder(self, user: str, name: str, parent: str = "") -> FakeFolder:
        mailbox = self.mailboxes[user.lower()]
        parent_id = self._folder(mailbox, parent).id if parent else self._root(mailbox)
        folder = FakeFolder(_new_id("AQMkAD"), name, parent_id)
        mailbox.folders[folder.id] = folder
        return folder

    def deliver(
        self,
        user: str,
        raw: bytes,
        *,
        conversation_id: str | None = None,
        received: datetime | None = None,
        folder: str = "inbox",
    ) -> FakeMessage:
        """A new message arrives in ``folder`` (well-known name or id)."""
        mailbox = self.mailboxes[user.lower()]
        headers = BytesHeaderParser().parsebytes(raw)
        message_id = str(headers.get("Message-ID") or f"<{uuid.uuid4()}@fake>")
        message = FakeMessage(
            id=_new_id("AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"),
            folder_id=self._folder(mailbox, folder).id,
            raw=raw,
            conversation_id=conversation_id or _new_id("AAQkAD"),
            internet_message_id=message_id.strip(),
            subject=str(headers.get("Subject") or ""),
            received=received or datetime.now(UTC),
        )
        message.created_seq = message.changed_seq = self._next_seq()
        mailbox.messages[message.id] = message
        return message

    def mark_read(self, user: str, message_id: str) -> None:
        """Someone reads the message in Outlook: an update in the next delta."""
        message = self.mailboxes[user.lower()].messages[message_id]
        message.is_read = True
        message.changed_seq = self._next_seq()

    def move(
        self, user: str, message_id: str, folder: str, *, immutable: bool = True
    ) -> FakeMessage:
        mailbox = self.mailboxes[user.lower()]
        message = mailbox.messages.pop(message_id)
        seq = self._next_seq()
        mailbox.tombstones.append(
            _Tombstone(seq, message.folder_id, message.id, "deleted")
        )
        message.folder_id = self._folder(mailbox, folder).id
        if not immutable:
            message.id = _new_id("AAMkAD")
        message.created_seq = message.changed_seq = seq
        mailbox.messages[message.id] = message
        return message

    def delete(self, user: str, message_id: str) -> None:
        """The message is gone for good (and thus missing for ``$value``)."""
        mailbox = self.mailboxes[user.lower()]
        message = mailbox.messages.pop(message_id)
        mailbox.tombstones.append(
            _Tombstone(self._next_seq(), message.folder_id, message.id, "deleted")
        )

    def messages(self, user: str, folder: str = "inbox") -> list[FakeMessage]:
        mailbox = self.mailboxes[user.lower()]
        folder_id = self._folder(mailbox, folder).id
        return [m for m in mailbox.messages.values() if m.folder_id == folder_id]

    def expire_delta_tokens(self) -> None:
        """Graph evicts every delta and skip token issued so far."""
        self.expired_tokens.update(self.delta_states)
        self.delta_states.clear()

    # -- HTTP -------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        if not request.path.startswith(f"{ROOT}/"):
            return None
        authorization = request.header("Authorization")
        grant = None
        if authorization.startswith("Bearer "):
            grant = self.entra.check(authorization[len("Bearer ") :])
        if grant is None:
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )

        path = _FOLDER_CALL.sub(lambda m: f"mailFolders/{m.group(1)}", request.path)
        segments = path[len(ROOT) + 1 :].split("/")
        if segments[0] == "me" and grant.user is not None:
            segments = ["users", grant.user, *segments[1:]]
        if len(segments) < 3 or segments[0] != "users":
            return graph_error(400, "BadRequest", f"Unsupported path {path}")

        mailbox = self.mailboxes.get(segments[1].lower())
        refusal = self._refusal(mailbox, segments[1], grant, request.method)
        if refusal is not None:
            return refusal
        assert mailbox is not None
        return self._route(mailbox, segments[2:], request)

    def _refusal(
        self, mailbox: _Mailbox | None, user: str, grant: AccessGrant, method: str
    ) -> Response | None:
        if mailbox is None:
            return graph_error(
                404, "ErrorInvalidUser", f"The requested user '{user}' is invalid."
            )
        if grant.user is None and mailbox.user in self.denied_users:
            return graph_error(
                403,
                "ErrorAccessDenied",
                "Access to OData is disabled: [RAOP] : Blocked by tenant "
                "configured AppOnly AccessPolicy settings.",
            )
        allowed = grant.user in (None, mailbox.user) and grant.permissions
        if not allowed or (method != "GET" and not grant.can_write):
            return graph_error(
                403,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            )
        return None

    def _route(self, mailbox: _Mailbox, rest: list[str], request: Request) -> Response:
        method = request.method
        if rest == ["mailFolders"] and method == "GET":
            return self._folders(mailbox, self._root(mailbox), request)
        if rest[0] == "mailFolders" and len(rest) >= 3:
            folder = self._folder(mailbox, rest[1], missing_ok=True)
            if folder is None:
                return graph_error(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
            if rest[2:] == ["childFolders"] and method == "GET":
                return self._folders(mailbox, folder.id, request)
            if rest[2:] == ["messages"] and method == "GET":
                return self._list(mailbox, folder.id, request)
            if rest[2:] == ["messages", "delta"] and method == "GET":
                return self._delta(mailbox, folder.id, request)
        if rest == ["messages"] and method == "GET":
            return self._list(mailbox, None, request)
        if rest[0] == "messages" and len(rest) >= 2:
            return self._message(mailbox, rest[1], rest[2:], request)
        return graph_error(400, "BadRequest", f"Unsupported request {method} {rest}")

    def _message(
        self, mailbox: _Mailbox, message_id: str, rest: list[str], request: Request
    ) -> Response:
        message = mailbox.messages.get(message_id)
        if message is None:
            return graph_error(
                404,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )
        method = request.method
        if rest == ["$value"] and method == "GET":
            return Response(200, message.raw, {"Content-Type": "text/plain"})
        if not rest and method == "GET":
            return Response.json(200, _render(message, _select(request)))
        if not rest and method == "PATCH":
            changes = request.json()
            if "isRead" in changes:
                message.is_read = bool(changes["isRead"])
            if "categories" in changes:
                message.categories = list(changes["categories"])
            message.changed_seq = self._next_seq()
            return Response.json(200, _render(message, None))
        if not rest and method == "DELETE":
            self.move(mailbox.user, message.id, "deleteditems")
            return Response(204)
        if rest == ["move"] and method == "POST":
            destination = str(request.json().get("destinationId", ""))
            folder = self._folder(mailbox, destination, missing_ok=True)
            if folder is None:
                return graph_error(400, "ErrorInvalidIdMalformed", "Id is malformed.")
            moved = self.move(
                mailbox.user, message.id, folder.id, immutable=_immutable(request)
            )
            return Response.json(201, _render(moved, None))
        return graph_error(400, "BadRequest", f"Unsupported request {method} {rest}")

    def _folders(self, mailbox: _Mailbox, parent: str, request: Request) -> Response:
        children = [f for f in mailbox.folders.values() if f.parent_id == parent]
        wanted = request.param("$filter")
        if wanted is not None:
            match = _NAME_FILTER.match(wanted)
            if match is None:
                return graph_error(400, "BadRequest", f"Invalid filter {wanted!r}")
            name = match.group(1).replace("''", "'")
            children = [f for f in children if f.display_name.lower() == name.lower()]
        value = [
            {"id": f.id, "displayName": f.display_name, "parentFolderId": parent}
            for f in children
        ]
        return Response.json(200, {"value": value})

    def _list(
        self, mailbox: _Mailbox, folder_id: str | None, request: Request
    ) -> Response:
        found = [
            m
            for m in mailbox.messages.values()
            if folder_id is None or m.folder_id == folder_id
        ]
        descending = (request.param("$orderby") or "").endswith("desc")
        found.sort(key=lambda m: m.received, reverse=descending)
        top = int(request.param("$top") or 10)
        select = _select(request)
        return Response.json(200, {"value": [_render(m, select) for m in found[:top]]})

    # -- delta ------------------------------------------------------------

    def _delta(self, mailbox: _Mailbox, folder_id: str, request: Request) -> Response:
        token = request.param("$skiptoken") or request.param("$deltatoken")
        if token is not None:
            if set(request.query) - {"$skiptoken", "$deltatoken"}:
                return graph_error(
                    400,
                    "BadRequest",
                    "Query options belong on the first delta call only.",
                )
            state = self.delta_states.get(token)
            if state is None:
                return graph_error(
                    410,
                    "SyncStateNotFound",
                    "The sync state generation is not found; please perform a "
                    "full sync.",
                )
            query = state.query
            if state.remaining is not None:
                entries, as_of = state.remaining, state.as_of
            else:
                as_of = self.seq
                entries = self._changes(mailbox, query, state.since_seq)
        else:
            parsed = self._delta_query(mailbox, folder_id, request)
            if isinstance(parsed, Response):
                return parsed
            query, as_of = parsed, self.seq
            entries = self._changes(mailbox, query, None)

        page_size = _max_page_size(request) or self.default_page_size
        page, rest = entries[:page_size], entries[page_size:]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}{ROOT}/$metadata#Collection(message)",
            "value": page,
        }
        link = (
            f"{self.base_url}{ROOT}/users/{quote(mailbox.user)}/mailFolders"
            f"('{query.folder_id}')/messages/delta"
        )
        fresh = secrets.token_urlsafe(24)
        if rest:
            self.delta_states[fresh] = _DeltaState(query, remaining=rest, as_of=as_of)
            body["@odata.nextLink"] = f"{link}?$skiptoken={fresh}"
        else:
            since = max(0, as_of - self.replay_window)
            self.delta_states[fresh] = _DeltaState(query, since_seq=since)
            body["@odata.deltaLink"] = f"{link}?$deltatoken={fresh}"
        headers = {}
        if _max_page_size(request):
            headers["Preference-Applied"] = f"odata.maxpagesize={page_size}"
        return Response.json(200, body, headers)

    def _delta_query(
        self, mailbox: _Mailbox, folder_id: str, request: Request
    ) -> _DeltaQuery | Response:
        select = _select(request)
        floor, exclusive = None, False
        text = request.param("$filter")
        if text is not None:
            match = _FILTER.match(text)
            if match is None:
                return graph_error(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    "Only receivedDateTime ge/gt is supported on delta.",
                )
            exclusive = match.group(1) == "gt"
            floor = datetime.fromisoformat(match.group(2))
        change_type = request.param("changeType")
        if change_type not in (None, "created", "updated", "deleted"):
            return graph_error(400, "BadRequest", f"Invalid changeType {change_type}")
        return _DeltaQuery(
            mailbox.user, folder_id, select, floor, exclusive, change_type
        )

    def _changes(
        self, mailbox: _Mailbox, query: _DeltaQuery, since: int | None
    ) -> list[dict[str, Any]]:
        """The round's entries: created, updated and removed since ``since``."""
        entries: list[dict[str, Any]] = []
        created: list[dict[str, Any]] = []
        ordered = sorted(
            mailbox.messages.values(), key=lambda m: (m.received, m.created_seq)
        )
        for message in ordered:
            if message.folder_id != query.folder_id or not _in_window(message, query):
                continue
            if since is None or message.created_seq > since:
                kind = "created"
            elif message.changed_seq > since:
                kind = "updated"
            else:
                continue
            if query.change_type in (None, kind):
                entries.append(_render(message, query.select))
                if kind == "created":
                    created.append(entries[-1])

        if since is not None and query.change_type in (None, "deleted"):
            for tombstone in mailbox.tombstones:
                present = mailbox.messages.get(tombstone.message_id)
                if (
                    tombstone.folder_id == query.folder_id
                    and tombstone.seq > since
                    and (present is None or present.folder_id != query.folder_id)
                ):
                    entries.append(
                        {
                            "@odata.type": "#microsoft.graph.message",
                            "id": tombstone.message_id,
                            "@removed": {"reason": tombstone.reason},
                        }
                    )
        if self.duplicate_entries:
            entries.extend(created)
        return entries

    # -- helpers ------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _root(self, mailbox: _Mailbox) -> str:
        return next(f.id for f in mailbox.folders.values() if f.parent_id is None)

    def _folder(self, mailbox: _Mailbox, name: str, *, missing_ok: bool = False) -> Any:
        for folder in mailbox.folders.values():
            if folder.id == name or (folder.well_known or "") == name.lower():
                return folder
        if missing_ok:
            return None
        raise KeyError(name)


def _render(message: FakeMessage, select: tuple[str, ...] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": f'W/"CQAAABYAAAA{message.changed_seq:08d}"',
        "id": message.id,
    }
    for name, value in FIELDS.items():
        if select is None or name in select:
            entry[name] = value(message)
    return entry


def _select(request: Request) -> tuple[str, ...] | None:
    text = request.param("$select")
    return tuple(part.strip() for part in text.split(",")) if text else None


def _preferences(request: Request) -> list[str]:
    values = request.headers.get_all("Prefer") or []
    return [part.strip() for value in values for part in str(value).split(",")]


def _max_page_size(request: Request) -> int | None:
    for preference in _preferences(request):
        name, _, value = preference.partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            return int(value)
    return None


def _immutable(request: Request) -> bool:
    return 'IdType="ImmutableId"' in _preferences(request)


def _in_window(message: FakeMessage, query: _DeltaQuery) -> bool:
    if query.floor is None:
        return True
    if query.floor_exclusive:
        return message.received > query.floor
    return message.received >= query.floor


def _odata_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(18)}AAA="
