"""A programming error while handling one mail fails that mail, not the pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import connector.pipeline
from tests.test_cli import INBOX, demo_settings, lines, mail2wo


def test_an_unexpected_error_in_decide_fails_one_mail_and_the_rest_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception that is no mail2wo error is logged as failed for that mail."""
    real_decide = connector.pipeline.decide

    def flawed(mail: Any, *args: Any, **kwargs: Any) -> Any:
        if "Heat pump" in mail.subject:
            raise KeyError("a rule bug")
        return real_decide(mail, *args, **kwargs)

    monkeypatch.setattr(connector.pipeline, "decide", flawed)
    settings = demo_settings(tmp_path)
    result = mail2wo(
        settings,
        "drop",
        "--json",
        str(INBOX / "13-english-heat-pump-repair.eml"),
        str(INBOX / "01-iphone-storing-cv-ketel.eml"),
    )
    assert result.exit_code == 0, result.output
    outcomes = [r["outcome"] for r in lines(result)]
    assert outcomes == ["failed", "created"]
    assert "KeyError" in lines(result)[0]["reason"]
    logged = lines(mail2wo(settings, "logs", "--json", "--outcome", "failed"))
    assert len(logged) == 1
