"""End to end: the ``mail2wo`` command on temporary settings and the demo data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
INBOX = EXAMPLES / "inbox"


def demo_settings(folder: Path, **replace: str) -> Path:
    """The root settings.toml with state in ``folder`` and absolute example paths."""
    text = (ROOT / "settings.toml").read_text(encoding="utf-8")
    text = text.replace('path = "var"', f'path = "{folder / "var"}"')
    text = text.replace('"examples/', f'"{EXAMPLES}/')
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def mail2wo(settings: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--settings", str(settings), *args])


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    return demo_settings(tmp_path)


@pytest.fixture
def synced(settings: Path) -> list[dict[str, Any]]:
    result = mail2wo(settings, "sync", "--json")
    assert result.exit_code == 0, result.output
    return lines(result)


# the demo ----------------------------------------------------------------------
def test_demo_sync_gives_the_outcomes_listed_in_examples_readme(
    synced: list[dict[str, Any]],
) -> None:
    """The demo inbox gets exactly the outcomes examples/README.md promises."""
    by_file = {r["provider_id"]: r for r in synced}
    assert len(by_file) == len(list(INBOX.glob("*.eml")))
    assert Counter(r["outcome"] for r in synced) == {
        "created": 11,
        "appended": 3,
        "ignored": 2,
        "duplicate": 1,
        "no_configuration": 1,
        "customer_not_found": 1,
    }
    expected = {
        "01-iphone-storing-cv-ketel.eml": ("created", "2026-0001", "Storingen"),
        "07-re-delinde-aanvulling-lindelaan.eml": ("appended", "2026-0002", None),
        "16-iphone-vervolg-wo-token.eml": ("appended", "2026-0001", None),
        "19-english-reply-heat-pump.eml": ("appended", "2026-0009", None),
        "18-delinde-subdomein-storing-obj1001.eml": (
            "created",
            "2026-0011",
            "Woonstichting De Linde",
        ),
    }
    for name, (outcome, number, configuration) in expected.items():
        result = by_file[name]
        assert result["outcome"] == outcome, name
        assert result["workorder"]["WorkorderNo"] == number, name
        assert result["configuration"] == configuration, name
    assert by_file["07-re-delinde-aanvulling-lindelaan.eml"]["thread_signal"] == (
        "references"
    )
    assert by_file["16-iphone-vervolg-wo-token.eml"]["thread_signal"] == "subject_token"
    assert by_file["08-doorgestuurd-vve-zuiderpark.eml"]["customer_rule"] == (
        "forced_debtor_number"
    )


def test_sync_json_lines_have_the_documented_keys(
    synced: list[dict[str, Any]],
) -> None:
    """sync --json prints one object per mail with the keys of SPEC §15."""
    for line in synced:
        assert {
            "mailbox",
            "message_id",
            "outcome",
            "reason",
            "configuration",
            "customer_rule",
            "thread_signal",
            "workorder",
        } <= set(line)
        assert "trace" not in line
        if line["outcome"] in ("ignored", "no_configuration", "customer_not_found"):
            assert line["reason"]
    appended = next(r for r in synced if r["outcome"] == "appended")
    assert set(appended["workorder"]) == {"WorkorderNo", "note"}
    assert set(appended["workorder"]["note"]) == {"text", "attachments"}


def test_a_second_sync_finds_nothing_new(settings: Path, synced: object) -> None:
    """Every mail is recorded once; a second pass processes nothing."""
    again = mail2wo(settings, "sync", "--json")
    assert again.exit_code == 0
    assert lines(again) == []


def test_sync_summary_table_for_people(settings: Path) -> None:
    """Without --json, sync prints a summary table and a count line."""
    result = mail2wo(settings, "sync")
    assert result.exit_code == 0, result.output
    assert "created" in result.stdout
    assert "2026-0001" in result.stdout
    assert "19 mail(s)" in result.stdout


def test_appended_note_keeps_only_the_new_text(settings: Path, synced: object) -> None:
    """A follow-up note holds the new text, not the quoted Outlook block."""
    shown = mail2wo(settings, "workorders", "--json", "2026-0002")
    assert shown.exit_code == 0, shown.output
    (order,) = lines(shown)
    assert order["WorkorderNo"] == "2026-0002"
    (note,) = order["notes"]
    assert "Van:" not in note["text"]
    assert "Verzonden:" not in note["text"]


def test_workorders_lists_every_created_order(settings: Path, synced: object) -> None:
    """workorders --json lists each order with notes and attachments, no inline logo."""
    listed = mail2wo(settings, "workorders", "--json")
    orders = lines(listed)
    assert [o["WorkorderNo"] for o in orders] == [f"2026-{n:04d}" for n in range(1, 12)]
    for order in orders:
        assert "notes" in order
        assert "Attachments" in order
    school = next(o for o in orders if o["WorkorderNo"] == "2026-0005")
    names = [a["FileName"] for a in school["Attachments"]]
    assert "IMG_4821.jpg" in names
    assert not any(name.startswith("image001") for name in names)
    table = mail2wo(settings, "workorders")
    assert "2026-0011" in table.stdout


# drop and explain --------------------------------------------------------------
def test_drop_creates_once_then_reports_a_duplicate(settings: Path) -> None:
    """A dropped mail creates one order; dropping it again is a duplicate."""
    mail = INBOX / "13-english-heat-pump-repair.eml"
    first = mail2wo(settings, "drop", "--json", str(mail))
    assert first.exit_code == 0, first.output
    (line,) = lines(first)
    assert line["file"] == str(mail)
    assert line["outcome"] == "created"
    assert line["configuration"] == "Repair requests (English)"
    assert line["customer_rule"] == "FindOrAddRelationByEmail"
    assert line["workorder"]["WorkorderNo"] == "2026-0001"
    assert line["workorder"]["CustomerDebtorNr"] == "10009"
    second = mail2wo(settings, "drop", "--json", str(mail))
    assert lines(second)[0]["outcome"] == "duplicate"


def test_drop_does_not_count_toward_the_daily_limit(tmp_path: Path) -> None:
    """WorkOrder Drop is not held back by daily_limit."""
    settings = demo_settings(tmp_path, **{"daily_limit = 0": "daily_limit = 1"})
    result = mail2wo(
        settings,
        "drop",
        "--json",
        str(INBOX / "01-iphone-storing-cv-ketel.eml"),
        str(INBOX / "13-english-heat-pump-repair.eml"),
    )
    assert [r["outcome"] for r in lines(result)] == ["created", "created"]


def test_explain_shows_the_decisions_and_writes_nothing(tmp_path: Path) -> None:
    """explain reports the trace and the parsed mail and creates no state."""
    settings = demo_settings(tmp_path)
    mail = INBOX / "03-webformulier-storing-warmtepomp-obj1002.eml"
    result = mail2wo(settings, "explain", "--json", str(mail))
    assert result.exit_code == 0, result.output
    (data,) = lines(result)
    assert data["outcome"] == "created"
    assert data["configuration"] == "Webformulier"
    assert data["customer_rule"] == "SearchByObject"
    assert data["trace"] and all(isinstance(step, str) for step in data["trace"])
    parsed = data["mail"]
    assert set(parsed) >= {
        "message_id",
        "from",
        "from_name",
        "to",
        "cc",
        "reply_to",
        "subject",
        "date",
        "text",
        "reply",
        "attachments",
    }
    assert parsed["from"] == "noreply@formulier.klimaatservice-noord.nl"
    assert not (tmp_path / "var").exists()
    people = mail2wo(settings, "explain", str(mail))
    assert "Webformulier" in people.stdout
    assert not (tmp_path / "var").exists()


def test_explain_with_one_configuration(settings: Path) -> None:
    """explain --config tries only that configuration; an unknown name exits 2."""
    mail = INBOX / "01-iphone-storing-cv-ketel.eml"
    result = mail2wo(settings, "explain", "--json", "--config", "Onderhoud", str(mail))
    (data,) = lines(result)
    assert data["outcome"] == "no_configuration"
    unknown = mail2wo(settings, "explain", "--config", "Nope", str(mail))
    assert unknown.exit_code == 2
    assert "no configuration named 'Nope'" in unknown.stderr


def test_a_mail_that_cannot_be_read_fails_with_the_reason(
    settings: Path, tmp_path: Path
) -> None:
    """An empty file ends as failed with a reason, not a crash."""
    broken = tmp_path / "empty.eml"
    broken.write_bytes(b"")
    result = mail2wo(settings, "drop", "--json", str(broken))
    assert result.exit_code == 0, result.output
    (line,) = lines(result)
    assert line["outcome"] == "failed"
    assert line["reason"]


def test_garbage_bytes_never_crash(settings: Path, tmp_path: Path) -> None:
    """Arbitrary bytes give an outcome, never a traceback."""
    garbage = tmp_path / "garbage.eml"
    garbage.write_bytes(bytes(range(256)) * 20)
    result = mail2wo(settings, "drop", "--json", str(garbage))
    assert result.exit_code == 0, result.output
    assert lines(result)[0]["outcome"] in ("failed", "no_configuration", "ignored")


# bad input: one line, exit 2, nothing changed ------------------------------------
def _one_line_exit_2(result: Result) -> str:
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.count("\n") == 0, message
    return message


def test_a_missing_file_stops_the_drop_before_anything_is_written(
    settings: Path, tmp_path: Path
) -> None:
    """One missing file stops the whole drop before any write."""
    result = mail2wo(
        settings,
        "drop",
        str(INBOX / "01-iphone-storing-cv-ketel.eml"),
        str(tmp_path / "missing.eml"),
    )
    message = _one_line_exit_2(result)
    assert "missing.eml" in message
    assert "not found" in message
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("daily_limit = 0", "daily_limt = 0", ["daily_limt", "unknown setting"]),
        ("daily_limit = 0", "daily_limit = -1", ["daily_limit"]),
        ('timezone = "Europe/Amsterdam"', 'timezone = "Mars/Base"', ["Mars/Base"]),
        (
            'sender_type = "TitleContains"',
            'sender_type = "TitleHas"',
            ["sender_type", "configuration"],
        ),
        ('kind = "local"', 'kind = "excel"', ["target", "kind"]),
        ("[defaults]", "[defaults]\nNoSuchField = 'x'", ["NoSuchField"]),
    ],
)
def test_bad_settings_give_one_line_naming_the_place(
    tmp_path: Path, old: str, new: str, words: list[str]
) -> None:
    """A bad setting is one line naming file, place and problem, exit 2."""
    settings = demo_settings(tmp_path, **{old: new})
    message = _one_line_exit_2(mail2wo(settings, "sync"))
    assert str(settings) in message
    for word in words:
        assert word in message
    assert not (tmp_path / "var").exists()


def test_a_broken_regex_names_configuration_and_rule(tmp_path: Path) -> None:
    """A pattern that does not compile names its configuration and rule."""
    settings = demo_settings(tmp_path)
    text = settings.read_text(encoding="utf-8")
    text += (
        '\n[[configuration]]\nname = "Kapot"\nsender_type = "Any"\n'
        '[[configuration.regex_rule]]\nname = "broken"\npattern = "(unclosed"\n'
    )
    settings.write_text(text, encoding="utf-8")
    message = _one_line_exit_2(mail2wo(settings, "check"))
    assert "configuration 'Kapot'" in message
    assert "regex rule 'broken'" in message


def test_settings_that_are_not_toml(tmp_path: Path) -> None:
    """A file that is not TOML is one line, exit 2."""
    settings = tmp_path / "settings.toml"
    settings.write_text("timezone = \n", encoding="utf-8")
    message = _one_line_exit_2(mail2wo(settings, "sync"))
    assert "not valid TOML" in message


# check, logs, usage, relations ---------------------------------------------------
def test_check_passes_on_the_demo(settings: Path) -> None:
    """check finds nothing wrong with the bundled settings."""
    result = mail2wo(settings, "check", "--json")
    assert result.exit_code == 0, result.output
    findings = lines(result)
    assert {f["level"] for f in findings} <= {"ok", "warning"}
    assert any(f["place"] == "target relations" for f in findings)


def test_check_reports_unknown_parameters(tmp_path: Path) -> None:
    """check fails on a {parameter} that nothing provides."""
    settings = demo_settings(
        tmp_path,
        **{
            'ShortWorkDescription = "Storing: {subject}"': (
                'ShortWorkDescription = "Storing: {onderwerp}"'
            )
        },
    )
    result = mail2wo(settings, "check")
    assert result.exit_code == 2
    assert "{onderwerp}" in result.stdout


def test_check_warns_about_a_runaway_pattern(tmp_path: Path) -> None:
    """check warns about a pattern that runs past the time limit."""
    settings = demo_settings(tmp_path)
    text = settings.read_text(encoding="utf-8")
    text = text.replace(
        "max_new_per_sender_per_hour = 20",
        "regex_timeout_ms = 50\nmax_new_per_sender_per_hour = 20",
    )
    text += (
        '\n[[configuration]]\nname = "Traag"\nsender_type = "Any"\nactive = false\n'
        "[[configuration.regex_rule]]\nname = \"slow\"\npattern = '(a+)+$'\n"
    )
    settings.write_text(text, encoding="utf-8")
    result = mail2wo(settings, "check", "--json")
    warnings = [f for f in lines(result) if f["level"] == "warning"]
    assert any("regex rule 'slow'" in f["place"] for f in warnings)


def test_logs_filters_and_json_keys(settings: Path, synced: object) -> None:
    """logs filters by outcome, configuration, mailbox and date; JSON keys as §15."""
    everything = lines(mail2wo(settings, "logs", "--json"))
    assert len(everything) == 19
    keys = [
        "id",
        "time",
        "mode",
        "mailbox",
        "provider_id",
        "message_id",
        "from",
        "subject",
        "outcome",
        "reason",
        "configuration",
        "customer_rule",
        "thread_signal",
        "workorder_no",
        "duration_ms",
        "excerpt",
        "error",
    ]
    for entry in everything:
        assert list(entry) == keys
        assert not entry["message_id"].startswith("<")
        assert entry["mode"] == "conversations"
    created = lines(mail2wo(settings, "logs", "--json", "--outcome", "created"))
    assert len(created) == 11
    storingen = lines(
        mail2wo(settings, "logs", "--json", "--configuration", "Storingen")
    )
    assert {e["configuration"] for e in storingen} == {"Storingen"}
    assert lines(mail2wo(settings, "logs", "--json", "--mailbox", "other")) == []
    day = everything[0]["time"][:10]
    assert len(lines(mail2wo(settings, "logs", "--json", "--since", day))) >= 18
    assert lines(mail2wo(settings, "logs", "--json", "--until", "2000-01-01")) == []
    bad = mail2wo(settings, "logs", "--since", "yesterday")
    assert bad.exit_code == 2
    table = mail2wo(settings, "logs")
    assert "Processing log" in table.stdout


def test_usage_reports_the_counter(settings: Path, synced: object) -> None:
    """usage --json reports the counter, the limit and the waiting mail."""
    (data,) = lines(mail2wo(settings, "usage", "--json"))
    assert data["limit"] == 0
    assert data["used"] >= 11
    assert data["waiting"] == 0


def test_relations_import_fills_the_directory(tmp_path: Path) -> None:
    """An imported relation is found by the next mail from its address."""
    settings = demo_settings(tmp_path)
    extra = tmp_path / "relations-extra.csv"
    extra.write_text(
        "debtor_number,name,contact,phone_number,email,email_workorder,street,"
        "house_number,postal_code,city,remark\n"
        "20001,Peter Smit,Peter Smit,,petersmit1971@hotmail.com,,Kerkstraat,1,"
        "9711 AA,Groningen,\n",
        encoding="utf-8",
    )
    imported = mail2wo(settings, "relations", "import", str(extra))
    assert imported.exit_code == 0, imported.output
    assert "1 relations imported" in imported.stdout
    mail = INBOX / "15-storing-onbekende-afzender.eml"
    (line,) = lines(mail2wo(settings, "drop", "--json", str(mail)))
    assert line["outcome"] == "created"
    assert line["workorder"]["CustomerDebtorNr"] == "20001"


def test_relations_import_of_a_bad_file(tmp_path: Path) -> None:
    """A directory CSV without its key column is one line, exit 2."""
    settings = demo_settings(tmp_path)
    bad = tmp_path / "relations.csv"
    bad.write_text("name,city\nX,Y\n", encoding="utf-8")
    message = _one_line_exit_2(mail2wo(settings, "relations", "import", str(bad)))
    assert "relations.csv" in message


def test_the_installed_command_runs(tmp_path: Path) -> None:
    """The console script, start-up included, on one ordinary mail."""
    settings = demo_settings(tmp_path)
    script = Path(sys.executable).with_name("mail2wo")
    command = [str(script)] if script.exists() else [shutil.which("mail2wo") or ""]
    done = subprocess.run(
        [
            *command,
            "--settings",
            str(settings),
            "drop",
            "--json",
            str(INBOX / "12-tandarts-onderhoud-html-only.eml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "created"


def test_drop_of_a_folder_takes_its_eml_files_in_name_order(
    settings: Path, tmp_path: Path
) -> None:
    """A folder given to drop stands for its .eml files, in name order."""
    folder = tmp_path / "handed-over"
    folder.mkdir()
    for name in ("13-english-heat-pump-repair.eml", "19-english-reply-heat-pump.eml"):
        shutil.copy(INBOX / name, folder / name)
    (folder / "notes.txt").write_text("not a mail", encoding="utf-8")
    result = mail2wo(settings, "drop", "--json", str(folder))
    assert [r["outcome"] for r in lines(result)] == ["created", "appended"]
    empty = tmp_path / "empty"
    empty.mkdir()
    message = _one_line_exit_2(mail2wo(settings, "drop", str(empty)))
    assert "no .eml files" in message
