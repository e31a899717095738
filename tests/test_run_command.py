"""``mail2wo run``: the scheduler as a real process, stopped with SIGTERM."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import cli
from state.tinydb_store import TinyDBStateStore
from tests.settings_files import folder_mailbox, lines, service_mail, write_settings

#: A fixed processing clock, in the past: scheduling must still use real time.
NOW = "2026-03-02T09:30:00+01:00"


def mail2wo_command() -> list[str]:
    script = Path(sys.executable).with_name("mail2wo")
    return [str(script)] if script.exists() else [shutil.which("mail2wo") or ""]


class Running:
    """A ``mail2wo run`` process whose log lines arrive on a queue."""

    def __init__(self, settings: Path, **environment: str) -> None:
        self.process = subprocess.Popen(
            [*mail2wo_command(), "--settings", str(settings), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **environment},
        )
        self.log: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """The first new log line containing ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"no log line with {text!r} within {timeout} s; log: {self.log}"
                ) from None
            self.log.append(line)
            if text in line:
                return line

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        while not self._lines.empty():
            self.log.append(self._lines.get())
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def running(tmp_path: Path, inbox: Path) -> Iterator[Running]:
    (inbox / "01.eml").write_bytes(service_mail(1))
    settings = write_settings(tmp_path, folder_mailbox("demo", inbox, poll_seconds=5))
    process = Running(settings, MAIL2WO_NOW=NOW)
    try:
        yield process
    finally:
        process.kill()


def test_run_processes_new_mail_and_stops_cleanly_on_sigterm(
    running: Running, inbox: Path, tmp_path: Path
) -> None:
    """A mail dropped in the folder is processed on the next poll; SIGTERM exits 0."""
    started = time.monotonic()
    running.wait_for("running 1 mailbox(es)")
    running.wait_for("demo: 1 created")
    partial = inbox / ".02.eml.part"
    partial.write_bytes(service_mail(2))
    partial.rename(inbox / "02.eml")

    running.wait_for("demo: 1 created", timeout=10)
    code = running.stop()
    elapsed = time.monotonic() - started

    assert code == 0, running.log
    assert any("signal 15: stopping" in line for line in running.log)
    assert elapsed < 20
    store = TinyDBStateStore(tmp_path / "var")  # the lock was released
    try:
        records = store.mails_with_status("seen", "decided", "failed", "deferred")
        done = store.mails_with_status("done")
        cursor = store.cursor("demo")
        entries = list(store.log_entries())
        status = store.mailbox_status("demo")
    finally:
        store.close()
    assert records == []
    assert sorted(r["provider_id"] for r in done) == ["01.eml", "02.eml"]
    assert cursor is not None
    assert [e["message_id"] for e in entries] == [
        "e2e-1@example.nl",
        "e2e-2@example.nl",
    ]
    assert {e["time"] for e in entries} == {"2026-03-02T08:30:00+00:00"}
    assert status["state"] == "ok"
    leftovers = [p for p in (tmp_path / "var").rglob(".*") if p.name != ".lock"]
    assert leftovers == []
    settings = ["--settings", str(tmp_path / "settings.toml")]
    orders = lines(CliRunner().invoke(cli, [*settings, "workorders", "--json"]).stdout)
    assert [(o["WorkorderNo"], o["ShortWorkDescription"]) for o in orders] == [
        ("2026-0001", "Storing: Storing cv-ketel 1"),
        ("2026-0002", "Storing: Storing cv-ketel 2"),
    ]


def test_a_failing_mailbox_is_backed_off_doubling_up_to_an_hour() -> None:
    """After each failed pass the wait doubles from poll_seconds, capped at 1 h."""
    from connector.scheduler import MailboxBackoff

    backoff = MailboxBackoff(60)
    assert backoff.due(0.0)
    waits = [backoff.failed(0.0) for _ in range(7)]
    assert waits == [120, 240, 480, 960, 1920, 3600, 3600]
    assert not backoff.due(3599.0)
    assert backoff.due(3600.0)
    backoff.succeeded()
    assert backoff.due(0.0)
