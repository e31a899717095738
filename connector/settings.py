"""Settings: ``settings.toml`` validated once, at load, into typed objects.

Nothing downstream re-validates strings. Every problem is reported as one
:class:`SettingsError` line naming the file, the place and the problem.
"""

from __future__ import annotations

import enum
import os
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.fields import WORKORDER_FIELDS
from providers.base import PostAction
from providers.errors import SettingsError

__all__ = [
    "Configuration",
    "CustomerRule",
    "Mailbox",
    "RegexRule",
    "SenderType",
    "Settings",
    "load_settings",
]

CUSTOMER_FIELDS = [
    "customer_email",
    "customer_phone",
    "customer_street",
    "customer_house_number",
    "customer_postal_code",
    "customer_city",
    "customer_name",
    "contact_person",
    "debtor_number",
    "obj_code",
]


class SenderType(enum.StrEnum):
    """How a configuration recognises its mail."""

    SENDER = "Sender"
    SENDER_DOMAIN = "SenderDomain"
    TITLE_CONTAINS = "TitleContains"
    TITLE_EQUALS = "TitleEquals"
    MESSAGE_CONTAINS = "MessageContains"
    ANY = "Any"


class CustomerRule(enum.StrEnum):
    """How a configuration finds (or adds) the customer of a mail."""

    BY_EMAIL = "FindOrAddRelationByEmail"
    BY_DOMAIN = "FindOrAddRelationByDomain"
    BY_PHONE = "FindOrAddRelationByPhone"
    BY_STREET = "FindOrAddRelationByStreet"
    BY_DEBTOR_NUMBER = "FindOrAddRelationByDebtorNumber"
    BY_OBJECT = "SearchByObject"
    ADDRESS = "FindOrAddAddress"


_FLAGS = {
    "IGNORECASE": regex.IGNORECASE,
    "MULTILINE": regex.MULTILINE,
    "DOTALL": regex.DOTALL,
    "VERBOSE": regex.VERBOSE,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class RegexRule(_Model):
    """A named pattern whose first match becomes the parameter ``{name}``."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    pattern: Annotated[str, Field(min_length=1)]
    source: Literal["body", "subject", "both"] = "body"
    flags: list[Literal["IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE"]] = []

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            regex.compile(value, regex.VERSION0)
        except regex.error as exc:
            raise ValueError(str(exc)) from None
        except RecursionError:
            raise ValueError("nested too deeply to compile") from None
        return value

    @property
    def compiled(self) -> regex.Pattern[str]:
        """The compiled pattern (cached by the regex module)."""
        flags = regex.VERSION0
        for name in self.flags:
            flags |= _FLAGS[name]
        return regex.compile(self.pattern, flags)


class Options(_Model):
    """Per-configuration options."""

    include_inline: bool = False
    max_attachment_mb: Annotated[float, Field(gt=0)] = 25.0


class Configuration(_Model):
    """A mail configuration: which mail, which customer, which fields."""

    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    active: bool = True
    sender_type: SenderType
    sender_value: str = ""
    forced_debtor_number: str = ""
    parse_attachments: bool = False
    customer_rules: list[CustomerRule] = []
    regex_rule: list[RegexRule] = []
    forced_values: dict[str, str] = {}
    options: Options = Options()

    @field_validator("forced_values")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - WORKORDER_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown work-order field(s) {', '.join(unknown)} "
                "(use OutSmart's API names, such as ShortWorkDescription)"
            )
        return value

    @model_validator(mode="after")
    def _value_needed(self) -> Configuration:
        if self.sender_type is not SenderType.ANY and not self.sender_value.strip():
            raise ValueError(f"sender_type {self.sender_type} needs a sender_value")
        names = [rule.name for rule in self.regex_rule]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise ValueError(f"regex rule name(s) used twice: {', '.join(doubles)}")
        return self


class Mailbox(_Model):
    """A connected mailbox (``folder``, ``graph`` or ``gmail``)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    kind: Literal["folder", "graph", "gmail"]
    enabled: bool = True
    poll_seconds: Annotated[int, Field(ge=5)] = 60
    since: datetime | None = None
    post_action: str = "none"
    # folder
    path: Path | None = None
    # graph
    auth: str = ""
    tenant_id: str = ""
    client_id: str = ""
    client_secret_env: str = ""
    client_secret_file: Path | None = None
    certificate_file: Path | None = None
    certificate_thumbprint: str = ""
    folder: str = "Inbox"
    authority: str = "https://login.microsoftonline.com"
    api_base: str = ""
    # gmail
    client_secrets_file: Path | None = None
    service_account_file: Path | None = None
    user: str = ""
    label: str = "INBOX"
    token_uri: str = "https://oauth2.googleapis.com/token"

    @field_validator("since", mode="before")
    @classmethod
    def _date_is_midnight(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time())
        return value

    @field_validator("post_action")
    @classmethod
    def _post_action(cls, value: str) -> str:
        PostAction.parse(value)
        return value

    @model_validator(mode="after")
    def _kind_needs(self) -> Mailbox:
        needs = {
            "folder": ["path"],
            "graph": ["tenant_id", "client_id", "user"],
            "gmail": [],
        }[self.kind]
        missing = [key for key in needs if not getattr(self, key)]
        if missing:
            raise ValueError(f"a {self.kind} mailbox needs {', '.join(missing)}")
        if self.kind == "graph" and self.auth not in (
            "",
            "client_credentials",
            "device_code",
        ):
            raise ValueError("auth must be client_credentials or device_code")
        if self.kind == "gmail" and self.auth not in (
            "",
            "installed_app",
            "service_account",
        ):
            raise ValueError("auth must be installed_app or service_account")
        return self

    @property
    def action(self) -> PostAction:
        """The parsed post-action."""
        return PostAction.parse(self.post_action)


class StateSettings(_Model):
    """Where state files and the raw-mail archive live."""

    path: Path = Path("var")


class TargetSettings(_Model):
    """Where work orders go."""

    kind: Literal["local", "outsmart", "webhook"] = "local"
    relations: Path | None = None
    addresses: Path | None = None
    contactpersons: Path | None = None
    objects: Path | None = None
    base_url: str = "https://www.out-smart.com/openapi/8"
    token_env: str = "MAIL2WO_OUTSMART_TOKEN"
    software_token_env: str = "MAIL2WO_OUTSMART_SOFTWARE_TOKEN"
    url: str = ""
    secret_env: str = "MAIL2WO_WEBHOOK_SECRET"

    @model_validator(mode="after")
    def _kind_needs(self) -> TargetSettings:
        if self.kind == "webhook" and not self.url:
            raise ValueError("a webhook target needs url")
        return self


class Settings(_Model):
    """All of ``settings.toml``."""

    timezone: str = "Europe/Amsterdam"
    daily_limit: Annotated[int, Field(ge=0)] = 0
    max_new_per_sender_per_hour: Annotated[int, Field(ge=0)] = 20
    regex_timeout_ms: Annotated[int, Field(gt=0, le=60_000)] = 500
    max_mail_mb: Annotated[float, Field(gt=0)] = 50.0
    workorder_prefix: str = "{year}-"
    state: StateSettings = StateSettings()
    target: TargetSettings = TargetSettings()
    defaults: dict[str, str] = {}
    mailbox: list[Mailbox] = []
    configuration: list[Configuration] = []
    source: Path = Path("settings.toml")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: a name that is a tzdata folder or too long for a file
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("defaults")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - WORKORDER_FIELDS)
        if unknown:
            raise ValueError(f"unknown work-order field(s) {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        for kind, names in (
            ("mailbox", [m.name for m in self.mailbox]),
            ("configuration", [c.name for c in self.configuration]),
        ):
            doubles = sorted({n for n in names if names.count(n) > 1})
            if doubles:
                raise ValueError(f"{kind} name(s) used twice: {', '.join(doubles)}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the settings are taken from."""
        return self.source.resolve().parent

    def resolve(self, path: Path) -> Path:
        """A settings path made absolute against the settings file's folder."""
        return path if path.is_absolute() else self.base_dir / path

    @property
    def state_dir(self) -> Path:
        """Absolute path of the state folder."""
        return self.resolve(self.state.path)

    def mailbox_named(self, name: str) -> Mailbox:
        """The mailbox called ``name``; :class:`SettingsError` if there is none."""
        for mailbox in self.mailbox:
            if mailbox.name == name:
                return mailbox
        known = ", ".join(m.name for m in self.mailbox) or "none"
        raise SettingsError(
            f"{self.source}: no mailbox named {name!r} (known: {known})"
        )

    def configuration_named(self, name: str) -> Configuration:
        """The configuration called ``name``."""
        for configuration in self.configuration:
            if configuration.name == name:
                return configuration
        known = ", ".join(c.name for c in self.configuration) or "none"
        raise SettingsError(
            f"{self.source}: no configuration named {name!r} (known: {known})"
        )


def load_settings(path: Path) -> Settings:
    """Read and validate ``path``; raise :class:`SettingsError` on any problem."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except IsADirectoryError:
        raise SettingsError(f"{path}: is a folder, not a settings file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None

    data.pop("source", None)
    try:
        return Settings.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise SettingsError(_describe(path, data, exc)) from None


def _describe(path: Path, data: dict[str, Any], exc: ValidationError) -> str:
    """One line naming the place and the problem of the first error."""
    error = exc.errors()[0]
    place: list[str] = []
    node: Any = data
    for part in error["loc"]:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            label = node.get("name") if isinstance(node, dict) else None
            if place:
                place[-1] = (
                    f"{place[-1]} {label!r}" if label else f"{place[-1]}[{part}]"
                )
            continue
        key = str(part)
        if key.startswith("function-") or key in ("str", "int"):
            continue
        place.append(key.replace("regex_rule", "regex rule"))
        node = node.get(key) if isinstance(node, dict) else None
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        message = "unknown setting (check the spelling)"
    if error["type"] == "missing":
        message = "required setting is missing"
    where = " ".join(place) if place else "top level"
    return _CONTROL.sub(_escaped, f"{path}: {where}: {message}")


#: Control characters, which a key or value from the file may carry into a
#: message; shown escaped so that the message stays one line.
_CONTROL = regex.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: regex.Match[str]) -> str:
    return repr(match.group())[1:-1]


def secret_from_env(variable: str, what: str) -> str:
    """A secret from the environment; :class:`SettingsError` when unset."""
    value = os.environ.get(variable, "")
    if not value:
        raise SettingsError(f"{what}: environment variable {variable} is not set")
    return value
