"""Customer, address and object matching (the ``FindOrAdd…`` rules)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from connector.directory import (
    Address,
    Directory,
    Relation,
    WorkObject,
    normalise_postal_code,
    split_address_line,
)
from connector.mail import InboundMail
from connector.settings import CustomerRule

__all__ = ["PUBLIC_DOMAINS", "CustomerMatch", "match_customer"]

#: Mail domains shared by the public; they never identify a company.
PUBLIC_DOMAINS = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "outlook.nl",
        "hotmail.com",
        "hotmail.nl",
        "live.com",
        "live.nl",
        "msn.com",
        "yahoo.com",
        "yahoo.nl",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "proton.me",
        "protonmail.com",
        "web.de",
        "ziggo.nl",
        "kpnmail.nl",
        "kpnplanet.nl",
        "planet.nl",
        "home.nl",
        "hetnet.nl",
        "chello.nl",
        "casema.nl",
        "quicknet.nl",
        "tele2.nl",
        "xs4all.nl",
        "zonnet.nl",
        "upcmail.nl",
        "solcon.nl",
        "telfort.nl",
        "online.nl",
        "versatel.nl",
        "caiway.nl",
        "kabelfoon.nl",
        "delta.nl",
        "zeelandnet.nl",
        "mail.com",
        "t-online.de",
        "orange.fr",
        "free.fr",
        "skynet.be",
        "telenet.be",
    ]
)

_ADDING_RULES = frozenset(
    {
        CustomerRule.BY_EMAIL,
        CustomerRule.BY_DOMAIN,
        CustomerRule.BY_PHONE,
        CustomerRule.BY_STREET,
        CustomerRule.BY_DEBTOR_NUMBER,
    }
)


@dataclass(frozen=True)
class CustomerMatch:
    """The outcome of the customer rules for one mail."""

    relation: Relation | None = None
    rule: str | None = None
    address: Address | None = None
    work_object: WorkObject | None = None
    new_relation: Relation | None = None
    new_address: Address | None = None
    reason: str = ""
    trace: list[str] = field(default_factory=list)


def _stable_code(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(p.lower() for p in parts).encode()).hexdigest()
    return f"{prefix}{digest[:8].upper()}"


def _street_and_number(values: Mapping[str, str]) -> tuple[str, str]:
    street = values.get("customer_street", "")
    number = values.get("customer_house_number", "")
    if street and not number:
        street, number = split_address_line(street)
    return street, number


def _lookup(
    rule: CustomerRule,
    mail: InboundMail,
    values: Mapping[str, str],
    directory: Directory,
) -> tuple[list[Relation], WorkObject | None, str]:
    """Relations one rule finds, the object it found, and what it looked for."""
    if rule is CustomerRule.BY_EMAIL:
        for address in (mail.from_addr, values.get("customer_email", "")):
            found = directory.relations_by_email(address) if address else []
            if found:
                return found, None, address
        return [], None, mail.from_addr
    if rule is CustomerRule.BY_DOMAIN:
        for address in (mail.from_addr, values.get("customer_email", "")):
            domain = address.rpartition("@")[2].lower()
            if not domain or domain in PUBLIC_DOMAINS:
                continue
            found = directory.relations_by_domain(domain)
            if found:
                return found, None, domain
        return [], None, mail.from_addr.rpartition("@")[2]
    if rule is CustomerRule.BY_PHONE:
        phone = values.get("customer_phone", "")
        return (directory.relations_by_phone(phone) if phone else []), None, phone
    if rule is CustomerRule.BY_STREET:
        street, number = _street_and_number(values)
        if not street or not number:
            return [], None, ""
        postal = values.get("customer_postal_code", "")
        found = directory.relations_by_street(street, number, postal)
        return found, None, f"{street} {number} {postal}".strip()
    if rule is CustomerRule.BY_DEBTOR_NUMBER:
        number = values.get("debtor_number", "")
        relation = directory.relation(number) if number else None
        return ([relation] if relation else []), None, number
    if rule is CustomerRule.BY_OBJECT:
        code = values.get("obj_code", "")
        work_object = directory.object(code) if code else None
        if work_object is None:
            return [], None, code
        relation = directory.relation(work_object.obj_debiteur_nummer)
        return ([relation] if relation else []), work_object, code
    return [], None, ""


def _new_relation(mail: InboundMail, values: Mapping[str, str]) -> Relation | None:
    street, number = _street_and_number(values)
    name = values.get("customer_name") or mail.from_name or ""
    postal = values.get("customer_postal_code", "").upper()
    city = values.get("customer_city", "")
    if not (name and street and postal and city):
        return None
    email = values.get("customer_email") or mail.from_addr
    return Relation(
        debtor_number=_stable_code("MW", name, normalise_postal_code(postal), number),
        name=name,
        street=street,
        house_number=number,
        postal_code=postal,
        city=city,
        contact=values.get("contact_person") or name,
        phone_number=values.get("customer_phone", ""),
        email=email,
        remark="Added by mail2wo from an e-mail",
    )


def _pick_address(
    relation: Relation, values: Mapping[str, str], directory: Directory
) -> tuple[Address | None, Address | None]:
    """``FindOrAddAddress``: (existing address, address to add)."""
    street, number = _street_and_number(values)
    postal = values.get("customer_postal_code", "")
    if not postal or not number:
        return None, None
    existing = directory.find_address(relation.debtor_number, postal, number)
    if existing is not None:
        return existing, None
    same_as_relation = (
        normalise_postal_code(relation.postal_code) == normalise_postal_code(postal)
        and relation.house_number.replace(" ", "").lower()
        == number.replace(" ", "").lower()
    )
    city = values.get("customer_city", "")
    if same_as_relation or not street or not city:
        return None, None
    added = Address(
        adr_code=_stable_code(
            "AD", relation.debtor_number, normalise_postal_code(postal), number
        ),
        adr_debtor_nr=relation.debtor_number,
        adr_line_1=f"{street} {number}",
        adr_zip=postal.upper(),
        adr_city=city,
        adr_remark="Added by mail2wo from an e-mail",
    )
    return None, added


def match_customer(
    rules: Sequence[CustomerRule],
    mail: InboundMail,
    values: Mapping[str, str],
    directory: Directory,
    forced_debtor_number: str = "",
) -> CustomerMatch:
    """Decide the relation (and address, object) of a mail.

    ``forced_debtor_number`` wins over every rule. Otherwise rules are tried
    in order; the first to find exactly one relation wins, an ambiguous one
    is traced and passed over. When nothing is found and a ``FindOrAdd…``
    relation rule is configured, a relation is added from the values.
    """
    trace: list[str] = []
    if forced_debtor_number:
        forced = directory.relation(forced_debtor_number)
        if forced is None:
            return CustomerMatch(
                reason=f"forced_debtor_number {forced_debtor_number!r} "
                "is not in the relation directory",
                trace=[f"forced_debtor_number {forced_debtor_number}: not found"],
            )
        trace.append(f"forced_debtor_number {forced_debtor_number}: {forced.name}")
        return CustomerMatch(relation=forced, rule="forced_debtor_number", trace=trace)

    relation: Relation | None = None
    decided_by: str | None = None
    work_object: WorkObject | None = None
    for rule in rules:
        if rule is CustomerRule.ADDRESS:
            continue
        found, found_object, looked_for = _lookup(rule, mail, values, directory)
        if len(found) == 1:
            relation, decided_by, work_object = found[0], rule.value, found_object
            trace.append(f"{rule.value} {looked_for!r}: {relation.debtor_number}")
            break
        if len(found) > 1:
            numbers = ", ".join(r.debtor_number for r in found)
            trace.append(f"{rule.value} {looked_for!r}: ambiguous ({numbers})")
        else:
            trace.append(f"{rule.value} {looked_for!r}: nothing found")

    new_relation = None
    if relation is None:
        if not any(rule in _ADDING_RULES for rule in rules):
            return CustomerMatch(
                reason="no customer rule found a relation", trace=trace
            )
        new_relation = _new_relation(mail, values)
        if new_relation is None:
            return CustomerMatch(
                reason="no relation found, and name, street, postal code and "
                "city are needed to add one",
                trace=[*trace, "add relation: required values missing"],
            )
        relation, decided_by = new_relation, "FindOrAddRelation"
        trace.append(f"add relation {new_relation.debtor_number} {new_relation.name}")

    address = None
    if work_object is not None and work_object.obj_adr_code:
        address = directory.address(work_object.obj_adr_code)
    new_address = None
    if address is None and CustomerRule.ADDRESS in rules:
        address, new_address = _pick_address(relation, values, directory)
        if new_address is not None:
            address = new_address
            trace.append(f"FindOrAddAddress: add {new_address.adr_code}")
        elif address is not None:
            trace.append(f"FindOrAddAddress: {address.adr_code}")
    return CustomerMatch(
        relation=relation,
        rule=decided_by,
        address=address,
        work_object=work_object,
        new_relation=new_relation,
        new_address=new_address,
        trace=trace,
    )
