"""The embedded state: segments behind a journal, the store, the local target."""

from __future__ import annotations

import fcntl
import json
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connector.directory import Address, ContactPerson, Directory, Relation
from connector.targets.base import FileAttachment, Note
from connector.targets.local import LocalTarget
from state.segments import Segments, StateCorrupt
from state.tinydb_store import TinyDBStateStore

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def open_segments(folder: Path, **options: int) -> Segments:
    return Segments(folder, {"items": "key", "log": "id"}, lazy=("log",), **options)


def abandon(database: Segments) -> None:
    """Drop a database the way a kill does: no checkpoint, nothing flushed."""
    database._journal.close()


def segment_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("seg-*.json"))


@pytest.fixture
def store(tmp_path: Path) -> TinyDBStateStore:
    """A store with tiny segments, so that tests cross segments and checkpoints."""
    return TinyDBStateStore(tmp_path / "state", segment_size=4, checkpoint_lines=8)


def reopen(store: TinyDBStateStore) -> TinyDBStateStore:
    store.close()
    return TinyDBStateStore(store.folder, segment_size=4, checkpoint_lines=8)


# segments and the journal --------------------------------------------------
def test_a_write_appends_to_the_journal_and_rewrites_no_segment(tmp_path: Path) -> None:
    """Until a checkpoint, a put writes one journal line and no segment file."""
    database = open_segments(tmp_path, checkpoint_lines=100)
    for number in range(10):
        database["items"].put({"key": f"k{number}", "n": number})

    assert segment_files(tmp_path) == []
    assert len((tmp_path / "journal.jsonl").read_bytes().splitlines()) == 10
    database.close()


def test_a_checkpoint_writes_bounded_segments_and_empties_the_journal(
    tmp_path: Path,
) -> None:
    """After checkpoint_lines writes, segments hold the documents, the journal none."""
    database = open_segments(tmp_path, segment_size=3, checkpoint_lines=7)
    for number in range(7):
        database["items"].put({"key": f"k{number}", "n": number})

    assert (tmp_path / "journal.jsonl").read_bytes() == b""
    files = segment_files(tmp_path / "items")
    assert [len(json.loads(f.read_text())["_default"]) for f in files] == [3, 3, 1]
    database.close()


def test_documents_survive_a_reopen_with_their_latest_content(tmp_path: Path) -> None:
    """A replaced document reads back as its last version after a reopen."""
    database = open_segments(tmp_path, segment_size=2, checkpoint_lines=3)
    for version in range(5):
        for key in ("a", "b", "c"):
            database["items"].put({"key": key, "version": version})
    database["items"].delete("b")
    database.close()

    again = open_segments(tmp_path, segment_size=2, checkpoint_lines=3)
    assert list(again["items"].values()) == [
        {"key": "a", "version": 4},
        {"key": "c", "version": 4},
    ]
    assert again["items"].get("b") is None
    again.close()


def test_a_torn_last_line_is_cut_off_and_later_writes_read_back(
    tmp_path: Path,
) -> None:
    """A kill mid-append leaves the old content; the next appends stay readable."""
    database = open_segments(tmp_path)
    database["items"].put({"key": "a", "version": 1})
    abandon(database)
    with (tmp_path / "journal.jsonl").open("ab") as journal:
        journal.write(b'{"t":"items","s":1,"d":{"key":"a","vers')

    again = open_segments(tmp_path)
    assert again["items"].get("a") == {"key": "a", "version": 1}
    again["items"].put({"key": "b", "version": 1})
    abandon(again)

    third = open_segments(tmp_path)
    assert [d["key"] for d in third["items"].values()] == ["a", "b"]
    third.close()


def test_an_unreadable_line_before_complete_ones_is_reported(tmp_path: Path) -> None:
    """Damage an append cannot cause stops the open, naming the file and line."""
    database = open_segments(tmp_path)
    database["items"].put({"key": "a"})
    database["items"].put({"key": "b"})
    abandon(database)
    journal = tmp_path / "journal.jsonl"
    _, second = journal.read_bytes().splitlines()
    journal.write_bytes(b"{not json\n" + second + b"\n")

    with pytest.raises(StateCorrupt, match=r"journal\.jsonl: line 1"):
        open_segments(tmp_path)


def test_a_kill_during_a_checkpoint_replays_to_the_same_content(
    tmp_path: Path,
) -> None:
    """Segments written, journal not yet emptied: the replay changes nothing."""
    database = open_segments(tmp_path, segment_size=2, checkpoint_lines=1000)
    for number in range(5):
        database["items"].put({"key": f"k{number}", "n": number})
        database["log"].put({"id": number + 1, "text": f"entry {number}"})
    database["items"].put({"key": "k0", "n": 99})
    database.tables["log"].write_dirty()  # the kill comes after the log's segments
    abandon(database)

    again = open_segments(tmp_path, segment_size=2)
    assert [d["id"] for d in again["log"].values()] == [1, 2, 3, 4, 5]
    assert [d["n"] for d in again["items"].values()] == [99, 1, 2, 3, 4]
    again.close()


def test_temporary_files_of_a_cut_off_checkpoint_are_removed(tmp_path: Path) -> None:
    """A half-written segment from a kill is never read and is cleaned up."""
    (tmp_path / "items").mkdir()
    debris = tmp_path / "items" / ".seg-000001.json.x1y2"
    debris.write_text('{"_default": {"1": {"key": "ha')

    open_segments(tmp_path).close()

    assert not debris.exists()


def test_a_lazy_table_keeps_its_newest_segments_and_reads_the_rest(
    tmp_path: Path,
) -> None:
    """The log keeps two segments in memory; values() still returns all."""
    database = open_segments(tmp_path, segment_size=3, checkpoint_lines=4)
    for number in range(1, 12):
        database["log"].put({"id": number})
    database.close()

    again = open_segments(tmp_path, segment_size=3, checkpoint_lines=4)
    log = again["log"]
    assert [d["id"] for d in log.recent()] == [7, 8, 9, 10, 11]
    assert [d["id"] for d in log.values()] == list(range(1, 12))
    again.close()


_WRITER = """
import sys
from state.segments import Segments

database = Segments(
    __import__("pathlib").Path(sys.argv[1]), {"items": "key", "log": "id"},
    lazy=("log",), segment_size=5, checkpoint_lines=7,
)
start = int(sys.argv[2])
for number in range(start, start + 100_000):
    database["items"].put({"key": f"k{number % 13}", "n": number, "pad": "x" * 300})
    database["log"].put({"id": number, "pad": "y" * (number % 500)}, durable=False)
    print(number, flush=True)
"""


def test_a_kill_at_any_instant_loses_no_returned_write(tmp_path: Path) -> None:
    """SIGKILL at random moments: every write that returned is there, whole."""
    chooser = random.Random(20260302)
    start = 1
    for _ in range(6):
        with subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), str(start)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        ) as writer:
            assert writer.stdout is not None
            writer.stdout.readline()  # started writing
            time.sleep(chooser.uniform(0.0, 0.3))
            writer.send_signal(signal.SIGKILL)
            printed = writer.stdout.read().split()
        returned = int(printed[-1]) if printed else start

        database = open_segments(tmp_path, segment_size=5, checkpoint_lines=7)
        entries = [d["id"] for d in database["log"].values()]
        assert entries[:returned] == list(range(1, returned + 1))
        assert entries == list(range(1, len(entries) + 1))
        items = {d["key"]: d["n"] for d in database["items"].values()}
        assert all(number % 13 == int(key[1:]) for key, number in items.items())
        assert max(items.values()) in (len(entries), len(entries) + 1)
        database.close()
        start = len(entries) + 1


# the store ------------------------------------------------------------------
def test_mail_records_and_provider_ids_survive_a_reopen(
    store: TinyDBStateStore,
) -> None:
    """A record, its provider id and its aliases are found after a reopen."""
    for number in range(10):
        store.put_mail(
            {
                "key": f"mid:{number}",
                "status": "seen",
                "mailbox": "m",
                "provider_id": f"p{number}",
            }
        )
    store.put_mail(
        {
            "key": "mid:3",
            "status": "done",
            "mailbox": "m",
            "provider_id": "p3",
            "aliases": [["other", "q3"]],
        }
    )

    store = reopen(store)
    assert store.mail("mid:3") == {
        "key": "mid:3",
        "status": "done",
        "mailbox": "m",
        "provider_id": "p3",
        "aliases": [["other", "q3"]],
    }
    assert store.key_for_provider_id("other", "q3") == "mid:3"
    assert store.key_for_provider_id("m", "p9") == "mid:9"
    store.close()


def test_mails_with_status_follows_every_change_of_status(
    store: TinyDBStateStore,
) -> None:
    """Unfinished mail is found by status, also after it leaves and comes back."""
    for number in range(6):
        store.put_mail({"key": f"k{number}", "status": "seen"})
    for number in (1, 2, 4):
        store.put_mail({"key": f"k{number}", "status": "done"})
    store.put_mail({"key": "k2", "status": "failed"})

    assert [r["key"] for r in store.mails_with_status("seen")] == ["k0", "k3", "k5"]
    assert [r["key"] for r in store.mails_with_status("failed")] == ["k2"]
    assert [r["key"] for r in store.mails_with_status("done")] == ["k1", "k4"]
    store = reopen(store)
    assert [r["key"] for r in store.mails_with_status("seen", "failed")] == [
        "k0",
        "k2",
        "k3",
        "k5",
    ]
    store.close()


def test_workorder_numbers_are_never_reused(store: TinyDBStateStore) -> None:
    """Numbers count up per year and go on after a reopen."""
    first = [store.reserve_workorder_no(2026, "{year}-") for _ in range(3)]
    store = reopen(store)
    later = store.reserve_workorder_no(2026, "WO{year}/")

    assert first == ["2026-0001", "2026-0002", "2026-0003"]
    assert later == "WO2026/0004"
    assert store.reserve_workorder_no(2027, "{year}-") == "2027-0001"
    store.close()


def test_thread_links_and_participants_are_kept(store: TinyDBStateStore) -> None:
    """Message-IDs, thread ids and participants lead back to the work order."""
    store.link_thread(
        "2026-0001",
        message_ids=["a@x"],
        thread_ids=[("m", "t1")],
        participants=["Jan@Example.nl"],
    )
    store.link_thread("2026-0001", message_ids=["b@x"], participants=["p@x.nl"])

    store = reopen(store)
    assert store.workorder_for_message_ids(["zz@x", "b@x"]) == "2026-0001"
    assert store.workorder_for_thread("m", "t1") == "2026-0001"
    assert store.participants("2026-0001") == {"jan@example.nl", "p@x.nl"}
    assert store.participants("2026-0002") is None
    store.close()


def test_a_sender_counter_keeps_one_day_and_quiet_senders_go(
    store: TinyDBStateStore,
) -> None:
    """Counts look back from ``since``; a sender quiet for a day is removed."""
    store.count_new_workorder("A@x.nl", NOW)
    store.count_new_workorder("a@x.nl", NOW + timedelta(hours=2))
    store.count_new_workorder("b@x.nl", NOW + timedelta(hours=3))

    assert store.new_workorders_by_sender("a@x.nl", NOW - timedelta(hours=1)) == 2
    assert store.new_workorders_by_sender("a@x.nl", NOW + timedelta(hours=1)) == 1

    store.count_new_workorder("b@x.nl", NOW + timedelta(days=1, hours=2, minutes=30))
    names = [d["name"] for d in store._meta.values()]
    assert "sender:a@x.nl" not in names
    assert store.new_workorders_by_sender("b@x.nl", NOW) == 2
    store.close()


def test_usage_and_cursors_and_mailbox_status_survive_a_reopen(
    store: TinyDBStateStore,
) -> None:
    """Daily usage, cursors and mailbox health read back after a reopen."""
    for _ in range(3):
        store.count_usage(date(2026, 3, 2))
    store.save_cursor("m", "cursor-1")
    store.set_mailbox_status("m", state="ok", last_sync="now")
    store.set_mailbox_status("m", error=None)

    store = reopen(store)
    assert store.usage(date(2026, 3, 2)) == 3
    assert store.usage(date(2026, 3, 3)) == 0
    assert store.cursor("m") == "cursor-1"
    assert store.mailbox_status("m") == {
        "state": "ok",
        "last_sync": "now",
        "error": None,
    }
    store.close()


def test_the_log_keeps_every_entry_once_per_ref(store: TinyDBStateStore) -> None:
    """Entries come back oldest first; a repeated ref is not logged again."""
    ids = [store.log({"n": number, "ref": f"r{number}"}) for number in range(20)]
    store = reopen(store)

    assert store.log({"n": 19, "ref": "r19"}) == ids[-1]
    assert store.log({"n": 20}) == 21
    assert [e["id"] for e in store.log_entries()] == list(range(1, 22))
    store.close()


def test_an_abandoned_store_opens_with_every_returned_write(tmp_path: Path) -> None:
    """Without close (a kill), the journal brings back what was written."""
    store = TinyDBStateStore(tmp_path / "state")
    store.put_mail({"key": "k1", "status": "decided", "workorder_no": "2026-0001"})
    store.log({"outcome": "created", "ref": "k1#0:created"})
    store._db._journal.close()
    fcntl.flock(store._lock, fcntl.LOCK_UN)  # as the kill would
    store._lock.close()

    again = TinyDBStateStore(tmp_path / "state")
    assert again.mail("k1") == {
        "key": "k1",
        "status": "decided",
        "workorder_no": "2026-0001",
    }
    assert again.log({"outcome": "created", "ref": "k1#0:created"}) == 1
    again.close()


# the local target -----------------------------------------------------------
def write_relations(path: Path) -> Path:
    path.write_text(
        "debtor_number,name,email\nR-1,Bakker BV,info@bakker.nl\n", encoding="utf-8"
    )
    return path


def local_target(tmp_path: Path, relations: Path | None = None) -> LocalTarget:
    files = {"relations": relations, "addresses": None}
    return LocalTarget(
        tmp_path / "local", {**files, "contactpersons": None, "objects": None}
    )


def test_a_work_order_is_one_file_created_once(tmp_path: Path) -> None:
    """A repeated create changes nothing; the order reads back after a reopen."""
    target = local_target(tmp_path)
    target.create_workorder(
        {"WorkorderNo": "2026-0001", "Description": "Storing"},
        [FileAttachment("foto.jpg", "image/jpeg", b"jpeg")],
    )
    target.create_workorder({"WorkorderNo": "2026-0001", "Description": "Other"}, [])
    target.close()

    again = local_target(tmp_path)
    order = again.workorder("2026-0001")
    assert order is not None
    assert order["Description"] == "Storing"
    assert [a["FileName"] for a in order["Attachments"]] == ["foto.jpg"]
    assert [p.name for p in (tmp_path / "local" / "workorders").glob("*.json")] == [
        "2026-0001.json"
    ]
    again.close()


def test_a_note_is_added_once_per_key(tmp_path: Path) -> None:
    """A repeated note key adds nothing; its files land beside the order."""
    target = local_target(tmp_path)
    target.create_workorder({"WorkorderNo": "2026-0001"}, [])
    note = Note("Ook de boiler", (FileAttachment("a.pdf", "application/pdf", b"%"),))
    target.append_note("2026-0001", note, "mid:x")
    target.append_note("2026-0001", note, "mid:x")

    order = target.workorder("2026-0001")
    assert order is not None
    assert [n["key"] for n in order["notes"]] == ["mid:x"]
    assert [a["FileName"] for a in order["Attachments"]] == ["a.pdf"]
    target.close()


def test_a_work_order_number_never_escapes_the_folder(tmp_path: Path) -> None:
    """A prefix with a slash or a leading dot still gives one plain file name."""
    target = local_target(tmp_path)
    for number in ("WO/2026/1", "../x", "."):
        target.create_workorder({"WorkorderNo": number}, [])

    names = sorted(p.name for p in (tmp_path / "local" / "workorders").glob("*.json"))
    assert names == ["%2E.%2Fx.json", "%2E.json", "WO%2F2026%2F1.json"]
    assert {o["WorkorderNo"] for o in target.workorders()} == {"WO/2026/1", "../x", "."}
    assert target.has_workorder("../x")
    target.close()


def test_an_added_relation_joins_the_loaded_directory(tmp_path: Path) -> None:
    """Adding puts the relation into the cached directory; the CSV is not read again."""
    relations = write_relations(tmp_path / "relations.csv")
    target = local_target(tmp_path, relations)
    target.load_directory()
    relations.unlink()  # a re-read would now lose R-1

    target.add_relation(Relation("MW1", "Jansen", email="jan@jansen.nl"))
    target.add_address(Address("A1", "MW1", "Dorpsstraat 1", "1234AB", "Ede"))
    directory = target.load_directory()

    assert [r.debtor_number for r in directory.relations.values()] == ["R-1", "MW1"]
    assert directory.relations_by_email("jan@jansen.nl")[0].name == "Jansen"
    assert directory.find_address("MW1", "1234 ab", "1") is not None
    target.close()

    again = local_target(tmp_path)
    assert again.load_directory().relation("MW1") is not None
    again.close()


# the directory ----------------------------------------------------------------
def lookups(directory: Directory) -> dict[str, object]:
    """Everything a customer rule can ask, for comparing two directories."""
    return {
        "relations": list(directory.relations.values()),
        "email": {k: list(v) for k, v in directory._by_email.items() if v},
        "domain": {k: list(v) for k, v in directory._by_domain.items() if v},
        "phone": {k: list(v) for k, v in directory._by_phone.items() if v},
        "street": {k: list(v) for k, v in directory._by_street.items() if v},
        "addresses_of": {k: list(v) for k, v in directory._addresses_of.items() if v},
    }


@pytest.mark.parametrize(
    ("relation", "address"),
    [
        (Relation("N1", "Nieuw", email="a@nieuw.nl", phone_number="06-1"), None),
        (Relation("N2", "Contact", email="c@bakker.nl"), None),
        (Relation("R-1", "Bakker BV", email="nieuw@bakker.nl"), None),
        (Relation("N3", "Met contact"), Address("A9", "N3", "Laan 2", "1111AA", "X")),
        (None, Address("A1", "R-1", "Weg 3", "2222BB", "Y")),
    ],
    ids=["new", "known-email", "replaced", "with-contact", "replaced-address"],
)
def test_with_added_indexes_as_a_rebuild_would(
    relation: Relation | None, address: Address | None
) -> None:
    """An incremental add answers every lookup like a directory built anew."""
    base = Directory(
        [
            Relation("R-1", "Bakker BV", email="info@bakker.nl", street="Weg 1"),
            Relation("R-2", "Smit", email="smit@bakker.nl", phone_number="06-1"),
        ],
        [Address("A1", "R-1", "Weg 1", "2222BB", "Y")],
        [
            ContactPerson("C1", "R-2", "Piet", cpn_email="c@bakker.nl"),
            ContactPerson("C2", "N3", "Kees", cpn_email="kees@x.nl"),
        ],
    )
    before = lookups(base)

    added = base.with_added(relation=relation, address=address)
    rebuilt = Directory(
        {
            **base.relations,
            **({relation.debtor_number: relation} if relation else {}),
        }.values(),
        {**base.addresses, **({address.adr_code: address} if address else {})}.values(),
        base.contact_persons.values(),
    )

    assert lookups(added) == lookups(rebuilt)
    assert lookups(base) == before
