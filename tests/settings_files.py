"""Temporary ``settings.toml`` files and mails for end-to-end command tests.

The settings hold one configuration, ``Storingen``: every mail whose subject
contains "storing" becomes a work order for Bakkerij Bolhuis (debtor 10003
of the example relation directory), so a test needs no matching set-up.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from tests.fakes.google import FakeGoogle
from tests.fakes.microsoft import CLIENT_ID, TENANT_ID, USER, FakeMicrosoft

__all__ = [
    "GRAPH_SECRET_ENV",
    "folder_mailbox",
    "gmail_mailbox",
    "graph_mailbox",
    "lines",
    "service_mail",
    "write_client_secrets",
    "write_settings",
]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GRAPH_SECRET_ENV = "MAIL2WO_TEST_GRAPH_SECRET"


def write_settings(folder: Path, *mailboxes: str, daily_limit: int = 0) -> Path:
    """``folder/settings.toml`` with state in ``folder/var`` and these mailboxes."""
    text = f"""
timezone = "Europe/Amsterdam"
daily_limit = {daily_limit}

[state]
path = {json.dumps(str(folder / "var"))}

[target]
kind = "local"
relations = {json.dumps(str(EXAMPLES / "relations.csv"))}

{"".join(mailboxes)}
[[configuration]]
name = "Storingen"
sender_type = "TitleContains"
sender_value = "storing"
forced_debtor_number = "10003"

[configuration.forced_values]
ShortWorkDescription = "Storing: {{subject}}"
"""
    path = folder / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def folder_mailbox(name: str, path: Path, *, poll_seconds: int = 60) -> str:
    """A ``[[mailbox]]`` table for a folder of .eml files."""
    return f"""
[[mailbox]]
name = "{name}"
kind = "folder"
path = {json.dumps(str(path))}
poll_seconds = {poll_seconds}
"""


def graph_mailbox(fake: FakeMicrosoft, name: str = "service") -> str:
    """A client-credentials Graph mailbox on the fake; the secret comes from
    :data:`GRAPH_SECRET_ENV` and the fake's certificate from REQUESTS_CA_BUNDLE."""
    return f"""
[[mailbox]]
name = "{name}"
kind = "graph"
auth = "client_credentials"
tenant_id = "{TENANT_ID}"
client_id = "{CLIENT_ID}"
client_secret_env = "{GRAPH_SECRET_ENV}"
user = "{USER}"
folder = "Inbox"
authority = "{fake.authority}"
api_base = "{fake.api_base}"
"""


def gmail_mailbox(
    fake: FakeGoogle, client_secrets: Path | None = None, name: str = "gmail"
) -> str:
    """An installed-app Gmail mailbox on the fake."""
    secrets = client_secrets or Path("secrets/google-client.json")
    return f"""
[[mailbox]]
name = "{name}"
kind = "gmail"
auth = "installed_app"
client_secrets_file = {json.dumps(str(secrets))}
user = "me"
label = "INBOX"
api_base = "{fake.api_base}"
token_uri = "{fake.token_uri}"
"""


def write_client_secrets(fake: FakeGoogle, path: Path) -> Path:
    """The Desktop-app client file Google Cloud hands out, aimed at the fake."""
    config = {
        "installed": {
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "auth_uri": fake.auth_uri,
            "token_uri": fake.token_uri,
            "redirect_uris": ["http://localhost"],
        }
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def service_mail(
    number: int,
    *,
    subject: str | None = None,
    sender: str | None = None,
    date: str | None = None,
    body: str | None = None,
) -> bytes:
    """A plain mail without In-Reply-To or References, unique per ``number``."""
    stamp = date or format_datetime(datetime.now(UTC))
    return (
        f"From: Klant {number} <{sender or f'klant{number}@example.nl'}>\r\n"
        "To: service@klimaatservice-noord.nl\r\n"
        f"Subject: {subject or f'Storing cv-ketel {number}'}\r\n"
        f"Message-ID: <e2e-{number}@example.nl>\r\n"
        f"Date: {stamp}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body or f'De ketel geeft storing {number}.'}\r\n"
    ).encode()


def lines(output: str) -> list[dict[str, object]]:
    """The JSON Lines a ``--json`` command printed."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]
