"""Applying decisions: the one place where processing a mail writes.

A mail is processed in this order, and a restart resumes from the last
record: archive raw → record *seen* → decide → record the decision (work
order number reserved) → call the target → record *done* → post-action.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Collection
from datetime import datetime, timedelta

from connector.decide import Decision, Delivery, Outcome, decide
from connector.mail import InboundMail, parse_mail
from connector.result import (
    Result,
    decision_from_record,
    decision_record,
    excerpt,
    result_for,
)
from connector.settings import Settings
from connector.targets.base import FileAttachment, Note, Target
from providers.errors import AuthError, Mail2woError, PermanentError
from state.base import MailRecord, StateStore

__all__ = ["MAX_ATTEMPTS", "Processor", "Result"]

logger = logging.getLogger("mail2wo")

MAX_ATTEMPTS = 5

#: Where the headers of a mail end, and how far to look for that.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEAD_BYTES = 256 * 1024


class Processor:
    """Runs mails through decide and apply against one store and target."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        target: Target,
        *,
        own_addresses: Collection[str] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.target = target
        self.own_addresses = {a.lower() for a in own_addresses}

    # the public steps -----------------------------------------------------
    def explain(
        self,
        raw: bytes,
        delivery: Delivery,
        now: datetime,
        *,
        only_configuration: str | None = None,
        file: str | None = None,
    ) -> Result:
        """Decide without writing anything."""
        try:
            mail = parse_mail(raw)
        except Mail2woError as exc:
            return Result(Outcome.FAILED, delivery, file=file, reason=str(exc))
        decision = self._decide(mail, delivery, now, only_configuration)
        result = result_for(mail, delivery, decision, file)
        if decision.outcome is Outcome.CREATED and result.workorder is not None:
            result.workorder["WorkorderNo"] = "(assigned when processed)"
        return result

    def process(
        self, raw: bytes, delivery: Delivery, now: datetime, *, file: str | None = None
    ) -> Result:
        """Process one mail fully; never raises for a bad mail."""
        started = time.perf_counter()
        reference = self.store.archive(raw, now)
        limit = self.settings.max_mail_mb
        if len(raw) > limit * 1_000_000:
            reason = (
                f"mail of {len(raw) / 1e6:.1f} MB is over max_mail_mb = {limit:g}; "
                "kept in the archive, not processed"
            )
            result = Result(Outcome.FAILED, delivery, file=file, reason=reason)
            self._finish_unprocessed(result, raw, reference, now, started)
            return result
        try:
            mail = parse_mail(raw)
        except Mail2woError as exc:
            result = Result(Outcome.FAILED, delivery, file=file, reason=str(exc))
            self._finish_unprocessed(result, raw, reference, now, started)
            return result
        except Exception as exc:  # Defensive: a parser bug must not stop the pass
            logger.exception("parsing a mail from %s failed", delivery.mailbox)
            reason = f"the mail could not be parsed ({type(exc).__name__}: {exc})"
            result = Result(Outcome.FAILED, delivery, file=file, reason=reason)
            self._finish_unprocessed(result, raw, reference, now, started)
            return result

        record = self.store.mail(mail.key)
        if record is not None and self._is_replay(record, delivery):
            logger.debug("replay of %s from %s skipped", mail.key, delivery.mailbox)
            result = Result(Outcome.DUPLICATE, delivery, file=file)
            result.message_id = mail.message_id
            result.reason = "already recorded from this mailbox"
            result.log_id = -1
            return result
        return self._run(mail, delivery, now, reference, record, started, file)

    def retry(self, record: MailRecord, now: datetime) -> Result:
        """Process a recorded mail again (failed, deferred or by hand)."""
        raw = self.store.read_archive(record["archive"])
        delivery = Delivery(
            mode=record.get("mode", "conversations"),
            mailbox=record.get("mailbox", ""),
            provider_id=record.get("provider_id", ""),
            thread_id=record.get("thread_id"),
        )
        mail = parse_mail(raw)
        return self._run(
            mail, delivery, now, record["archive"], record, time.perf_counter(), None
        )

    # internals ----------------------------------------------------------------
    def _decide(
        self,
        mail: InboundMail,
        delivery: Delivery,
        now: datetime,
        only_configuration: str | None = None,
    ) -> Decision:
        """The pure decision, against the target's directory and the state."""
        return decide(
            mail,
            delivery,
            self.settings,
            self.target.load_directory(),
            self.store,
            now,
            own_addresses=self.own_addresses,
            only_configuration=only_configuration,
        )

    @staticmethod
    def _is_replay(record: MailRecord, delivery: Delivery) -> bool:
        """The same provider message again: nothing new arrived.

        Also for a copy already logged as ``duplicate``: a replayed cursor
        brings it again under the provider id kept in ``aliases``.
        """
        return record.get("status") == "done" and _delivered_before(record, delivery)

    def _run(
        self,
        mail: InboundMail,
        delivery: Delivery,
        now: datetime,
        reference: str,
        record: MailRecord | None,
        started: float,
        file: str | None,
    ) -> Result:
        resuming = record is not None and record.get("status") == "decided"
        if record is None:
            record = self._seen(mail, delivery, reference, now)
        try:
            if resuming:
                decision = decision_from_record(record, mail)
            else:
                decision = self._decide(mail, delivery, now)
        except Exception as exc:  # Defensive: a bug in a rule fails one mail only
            logger.exception("deciding %s failed", mail.key)
            failed = Result(
                Outcome.FAILED,
                delivery,
                file=file,
                message_id=mail.message_id,
                subject=mail.subject,
                sender=mail.from_addr,
            )
            return self._failed(mail, delivery, record, failed, exc, now, started)
        if decision.outcome is Outcome.DUPLICATE:
            result = result_for(mail, delivery, decision, file)
            self._log(result, mail, delivery, record, started, now)
            self._remember_copy(record, delivery)
            return result
        result = result_for(mail, delivery, decision, file)
        try:
            self._apply(mail, delivery, decision, record, result, now)
        except Mail2woError as exc:
            return self._failed(mail, delivery, record, result, exc, now, started)
        except Exception as exc:
            logger.exception("processing %s failed", mail.key)
            return self._failed(mail, delivery, record, result, exc, now, started)
        self._log(result, mail, delivery, record, started, now)
        self._finish(record, decision, now)
        logger.info(
            "%s %s from %s: %s%s",
            delivery.mailbox,
            mail.message_id or mail.key,
            mail.from_addr,
            result.outcome,
            f" {result.workorder.get('WorkorderNo')}" if result.workorder else "",
        )
        return result

    def _remember_copy(self, record: MailRecord, delivery: Delivery) -> None:
        """A second delivery of a recorded mail: a later sync skips it unread.

        Always written, also without a new alias: the record carries the
        count of its log entries (see :meth:`_log`).
        """
        alias = [delivery.mailbox, delivery.provider_id]
        aliases = [list(a) for a in record.get("aliases", [])]
        if (
            delivery.mode == "conversations"
            and delivery.provider_id
            and alias not in aliases
            and (record.get("mailbox"), record.get("provider_id")) != tuple(alias)
        ):
            record["aliases"] = [*aliases, alias]
        self.store.put_mail(record)

    def _seen(
        self, mail: InboundMail, delivery: Delivery, reference: str, now: datetime
    ) -> MailRecord:
        record: MailRecord = {
            "key": mail.key,
            "status": "seen",
            "mode": delivery.mode,
            "mailbox": delivery.mailbox,
            "provider_id": delivery.provider_id,
            "thread_id": delivery.thread_id,
            "message_id": mail.message_id,
            "archive": reference,
            "attempts": 0,
            "first_seen": now.isoformat(),
        }
        self.store.put_mail(record)
        return record

    def _apply(
        self,
        mail: InboundMail,
        delivery: Delivery,
        decision: Decision,
        record: MailRecord,
        result: Result,
        now: datetime,
    ) -> None:
        outcome = decision.outcome
        if outcome is Outcome.CREATED:
            assert decision.workorder is not None  # Defensive
            number = record.get("workorder_no")
            if record.get("status") != "decided" or not number:
                number = self.store.reserve_workorder_no(
                    now.astimezone(self.settings.zone).year,
                    self.settings.workorder_prefix,
                )
                record.update(
                    status="decided",
                    workorder_no=number,
                    decision=decision_record(decision),
                )
                self.store.put_mail(record)
            workorder = {"WorkorderNo": number, **decision.workorder}
            result.workorder = {
                **workorder,
                "Attachments": [name for name, _ in decision.attachments],
            }
            self.store.link_thread(
                number,
                message_ids=[mail.message_id],
                thread_ids=_thread_ids(delivery),
                participants=decision.participants,
            )
            if decision.new_relation is not None:
                self.target.add_relation(decision.new_relation)
            if decision.new_address is not None:
                self.target.add_address(decision.new_address)
            self.target.create_workorder(workorder, _files(decision))
            self.store.count_new_workorder(mail.from_addr, now)
        elif outcome is Outcome.APPENDED:
            assert decision.followup_of is not None  # Defensive
            number = decision.followup_of
            if record.get("status") != "decided":
                record.update(
                    status="decided",
                    workorder_no=number,
                    decision=decision_record(decision),
                )
                self.store.put_mail(record)
            self.store.link_thread(
                number,
                message_ids=[mail.message_id],
                thread_ids=_thread_ids(delivery),
                participants=decision.participants,
            )
            note = Note(
                text=decision.note_text,
                attachments=_files(decision),
                sender=mail.from_addr,
                subject=mail.subject,
            )
            self.target.append_note(number, note, mail.key)
            result.workorder = {
                "WorkorderNo": number,
                "note": {
                    "text": decision.note_text,
                    "attachments": [name for name, _ in decision.attachments],
                },
            }

        if delivery.mode == "conversations" and outcome in (
            Outcome.CREATED,
            Outcome.NO_CONFIGURATION,
            Outcome.CUSTOMER_NOT_FOUND,
        ):
            self.store.count_usage(now.astimezone(self.settings.zone).date())

    def _finish(self, record: MailRecord, decision: Decision, now: datetime) -> None:
        """Record the mail as done (or deferred), after its log entry."""
        outcome = decision.outcome
        status = "deferred" if outcome is Outcome.DEFERRED else "done"
        record.update(
            status=status,
            outcome=str(outcome),
            workorder_no=record.get("workorder_no")
            or (decision.followup_of if outcome is Outcome.APPENDED else None),
            finished=now.isoformat(),
            error=None,
        )
        record.pop("decision", None)
        self.store.put_mail(record)

    def _failed(
        self,
        mail: InboundMail,
        delivery: Delivery,
        record: MailRecord,
        result: Result,
        error: Exception,
        now: datetime,
        started: float,
    ) -> Result:
        attempts = int(record.get("attempts", 0)) + 1
        permanent = isinstance(error, PermanentError)
        quarantined = attempts >= MAX_ATTEMPTS or (
            permanent and delivery.mode != "drop"
        )
        wait = timedelta(seconds=min(60 * 4 ** (attempts - 1), 6 * 3600))
        record.update(
            attempts=attempts,
            error=f"{type(error).__name__}: {error}",
            next_try=(now + wait).isoformat(),
            failed_status=record.get("status"),
        )
        if record.get("status") != "decided":
            record["status"] = "failed"
        record["retry"] = "quarantined" if quarantined else "failed"
        result.outcome = Outcome.QUARANTINED if quarantined else Outcome.FAILED
        result.reason = (
            str(error)
            if isinstance(error, Mail2woError)
            else f"internal error ({type(error).__name__}: {error}); see the log"
        )
        if isinstance(error, AuthError):
            result.reason = f"target refused the credentials: {error}"
        self._log(result, mail, delivery, record, started, now, error=record["error"])
        self.store.put_mail(record)
        logger.warning(
            "%s %s: %s after %d attempt(s): %s",
            delivery.mailbox,
            mail.key,
            result.outcome,
            attempts,
            error,
        )
        return result

    def _finish_unprocessed(
        self, result: Result, raw: bytes, reference: str, now: datetime, started: float
    ) -> None:
        """Log a mail that is unreadable or too big to process, and record it.

        The record makes a later sync skip the mail when a folder lists it
        again or a cursor is replayed, instead of logging it on every pass.
        From a mailbox it is quarantined at once, since no retry changes
        it; ``reprocess`` takes it by hand. The key is the Message-ID when
        the headers can be read, else the hash of the bytes.
        """
        delivery = result.delivery
        key, message_id = "sha256:" + hashlib.sha256(raw).hexdigest(), ""
        head = _HEADER_END.split(raw[:_HEAD_BYTES], maxsplit=1)[0]
        try:
            headers = parse_mail(head)
        except Mail2woError:
            pass
        else:
            if headers.message_id:
                key, message_id = headers.key, headers.message_id
        result.message_id = message_id
        record = self.store.mail(key)
        if record is not None and _delivered_before(record, delivery):
            result.log_id = -1
            return
        if record is None:
            record = {
                "key": key,
                "mode": delivery.mode,
                "mailbox": delivery.mailbox,
                "provider_id": delivery.provider_id,
                "thread_id": delivery.thread_id,
                "message_id": message_id,
                "archive": reference,
                "attempts": 0,
                "first_seen": now.isoformat(),
            }
        if delivery.mode == "conversations":
            result.outcome = Outcome.QUARANTINED
        logged = int(record.get("logged", 0))
        entry = {
            "time": now.isoformat(),
            "mode": delivery.mode,
            "mailbox": delivery.mailbox,
            "provider_id": delivery.provider_id,
            "message_id": message_id,
            "key": key,
            "from": "",
            "subject": "",
            "outcome": str(result.outcome),
            "reason": result.reason,
            "configuration": None,
            "customer_rule": None,
            "thread_signal": None,
            "workorder_no": None,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "excerpt": excerpt(raw[:400].decode("utf-8", "replace")),
            "error": result.reason,
            "archive": reference,
            "ref": f"{key}#{logged}:{result.outcome}",
        }
        result.log_id = self.store.log(entry)
        record.update(
            status="failed",
            retry="quarantined",
            attempts=int(record.get("attempts", 0)) + 1,
            error=result.reason,
            logged=logged + 1,
        )
        self._remember_copy(record, delivery)

    def _log(
        self,
        result: Result,
        mail: InboundMail,
        delivery: Delivery,
        record: MailRecord,
        started: float,
        now: datetime,
        *,
        error: str | None = None,
    ) -> None:
        """Log one entry, *before* the record write that follows it.

        The entry's ``ref`` names the mail, the count of entries logged for
        its record so far and the outcome. A kill between this entry and the
        record write leaves the count unchanged, so the repeated step logs
        the same ``ref`` and the store keeps one entry. The caller writes
        ``record`` next; it carries the raised count.
        """
        workorder_no = (result.workorder or {}).get("WorkorderNo")
        logged = int(record.get("logged", 0))
        entry = {
            "time": now.isoformat(),
            "mode": delivery.mode,
            "mailbox": delivery.mailbox,
            "provider_id": delivery.provider_id,
            "message_id": mail.message_id,
            "key": mail.key,
            "from": mail.from_addr,
            "subject": mail.subject,
            "outcome": str(result.outcome),
            "reason": result.reason or None,
            "configuration": result.configuration,
            "customer_rule": result.customer_rule,
            "thread_signal": result.thread_signal,
            "workorder_no": workorder_no,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "excerpt": excerpt(mail.reply or mail.text),
            "error": error,
            "warnings": result.warnings,
            "ref": f"{mail.key}#{logged}:{result.outcome}",
        }
        result.log_id = self.store.log(entry)
        record["logged"] = logged + 1


def _delivered_before(record: MailRecord, delivery: Delivery) -> bool:
    """This mailbox already delivered this provider message (or a copy of it)."""
    if delivery.mode != "conversations":
        return False
    here = [delivery.mailbox, delivery.provider_id]
    return [record.get("mailbox"), record.get("provider_id")] == here or here in [
        list(alias) for alias in record.get("aliases", ())
    ]


def _thread_ids(delivery: Delivery) -> list[tuple[str, str]]:
    return [(delivery.mailbox, delivery.thread_id)] if delivery.thread_id else []


def _files(decision: Decision) -> tuple[FileAttachment, ...]:
    return tuple(
        FileAttachment(name, attachment.content_type, attachment.data)
        for name, attachment in decision.attachments
    )
