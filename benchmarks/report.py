"""What one benchmark hands back: figures for results.json, rows for the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report", "Target"]


@dataclass(frozen=True)
class Target:
    """A figure that must stay at or below ``limit``."""

    key: str
    limit: float
    what: str

    def met(self, figures: dict[str, Any]) -> bool | None:
        """Whether the figure is within the limit; ``None`` when it was not run."""
        value = figures.get(self.key)
        if not isinstance(value, int | float):
            return None
        return value <= self.limit


@dataclass
class Report:
    """Figures (JSON-able) and the rows printed for one benchmark."""

    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def row(self, label: str, value: str) -> None:
        """Add one line to the printed table."""
        self.rows.append((label, value))
