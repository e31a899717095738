"""What became of one mail: the result value and the recorded decision.

:class:`Result` is what ``drop``, ``sync`` and ``explain`` print (SPEC §15).
A decision is stored with the mail record before the target is called, so
that a restart resumes it instead of deciding again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from connector.decide import Decision, Delivery, Outcome
from connector.directory import Address, Relation
from connector.mail import InboundMail
from state.base import MailRecord

__all__ = [
    "Result",
    "decision_from_record",
    "decision_record",
    "describe_mail",
    "excerpt",
    "result_for",
]


@dataclass
class Result:
    """What happened to one mail, in the shape of SPEC §15."""

    outcome: Outcome
    delivery: Delivery
    file: str | None = None
    message_id: str = ""
    reason: str = ""
    configuration: str | None = None
    customer_rule: str | None = None
    thread_signal: str | None = None
    workorder: dict[str, Any] | None = None
    subject: str = ""
    sender: str = ""
    trace: list[str] = field(default_factory=list)
    mail: InboundMail | None = None
    warnings: list[str] = field(default_factory=list)
    log_id: int | None = None

    def as_json(self, *, explain: bool = False) -> dict[str, Any]:
        """The JSON Lines object of ``drop``, ``sync`` and ``explain``."""
        data: dict[str, Any] = {}
        if self.file is not None:
            data["file"] = self.file
        else:
            data["mailbox"] = self.delivery.mailbox
            data["provider_id"] = self.delivery.provider_id
        data.update(
            message_id=self.message_id,
            outcome=str(self.outcome),
            reason=self.reason or None,
            configuration=self.configuration,
            customer_rule=self.customer_rule,
            thread_signal=self.thread_signal,
            workorder=self.workorder,
            warnings=self.warnings,
        )
        if explain:
            data["trace"] = self.trace
            data["mail"] = describe_mail(self.mail) if self.mail else None
        return data


def describe_mail(mail: InboundMail) -> dict[str, Any]:
    """The parsed mail as ``explain --json`` shows it."""
    return {
        "message_id": mail.message_id,
        "from": mail.from_addr,
        "from_name": mail.from_name,
        "to": list(mail.to),
        "cc": list(mail.cc),
        "reply_to": list(mail.reply_to),
        "subject": mail.subject,
        "date": mail.date.isoformat() if mail.date else None,
        "text": mail.text,
        "reply": mail.reply,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "inline": a.inline,
            }
            for a in mail.attachments
        ],
    }


def excerpt(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _json_relation(record: Relation | Address | None) -> dict[str, Any] | None:
    return asdict(record) if record is not None else None


def result_for(
    mail: InboundMail,
    delivery: Delivery,
    decision: Decision,
    file: str | None,
) -> Result:
    workorder = None
    if decision.workorder is not None:
        workorder = {
            **decision.workorder,
            "Attachments": [name for name, _ in decision.attachments],
        }
    if decision.outcome is Outcome.APPENDED:
        workorder = {
            "WorkorderNo": decision.followup_of,
            "note": {
                "text": decision.note_text,
                "attachments": [name for name, _ in decision.attachments],
            },
        }
    return Result(
        outcome=decision.outcome,
        delivery=delivery,
        file=file,
        message_id=mail.message_id,
        reason=decision.reason,
        configuration=decision.configuration,
        customer_rule=decision.customer_rule,
        thread_signal=decision.thread_signal,
        workorder=workorder,
        subject=mail.subject,
        sender=mail.from_addr,
        trace=list(decision.trace),
        mail=mail,
        warnings=list(decision.warnings),
    )


def decision_record(decision: Decision) -> dict[str, Any]:
    return {
        "outcome": str(decision.outcome),
        "configuration": decision.configuration,
        "customer_rule": decision.customer_rule,
        "thread_signal": decision.thread_signal,
        "followup_of": decision.followup_of,
        "workorder": decision.workorder,
        "note_text": decision.note_text,
        "attachments": [
            [name, attachment.sha256] for name, attachment in decision.attachments
        ],
        "new_relation": _json_relation(decision.new_relation),
        "new_address": _json_relation(decision.new_address),
        "participants": list(decision.participants),
    }


def decision_from_record(record: MailRecord, mail: InboundMail) -> Decision:
    """The decision stored before a cut-off call, with the mail's files."""
    stored = record["decision"]
    by_hash = {a.sha256: a for a in mail.attachments}
    attachments = tuple(
        (name, by_hash[digest])
        for name, digest in stored["attachments"]
        if digest in by_hash
    )
    relation = stored.get("new_relation")
    address = stored.get("new_address")
    return Decision(
        Outcome(stored["outcome"]),
        configuration=stored.get("configuration"),
        customer_rule=stored.get("customer_rule"),
        thread_signal=stored.get("thread_signal"),
        followup_of=stored.get("followup_of"),
        workorder=stored.get("workorder"),
        note_text=stored.get("note_text", ""),
        attachments=attachments,
        new_relation=Relation(**relation) if relation else None,
        new_address=Address(**address) if address else None,
        participants=tuple(stored.get("participants", ())),
        trace=("resumed from the recorded decision",),
    )
