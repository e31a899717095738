"""Wall time of ``mail2wo drop`` for one ordinary mail, start-up included.

Each run drops a different small mail (a new Message-ID, so never a
duplicate) on the same temporary state, with the installed ``mail2wo``
command. For context the same number of runs of a bare interpreter and of
``python -c "import connector.cli"`` are timed: their difference is what
importing costs before any mail is read.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import plain_mail
from benchmarks.report import Report
from benchmarks.workspace import ROOT, write_settings

__all__ = ["run"]

RUNS = 5
QUICK_RUNS = 3


def _timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, completed.stdout


def run(quick: bool) -> Report:
    runs = QUICK_RUNS if quick else RUNS
    command = str(Path(sys.executable).with_name("mail2wo"))
    report = Report(f"7. mail2wo drop of one ordinary mail: median of {runs}")
    drops: list[float] = []
    bare: list[float] = []
    imports: list[float] = []
    outcomes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mail2wo-bench-") as scratch:
        folder = Path(scratch)
        settings = write_settings(folder)
        for number in range(runs):
            mail = folder / f"mail-{number}.eml"
            mail.write_bytes(plain_mail(500 + number, sender=number))
            elapsed, output = _timed(
                [command, "--settings", str(settings), "drop", "--json", str(mail)]
            )
            drops.append(elapsed)
            outcomes.append(json.loads(output.splitlines()[-1])["outcome"])
            bare.append(_timed([sys.executable, "-c", "pass"])[0])
            imports.append(_timed([sys.executable, "-c", "import connector.cli"])[0])

    drop_s = statistics.median(drops)
    report.figures.update(
        drop_one_mail_s=round(drop_s, 3),
        drop_python_start_s=round(statistics.median(bare), 3),
        drop_import_cli_s=round(statistics.median(imports), 3),
    )
    report.row("mail2wo drop (one mail)", f"{drop_s:.3f} s ({', '.join(outcomes)})")
    report.row("python -c pass", f"{statistics.median(bare):.3f} s")
    report.row(
        "python -c 'import connector.cli'", f"{statistics.median(imports):.3f} s"
    )
    return report
