"""The ``outsmart`` target: work orders, relations and notes through OpenAPI 8.

Wire format and result codes follow ``reference/outsmart-api.md``. Every
request carries ``token`` and ``software_token`` as query parameters, so no
URL is ever written to a log line or an error message.

What the API cannot do, and what this target does instead:

- A second ``PostWorkorders`` with the same ``WorkorderNo`` is undocumented
  (it may create a second order), so every attempt to create an order first
  looks it up with ``GetWorkorder ... update_status=false``.
- Files cannot be added to an existing order. A follow-up becomes a generic
  note (``/generic_notes/`` on ``worksheets``/``OrderNr``) that lists the file
  names; the files themselves stay in mail2wo's archive.
- A generic note needs the order's ``OrderNr``, which OutSmart may leave empty
  until its app assigns one. Until then a follow-up fails as transient, with a
  ``retry_after`` long enough that the pipeline tries again on a later pass.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import requests

from connector.directory import (
    Address,
    ContactPerson,
    Directory,
    Relation,
    WorkObject,
    from_row,
)
from connector.targets.base import FileAttachment, Note, Target
from providers.errors import AuthError, PermanentError, SettingsError, TransientError
from providers.retry import retrying

__all__ = ["OutSmartTarget"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_QUERY_TOKEN = re.compile(r"((?:software_)?token=)[^&\s'\"]+")

#: Longest pause between two tries inside one call; a server that asks for
#: more is left alone until the pipeline's next pass.
_BACKOFF_CAP = 30.0
_BACKOFF_BASE = 0.5

#: How long to wait for OutSmart's app to give a new order its ``OrderNr``.
_ORDER_NR_WAIT = 900.0

_NOTE_ENTITY = "worksheets"
_NOTE_COLUMN = "OrderNr"
_FILES_NOT_SENT = (
    "Attachments not transferred (OutSmart cannot add files to an existing "
    "work order): {names}"
)


class _ScrubTokens(logging.Filter):
    """Masks ``token=`` query values in records of a third-party logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg = _QUERY_TOKEN.sub(r"\1***", message)
            record.args = ()
        return True


# urllib3 logs every request line, query included, at debug level; the
# tokens live in that query, so its records are masked before any handler.
logging.getLogger("urllib3.connectionpool").addFilter(_ScrubTokens())


@dataclass(frozen=True)
class _Answer:
    """The envelope of one OutSmart reply."""

    code: int
    messages: list[str]
    response: Any


def _wire_value(value: Any) -> Any:
    """OutSmart's scalars are strings on the wire; lists, rows and null stay.

    ``None`` stays ``null`` rather than ``""``: an empty string in a float
    column such as ``CustomerLatitude`` may be read as 0.
    """
    if isinstance(value, list | tuple):
        return [_wire_value(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _wire_value(item) for key, item in value.items()}
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _note_html(note: Note, marker: str) -> str:
    """The note body as the simple HTML that ``nte_content`` holds."""
    paragraphs = [p for p in re.split(r"\n\s*\n", note.text.strip()) if p.strip()]
    parts = [html.escape(p.strip()).replace("\n", "<br>") for p in paragraphs]
    if note.attachments:
        names = ", ".join(a.filename for a in note.attachments)
        parts.append(html.escape(_FILES_NOT_SENT.format(names=names)))
    parts.append(html.escape(marker))
    return "".join(f"<p>{part}</p>" for part in parts)


class OutSmartTarget(Target):
    """Work orders in an OutSmart account, through its REST API v8.

    ``max_retries`` is the number of extra tries after a transient failure
    (1007, HTTP 5xx, timeouts, dropped connections) within one call; the
    delays come from ``sleep`` so tests need not wait.
    """

    kind = "outsmart"

    def __init__(
        self,
        base_url: str,
        token: str,
        software_token: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        token_env: str = "MAIL2WO_OUTSMART_TOKEN",
        software_token_env: str = "MAIL2WO_OUTSMART_SOFTWARE_TOKEN",
    ) -> None:
        if not token:
            raise SettingsError(f"outsmart target: no token; set {token_env}")
        if not software_token:
            raise SettingsError(
                f"outsmart target: no software token; set {software_token_env}"
            )

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._token = token
        self._software_token = software_token
        self._token_env = token_env
        self._software_token_env = software_token_env
        self._sleep = sleep
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self._directory: Directory | None = None

    def __repr__(self) -> str:
        return f"OutSmartTarget({self.base_url!r})"

    # transport --------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """``text`` without either token, for messages built from library errors."""
        for secret in (self._token, self._software_token):
            text = text.replace(secret, "***")
        return _QUERY_TOKEN.sub(r"\1***", text)

    def _send(
        self,
        method: str,
        endpoint: str,
        about: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: list[dict[str, Any]] | None = None,
    ) -> _Answer:
        """One request, one try; raises for transport and credential failures.

        Envelope codes other than the auth and server-error ones are returned
        for the caller to judge: only it knows whether 1500 means "absent".
        """
        query = [
            ("token", self._token),
            ("software_token", self._software_token),
            *params,
        ]
        started = time.monotonic()
        try:
            reply = self._session.request(
                method,
                f"{self.base_url}/{endpoint}/",
                params=query,
                json=body,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            # Raised from None: the library's message quotes the full URL,
            # tokens included, and a traceback would print it.
            raise TransientError(
                f"OutSmart at {self.base_url} did not answer {endpoint} for "
                f"{about} within {self.timeout:g} s"
            ) from None
        except requests.RequestException as exc:
            raise TransientError(
                f"OutSmart at {self.base_url} could not be reached for {endpoint} "
                f"({about}): {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None

        answer = self._read(reply, endpoint, about)
        logger.debug(
            "OutSmart %s %s (%s): code %s in %.0f ms",
            method,
            endpoint,
            about,
            answer.code,
            (time.monotonic() - started) * 1000,
        )
        self._raise_for_account(answer, endpoint)
        return answer

    def _read(self, reply: requests.Response, endpoint: str, about: str) -> _Answer:
        """The envelope of ``reply``, or the transport error it stands for."""
        status = reply.status_code
        if status >= 500 or status in (408, 429):
            retry_after = reply.headers.get("Retry-After", "")
            raise TransientError(
                f"OutSmart at {self.base_url} answered {endpoint} for {about} "
                f"with HTTP {status}",
                retry_after=float(retry_after) if retry_after.isdigit() else None,
            )
        if not 200 <= status < 300:
            raise PermanentError(
                f"OutSmart at {self.base_url} answered {endpoint} for {about} "
                f"with HTTP {status} {reply.reason}; expected 200 with a JSON "
                "envelope (is base_url right?)"
            )

        try:
            envelope = reply.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
            raise PermanentError(
                f"OutSmart at {self.base_url} answered {endpoint} for {about} with "
                f"something other than its JSON envelope: "
                f"{self._scrub(reply.text[:120])!r}"
            )

        messages = envelope.get("messages") or []
        return _Answer(
            code=envelope["code"],
            messages=[str(m) for m in messages] if isinstance(messages, list) else [],
            response=envelope.get("response"),
        )

    def _raise_for_account(self, answer: _Answer, endpoint: str) -> None:
        """Raise for the codes that concern the account, not the request."""
        detail = f": {'; '.join(answer.messages)}" if answer.messages else ""
        code = answer.code
        if code in (1002, 1004):
            what = "got no token" if code == 1002 else "refused the token"
            raise AuthError(
                f"OutSmart {what} (code {code}){detail}: check {self._token_env}"
            )
        if code in (1003, 1005):
            what = (
                "got no software token"
                if code == 1003
                else "refused the software token"
            )
            raise AuthError(
                f"OutSmart {what} (code {code}){detail}: check "
                f"{self._software_token_env} (it must belong to the same account "
                "as the token)"
            )
        if code == 1007:
            raise TransientError(
                f"OutSmart at {self.base_url} had a server error on {endpoint} "
                f"(code 1007){detail}"
            )
        if code == 1006:
            raise PermanentError(
                f"OutSmart refused a plain-HTTP request (code 1006): base_url "
                f"{self.base_url} must start with https://"
            )

    @staticmethod
    def _expect_ok(answer: _Answer, about: str) -> None:
        if answer.code != 200:
            detail = "; ".join(answer.messages) or "no message"
            raise PermanentError(
                f"OutSmart refused {about} (code {answer.code}): {detail}"
            )

    def _retrying(self, what: str, action: Callable[[], _T]) -> _T:
        """Run ``action``, trying again after transient failures with backoff."""
        return retrying(
            f"OutSmart {what}",
            action,
            max_retries=self.max_retries,
            sleep=self._sleep,
            base=_BACKOFF_BASE,
            cap=_BACKOFF_CAP,
        )

    def _list(
        self, endpoint: str, about: str, params: Sequence[tuple[str, str]] = ()
    ) -> list[dict[str, Any]]:
        """The records a list GET returns, retried when transient."""

        def attempt() -> list[dict[str, Any]]:
            answer = self._send("GET", endpoint, about, params=params)
            self._expect_ok(answer, about)
            if answer.response is None:
                return []
            if not isinstance(answer.response, list):
                raise PermanentError(
                    f"OutSmart answered {endpoint} with a "
                    f"{type(answer.response).__name__} where a list was expected"
                )
            return [r for r in answer.response if isinstance(r, dict)]

        return self._retrying(f"GET {endpoint}", attempt)

    def _upsert(self, endpoint: str, record: dict[str, Any], about: str) -> None:
        """POST one record to a master-data endpoint (an upsert by its code)."""
        body = [{key: _wire_value(value) for key, value in record.items()}]

        def attempt() -> None:
            self._expect_ok(self._send("POST", endpoint, about, body=body), about)

        self._retrying(f"POST {endpoint}", attempt)

    # directory --------------------------------------------------------------
    def load_directory(self) -> Directory:
        """Relations, addresses, contact persons and objects, read once per pass."""
        if self._directory is None:
            self._directory = Directory(
                self._records("relations", Relation),
                self._records("addresses", Address),
                self._records("contactpersons", ContactPerson),
                self._records("objects", WorkObject),
            )
        return self._directory

    def _records(self, endpoint: str, kind: type[Any]) -> list[Any]:
        records = []
        skipped = 0
        for row in self._list(endpoint, f"the {endpoint} list"):
            try:
                records.append(from_row(kind, row))
            except TypeError:
                skipped += 1
        if skipped:
            logger.warning(
                "OutSmart %s: left out %d record(s) without their key fields",
                endpoint,
                skipped,
            )
        return records

    def refresh(self) -> None:
        """Forget the directory so that the next pass reads it again."""
        self._directory = None

    def add_relation(self, relation: Relation) -> None:
        about = f"relation {relation.debtor_number} ({relation.name})"
        self._upsert("relations", dataclasses.asdict(relation), about)
        if self._directory is not None:
            self._directory = self._directory.with_added(relation=relation)

    def add_address(self, address: Address) -> None:
        about = f"address {address.adr_code} of relation {address.adr_debtor_nr}"
        self._upsert("addresses", dataclasses.asdict(address), about)
        if self._directory is not None:
            self._directory = self._directory.with_added(address=address)

    # work orders ------------------------------------------------------------
    def _find_workorder(self, workorder_no: str) -> dict[str, Any] | None:
        """The order as GetWorkorder shows it, or None; one try, never marks it.

        ``update_status=false`` matters: by default a read moves the order to
        *Afgehandeld* (handled), which would hide it from the planners.
        """
        about = f"work order {workorder_no}"
        answer = self._send(
            "GET",
            "GetWorkorder",
            about,
            params=[("workorder_no", workorder_no), ("update_status", "false")],
        )
        if answer.code == 1500:
            return None

        self._expect_ok(answer, about)
        if isinstance(answer.response, list):  # Defensive: a list of one
            return answer.response[0] if answer.response else None
        if not isinstance(answer.response, dict):
            raise PermanentError(
                f"OutSmart answered GetWorkorder for {about} without the order"
            )
        return answer.response

    def has_workorder(self, workorder_no: str) -> bool:
        return (
            self._retrying(
                f"look up work order {workorder_no}",
                lambda: self._find_workorder(workorder_no),
            )
            is not None
        )

    def create_workorder(
        self, workorder: Mapping[str, Any], attachments: Sequence[FileAttachment]
    ) -> None:
        """Post the order unless it exists; every retry looks it up again first."""
        number = str(workorder.get("WorkorderNo") or "").strip()
        if not number:
            raise PermanentError("OutSmart: a work order without WorkorderNo")

        about = f"work order {number}"
        order = {
            key: _wire_value(value)
            for key, value in workorder.items()
            if key != "Attachments"
        }
        order["Attachments"] = [
            {
                "Data": base64.b64encode(file.data).decode("ascii"),
                "FileName": file.filename,
            }
            for file in attachments
        ]

        def attempt() -> None:
            if self._find_workorder(number) is not None:
                logger.debug("OutSmart already has %s; not posting it", about)
                return

            answer = self._send("POST", "PostWorkorders", about, body=[order])
            self._expect_ok(answer, about)
            logger.debug("OutSmart stored %s: %s", about, answer.response)

        self._retrying(f"create {about}", attempt)

    def append_note(self, workorder_no: str, note: Note, note_key: str) -> None:
        """Add a generic note once; the marker ``[mail2wo:<note_key>]`` finds it."""
        about = f"a note on work order {workorder_no}"
        marker = f"[mail2wo:{note_key}]"

        def attempt() -> None:
            order = self._find_workorder(workorder_no)
            if order is None:
                raise PermanentError(
                    f"OutSmart has no work order {workorder_no} to add a note to "
                    "(code 1500)"
                )
            order_nr = str(order.get("OrderNr") or "").strip()
            if not order_nr:
                raise TransientError(
                    f"OutSmart has not given work order {workorder_no} an OrderNr "
                    "yet; a note can only be added once it has one",
                    retry_after=_ORDER_NR_WAIT,
                )
            if self._has_note(order_nr, note_key, marker, about):
                logger.debug("OutSmart already has %s (%s)", about, marker)
                return

            stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            author = note.sender or "mail2wo"
            record = {
                "nte_entity": _NOTE_ENTITY,
                "nte_column": _NOTE_COLUMN,
                "nte_primary": order_nr,
                "nte_content": _note_html(note, marker),
                "nte_created_by": author,
                "nte_modified_by": author,
                "nte_timestamp_created": stamp,
                "nte_timestamp_modified": stamp,
                "nte_reference": note_key,
                "nte_timestamp_read": None,
            }
            answer = self._send("POST", "generic_notes", about, body=[record])
            self._expect_ok(answer, about)

        self._retrying(f"add {about}", attempt)

    def _has_note(self, order_nr: str, note_key: str, marker: str, about: str) -> bool:
        """Whether the order already holds the note with this key.

        Filtering generic notes is undocumented, so the filter is sent and
        the answer is filtered again here.
        """
        answer = self._send(
            "GET",
            "generic_notes",
            about,
            params=[
                ("key[]", "nte_entity"),
                ("value[]", _NOTE_ENTITY),
                ("operator[]", "eq"),
                ("key[]", "nte_primary"),
                ("value[]", order_nr),
                ("operator[]", "eq"),
            ],
        )
        self._expect_ok(answer, about)
        notes = answer.response if isinstance(answer.response, list) else []
        escaped = html.escape(marker)
        for found in notes:
            if not isinstance(found, dict):
                continue
            if (
                str(found.get("nte_entity")) != _NOTE_ENTITY
                or str(found.get("nte_primary")) != order_nr
            ):
                continue
            content = str(found.get("nte_content") or "")
            if (
                str(found.get("nte_reference")) == note_key
                or marker in content
                or escaped in content
            ):
                return True
        return False

    # housekeeping -----------------------------------------------------------
    def check_online(self) -> str:
        """Read the work types and relations; no order is touched."""
        worktypes = self._list("worktypes", "the work types")
        relations = self._list("relations", "the relations")
        return (
            f"OutSmart at {self.base_url}: {len(relations)} relations, "
            f"{len(worktypes)} work types"
        )

    def close(self) -> None:
        if self._own_session:
            self._session.close()
