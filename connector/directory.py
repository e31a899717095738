"""The relation directory: relations, addresses, contact persons and objects.

Field names follow OutSmart's API. A :class:`Directory` is an in-memory,
read-only view that the pure ``decide`` looks things up in; targets build it
(the local target from CSV files, the OutSmart target from the API, once per
sync pass).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from providers.errors import SettingsError

__all__ = [
    "Address",
    "ContactPerson",
    "Directory",
    "Relation",
    "WorkObject",
    "normalise_phone",
    "normalise_postal_code",
    "read_csv",
]


@dataclass(frozen=True)
class Relation:
    """A customer (relation) as OutSmart names its fields."""

    debtor_number: str
    name: str
    street: str = ""
    house_number: str = ""
    postal_code: str = ""
    city: str = ""
    contact: str = ""
    phone_number: str = ""
    email: str = ""
    email_workorder: str = ""
    remark: str = ""


@dataclass(frozen=True)
class Address:
    """A work address of a relation."""

    adr_code: str
    adr_debtor_nr: str
    adr_line_1: str
    adr_zip: str
    adr_city: str
    adr_cpn_code: str = ""
    adr_country: str = ""
    adr_remark: str = ""


@dataclass(frozen=True)
class ContactPerson:
    """A contact person of a relation."""

    cpn_code: str
    cpn_debtor_nr: str
    cpn_name: str
    cpn_phone: str = ""
    cpn_email: str = ""


@dataclass(frozen=True)
class WorkObject:
    """An installation at a customer (``obj_code`` is its reference)."""

    obj_code: str
    obj_debiteur_nummer: str
    obj_description: str = ""
    obj_adr_code: str = ""
    obj_brand: str = ""
    obj_model: str = ""
    obj_serialnumber: str = ""
    obj_location: str = ""


_Record = TypeVar("_Record", Relation, Address, ContactPerson, WorkObject)


def normalise_phone(text: str) -> str:
    """Digits of a Dutch phone number with the country prefix made national.

    ``+31 6 1234 5678``, ``0031612345678`` and ``06-12345678`` all give
    ``0612345678``.
    """
    digits = re.sub(r"\D", "", text)
    if text.strip().startswith("+"):
        digits = "00" + digits
    if digits.startswith("0031"):
        digits = "0" + digits[4:]
    elif digits.startswith("31") and len(digits) == 11:
        digits = "0" + digits[2:]
    return digits


def normalise_postal_code(text: str) -> str:
    """``9711ab`` and ``9711 AB`` both give ``9711AB``."""
    return re.sub(r"\s", "", text).upper()


def _street_key(street: str, number: str) -> tuple[str, str]:
    return (" ".join(street.lower().split()), number.replace(" ", "").lower())


def _split_line(line: str) -> tuple[str, str]:
    """``Lindelaan 14a`` → (``Lindelaan``, ``14a``)."""
    match = re.match(r"^(.*?)\s+(\d+\s*[a-zA-Z]?(?:[-/ ]\w+)?)$", line.strip())
    if not match:
        return line.strip(), ""
    return match.group(1), match.group(2)


def from_row(kind: type[_Record], row: Mapping[str, Any]) -> _Record:
    """Build a record from a mapping, ignoring unknown keys."""
    names = {f.name for f in fields(kind)}
    values = {k: str(v if v is not None else "").strip() for k, v in row.items()}
    return kind(**{k: v for k, v in values.items() if k in names})


def read_csv(path: Path, kind: type[_Record]) -> list[_Record]:
    """Read a directory CSV with a header row of OutSmart field names.

    Raises :class:`SettingsError` naming the file, line and missing column.
    """
    required = [f.name for f in fields(kind) if f.default is f.default_factory]
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [name for name in required if name not in header]
            if missing:
                raise SettingsError(
                    f"{path}: missing column(s) {', '.join(missing)} in the header "
                    f"(expected at least {', '.join(required)})"
                )
            records = []
            for line_no, row in enumerate(reader, start=2):
                try:
                    records.append(from_row(kind, row))
                except TypeError as exc:
                    raise SettingsError(f"{path}:{line_no}: {exc}") from exc
            return records
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise SettingsError(f"{path}: not a readable CSV file ({exc})") from exc


class Directory:
    """Indexed, read-only relation directory."""

    def __init__(
        self,
        relations: Iterable[Relation] = (),
        addresses: Iterable[Address] = (),
        contact_persons: Iterable[ContactPerson] = (),
        objects: Iterable[WorkObject] = (),
    ) -> None:
        self.relations = {r.debtor_number: r for r in relations}
        self.addresses = {a.adr_code: a for a in addresses}
        self.contact_persons = {c.cpn_code: c for c in contact_persons}
        self.objects = {o.obj_code.upper(): o for o in objects}

        self._by_email: dict[str, list[Relation]] = defaultdict(list)
        self._by_domain: dict[str, list[Relation]] = defaultdict(list)
        self._by_phone: dict[str, list[Relation]] = defaultdict(list)
        self._by_street: dict[tuple[str, str], list[Relation]] = defaultdict(list)
        for relation in self.relations.values():
            self._index(relation)

        self._addresses_of: dict[str, list[Address]] = defaultdict(list)
        for address in self.addresses.values():
            self._addresses_of[address.adr_debtor_nr].append(address)
        self._contacts_of: dict[str, list[ContactPerson]] = defaultdict(list)
        for person in self.contact_persons.values():
            self._contacts_of[person.cpn_debtor_nr].append(person)
            if person.cpn_email and person.cpn_debtor_nr in self.relations:
                relation = self.relations[person.cpn_debtor_nr]
                self._add_once(self._by_email, person.cpn_email.lower(), relation)

    @staticmethod
    def _add_once(
        index: dict[Any, list[Relation]], key: Any, relation: Relation
    ) -> None:
        if key and relation not in index[key]:
            index[key].append(relation)

    def _index(self, relation: Relation) -> None:
        for index, key in self._entries(relation):
            self._add_once(index, key, relation)

    def _entries(
        self, relation: Relation
    ) -> Iterator[tuple[dict[Any, list[Relation]], Any]]:
        """The (index, key) pairs of a relation's own fields."""
        for address in (relation.email, relation.email_workorder):
            for part in re.split(r"[;,\s]+", address.lower()):
                if "@" in part:
                    yield self._by_email, part
                    yield self._by_domain, part.rsplit("@", 1)[1]
        if relation.phone_number:
            yield self._by_phone, normalise_phone(relation.phone_number)
        if relation.street:
            yield self._by_street, _street_key(relation.street, relation.house_number)

    def relations_by_email(self, address: str) -> list[Relation]:
        """Relations whose e-mail, work-order e-mail or contact has ``address``."""
        return list(self._by_email.get(address.lower(), []))

    def relations_by_domain(self, domain: str) -> list[Relation]:
        """Relations with an e-mail address at ``domain``."""
        return list(self._by_domain.get(domain.lower(), []))

    def relations_by_phone(self, phone: str) -> list[Relation]:
        """Relations whose phone number has the same normalised digits."""
        return list(self._by_phone.get(normalise_phone(phone), []))

    def relations_by_street(
        self, street: str, house_number: str, postal_code: str = ""
    ) -> list[Relation]:
        """Relations at this street and number (and postal code when given)."""
        found = self._by_street.get(_street_key(street, house_number), [])
        if postal_code:
            wanted = normalise_postal_code(postal_code)
            found = [r for r in found if normalise_postal_code(r.postal_code) == wanted]
        return list(found)

    def relation(self, debtor_number: str) -> Relation | None:
        """The relation with this debtor number."""
        return self.relations.get(debtor_number.strip())

    def object(self, obj_code: str) -> WorkObject | None:
        """The object with this code (case-insensitive)."""
        return self.objects.get(obj_code.strip().upper())

    def address(self, adr_code: str) -> Address | None:
        """The address with this code."""
        return self.addresses.get(adr_code)

    def addresses_of(self, debtor_number: str) -> list[Address]:
        """The work addresses of a relation."""
        return list(self._addresses_of.get(debtor_number, []))

    def contact_persons_of(self, debtor_number: str) -> list[ContactPerson]:
        """The contact persons of a relation."""
        return list(self._contacts_of.get(debtor_number, []))

    def find_address(
        self, debtor_number: str, postal_code: str, house_number: str
    ) -> Address | None:
        """A relation's address by postal code and house number."""
        zip_key = normalise_postal_code(postal_code)
        number = house_number.replace(" ", "").lower()
        for address in self._addresses_of.get(debtor_number, []):
            _, line_number = _split_line(address.adr_line_1)
            if (
                normalise_postal_code(address.adr_zip) == zip_key
                and line_number.replace(" ", "").lower() == number
            ):
                return address
        return None

    def with_added(
        self, relation: Relation | None = None, address: Address | None = None
    ) -> Directory:
        """A copy with one relation and/or address added.

        Only the new records are indexed; the copy shares everything else
        with this directory, which stays as it was. A record that replaces
        one with the same code makes a full rebuild instead.
        """
        if self._must_rebuild(relation, address):
            return Directory(
                {**self.relations, **_by_code(relation, "debtor_number")}.values(),
                {**self.addresses, **_by_code(address, "adr_code")}.values(),
                self.contact_persons.values(),
                self.objects.values(),
            )

        copy = object.__new__(Directory)
        copy.__dict__.update(self.__dict__)
        if relation is not None:
            copy.relations = {**self.relations, relation.debtor_number: relation}
            copy._by_email = defaultdict(list, self._by_email)
            copy._by_domain = defaultdict(list, self._by_domain)
            copy._by_phone = defaultdict(list, self._by_phone)
            copy._by_street = defaultdict(list, self._by_street)
            entries = list(copy._entries(relation))
            for person in self._contacts_of.get(relation.debtor_number, []):
                if person.cpn_email:
                    entries.append((copy._by_email, person.cpn_email.lower()))
            for index, key in entries:
                # A new list: the lists of this directory stay as they are.
                if key and relation not in index.get(key, ()):
                    index[key] = [*index.get(key, ()), relation]
        if address is not None:
            copy.addresses = {**self.addresses, address.adr_code: address}
            copy._addresses_of = defaultdict(list, self._addresses_of)
            debtor = address.adr_debtor_nr
            copy._addresses_of[debtor] = [*self._addresses_of.get(debtor, ()), address]
        return copy

    def _must_rebuild(self, relation: Relation | None, address: Address | None) -> bool:
        """Whether adding these needs a full rebuild to index them as one would.

        That is when a record replaces one with the same code, or when the
        relation's e-mail is known already: a rebuild puts relations found by
        their own address before those found through a contact person.
        """
        if address is not None and address.adr_code in self.addresses:
            return True
        if relation is None:
            return False
        if relation.debtor_number in self.relations:
            return True
        emails = [
            key for index, key in self._entries(relation) if index is self._by_email
        ]
        emails += [
            person.cpn_email.lower()
            for person in self._contacts_of.get(relation.debtor_number, [])
            if person.cpn_email
        ]
        return any(self._by_email.get(email) for email in emails)


def _by_code(record: Relation | Address | None, code: str) -> dict[str, Any]:
    return {getattr(record, code): record} if record is not None else {}


def split_address_line(line: str) -> tuple[str, str]:
    """Split ``Lindelaan 14a`` into street and house number."""
    return _split_line(line)
