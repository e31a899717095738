"""Assembling the parts named in ``settings.toml``, and one sync pass.

Everything here is wiring: which store, which target, which provider for a
mailbox, and the loop that hands fetched mail to the :class:`Processor` and
saves a mailbox cursor only after every mail of the page is recorded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.decide import Delivery, Outcome
from connector.pipeline import Processor, Result
from connector.settings import Mailbox, Settings, secret_from_env
from connector.targets.base import Target
from connector.targets.local import LocalTarget
from providers.base import Provider
from providers.errors import AuthError, Mail2woError, SettingsError
from state.base import MailRecord, StateStore
from state.files import read_private
from state.tinydb_store import StateLocked, TinyDBStateStore

__all__ = [
    "MailboxReport",
    "Workspace",
    "build_provider",
    "build_target",
    "due_for_retry",
    "open_workspace",
    "sync_mailbox",
]

logger = logging.getLogger("mail2wo")

#: Outcomes after which a post-action may run: the mail is durably recorded.
_RECORDED = {
    Outcome.CREATED,
    Outcome.APPENDED,
    Outcome.NO_CONFIGURATION,
    Outcome.CUSTOMER_NOT_FOUND,
    Outcome.IGNORED,
    Outcome.DUPLICATE,
}


def now_utc() -> datetime:
    """The current time (tests may set ``MAIL2WO_NOW`` to an ISO time)."""
    fixed = os.environ.get("MAIL2WO_NOW")
    if fixed:
        moment = datetime.fromisoformat(fixed)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


def local_files(settings: Settings) -> dict[str, Path | None]:
    """The relation directory CSV files of the target, made absolute."""
    target = settings.target
    return {
        kind: settings.resolve(path) if path is not None else None
        for kind, path in (
            ("relations", target.relations),
            ("addresses", target.addresses),
            ("contactpersons", target.contactpersons),
            ("objects", target.objects),
        )
    }


def build_target(settings: Settings) -> Target:
    """The target named in ``[target]``."""
    target = settings.target
    if target.kind == "outsmart":
        from connector.targets.outsmart import OutSmartTarget

        return OutSmartTarget(
            target.base_url,
            os.environ.get(target.token_env, ""),
            os.environ.get(target.software_token_env, ""),
            token_env=target.token_env,
            software_token_env=target.software_token_env,
        )

    local = LocalTarget(settings.state_dir / "local", local_files(settings))
    if target.kind == "local":
        return local

    from connector.targets.webhook import WebhookTarget

    directory = local.load_directory()
    local.close()
    secret = secret_from_env(target.secret_env, f"{settings.source}: target webhook")
    return WebhookTarget(
        target.url,
        secret.encode(),
        directory=directory,
        secret_env=target.secret_env,
    )


def own_addresses(settings: Settings) -> set[str]:
    """Addresses of the connected mailboxes: mail from them is never new work."""
    return {m.user.lower() for m in settings.mailbox if "@" in m.user}


def _since(settings: Settings, mailbox: Mailbox) -> datetime | None:
    if mailbox.since is None:
        return None
    since = mailbox.since
    return since if since.tzinfo else since.replace(tzinfo=settings.zone)


def token_path(settings: Settings, mailbox: Mailbox) -> Path:
    """Where a mailbox's OAuth grant or token cache is kept (owner-only)."""
    return settings.state_dir / "tokens" / f"{mailbox.name}.{mailbox.kind}.json"


def build_provider(
    settings: Settings,
    mailbox: Mailbox,
    store: StateStore | None = None,
    *,
    device_flow_callback: Callable[[dict[str, Any]], None] | None = None,
) -> Provider:
    """The provider for one ``[[mailbox]]``."""
    where = f"{settings.source}: mailbox '{mailbox.name}'"
    since = _since(settings, mailbox)
    if mailbox.kind == "folder":
        from providers.folder import FolderProvider

        assert mailbox.path is not None  # Defensive: checked by the settings model
        known: Callable[[str], bool] | None = None
        if store is not None:

            def known(provider_id: str) -> bool:
                return store.key_for_provider_id(mailbox.name, provider_id) is not None

        return FolderProvider(
            mailbox.name, settings.resolve(mailbox.path), since=since, known=known
        )
    if mailbox.kind == "graph":
        from providers.graph import GraphProvider

        secret: str | None = None
        certificate: tuple[str, str] | None = None
        if mailbox.certificate_file is not None:
            certificate = (
                str(settings.resolve(mailbox.certificate_file)),
                mailbox.certificate_thumbprint,
            )
        elif mailbox.client_secret_file is not None:
            try:
                data = read_private(settings.resolve(mailbox.client_secret_file))
            except PermissionError as exc:
                raise SettingsError(f"{where}: client_secret_file {exc}") from None
            if data is None:
                raise SettingsError(f"{where}: client_secret_file does not exist")
            secret = data.decode().strip()
        elif mailbox.client_secret_env:
            secret = secret_from_env(mailbox.client_secret_env, where)
        auth = mailbox.auth or "client_credentials"
        return GraphProvider(
            mailbox.name,
            tenant_id=mailbox.tenant_id,
            client_id=mailbox.client_id,
            user=mailbox.user,
            folder=mailbox.folder,
            auth=auth,
            client_secret=secret if auth == "client_credentials" else None,
            certificate=certificate if auth == "client_credentials" else None,
            authority=mailbox.authority,
            api_base=mailbox.api_base or "https://graph.microsoft.com/v1.0",
            token_cache_path=token_path(settings, mailbox),
            since=since,
            device_flow_callback=device_flow_callback,
            write_access=mailbox.action.kind != "none",
        )
    from providers.gmail import GmailProvider

    auth = mailbox.auth or "installed_app"
    return GmailProvider(
        mailbox.name,
        user=mailbox.user or "me",
        label=mailbox.label,
        auth=auth,
        client_secrets_file=settings.resolve(mailbox.client_secrets_file)
        if mailbox.client_secrets_file
        else None,
        service_account_file=settings.resolve(mailbox.service_account_file)
        if mailbox.service_account_file
        else None,
        subject=mailbox.user if auth == "service_account" else None,
        token_path=token_path(settings, mailbox),
        api_base=mailbox.api_base or "https://gmail.googleapis.com/",
        token_uri=mailbox.token_uri,
        since=since,
        modify=mailbox.action.kind != "none",
    )


@dataclass
class Workspace:
    """The opened store, target and processor for one command."""

    settings: Settings
    store: StateStore
    target: Target
    processor: Processor

    def close(self) -> None:
        """Close the target first, then release the state lock."""
        try:
            self.target.close()
        finally:
            self.store.close()


@contextmanager
def open_workspace(settings: Settings) -> Iterator[Workspace]:
    """Open state and target; :class:`SettingsError` when the state is busy."""
    try:
        store = TinyDBStateStore(settings.state_dir)
    except StateLocked as exc:
        raise SettingsError(str(exc)) from None
    except OSError as exc:
        raise SettingsError(
            f"{settings.source}: state path {settings.state_dir}: {exc.strerror}"
        ) from None
    try:
        target = build_target(settings)
    except BaseException:
        store.close()
        raise
    processor = Processor(
        settings, store, target, own_addresses=own_addresses(settings)
    )
    workspace = Workspace(settings, store, target, processor)
    try:
        yield workspace
    finally:
        workspace.close()


@dataclass
class MailboxReport:
    """What one sync pass did for one mailbox."""

    name: str
    results: list[Result] = field(default_factory=list)
    error: str | None = None
    status: str = "ok"


def due_for_retry(
    store: StateStore, now: datetime, mailbox: str | None = None
) -> list[MailRecord]:
    """Recorded mail to process again: failed and due, deferred, interrupted."""
    due: list[MailRecord] = []
    for record in store.mails_with_status("seen", "decided", "failed", "deferred"):
        if mailbox is not None and record.get("mailbox") != mailbox:
            continue
        if record.get("mode") == "drop" and record.get("status") != "decided":
            continue
        if record.get("retry") == "quarantined":
            continue
        next_try = record.get("next_try")
        if next_try and datetime.fromisoformat(next_try) > now:
            continue
        due.append(record)
    due.sort(key=lambda r: str(r.get("first_seen", "")))
    return due


def retry_due(
    workspace: Workspace,
    now: datetime,
    mailbox: str | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Process again what :func:`due_for_retry` finds.

    Deferred mail is left alone while the day's limit is still reached:
    deciding it again would only defer it again, and log it once more on
    every pass. It goes first once the counter has room (SPEC §9).
    """
    results: list[Result] = []
    for record in due_for_retry(workspace.store, now, mailbox):
        if record.get("status") == "deferred" and _limit_reached(workspace, now):
            continue
        try:
            result = workspace.processor.retry(record, now)
        except Mail2woError as exc:
            logger.warning("retry of %s failed: %s", record.get("key"), exc)
            continue
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _waiting(store: StateStore, mailbox: str, provider_id: str) -> bool:
    """Whether this provider message is recorded as deferred mail."""
    key = store.key_for_provider_id(mailbox, provider_id)
    record = store.mail(key) if key is not None else None
    return record is not None and record.get("status") == "deferred"


def _limit_reached(workspace: Workspace, now: datetime) -> bool:
    """Whether Conversations mode used up today's ``daily_limit``."""
    settings = workspace.settings
    if not settings.daily_limit:
        return False
    today = now.astimezone(settings.zone).date()
    return workspace.store.usage(today) >= settings.daily_limit


def sync_mailbox(
    workspace: Workspace,
    mailbox: Mailbox,
    *,
    provider: Provider | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> MailboxReport:
    """One sync pass over one mailbox; provider errors end up in the report."""
    store = workspace.store
    report = MailboxReport(mailbox.name)
    now = now_utc()
    try:
        if provider is None:
            provider = build_provider(workspace.settings, mailbox, store)
    except Mail2woError as exc:
        report.error, report.status = str(exc), "error"
        store.set_mailbox_status(
            mailbox.name, state="error", error=str(exc), last_try=now.isoformat()
        )
        return report
    workspace.target.refresh()
    try:
        for result in retry_due(workspace, now, mailbox.name, on_result):
            report.results.append(result)
        for page in provider.sync(store.cursor(mailbox.name)):
            if on_total is not None:
                on_total(len(page.mails))
            for fetched in page.mails:
                if _waiting(store, mailbox.name, fetched.provider_id):
                    continue  # a replay of deferred mail: retry_due takes it
                now = now_utc()
                delivery = Delivery(
                    mode="conversations",
                    mailbox=mailbox.name,
                    provider_id=fetched.provider_id,
                    thread_id=fetched.thread_id,
                )
                result = workspace.processor.process(fetched.raw, delivery, now)
                if result.log_id == -1:
                    continue  # a replay of a recorded mail
                report.results.append(result)
                if on_result is not None:
                    on_result(result)
                action = mailbox.action
                if action.kind != "none" and result.outcome in _RECORDED:
                    try:
                        provider.post_action(fetched.provider_id, action)
                    except Mail2woError as exc:
                        logger.warning("%s: post-action: %s", mailbox.name, exc)
            store.save_cursor(mailbox.name, page.cursor)
    except AuthError as exc:
        report.error, report.status = str(exc), "needs_reconnect"
    except Mail2woError as exc:
        report.error, report.status = str(exc), "error"
    finally:
        provider.close()
    fields: dict[str, Any] = {
        "state": report.status,
        "error": report.error,
        "last_try": now_utc().isoformat(),
    }
    if report.error is None:
        fields["last_sync"] = fields["last_try"]
    store.set_mailbox_status(mailbox.name, **fields)
    if report.error:
        logger.error("%s: %s", mailbox.name, report.error)
    return report
