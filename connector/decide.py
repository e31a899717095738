"""The pure decision: what one mail becomes.

``decide`` takes values and returns a :class:`Decision`; it does no I/O.
Explain, drop and sync all run it; only the pipeline's ``apply`` writes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from connector.attachments import select_attachments
from connector.customers import CustomerMatch, match_customer
from connector.directory import Address, Directory, Relation, split_address_line
from connector.mail import Attachment, InboundMail
from connector.noise import noise_reason
from connector.rules import evaluate_rules, matches
from connector.settings import Configuration, SenderType, Settings
from connector.templates import fill, parameters

__all__ = ["Decision", "Delivery", "Outcome", "StateView", "decide"]

_TOKEN = re.compile(r"\[\s*WO\s+([A-Za-z0-9][A-Za-z0-9._/-]*)\s*\]", re.IGNORECASE)

BUILTIN_DEFAULTS = {
    "TypeOfWork": "Storing",
    "PaymentMethod": "niet van toepassing",
    "WorkDescription": "{subject}",
    "InternalWorkDescription": "{mail_content}",
}


class Outcome(enum.StrEnum):
    """What became of a mail (the processing log's outcomes)."""

    CREATED = "created"
    APPENDED = "appended"
    NO_CONFIGURATION = "no_configuration"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    IGNORED = "ignored"
    DEFERRED = "deferred"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class Delivery:
    """How a mail came in."""

    mode: str  # conversations | drop
    mailbox: str
    provider_id: str = ""
    thread_id: str | None = None


class StateView(Protocol):
    """What ``decide`` reads from state (never writes)."""

    def mail(self, key: str) -> dict[str, Any] | None: ...
    def workorder_for_message_ids(self, message_ids: Any) -> str | None: ...
    def workorder_for_thread(self, mailbox: str, thread_id: str) -> str | None: ...
    def participants(self, workorder_no: str) -> set[str] | None: ...
    def usage(self, day: date) -> int: ...
    def new_workorders_by_sender(self, sender: str, since: datetime) -> int: ...


@dataclass(frozen=True)
class Decision:
    """The full result of deciding one mail; JSON-able via :meth:`as_dict`."""

    outcome: Outcome
    reason: str = ""
    configuration: str | None = None
    customer_rule: str | None = None
    thread_signal: str | None = None
    followup_of: str | None = None
    workorder: dict[str, Any] | None = None
    note_text: str = ""
    attachments: tuple[tuple[str, Attachment], ...] = ()
    new_relation: Relation | None = None
    new_address: Address | None = None
    participants: tuple[str, ...] = ()
    trace: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _followup(
    mail: InboundMail, delivery: Delivery, view: StateView, trace: list[str]
) -> tuple[str, str] | None:
    """(work-order number, signal) when this mail follows up on an order."""
    ids = [*mail.in_reply_to, *reversed(mail.references)]
    if ids:
        number = view.workorder_for_message_ids(ids)
        if number:
            trace.append(f"follow-up: References names a mail of {number}")
            return number, "references"
    if delivery.thread_id:
        number = view.workorder_for_thread(delivery.mailbox, delivery.thread_id)
        if number:
            trace.append(f"follow-up: provider thread {delivery.thread_id} is {number}")
            return number, "thread_id"
    token = _TOKEN.search(mail.subject)
    if token:
        number = token.group(1)
        known = view.participants(number)
        if known is None:
            trace.append(f"subject token [WO {number}]: no such work order")
        elif mail.from_addr.lower() in known:
            trace.append(f"follow-up: subject token [WO {number}] from a participant")
            return number, "subject_token"
        else:
            trace.append(
                f"subject token [WO {number}] ignored: {mail.from_addr} "
                "took no part in that work order"
            )
    return None


def _choose(
    settings: Settings, mail: InboundMail, only: str | None, trace: list[str]
) -> Configuration | None:
    candidates = [c for c in settings.configuration if c.active]
    if only is not None:
        candidates = [c for c in settings.configuration if c.name == only]
    ordered = [c for c in candidates if c.sender_type is not SenderType.ANY] + [
        c for c in candidates if c.sender_type is SenderType.ANY
    ]
    for configuration in ordered:
        if matches(configuration, mail):
            trace.append(
                f"configuration {configuration.name!r}: {configuration.sender_type} "
                f"{configuration.sender_value!r} matches"
            )
            return configuration
        trace.append(f"configuration {configuration.name!r}: no match")
    return None


def _customer_fields(
    match: CustomerMatch, values: Mapping[str, str], mail: InboundMail
) -> dict[str, Any]:
    relation = match.relation
    assert relation is not None  # Defensive: callers pass a found relation
    contact = values.get("contact_person") or relation.contact or mail.from_name
    fields: dict[str, Any] = {
        "CustomerName": relation.name,
        "CustomerDebtorNr": relation.debtor_number,
        "CustomerStreet": relation.street,
        "CustomerStreetNo": relation.house_number,
        "CustomerZIP": relation.postal_code,
        "CustomerCity": relation.city,
        "CustomerEmail": relation.email_workorder or relation.email,
        "CustomerPhone": relation.phone_number,
        "CustomerContactPerson": contact,
    }
    for name in list(fields):
        fields[f"{name}Invoice"] = fields[name]
    fields["CustomerDebtorNrInvoice"] = relation.debtor_number
    if match.address is not None:
        street, number = split_address_line(match.address.adr_line_1)
        fields.update(
            CustomerStreet=street,
            CustomerStreetNo=number,
            CustomerZIP=match.address.adr_zip,
            CustomerCity=match.address.adr_city,
            AdrCode=match.address.adr_code,
        )
        if match.address.adr_cpn_code:
            fields["CpnCode"] = match.address.adr_cpn_code
    if match.work_object is not None:
        fields["WorkObjects"] = [match.work_object.obj_code]
    return fields


def decide(
    mail: InboundMail,
    delivery: Delivery,
    settings: Settings,
    directory: Directory,
    view: StateView,
    now: datetime,
    *,
    own_addresses: Collection[str] = (),
    only_configuration: str | None = None,
) -> Decision:
    """Decide what ``mail`` becomes, in the order of SPEC §2."""
    trace: list[str] = []
    local_now = now.astimezone(settings.zone)

    previous = view.mail(mail.key)
    if previous is not None and previous.get("status") == "done":
        where = previous.get("mailbox") or "an earlier drop"
        trace.append(f"duplicate: {mail.key} was processed from {where}")
        return Decision(
            Outcome.DUPLICATE,
            reason=f"already processed (mailbox {where})",
            followup_of=previous.get("workorder_no"),
            trace=tuple(trace),
        )

    reason = noise_reason(mail, own_addresses)
    if reason:
        trace.append(f"ignored: {reason}")
        return Decision(Outcome.IGNORED, reason=reason, trace=tuple(trace))

    followup = _followup(mail, delivery, view, trace)
    if followup is not None:
        number, signal = followup
        selected = select_attachments(
            mail.attachments, include_inline=False, max_bytes=25_000_000
        )
        return Decision(
            Outcome.APPENDED,
            thread_signal=signal,
            followup_of=number,
            note_text=mail.reply,
            attachments=selected.kept,
            participants=(mail.from_addr,),
            trace=tuple(trace),
            warnings=selected.warnings,
        )

    cap = settings.max_new_per_sender_per_hour
    if cap and mail.from_addr:
        recent = view.new_workorders_by_sender(mail.from_addr, now - timedelta(hours=1))
        if recent >= cap:
            reason = f"{mail.from_addr} already made {recent} work orders this hour"
            trace.append(f"ignored: {reason} (max_new_per_sender_per_hour={cap})")
            return Decision(Outcome.IGNORED, reason=reason, trace=tuple(trace))

    if delivery.mode == "conversations" and settings.daily_limit:
        used = view.usage(local_now.date())
        if used >= settings.daily_limit:
            reason = (
                f"daily limit of {settings.daily_limit} reached; waits for midnight"
            )
            trace.append(f"deferred: {reason}")
            return Decision(Outcome.DEFERRED, reason=reason, trace=tuple(trace))

    configuration = _choose(settings, mail, only_configuration, trace)
    if configuration is None:
        return Decision(
            Outcome.NO_CONFIGURATION,
            reason="no active configuration matches this mail",
            trace=tuple(trace),
        )

    rule_values = evaluate_rules(
        configuration.regex_rule, mail, settings.regex_timeout_ms
    )
    values = {v.name: v.value for v in rule_values}
    warnings = [
        f"regex rule {v.name!r} ran past {settings.regex_timeout_ms} ms and was stopped"
        for v in rule_values
        if v.timed_out
    ]
    for value in rule_values:
        trace.append(f"regex rule {value.name!r}: {value.value!r}")

    match = match_customer(
        configuration.customer_rules,
        mail,
        values,
        directory,
        configuration.forced_debtor_number.strip(),
    )
    trace.extend(match.trace)
    if match.relation is None:
        return Decision(
            Outcome.CUSTOMER_NOT_FOUND,
            reason=match.reason,
            configuration=configuration.name,
            trace=tuple(trace),
            warnings=tuple(warnings),
        )

    params = parameters(
        subject=mail.subject,
        sender_address=mail.from_addr,
        display_name=mail.from_name,
        mail_content=mail.text,
        mail_reply=mail.reply,
        processed_at=local_now,
        rule_values=values,
        obj_code=match.work_object.obj_code if match.work_object else "",
    )
    workorder: dict[str, Any] = {
        name: fill(template, params)
        for name, template in {**BUILTIN_DEFAULTS, **settings.defaults}.items()
    }
    workorder.update(_customer_fields(match, values, mail))
    for name, template in configuration.forced_values.items():
        filled = fill(template, params)
        if name in ("WorkObjects", "Employees"):
            workorder[name] = [p.strip() for p in filled.split(",") if p.strip()]
        else:
            workorder[name] = filled
    trace.append("work order fields filled")

    attachments: tuple[tuple[str, Attachment], ...] = ()
    if configuration.parse_attachments:
        selected = select_attachments(
            mail.attachments,
            include_inline=configuration.options.include_inline,
            max_bytes=int(configuration.options.max_attachment_mb * 1_000_000),
        )
        attachments = selected.kept
        warnings.extend(selected.warnings)

    relation = match.relation
    participants = {mail.from_addr, relation.email, relation.email_workorder}
    return Decision(
        Outcome.CREATED,
        configuration=configuration.name,
        customer_rule=match.rule,
        workorder=workorder,
        attachments=attachments,
        new_relation=match.new_relation,
        new_address=match.new_address,
        participants=tuple(sorted(p.lower() for p in participants if p)),
        trace=tuple(trace),
        warnings=tuple(warnings),
    )
