"""What the commands print for people: tables, the explain trace, JSON Lines."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from connector.decide import Outcome
from connector.result import Result

__all__ = [
    "LOG_KEYS",
    "Reporter",
    "emit",
    "log_json",
    "print_explain",
    "print_log",
    "print_workorder",
    "print_workorders",
]

#: From this many mails on, a progress bar shows on standard error.
_PROGRESS_FROM = 10

_OUTCOME_STYLE = {
    "created": "green",
    "appended": "cyan",
    "ignored": "dim",
    "duplicate": "dim",
    "deferred": "yellow",
    "no_configuration": "yellow",
    "customer_not_found": "yellow",
    "failed": "red",
    "quarantined": "bold red",
}


def emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


class Reporter:
    """Prints results as JSON Lines or collects them for a summary table."""

    def __init__(self, as_json: bool, title: str) -> None:
        self.as_json = as_json
        self.title = title
        self.results: list[Result] = []
        self.console = Console(stderr=False, highlight=False)
        self._progress: Progress | None = None
        self._task: Any = None
        self._total = 0

    def expect(self, count: int) -> None:
        """Announce ``count`` more mails; shows a progress bar when many."""
        self._total += count
        if self.as_json or self._total < _PROGRESS_FROM:
            if self._progress is not None:
                self._progress.update(self._task, total=self._total)
            return
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=self._total)
            self._progress.update(self._task, completed=len(self.results))
        else:
            self._progress.update(self._task, total=self._total)

    def __call__(self, result: Result) -> None:
        self.results.append(result)
        if self._progress is not None:
            self._progress.advance(self._task)
        if self.as_json:
            emit(result.as_json())

    def finish(self, errors: Iterable[tuple[str, str]] = ()) -> None:
        if self._progress is not None:
            self._progress.stop()
        errors = list(errors)
        if self.as_json:
            for mailbox, error in errors:
                emit({"mailbox": mailbox, "outcome": "error", "reason": error})
            return
        if self.results:
            self.console.print(
                _summary_table(self.title, self.results, self.console.width)
            )
            counts = Counter(str(r.outcome) for r in self.results)
            line = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
            self.console.print(f"{len(self.results)} mail(s): {line}")
        else:
            self.console.print("No new mail.")
        for mailbox, error in errors:
            self.console.print(f"[red]mailbox {mailbox}:[/red] {error}")


def _summary_table(title: str, results: list[Result], width: int) -> Table:
    wide, medium = width >= 140, width >= 110
    table = Table(title=title, title_justify="left", show_lines=False)
    if wide:
        table.add_column("mail", overflow="ellipsis", no_wrap=True, max_width=30)
    if medium:
        table.add_column("from", overflow="ellipsis", no_wrap=True, max_width=22)
    table.add_column(
        "subject", overflow="ellipsis", no_wrap=True, max_width=30 if medium else 22
    )
    table.add_column("outcome", no_wrap=True)
    table.add_column("work order", no_wrap=True, min_width=9)
    table.add_column("configuration / reason", overflow="fold", min_width=16)
    for result in results:
        outcome = str(result.outcome)
        style = _OUTCOME_STYLE.get(outcome, "")
        number = (result.workorder or {}).get("WorkorderNo") or ""
        detail = result.configuration or ""
        if result.outcome is Outcome.APPENDED and result.thread_signal:
            detail = f"{detail} (by {result.thread_signal})".strip()
        if result.reason and result.outcome not in (Outcome.CREATED, Outcome.APPENDED):
            detail = f"{detail}: {result.reason}" if detail else result.reason
        where = result.file or result.delivery.provider_id
        cells = [
            *([result.sender] if medium else []),
            result.subject,
            f"[{style}]{outcome}[/{style}]" if style else outcome,
            str(number),
            detail,
        ]
        if wide:
            cells.insert(0, Path(where).name if result.file else where)
        table.add_row(*cells)
    return table


def print_explain(path: Path, result: Result) -> None:
    """The decision trace and the would-be work order, for people."""
    console = Console(highlight=False)
    data = result.as_json(explain=True)
    mail = data.get("mail") or {}
    console.print(f"[bold]{path}[/bold]")
    if mail:
        console.print(f"  from     {mail['from_name']} <{mail['from']}>".rstrip())
        console.print(f"  subject  {mail['subject']}")
        console.print(f"  date     {mail['date']}")
        names = ", ".join(a["filename"] for a in mail["attachments"]) or "none"
        console.print(f"  files    {names}")
    console.print("[bold]decisions[/bold]")
    for number, step in enumerate(result.trace, 1):
        console.print(f"  {number:>2}. {step}", markup=False)
    console.print(
        f"[bold]outcome[/bold]  {result.outcome}"
        + (f": {result.reason}" if result.reason else "")
    )
    for warning in result.warnings:
        console.print(f"[yellow]warning[/yellow]  {warning}", markup=True)
    if result.workorder:
        console.print("[bold]work order[/bold]")
        for key, value in result.workorder.items():
            shown = (
                json.dumps(value, ensure_ascii=False)
                if not isinstance(value, str)
                else value
            )
            console.print(f"  {key:<22} {shown}", markup=False)


def print_log(entries: list[dict[str, Any]], zone: ZoneInfo) -> None:
    """The processing log as a table."""
    table = Table(title="Processing log", title_justify="left")
    for column in (
        "id",
        "time",
        "mailbox",
        "from",
        "subject",
        "outcome",
        "work order",
        "configuration / reason",
    ):
        table.add_column(column, overflow="fold")
    for entry in entries:
        style = _OUTCOME_STYLE.get(entry.get("outcome", ""), "")
        detail = entry.get("configuration") or ""
        if entry.get("reason"):
            detail = f"{detail}: {entry['reason']}" if detail else entry["reason"]
        table.add_row(
            str(entry.get("id", "")),
            datetime.fromisoformat(entry["time"])
            .astimezone(zone)
            .strftime("%Y-%m-%d %H:%M"),
            entry.get("mailbox") or "",
            entry.get("from") or "",
            entry.get("subject") or "",
            f"[{style}]{entry.get('outcome')}[/{style}]"
            if style
            else str(entry.get("outcome")),
            entry.get("workorder_no") or "",
            detail,
        )
    Console(highlight=False).print(table)


LOG_KEYS = (
    "id",
    "time",
    "mode",
    "mailbox",
    "provider_id",
    "message_id",
    "from",
    "subject",
    "outcome",
    "reason",
    "configuration",
    "customer_rule",
    "thread_signal",
    "workorder_no",
    "duration_ms",
    "excerpt",
    "error",
)


def log_json(entry: dict[str, Any]) -> dict[str, Any]:
    data = {key: entry.get(key) for key in LOG_KEYS}
    if data["message_id"]:
        data["message_id"] = str(data["message_id"]).strip("<>")
    return data


def print_workorders(items: list[dict[str, Any]]) -> None:
    """Work orders of the local target as a table."""
    table = Table(title="Work orders", title_justify="left")
    for column in ("number", "debtor", "description", "type", "notes", "files"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            item.get("WorkorderNo", ""),
            item.get("CustomerDebtorNr", ""),
            item.get("ShortWorkDescription", ""),
            item.get("TypeOfWork", ""),
            str(len(item.get("notes", []))),
            str(len(item.get("Attachments", []))),
        )
    Console(highlight=False).print(table)


def print_workorder(item: dict[str, Any]) -> None:
    """One work order with its attachments and notes."""
    console = Console(highlight=False)
    for key, value in item.items():
        if key in ("notes", "Attachments"):
            continue
        console.print(f"{key:<24} {value}", markup=False)
    for attachment in item.get("Attachments", []):
        name = attachment.get("FileName", "") if isinstance(attachment, dict) else ""
        console.print(f"attachment               {name}", markup=False)
    for note in item.get("notes", []):
        console.print(
            f"--- note {note.get('added_at', '')} from {note.get('sender', '')}",
            markup=False,
        )
        console.print(note.get("text", ""), markup=False)
