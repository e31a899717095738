"""Per-mail state cost after 1k, 10k and 100k processed mails.

Filling a store to 100k through the real code path would take hours, so the
history is written directly as segment files: a handful of small mails is
processed for real, and their records in every table (mail records, thread
index, participants, log, the local target's work orders) are cloned under
new Message-IDs, provider ids and work-order numbers. The raw-mail archive
is not filled: nothing on the per-mail path lists or reads it.

Then, on the filled stores, a window of mails (as many as one segment holds,
so every phase of a segment's growth is in it) is measured twice, in rounds
that visit every size in turn:

- *process*: ``processor.process`` of small ordinary mails, everything
  included (parse, decide, state records, local work order);
- *store writes*: only the ``TinyDBStateStore`` calls that one created work
  order makes (archive, three mail records, number, thread links, counters,
  log entry).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.corpus import KNOWN, START, plain_mail
from benchmarks.report import Report, Target
from benchmarks.workspace import bench_settings
from connector.app import open_workspace
from connector.decide import Delivery
from state.tinydb_store import TinyDBStateStore

__all__ = ["run"]

SIZES = (1_000, 10_000, 100_000)
WINDOW = 500
QUICK_WINDOW = 100
ROUND = 50
SEGMENT_SIZE = 500  # TinyDBStateStore's and LocalTarget's default
TEMPLATE_MAILS = 18
TABLES = ("mails", "threads", "workorders", "log", "local/workorders")
KEYS = {
    "mails": "key",
    "threads": "key",
    "workorders": "no",
    "log": "id",
    "local/workorders": "WorkorderNo",
}

Document = dict[str, Any]


def _tiny(number: int) -> bytes:
    return plain_mail(number, sender=number, sentences=3)


def _delivery(tag: str, number: int) -> Delivery:
    return Delivery(
        mode="conversations",
        mailbox="demo",
        provider_id=f"{tag}-{number:07d}-p",
        thread_id=f"{tag}-{number:07d}-t",
    )


def templates(folder: Path) -> tuple[list[list[tuple[str, str]]], list[Document]]:
    """Process a few mails for real; return each mail's documents and the meta.

    A mail's documents are ``(table, JSON text)`` pairs, found by the mail's
    Message-ID, provider id, thread id or work-order number. In the text those
    identifiers (and a log entry's id) are replaced by placeholders.
    """
    settings = bench_settings(folder)
    with open_workspace(settings) as workspace:
        for number in range(TEMPLATE_MAILS):
            now = START + timedelta(minutes=7 * number)
            workspace.processor.process(_tiny(number), _delivery("tpl", number), now)
    state = settings.state_dir
    tables = {table: list(_documents(state / table)) for table in TABLES}
    meta = list(_documents(state / "meta"))

    groups: list[list[tuple[str, str]]] = []
    for record in tables["mails"]:
        placeholders = {
            record["message_id"]: "@@MID@@",
            record["provider_id"]: "@@PID@@",
            record["thread_id"]: "@@TID@@",
            f'"{record["workorder_no"]}"': '"@@WO@@"',
        }
        group = []
        for table, documents in tables.items():
            for document in documents:
                if table == "log":
                    document = {**document, "id": "@@LOG@@"}
                text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
                if not any(token in text for token in placeholders):
                    continue
                for token, placeholder in placeholders.items():
                    text = text.replace(token, placeholder)
                group.append((table, text))
        groups.append(group)
    return groups, meta


def _documents(folder: Path) -> Iterator[Document]:
    if folder.name == "workorders" and folder.parent.name == "local":
        for path in sorted(folder.glob("*.json")):  # one file per work order
            yield json.loads(path.read_text(encoding="utf-8"))
        return
    for path in sorted(folder.glob("seg-*.json")):
        yield from json.loads(path.read_text(encoding="utf-8"))["_default"].values()


def prefill(
    state: Path,
    groups: list[list[tuple[str, str]]],
    meta: list[Document],
    count: int,
) -> None:
    """Write ``count`` processed mails' records as segment files below ``state``.

    Documents are built as text from the templates, so 100k mails take
    seconds, not the minutes a parse and dump of every document would.
    """
    tables: dict[str, list[str]] = {table: [] for table in TABLES}
    for number in range(count):
        for table, text in groups[number % len(groups)]:
            text = (
                text.replace("@@MID@@", f"fill-{number:07d}@mail2wo.example")
                .replace("@@PID@@", f"fill-{number:07d}-p")
                .replace("@@TID@@", f"fill-{number:07d}-t")
                .replace('"@@WO@@"', f'"2025-{number:07d}"')
                .replace('"@@LOG@@"', str(len(tables["log"]) + 1))
            )
            tables[table].append(text)
    tables["meta"] = [json.dumps(document, ensure_ascii=False) for document in meta]
    orders = state / "local" / "workorders"
    orders.mkdir(parents=True, exist_ok=True)
    for text in tables.pop("local/workorders"):
        number = json.loads(text)["WorkorderNo"]
        (orders / f"{number}.json").write_text(text, encoding="utf-8")
    for table, documents in tables.items():
        _write_segments(state / table, documents)


def _write_segments(folder: Path, documents: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(documents), SEGMENT_SIZE):
        chunk = documents[start : start + SEGMENT_SIZE]
        body = ",".join(f'"{n}":{text}' for n, text in enumerate(chunk, start=1))
        path = folder / f"seg-{start // SEGMENT_SIZE + 1:06d}.json"
        path.write_text('{"_default":{' + body + "}}", encoding="utf-8")


def measure_process(
    folders: dict[int, Path], window: int
) -> tuple[dict[int, float], dict[int, list[float]]]:
    """Seconds to open each workspace, and seconds per mail of every round.

    All workspaces are open at once and the window is processed in rounds:
    each round gives every store the same slice of the window, so a noisy
    neighbour slows all sizes alike and a round's sizes are in the same phase
    of their segment.
    """
    opened: dict[int, float] = {}
    rounds: dict[int, list[float]] = {size: [] for size in folders}
    with contextlib.ExitStack() as stack:
        workspaces = {}
        for size, folder in folders.items():
            settings = bench_settings(folder)
            started = time.perf_counter()
            workspaces[size] = stack.enter_context(open_workspace(settings))
            opened[size] = time.perf_counter() - started
        for first in range(0, window, ROUND):
            for size, workspace in workspaces.items():
                elapsed = 0.0
                for offset in range(first, min(first + ROUND, window)):
                    number = 1_000 + offset
                    now = START + timedelta(days=1, minutes=7 * offset)
                    raw, delivery = _tiny(number), _delivery("win", number)
                    started = time.perf_counter()
                    result = workspace.processor.process(raw, delivery, now)
                    elapsed += time.perf_counter() - started
                    assert str(result.outcome) == "created", result.reason  # Defensive
                rounds[size].append(elapsed / ROUND)
    return opened, rounds


def measure_store(
    folders: dict[int, Path], window: int
) -> tuple[dict[int, float], dict[int, list[float]]]:
    """Like :func:`measure_process`, for the store writes of one created order."""
    opened: dict[int, float] = {}
    rounds: dict[int, list[float]] = {size: [] for size in folders}
    stores: dict[int, TinyDBStateStore] = {}
    try:
        for size, folder in folders.items():
            started = time.perf_counter()
            stores[size] = TinyDBStateStore(folder / "state")
            opened[size] = time.perf_counter() - started
        for first in range(0, window, ROUND):
            for size, store in stores.items():
                started = time.perf_counter()
                for offset in range(first, min(first + ROUND, window)):
                    _created_order(store, 100_000 + offset)
                rounds[size].append((time.perf_counter() - started) / ROUND)
    finally:
        for store in stores.values():
            store.close()
    return opened, rounds


def _created_order(store: TinyDBStateStore, number: int) -> None:
    """The store calls that processing one mail into a new work order makes."""
    now = START + timedelta(days=2, minutes=7 * number)
    raw = _tiny(number)
    message_id = f"store-{number}@mail2wo.example"
    sender = KNOWN[number % len(KNOWN)][1]
    record: Document = {
        "key": f"mid:{message_id}",
        "status": "seen",
        "mode": "conversations",
        "mailbox": "demo",
        "provider_id": f"store-{number}-p",
        "thread_id": f"store-{number}-t",
        "message_id": message_id,
        "archive": store.archive(raw, now),
        "attempts": 0,
        "first_seen": now.isoformat(),
    }
    store.put_mail(record)
    workorder_no = store.reserve_workorder_no(now.year, "{year}-")
    record.update(status="decided", workorder_no=workorder_no, decision={})
    store.put_mail(record)
    store.link_thread(
        workorder_no,
        message_ids=[message_id],
        thread_ids=[("demo", f"store-{number}-t")],
        participants=[sender],
    )
    store.count_new_workorder(sender, now)
    store.count_usage(now.date())
    record.pop("decision")
    record.update(status="done", outcome="created", finished=now.isoformat())
    store.put_mail(record)
    store.log(
        {
            "time": now.isoformat(),
            "mailbox": "demo",
            "message_id": message_id,
            "from": sender,
            "subject": "Storing cv-ketel",
            "outcome": "created",
            "workorder_no": workorder_no,
            "excerpt": "Goedemorgen, de cv-ketel doet het niet meer.",
        }
    )


def run(quick: bool) -> Report:
    sizes = SIZES
    window = QUICK_WINDOW if quick else WINDOW
    report = Report(
        f"3. State scaling: window of {window} mails after N processed mails",
        targets=[
            Target(
                "state_cost_ratio_100k_vs_1k",
                2.0,
                "per-mail process cost at 100k / at 1k",
            )
        ],
    )
    with tempfile.TemporaryDirectory(prefix="mail2wo-bench-") as scratch:
        groups, meta = templates(Path(scratch) / "templates")
        folders = {size: Path(scratch) / f"n{size}" for size in sizes}
        filled: dict[int, float] = {}
        for size, folder in folders.items():
            started = time.perf_counter()
            prefill(folder / "state", groups, meta, size)
            filled[size] = time.perf_counter() - started
        opened, process = measure_process(folders, window)
        store_opened, store = measure_store(folders, window)

    for size in sizes:
        process_ms = statistics.mean(process[size]) * 1000
        store_ms = statistics.mean(store[size]) * 1000
        report.figures[f"state_process_ms_per_mail_{size}"] = round(process_ms, 2)
        report.figures[f"state_store_ms_per_mail_{size}"] = round(store_ms, 2)
        report.figures[f"state_open_workspace_s_{size}"] = round(opened[size], 3)
        report.row(
            f"N = {size:>7,}",
            f"process {process_ms:6.2f} ms/mail, store writes {store_ms:6.2f} "
            f"ms/mail, open workspace {opened[size]:5.2f} s, open store "
            f"{store_opened[size]:5.2f} s (prefill {filled[size]:4.1f} s)",
        )

    first, last = sizes[0], sizes[-1]
    label = f"{last // 1000}k_vs_{first // 1000}k"
    process_ratio = _round_ratio(process[last], process[first])
    store_ratio = _round_ratio(store[last], store[first])
    report.figures[f"state_cost_ratio_{label}"] = round(process_ratio, 2)
    report.figures[f"state_store_ratio_{label}"] = round(store_ratio, 2)
    report.row(
        f"ratio {last:,} / {first:,}",
        f"process {process_ratio:.2f}x (target <= 2), store writes "
        f"{store_ratio:.2f}x (median of per-round ratios)",
    )
    return report


def _round_ratio(slow: list[float], fast: list[float]) -> float:
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))
