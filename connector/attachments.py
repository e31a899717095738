"""Which attachments go onto a work order, under safe file names."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from connector.mail import Attachment

__all__ = ["SelectedAttachments", "safe_filename", "select_attachments"]

_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)


def safe_filename(name: str, fallback: str) -> str:
    """A file name without paths, control characters or reserved names."""
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f<>:\"|?*]", "_", name).strip().strip(".")
    stem = name.split(".", 1)[0].lower()
    if not name or stem in _RESERVED:
        name = f"_{name}" if name else fallback
    if len(name) > 180:
        stem, dot, extension = name.rpartition(".")
        name = (stem[:170] + dot + extension[:9]) if dot else name[:180]
    return name


@dataclass(frozen=True)
class SelectedAttachments:
    """Attachments kept, under their safe names, and warnings for the rest."""

    kept: tuple[tuple[str, Attachment], ...]
    warnings: tuple[str, ...]


def select_attachments(
    attachments: Sequence[Attachment], *, include_inline: bool, max_bytes: int
) -> SelectedAttachments:
    """Real attachments (inline images only on request), within the size cap."""
    kept: list[tuple[str, Attachment]] = []
    warnings: list[str] = []
    used: set[str] = set()
    for number, attachment in enumerate(attachments, start=1):
        label = attachment.filename or attachment.content_id or f"part {number}"
        if attachment.inline and not include_inline:
            continue
        if attachment.tnef:
            warnings.append(f"attachment {label!r}: Outlook TNEF (winmail.dat) skipped")
            continue
        if attachment.size > max_bytes:
            warnings.append(
                f"attachment {label!r}: {attachment.size / 1e6:.1f} MB is over the "
                f"{max_bytes / 1e6:.0f} MB limit, skipped (kept in the mail archive)"
            )
            continue
        extension = mimetypes.guess_extension(attachment.content_type) or ".bin"
        name = safe_filename(attachment.filename, f"attachment-{number}{extension}")
        base, dot, extension = name.rpartition(".")
        counter = 2
        while name.lower() in used:
            name = f"{base}-{counter}.{extension}" if dot else f"{extension}-{counter}"
            counter += 1
        used.add(name.lower())
        kept.append((name, attachment))
    return SelectedAttachments(tuple(kept), tuple(warnings))
