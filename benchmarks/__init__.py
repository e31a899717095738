"""mail2wo's benchmarks: ``make bench`` (``python -m benchmarks``) prints the figures.

Each module measures one thing and returns a :class:`~benchmarks.report.Report`;
``__main__`` runs them, prints one table and writes ``benchmarks/results.json``.
"""
