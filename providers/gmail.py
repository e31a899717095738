"""Gmail mailboxes: ``history.list`` after one ``messages.list``, MIME in batches.

Sync follows Google's recipe (reference B4). The cursor is the mailbox
``historyId``. A first connection takes the profile's ``historyId`` and, only
when ``since`` is set, lists the label's mail after ``since``. Later syncs read
``history.list`` for ``messageAdded`` records from the cursor. Bodies are
fetched with ``messages.get(format=raw)``, up to ``batch_size`` per batch
request.

An expired history id (HTTP 404) cannot be mapped back to a date, so the
resync lists the label's mail after ``since`` or, without ``since``, after
``now - resync_window`` (one day by default) and leaves duplicates to the
caller. Mail older than that window that arrived while the cursor was dead is
not recovered.

googleapiclient ignores ``Retry-After`` and retries nothing unless asked, so
every request goes through one retry loop here that honours it.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google_auth_httplib2  # type: ignore[import-untyped]
import httplib2
import oauthlib.oauth2  # type: ignore[import-untyped]
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from google_auth_oauthlib.flow import InstalledAppFlow
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, build_http

from providers.base import FetchedMail, Page, PostAction, Provider
from providers.errors import AuthError, PermanentError, SettingsError, TransientError
from providers.retry import retry_after_seconds
from state.files import ensure_private, read_private, write_atomic

__all__ = [
    "GMAIL_MODIFY",
    "GMAIL_READONLY",
    "GmailProvider",
    "connect_installed_app",
    "scopes_for",
]

logger = logging.getLogger(__name__)

GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
GMAIL_MODIFY = "https://www.googleapis.com/auth/gmail.modify"

SYSTEM_LABELS = frozenset(
    {
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
    }
)
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_QUOTA_REASONS = frozenset({"dailyLimitExceeded", "quotaExceeded"})
_SCOPE_REASONS = frozenset(
    {"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}
)
_PAGE_SIZE = 500


def scopes_for(action: PostAction) -> list[str]:
    """The one scope a mailbox needs: read-only unless a post-action writes."""
    return [GMAIL_READONLY if action.kind == "none" else GMAIL_MODIFY]


class _NotFoundError(PermanentError):
    """HTTP 404: an expired history id, or a mail deleted meanwhile."""


@dataclass(frozen=True)
class _Backoff:
    """Exponential backoff with jitter, a retry count and a total-wait cap."""

    max_retries: int
    max_wait: float
    base: float = 1.0

    def delay(
        self, attempt: int, waited: float, retry_after: float | None, rng: random.Random
    ) -> float | None:
        """Seconds to wait before retry ``attempt``; ``None`` when out of budget."""
        if attempt >= self.max_retries:
            return None

        ceiling = min(self.max_wait, self.base * 2**attempt)
        delay = rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if waited + delay > self.max_wait:
            return None
        return delay


class GmailProvider(Provider):
    """One Gmail mailbox (a label of one user), read through the Gmail API."""

    def __init__(
        self,
        name: str,
        *,
        user: str = "me",
        label: str = "INBOX",
        auth: str = "installed_app",
        client_secrets_file: Path | None = None,
        service_account_file: Path | None = None,
        subject: str | None = None,
        token_path: Path | None = None,
        api_base: str = "https://gmail.googleapis.com/",
        token_uri: str = "https://oauth2.googleapis.com/token",
        since: datetime | None = None,
        batch_size: int = 50,
        max_retries: int = 6,
        max_wait_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        http: httplib2.Http | None = None,
        modify: bool = False,
        resync_window: timedelta = timedelta(days=1),
    ) -> None:
        if auth not in ("installed_app", "service_account"):
            raise SettingsError(
                f"mailbox '{name}': auth {auth!r}: expected installed_app "
                "or service_account"
            )
        if auth == "installed_app" and token_path is None:
            raise SettingsError(f"mailbox '{name}': installed_app needs a token_path")
        if auth == "service_account" and service_account_file is None:
            raise SettingsError(
                f"mailbox '{name}': service_account needs service_account_file"
            )
        if not 1 <= batch_size <= 100:
            raise SettingsError(
                f"mailbox '{name}': batch_size {batch_size}: expected 1 to 100"
            )

        self.name = name
        self.user = user
        self.label = label
        self.auth = auth
        self.client_secrets_file = client_secrets_file
        self.service_account_file = service_account_file
        self.subject = subject
        self.token_path = token_path
        self.api_base = api_base if api_base.endswith("/") else api_base + "/"
        self.token_uri = token_uri
        self.since = _aware(since) if since else None
        self.batch_size = batch_size
        self.modify = modify
        self.resync_window = resync_window

        self._backoff = _Backoff(max_retries, max_wait_seconds)
        self._sleep = sleep
        self._rng = random.Random()
        self._transport = http
        self._gmail: Any = None
        self._credentials: Any = None
        self._saved_tokens: tuple[str | None, str | None] = (None, None)
        self._labels: dict[str, str] | None = None

    # -- sync --------------------------------------------------------------

    def sync(self, cursor: str | None) -> Iterator[Page]:
        """Yield new mail since ``cursor`` (a history id); see the module doc."""
        if cursor is None and self.since is None:
            yield Page(mails=[], cursor=self._head())
            return

        if cursor is None:
            assert self.since is not None  # Defensive: narrowed just above
            yield from self._full_sync(self.since, old_cursor=None)
            return

        try:
            ids, new_cursor = self._history_since(cursor)
        except _NotFoundError:
            since = self.since or datetime.now(UTC) - self.resync_window
            logger.info(
                "mailbox %r: history id %s has expired; resyncing mail after %s",
                self.name,
                cursor,
                since.isoformat(timespec="seconds"),
            )
            yield from self._full_sync(since, old_cursor=cursor)
            return

        yield from self._pages(ids, old_cursor=cursor, new_cursor=new_cursor)

    def _head(self) -> str:
        profile = self._call(
            self._api().users().getProfile, "users.getProfile", userId=self.user
        )
        return str(profile["historyId"])

    def _full_sync(self, since: datetime, old_cursor: str | None) -> Iterator[Page]:
        # The head is read before listing, so mail that arrives while we list
        # is found again by the next history.list rather than lost.
        head = self._head()
        label_id = self._label_id()
        query = f"after:{int(since.timestamp())}"
        ids: list[str] = []
        page_token: str | None = None

        while True:
            response = self._call(
                self._api().users().messages().list,
                f"messages.list q={query}",
                userId=self.user,
                labelIds=[label_id],
                q=query,
                maxResults=_PAGE_SIZE,
                pageToken=page_token,
            )
            ids += [item["id"] for item in response.get("messages", [])]
            page_token = response.get("nextPageToken")
            if not page_token:
                break

        # messages.list answers newest first; process in arrival order.
        ids.reverse()
        yield from self._pages(_unique(ids), old_cursor=old_cursor, new_cursor=head)

    def _history_since(self, cursor: str) -> tuple[list[str], str]:
        label_id = self._label_id()
        ids: list[str] = []
        page_token: str | None = None

        while True:
            response = self._call(
                self._api().users().history().list,
                f"history.list startHistoryId={cursor}",
                userId=self.user,
                startHistoryId=cursor,
                historyTypes=["messageAdded"],
                labelId=label_id,
                maxResults=_PAGE_SIZE,
                pageToken=page_token,
            )
            for record in response.get("history", []):
                for added in record.get("messagesAdded", []):
                    message = added["message"]
                    labels = message.get("labelIds")
                    if labels is None or label_id in labels:
                        ids.append(message["id"])
            page_token = response.get("nextPageToken")
            if not page_token:
                return _unique(ids), str(response["historyId"])

    def _pages(
        self, ids: list[str], *, old_cursor: str | None, new_cursor: str
    ) -> Iterator[Page]:
        """One page per fetch batch; only the last one moves the cursor."""
        if not ids:
            yield Page(mails=[], cursor=new_cursor)
            return

        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            messages = self._get_many(chunk, format="raw")
            mails = [_fetched(messages[i]) for i in chunk if i in messages]
            last = start + self.batch_size >= len(ids)
            yield Page(mails=mails, cursor=new_cursor if last else old_cursor)

    # -- post-actions and proof of connection ------------------------------

    def post_action(self, provider_id: str, action: PostAction) -> None:
        """Mark read, add a label, or move (add a label, drop the watched one)."""
        if action.kind == "none":
            return

        if action.kind == "mark_read":
            body: dict[str, list[str]] = {"removeLabelIds": ["UNREAD"]}
        elif action.kind == "add_label":
            body = {"addLabelIds": [self._resolve_label(action.argument, create=True)]}
        elif action.kind == "move_to":
            body = {
                "addLabelIds": [self._resolve_label(action.argument, create=True)],
                "removeLabelIds": [self._label_id()],
            }
        else:  # Defensive: PostAction.parse admits no other kind
            raise PermanentError(
                f"mailbox '{self.name}': post_action {action.kind!r} is unknown"
            )

        self._call(
            self._api().users().messages().modify,
            f"messages.modify {provider_id}",
            userId=self.user,
            id=provider_id,
            body=body,
        )

    def newest_subjects(self, count: int = 3) -> list[str]:
        """The subjects of the newest ``count`` mails under the label."""
        label_id = self._label_id()
        response = self._call(
            self._api().users().messages().list,
            f"messages.list maxResults={count}",
            userId=self.user,
            labelIds=[label_id],
            maxResults=count,
        )
        ids = [item["id"] for item in response.get("messages", [])]
        messages = self._get_many(ids, format="metadata", metadataHeaders=["Subject"])
        subjects = []
        for message_id in ids:
            headers = messages.get(message_id, {}).get("payload", {}).get("headers", [])
            subjects += [h["value"] for h in headers if h["name"].lower() == "subject"]
        return subjects

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._gmail is not None:
            self._gmail.close()
            self._gmail = None

    # -- labels ------------------------------------------------------------

    def _label_id(self) -> str:
        return self._resolve_label(self.label, create=False)

    def _resolve_label(self, name: str, *, create: bool) -> str:
        """A label id from a system id, a user label's id or its name."""
        if name in SYSTEM_LABELS:
            return name

        if self._labels is None:
            response = self._call(
                self._api().users().labels().list, "labels.list", userId=self.user
            )
            self._labels = {}
            for label in response.get("labels", []):
                self._labels[label["id"].casefold()] = label["id"]
                self._labels[label["name"].casefold()] = label["id"]

        found = self._labels.get(name.casefold())
        if found is not None:
            return found
        if not create:
            raise SettingsError(
                f"mailbox '{self.name}': label {name!r} does not exist in "
                f"the mailbox of {self.user!r}"
            )

        created = self._call(
            self._api().users().labels().create,
            f"labels.create {name!r}",
            userId=self.user,
            body={"name": name},
        )
        self._labels[name.casefold()] = created["id"]
        return str(created["id"])

    # -- batched gets ------------------------------------------------------

    def _get_many(self, ids: Sequence[str], **params: Any) -> dict[str, Any]:
        """``messages.get`` for each id in one batch request; 404s are skipped.

        Items that are throttled inside the batch are sent again, alone, after
        a backoff; the others are kept.
        """
        found: dict[str, Any] = {}
        pending = list(ids)
        attempt, waited = 0, 0.0

        while pending:
            outcomes = self._batch(pending, params)
            retry: list[str] = []
            retry_after: float | None = None

            for message_id in pending:
                error = outcomes.get(message_id)
                if not isinstance(error, HttpError):
                    found[message_id] = error
                elif error.status_code == 404:
                    logger.debug(
                        "mailbox %r: mail %s was deleted meanwhile",
                        self.name,
                        message_id,
                    )
                elif _retryable(error):
                    retry.append(message_id)
                    retry_after = _max(retry_after, _retry_after(error.resp))
                else:
                    raise self._http_error(error, f"messages.get {message_id}")

            if not retry:
                break
            delay = self._backoff.delay(attempt, waited, retry_after, self._rng)
            if delay is None:
                raise TransientError(
                    f"mailbox '{self.name}': Gmail kept throttling {len(retry)} "
                    f"of {len(pending)} mail fetches; try again later",
                    retry_after=retry_after,
                )
            logger.debug(
                "mailbox %r: %d batch items throttled; waiting %.1f s",
                self.name,
                len(retry),
                delay,
            )
            self._sleep(delay)
            attempt, waited, pending = attempt + 1, waited + delay, retry

        return found

    def _batch(self, ids: list[str], params: dict[str, Any]) -> dict[str, Any]:
        """One batch request; maps each id to its message or its ``HttpError``."""
        outcomes: dict[str, Any] = {}

        def collect(request_id: str, response: Any, error: HttpError | None) -> None:
            outcomes[request_id] = error if error is not None else response

        def build_batch() -> BatchHttpRequest:
            outcomes.clear()
            # new_batch_http_request() would post to the discovery document's
            # rootUrl and ignore api_base, so the batch URI is built here.
            batch = BatchHttpRequest(
                callback=collect,
                batch_uri=urllib.parse.urljoin(self.api_base, "batch/gmail/v1"),
            )
            messages = self._api().users().messages()
            for message_id in ids:
                request = messages.get(userId=self.user, id=message_id, **params)
                batch.add(request, request_id=message_id)
            return batch

        what = f"batch of {len(ids)} messages.get format={params.get('format')}"
        self._call(build_batch, what)
        return outcomes

    # -- requests, retries and errors --------------------------------------

    def _call(self, method: Callable[..., Any], what: str, **params: Any) -> Any:
        """Build a request with ``method(**params)`` and execute it, retrying
        within the budget; ``what`` names it in logs and errors."""
        attempt, waited = 0, 0.0

        while True:
            retry_after: float | None = None
            try:
                response = method(**params).execute()
            except HttpError as exc:
                logger.debug(
                    "mailbox %r: %s -> HTTP %s", self.name, what, exc.status_code
                )
                if not _retryable(exc):
                    raise self._http_error(exc, what) from exc
                retry_after = _retry_after(exc.resp)
                cause: Exception = exc
            except RefreshError as exc:
                raise self._refresh_error(exc) from exc
            except (OSError, httplib2.HttpLib2Error, TransportError) as exc:
                logger.debug(
                    "mailbox %r: %s -> %s", self.name, what, type(exc).__name__
                )
                cause = exc
            else:
                logger.debug("mailbox %r: %s -> ok", self.name, what)
                return response
            finally:
                self._save_tokens()

            delay = self._backoff.delay(attempt, waited, retry_after, self._rng)
            if delay is None:
                raise TransientError(
                    f"mailbox '{self.name}': {what} still failing after "
                    f"{attempt + 1} tries ({_describe(cause)}); try again later",
                    retry_after=retry_after,
                ) from cause
            self._sleep(delay)
            attempt, waited = attempt + 1, waited + delay

    def _http_error(self, exc: HttpError, what: str) -> Exception:
        status, reason = exc.status_code, _reason(exc)
        where = f"mailbox '{self.name}': {what}"

        if status == 401:
            return AuthError(
                f"{where}: Google refused the access token (HTTP 401); "
                f"run 'mail2wo connect {self.name}'"
            )
        if status == 403 and reason in _SCOPE_REASONS:
            return AuthError(
                f"{where}: the grant lacks the scope for this request; a post_action "
                f"needs {GMAIL_MODIFY}: run 'mail2wo connect {self.name}' again"
            )
        if status == 403 and reason in _QUOTA_REASONS:
            return TransientError(f"{where}: Gmail daily quota used up ({reason})")
        if status == 403:
            return AuthError(f"{where}: Google denied access ({reason}: {exc.reason})")
        if status == 404:
            return _NotFoundError(f"{where}: not found (HTTP 404)")
        return PermanentError(f"{where}: HTTP {status} {reason}: {exc.reason}")

    def _refresh_error(self, exc: RefreshError) -> Exception:
        data = exc.args[1] if len(exc.args) > 1 else None
        code = data.get("error") if isinstance(data, dict) else None
        code = code or str(exc.args[0] if exc.args else "").partition(":")[0]
        where = f"mailbox '{self.name}'"

        if getattr(exc, "retryable", False):
            return TransientError(f"{where}: Google's token endpoint is busy ({code})")
        if code == "invalid_grant" and self.auth == "installed_app":
            return AuthError(
                f"{where}: Google refused the stored grant (invalid_grant: token "
                f"revoked or expired); run 'mail2wo connect {self.name}'"
            )
        if code in ("invalid_grant", "unauthorized_client"):
            return AuthError(
                f"{where}: Google refused the service account ({code}); check the key "
                f"file and that domain-wide delegation grants {self._scopes()[0]} "
                f"for {self.subject or self.user!r}"
            )
        return AuthError(f"{where}: Google refused to refresh the token ({code})")

    # -- credentials -------------------------------------------------------

    def _scopes(self) -> list[str]:
        return [GMAIL_MODIFY if self.modify else GMAIL_READONLY]

    def _api(self) -> Any:
        """The Gmail API resource, built on first use from the bundled discovery."""
        if self._gmail is None:
            self._credentials = self._load_credentials()
            authorized = google_auth_httplib2.AuthorizedHttp(
                self._credentials, http=self._transport or build_http()
            )
            self._gmail = build(
                "gmail",
                "v1",
                http=authorized,
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": self.api_base},
            )
        return self._gmail

    def _load_credentials(self) -> Any:
        if self.auth == "service_account":
            return self._service_account()

        assert self.token_path is not None  # Defensive: checked in __init__
        try:
            data = read_private(self.token_path)
        except PermissionError as exc:
            raise SettingsError(f"mailbox '{self.name}': token file {exc}") from exc
        if data is None:
            raise AuthError(
                f"mailbox '{self.name}': not connected yet ({self.token_path} does not "
                f"exist); run 'mail2wo connect {self.name}'"
            )

        try:
            info = json.loads(data)
            credentials = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info
            )
        except ValueError as exc:
            raise AuthError(
                f"mailbox '{self.name}': token file {self.token_path} is not an "
                f"authorized-user file ({type(exc).__name__}); "
                f"run 'mail2wo connect {self.name}'"
            ) from exc

        # from_authorized_user_info always resets token_uri to Google's.
        credentials = credentials.with_token_uri(self.token_uri)
        self._saved_tokens = (credentials.token, credentials.refresh_token)
        return credentials

    def _service_account(self) -> Any:
        assert self.service_account_file is not None  # Defensive: checked in init
        subject = self.subject or (self.user if self.user != "me" else None)
        if subject is None:
            raise SettingsError(
                f"mailbox '{self.name}': a service account reads Gmail only as a "
                "delegated user; set subject (or user) to that user's address"
            )
        try:
            ensure_private(self.service_account_file)
            credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(self.service_account_file), subject=subject, scopes=self._scopes()
            )
        except PermissionError as exc:
            raise SettingsError(
                f"mailbox '{self.name}': service account file {exc}"
            ) from exc
        except (OSError, ValueError) as exc:
            raise SettingsError(
                f"mailbox '{self.name}': service account file "
                f"{self.service_account_file} cannot be used ({type(exc).__name__})"
            ) from exc
        return credentials.with_token_uri(self.token_uri)

    def _save_tokens(self) -> None:
        """Write refreshed or rotated user tokens back at once, owner-only."""
        credentials = self._credentials
        if self.auth != "installed_app" or credentials is None:
            return

        tokens = (credentials.token, credentials.refresh_token)
        if tokens == self._saved_tokens:
            return
        assert self.token_path is not None  # Defensive: checked in __init__
        write_atomic(self.token_path, credentials.to_json().encode(), mode=0o600)
        self._saved_tokens = tokens
        logger.debug("mailbox %r: refreshed token saved", self.name)


def connect_installed_app(
    client_secrets_file: Path,
    token_path: Path,
    scopes: Sequence[str],
    *,
    headless: bool,
    port: int = 0,
    input_func: Callable[[str], str] = input,
    print_func: Callable[[str], None] = print,
) -> None:
    """Ask a person for consent and save the grant to ``token_path`` (0600).

    With a browser on this machine, a one-shot local server catches Google's
    redirect. Headless, the consent URL is printed; the person opens it
    anywhere and pastes back the address the browser ends on (it points at
    localhost and does not load) or just its ``code`` value.
    """
    try:
        flow = InstalledAppFlow.from_client_secrets_file(
            str(client_secrets_file), scopes=list(scopes)
        )
    except (OSError, ValueError) as exc:
        raise SettingsError(
            f"{client_secrets_file}: not a Google OAuth client file for a Desktop "
            f"app ({exc})"
        ) from exc

    try:
        if headless:
            flow.redirect_uri = (
                f"http://localhost:{port}/" if port else "http://localhost/"
            )
            url, state = flow.authorization_url(prompt="consent")
            print_func("Open this address in a browser, sign in and allow access:")
            print_func(url)
            print_func(
                "The browser then ends on a page that does not load. Copy that "
                "page's address (or only its code= value) and paste it here."
            )
            code = _code_from_answer(input_func("Address or code: "), state)
            flow.fetch_token(code=code)
        else:
            flow.run_local_server(host="localhost", port=port, prompt="consent")
    except oauthlib.oauth2.OAuth2Error as exc:
        raise AuthError(
            f"Google refused the authorization ({exc.error}); connect again"
        ) from exc

    credentials = flow.credentials
    if not credentials.refresh_token:
        raise AuthError(
            "Google returned no refresh token; remove mail2wo's access at "
            "https://myaccount.google.com/permissions and connect again"
        )
    write_atomic(token_path, credentials.to_json().encode(), mode=0o600)


def _code_from_answer(answer: str, state: str) -> str:
    """The authorization code from a pasted redirect address or a bare code."""
    answer = answer.strip()
    if not answer.startswith(("http://", "https://")):
        return answer.removeprefix("code=")

    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer).query)
    if "error" in query:
        raise AuthError(f"Google refused the authorization ({query['error'][0]})")
    if query.get("state", [""])[0] != state:
        raise AuthError(
            "the pasted address belongs to another attempt (state differs); "
            "paste the address from this attempt"
        )
    if "code" not in query:
        raise AuthError("the pasted address holds no code= value")
    return query["code"][0]


# -- small pure helpers -----------------------------------------------------


def _aware(moment: datetime) -> datetime:
    """A naive ``since`` is taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _fetched(message: dict[str, Any]) -> FetchedMail:
    raw = message["raw"]
    received = message.get("internalDate")
    return FetchedMail(
        provider_id=message["id"],
        raw=base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)),
        thread_id=message.get("threadId"),
        received_at=(
            datetime.fromtimestamp(int(received) / 1000, UTC) if received else None
        ),
    )


def _reason(exc: HttpError) -> str:
    """``errors[0].reason``, else ``status``, of a Google error body."""
    try:
        error = json.loads(exc.content)["error"]
    except (ValueError, KeyError, TypeError):
        return ""
    errors = error.get("errors") or [{}]
    return str(errors[0].get("reason") or error.get("status") or "")


def _retryable(exc: HttpError) -> bool:
    status = exc.status_code
    if status in (408, 429) or status >= 500:
        return True
    return status == 403 and _reason(exc) in _RATE_REASONS


def _retry_after(resp: Any) -> float | None:
    return retry_after_seconds(resp.get("retry-after") if resp is not None else None)


def _max(first: float | None, second: float | None) -> float | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)


def _describe(exc: Exception) -> str:
    if isinstance(exc, HttpError):
        return f"HTTP {exc.status_code} {_reason(exc)}".strip()
    return type(exc).__name__
