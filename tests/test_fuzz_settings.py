"""Fuzzing settings and regex rules: one clear line or a working setup, never a crash.

Random ``settings.toml`` files must give valid :class:`Settings` or a
:class:`SettingsError` of one line that names the file. Random regex
patterns, catastrophic ones among them, must either be refused at load or
stop at ``regex_timeout_ms`` — and the mail still gets an outcome.

The runs are derandomised (same examples every time) and small, so the
suite stays fast.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from connector.app import open_workspace
from connector.decide import Delivery
from connector.settings import Settings, load_settings
from providers.errors import SettingsError

FUZZ = hypothesis_settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ_RULES = hypothesis_settings(FUZZ, max_examples=60)

#: A valid settings document; the fuzzer mutates it.
BASE: dict[str, Any] = {
    "timezone": "Europe/Amsterdam",
    "daily_limit": 0,
    "max_new_per_sender_per_hour": 20,
    "regex_timeout_ms": 500,
    "state": {"path": "var"},
    "target": {"kind": "local"},
    "defaults": {"TypeOfWork": "Storing"},
    "mailbox": [
        {"name": "demo", "kind": "folder", "path": "inbox", "since": date(2026, 11, 1)}
    ],
    "configuration": [
        {
            "name": "Storingen",
            "sender_type": "TitleContains",
            "sender_value": "storing",
            "customer_rules": ["FindOrAddRelationByEmail"],
            "regex_rule": [{"name": "customer_phone", "pattern": r"tel\s*(\d+)"}],
            "forced_values": {"ShortWorkDescription": "Storing: {subject}"},
            "options": {"include_inline": False, "max_attachment_mb": 25},
        }
    ],
}


# -- writing TOML ------------------------------------------------------------


def _string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, except for DEL)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """``value`` as a TOML inline value (tables inline, arrays mixed)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, datetime | date | clock):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    pairs = (f"{_string(str(k))} = {toml_value(v)}" for k, v in value.items())
    return "{" + ", ".join(pairs) + "}"


def toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{_string(str(k))} = {toml_value(v)}\n" for k, v in data.items())


# -- strategies ----------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "timezone",
        "daily_limit",
        "max_new_per_sender_per_hour",
        "regex_timeout_ms",
        "max_mail_mb",
        "workorder_prefix",
        "state",
        "target",
        "defaults",
        "mailbox",
        "configuration",
        "path",
        "kind",
        "name",
        "sender_type",
        "sender_value",
        "customer_rules",
        "regex_rule",
        "pattern",
        "source",
        "flags",
        "forced_values",
        "options",
        "since",
        "post_action",
        "auth",
        "max_attachment_mb",
        "relations",
        "url",
        "ShortWorkDescription",
        "bogus",
    ]
)

SCALARS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "Any",
            "Sender",
            "folder",
            "graph",
            "gmail",
            "webhook",
            "outsmart",
            "Europe/",
            "Mars/Olympus",
            "a" * 300,
            "../../etc/passwd",
            "move_to:",
            "add_label:Werk",
            "(",
            "(?P<value>",
            "(" * 3000 + ")" * 3000,
            "[z-a]",
            "{subject}",
            "FindOrAddRelationByNothing",
        ]
    ),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
    st.times(),
)

VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(KEYS | st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated_settings(draw: st.DrawFn) -> dict[str, Any]:
    """The base settings with a few random replacements, removals, additions."""
    data = json.loads(json.dumps(BASE, default=str))
    data["mailbox"][0]["since"] = date(2026, 11, 1)
    for _ in range(draw(st.integers(1, 4))):
        node: Any = data
        for step in draw(st.lists(st.integers(0, 5), max_size=4)):
            children = node.values() if isinstance(node, dict) else node
            tables = [c for c in children if isinstance(c, dict | list)]
            if not tables:
                break
            node = tables[step % len(tables)]  # down into a random table or array
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if isinstance(node, list):
            if action == "remove" and node:
                node.pop()
            else:
                node.append(draw(VALUES))
        elif action == "add" or not node:
            node[draw(KEYS)] = draw(VALUES)
        else:
            key = draw(st.sampled_from(sorted(node)))
            if action == "remove":
                del node[key]
            else:
                node[key] = draw(VALUES)
    return data


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mail2wo-fuzz-") as folder:
        yield Path(folder)


def assert_one_clear_line_or_settings(path: Path) -> Settings | None:
    """Load ``path``: valid settings, or one line that names the file."""
    try:
        return load_settings(path)
    except SettingsError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1, message
        assert message.startswith(f"{path}: "), message
        assert len(message) < 2000, message[:200]
        return None


# -- settings ------------------------------------------------------------------


@FUZZ
@given(data=mutated_settings())
@example(data={**BASE, "defaults": {"Type\nOf\u2028Work": "x"}})
@example(data={**BASE, "bo\rgus": 1})
@example(data={**BASE, "timezone": "a" * 300})
def test_random_settings_load_or_give_one_clear_line(
    scratch: Path, data: dict[str, Any]
) -> None:
    """Mutated settings: valid Settings or one SettingsError line, no traceback."""
    path = scratch / "mutated.toml"
    path.write_text(toml_document(data), encoding="utf-8")

    assert_one_clear_line_or_settings(path)


@FUZZ
@given(text=st.text(max_size=300))
@example(text='timezone = "' + "a" * 300 + '"\n')
@example(text='timezone = "Europe"\n')
@example(text="[state\npath = 1")
@example(text="daily_limit = -1\n")
@example(text="max_mail_mb = nan\n")
def test_random_text_loads_or_gives_one_clear_line(scratch: Path, text: str) -> None:
    """Any text as settings.toml: valid Settings or one clear line."""
    path = scratch / "text.toml"
    path.write_text(text, encoding="utf-8")

    assert_one_clear_line_or_settings(path)


@FUZZ
@given(raw=st.binary(max_size=200))
@example(raw=b"\xff\xfe\x00t\x00i\x00m\x00e")
def test_random_bytes_load_or_give_one_clear_line(scratch: Path, raw: bytes) -> None:
    """Bytes that are not UTF-8 TOML give one clear line."""
    path = scratch / "bytes.toml"
    path.write_bytes(raw)

    assert_one_clear_line_or_settings(path)


# -- regex rules -------------------------------------------------------------

ATOMS = st.sampled_from(["a", "b", ".", r"\w", r"\d", r"\s", "[a-z]", "!", "a?"])


def _patterns(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map("|".join),
        inner.map(lambda p: f"({p})"),
        inner.map(lambda p: f"(?:{p})"),
        inner.map(lambda p: f"(?P<value>{p})"),
        st.tuples(inner, st.sampled_from(["+", "*", "?", "{2,}", "{1,3}", "+?"])).map(
            "".join
        ),
        inner.map(lambda p: f"^{p}$"),
    )


PATTERNS = st.one_of(
    st.recursive(ATOMS, _patterns, max_leaves=6),
    st.text(max_size=20),
)

CATASTROPHIC = [
    "(a+)+$",
    "(a|aa)+$",
    "(a|a?)+$",
    "((a+)+)+c",
    "(?:a+){2,}$",
    "([a-z]+)*[0-9]$",
    "(a+a+)+b",
]

RULES_SETTINGS = """\
regex_timeout_ms = {timeout}
max_new_per_sender_per_hour = 0

[state]
path = "{state}"

[target]
kind = "local"
relations = "{relations}"

[[configuration]]
name = "Alles"
sender_type = "Any"
forced_debtor_number = "10001"

[[configuration.regex_rule]]
name = "fuzzed"
pattern = {pattern}
source = "both"

[configuration.forced_values]
ExternProjectNr = "{{fuzzed}}"
"""

RELATIONS = (
    "debtor_number,name,contact,phone_number,email,email_workorder,street,"
    "house_number,postal_code,city,remark\n"
    "10001,Woonstichting De Linde,Renske,050-1,a@delinde.nl,a@delinde.nl,"
    "Zuiderdiep,120,9711 HM,Groningen,\n"
)

TIMEOUT_MS = 20


def long_mail(number: int, body: str) -> bytes:
    return (
        "From: huurder@example.nl\r\nSubject: Storing cv-ketel\r\n"
        f"Message-ID: <fuzz-{number}@example.nl>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode() + body.encode()


_counter = iter(range(10**9))


@FUZZ_RULES
@given(
    pattern=PATTERNS | st.sampled_from(CATASTROPHIC),
    body=st.sampled_from(["a" * 20_000 + "!", "x" * 5000, "tel 0612345678\r\n"]),
)
@example(pattern="(a+)+$", body="a" * 20_000 + "!")
@example(pattern="(" * 3000 + "a" + ")" * 3000, body="a")
def test_regex_rule_is_refused_at_load_or_stopped_in_time(
    scratch: Path, pattern: str, body: str
) -> None:
    """A pattern is refused with one line, or runs within its time limit."""
    state = scratch / f"state-{next(_counter)}"
    relations = scratch / "relations.csv"
    relations.write_text(RELATIONS)
    path = scratch / "rules.toml"
    path.write_text(
        RULES_SETTINGS.format(
            timeout=TIMEOUT_MS,
            state=state,
            relations=relations,
            pattern=_string(pattern),
        ),
        encoding="utf-8",
    )
    settings = assert_one_clear_line_or_settings(path)
    if settings is None:
        return

    with open_workspace(settings) as workspace:
        started = time.perf_counter()
        result = workspace.processor.process(
            long_mail(next(_counter), body),
            Delivery(mode="drop", mailbox="drop", provider_id="fuzz.eml"),
            datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        )
        elapsed = time.perf_counter() - started
        entries = list(workspace.store.log_entries())

    assert str(result.outcome) == "created", result.reason
    assert len(entries) == 1
    # subject and body are both searched; the regex module may overshoot
    # its limit a few times over, and processing itself costs a little.
    assert elapsed < 2 * 5 * TIMEOUT_MS / 1000 + 1.0
    if any("ran past" in w for w in result.warnings):
        assert result.workorder is not None
        assert result.workorder["ExternProjectNr"] == ""


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_pattern_is_stopped_and_the_mail_is_created(
    scratch: Path, pattern: str
) -> None:
    """``(a+)+$`` on a long body stops at the limit, with a warning in the log."""
    state = scratch / f"state-{next(_counter)}"
    relations = scratch / "relations.csv"
    relations.write_text(RELATIONS)
    path = scratch / "catastrophic.toml"
    path.write_text(
        RULES_SETTINGS.format(
            timeout=TIMEOUT_MS,
            state=state,
            relations=relations,
            pattern=_string(pattern),
        )
    )
    settings = load_settings(path)

    with open_workspace(settings) as workspace:
        result = workspace.processor.process(
            long_mail(next(_counter), "a" * 20_000 + "!"),
            Delivery(mode="drop", mailbox="drop", provider_id="slow.eml"),
            datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        )
        (entry,) = workspace.store.log_entries()

    assert str(result.outcome) == "created"
    assert any("ran past 20 ms" in w for w in result.warnings), result.warnings
    assert entry["outcome"] == "created"
    assert entry["warnings"] == result.warnings
