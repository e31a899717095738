"""Security: file names, size caps, secret files, quiet logs, subject tokens."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from connector.attachments import safe_filename
from connector.cli import cli
from tests.fakes.google import FakeGoogle, write_token_file
from tests.fakes.microsoft import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT_ID,
    USER,
    FakeMicrosoft,
)
from tests.kill_harness import mail2wo_command

RELATIONS = (
    "debtor_number,name,contact,phone_number,email,email_workorder,street,"
    "house_number,postal_code,city,remark\n"
    "10001,Woonstichting De Linde,Renske,050-1,werkorders@delinde.nl,"
    "werkorders@delinde.nl,Zuiderdiep,120,9711 HM,Groningen,\n"
)

SETTINGS = """\
max_new_per_sender_per_hour = 0
max_mail_mb = {max_mail_mb}

[state]
path = "{state}"

[target]
kind = "local"
relations = "{relations}"

{mailbox}

[[configuration]]
name = "Alles"
sender_type = "Any"
parse_attachments = true
customer_rules = ["FindOrAddRelationByEmail"]

[[configuration.regex_rule]]
name = "customer_name"
pattern = 'Naam:\\s*(.+)'

[[configuration.regex_rule]]
name = "customer_street"
pattern = 'Adres:\\s*(.+)'

[[configuration.regex_rule]]
name = "customer_postal_code"
pattern = 'Postcode:\\s*(.+)'

[[configuration.regex_rule]]
name = "customer_city"
pattern = 'Plaats:\\s*(.+)'

[configuration.options]
max_attachment_mb = {max_attachment_mb}
"""

BODY = (
    "De cv-ketel lekt.\n\nNaam: J. de Vries\nAdres: Kastanjelaan 8\n"
    "Postcode: 9741 KJ\nPlaats: Groningen\n"
)


def write_settings(
    folder: Path,
    *,
    mailbox: str = "",
    max_mail_mb: float = 50,
    max_attachment_mb: float = 25,
) -> Path:
    relations = folder / "relations.csv"
    relations.write_text(RELATIONS)
    if not mailbox:
        (folder / "inbox").mkdir(exist_ok=True)
        mailbox = (
            f'[[mailbox]]\nname = "inbox"\nkind = "folder"\npath = "{folder / "inbox"}"'
        )
    path = folder / "settings.toml"
    path.write_text(
        SETTINGS.format(
            state=folder / "var",
            relations=relations,
            mailbox=mailbox,
            max_mail_mb=max_mail_mb,
            max_attachment_mb=max_attachment_mb,
        )
    )
    return path


def mail2wo(settings: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--settings", str(settings), *args], env=env)


def lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def message(
    number: int,
    *,
    sender: str = "j.devries@example.nl",
    subject: str = "Storing",
    body: str = BODY,
    files: dict[str, bytes] | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "service@example.com"
    mail["Subject"] = subject
    mail["Message-ID"] = f"<sec-{number}@example.nl>"
    mail.set_content(body)
    for name, data in (files or {}).items():
        mail.add_attachment(
            data, maintype="application", subtype="octet-stream", filename=name
        )
    return mail.as_bytes()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- attachment file names ---------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("/etc/cron.d/evil", "evil"),
        ("..", "fallback.bin"),
        ("...", "fallback.bin"),
        ("", "fallback.bin"),
        ("dir/", "fallback.bin"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Com1.pdf", "_Com1.pdf"),
        ("LPT9", "_LPT9"),
        ("nul.tar.gz", "_nul.tar.gz"),
        ("rapport\x00.pdf", "rapport_.pdf"),
        ("a<b>c:d|e?f*g.txt", "a_b_c_d_e_f_g.txt"),
        (".bashrc", "bashrc"),
        ("factuur.pdf.", "factuur.pdf"),
    ],
)
def test_safe_filename_strips_paths_and_reserved_names(
    given_name: str, expected: str
) -> None:
    """Traversal, Windows device names and control characters are defused."""
    assert safe_filename(given_name, "fallback.bin") == expected


@hypothesis_settings(derandomize=True, database=None, max_examples=300)
@given(name=st.text(max_size=300))
@example(name="../" * 100 + "x")
@example(name="a" * 500 + ".pdf")
def test_safe_filename_always_stays_in_its_folder(name: str) -> None:
    """Any name: one non-empty path part, no control characters, at most 180."""
    safe = safe_filename(name, "fallback.bin")

    assert safe
    assert safe not in (".", "..")
    assert "/" not in safe and "\\" not in safe
    assert not any(ord(c) < 32 or ord(c) == 127 for c in safe)
    assert len(safe) <= 180
    folder = Path("/srv/attachments/2026-0001")
    assert (folder / safe).resolve().parent == folder
    assert safe.split(".", 1)[0].lower() not in ("con", "prn", "aux", "nul")


def test_hostile_attachment_names_are_saved_inside_the_work_order_folder(
    tmp_path: Path,
) -> None:
    """A drop with traversal names writes only below the work order's folder."""
    settings = write_settings(tmp_path)
    mail = tmp_path / "evil.eml"
    mail.write_bytes(
        message(
            1,
            files={
                "../../../../evil.sh": b"#!/bin/sh\n",
                "..\\..\\boot.ini": b"[boot]",
                "CON.txt": b"device",
            },
        )
    )

    (line,) = lines(mail2wo(settings, "drop", "--json", str(mail)))

    assert line["outcome"] == "created"
    assert sorted(line["workorder"]["Attachments"]) == [
        "_CON.txt",
        "boot.ini",
        "evil.sh",
    ]
    folder = tmp_path / "var" / "local" / "attachments" / "2026-0001"
    assert sorted(p.name for p in folder.iterdir()) == [
        "_CON.txt",
        "boot.ini",
        "evil.sh",
    ]
    assert not (tmp_path / "evil.sh").exists()
    assert not (tmp_path / "var" / "evil.sh").exists()


# -- size caps --------------------------------------------------------------------


def test_attachment_over_max_attachment_mb_is_skipped_with_a_warning(
    tmp_path: Path,
) -> None:
    """``options.max_attachment_mb`` keeps big files off the work order."""
    settings = write_settings(tmp_path, max_attachment_mb=0.01)
    mail = tmp_path / "big.eml"
    mail.write_bytes(
        message(1, files={"klein.txt": b"x" * 1000, "groot.bin": b"y" * 20_000})
    )

    (line,) = lines(mail2wo(settings, "drop", "--json", str(mail)))
    (entry,) = lines(mail2wo(settings, "logs", "--json"))

    assert line["workorder"]["Attachments"] == ["klein.txt"]
    assert any("groot.bin" in w and "limit" in w for w in line["warnings"])
    archived = list((tmp_path / "var" / "archive").rglob("*.eml"))
    assert [p.read_bytes() for p in archived] == [mail.read_bytes()]
    assert entry["outcome"] == "created"


def test_mail_over_max_mail_mb_is_quarantined_unread_and_never_blocks(
    tmp_path: Path,
) -> None:
    """``max_mail_mb``: a huge mail is archived and quarantined, the rest goes on."""
    settings = write_settings(tmp_path, max_mail_mb=0.05)
    inbox = tmp_path / "inbox"
    (inbox / "01.eml").write_bytes(message(1))
    (inbox / "02.eml").write_bytes(message(2, body=BODY + "z" * 80_000))
    (inbox / "03.eml").write_bytes(message(3, sender="k.jansen@example.nl"))

    first = lines(mail2wo(settings, "sync", "--json"))
    second = lines(mail2wo(settings, "sync", "--json"))

    assert [(r["provider_id"], r["outcome"]) for r in first] == [
        ("01.eml", "created"),
        ("02.eml", "quarantined"),
        ("03.eml", "created"),
    ]
    assert "max_mail_mb" in first[1]["reason"]
    assert first[1]["message_id"] == "sec-2@example.nl"
    assert second == []
    archived = {p.read_bytes() for p in (tmp_path / "var" / "archive").rglob("*.eml")}
    assert (inbox / "02.eml").read_bytes() in archived
    logged = lines(mail2wo(settings, "logs", "--json"))
    assert [e["outcome"] for e in logged if e["provider_id"] == "02.eml"] == [
        "quarantined"
    ]


def test_mail_over_max_mail_mb_dropped_by_hand_fails_with_the_reason(
    tmp_path: Path,
) -> None:
    """WorkOrder Drop of a huge mail: outcome failed, reason names the setting."""
    settings = write_settings(tmp_path, max_mail_mb=0.05)
    big = tmp_path / "big.eml"
    big.write_bytes(message(2, body=BODY + "z" * 80_000))

    (line,) = lines(mail2wo(settings, "drop", "--json", str(big)))

    assert line["outcome"] == "failed"
    assert "max_mail_mb" in line["reason"]
    assert line["workorder"] is None


# -- secret files and token caches -------------------------------------------


@pytest.fixture
def microsoft() -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft() as fake:
        yield fake


def graph_mailbox(fake: FakeMicrosoft, secret_line: str) -> str:
    return (
        '[[mailbox]]\nname = "service"\nkind = "graph"\n'
        f'tenant_id = "{TENANT_ID}"\nclient_id = "{CLIENT_ID}"\n{secret_line}\n'
        f'user = "{USER}"\nauthority = "{fake.authority}"\n'
        f'api_base = "{fake.api_base}"\nsince = "2020-01-01"\n'
    )


def graph_env(fake: FakeMicrosoft) -> dict[str, str]:
    return {
        "MAIL2WO_GRAPH_SECRET": CLIENT_SECRET,
        "REQUESTS_CA_BUNDLE": str(fake.server.ca_path),
    }


def test_graph_token_cache_is_created_owner_only(
    tmp_path: Path, microsoft: FakeMicrosoft
) -> None:
    """The msal token cache a sync writes is mode 0600, and so is the archive."""
    microsoft.graph.deliver(USER, message(1))
    settings = write_settings(
        tmp_path,
        mailbox=graph_mailbox(microsoft, 'client_secret_env = "MAIL2WO_GRAPH_SECRET"'),
    )

    result = mail2wo(settings, "sync", "--json", env=graph_env(microsoft))

    assert [r["outcome"] for r in lines(result)] == ["created"]
    cache = tmp_path / "var" / "tokens" / "service.graph.json"
    assert mode_of(cache) == 0o600
    for archived in (tmp_path / "var" / "archive").rglob("*.eml"):
        assert mode_of(archived) == 0o600


def test_group_readable_graph_token_cache_is_refused(
    tmp_path: Path, microsoft: FakeMicrosoft
) -> None:
    """A token cache others may read stops that mailbox with one clear line."""
    settings = write_settings(
        tmp_path,
        mailbox=graph_mailbox(microsoft, 'client_secret_env = "MAIL2WO_GRAPH_SECRET"'),
    )
    cache = tmp_path / "var" / "tokens" / "service.graph.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{}")
    cache.chmod(0o640)

    result = mail2wo(settings, "sync", env=graph_env(microsoft))

    assert result.exit_code == 1
    assert "refusing the token cache" in result.stdout
    assert "chmod 600" in result.stdout
    assert microsoft.token_requests() == []


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640])
def test_world_or_group_readable_client_secret_file_is_refused(
    tmp_path: Path, microsoft: FakeMicrosoft, mode: int
) -> None:
    """``client_secret_file`` readable by others: the mailbox is refused, no crash."""
    secret = tmp_path / "graph-secret.txt"
    secret.write_text(CLIENT_SECRET)
    secret.chmod(mode)
    settings = write_settings(
        tmp_path,
        mailbox=graph_mailbox(microsoft, f'client_secret_file = "{secret}"'),
    )

    result = mail2wo(settings, "sync", env=graph_env(microsoft))

    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"mode {mode:o} lets others read it" in result.stdout
    assert microsoft.token_requests() == []


def test_owner_only_client_secret_file_is_used(
    tmp_path: Path, microsoft: FakeMicrosoft
) -> None:
    """The same file with mode 0600 connects."""
    microsoft.graph.deliver(USER, message(1))
    secret = tmp_path / "graph-secret.txt"
    secret.write_text(CLIENT_SECRET + "\n")
    secret.chmod(0o600)
    settings = write_settings(
        tmp_path,
        mailbox=graph_mailbox(microsoft, f'client_secret_file = "{secret}"'),
    )

    result = mail2wo(settings, "sync", "--json", env=graph_env(microsoft))

    assert [r["outcome"] for r in lines(result)] == ["created"]


def gmail_mailbox(fake: FakeGoogle) -> str:
    return (
        '[[mailbox]]\nname = "gmail"\nkind = "gmail"\nuser = "me"\n'
        f'api_base = "{fake.api_base}"\ntoken_uri = "{fake.token_uri}"\n'
        'since = "2020-01-01"\n'
    )


def test_gmail_token_file_is_rewritten_owner_only(tmp_path: Path) -> None:
    """A refreshed Gmail token is saved at once with mode 0600."""
    with FakeGoogle(rotate_refresh_tokens=True) as fake:
        token = tmp_path / "var" / "tokens" / "gmail.gmail.json"
        first_refresh = write_token_file(fake, token)
        fake.deliver(message(1))
        settings = write_settings(tmp_path, mailbox=gmail_mailbox(fake))

        result = mail2wo(settings, "sync", "--json")

    assert [r["outcome"] for r in lines(result)] == ["created"]
    assert mode_of(token) == 0o600
    saved = json.loads(token.read_text())
    assert saved["refresh_token"] != first_refresh


def test_group_readable_gmail_token_file_is_refused(tmp_path: Path) -> None:
    """A Gmail token file with mode 0644 is not used: one clear line, exit 1."""
    with FakeGoogle() as fake:
        token = tmp_path / "var" / "tokens" / "gmail.gmail.json"
        write_token_file(fake, token, mode=0o644)
        settings = write_settings(tmp_path, mailbox=gmail_mailbox(fake))

        result = mail2wo(settings, "sync")
        requests = fake.requests

    assert result.exit_code == 1
    assert "lets others read it" in result.stdout
    assert requests == 0


# -- nothing secret in the log ---------------------------------------------------

SECRET_BODY = "Geheime toegangscode 7731-ALFA voor de meterkast"


def run_verbose(settings: Path, env: dict[str, str], *flags: str) -> str:
    """``mail2wo FLAGS sync`` as a subprocess; returns its log (stderr)."""
    done = subprocess.run(
        [*mail2wo_command(), *flags, "--settings", str(settings), "sync"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def assert_no_secrets(log: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in log, f"{secret[:12]}… appears in the log"
    for marker in ("fake-at-", "fake-rt-", "fake-user-at-", "ya29.", "1//fake"):
        assert marker not in log, f"a token ({marker}…) appears in the log"
    assert "Authorization: Bearer" not in log


def test_info_log_of_a_graph_sync_has_outcomes_but_no_tokens_or_bodies(
    tmp_path: Path, microsoft: FakeMicrosoft
) -> None:
    """``-v``: one line per mail with its outcome; no secret, token or body."""
    microsoft.graph.deliver(USER, message(1, body=BODY + SECRET_BODY))
    settings = write_settings(
        tmp_path,
        mailbox=graph_mailbox(microsoft, 'client_secret_env = "MAIL2WO_GRAPH_SECRET"'),
    )

    log = run_verbose(settings, graph_env(microsoft), "-v")

    assert "INFO" in log
    assert "created 2026-0001" in log
    assert SECRET_BODY not in log
    assert "cv-ketel" not in log
    assert_no_secrets(log, CLIENT_SECRET, *microsoft.entra.access_tokens)


def test_debug_log_of_a_graph_sync_has_no_tokens(
    tmp_path: Path, microsoft: FakeMicrosoft
) -> None:
    """``-vv``: decisions in detail, still no secret and no token."""
    microsoft.graph.deliver(USER, message(1))
    settings = write_settings(
        tmp_path,
        mailbox=graph_mailbox(microsoft, 'client_secret_env = "MAIL2WO_GRAPH_SECRET"'),
    )

    log = run_verbose(settings, graph_env(microsoft), "-vv")

    assert "DEBUG" in log
    assert_no_secrets(log, CLIENT_SECRET, *microsoft.entra.access_tokens)


def test_info_log_of_a_gmail_sync_has_no_tokens_or_bodies(tmp_path: Path) -> None:
    """``-v`` on Gmail, with a rotated refresh token: nothing secret logged."""
    with FakeGoogle(rotate_refresh_tokens=True) as fake:
        token = tmp_path / "var" / "tokens" / "gmail.gmail.json"
        refresh = write_token_file(fake, token)
        fake.deliver(message(1, body=BODY + SECRET_BODY))
        settings = write_settings(tmp_path, mailbox=gmail_mailbox(fake))

        log = run_verbose(settings, {}, "-v")
        saved = json.loads(token.read_text())

    assert "created 2026-0001" in log
    assert SECRET_BODY not in log
    assert_no_secrets(
        log, refresh, saved["refresh_token"], fake.client_secret, saved["token"]
    )


# -- subject-token threading -------------------------------------------------------


def test_subject_token_from_a_stranger_makes_a_new_work_order(tmp_path: Path) -> None:
    """Quoting ``[WO 2026-0001]`` without taking part gives no note on it."""
    settings = write_settings(tmp_path)
    first = tmp_path / "first.eml"
    first.write_bytes(message(1))
    stranger = tmp_path / "stranger.eml"
    stranger.write_bytes(
        message(
            2,
            sender="onbekend@elders.example",
            subject="Re: [WO 2026-0001] ik wil ook iets",
            body=BODY.replace("J. de Vries", "P. Onbekend"),
        )
    )

    lines(mail2wo(settings, "drop", "--json", str(first)))
    explained = lines(mail2wo(settings, "explain", "--json", str(stranger)))
    (line,) = lines(mail2wo(settings, "drop", "--json", str(stranger)))

    assert line["outcome"] == "created"
    assert line["workorder"]["WorkorderNo"] == "2026-0002"
    assert line["thread_signal"] is None
    (order,) = lines(mail2wo(settings, "workorders", "--json", "2026-0001"))
    assert order["notes"] == []
    assert any("took no part" in step for step in explained[0]["trace"])


def test_subject_token_from_a_participant_adds_a_note(tmp_path: Path) -> None:
    """The sender of the first mail, any case, may follow up by subject token."""
    settings = write_settings(tmp_path)
    first = tmp_path / "first.eml"
    first.write_bytes(message(1))
    follow = tmp_path / "follow.eml"
    follow.write_bytes(
        message(2, sender="J.DeVries@Example.NL", subject="Vraag [WO 2026-0001]")
    )

    lines(mail2wo(settings, "drop", "--json", str(first)))
    (line,) = lines(mail2wo(settings, "drop", "--json", str(follow)))

    assert line["outcome"] == "appended"
    assert line["thread_signal"] == "subject_token"
    assert line["workorder"]["WorkorderNo"] == "2026-0001"


def test_subject_token_for_an_unknown_work_order_makes_a_new_one(
    tmp_path: Path,
) -> None:
    """A token naming no existing work order is ignored; the mail is new work."""
    settings = write_settings(tmp_path)
    mail = tmp_path / "unknown.eml"
    mail.write_bytes(message(1, subject="Storing [WO 2026-0999]"))

    (line,) = lines(mail2wo(settings, "drop", "--json", str(mail)))

    assert line["outcome"] == "created"
    assert line["workorder"]["WorkorderNo"] == "2026-0001"


def test_subject_token_with_a_path_names_no_work_order(tmp_path: Path) -> None:
    """``[WO ../../x]`` cannot reach outside the store: a new work order."""
    settings = write_settings(tmp_path)
    mail = tmp_path / "path.eml"
    mail.write_bytes(message(1, subject="Storing [WO 2026/../../../etc]"))

    (line,) = lines(mail2wo(settings, "drop", "--json", str(mail)))

    assert line["outcome"] == "created"
    assert not (tmp_path / "etc").exists()
