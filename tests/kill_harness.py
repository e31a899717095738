"""Kill the real ``mail2wo sync`` at random moments and check nothing is lost.

A :class:`KillRun` delivers generated mail to one mailbox in waves, starts
``mail2wo --settings … sync --json`` as a subprocess, SIGKILLs it at a random
moment, and starts it again, round after round. Then it lets a sync finish
and reads the outcome back through the real command (``logs --json`` and
``workorders --json``): every mail must have produced exactly what it should —
one work order, one note, or nothing — and none of it twice.

Mailboxes are local folders, or the loopback fakes of Graph and Gmail from
``tests/fakes``; the subprocess reaches the HTTPS fake through
``REQUESTS_CA_BUNDLE``.

The kill moment is chosen in one of two ways, at random: a time after the
start (which lands in start-up, in the retry pass or in the first mails), or
a random short delay after the *k*-th result line, which lands anywhere inside
the processing of mail *k + 1*.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

from state.tinydb_store import TinyDBStateStore

__all__ = [
    "FolderInbox",
    "GmailInbox",
    "GraphInbox",
    "Inbox",
    "KillReport",
    "KillRun",
    "mail2wo_command",
]

#: Outcomes after which a mail is finished; one such log entry per delivery.
FINAL = frozenset(
    {
        "created",
        "appended",
        "no_configuration",
        "customer_not_found",
        "ignored",
        "duplicate",
        "quarantined",
    }
)

_SENDERS = 40


def mail2wo_command() -> list[str]:
    """The installed ``mail2wo`` console script of this interpreter."""
    script = Path(sys.executable).with_name("mail2wo")
    if not script.exists():  # Defensive: an interpreter outside the venv
        return [sys.executable, "-c", "from connector.cli import main; main()"]
    return [str(script)]


class Inbox(Protocol):
    """A mailbox the harness delivers to, and how the subprocess reaches it."""

    #: Provider threads exist (Graph conversations, Gmail threads).
    threads: bool

    def mailbox_toml(self) -> str:
        """The ``[[mailbox]]`` table of the settings file."""

    def env(self) -> dict[str, str]:
        """Environment the subprocess needs (secrets, CA bundle)."""

    def deliver(self, raw: bytes, thread: str | None) -> str:
        """Put one mail into the mailbox; return its thread id."""


class FolderInbox:
    """A folder of ``.eml`` files, named in delivery order."""

    threads = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def mailbox_toml(self) -> str:
        return f'[[mailbox]]\nname = "inbox"\nkind = "folder"\npath = "{self.path}"\n'

    def env(self) -> dict[str, str]:
        return {}

    def deliver(self, raw: bytes, thread: str | None) -> str:
        self._count += 1
        final = self.path / f"{self._count:05d}.eml"
        partial = self.path / f".{self._count:05d}.part"
        partial.write_bytes(raw)
        partial.rename(final)  # a sync never sees half a file
        return thread or f"file-{self._count}"


class GraphInbox:
    """The fake Microsoft Graph mailbox of ``tests.fakes.microsoft``."""

    threads = True

    def __init__(self, fake: Any) -> None:
        from tests.fakes import microsoft

        self.fake = fake
        self._m = microsoft

    def mailbox_toml(self) -> str:
        m = self._m
        since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
        return (
            '[[mailbox]]\nname = "service"\nkind = "graph"\n'
            f'tenant_id = "{m.TENANT_ID}"\nclient_id = "{m.CLIENT_ID}"\n'
            f'client_secret_env = "MAIL2WO_GRAPH_SECRET"\nuser = "{m.USER}"\n'
            f'authority = "{self.fake.authority}"\n'
            f'api_base = "{self.fake.api_base}"\nsince = "{since}"\n'
        )

    def env(self) -> dict[str, str]:
        return {
            "MAIL2WO_GRAPH_SECRET": self._m.CLIENT_SECRET,
            "REQUESTS_CA_BUNDLE": str(self.fake.server.ca_path),
        }

    def deliver(self, raw: bytes, thread: str | None) -> str:
        message = self.fake.graph.deliver(self._m.USER, raw, conversation_id=thread)
        return str(message.conversation_id)


class GmailInbox:
    """The fake Gmail mailbox of ``tests.fakes.google``."""

    threads = True

    def __init__(self, fake: Any, state_dir: Path) -> None:
        from tests.fakes.google import write_token_file

        self.fake = fake
        write_token_file(fake, state_dir / "tokens" / "gmail.gmail.json")

    def mailbox_toml(self) -> str:
        since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
        return (
            '[[mailbox]]\nname = "gmail"\nkind = "gmail"\n'
            f'user = "me"\napi_base = "{self.fake.api_base}"\n'
            f'token_uri = "{self.fake.token_uri}"\nsince = "{since}"\n'
        )

    def env(self) -> dict[str, str]:
        return {}

    def deliver(self, raw: bytes, thread: str | None) -> str:
        message_id = self.fake.deliver(raw, thread=thread)
        return str(self.fake.message(message_id).thread_id)


# -- the generated mail ------------------------------------------------------


@dataclass
class GeneratedMail:
    """One mail put into the mailbox, and what it must become."""

    number: int
    kind: str  # new | reply | token | thread | noise | copy | stranger
    message_id: str
    sender: str
    raw: bytes
    thread: str = ""
    parent: int | None = None  # the ``new`` delivery whose work order it joins

    @property
    def expected(self) -> str:
        """The one final outcome this delivery must get."""
        return {
            "new": "created",
            "stranger": "created",
            "reply": "appended",
            "token": "appended",
            "thread": "appended",
            "noise": "ignored",
            "copy": "duplicate",
        }[self.kind]


def _mail(
    number: int,
    sender: int,
    subject: str,
    body: str,
    *,
    seed: int,
    headers: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    message_id = f"kill-{seed}-{number:05d}@klanten.example"
    lines = [
        f"From: Klant {sender} <klant{sender}@klanten.example>",
        "To: service@contoso.nl",
        f"Subject: {subject}",
        f"Message-ID: <{message_id}>",
        f"Date: {format_datetime(datetime.now(UTC))}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        body,
        "",
    ]
    return message_id, "\r\n".join(lines).encode()


def _customer_body(number: int, sender: int) -> str:
    return (
        f"Goedemorgen,\r\n\r\nDe cv-ketel geeft storing (melding {number}).\r\n\r\n"
        f"Melding: K-{number:05d}\r\nNaam: Klant {sender}\r\n"
        f"Adres: Kastanjelaan {sender + 1}\r\nPostcode: 9741 KJ\r\n"
        "Plaats: Groningen\r\n\r\nGroet,\r\nKlant"
    )


SETTINGS = """\
timezone = "Europe/Amsterdam"
max_new_per_sender_per_hour = 0

[state]
path = "{state}"

[target]
kind = "local"

{mailbox}
[[configuration]]
name = "Alles"
sender_type = "Any"
customer_rules = ["FindOrAddRelationByEmail"]

[[configuration.regex_rule]]
name = "melding"
pattern = 'Melding:\\s*(K-\\d+)'

[[configuration.regex_rule]]
name = "customer_name"
pattern = 'Naam:\\s*(.+)'

[[configuration.regex_rule]]
name = "customer_street"
pattern = 'Adres:\\s*(.+)'

[[configuration.regex_rule]]
name = "customer_postal_code"
pattern = 'Postcode:\\s*(.+)'

[[configuration.regex_rule]]
name = "customer_city"
pattern = 'Plaats:\\s*(.+)'

[configuration.forced_values]
ExternProjectNr = "{{melding}}"
"""


# -- the run -----------------------------------------------------------------


@dataclass
class KillReport:
    """What one kill run did: for the assertion messages and the docs."""

    seed: int
    kills: int = 0
    runs: int = 0
    deliveries: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    workorders: int = 0
    notes: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
        return (
            f"seed {self.seed}: {self.deliveries} mails ({kinds}), "
            f"{self.kills} kills in {self.runs} runs, {self.workorders} work "
            f"orders, {self.notes} notes, {self.seconds:.1f} s"
        )


class KillRun:
    """Deliver, sync, kill, repeat; then finish and check (see module doc)."""

    def __init__(
        self,
        inbox_factory: Callable[[Path], Inbox],
        folder: Path,
        *,
        seed: int,
        mails: int,
        kills: int,
    ) -> None:
        self.folder = folder
        self.state_dir = folder / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.inbox = inbox_factory(folder)
        self.rng = random.Random(seed)
        self.seed = seed
        self.total = mails
        self.kills = kills
        self.deliveries: list[GeneratedMail] = []
        self.report = KillReport(seed)
        self.settings_path = folder / "settings.toml"
        self.settings_path.write_text(
            SETTINGS.format(state=self.state_dir, mailbox=self.inbox.mailbox_toml())
        )
        self._results_seen = 0

    # the subprocess -----------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MAIL2WO_", "REQUESTS_CA", "SSL_CERT"))
        }
        env.update(self.inbox.env())
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _argv(self, *args: str) -> list[str]:
        return [*mail2wo_command(), "--settings", str(self.settings_path), *args]

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``mail2wo --settings … ARGS`` to its end."""
        return subprocess.run(
            self._argv(*args),
            env=self._env(),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def _sync_and_kill(self) -> bool:
        """One ``sync`` that is killed at a random moment; True if it was."""
        errors = self.folder / "sync-stderr.txt"
        with (
            errors.open("w") as stderr,
            subprocess.Popen(
                self._argv("sync", "--json"),
                env=self._env(),
                cwd=self.folder,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            ) as process,
        ):
            stdout = process.stdout
            assert stdout is not None  # Defensive: stdout is a pipe
            lines: list[str] = []
            reader = threading.Thread(
                target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True
            )
            reader.start()
            killed = self._kill_at_random(process, lines)
            process.wait(timeout=60)
            reader.join(timeout=10)
        self._results_seen += len(lines)
        self.report.runs += 1
        if not killed and process.returncode != 0:
            raise AssertionError(
                f"seed {self.seed}: sync exited with {process.returncode}: "
                f"{errors.read_text()[-2000:]}"
            )
        return killed

    def _kill_at_random(self, process: subprocess.Popen[str], lines: list[str]) -> bool:
        """SIGKILL ``process`` at a moment chosen as the module doc says."""
        pending = len(self.deliveries) - self._results_seen
        after = self.rng.randrange(pending) if pending > 0 else 0
        started = time.monotonic()
        if after == 0 or self.rng.random() < 0.2:
            deadline = started + self.rng.uniform(0.05, 0.7)
            while time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.002)
        else:
            while len(lines) < after and process.poll() is None:
                if time.monotonic() - started > 120:  # Defensive: a hung sync
                    break
                time.sleep(0.001)
            time.sleep(self.rng.uniform(0.0, 0.04))
        if process.poll() is not None:
            return False
        process.send_signal(signal.SIGKILL)
        return True

    # the mail -----------------------------------------------------------
    def _known_numbers(self) -> dict[int, str]:
        """Work-order numbers of finished ``new`` deliveries, read from state."""
        store = TinyDBStateStore(self.state_dir)
        try:
            found = {}
            for delivery in self.deliveries:
                if delivery.kind != "new":
                    continue
                record = store.mail(f"mid:{delivery.message_id}")
                if record and record.get("status") == "done":
                    found[delivery.number] = str(record["workorder_no"])
            return found
        finally:
            store.close()

    def _deliver_wave(self, count: int) -> None:
        numbers = self._known_numbers()
        parents = [d for d in self.deliveries if d.kind == "new"]
        for _ in range(count):
            number = len(self.deliveries) + 1
            sender = self.rng.randrange(_SENDERS)
            kind = self.rng.choices(
                ["new", "reply", "token", "thread", "noise", "copy", "stranger"],
                [45, 18, 10, 10 if self.inbox.threads else 0, 8, 6, 3],
            )[0]
            if kind in ("reply", "thread", "copy") and not parents:
                kind = "new"
            if kind in ("token", "stranger") and not numbers:
                kind = "new"
            self.deliveries.append(self._make(number, kind, sender, parents, numbers))
        self.report.deliveries = len(self.deliveries)
        self.report.kinds = Counter(d.kind for d in self.deliveries)

    def _make(
        self,
        number: int,
        kind: str,
        sender: int,
        parents: list[GeneratedMail],
        numbers: dict[int, str],
    ) -> GeneratedMail:
        seed = self.seed
        if kind in ("new", "noise"):
            headers = {"Auto-Submitted": "auto-replied"} if kind == "noise" else {}
            message_id, raw = _mail(
                number,
                sender,
                f"Storing melding {number}",
                _customer_body(number, sender),
                seed=seed,
                headers=headers,
            )
            thread = self.inbox.deliver(raw, None)
            delivery = GeneratedMail(number, kind, message_id, f"{sender}", raw, thread)
            if kind == "new":
                parents.append(delivery)
            return delivery
        if kind == "copy":
            original = self.rng.choice(parents)
            self.inbox.deliver(original.raw, None)
            return GeneratedMail(
                number, kind, original.message_id, original.sender, original.raw
            )
        if kind in ("token", "stranger"):
            parent_number = self.rng.choice(sorted(numbers))
            parent = next(d for d in parents if d.number == parent_number)
            workorder_no = numbers[parent_number]
            who = int(parent.sender) if kind == "token" else _SENDERS + number
            body = (
                f"Aanvulling op melding {parent_number}: het lekt nog steeds."
                if kind == "token"
                else _customer_body(number, who)
            )
            message_id, raw = _mail(
                number, who, f"Vraag over [WO {workorder_no}]", body, seed=seed
            )
            self.inbox.deliver(raw, None)
            return GeneratedMail(
                number,
                kind,
                message_id,
                str(who),
                raw,
                parent=parent_number if kind == "token" else None,
            )
        parent = self.rng.choice(parents)
        if kind == "reply":
            headers = {
                "In-Reply-To": f"<{parent.message_id}>",
                "References": f"<{parent.message_id}>",
            }
            subject = f"Re: Storing melding {parent.number}"
        else:
            headers, subject = {}, f"Nog iets over melding {parent.number}"
        message_id, raw = _mail(
            number,
            int(parent.sender),
            subject,
            f"Nog een aanvulling ({number}).\r\n\r\nGroet,\r\nKlant",
            seed=seed,
            headers=headers,
        )
        thread = self.inbox.deliver(raw, parent.thread if kind == "thread" else None)
        return GeneratedMail(
            number, kind, message_id, parent.sender, raw, thread, parent.number
        )

    # the whole run ------------------------------------------------------
    def run(self) -> KillReport:
        """Deliver in waves with kills between, finish, and check."""
        started = time.monotonic()
        idle = True  # the last sync ran to its end: no mail waiting
        while self.report.kills < self.kills and self.report.runs < 6 * self.kills:
            due = -(-self.total * (self.report.kills + 1) // self.kills)
            if idle and len(self.deliveries) >= due:
                due += -(-self.total // self.kills)
            if len(self.deliveries) < min(due, self.total):
                self._deliver_wave(min(due, self.total) - len(self.deliveries))
            killed = self._sync_and_kill()
            self.report.kills += killed
            idle = not killed
            if idle:
                self._results_seen = len(self.deliveries)
        if len(self.deliveries) < self.total:
            self._deliver_wave(self.total - len(self.deliveries))
        # Unkilled passes until one finds nothing. A Graph delta round resumed
        # from a stored nextLink ends where that round ends; mail that came in
        # meanwhile is in the next round, so one pass more may find mail.
        for _ in range(3):
            finished = self.command("sync", "--json")
            self.report.runs += 1
            if finished.returncode != 0:
                raise AssertionError(
                    f"seed {self.seed}: final sync failed: {finished.stderr}"
                )
            if not finished.stdout.strip():
                break
        self.report.seconds = time.monotonic() - started
        self.check(finished.stdout)
        return self.report

    # the verdict -----------------------------------------------------------
    def check(self, last_sync: str) -> None:
        """Exactly one work order, note or nothing per mail; nothing twice."""
        assert last_sync.strip() == "", (
            f"seed {self.seed}: the last sync still found mail: {last_sync[:2000]}"
        )

        self._check_log(self._json_lines("logs", "--json"))
        workorders = self._json_lines("workorders", "--json")
        self._check_workorders(workorders)
        self._check_notes(workorders)

        store = TinyDBStateStore(self.state_dir)  # the state loads
        try:
            unfinished = store.mails_with_status(
                "seen", "decided", "failed", "deferred"
            )
        finally:
            store.close()
        assert not unfinished, f"seed {self.seed}: unfinished: {unfinished[:3]}"
        debris = sorted(self.state_dir.rglob(".seg-*"))
        assert not debris, f"seed {self.seed}: half-written files left: {debris[:3]}"

    def _json_lines(self, *args: str) -> list[dict[str, Any]]:
        done = self.command(*args)
        assert done.returncode == 0, f"seed {self.seed}: {args}: {done.stderr}"
        return [json.loads(line) for line in done.stdout.splitlines()]

    def _check_log(self, entries: list[dict[str, Any]]) -> None:
        """One final entry per delivered mail, with its expected outcome."""
        expected = Counter((m.message_id, m.expected) for m in self.deliveries)
        final = Counter(
            (e["message_id"], e["outcome"]) for e in entries if e["outcome"] in FINAL
        )
        wrong = [
            f"{mid}: {outcome} logged {final[(mid, outcome)]}x, expected {n}"
            for (mid, outcome), n in (expected | final).items()
            if final[(mid, outcome)] != expected[(mid, outcome)]
        ]
        assert not wrong, f"seed {self.seed}: log wrong:\n" + "\n".join(wrong[:20])
        others = [e for e in entries if e["outcome"] not in FINAL]
        assert not others, f"seed {self.seed}: non-final log entries: {others[:3]}"

    def _check_workorders(self, workorders: list[dict[str, Any]]) -> None:
        """One work order per new mail, none twice, none without a mail."""
        made = Counter(w.get("ExternProjectNr") for w in workorders)
        doubled = [m for m, n in made.items() if n > 1]
        assert not doubled, f"seed {self.seed}: made twice: {doubled[:10]}"

        wanted = {
            f"K-{m.number:05d}"
            for m in self.deliveries
            if m.kind in ("new", "stranger")
        }
        assert set(made) == wanted, (
            f"seed {self.seed}: missing {sorted(wanted - set(made))[:10]}, "
            f"extra {sorted(str(m) for m in set(made) - wanted)[:10]}"
        )
        self.report.workorders = len(workorders)

    def _check_notes(self, workorders: list[dict[str, Any]]) -> None:
        """One note per follow-up, on the work order of its parent mail."""
        number_of = {
            int(w["ExternProjectNr"][2:]): w["WorkorderNo"] for w in workorders
        }
        notes = Counter(
            (w["WorkorderNo"], n["key"]) for w in workorders for n in w["notes"]
        )
        wanted = Counter(
            (number_of[m.parent], f"mid:{m.message_id}")
            for m in self.deliveries
            if m.parent is not None
        )
        assert notes == wanted, (
            f"seed {self.seed}: notes differ: "
            f"extra {list((notes - wanted).items())[:5]}, "
            f"missing {list((wanted - notes).items())[:5]}"
        )
        self.report.notes = sum(notes.values())
