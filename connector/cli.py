"""The ``mail2wo`` command.

Every command reads ``--settings`` (default ``./settings.toml``). A bad
setting or an unreadable input file prints one line naming the place and
the problem, exits with code 2 and changes nothing. Commands that report
take ``--json`` and then print JSON Lines on standard output.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from connector import app
from connector.decide import Delivery, Outcome
from connector.report import (
    Reporter,
    emit,
    log_json,
    print_explain,
    print_log,
    print_workorder,
    print_workorders,
)
from connector.result import Result
from connector.settings import Settings, load_settings
from providers.errors import Mail2woError, SettingsError

__all__ = ["main"]

logger = logging.getLogger("mail2wo")

EXIT_BAD_INPUT = 2


class Context:
    """What the group passes to its commands."""

    def __init__(self, settings_path: Path) -> None:
        self.settings_path = settings_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.settings_path)
        return self._settings


pass_context = click.make_pass_decorator(Context)


def _fail(message: str) -> NoReturn:
    click.echo(f"mail2wo: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


class _Group(click.Group):
    """Turns the project's errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            _fail(str(exc))
        except Mail2woError as exc:
            click.echo(f"mail2wo: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("settings.toml"),
    show_default=True,
    help="The settings file.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
@click.version_option(package_name="mail2wo")
@click.pass_context
def cli(ctx: click.Context, settings_path: Path, verbose: int) -> None:
    """Turn e-mail into field-service work orders."""
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(settings_path)


def main() -> None:
    """Console entry point."""
    cli(prog_name="mail2wo")


# reading input files ---------------------------------------------------------
def _expand_folders(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a folder stands for its ``.eml`` files in name order."""
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".eml")
        if not found:
            _fail(f"{path}: folder holds no .eml files")
        files.extend(found)
    return files


def _read_files(files: Iterable[Path]) -> list[tuple[Path, bytes]]:
    """Read every file first, so a bad one stops the command before any write."""
    read: list[tuple[Path, bytes]] = []
    for path in files:
        try:
            read.append((path, path.read_bytes()))
        except FileNotFoundError:
            _fail(f"{path}: file not found")
        except IsADirectoryError:
            _fail(f"{path}: is a folder; give .eml files")
        except OSError as exc:
            _fail(f"{path}: cannot read: {exc.strerror}")
    return read


# commands -------------------------------------------------------------------
@cli.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=True)
)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines output.")
@pass_context
def drop(context: Context, files: tuple[Path, ...], as_json: bool) -> None:
    """WorkOrder Drop: process .eml files (or folders of them) handed over by hand."""
    settings = context.settings
    mails = _read_files(_expand_folders(files))
    reporter = Reporter(as_json, "WorkOrder Drop")
    reporter.expect(len(mails))
    with app.open_workspace(settings) as workspace:
        for path, raw in mails:
            delivery = Delivery(mode="drop", mailbox="drop", provider_id=str(path))
            reporter(
                workspace.processor.process(
                    raw, delivery, app.now_utc(), file=str(path)
                )
            )
    reporter.finish()


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--config", "configuration", help="Try only this configuration.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_context
def explain(
    context: Context, file: Path, configuration: str | None, as_json: bool
) -> None:
    """Dry run: show every decision and the would-be work order; writes nothing."""
    settings = context.settings
    if configuration is not None:
        settings.configuration_named(configuration)
    ((path, raw),) = _read_files([file])
    result = _explain(settings, raw, str(path), configuration)
    if as_json:
        emit(result.as_json(explain=True))
        return
    print_explain(path, result)


def _explain(
    settings: Settings, raw: bytes, file: str, configuration: str | None
) -> Result:
    """Decide against the current state, read-only when the state is busy."""
    delivery = Delivery(mode="drop", mailbox="drop", provider_id=file)
    state_dir = settings.state_dir
    if not state_dir.exists():
        import tempfile

        with tempfile.TemporaryDirectory(prefix="mail2wo-explain-") as scratch:
            copy = settings.model_copy(
                update={
                    "state": settings.state.model_copy(update={"path": Path(scratch)})
                }
            )
            with app.open_workspace(copy) as workspace:
                return workspace.processor.explain(
                    raw,
                    delivery,
                    app.now_utc(),
                    only_configuration=configuration,
                    file=file,
                )
    with app.open_workspace(settings) as workspace:
        return workspace.processor.explain(
            raw, delivery, app.now_utc(), only_configuration=configuration, file=file
        )


@cli.command()
@click.option("--mailbox", "mailbox_name", help="Only this mailbox.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines output.")
@pass_context
def sync(context: Context, mailbox_name: str | None, as_json: bool) -> None:
    """One sync pass over the enabled mailboxes, then exit."""
    settings = context.settings
    if mailbox_name is not None:
        mailboxes = [settings.mailbox_named(mailbox_name)]
    else:
        mailboxes = [m for m in settings.mailbox if m.enabled]
    if not mailboxes:
        _fail(f"{settings.source}: no enabled [[mailbox]] to sync")
    reporter = Reporter(as_json, "Sync")
    errors: list[tuple[str, str]] = []
    with app.open_workspace(settings) as workspace:
        for mailbox in mailboxes:
            report = app.sync_mailbox(
                workspace, mailbox, on_result=reporter, on_total=reporter.expect
            )
            if report.error:
                errors.append((mailbox.name, report.error))
    reporter.finish(errors)
    if errors and len(errors) == len(mailboxes):
        sys.exit(1)


@cli.command()
@pass_context
def run(context: Context) -> None:
    """Run Conversations mode on the scheduler until stopped (Ctrl-C)."""
    if logger.getEffectiveLevel() > logging.INFO:  # a service reports each pass
        logger.setLevel(logging.INFO)
    from connector.scheduler import run_forever

    run_forever(context.settings)


@cli.command()
@click.argument("mailbox_name", metavar="MAILBOX")
@click.option("--headless", is_flag=True, help="Print the sign-in URL; no browser.")
@pass_context
def connect(context: Context, mailbox_name: str, headless: bool) -> None:
    """Connect a mailbox with OAuth and show its newest subjects as proof."""
    settings = context.settings
    mailbox = settings.mailbox_named(mailbox_name)
    if mailbox.kind == "folder":
        click.echo(f"mailbox {mailbox.name} is a folder; it needs no connection.")
        return
    if mailbox.kind == "gmail" and (mailbox.auth or "installed_app") == "installed_app":
        from providers.gmail import connect_installed_app, scopes_for

        if mailbox.client_secrets_file is None:
            _fail(
                f"{settings.source}: mailbox '{mailbox.name}': "
                "client_secrets_file is missing"
            )
        connect_installed_app(
            settings.resolve(mailbox.client_secrets_file),
            app.token_path(settings, mailbox),
            scopes_for(mailbox.action),
            headless=headless,
        )

    def show_code(flow: dict[str, Any]) -> None:
        click.echo(flow.get("message") or flow.get("verification_uri", ""), err=True)

    provider = app.build_provider(settings, mailbox, device_flow_callback=show_code)
    try:
        subjects = provider.newest_subjects(3)
    finally:
        provider.close()
    click.echo(f"mailbox {mailbox.name} is connected. Newest mail:")
    for subject in subjects:
        click.echo(f"  - {subject}")


@cli.command()
@click.option("--online", is_flag=True, help="Also reach the target and mailboxes.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines output.")
@pass_context
def check(context: Context, online: bool, as_json: bool) -> None:
    """Validate settings, rules and directory files; report unknown parameters."""
    from connector.checks import run_checks

    findings = run_checks(context.settings, online=online)
    problems = [f for f in findings if f.level == "error"]
    for finding in findings:
        if as_json:
            emit(finding.as_json())
        else:
            colour = {"ok": "green", "warning": "yellow", "error": "red"}[finding.level]
            Console(highlight=False).print(
                f"[{colour}]{finding.level:<7}[/{colour}] "
                f"{finding.place}: {finding.message}"
            )
    if problems:
        sys.exit(EXIT_BAD_INPUT)


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"date {value!r}: expected YYYY-MM-DD")


@cli.command()
@click.option("--since", help="From this date (YYYY-MM-DD).")
@click.option("--until", help="Up to and including this date (YYYY-MM-DD).")
@click.option("--date", "on_day", help="Only this date (YYYY-MM-DD).")
@click.option(
    "--outcome",
    type=click.Choice([str(o) for o in Outcome]),
    multiple=True,
    help="Only these outcomes (repeatable).",
)
@click.option("--configuration", help="Only this configuration.")
@click.option("--mailbox", help="Only this mailbox (drop for WorkOrder Drop).")
@click.option("--limit", type=int, default=0, help="Only the newest N entries.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines output.")
@pass_context
def logs(
    context: Context,
    since: str | None,
    until: str | None,
    on_day: str | None,
    outcome: tuple[str, ...],
    configuration: str | None,
    mailbox: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The processing log, with filters."""
    settings = context.settings
    first, last = _parse_day(since), _parse_day(until)
    if on_day is not None:
        first = last = _parse_day(on_day)
    zone = settings.zone
    with app.open_workspace(settings) as workspace:
        entries = []
        for entry in workspace.store.log_entries():
            day = datetime.fromisoformat(entry["time"]).astimezone(zone).date()
            if first is not None and day < first:
                continue
            if last is not None and day > last:
                continue
            if outcome and entry.get("outcome") not in outcome:
                continue
            if (
                configuration is not None
                and entry.get("configuration") != configuration
            ):
                continue
            if mailbox is not None and entry.get("mailbox") != mailbox:
                continue
            entries.append(entry)
    if limit > 0:
        entries = entries[-limit:]
    if as_json:
        for entry in entries:
            emit(log_json(entry))
        return
    print_log(entries, zone)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_context
def usage(context: Context, as_json: bool) -> None:
    """Today's counter, the daily limit and the waiting mail."""
    settings = context.settings
    now = app.now_utc()
    today = now.astimezone(settings.zone).date()
    with app.open_workspace(settings) as workspace:
        used = workspace.store.usage(today)
        waiting = workspace.store.mails_with_status("deferred")
    midnight = datetime.combine(
        today + timedelta(days=1), datetime.min.time(), settings.zone
    )
    data = {
        "date": today.isoformat(),
        "used": used,
        "limit": settings.daily_limit,
        "remaining": max(settings.daily_limit - used, 0)
        if settings.daily_limit
        else None,
        "waiting": len(waiting),
        "resets_at": midnight.isoformat(),
        "waiting_mail": [
            {
                "mailbox": r.get("mailbox"),
                "message_id": str(r.get("message_id") or "").strip("<>"),
                "since": r.get("first_seen"),
            }
            for r in waiting
        ],
    }
    if as_json:
        emit(data)
        return
    limit = settings.daily_limit or "unlimited"
    click.echo(f"{today}: {used} of {limit} processed; {len(waiting)} waiting")
    if waiting:
        click.echo(
            f"waiting mail is processed first after {midnight:%Y-%m-%d %H:%M %Z}"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="JSON Lines output.")
@pass_context
def status(context: Context, as_json: bool) -> None:
    """Each mailbox: state, last sync, last error."""
    settings = context.settings
    with app.open_workspace(settings) as workspace:
        rows = []
        for mailbox in settings.mailbox:
            known = workspace.store.mailbox_status(mailbox.name)
            rows.append(
                {
                    "mailbox": mailbox.name,
                    "kind": mailbox.kind,
                    "enabled": mailbox.enabled,
                    "state": known.get("state", "never synced"),
                    "last_sync": known.get("last_sync"),
                    "error": known.get("error"),
                    "cursor": workspace.store.cursor(mailbox.name) is not None,
                }
            )
    for row in rows:
        if as_json:
            emit(row)
        else:
            line = f"{row['mailbox']:<16} {row['kind']:<7} {row['state']}"
            if row["last_sync"]:
                line += f", last sync {row['last_sync']}"
            if not row["enabled"]:
                line += " (disabled)"
            if row["error"]:
                line += f"\n{'':<25}{row['error']}"
            click.echo(line)


@cli.command()
@click.argument("number", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines output.")
@pass_context
def workorders(context: Context, number: str | None, as_json: bool) -> None:
    """List the work orders in the local target, or show one."""
    from connector.targets.local import LocalTarget

    settings = context.settings
    if settings.target.kind != "local":
        _fail(
            f"{settings.source}: target is {settings.target.kind}; "
            "workorders lists the local target"
        )
    with app.open_workspace(settings) as workspace:
        assert isinstance(workspace.target, LocalTarget)
        if number is not None:
            found = workspace.target.workorder(number)
            if found is None:
                _fail(f"work order {number} not found")
            items = [found]
        else:
            items = list(workspace.target.workorders())
    if as_json:
        for item in items:
            emit(item)
        return
    if number is not None:
        print_workorder(items[0])
    else:
        print_workorders(items)


@cli.group()
def relations() -> None:
    """The local relation directory."""


@relations.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["relations", "addresses", "contactpersons", "objects"]),
    help="What the file holds (default: from the file name).",
)
@pass_context
def relations_import(context: Context, file: Path, kind: str | None) -> None:
    """Add relations, addresses, contact persons or objects from a CSV file."""
    from connector.targets.local import LocalTarget

    settings = context.settings
    if kind is None:
        kind = next(
            (
                k
                for k in ("relations", "addresses", "contactpersons", "objects")
                if k in file.stem.lower()
            ),
            "relations",
        )
    _read_files([file])
    with app.open_workspace(settings) as workspace:
        if not isinstance(workspace.target, LocalTarget):
            _fail(f"{settings.source}: relations import fills the local target only")
        count = workspace.target.import_records(kind, file)
    click.echo(f"{count} {kind} imported from {file}")


@cli.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines output.")
@pass_context
def reprocess(context: Context, ids: tuple[str, ...], as_json: bool) -> None:
    """Process quarantined or failed mail again, by log id or Message-ID."""
    settings = context.settings
    reporter = Reporter(as_json, "Reprocess")
    with app.open_workspace(settings) as workspace:
        records = list(_records_for(workspace, ids))
        for record in records:
            record["retry"] = None
            record["attempts"] = 0
            reporter(workspace.processor.retry(record, app.now_utc()))
    reporter.finish()


def _records_for(
    workspace: app.Workspace, ids: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    store = workspace.store
    keys_by_log: dict[str, str] = {}
    for entry in store.log_entries():
        if entry.get("key"):
            keys_by_log[str(entry.get("id"))] = entry["key"]
    for given in ids:
        key = keys_by_log.get(given) or "mid:" + given.strip("<>")
        record = store.mail(key)
        if record is None:
            _fail(f"no recorded mail for {given!r} (give a log id or a Message-ID)")
        yield record
