"""Microsoft 365 mailboxes through Microsoft Graph: folder delta, raw MIME, msal."""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from providers._graph_tokens import GraphTokens
from providers.base import FetchedMail, Page, PostAction, Provider
from providers.errors import (
    AuthError,
    PermanentError,
    SettingsError,
    TransientError,
)
from providers.retry import retry_after_seconds

__all__ = ["AUTH_MODES", "GraphProvider"]

logger = logging.getLogger(__name__)

AUTH_MODES = ("client_credentials", "device_code")

_SELECT = "id,internetMessageId,conversationId,receivedDateTime,subject"
_WELL_KNOWN_FOLDERS = frozenset(
    [
        "archive",
        "clutter",
        "conversationhistory",
        "deleteditems",
        "drafts",
        "inbox",
        "junkemail",
        "msgfolderroot",
        "outbox",
        "recoverableitemsdeletions",
        "scheduled",
        "searchfolders",
        "sentitems",
        "syncissues",
    ]
)
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
_RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired"})
_ACCESS_DENIED_CODES = frozenset(
    {"accessdenied", "erroraccessdenied", "extensionerror"}
)
_TIMEOUT = (10.0, 120.0)
_FIRST_BACKOFF_SECONDS = 0.5
_MAX_RESYNCS = 2
# Mail that arrives late (replication lag, clock skew) must still fall inside
# the window that a resync reads again after the delta state is lost.
_RESYNC_OVERLAP = timedelta(hours=24)
_SEEN_LIMIT = 20_000
_FLOOR_MARK = "#mail2wo-floor="


class _SyncStateLost(Exception):
    """Graph no longer knows the delta state behind a link (410 and kin)."""


@dataclass(frozen=True)
class _Position:
    """Where a sync stands: the link to follow and the resync floor.

    ``floor`` is the oldest ``receivedDateTime`` a fresh delta round must read
    again when Graph loses the delta state. It travels with the link inside
    the cursor, as a URL fragment that is never sent to Graph.
    """

    link: str | None
    floor: datetime

    def encode(self) -> str:
        return f"{self.link}{_FLOOR_MARK}{_odata_time(self.floor)}"

    @classmethod
    def decode(cls, cursor: str, fallback_floor: datetime) -> _Position:
        link, mark, floor_text = cursor.rpartition(_FLOOR_MARK)
        if not mark:
            return cls(cursor, fallback_floor)
        return cls(link, _parse_time(floor_text) or fallback_floor)


class GraphProvider(Provider):
    """One Microsoft 365 mailbox folder, read through Microsoft Graph.

    Sync follows the folder's message delta; every new message is fetched as
    raw MIME through ``$value``. The cursor is Graph's ``nextLink`` or
    ``deltaLink`` with the resync floor attached as a fragment.

    ``folder`` is a well-known name (``Inbox``) or a display-name path
    (``Inbox/Storingen``). ``device_flow_callback`` receives msal's device
    flow (show its ``message``) when a delegated mailbox must sign in; without
    it such a mailbox raises :class:`AuthError` asking to connect.
    ``write_access`` makes a delegated sign-in ask for Mail.ReadWrite, which
    post-actions need. ``session`` and ``sleep`` are seams for tests.
    """

    def __init__(
        self,
        name: str,
        *,
        tenant_id: str,
        client_id: str,
        user: str,
        folder: str = "Inbox",
        auth: str = "client_credentials",
        client_secret: str | None = None,
        certificate: tuple[str, str] | None = None,
        authority: str = "https://login.microsoftonline.com",
        api_base: str = "https://graph.microsoft.com/v1.0",
        token_cache_path: Path,
        since: datetime | None = None,
        page_size: int = 50,
        max_retries: int = 6,
        max_wait_seconds: float = 60.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        device_flow_callback: Callable[[dict[str, Any]], None] | None = None,
        write_access: bool = False,
    ) -> None:
        _check_settings(
            name,
            tenant_id=tenant_id,
            client_id=client_id,
            user=user,
            auth=auth,
            client_secret=client_secret,
            certificate=certificate,
            authority=authority,
            page_size=page_size,
        )
        self.name = name
        self._user = user
        self._folder = folder
        self._user_url = f"{api_base.rstrip('/')}/users/{quote(user, safe='@')}"
        self._since = _as_utc(since) if since is not None else None
        self._page_size = page_size
        self._max_retries = max_retries
        self._max_wait = max_wait_seconds
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._folder_ids: dict[str, str] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()

        parts = urlsplit(api_base)
        if auth == "client_credentials":
            scopes = [f"{parts.scheme}://{parts.netloc}/.default"]
        else:
            scopes = ["Mail.ReadWrite" if write_access else "Mail.Read"]
        self._tokens = GraphTokens(
            name,
            tenant_id=tenant_id,
            client_id=client_id,
            user=user.lower(),
            auth=auth,
            client_secret=client_secret,
            certificate=certificate,
            authority=authority,
            scopes=scopes,
            cache_path=token_cache_path,
            session=self._session,
            device_flow_callback=device_flow_callback,
        )

    # -- Provider ---------------------------------------------------------

    def sync(self, cursor: str | None) -> Iterator[Page]:
        """Yield one page per delta page; resync on its own when Graph forgets."""
        now = datetime.now(UTC)
        first_floor = self._since or now
        if cursor is None:
            position = _Position(None, first_floor)
        else:
            position = _Position.decode(cursor, self._since or now - _RESYNC_OVERLAP)

        # A round resumed from a nextLink ends at that round's deltaLink; mail
        # that came in since the round began is only in the round after it.
        # Following that one too brings the mailbox up to date in one pass.
        rounds = 2 if _mid_round(position.link) else 1
        resyncs = 0
        while True:
            try:
                for _ in range(rounds):
                    position = yield from self._round(position)
                return
            except _SyncStateLost:
                if resyncs >= _MAX_RESYNCS:
                    raise TransientError(
                        f"mailbox {self.name!r}: Graph keeps losing the delta "
                        f"state of folder {self._folder!r}; trying again later"
                    ) from None
                resyncs += 1
                logger.info(
                    "mailbox %r: Graph lost the delta state of folder %r; "
                    "reading mail received since %s again",
                    self.name,
                    self._folder,
                    _odata_time(position.floor),
                )
                position = _Position(None, position.floor)

    def post_action(self, provider_id: str, action: PostAction) -> None:
        """Mark read, move or categorise one message (needs Mail.ReadWrite)."""
        if action.kind == "none":
            return

        url = f"{self._user_url}/messages/{quote(provider_id, safe='')}"
        if action.kind == "mark_read":
            response = self._call_if_present("PATCH", url, json_body={"isRead": True})
        elif action.kind == "move_to":
            destination = self._folder_id(action.argument)
            response = self._call_if_present(
                "POST", f"{url}/move", json_body={"destinationId": destination}
            )
        elif action.kind == "add_label":
            response = self._add_category(url, action.argument)
        else:
            raise PermanentError(
                f"mailbox {self.name!r}: post_action {action.kind!r} is not "
                "supported for Graph mailboxes"
            )

        if response is None:
            logger.info(
                "mailbox %r: message %s is gone; post_action %s skipped",
                self.name,
                provider_id,
                action.kind,
            )

    def newest_subjects(self, count: int = 3) -> list[str]:
        """The subjects of the folder's newest messages."""
        query = {
            "$top": str(count),
            "$orderby": "receivedDateTime desc",
            "$select": "subject",
        }
        url = f"{self._folder_url()}/messages?{_query(query)}"
        items = _json(self._call("GET", url), self.name).get("value") or []
        return [str(item.get("subject") or "") for item in items]

    def close(self) -> None:
        """Close the HTTP session when this provider made it."""
        if self._owns_session:
            self._session.close()

    # -- delta ------------------------------------------------------------

    def _round(self, position: _Position) -> Generator[Page, None, _Position]:
        """Follow one delta round from ``position``; return its deltaLink."""
        started = datetime.now(UTC)
        url = position.link or self._first_delta_url(position.floor)
        prefer = f"odata.maxpagesize={self._page_size}"

        while True:
            response = self._call("GET", url, prefer=prefer, resync_ok=True)
            body = _json(response, self.name)
            mails = self._new_mails(body.get("value") or [])
            next_link = body.get("@odata.nextLink")
            delta_link = body.get("@odata.deltaLink")

            if isinstance(next_link, str):
                cursor = _Position(next_link, position.floor)
            elif isinstance(delta_link, str):
                floor = max(position.floor, started - _RESYNC_OVERLAP)
                cursor = _Position(delta_link, floor)
            else:
                raise TransientError(
                    f"mailbox {self.name!r}: a Graph delta page carried "
                    "neither nextLink nor deltaLink"
                )

            yield Page(mails=mails, cursor=cursor.encode())

            # The caller asked for the next page, so it recorded this one.
            self._remember(mail.provider_id for mail in mails)
            if not isinstance(next_link, str):
                return cursor
            url = next_link

    def _first_delta_url(self, floor: datetime) -> str:
        query = {
            "changeType": "created",
            "$select": _SELECT,
            "$filter": f"receivedDateTime ge {_odata_time(floor)}",
        }
        return f"{self._folder_url()}/messages/delta?{_query(query)}"

    def _new_mails(self, entries: list[Any]) -> list[FetchedMail]:
        """Fetch the raw MIME of every entry that is new to this provider."""
        mails: list[FetchedMail] = []
        in_page: set[str] = set()
        for entry in entries:
            if not isinstance(entry, dict) or "@removed" in entry:
                continue
            message_id = entry.get("id")
            if not isinstance(message_id, str):
                continue
            if message_id in in_page or message_id in self._seen:
                continue
            in_page.add(message_id)

            raw = self._raw_mime(message_id)
            if raw is None:
                continue
            mails.append(
                FetchedMail(
                    provider_id=message_id,
                    raw=raw,
                    thread_id=entry.get("conversationId") or None,
                    received_at=_parse_time(entry.get("receivedDateTime")),
                )
            )
        return mails

    def _raw_mime(self, message_id: str) -> bytes | None:
        url = f"{self._user_url}/messages/{quote(message_id, safe='')}/$value"
        response = self._call_if_present("GET", url)
        if response is None:
            logger.debug(
                "mailbox %r: message %s vanished before its MIME was read",
                self.name,
                message_id,
            )
            return None
        return response.content

    def _remember(self, message_ids: Iterable[str]) -> None:
        for message_id in message_ids:
            self._seen[message_id] = None
        while len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)

    # -- folders and categories --------------------------------------------

    def _folder_url(self) -> str:
        folder_id = self._folder_id(self._folder)
        return f"{self._user_url}/mailFolders/{quote(folder_id, safe='')}"

    def _folder_id(self, name: str) -> str:
        """A well-known folder name as is; else the id of a display-name path."""
        if name.lower() in _WELL_KNOWN_FOLDERS:
            return name
        if name in self._folder_ids:
            return self._folder_ids[name]

        parent = ""  # the mailbox root
        for segment in name.strip("/").split("/"):
            if not parent and segment.lower() in _WELL_KNOWN_FOLDERS:
                parent = segment
                continue
            base = f"{self._user_url}/mailFolders"
            if parent:
                base = f"{base}/{quote(parent, safe='')}/childFolders"
            escaped = segment.replace("'", "''")
            query = {"$filter": f"displayName eq '{escaped}'", "$select": "id"}
            response = self._call("GET", f"{base}?{_query(query)}")
            found = _json(response, self.name).get("value") or []
            if not found:
                raise PermanentError(
                    f"mailbox {self.name!r}: folder {name!r} does not exist in "
                    f"{self._user} (no folder {segment!r}); check the folder name"
                )
            parent = str(found[0]["id"])

        self._folder_ids[name] = parent
        return parent

    def _add_category(self, url: str, category: str) -> requests.Response | None:
        response = self._call_if_present("GET", f"{url}?$select=categories")
        if response is None:
            return None
        categories = list(_json(response, self.name).get("categories") or [])
        if category in categories:
            return response
        return self._call_if_present(
            "PATCH", url, json_body={"categories": [*categories, category]}
        )

    # -- HTTP ---------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        prefer: str | None = None,
        resync_ok: bool = False,
    ) -> requests.Response:
        """Send one Graph request; a 404 is a :class:`PermanentError`."""
        response = self._send(
            method, url, json_body=json_body, prefer=prefer, resync_ok=resync_ok
        )
        if response.status_code == 404:
            raise self._refusal(response, method, resync_ok=resync_ok)
        return response

    def _call_if_present(
        self, method: str, url: str, *, json_body: dict[str, Any] | None = None
    ) -> requests.Response | None:
        """Send one request about a message; ``None`` when it no longer exists."""
        response = self._send(method, url, json_body=json_body)
        return None if response.status_code == 404 else response

    def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        prefer: str | None = None,
        resync_ok: bool = False,
    ) -> requests.Response:
        """Send one request within the retry budget; answer 2xx or 404.

        A 401 renews the token once; 429, 5xx and network errors are retried
        with ``Retry-After`` or backoff; every other answer raises.
        """
        url = url.split("#", 1)[0]
        path = urlsplit(url).path
        preferences = 'IdType="ImmutableId"'
        if prefer:
            preferences = f"{prefer}, {preferences}"
        renewed = False
        retries = 0

        while True:
            headers = {
                "Authorization": f"Bearer {self._tokens.token()}",
                "Prefer": preferences,
                "Accept": "application/json",
            }
            retry_after: float | None = None
            try:
                response = self._session.request(
                    method, url, json=json_body, headers=headers, timeout=_TIMEOUT
                )
            except requests.RequestException as exc:
                failure = exc.__class__.__name__
                logger.debug(
                    "mailbox %r: %s %s -> %s", self.name, method, path, failure
                )
            else:
                status = response.status_code
                logger.debug("mailbox %r: %s %s -> %d", self.name, method, path, status)
                if status < 400 or status == 404:
                    return response
                if status == 401 and not renewed:
                    renewed = True
                    self._tokens.renew()
                    continue
                if status not in _RETRIED_STATUSES:
                    raise self._refusal(response, method, resync_ok=resync_ok)

                failure = f"HTTP {status}"
                retry_after = _retry_after(response)
                if retry_after is not None and retry_after > self._max_wait:
                    raise TransientError(
                        f"mailbox {self.name!r}: Graph throttles {self._user} and "
                        f"asks to wait {retry_after:g} s",
                        retry_after=retry_after,
                    )

            wait = retry_after if retry_after is not None else self._backoff(retries)
            if retries >= self._max_retries:
                raise TransientError(
                    f"mailbox {self.name!r}: Graph still answers {failure} to "
                    f"{method} {path} after {retries} retries",
                    retry_after=wait,
                )
            retries += 1
            self._sleep(wait)

    def _backoff(self, retries: int) -> float:
        """Exponential backoff with jitter, capped at ``max_wait_seconds``."""
        ceiling = min(self._max_wait, _FIRST_BACKOFF_SECONDS * 2.0**retries)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _refusal(
        self, response: requests.Response, method: str, *, resync_ok: bool
    ) -> Exception:
        """The error for a final Graph answer that is not a success."""
        status = response.status_code
        path = urlsplit(response.url).path
        code, message = _graph_error(response)
        lowered = code.lower()

        if resync_ok and (status == 410 or lowered in _RESYNC_CODES):
            return _SyncStateLost()
        if status == 401:
            return AuthError(
                f"mailbox {self.name!r}: Graph refused a fresh access token for "
                f"{self._user} ({code or 'HTTP 401'}); check the app registration"
            )
        if status == 403 or lowered in _ACCESS_DENIED_CODES:
            needs = "Mail.ReadWrite" if method != "GET" else "Mail.Read"
            return AuthError(
                f"mailbox {self.name!r}: Graph refused access to {self._user} "
                f"({code or 'HTTP 403'}): the app's access policy may not include "
                f"this mailbox, or the app lacks the {needs} permission with "
                "admin consent"
            )
        return PermanentError(
            f"mailbox {self.name!r}: Graph refused {method} {path} with HTTP "
            f"{status} ({code or 'no code'}): {message[:300]}"
        )


def _check_settings(
    name: str,
    *,
    tenant_id: str,
    client_id: str,
    user: str,
    auth: str,
    client_secret: str | None,
    certificate: tuple[str, str] | None,
    authority: str,
    page_size: int,
) -> None:
    """Refuse values that can never work, naming the mailbox and the key."""
    where = f"mailbox {name!r}"
    for key, value in (("tenant_id", tenant_id), ("client_id", client_id)):
        if not value.strip():
            raise SettingsError(f"{where}: {key} is empty")
    if not user.strip():
        raise SettingsError(f"{where}: user is empty; expected a mailbox address")
    if auth not in AUTH_MODES:
        raise SettingsError(
            f"{where}: auth {auth!r}: expected client_credentials or device_code"
        )
    if auth == "client_credentials" and (client_secret is None) == (
        certificate is None
    ):
        raise SettingsError(
            f"{where}: auth client_credentials needs either a client secret "
            "(client_secret_env) or a certificate, not both and not neither"
        )
    if not authority.startswith("https://"):
        raise SettingsError(
            f"{where}: authority {authority!r}: expected an https URL such as "
            "https://login.microsoftonline.com"
        )
    if not 1 <= page_size <= 1000:
        raise SettingsError(f"{where}: page_size {page_size}: expected 1 to 1000")


def _graph_error(response: requests.Response) -> tuple[str, str]:
    """The ``error.code`` and ``error.message`` of a Graph error body."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return str(error), ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def _mid_round(link: str | None) -> bool:
    """Whether a stored link continues a delta round (a nextLink)."""
    return link is not None and "deltatoken=" not in link.lower()


def _retry_after(response: requests.Response) -> float | None:
    return retry_after_seconds(response.headers.get("Retry-After"))


def _json(response: requests.Response, mailbox: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError(
            f"mailbox {mailbox!r}: Graph sent a body that is not JSON "
            f"({urlsplit(response.url).path})"
        ) from exc
    if not isinstance(body, dict):
        raise TransientError(f"mailbox {mailbox!r}: Graph sent unexpected JSON")
    return body


def _query(params: dict[str, str]) -> str:
    """An OData query string with ``$`` names and readable values kept as is."""
    return urlencode(params, quote_via=quote, safe="$,:'")


def _as_utc(moment: datetime) -> datetime:
    """A timezone-aware UTC time; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _odata_time(moment: datetime) -> str:
    return _as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return _as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None
