"""Sync efficiency: HTTP requests and wall time per new mail, Graph and Gmail.

The providers run their real client code (``msal``/``requests`` for Graph,
``googleapiclient``/``google-auth`` for Gmail) against the loopback fakes of
``tests/fakes``. After the first connection, mail arrives in rounds of 50 and
each round is followed by one sync pass, until 500 new mails have been read.
Requests are counted by the fake; wall time covers the sync passes only (not
the deliveries), token requests included.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.corpus import plain_mail
from benchmarks.report import Report, Target

__all__ = ["run"]

MAILS = 500
QUICK_MAILS = 100
ROUND = 50


def graph(total: int) -> tuple[int, float, int]:
    """(HTTP requests, seconds, new mails) for ``total`` mails through Graph."""
    from tests.fakes.microsoft import USER, FakeMicrosoft, make_graph_provider

    new = 0
    elapsed = 0.0
    with FakeMicrosoft() as fake, tempfile.TemporaryDirectory() as folder:
        provider = make_graph_provider(fake, Path(folder))
        cursor = [page.cursor for page in provider.sync(None)][-1]
        fake.reset_log()
        for first in range(0, total, ROUND):
            for number in range(first, first + ROUND):
                fake.graph.deliver(
                    USER,
                    plain_mail(number, sender=number),
                    conversation_id=f"c{number}",
                )
            started = time.perf_counter()
            for page in provider.sync(cursor):
                new += len(page.mails)
                cursor = page.cursor
            elapsed += time.perf_counter() - started
        requests = len(fake.requests)
        provider.close()
    return requests, elapsed, new


def gmail(total: int) -> tuple[int, float, int]:
    """(HTTP requests, seconds, new mails) for ``total`` mails through Gmail."""
    from tests.fakes.google import fake_google, make_gmail_provider

    new = 0
    elapsed = 0.0
    with fake_google() as fake, tempfile.TemporaryDirectory() as folder:
        provider = make_gmail_provider(fake, Path(folder))
        cursor = [page.cursor for page in provider.sync(None)][-1]
        fake.reset_counters()
        for first in range(0, total, ROUND):
            for number in range(first, first + ROUND):
                fake.deliver(plain_mail(number, sender=number), thread=f"t{number}")
            started = time.perf_counter()
            for page in provider.sync(cursor):
                new += len(page.mails)
                if page.cursor is not None:
                    cursor = page.cursor
            elapsed += time.perf_counter() - started
        requests = fake.requests
        provider.close()
    return requests, elapsed, new


def run(quick: bool) -> Report:
    total = QUICK_MAILS if quick else MAILS
    report = Report(
        f"4. Sync against the fakes: {total} new mails in rounds of {ROUND}",
        targets=[
            Target("graph_requests_per_mail", 1.1, "Graph requests per new mail"),
            Target("gmail_requests_per_mail", 0.15, "Gmail requests per new mail"),
        ],
    )
    for name, sync in (("graph", graph), ("gmail", gmail)):
        requests, elapsed, new = sync(total)
        if new != total:  # Defensive: a provider that loses or doubles mail
            report.notes.append(f"{name}: {new} new mails yielded for {total}")
        per_mail = requests / max(new, 1)
        ms = elapsed * 1000 / max(new, 1)
        report.figures[f"{name}_requests_per_mail"] = round(per_mail, 3)
        report.figures[f"{name}_ms_per_mail"] = round(ms, 2)
        report.row(
            name,
            f"{requests} requests for {new} mails = {per_mail:.3f}/mail, "
            f"{ms:.2f} ms/mail",
        )
    report.notes.append(
        "limits from the provider tests: Graph <= 1.1 (one $value per mail, which "
        "reference/mail-apis.md A7 keeps out of $batch), Gmail <= 0.15"
    )
    return report
