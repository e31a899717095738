"""Split a plain-text mail body into new reply, quoted history and signature.

This is a focused line scanner, not a wrapper around ``mail-parser-reply``. On the
shared corpus that library (``EmailReplyParser(languages=["nl", "en"])``) matched
11 of the 20 plain-text reply expectations. It keeps Outlook separator lines and
"Sent from my iPhone" in the reply. It misses "Op … schreef Jan <jan@x.nl>:",
bottom-posted replies and attributions wrapped over two lines. It also strips the
indentation from every line, and it treats every "- item" line as the start of a
signature. This scanner matches 18 of those 20. The two it misses are the talon
iPhone and Sparrow cases, where the expected reply keeps the mobile sign-off and
the "-- " signature on purpose.

The scanner makes one pass over the lines with anchored patterns. It runs no regex
on a line longer than ``_MAX_HEADER_CHARS``, so a pathological body costs linear
time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ReplySplit", "split_reply"]


@dataclass(frozen=True)
class ReplySplit:
    """A mail body cut into the new text, the quoted history and the signature."""

    reply: str
    quoted: str
    signature: str


_MAX_HEADER_CHARS = 300

# First words of "On <date>, <name> wrote:" in the languages our customers write.
_ATTRIBUTION_OPENERS = ("on ", "op ", "am ", "le ", "el ", "il ", "em ")
_ATTRIBUTION_VERBS = (
    "wrote",
    "writes",
    "schreef",
    "geschreven",
    "schrieb",
    "écrit",
    "escribió",
    "scritto",
    "escreveu",
    "написал",
    "написала",
)

_SENDER_LABELS = frozenset({"from", "van", "von", "de", "от", "da"})
_HEADER_LABELS = _SENDER_LABELS | {
    "sent",
    "date",
    "to",
    "subject",
    "cc",
    "bcc",
    "reply-to",
    "verzonden",
    "datum",
    "aan",
    "onderwerp",
    "gesendet",
    "an",
    "betreff",
    "envoyé",
    "à",
    "objet",
    "отправлено",
    "кому",
    "тема",
    "дата",
}
_HEADER_LINE = re.compile(r"\s{0,4}\*{0,2}([^\W\d_][\w-]{0,15})\*{0,2} ?:\*{0,2}(.*)")

_HISTORY_SEPARATOR = re.compile(
    r"\s*-{2,}\s*(?:original message|oorspronkelijk bericht|origineel bericht"
    r"|ursprüngliche nachricht|message d'origine|forwarded message"
    r"|doorgestuurd bericht|weitergeleitete nachricht)\s*-{2,}\s*"
    r"|\s*(?:begin forwarded message|begin doorgestuurd bericht)\s*:\s*",
    re.IGNORECASE,
)
_RULE_LINE = re.compile(r"\s*(?:_{10,}|-{10,})\s*")
_UNDERSCORE_LINE = re.compile(r"\s*_{10,}\s*")

_MOBILE_SIGN_OFFS = (
    "sent from my ",
    "sent from outlook",
    "sent from mail for",
    "get outlook for",
    "verstuurd vanaf mijn ",
    "verzonden vanaf mijn ",
    "verzonden met ",
    "verstuurd met ",
    "gesendet von meinem ",
    "envoyé de mon ",
)
_DASH_NAME = re.compile(r"-[^\W\d_][\w.'-]*(?: [\w.'-]+){0,2}")

_CLOSINGS = frozenset(
    {
        "met vriendelijke groet",
        "met vriendelijke groeten",
        "vriendelijke groet",
        "vriendelijke groeten",
        "met hartelijke groet",
        "hartelijke groet",
        "hartelijke groeten",
        "met groet",
        "groet",
        "groeten",
        "groetjes",
        "mvg",
        "m.v.g",
        "gr",
        "bedankt",
        "alvast bedankt",
        "dank je wel",
        "dank u wel",
        "kind regards",
        "kindest regards",
        "best regards",
        "warm regards",
        "with kind regards",
        "regards",
        "best wishes",
        "best",
        "cheers",
        "thanks",
        "thanks again",
        "thank you",
        "many thanks",
        "sincerely",
        "yours sincerely",
    }
)
_CONTACT_MARK = re.compile(
    r"@[\w-]+\.\w|www\.|https?://|\+?\d[\d ()./-]{7,14}\d"
    r"|\b(?:tel|telefoon|mob|mobiel|fax|kvk|phone)\b|^[tmfe] ?[.:] ",
    re.IGNORECASE,
)
_MAX_SIGNATURE_LINES = 12


def split_reply(text: str) -> ReplySplit:
    """Split a body into reply, quoted history and signature; never raises."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    start, cited = _find_quote_start(lines, 0)
    body = lines[:start]
    if start < len(lines) and not _has_text(body) and cited:
        resume = _end_of_cited_block(lines, start)
        later, _ = _find_quote_start(lines, resume)
        body = lines[resume:later]
        quoted = lines[start:resume] + lines[later:]
    else:
        quoted = lines[start:]

    cut = _signature_start(body)

    return ReplySplit(
        reply=_join(body[:cut]),
        quoted=_join(quoted),
        signature="\n".join(body[cut:]).strip(),
    )


def _find_quote_start(lines: list[str], begin: int) -> tuple[int, bool]:
    """Index where quoted history starts, and whether it is a cited (">") block."""
    for index in range(begin, len(lines)):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            continue

        if stripped.startswith(">"):
            return _attribution_start(lines, index, begin), True
        if len(stripped) > _MAX_HEADER_CHARS:
            continue
        if _attribution_end(lines, index) is not None:
            return index, True
        if _HISTORY_SEPARATOR.fullmatch(stripped):
            return index, False
        if _is_header_block(lines, index):
            return _rule_above(lines, index, begin), False

    return len(lines), False


def _attribution_end(lines: list[str], index: int) -> int | None:
    """Last line of an "On … wrote:" attribution starting at index, wrapped or not."""
    opening = lines[index].lstrip(" \t-").lower()  # Yahoo writes "--- On … wrote:"
    if not opening.startswith(_ATTRIBUTION_OPENERS):
        return None

    joined = ""
    for end in range(index, min(index + 3, len(lines))):
        part = lines[end].strip()
        if not part or len(part) > _MAX_HEADER_CHARS:
            return None
        joined = f"{joined} {part}"
        if joined.endswith(":"):
            words = joined[:-1].rstrip().lower()
            return end if words.endswith(_ATTRIBUTION_VERBS) else None

    return None


def _attribution_start(lines: list[str], quote: int, begin: int) -> int:
    """Move a quote start up over an attribution line such as "<date> <name>:"."""
    above = quote - 1
    while above >= begin and quote - above <= 3 and not lines[above].strip():
        above -= 1
    if above < begin:
        return quote

    last = lines[above].strip()
    if not last.endswith(":") or len(last) > _MAX_HEADER_CHARS:
        return quote

    start = above
    while (
        start - 1 >= begin
        and above - start < 2
        and (previous := lines[start - 1].strip())
        and not previous.startswith(">")
        and len(previous) <= _MAX_HEADER_CHARS
        and (any(c.isdigit() for c in previous) or "@" in previous)
    ):
        start -= 1

    window = " ".join(line.strip() for line in lines[start : above + 1])
    verb = window[:-1].rstrip().lower().endswith(_ATTRIBUTION_VERBS)
    if verb or "@" in window or any(c.isdigit() for c in window):
        return start
    return quote


def _end_of_cited_block(lines: list[str], start: int) -> int:
    """First line after a cited block: its attribution, ">" lines and blank lines."""
    index = start
    attribution_lines = 0
    while index < len(lines) and not lines[index].lstrip().startswith(">"):
        attribution_lines += bool(lines[index].strip())
        if attribution_lines > 3:
            return len(lines)  # nothing cited below: the rest is the old message
        index += 1

    while index < len(lines) and (
        not lines[index].strip() or lines[index].lstrip().startswith(">")
    ):
        index += 1

    return index


def _header_label(line: str) -> tuple[str, str] | None:
    match = _HEADER_LINE.match(line)
    if match is None or match.group(1).lower() not in _HEADER_LABELS:
        return None
    return match.group(1).lower(), match.group(2).strip()


def _is_header_block(lines: list[str], index: int) -> bool:
    """Whether an Outlook-style "From:/Sent:/To:" block (any language) starts here."""
    if _header_label(lines[index]) is None:
        return False

    labels: set[str] = set()
    has_sender = False
    for line in lines[index : index + 8]:
        if len(line) > _MAX_HEADER_CHARS or (found := _header_label(line)) is None:
            continue
        label, value = found
        labels.add(label)
        has_sender = has_sender or (label in _SENDER_LABELS and not value[:1].isdigit())

    return has_sender and len(labels) >= 3


def _rule_above(lines: list[str], index: int, begin: int) -> int:
    """Include a "_____" or "-----" rule (blank lines allowed) above a header block."""
    above = index - 1
    while above >= begin and not lines[above].strip():
        above -= 1
    if above >= begin and _RULE_LINE.fullmatch(lines[above]):
        return above
    return index


def _signature_start(body: list[str]) -> int:
    """Index of the first signature line in the reply part, len(body) if none."""
    cut = len(body)
    for index, line in enumerate(body):
        stripped = line.strip()
        if (
            line.rstrip() == "--"
            or _is_mobile_sign_off(stripped)
            or _UNDERSCORE_LINE.fullmatch(line)
        ):
            cut = index
            break

    last = _last_text_line(body, cut)
    if (
        last > 0
        and not body[last - 1].strip()
        and _DASH_NAME.fullmatch(body[last].rstrip())
    ):
        return last

    return _signature_after_closing(body, cut)


def _is_mobile_sign_off(stripped: str) -> bool:
    lowered = stripped.lower()
    if not lowered.startswith(_MOBILE_SIGN_OFFS) or len(stripped) > 80:
        return False
    return len(stripped.split()) <= 8 and not any(c in stripped for c in ",;!?")


def _signature_after_closing(body: list[str], cut: int) -> int:
    """Cut after "Met vriendelijke groet," when a contact block follows it."""
    seen = 0
    for index in range(cut - 1, -1, -1):
        stripped = body[index].strip()
        if not stripped:
            continue
        if _is_closing(stripped):
            block = [line for line in body[index + 1 : cut] if line.strip()]
            if block and any(_CONTACT_MARK.search(line) for line in block):
                return index + 1
            return cut
        seen += 1
        if seen > _MAX_SIGNATURE_LINES or len(stripped) > 80:
            return cut

    return cut


def _is_closing(stripped: str) -> bool:
    phrases = stripped.lower().rstrip(",.!: ").split(" / ")
    return all(phrase.strip() in _CLOSINGS for phrase in phrases)


def _last_text_line(lines: list[str], stop: int) -> int:
    for index in range(stop - 1, -1, -1):
        if lines[index].strip():
            return index
    return -1


def _has_text(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _join(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip()
