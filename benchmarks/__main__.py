"""Run the benchmarks, print the figures and write ``benchmarks/results.json``.

Usage: ``python -m benchmarks [--quick] [NAME ...]`` from the repository root,
where NAME is one of pipeline, html, state, sync, memory, regex, drop (all by
default). A subset run updates only its own figures in results.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import Report, Target

BENCHMARKS = {
    "pipeline": "benchmarks.pipeline",
    "html": "benchmarks.html_to_text",
    "state": "benchmarks.state_scaling",
    "sync": "benchmarks.sync",
    "memory": "benchmarks.memory",
    "regex": "benchmarks.regex_rules",
    "drop": "benchmarks.drop",
}
RESULTS = Path(__file__).resolve().parent / "results.json"

#: The figures of the summary table, in order, with their unit.
SUMMARY = (
    ("pipeline_mails_per_s", "mails/s"),
    ("floor_mails_per_s", "mails/s"),
    ("pipeline_vs_floor", "x floor time"),
    ("html_ms_per_part", "ms/part"),
    ("state_cost_ratio_100k_vs_1k", "x"),
    ("graph_requests_per_mail", "requests/mail"),
    ("gmail_requests_per_mail", "requests/mail"),
    ("peak_memory_ratio_25mb", "x mail size"),
    ("regex_ms_per_mail", "ms/mail"),
    ("drop_one_mail_s", "s"),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller inputs, for a smoke run"
    )
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}")
    names = arguments.names or list(BENCHMARKS)

    started = time.perf_counter()
    reports: list[Report] = []
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        print(f"running {name}{' (quick)' if arguments.quick else ''} ...", flush=True)
        began = time.perf_counter()
        report: Report = module.run(arguments.quick)
        report.figures[f"{name}_benchmark_s"] = round(time.perf_counter() - began, 1)
        reports.append(report)
        _print(report)

    figures: dict[str, Any] = {}
    for report in reports:
        figures.update(report.figures)
    _print_summary(figures, [t for r in reports for t in r.targets])
    _write(figures, names, arguments.quick, time.perf_counter() - started)
    return 0


def _print(report: Report) -> None:
    print(f"\n{report.title}")
    width = max((len(label) for label, _ in report.rows), default=0)
    for label, value in report.rows:
        print(f"  {label:<{width}}  {value}")
    for note in report.notes:
        print(f"  note: {note}")
    print(flush=True)


def _print_summary(figures: dict[str, Any], targets: list[Target]) -> None:
    by_key = {target.key: target for target in targets}
    print("summary")
    print(f"  {'figure':<30} {'value':>10}  {'unit':<14} target")
    for key, unit in SUMMARY:
        if key not in figures:
            continue
        target = by_key.get(key)
        verdict = ""
        if target is not None:
            met = target.met(figures)
            verdict = f"<= {target.limit:g}: {'met' if met else 'MISSED'}"
        print(f"  {key:<30} {figures[key]:>10}  {unit:<14} {verdict}")


def _write(
    figures: dict[str, Any], names: list[str], quick: bool, total: float
) -> None:
    """Merge this run's figures into results.json (figures of other runs stay)."""
    results: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            results = json.loads(RESULTS.read_text(encoding="utf-8"))
        except ValueError:
            results = {}
    results.update(figures)
    runs = results.setdefault("runs", {})
    run = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "seconds": round(total, 1),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
    for name in names:
        runs[name] = run
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nfigures written to {RESULTS} ({total:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
