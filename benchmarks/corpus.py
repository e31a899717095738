"""A deterministic, generated mix of service mail for the benchmarks.

The mix follows ``reference/perf-baseline.md``: plain mail, Outlook HTML with
work-order tables (30–50 KB), long reply threads, legacy charsets and mail
with attachments up to 5 MB. Senders and wording are chosen so that the mail
reaches every branch of the demo ``settings.toml``: work orders for known
customers, new relations, follow-ups, no configuration, customer not found.
"""

from __future__ import annotations

import base64
import binascii
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from benchmarks.html_to_text import outlook_part

__all__ = [
    "FULL_MIX",
    "GeneratedMail",
    "generate",
    "large_attachment_mail",
    "plain_mail",
    "scaled_mix",
]

SEED = 20240603
SERVICE = "service@klimaatservice-noord.nl"
START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)

#: (kind, count) of the full 2,000-mail mix.
FULL_MIX: tuple[tuple[str, int], ...] = (
    ("plain", 800),
    ("outlook_html", 700),
    ("reply_thread", 300),
    ("legacy_charset", 180),
    ("attach_small", 19),
    ("attach_5mb", 1),
)

#: Customers of examples/relations.csv, as (name, address) they write from.
KNOWN = (
    ("Bert Kamminga", "facilitair@noorderlicht-csg.nl"),
    ("Rene Bolhuis", "info@bakkerijbolhuis.nl"),
    ("Jan de Vries", "j.devries@ziggo.nl"),
    ("Marloes Postma", "marloes.postma@hotmail.com"),
    ("Lotte Smeenge", "info@tandartszonnehof.nl"),
    ("Hendrik Kuipers", "h.kuipers@kpnmail.nl"),
    ("Sean O'Connor", "sean.oconnor@outlook.com"),
    ("Anja van der Meer", "anja.vandermeer@gmail.com"),
    ("Petra Mulder", "administratie@vlinderhof-kdv.nl"),
)
DE_LINDE = (
    ("Hoekstra, Renske", "r.hoekstra@delinde.nl"),
    ("Dijkstra, Wouter", "w.dijkstra@onderhoud.delinde.nl"),
)
_FIRST = ("Sanne", "Pieter", "Femke", "Daan", "Lisa", "Bram", "Eva", "Joost")
_LAST = ("Wierenga", "Bakker", "Mulder", "Smit", "Visser", "Meijer", "Bos", "Dekker")
_STREETS = ("Oosterstraat", "Molenweg", "Kerkstraat", "Lindelaan", "Vismarkt")
_CITIES = ("Groningen", "Assen", "Haren", "Zuidhorn", "Bedum", "Leek")
_SENTENCES = (
    "Sinds gisteravond doet de verwarming het niet meer en blijven de radiatoren koud.",
    "In het display van de ketel staat foutcode E.04 en resetten helpt niet.",
    "De waterdruk heb ik gecontroleerd, die staat op 1,6 bar.",
    "Kunt u deze week nog iemand sturen? We zijn de hele dag thuis.",
    "De airco in de vergaderruimte lekt water langs de muur.",
    "Er komt een tikkend geluid uit de buitenunit van de warmtepomp.",
    "Het onderhoudsrapport van vorig jaar stuur ik als bijlage mee.",
    "Graag even bellen voordat de monteur komt, dan zet ik de poort open.",
    "De thermostaat geeft een melding dat de verbinding met de ketel weg is.",
    "Wilt u de factuur onder vermelding van ons kenmerk naar de administratie sturen?",
)
_TRACE_HEADERS = (
    "Received: from mail-ej1-f52.google.com (mail-ej1-f52.google.com"
    " [209.85.218.52])\r\n\tby mx1.klimaatservice-noord.nl (Postfix) with ESMTPS"
    " id 5D0C81B2E7\r\n\tfor <service@klimaatservice-noord.nl>; {date}\r\n"
    "Received: by mail-ej1-f52.google.com with SMTP id a640c23a62f3a-a9a3da96a46so"
    "{n}\r\n        for <service@klimaatservice-noord.nl>; {date}\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.nl; s=20230601;"
    " t=1732431951; x=1733036751;\r\n bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
    "\r\n h=to:subject:message-id:date:from:mime-version:from:to:cc:subject\r\n"
    "         :date:message-id:reply-to;\r\n b=Kq3xT1pOUfQ0nXz8mP5r2Lw7Vb4sYc9Ne6Hd1"
    "Gj3Ak5Fm8Ru0Tz2Wy4Xe6Iq9Ol1Cp3Sb5Dn7Eh\r\n ZyA1qB2wC3eD4rF5tG6yH7uI8oJ9pK0lL1z"
    "X2cV3bN4mM5aS6dD7fF8gG9hH0jJ1kK2lL3qQ4w\r\n W5eE6rR7tT8yY9uU0iI1oO2pP3aA4sS5d"
    "D6fF7gG"
    "8hH9jJ0kK1lL2zZ3xX4cC5vV6bB7nN8mM9==\r\n"
    "X-Google-DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    "        d=1e100.net; s=20230601; t=1732431951; x=1733036751;\r\n"
    "        h=to:subject:message-id:date:from:mime-version:x-gm-message-state\r\n"
    "X-Gm-Message-State: AOJu0YzQ7hE1p2r4T6v8X0z2B4d6F8h0J2l4N6p8R0t2V4x6Z8b0D2f4\r\n"
    "\tH6j8L0n2P4r6T8v0X2z4B6d8F0h2J4l6N8p0R2t4V6x8Z0b2D4f6H8j0L2n4P6r8T0v2X4z6\r\n"
    "X-Received: by 2002:a17:907:7da6:b0:a9a:1b2c:3d4e with SMTP id"
    " oz38-20020a1709077da600b00a9a1b2c3d4emr{n}ejc.12.{n};\r\n        {date}\r\n"
    "X-MS-Exchange-Organization-SCL: 1\r\nX-MS-Exchange-Organization-AuthSource:"
    " AM9PR06MB7321.eurprd06.prod.outlook.com\r\nX-MS-Exchange-Organization-"
    "AuthAs: Anonymous\r\nX-MS-Has-Attach:\r\nX-MS-TNEF-Correlator:\r\n"
    "Authentication-Results: mx1.klimaatservice-noord.nl; dkim=pass header.d="
    "example.nl; spf=pass smtp.mailfrom=example.nl; dmarc=pass header.from="
    "example.nl\r\n"
)


@dataclass(frozen=True)
class GeneratedMail:
    """One generated mail: its kind, Message-ID and raw bytes."""

    kind: str
    message_id: str
    raw: bytes


def scaled_mix(total: int) -> tuple[tuple[str, int], ...]:
    """The full mix scaled to ``total`` mails, every kind at least once."""
    full = sum(count for _, count in FULL_MIX)
    return tuple(
        (kind, max(1, round(count * total / full))) for kind, count in FULL_MIX
    )


def generate(
    mix: tuple[tuple[str, int], ...] = FULL_MIX, seed: int = SEED
) -> list[GeneratedMail]:
    """The mails of ``mix`` in a seeded order; follow-ups come after their order."""
    rnd = random.Random(seed)
    kinds = [kind for kind, count in mix for _ in range(count)]
    rnd.shuffle(kinds)
    writer = _Writer(rnd, seed)
    return [writer.mail(number, kind) for number, kind in enumerate(kinds)]


def plain_mail(
    number: int, *, sender: int = 0, sentences: int = 26, seed: int = SEED
) -> bytes:
    """An ordinary breakdown report from a known customer (about 4 KB)."""
    writer = _Writer(random.Random(seed + number), seed)
    known = KNOWN[sender % len(KNOWN)]
    return writer.plain(number, known, "Storing", sentences=sentences).raw


def large_attachment_mail(size: int = 25_000_000, seed: int = SEED) -> bytes:
    """A breakdown report from a known customer with one ``size``-byte PDF."""
    writer = _Writer(random.Random(seed), seed)
    pdf = b"%PDF-1.7\n" + random.Random(seed).randbytes(size - 9)
    return writer.with_attachments(0, [("rapport-groot.pdf", "application/pdf", pdf)])


class _Writer:
    """Builds raw MIME by hand: fast, and byte for byte reproducible."""

    def __init__(self, rnd: random.Random, seed: int) -> None:
        self.rnd = rnd
        self.seed = seed
        self.created: list[tuple[str, str, tuple[str, str]]] = []

    # -- one mail of each kind ---------------------------------------------

    def mail(self, number: int, kind: str) -> GeneratedMail:
        rnd = self.rnd
        if kind == "plain":
            return self._plain_kind(number)
        if kind == "outlook_html":
            return self.outlook(
                number, rnd.choice(DE_LINDE), html_only=rnd.random() < 0.3
            )
        if kind == "reply_thread":
            return self.reply_thread(number)
        if kind == "legacy_charset":
            return self.legacy(number)
        if kind == "attach_small":
            files = [
                self._file(number, n, rnd.randrange(80_000, 400_000))
                for n in range(rnd.randrange(1, 3))
            ]
            raw = self.with_attachments(number, files)
            return GeneratedMail(kind, self._message_id(number), raw)
        report = self._bytes(5 * 1024 * 1024, b"%PDF-1.7\n")
        name = "Inspectierapport ketel – juni.pdf"
        raw = self.with_attachments(number, [(name, "application/pdf", report)])
        return GeneratedMail(kind, self._message_id(number), raw)

    def _plain_kind(self, number: int) -> GeneratedMail:
        roll = self.rnd.random()
        if roll < 0.5:
            return self.plain(number, self.rnd.choice(KNOWN), "Storing")
        if roll < 0.7:
            return self.plain(number, self.rnd.choice(KNOWN), "Onderhoud")
        if roll < 0.85:
            return self.plain(number, self._stranger(), "Aanvraag", address=True)
        return self.plain(number, self._stranger(), "Vraag")

    def plain(
        self,
        number: int,
        sender: tuple[str, str],
        topic: str,
        *,
        address: bool = False,
        sentences: int = 26,
    ) -> GeneratedMail:
        """About 2 KB of text/plain UTF-8, quoted-printable."""
        rnd = self.rnd
        subject = {
            "Storing": f"Storing {rnd.choice(('cv-ketel', 'warmtepomp', 'airco'))}",
            "Onderhoud": "Onderhoud ketel inplannen",
            "Aanvraag": "Verwarming doet het niet meer, graag een monteur",
            "Vraag": "Vraag over uw factuur",
        }[topic]
        lines = ["Goedemorgen,", "", *self._prose(sentences)]
        if address:
            name = sender[0]
            lines += [
                "",
                "Mijn gegevens:",
                f"Naam: {name}",
                f"Adres: {rnd.choice(_STREETS)} {rnd.randrange(1, 300)}",
                f"Postcode: {rnd.randrange(9700, 9799)} {rnd.choice(('AB', 'NV'))}",
                f"Plaats: {rnd.choice(_CITIES)}",
                f"Telefoon: 06-{rnd.randrange(10**7, 10**8)}",
            ]
        elif topic != "Vraag":
            lines += ["", f"Tel: 06-{rnd.randrange(10**7, 10**8)}"]
        lines += ["", "Met vriendelijke groet,", sender[0]]
        body = _qp("\r\n".join(lines))
        headers = self._headers(number, sender, subject)
        raw = (
            headers + "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
        )
        if topic in ("Storing", "Onderhoud"):
            self.created.append((self._message_id(number), subject, sender))
        return GeneratedMail("plain", self._message_id(number), raw.encode())

    def outlook(
        self, number: int, sender: tuple[str, str], *, html_only: bool
    ) -> GeneratedMail:
        """Word-generated HTML with a work-order table, plus its text version."""
        rnd = self.rnd
        reference = f"DL-2026-{rnd.randrange(1000, 9999)}"
        street = f"{rnd.choice(_STREETS)} {rnd.randrange(1, 80)}"
        postal = f"{rnd.randrange(9700, 9799)} {rnd.choice(('AB', 'HM', 'GD'))}"
        details = [
            f"Opdrachtnummer: {reference}",
            f"Adres: {street}",
            f"Postcode: {postal}",
            "Plaats: Groningen",
            "Huurder: Mevr. K. Jansen",
            f"Telefoon huurder: 06-{rnd.randrange(10**7, 10**8)}",
        ]
        table = outlook_part(self.seed + number, rnd.randrange(28_000, 42_000))
        paragraphs = "".join(
            f"<p class=MsoNormal>{line}<o:p></o:p></p>" for line in details
        )
        html = table.replace(
            "<p class=MsoNormal>Beste collega,",
            paragraphs + "<p class=MsoNormal>Beste collega,",
            1,
        )
        subject = f"Storing cv-ketel {street} - geen warm water"
        headers = self._headers(number, sender, subject, outlook=True)
        html_part = (
            'Content-Type: text/html; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + _qp(html)
        )
        self.created.append((self._message_id(number), subject, sender))
        if html_only:
            raw = headers + html_part
            return GeneratedMail("outlook_html", self._message_id(number), raw.encode())
        text = "\r\n".join(
            ["Beste collega,", "", *details, "", *self._prose(6), "", sender[0]]
        )
        boundary = f"_000_AM9PR06MB{number:08d}eurp_"
        raw = (
            headers
            + f'Content-Type: multipart/alternative;\r\n\tboundary="{boundary}"\r\n\r\n'
            + f'--{boundary}\r\nContent-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + _qp(text)
            + f"\r\n--{boundary}\r\n"
            + html_part
            + f"\r\n--{boundary}--\r\n"
        )
        return GeneratedMail("outlook_html", self._message_id(number), raw.encode())

    def reply_thread(self, number: int) -> GeneratedMail:
        """A reply quoting 6–18 earlier messages; mostly a follow-up of an order."""
        rnd = self.rnd
        if self.created and rnd.random() < 0.7:
            parent, subject, sender = rnd.choice(self.created)
        else:
            parent, subject, sender = (
                f"unknown-{number}@example.nl",
                "Storing",
                rnd.choice(KNOWN),
            )
        depth = rnd.randrange(6, 19)
        gmail = rnd.random() < 0.3
        new = [*self._prose(4), "", "Met vriendelijke groet,", sender[0]]
        plain = list(new)
        html = [f"<div>{line}</div>" for line in new]
        for level in range(depth):
            when = format_datetime(START - timedelta(hours=level + 1))
            earlier = ["Goedemiddag,", "", *self._prose(22), "", "Groet,", sender[0]]
            if gmail:
                plain += ["", f"Op {when} schreef {sender[0]} <{sender[1]}>:"]
                plain += ["> " * (level + 1) + line for line in earlier]
                html.append(
                    f'<div class="gmail_quote"><div class="gmail_attr">Op {when} '
                    f'schreef {sender[0]}:</div><blockquote class="gmail_quote">'
                    + "".join(f"<div>{line}</div>" for line in earlier)
                )
            else:
                header = [
                    f"Van: {sender[0]} <{sender[1]}>",
                    f"Verzonden: {when}",
                    f"Aan: {SERVICE}",
                    f"Onderwerp: RE: {subject}",
                ]
                plain += ["", *header, "", *earlier]
                html.append(
                    '<div id="divRplyFwdMsg"><hr>'
                    + "<br>".join(header)
                    + "</div><div>"
                    + "".join(f"<p class=MsoNormal>{line}</p>" for line in earlier)
                )
        html.append("</blockquote></div>" * depth if gmail else "</div>" * depth)
        headers = self._headers(
            number,
            sender,
            f"RE: {subject}",
            in_reply_to=parent,
            outlook=not gmail,
        )
        boundary = f"000000000000b3f1a8{number:08d}"
        raw = (
            headers
            + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
            + f'--{boundary}\r\nContent-Type: text/plain; charset="UTF-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + _qp("\r\n".join(plain))
            + f'\r\n--{boundary}\r\nContent-Type: text/html; charset="UTF-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + _qp('<div dir="ltr">' + "".join(html) + "</div>")
            + f"\r\n--{boundary}--\r\n"
        )
        return GeneratedMail("reply_thread", self._message_id(number), raw.encode())

    def legacy(self, number: int) -> GeneratedMail:
        """windows-1252 or iso-8859-1 text, encoded words, half with old HTML."""
        rnd = self.rnd
        charset = "windows-1252" if rnd.random() < 0.6 else "iso-8859-1"
        known = rnd.random() < 0.5
        name = "René Bolhuis" if known else "Zoë Hoogeveen"
        address = "rene@bakkerijbolhuis.nl" if known else f"zoe{number}@cafe-noord.nl"
        lines = [
            "Beste mensen,",
            "",
            "In ons café lekt de airco sinds vanochtend water langs de muur.",
            "De voorrijkosten van 45 euro zijn geen probleem; Zoë laat u binnen.",
            *self._prose(40),
            "",
            "Debiteurnummer: 10003" if known else "Storing graag snel verhelpen.",
            "",
            "Met vriendelijke groet,",
            name,
        ]
        text = "\r\n".join(lines)
        encoded_name = _encoded_word(name, charset)
        subject = _encoded_word(
            "Storing airco café: lekt water – graag snel iemand", charset
        )
        headers = self._headers(
            number, (name, address), "", from_header=f"{encoded_name} <{address}>"
        ).replace("Subject: \r\n", f"Subject: {subject}\r\n")
        body_bytes = text.encode(charset, errors="replace")
        eight_bit = rnd.random() < 0.5
        transfer = "8bit" if eight_bit else "quoted-printable"
        body = body_bytes if eight_bit else binascii.b2a_qp(body_bytes)
        part_head = (
            f'Content-Type: text/plain; charset="{charset}"\r\n'
            f"Content-Transfer-Encoding: {transfer}\r\n\r\n"
        ).encode()
        if rnd.random() < 0.5:
            raw = headers.encode() + part_head + body
            return GeneratedMail("legacy_charset", self._message_id(number), raw)
        html = (
            "<html><body><font face=Arial size=2><table border=1><tr><td>"
            + "</td></tr><tr><td>".join(lines)
            + "</td></tr></table></font></body></html>"
        )
        boundary = f"----=_NextPart_000_0007_{number:08X}"
        raw = (
            headers.encode()
            + f'Content-Type: multipart/alternative;\r\n\tboundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n".encode()
            + part_head
            + body
            + f'\r\n--{boundary}\r\nContent-Type: text/html; charset="{charset}"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
            + binascii.b2a_qp(html.encode(charset, errors="replace"))
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return GeneratedMail("legacy_charset", self._message_id(number), raw)

    def with_attachments(
        self, number: int, files: list[tuple[str, str, bytes]]
    ) -> bytes:
        """An Outlook breakdown report from a known customer plus ``files``."""
        sender = KNOWN[number % len(KNOWN)]
        text = "\r\n".join(
            ["Goedemorgen,", "", *self._prose(8), "", "Groet,", sender[0]]
        )
        headers = self._headers(
            number, sender, "Storing luchtbehandeling", outlook=True
        )
        boundary = f"_007_VI1PR02MB{number:08d}eurp_"
        parts = [
            f'--{boundary}\r\nContent-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + _qp(text) + "\r\n"
        ]
        for name, content_type, data in files:
            parts.append(
                f"--{boundary}\r\n"
                f'Content-Type: {content_type}; name="{_ascii(name)}"\r\n'
                "Content-Disposition: attachment;\r\n"
                f"\tfilename*=utf-8''{_rfc2231(name)}\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n"
                + base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")
            )
        self.created.append(
            (self._message_id(number), "Storing luchtbehandeling", sender)
        )
        raw = (
            headers
            + f'Content-Type: multipart/mixed;\r\n\tboundary="{boundary}"\r\n\r\n'
            + "".join(parts)
            + f"--{boundary}--\r\n"
        )
        return raw.encode()

    # -- pieces ---------------------------------------------------------------

    def _headers(
        self,
        number: int,
        sender: tuple[str, str],
        subject: str,
        *,
        in_reply_to: str | None = None,
        outlook: bool = False,
        from_header: str | None = None,
    ) -> str:
        date = format_datetime(START + timedelta(minutes=number))
        lines = [
            _TRACE_HEADERS.format(date=date, n=number),
            f"From: {from_header or _address(sender)}\r\n",
            f"To: {SERVICE}\r\n",
            f"Subject: {subject}\r\n",
            f"Date: {date}\r\n",
            f"Message-ID: <{self._message_id(number)}>\r\n",
            "MIME-Version: 1.0\r\n",
        ]
        if in_reply_to:
            lines.append(
                f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n"
            )
        if outlook:
            lines.append(
                f"Thread-Topic: {subject}\r\n"
                f"Thread-Index: AdtdfmE3xQm0V9ZBRjKc{number:08d}\r\n"
                "Accept-Language: nl-NL, en-US\r\nContent-Language: nl-NL\r\n"
            )
        return "".join(lines)

    def _message_id(self, number: int) -> str:
        return f"bench-{self.seed}-{number:06d}@mail2wo.example"

    def _prose(self, count: int) -> list[str]:
        return [self.rnd.choice(_SENTENCES) for _ in range(count)]

    def _stranger(self) -> tuple[str, str]:
        first, last = self.rnd.choice(_FIRST), self.rnd.choice(_LAST)
        return (
            f"{first} {last}",
            f"{first}.{last}{self.rnd.randrange(10**4)}@gmail.com".lower(),
        )

    def _file(self, number: int, index: int, size: int) -> tuple[str, str, bytes]:
        if index % 2:
            return (
                f"foto-{number}-{index}.jpg",
                "image/jpeg",
                self._bytes(size, b"\xff\xd8\xff\xe0"),
            )
        return (
            f"rapport-{number}-{index}.pdf",
            "application/pdf",
            self._bytes(size, b"%PDF-1.7\n"),
        )

    def _bytes(self, size: int, magic: bytes) -> bytes:
        return magic + self.rnd.randbytes(size - len(magic))


def _qp(text: str) -> str:
    encoded = binascii.b2a_qp(text.encode("utf-8"))
    return encoded.decode("ascii").replace("\r\n", "\n").replace("\n", "\r\n")


def _address(sender: tuple[str, str]) -> str:
    name, address = sender
    return f'"{name}" <{address}>' if "," in name else f"{name} <{address}>"


def _encoded_word(text: str, charset: str) -> str:
    data = base64.b64encode(text.encode(charset, errors="replace")).decode("ascii")
    return f"=?{charset}?B?{data}?="


def _ascii(name: str) -> str:
    return name.encode("ascii", errors="replace").decode("ascii")


def _rfc2231(name: str) -> str:
    return "".join(
        chr(byte) if chr(byte).isalnum() or chr(byte) in ".-_" else f"%{byte:02X}"
        for byte in name.encode("utf-8")
    )
