"""A throwaway copy of the root ``settings.toml`` with its state in a temp folder."""

from __future__ import annotations

import re
from pathlib import Path

from connector.settings import Settings, load_settings

__all__ = ["ROOT", "bench_settings", "write_settings"]

ROOT = Path(__file__).resolve().parent.parent

_STATE_PATH = re.compile(r'^(\[state\]\s*\npath\s*=\s*)"var"', re.MULTILINE)
_EXAMPLES = re.compile(r'"(examples/[^"]*)"')


def write_settings(folder: Path) -> Path:
    """Write ``folder/settings.toml``: the root settings, state in ``folder/state``.

    The relation CSVs and the demo inbox stay those of ``examples/``.
    """
    text = (ROOT / "settings.toml").read_text(encoding="utf-8")
    text, replaced = _STATE_PATH.subn(rf"\1'{folder / 'state'}'", text)
    if replaced != 1:  # Defensive: the root settings changed shape
        raise RuntimeError('settings.toml: no [state] path = "var" to redirect')
    text = _EXAMPLES.sub(lambda m: f"'{ROOT / m.group(1)}'", text)
    path = folder / "settings.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def bench_settings(folder: Path) -> Settings:
    """Validated settings whose state lives below ``folder``."""
    settings = load_settings(write_settings(folder))
    assert settings.state_dir == folder / "state"  # Defensive
    return settings
