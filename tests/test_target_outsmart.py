"""The OutSmart target, through requests, against the loopback fake OpenAPI 8."""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.directory import Address, Relation
from connector.targets.base import FileAttachment, Note
from connector.targets.outsmart import OutSmartTarget
from providers.errors import AuthError, PermanentError, SettingsError, TransientError
from tests.fakes.outsmart import FakeOutSmart

RELATIONS: list[dict[str, Any]] = [
    {
        "debtor_number": "D10023",
        "name": "Bakkerij Van Dijk B.V.",
        "contact": "Marieke van Dijk",
        "phone_number": "030-1234567",
        "email": "info@bakkerijvandijk.example",
        "email_workorder": "werkbonnen@bakkerijvandijk.example",
        "street": "Kerkstraat",
        "house_number": "12a",
        "postal_code": "3511 LK",
        "city": "Utrecht",
        "remark": "",
        "latitude": None,
        "longitude": None,
    },
    {
        "debtor_number": "D20417",
        "name": "Slagerij Bos",
        "street": "Markt",
        "house_number": "3",
        "postal_code": "9711 AB",
        "city": "Groningen",
        "email": "post@slagerijbos.example",
    },
]
ADDRESSES: list[dict[str, Any]] = [
    {
        "adr_debtor_nr": "D10023",
        "adr_code": "ADR-5521",
        "adr_cpn_code": "CP-7781",
        "adr_line_1": "Kerkstraat 12a",
        "adr_zip": "3511 LK",
        "adr_city": "Utrecht",
    }
]
CONTACTS: list[dict[str, Any]] = [
    {
        "cpn_debtor_nr": "D10023",
        "cpn_code": "CP-7781",
        "cpn_name": "Marieke van Dijk",
        "cpn_email": "marieke@bakkerijvandijk.example",
    }
]
OBJECTS: list[dict[str, Any]] = [
    {
        "obj_code": "OBJ-OVEN-2",
        "obj_debiteur_nummer": "D10023",
        "obj_description": "Heteluchtoven 2",
        "obj_adr_code": "ADR-5521",
        "obj_price": 1200,
    }
]
WORKTYPES: list[dict[str, Any]] = [
    {
        "wrt_name": "Storing",
        "wrt_description": "Storing",
        "wrt_default_minutes": "60",
        "wrt_active": "1",
    }
]


def order(number: str = "2026-0042", **changes: object) -> dict[str, object]:
    """A work order with the 15 required fields and a few optional ones."""
    fields: dict[str, object] = {
        "WorkorderNo": number,
        "CustomerName": "Bakkerij Van Dijk B.V.",
        "CustomerDebtorNr": "D10023",
        "CustomerStreet": "Kerkstraat",
        "CustomerStreetNo": "12a",
        "CustomerZIP": "3511 LK",
        "CustomerCity": "Utrecht",
        "CustomerContactPerson": "Marieke van Dijk",
        "CustomerNameInvoice": "Bakkerij Van Dijk B.V.",
        "CustomerDebtorNrInvoice": "D10023",
        "CustomerStreetInvoice": "Kerkstraat",
        "CustomerZIPInvoice": "3511 LK",
        "CustomerCityInvoice": "Utrecht",
        "CustomerContactPersonInvoice": "Marieke van Dijk",
        "TypeOfWork": "Storing",
        "PaymentMethod": "niet van toepassing",
        "WorkDescription": "Oven 2 valt uit",
        "AdrCode": "ADR-5521",
        "WorkDuration": 90,
        "WorkObjects": ["OBJ-OVEN-2"],
    }
    fields.update(changes)
    return fields


@pytest.fixture
def fake() -> Iterator[FakeOutSmart]:
    with FakeOutSmart() as server:
        server.seed(
            relations=RELATIONS,
            addresses=ADDRESSES,
            contactpersons=CONTACTS,
            objects=OBJECTS,
            worktypes=WORKTYPES,
        )
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def target(fake: FakeOutSmart, sleeps: list[float]) -> Iterator[OutSmartTarget]:
    client = OutSmartTarget(
        fake.base_url, fake.token, fake.software_token, timeout=5, sleep=sleeps.append
    )
    yield client
    client.close()


def no_token_in(fake: FakeOutSmart, text: str) -> bool:
    return fake.token not in text and fake.software_token not in text


# directory ------------------------------------------------------------------
def test_directory_holds_relations_addresses_contacts_and_objects(
    target: OutSmartTarget,
) -> None:
    """load_directory reads the four lists and indexes them for the rules."""
    directory = target.load_directory()

    by_mail = directory.relations_by_email("werkbonnen@bakkerijvandijk.example")
    assert [r.debtor_number for r in by_mail] == ["D10023"]
    assert directory.relations_by_email("marieke@bakkerijvandijk.example") == by_mail
    assert directory.relations_by_phone("+31 30 123 4567") == by_mail
    assert directory.find_address("D10023", "3511lk", "12A") == directory.address(
        "ADR-5521"
    )
    work_object = directory.object("obj-oven-2")
    assert work_object is not None
    assert work_object.obj_adr_code == "ADR-5521"


def test_directory_is_read_once_until_refresh(
    target: OutSmartTarget, fake: FakeOutSmart
) -> None:
    """The directory is cached for a pass; refresh() makes the next read fresh."""
    target.load_directory()
    target.load_directory()
    assert len(fake.requests_to("relations")) == 1

    target.refresh()
    target.load_directory()
    assert len(fake.requests_to("relations")) == 2
    assert len(fake.requests_to("objects")) == 2


def test_fake_filters_relations_like_the_reference(fake: FakeOutSmart) -> None:
    """The fake honours key[]/value[]/operator[] and the simple key/value filter."""
    base = [("token", fake.token), ("software_token", fake.software_token)]
    email = [
        ("key[]", "email"),
        ("value[]", "INFO@bakkerijvandijk.example"),
        ("operator[]", "eq"),
    ]
    found = requests.get(f"{fake.base_url}/relations/", params=base + email).json()
    assert [r["debtor_number"] for r in found["response"]] == ["D10023"]

    like = [("key", "city"), ("value", "ningen"), ("operator", "li")]
    found = requests.get(f"{fake.base_url}/relations", params=base + like).json()
    assert [r["debtor_number"] for r in found["response"]] == ["D20417"]

    simple = [("key", "obj_code"), ("value", "OBJ-OVEN-2")]
    found = requests.get(f"{fake.base_url}/object/", params=base + simple).json()
    assert found["response"][0]["obj_price"] == "1200"


def test_add_relation_posts_one_record_and_updates_the_directory(
    target: OutSmartTarget, fake: FakeOutSmart
) -> None:
    """add_relation upserts by debtor number and the cached directory sees it."""
    target.load_directory()
    relation = Relation(
        debtor_number="M-0001",
        name="J. de Vries",
        street="Lindelaan",
        house_number="14a",
        postal_code="1234 AB",
        city="Zwolle",
        email="jdevries@gmail.example",
    )

    target.add_relation(relation)

    posted = fake.requests_to("relations", "POST")
    assert len(posted) == 1
    assert posted[0].body[0]["debtor_number"] == "M-0001"
    assert fake.relations["M-0001"]["city"] == "Zwolle"
    assert target.load_directory().relation("M-0001") == relation
    assert len(fake.requests_to("relations", "GET")) == 1


def test_add_address_upserts_by_adr_code(
    target: OutSmartTarget, fake: FakeOutSmart
) -> None:
    """Posting an address with a known adr_code replaces it, never duplicates."""
    moved = Address("ADR-5521", "D10023", "Kerkstraat 14", "3511 LK", "Utrecht")

    target.add_address(moved)
    target.add_address(moved)

    assert list(fake.addresses) == ["ADR-5521"]
    assert fake.addresses["ADR-5521"]["adr_line_1"] == "Kerkstraat 14"
    assert target.load_directory().address("ADR-5521") == moved


def test_relation_without_required_field_is_permanent_with_the_api_message(
    target: OutSmartTarget,
) -> None:
    """Code 1301 becomes a PermanentError naming the relation and the field."""
    incomplete = Relation(debtor_number="M-0002", name="Zonder Straat")

    with pytest.raises(PermanentError) as caught:
        target.add_relation(incomplete)

    message = str(caught.value)
    assert "relation M-0002" in message
    assert "1301" in message
    assert "Required field missing: street" in message


# work orders ----------------------------------------------------------------
def test_create_posts_strings_lists_and_base64_attachments(
    target: OutSmartTarget, fake: FakeOutSmart
) -> None:
    """PostWorkorders gets string scalars, lists as lists, files as base64."""
    photo = FileAttachment("oven.jpg", "image/jpeg", b"\xff\xd8\xff\xe0jpeg")

    target.create_workorder(order(CustomerLatitude=None, PickupPlanning=False), [photo])

    [posted] = fake.requests_to("PostWorkorders")
    [sent] = posted.body
    assert sent["WorkDuration"] == "90"
    assert sent["PickupPlanning"] == "0"
    assert sent["CustomerLatitude"] is None
    assert sent["WorkObjects"] == ["OBJ-OVEN-2"]
    assert sent["Attachments"] == [
        {"Data": base64.b64encode(photo.data).decode(), "FileName": "oven.jpg"}
    ]
    [stored] = fake.orders_numbered("2026-0042")
    assert stored["status"] == "Klaargezet"
    assert target.has_workorder("2026-0042")


def test_create_twice_stores_one_order_and_never_marks_it_handled(
    target: OutSmartTarget, fake: FakeOutSmart
) -> None:
    """A repeated create is a no-op, and lookups send update_status=false."""
    target.create_workorder(order(), [])
    target.create_workorder(order(), [])

    assert len(fake.orders_numbered("2026-0042")) == 1
    assert len(fake.requests_to("PostWorkorders")) == 1
    lookups = fake.requests_to("GetWorkorder")
    assert len(lookups) == 2
    assert {r.param("update_status") for r in lookups} == {"false"}
    assert fake.marked_handled == []


def test_create_after_a_lost_reply_looks_up_before_posting_again(
    target: OutSmartTarget, fake: FakeOutSmart, sleeps: list[float]
) -> None:
    """When the POST's answer is lost, the retry finds the order and stops."""
    fake.fail_next(1, "lost_reply", endpoint="PostWorkorders")

    target.create_workorder(order(), [])

    assert len(fake.orders_numbered("2026-0042")) == 1
    assert len(fake.requests_to("PostWorkorders")) == 1
    assert len(fake.requests_to("GetWorkorder")) == 2
    assert len(sleeps) == 1


def test_unknown_workorder_number_is_absent(target: OutSmartTarget) -> None:
    """GetWorkorder code 1500 means has_workorder is False, not an error."""
    assert target.has_workorder("2026-9999") is False


def test_missing_required_field_is_permanent_naming_order_and_messages(
    target: OutSmartTarget, fake: FakeOutSmart, sleeps: list[float]
) -> None:
    """Code 1501 is not retried; the error names the order and each field."""
    incomplete = order(CustomerZIP="", PaymentMethod="")

    with pytest.raises(PermanentError) as caught:
        target.create_workorder(incomplete, [])

    message = str(caught.value)
    assert "work order 2026-0042" in message
    assert "1501" in message
    assert "Required field missing: CustomerZIP" in message
    assert "Required field missing: PaymentMethod" in message
    assert sleeps == []
    assert fake.workorders == {}


def test_workorder_without_number_is_permanent(target: OutSmartTarget) -> None:
    """An order without WorkorderNo is refused before any request."""
    with pytest.raises(PermanentError, match="without WorkorderNo"):
        target.create_workorder(order(WorkorderNo=""), [])


# notes ----------------------------------------------------------------------
def test_append_note_twice_adds_one_note_listing_the_files(
    target: OutSmartTarget, fake: FakeOutSmart
) -> None:
    """A note is a generic note on the OrderNr, added once per note_key."""
    target.create_workorder(order(), [])
    [stored] = fake.orders_numbered("2026-0042")
    note = Note(
        text="Oven 2 valt nu ook tijdens bakken uit.\n\nGroet, Marieke",
        attachments=(FileAttachment("display.jpg", "image/jpeg", b"jpg"),),
        sender="marieke@bakkerijvandijk.example",
    )

    target.append_note("2026-0042", note, "<reply-1@bakkerijvandijk.example>")
    target.append_note("2026-0042", note, "<reply-1@bakkerijvandijk.example>")

    [added] = fake.notes_on(stored["OrderNr"])
    assert added["nte_column"] == "OrderNr"
    assert "Oven 2 valt nu ook tijdens bakken uit." in added["nte_content"]
    assert "display.jpg" in added["nte_content"]
    assert "[mail2wo:&lt;reply-1@bakkerijvandijk.example&gt;]" in added["nte_content"]
    assert added["nte_created_by"] == "marieke@bakkerijvandijk.example"
    assert fake.marked_handled == []


def test_append_note_finds_its_marker_among_other_notes(
    target: OutSmartTarget, fake: FakeOutSmart
) -> None:
    """Another note on the same order does not count as ours; ours does."""
    target.create_workorder(order(), [])
    [stored] = fake.orders_numbered("2026-0042")
    fake.notes.append(
        {
            "nte_entity": "worksheets",
            "nte_column": "OrderNr",
            "nte_primary": stored["OrderNr"],
            "nte_content": "<p>Planner: onderdeel besteld</p>",
        }
    )

    target.append_note("2026-0042", Note(text="Eerste"), "k1")
    target.append_note("2026-0042", Note(text="Tweede"), "k2")
    target.append_note("2026-0042", Note(text="Eerste"), "k1")

    assert len(fake.notes_on(stored["OrderNr"])) == 3


def test_append_note_to_unknown_order_is_permanent(target: OutSmartTarget) -> None:
    """A note for a number OutSmart does not know can never be added."""
    with pytest.raises(PermanentError, match="no work order 2026-9999"):
        target.append_note("2026-9999", Note(text="hallo"), "k1")


def test_append_note_waits_for_an_order_number(
    target: OutSmartTarget, fake: FakeOutSmart, sleeps: list[float]
) -> None:
    """Without an OrderNr the note is transient, left to a later pass."""
    target.create_workorder(order(), [])
    fake.orders_numbered("2026-0042")[0]["OrderNr"] = ""

    with pytest.raises(TransientError, match="OrderNr") as caught:
        target.append_note("2026-0042", Note(text="hallo"), "k1")

    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 60
    assert sleeps == []
    assert fake.notes == []


# errors ---------------------------------------------------------------------
def test_refused_token_is_an_auth_error_naming_the_setting(
    fake: FakeOutSmart,
) -> None:
    """Code 1004 becomes AuthError pointing at MAIL2WO_OUTSMART_TOKEN."""
    client = OutSmartTarget(fake.base_url, "wrong-token-3141", fake.software_token)

    with pytest.raises(AuthError) as caught:
        client.load_directory()

    message = str(caught.value)
    assert "OutSmart refused the token (code 1004)" in message
    assert "MAIL2WO_OUTSMART_TOKEN" in message
    assert "wrong-token-3141" not in message
    assert no_token_in(fake, message)


def test_refused_software_token_is_an_auth_error(fake: FakeOutSmart) -> None:
    """Code 1005 becomes AuthError pointing at the software-token setting."""
    client = OutSmartTarget(fake.base_url, fake.token, "wrong-software-2718")

    with pytest.raises(AuthError, match="MAIL2WO_OUTSMART_SOFTWARE_TOKEN"):
        client.has_workorder("2026-0042")


def test_empty_token_is_a_settings_error() -> None:
    """A target without a token fails at construction, naming the variable."""
    with pytest.raises(SettingsError, match="MAIL2WO_OUTSMART_TOKEN"):
        OutSmartTarget("https://www.out-smart.com/openapi/8", "", "soft")


def test_tokens_stay_out_of_errors_tracebacks_and_logs(
    fake: FakeOutSmart, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """Connection failures are reported without the token-bearing URL."""
    base_url = fake.base_url
    fake.stop()
    client = OutSmartTarget(
        base_url, fake.token, fake.software_token, max_retries=1, sleep=sleeps.append
    )
    caplog.set_level(logging.DEBUG)

    with pytest.raises(TransientError) as caught:
        client.has_workorder("2026-0042")

    printed = "".join(traceback.format_exception(caught.value))
    assert "could not be reached" in printed
    assert no_token_in(fake, printed)
    assert no_token_in(fake, caplog.text)
    assert "token=***" in caplog.text


@pytest.mark.parametrize("fault", ["1007", "503", "drop"])
def test_transient_failures_are_retried_then_succeed(
    target: OutSmartTarget, fake: FakeOutSmart, sleeps: list[float], fault: str
) -> None:
    """1007, HTTP 503 and a dropped connection are retried with backoff."""
    fake.fail_next(2, fault)

    target.create_workorder(order(), [])

    assert len(fake.orders_numbered("2026-0042")) == 1
    assert len(sleeps) == 2
    assert 0 < sleeps[0] <= sleeps[1] * 2


def test_lasting_failure_is_transient_after_max_retries(
    fake: FakeOutSmart, sleeps: list[float]
) -> None:
    """After max_retries extra tries the last transient error is raised."""
    client = OutSmartTarget(
        fake.base_url,
        fake.token,
        fake.software_token,
        max_retries=2,
        sleep=sleeps.append,
    )
    fake.fail_next(10, "503")

    with pytest.raises(TransientError, match=r"HTTP 503.*gave up after 3 tries"):
        client.load_directory()

    assert len(fake.requests) == 3
    assert len(sleeps) == 2


def test_slow_answer_is_a_transient_timeout(
    fake: FakeOutSmart, sleeps: list[float]
) -> None:
    """A request that outlasts the timeout fails as transient."""
    client = OutSmartTarget(
        fake.base_url,
        fake.token,
        fake.software_token,
        timeout=0.2,
        max_retries=0,
        sleep=sleeps.append,
    )
    fake.slow_seconds = 0.6
    fake.fail_next(1, "slow")

    with pytest.raises(TransientError, match=r"within 0\.2 s"):
        client.has_workorder("2026-0042")


def test_wrong_base_url_is_permanent(fake: FakeOutSmart) -> None:
    """A path outside the API answers 1000, which no retry will fix."""
    client = OutSmartTarget(
        fake.base_url.replace("/openapi/8", "/api"), fake.token, fake.software_token
    )

    with pytest.raises(PermanentError, match="code 1000"):
        client.load_directory()


def test_check_online_summarises_relations_and_work_types(
    target: OutSmartTarget, fake: FakeOutSmart
) -> None:
    """check_online reads two lists and touches no work order."""
    summary = target.check_online()

    assert summary == f"OutSmart at {fake.base_url}: 2 relations, 1 work types"
    assert {r.endpoint for r in fake.requests} == {"worktypes", "relations"}
