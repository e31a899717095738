"""The ``webhook`` target: one signed JSON POST per work-order event.

Events and their bodies::

    workorder.created   {"event", "id", "occurred_at",
                         "workorder": {<OutSmart fields>, "Attachments": [...]}}
    workorder.appended  {"event", "id", "occurred_at", "workorder_no",
                         "note": {"text", "sender", "subject", "attachments": [...]}}

Each attachment is ``{"FileName", "ContentType", "Data"}`` with ``Data`` in
base64. Headers: ``X-Mail2wo-Event``, ``Idempotency-Key`` (equal to ``id``),
``X-Mail2wo-Timestamp`` (Unix seconds of the try) and ``X-Mail2wo-Signature:
sha256=<hex>``, the HMAC-SHA256 of the exact body bytes under the shared
secret.

The receiver owns deduplication: ``id`` is the SHA-256 of
``"<event>:<WorkorderNo>"`` or ``"<event>:<note_key>"``, so every retry of an
event, in this process or after a restart, carries the same key. That is why
:meth:`WebhookTarget.has_workorder` always answers False: a webhook cannot be
asked what it already has.

A webhook has no relation directory of its own. The directory handed in is
the one the rules search, and relations or addresses the rules add are kept
in memory only; the receiver learns them from the ``Customer…`` and
``AdrCode`` fields of the work order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from connector.directory import Address, Directory, Relation
from connector.targets.base import FileAttachment, Note, Target
from providers.errors import PermanentError, SettingsError, TransientError
from providers.retry import retry_after_seconds, retrying

__all__ = ["WebhookTarget", "sign"]

logger = logging.getLogger(__name__)

#: Longest pause between two tries inside one call; a receiver that asks for
#: more (``Retry-After``) is left alone until the pipeline's next pass.
_BACKOFF_CAP = 30.0
_BACKOFF_BASE = 0.5


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Mail2wo-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _event_id(event: str, key: str) -> str:
    return hashlib.sha256(f"{event}:{key}".encode()).hexdigest()


def _files(attachments: Sequence[FileAttachment]) -> list[dict[str, str]]:
    return [
        {
            "FileName": file.filename,
            "ContentType": file.content_type,
            "Data": base64.b64encode(file.data).decode("ascii"),
        }
        for file in attachments
    ]


class WebhookTarget(Target):
    """Work orders delivered to an HTTP endpoint as signed JSON events.

    ``max_retries`` is the number of extra tries after a transient failure
    (HTTP 5xx, 408, 429, timeouts, dropped connections) within one call; the
    delays come from ``sleep`` so tests need not wait.
    """

    kind = "webhook"

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        directory: Directory,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        secret_env: str = "MAIL2WO_WEBHOOK_SECRET",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(
                f"webhook target: url {self._shown(url)!r} is not an http(s) address"
            )
        if not secret:
            raise SettingsError(f"webhook target: no signing secret; set {secret_env}")

        self.url = url
        self.timeout = timeout
        self.max_retries = max_retries
        self._secret = secret
        self._directory = directory
        self._sleep = sleep
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()

    @staticmethod
    def _shown(url: str) -> str:
        """The url without its query, which may hold the receiver's own key."""
        parts = urlsplit(url)
        if not parts.netloc:
            return parts.path
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    def __repr__(self) -> str:
        return f"WebhookTarget({self._shown(self.url)!r})"

    # directory --------------------------------------------------------------
    def load_directory(self) -> Directory:
        return self._directory

    def add_relation(self, relation: Relation) -> None:
        """Kept in memory; the receiver gets it in the work order's fields."""
        self._directory = self._directory.with_added(relation=relation)

    def add_address(self, address: Address) -> None:
        """Kept in memory; the receiver gets it in the work order's fields."""
        self._directory = self._directory.with_added(address=address)

    # events -----------------------------------------------------------------
    def has_workorder(self, workorder_no: str) -> bool:
        """Always False: the receiver dedupes by ``Idempotency-Key``."""
        return False

    def create_workorder(
        self, workorder: Mapping[str, Any], attachments: Sequence[FileAttachment]
    ) -> None:
        number = str(workorder.get("WorkorderNo") or "").strip()
        if not number:
            raise PermanentError("webhook: a work order without WorkorderNo")

        event = "workorder.created"
        fields = {k: v for k, v in workorder.items() if k != "Attachments"}
        payload = {
            "event": event,
            "id": _event_id(event, number),
            "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "workorder": {**fields, "Attachments": _files(attachments)},
        }
        self._deliver(payload, f"work order {number}")

    def append_note(self, workorder_no: str, note: Note, note_key: str) -> None:
        event = "workorder.appended"
        payload = {
            "event": event,
            "id": _event_id(event, note_key),
            "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "workorder_no": workorder_no,
            "note": {
                "text": note.text,
                "sender": note.sender,
                "subject": note.subject,
                "attachments": _files(note.attachments),
            },
        }
        self._deliver(payload, f"a note on work order {workorder_no}")

    # delivery ---------------------------------------------------------------
    def _deliver(self, payload: dict[str, Any], about: str) -> None:
        """POST one event; every try sends the same body, key and signature."""
        body = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"), default=str
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-Mail2wo-Event": str(payload["event"]),
            "Idempotency-Key": str(payload["id"]),
            "X-Mail2wo-Signature": sign(self._secret, body),
        }

        retrying(
            f"webhook {payload['event']}",
            lambda: self._post(body, headers, about),
            max_retries=self.max_retries,
            sleep=self._sleep,
            base=_BACKOFF_BASE,
            cap=_BACKOFF_CAP,
        )

    def _post(self, body: bytes, headers: dict[str, str], about: str) -> None:
        """One try; raises TransientError or PermanentError unless 2xx."""
        shown = self._shown(self.url)
        started = time.monotonic()
        try:
            reply = self._session.post(
                self.url,
                data=body,
                headers={**headers, "X-Mail2wo-Timestamp": str(int(time.time()))},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            # Raised from None: the library's message quotes the full URL.
            raise TransientError(
                f"webhook {shown} did not answer for {about} within {self.timeout:g} s"
            ) from None
        except requests.RequestException as exc:
            query = urlsplit(self.url).query
            reason = str(exc).replace(query, "***") if query else str(exc)
            raise TransientError(
                f"webhook {shown} could not be reached for {about}: "
                f"{type(exc).__name__}: {reason}"
            ) from None

        status = reply.status_code
        logger.debug(
            "webhook %s for %s: HTTP %d in %.0f ms",
            headers["X-Mail2wo-Event"],
            about,
            status,
            (time.monotonic() - started) * 1000,
        )
        if 200 <= status < 300:
            return

        if status >= 500 or status in (408, 429):
            raise TransientError(
                f"webhook {shown} answered {about} with HTTP {status}",
                retry_after=retry_after_seconds(reply.headers.get("Retry-After")),
            )
        excerpt = reply.text[:200]
        if 300 <= status < 400:
            target = self._shown(reply.headers.get("Location", "")) or "nowhere"
            raise PermanentError(
                f"webhook {shown} answered {about} with HTTP {status}, a redirect "
                f"to {target}; set url to the final address"
            )
        raise PermanentError(
            f"webhook {shown} refused {about} with HTTP {status}: {excerpt!r}"
        )

    # housekeeping -----------------------------------------------------------
    def check_online(self) -> str:
        """Names the receiver without calling it: a call would be an event."""
        return (
            f"webhook {self._shown(self.url)}: not called (only events are sent); "
            f"{len(self._directory.relations)} relations in the directory"
        )

    def close(self) -> None:
        if self._own_session:
            self._session.close()
