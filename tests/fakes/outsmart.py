"""A loopback fake of OutSmart's REST API v8, built from reference/outsmart-api.md.

Start it in a test with ``with FakeOutSmart() as fake:`` and point the target
at ``fake.base_url`` with ``fake.token`` and ``fake.software_token``. State
and test hooks are plain attributes and methods of the object; nothing
fake-only is reachable under the API paths.

Where the reference leaves behaviour open, the fake picks the variant that
keeps a client honest, and says so:

- A second ``PostWorkorders`` with a known ``WorkorderNo`` inserts a second
  order (``duplicates="insert"``); ``"reject"`` and ``"update"`` are the
  other two possibilities of reference §7.
- A batch with one invalid order is rejected whole.
- ``GET /generic_notes/`` ignores filters and returns every note.
- Codes marked *fake-only* in :data:`FAKE_ONLY_CODES` are undocumented.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

__all__ = [
    "FAKE_ONLY_CODES",
    "FakeOutSmart",
    "RecordedRequest",
    "fake_outsmart",
]

#: Codes the reference does not document; the fake uses them where it must
#: answer something.
FAKE_ONLY_CODES = {
    1599: "duplicate WorkorderNo (duplicates='reject')",
    3001: "address lacks a required field",
    3101: "contact person lacks a required field",
    3201: "GetWorkorders without status",
    3301: "unknown number table",
    3401: "generic note lacks a required field",
}

_REQUIRED_WORKORDER = (
    "WorkorderNo",
    "CustomerName",
    "CustomerDebtorNr",
    "CustomerStreet",
    "CustomerZIP",
    "CustomerCity",
    "CustomerContactPerson",
    "CustomerNameInvoice",
    "CustomerDebtorNrInvoice",
    "CustomerStreetInvoice",
    "CustomerZIPInvoice",
    "CustomerCityInvoice",
    "CustomerContactPersonInvoice",
    "TypeOfWork",
    "PaymentMethod",
)

#: Master-data endpoints: store attribute, key field, required fields and
#: the code for a missing one.
_MASTER_DATA: dict[str, tuple[str, str, tuple[str, ...], int]] = {
    "relations": (
        "relations",
        "debtor_number",
        ("debtor_number", "name", "street", "postal_code", "city"),
        1301,
    ),
    "addresses": (
        "addresses",
        "adr_code",
        ("adr_debtor_nr", "adr_code", "adr_line_1", "adr_zip", "adr_city"),
        3001,
    ),
    "contactpersons": (
        "contactpersons",
        "cpn_code",
        ("cpn_debtor_nr", "cpn_code", "cpn_name"),
        3101,
    ),
    "objects": (
        "objects",
        "obj_code",
        ("obj_code", "obj_debiteur_nummer", "obj_description"),
        1901,
    ),
    "worktypes": (
        "worktypes",
        "wrt_name",
        ("wrt_name", "wrt_description", "wrt_default_minutes", "wrt_active"),
        2601,
    ),
}

#: The singular lookup endpoints take the simple key/value filter.
_SINGULAR = {
    "address": "addresses",
    "contactperson": "contactpersons",
    "object": "objects",
}

_FAULTS = ("1007", "503", "drop", "lost_reply", "slow")

_FILES_URL = "https://files.fake-outsmart.test"

_Envelope = tuple[int, list[str], Any]
_Route = Callable[[list[tuple[str, str]], Any], _Envelope]


@dataclass
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    endpoint: str
    query: list[tuple[str, str]]
    body: Any = None

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        return next((v for k, v in self.query if k == name), None)


@dataclass
class _Fault:
    kind: str
    remaining: int
    endpoint: str | None


def _strings(record: dict[str, Any]) -> dict[str, Any]:
    """A record as OutSmart returns it: scalars as strings, null kept."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, list):
            out[key] = [_strings(v) if isinstance(v, dict) else str(v) for v in value]
        elif value is None or isinstance(value, dict):
            out[key] = value
        else:
            out[key] = str(value)
    return out


def _missing(record: Any, required: tuple[str, ...]) -> list[str]:
    if not isinstance(record, dict):
        return list(required)
    return [
        f"Required field missing: {name}"
        for name in required
        if record.get(name) in (None, "")
    ]


def _compare(actual: Any, operator: str, wanted: str) -> bool:
    """One advanced-filter comparison; ``li`` is a case-insensitive substring."""
    if actual is None:
        return False
    text = str(actual)
    if operator == "li":
        return wanted.strip("%").lower() in text.lower()
    if operator in ("eq", "ne"):
        equal = text.lower() == wanted.lower()
        return equal if operator == "eq" else not equal

    left: Any = text
    right: Any = wanted
    with contextlib.suppress(ValueError):
        left, right = float(text), float(wanted)
    return bool(
        {
            "gt": left > right,
            "ge": left >= right,
            "lt": left < right,
            "le": left <= right,
        }.get(operator, False)
    )


def _filters(query: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """``key``/``value``/``operator`` triples, with and without brackets."""
    keys = [v for k, v in query if k in ("key", "key[]")]
    values = [v for k, v in query if k in ("value", "value[]")]
    operators = [v for k, v in query if k in ("operator", "operator[]")]
    return [
        (
            key,
            values[i] if i < len(values) else "",
            operators[i] if i < len(operators) else "eq",
        )
        for i, key in enumerate(keys)
    ]


class FakeOutSmart:
    """OutSmart's API on 127.0.0.1 with in-memory state.

    ``fail_next(2, "503")`` makes the next two requests fail; ``requests``
    logs every request; ``marked_handled`` lists the work orders a read
    moved to *Afgehandeld*.
    """

    def __init__(
        self,
        *,
        token: str = "cust-tok-5b1e9d3f7a",
        software_token: str = "soft-tok-0c8a2e64d1",
        prefix: str = "/openapi/8",
        duplicates: str = "insert",
    ) -> None:
        self.token = token
        self.software_token = software_token
        self.prefix = prefix.rstrip("/")
        self.duplicates = duplicates
        self.slow_seconds = 1.0

        self.relations: dict[str, dict[str, Any]] = {}
        self.addresses: dict[str, dict[str, Any]] = {}
        self.contactpersons: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.worktypes: dict[str, dict[str, Any]] = {}
        self.workorders: dict[int, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []
        self.numbers: dict[str, int] = {"worksheets_jobnr": 1000}
        self.marked_handled: list[str] = []
        self.requests: list[RecordedRequest] = []

        self._faults: list[_Fault] = []
        self._next_row = 2084650
        self._next_order_nr = 731
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle --------------------------------------------------------------
    def start(self) -> FakeOutSmart:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-outsmart",
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

    def __enter__(self) -> FakeOutSmart:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What a client configures as ``base_url``."""
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"

    # test hooks -------------------------------------------------------------
    def seed(
        self,
        *,
        relations: Iterable[dict[str, Any]] = (),
        addresses: Iterable[dict[str, Any]] = (),
        contactpersons: Iterable[dict[str, Any]] = (),
        objects: Iterable[dict[str, Any]] = (),
        worktypes: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Store master data as if it had been posted."""
        with self._lock:
            for endpoint, records in (
                ("relations", relations),
                ("addresses", addresses),
                ("contactpersons", contactpersons),
                ("objects", objects),
                ("worktypes", worktypes),
            ):
                store, key, _, _ = _MASTER_DATA[endpoint]
                for record in records:
                    getattr(self, store)[str(record[key])] = dict(record)

    def fail_next(
        self, count: int = 1, fault: str = "1007", *, endpoint: str | None = None
    ) -> None:
        """The next ``count`` requests (to ``endpoint``, if given) fail.

        ``fault`` is ``"1007"`` (envelope server error), ``"503"`` (HTTP 503
        with an HTML page), ``"drop"`` (connection closed, request not
        handled), ``"lost_reply"`` (request handled, then the connection
        closed without an answer) or ``"slow"`` (answer after
        ``slow_seconds``).
        """
        if fault not in _FAULTS:
            raise ValueError(f"fault {fault!r}: expected one of {', '.join(_FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(fault, count, endpoint))

    def requests_to(
        self, endpoint: str, method: str | None = None
    ) -> list[RecordedRequest]:
        """The logged requests to one endpoint, oldest first."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.endpoint == endpoint and (method is None or r.method == method)
            ]

    def orders_numbered(self, workorder_no: str) -> list[dict[str, Any]]:
        """Every stored order with this ``WorkorderNo`` (more than one is a bug)."""
        with self._lock:
            return [
                o for o in self.workorders.values() if o["WorkorderNo"] == workorder_no
            ]

    def notes_on(self, order_nr: str) -> list[dict[str, Any]]:
        """The generic notes of the work order with this ``OrderNr``."""
        with self._lock:
            return [
                n
                for n in self.notes
                if n["nte_entity"] == "worksheets" and n["nte_primary"] == order_nr
            ]

    def complete(self, workorder_no: str) -> None:
        """Move an order to ``Compleet``, as an employee's device would."""
        with self._lock:
            for order in self.orders_numbered(workorder_no):
                order["status"] = "Compleet"
                order["WorkFinished"] = "1"

    # request handling -------------------------------------------------------
    def _take_fault(self, endpoint: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.endpoint in (None, endpoint):
                    fault.remaining -= 1
                    return fault.kind
            return None

    def handle(
        self, method: str, path: str, query: list[tuple[str, str]], raw: bytes
    ) -> tuple[str, _Envelope | None]:
        """Answer one request: ``("ok", envelope)`` or a fault kind."""
        inside = path[len(self.prefix) :] if path.startswith(self.prefix) else None
        endpoint = (inside or "").strip("/")
        body: Any = raw.decode("utf-8", "replace") if raw else None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, endpoint, query, body))

        fault = self._take_fault(endpoint)
        if fault == "1007":
            return "ok", (1007, ["Unexpected error, please contact OutSmart"], None)
        if fault in ("503", "drop"):
            return fault, None
        if fault == "slow":
            time.sleep(self.slow_seconds)

        envelope = self._answer(method, endpoint, inside, query, raw)
        if fault == "lost_reply":
            return "drop", None
        return "ok", envelope

    def _answer(
        self,
        method: str,
        endpoint: str,
        inside: str | None,
        query: list[tuple[str, str]],
        raw: bytes,
    ) -> _Envelope:
        if inside is None or not endpoint:
            return (1000, ["No endpoint in the URL"], None)
        params = dict(query)
        if not params.get("token"):
            return (1002, [], None)
        if not params.get("software_token"):
            return (1003, [], None)
        if params["token"] != self.token:
            return (1004, [], None)
        if params["software_token"] != self.software_token:
            return (1005, [], None)

        route = self._routes().get((method, endpoint))
        if route is None:
            return (1001, [f"Unknown endpoint: {endpoint}"], None)

        if method == "POST":
            if not raw:
                return (1008, ["Unable to fetch body"], None)
            try:
                parsed = json.loads(raw)
            except ValueError:
                return (1009, ["Unable to parse body"], None)
            if not isinstance(parsed, list):
                return (1009, ["Unable to parse body"], None)
            with self._lock:
                self.requests[-1].body = parsed
                return route(query, parsed)

        with self._lock:
            return route(query, None)

    def _routes(self) -> dict[tuple[str, str], _Route]:
        routes: dict[tuple[str, str], _Route] = {
            ("POST", "PostWorkorders"): self._post_workorders,
            ("GET", "GetWorkorder"): self._get_workorder,
            ("GET", "GetWorkorders"): self._get_workorders,
            ("GET", "generic_notes"): self._get_notes,
            ("POST", "generic_notes"): self._post_notes,
            ("GET", "numbers"): self._get_number,
        }
        for endpoint in _MASTER_DATA:
            routes[("GET", endpoint)] = self._lister(endpoint)
            routes[("POST", endpoint)] = self._upserter(endpoint)
        for singular, plural in _SINGULAR.items():
            routes[("GET", singular)] = self._lister(plural)
        return routes

    def _lister(self, endpoint: str) -> _Route:
        store = _MASTER_DATA[endpoint][0]

        def list_records(query: list[tuple[str, str]], _: Any) -> _Envelope:
            found = [
                _strings(record)
                for record in getattr(self, store).values()
                if all(_compare(record.get(k), op, v) for k, v, op in _filters(query))
            ]
            return 200, [], found

        return list_records

    def _upserter(self, endpoint: str) -> _Route:
        store, key, required, code = _MASTER_DATA[endpoint]

        def upsert(_: list[tuple[str, str]], records: list[Any]) -> _Envelope:
            messages = [m for record in records for m in _missing(record, required)]
            if messages:
                return code, messages, None
            for record in records:
                getattr(self, store)[str(record[key])] = dict(record)
            return 200, [], len(records)

        return upsert

    def _post_workorders(
        self, _: list[tuple[str, str]], orders: list[Any]
    ) -> _Envelope:
        messages = [m for order in orders for m in _missing(order, _REQUIRED_WORKORDER)]
        if messages:
            return 1501, messages, None
        if self.duplicates == "reject":
            known = [
                o["WorkorderNo"]
                for o in orders
                if self.orders_numbered(str(o["WorkorderNo"]))
            ]
            if known:
                return 1599, [f"Workorder already exists: {n}" for n in known], None

        stored = []
        for order in orders:
            existing = self.orders_numbered(str(order["WorkorderNo"]))
            if existing and self.duplicates == "update":
                existing[0].update(order)
                stored.append(
                    {"workorder_no": order["WorkorderNo"], "row_id": existing[0]["id"]}
                )
                continue

            row_id = self._next_row
            self._next_row += 1
            record = dict(order)
            if not record.get("OrderNr"):
                record["OrderNr"] = f"25-{self._next_order_nr:05d}"
                self._next_order_nr += 1
            record.update(
                id=row_id,
                status="Klaargezet",
                WorkFinished="0",
                Archived="0",
                CreationDate=datetime.now().strftime("%Y-%m-%d %H:%M"),
                Documents=[
                    f"{_FILES_URL}/{row_id}/{a.get('FileName') or 'file'}"
                    for a in order.get("Attachments", [])
                    if isinstance(a, dict)
                ],
                Photos=[],
            )
            self.workorders[row_id] = record
            stored.append({"workorder_no": order["WorkorderNo"], "row_id": row_id})
        return 200, [], stored

    def _shown(
        self, order: dict[str, Any], query: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """An order as a read returns it, marking it handled unless told not to."""
        if dict(query).get("update_status", "true").lower() not in ("false", "0"):
            order["status"] = "Afgehandeld"
            self.marked_handled.append(order["WorkorderNo"])
        shown = {k: v for k, v in order.items() if k != "Attachments"}
        return _strings(shown)

    def _get_workorder(self, query: list[tuple[str, str]], _: Any) -> _Envelope:
        params = dict(query)
        if params.get("row_id"):
            order = (
                self.workorders.get(int(params["row_id"]))
                if params["row_id"].isdigit()
                else None
            )
        elif params.get("workorder_no"):
            found = self.orders_numbered(params["workorder_no"])
            order = found[0] if found else None
        else:
            order = None
        if order is None:
            return 1500, [], None
        return 200, [], self._shown(order, query)

    def _get_workorders(self, query: list[tuple[str, str]], _: Any) -> _Envelope:
        params = dict(query)
        status = params.get("status")
        if not status:
            return 3201, ["Required field missing: status"], None
        chosen = [
            o
            for o in self.workorders.values()
            if status in ("Alle", o["status"])
            and params.get("workstatus") in (None, o.get("WorkStatus"))
        ]
        return 200, [], [self._shown(o, query) for o in chosen]

    def _get_notes(self, _: list[tuple[str, str]], __: Any) -> _Envelope:
        return 200, [], [_strings(n) for n in self.notes]

    def _post_notes(self, _: list[tuple[str, str]], notes: list[Any]) -> _Envelope:
        required = ("nte_entity", "nte_column", "nte_primary", "nte_content")
        messages = [m for note in notes for m in _missing(note, required)]
        if messages:
            return 3401, messages, None
        for note in notes:
            self.notes.append({**note, "nte_id": len(self.notes) + 1})
        return 200, [], len(notes)

    def _get_number(self, query: list[tuple[str, str]], _: Any) -> _Envelope:
        table = dict(query).get("table", "")
        if table not in self.numbers:
            return 3301, [f"Unknown table: {table}"], None
        self.numbers[table] += 1
        return 200, [], str(self.numbers[table])


def _handler_for(fake: FakeOutSmart) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urlsplit(self.path)
            query = parse_qsl(url.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""

            kind, envelope = fake.handle(self.command, url.path, query, raw)
            if kind == "drop":
                self.close_connection = True
                return
            if kind == "503":
                self._write(
                    503, b"<html><body>Service Unavailable</body></html>", "text/html"
                )
                return
            assert envelope is not None
            code, messages, response = envelope
            payload = {"code": code, "messages": messages, "response": response}
            self._write(200, json.dumps(payload).encode(), "application/json")

        def _write(self, status: int, body: bytes, content_type: str) -> None:
            # A client that timed out has closed its end; that is its business.
            with contextlib.suppress(OSError):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        do_GET = _answer  # noqa: N815
        do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the fake keeps its own request log."""

    return Handler


@pytest.fixture
def fake_outsmart() -> Iterator[FakeOutSmart]:
    """A running fake OutSmart API, stopped after the test."""
    with FakeOutSmart() as fake:
        yield fake
