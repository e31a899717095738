"""Peak memory of one mail with a 25 MB attachment, dropped on the local target.

Each probe runs in a fresh interpreter (``python -m benchmarks.memory``), so
other benchmarks do not pollute it. ``ru_maxrss`` cannot be used: a child
inherits its parent's high-water mark through fork and exec. The probe
therefore opens the workspace, processes one small mail (so that lazy imports
and the relation directory are loaded), writes ``5`` to
``/proc/self/clear_refs`` to reset the high-water mark, and then reads the
mail file and processes it as ``mail2wo drop`` does. The figure is ``VmHWM``
minus the idle ``VmRSS``, divided by the size of the raw mail. A second probe
uses ``tracemalloc`` to split the peak into reading + parsing and the rest.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import subprocess
import sys
import tempfile
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.corpus import START, large_attachment_mail, plain_mail
from benchmarks.report import Report, Target
from benchmarks.workspace import ROOT, write_settings
from connector.app import open_workspace
from connector.decide import Delivery
from connector.mail import parse_mail
from connector.settings import load_settings

__all__ = ["run"]

ATTACHMENT = 25_000_000
MIB = 1024 * 1024


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    text = Path("/proc/self/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert found is not None, field  # Defensive: Linux only
    return int(found.group(1)) * 1024


def probe(settings_path: Path, mail_path: Path, mode: str) -> dict[str, Any]:
    """Process the mail in this process; return the measured memory."""
    settings = load_settings(settings_path)
    with open_workspace(settings) as workspace:
        warm = Delivery(mode="drop", mailbox="drop", provider_id="warm-up")
        workspace.processor.process(plain_mail(1), warm, START)
        now = START + timedelta(minutes=1)
        delivery = Delivery(mode="drop", mailbox="drop", provider_id=str(mail_path))
        gc.collect()

        if mode == "rss":
            idle = _status("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")
            raw = mail_path.read_bytes()
            result = workspace.processor.process(raw, delivery, now)
            peak = _status("VmHWM")
            workorder = result.workorder or {}
            return {
                "idle": idle,
                "peak": peak,
                "raw": len(raw),
                "outcome": str(result.outcome),
                "attachments": workorder.get("Attachments", []),
            }

        tracemalloc.start()
        raw = mail_path.read_bytes()
        mail = parse_mail(raw)
        _, parse_peak = tracemalloc.get_traced_memory()
        del mail
        gc.collect()
        tracemalloc.reset_peak()
        workspace.processor.process(raw, delivery, now)
        _, process_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"parse_peak": parse_peak, "process_peak": process_peak}


def _child(settings_path: Path, mail_path: Path, mode: str) -> dict[str, Any]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.memory",
            str(settings_path),
            str(mail_path),
            mode,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool) -> Report:
    report = Report(
        "5. Peak memory: one mail with a 25 MB attachment (drop)",
        targets=[
            Target(
                "peak_memory_ratio_25mb",
                4.0,
                "(peak - idle RSS) / raw mail size",
            )
        ],
    )
    with tempfile.TemporaryDirectory(prefix="mail2wo-bench-") as scratch:
        folder = Path(scratch)
        mail_path = folder / "large.eml"
        mail_path.write_bytes(large_attachment_mail(ATTACHMENT))
        rss = _child(write_settings(folder / "rss"), mail_path, "rss")
        traced = None
        if not quick:
            traced = _child(write_settings(folder / "traced"), mail_path, "tracemalloc")

    raw = rss["raw"]
    ratio = (rss["peak"] - rss["idle"]) / raw
    report.figures.update(
        peak_memory_ratio_25mb=round(ratio, 2),
        peak_memory_mail_mb=round(raw / 1e6, 1),
        peak_memory_idle_mib=round(rss["idle"] / MIB, 1),
        peak_memory_peak_mib=round(rss["peak"] / MIB, 1),
    )
    report.row("raw mail", f"{raw / 1e6:.1f} MB ({rss['outcome']})")
    report.row(
        "RSS idle -> peak",
        f"{rss['idle'] / MIB:.1f} -> {rss['peak'] / MIB:.1f} MiB, "
        f"+{(rss['peak'] - rss['idle']) / MIB:.1f} MiB",
    )
    report.row("(peak - idle) / mail size", f"{ratio:.2f}x (target <= 4)")
    if traced is not None:
        report.figures.update(
            peak_memory_tracemalloc_parse_mib=round(traced["parse_peak"] / MIB, 1),
            peak_memory_tracemalloc_process_mib=round(traced["process_peak"] / MIB, 1),
        )
        report.row(
            "tracemalloc peak",
            f"read + parse_mail {traced['parse_peak'] / MIB:.1f} MiB; "
            f"process (raw already read) {traced['process_peak'] / MIB:.1f} MiB",
        )
    if len(rss["attachments"]) != 1:  # Defensive: the attachment must be kept
        report.notes.append(f"attachment not kept: {rss['attachments']}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="one memory probe (internal)")
    parser.add_argument("settings", type=Path)
    parser.add_argument("mail", type=Path)
    parser.add_argument("mode", choices=("rss", "tracemalloc"))
    arguments = parser.parse_args()
    print(json.dumps(probe(arguments.settings, arguments.mail, arguments.mode)))


if __name__ == "__main__":
    main()
