"""Pipeline throughput on the generated mix, next to the stdlib parsing floor.

The pipeline is the real code path: ``open_workspace`` on a temporary copy of
the root settings, then ``processor.process`` for every mail (archive, parse,
clean, decide, state records, local target). The floor is what any Python
mail tool pays at least: ``email.message_from_bytes`` with ``policy.default``
plus ``get_body()``. It runs before and after the pipeline; the mean of the
two is the floor of this run.
"""

from __future__ import annotations

import email
import email.policy
import tempfile
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

from benchmarks.corpus import START, GeneratedMail, generate, scaled_mix
from benchmarks.report import Report, Target
from benchmarks.workspace import bench_settings
from connector.app import open_workspace
from connector.decide import Delivery

__all__ = ["run"]

FULL = 2_000
QUICK = 200


def floor_pass(mails: list[GeneratedMail]) -> dict[str, float]:
    """Seconds per kind for stdlib parsing (``policy.default``) plus ``get_body``."""
    spent: dict[str, float] = defaultdict(float)
    for mail in mails:
        started = time.perf_counter()
        message = email.message_from_bytes(mail.raw, policy=email.policy.default)
        message.get_body()  # type: ignore[attr-defined]
        spent[mail.kind] += time.perf_counter() - started
    return dict(spent)


def pipeline_pass(
    mails: list[GeneratedMail], folder: Path
) -> tuple[dict[str, float], Counter[str], float]:
    """Seconds per kind for ``processor.process``, the outcomes, and CPU seconds.

    CPU time is that of this process; wall time beyond it is mostly waiting
    for fsync.
    """
    settings = bench_settings(folder)
    spent: dict[str, float] = defaultdict(float)
    outcomes: Counter[str] = Counter()
    cpu = time.process_time()
    with open_workspace(settings) as workspace:
        for number, mail in enumerate(mails):
            delivery = Delivery(
                mode="conversations",
                mailbox="demo",
                provider_id=f"bench-{number}",
                thread_id=f"thread-{number}",
            )
            now = START + timedelta(minutes=number)
            started = time.perf_counter()
            result = workspace.processor.process(mail.raw, delivery, now)
            spent[mail.kind] += time.perf_counter() - started
            outcomes[str(result.outcome)] += 1
    return dict(spent), outcomes, time.process_time() - cpu


def run(quick: bool) -> Report:
    total = QUICK if quick else FULL
    mails = generate(scaled_mix(total))
    counts = Counter(mail.kind for mail in mails)
    megabytes = sum(len(mail.raw) for mail in mails) / 1e6

    before = floor_pass(mails)
    with tempfile.TemporaryDirectory(prefix="mail2wo-bench-") as folder:
        pipeline, outcomes, cpu_s = pipeline_pass(mails, Path(folder))
    after = floor_pass(mails)

    floor = {kind: (before[kind] + after[kind]) / 2 for kind in before}
    floor_s, pipeline_s = sum(floor.values()), sum(pipeline.values())
    report = Report(
        f"1. Pipeline throughput: {len(mails)} mails, {megabytes:.1f} MB",
        targets=[Target("pipeline_vs_floor", 3.0, "pipeline time / floor time")],
    )
    report.figures.update(
        pipeline_mails_per_s=round(len(mails) / pipeline_s, 1),
        floor_mails_per_s=round(len(mails) / floor_s, 1),
        pipeline_vs_floor=round(pipeline_s / floor_s, 2),
        pipeline_mails=len(mails),
        pipeline_cpu_share=round(cpu_s / pipeline_s, 2),
        pipeline_ms_per_mail_by_kind={
            kind: round(pipeline[kind] * 1000 / counts[kind], 2) for kind in counts
        },
        floor_ms_per_mail_by_kind={
            kind: round(floor[kind] * 1000 / counts[kind], 2) for kind in counts
        },
        pipeline_outcomes=dict(sorted(outcomes.items())),
    )
    report.row("pipeline", f"{len(mails) / pipeline_s:,.1f} mails/s")
    report.row(
        "floor (policy.default + get_body)", f"{len(mails) / floor_s:,.1f} mails/s"
    )
    report.row(
        "pipeline time / floor time", f"{pipeline_s / floor_s:.2f}x (target <= 3)"
    )
    report.row("pipeline CPU time / wall time", f"{cpu_s / pipeline_s:.2f}")
    for kind in counts:
        report.row(
            f"  {kind} ({counts[kind]})",
            f"{pipeline[kind] * 1000 / counts[kind]:7.2f} ms vs floor "
            f"{floor[kind] * 1000 / counts[kind]:6.2f} ms",
        )
    report.row("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return report
