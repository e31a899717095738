"""``mail2wo check``: what is wrong or doubtful in the settings, before a sync.

Loading the settings already refuses unknown keys, unknown work-order fields
and regex rules that do not compile. These checks add what needs the whole
picture: parameters that nothing provides, patterns that run away on
hostile input, directory files, secrets and, with ``--online``, whether the
target and the mailboxes answer. Nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from connector import app
from connector.directory import Address, ContactPerson, Relation, WorkObject, read_csv
from connector.settings import Configuration, Mailbox, Settings
from connector.templates import unknown_tokens
from providers.errors import Mail2woError

__all__ = ["Finding", "run_checks"]

#: Input that makes backtracking patterns blow up, tried with the time limit.
_HOSTILE = ("a" * 5000 + "!", "1" * 5000 + "x", " " * 5000 + "x", "\n" * 2000 + "x")


@dataclass(frozen=True)
class Finding:
    """One line of the check report."""

    level: str  # ok | warning | error
    place: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"level": self.level, "place": self.place, "message": self.message}


def run_checks(settings: Settings, *, online: bool = False) -> list[Finding]:
    """Every finding, in settings order."""
    findings = [
        Finding(
            "ok",
            str(settings.source),
            f"{len(settings.mailbox)} mailbox(es), "
            f"{len(settings.configuration)} configuration(s), "
            f"target {settings.target.kind}",
        )
    ]
    for configuration in settings.configuration:
        findings.extend(_check_configuration(settings, configuration))
    findings.extend(_check_directory(settings))
    for mailbox in settings.mailbox:
        findings.extend(_check_mailbox(settings, mailbox))
    if online:
        findings.extend(_check_online(settings))
    return findings


def _check_configuration(
    settings: Settings, configuration: Configuration
) -> list[Finding]:
    place = f"configuration '{configuration.name}'"
    found: list[Finding] = []
    known = [rule.name for rule in configuration.regex_rule]
    templates = {**settings.defaults, **configuration.forced_values}
    for field_name, template in templates.items():
        for token in unknown_tokens(template, known):
            found.append(
                Finding(
                    "error",
                    f"{place} forced_values {field_name}",
                    f"unknown parameter {{{token}}} (no built-in parameter or "
                    "regex rule has that name)",
                )
            )
    timeout = settings.regex_timeout_ms / 1000
    for rule in configuration.regex_rule:
        pattern = rule.compiled
        for sample in _HOSTILE:
            try:
                pattern.search(sample, timeout=timeout)
            except TimeoutError:
                found.append(
                    Finding(
                        "warning",
                        f"{place} regex rule '{rule.name}'",
                        f"pattern runs past {settings.regex_timeout_ms} ms on "
                        "repetitive input; it will be stopped then and its "
                        "value left empty",
                    )
                )
                break
    if not configuration.active:
        found.append(Finding("ok", place, "inactive: never used"))
    elif not found:
        found.append(Finding("ok", place, f"{configuration.sender_type} rule is valid"))
    return found


def _check_directory(settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    kinds: dict[str, type[Any]] = {
        "relations": Relation,
        "addresses": Address,
        "contactpersons": ContactPerson,
        "objects": WorkObject,
    }
    for kind, path in app.local_files(settings).items():
        if path is None:
            continue
        place = f"target {kind}"
        if not path.exists():
            found.append(Finding("warning", place, f"{path} does not exist"))
            continue
        try:
            records = read_csv(path, kinds[kind])
        except Mail2woError as exc:
            found.append(Finding("error", place, str(exc)))
            continue
        found.append(Finding("ok", place, f"{len(records)} {kind} in {path.name}"))
    return found


def _check_mailbox(settings: Settings, mailbox: Mailbox) -> list[Finding]:
    place = f"mailbox '{mailbox.name}'"
    if not mailbox.enabled:
        return [Finding("ok", place, "disabled")]
    if mailbox.kind == "folder":
        assert mailbox.path is not None  # Defensive: the model requires it
        path = settings.resolve(mailbox.path)
        if not path.is_dir():
            return [Finding("error", place, f"folder {path} does not exist")]
        return [Finding("ok", place, f"folder {path}")]
    if mailbox.kind == "graph":
        auth = mailbox.auth or "client_credentials"
        if (
            auth == "client_credentials"
            and mailbox.certificate_file is None
            and mailbox.client_secret_file is None
        ):
            variable = mailbox.client_secret_env
            if not variable:
                return [
                    Finding(
                        "error",
                        place,
                        "client_credentials needs client_secret_env, "
                        "client_secret_file or certificate_file",
                    )
                ]
            if not os.environ.get(variable):
                return [
                    Finding(
                        "error", place, f"environment variable {variable} is not set"
                    )
                ]
        if auth == "device_code" and not app.token_path(settings, mailbox).exists():
            return [
                Finding(
                    "warning",
                    place,
                    f"not connected: run mail2wo connect {mailbox.name}",
                )
            ]
        return [Finding("ok", place, f"graph {mailbox.user} ({auth})")]
    auth = mailbox.auth or "installed_app"
    if auth == "installed_app" and not app.token_path(settings, mailbox).exists():
        return [
            Finding(
                "warning", place, f"not connected: run mail2wo connect {mailbox.name}"
            )
        ]
    if auth == "service_account" and mailbox.service_account_file is None:
        return [Finding("error", place, "service_account needs service_account_file")]
    return [Finding("ok", place, f"gmail {mailbox.user or 'me'} ({auth})")]


def _check_online(settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    place = f"target {settings.target.kind}"
    try:
        if settings.target.kind == "local":
            found.append(Finding("ok", place, "embedded; nothing to reach"))
        else:
            target = app.build_target(settings)
            try:
                found.append(Finding("ok", place, target.check_online()))
            finally:
                target.close()
    except Mail2woError as exc:
        found.append(Finding("error", place, str(exc)))
    for mailbox in settings.mailbox:
        if not mailbox.enabled:
            continue
        where = f"mailbox '{mailbox.name}'"
        try:
            provider = app.build_provider(settings, mailbox)
            try:
                subjects = provider.newest_subjects(3)
            finally:
                provider.close()
        except Mail2woError as exc:
            found.append(Finding("error", where, str(exc)))
            continue
        shown = "; ".join(repr(s) for s in subjects) or "no mail"
        found.append(Finding("ok", where, f"answers; newest: {shown}"))
    return found
