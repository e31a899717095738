"""Bearer tokens for Graph mailboxes from msal, with a private token cache."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msal
import requests
from cryptography.hazmat.primitives import serialization

from providers.errors import AuthError, Mail2woError, SettingsError, TransientError
from state.files import read_private, write_atomic

__all__ = ["GraphTokens"]

logger = logging.getLogger(__name__)

_AADSTS = re.compile(r"AADSTS\d+")


class GraphTokens:
    """Bearer tokens for one mailbox from msal, kept in a private token cache."""

    def __init__(
        self,
        mailbox: str,
        *,
        tenant_id: str,
        client_id: str,
        user: str,
        auth: str,
        client_secret: str | None,
        certificate: tuple[str, str] | None,
        authority: str,
        scopes: list[str],
        cache_path: Path,
        session: requests.Session,
        device_flow_callback: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self._mailbox = mailbox
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._user = user
        self._auth = auth
        self._secret = client_secret
        self._authority = f"{authority.rstrip('/')}/{tenant_id}"
        self._scopes = scopes
        self._cache_path = cache_path
        self._session = session
        self._device_flow_callback = device_flow_callback
        self._credential: str | dict[str, str] | None = client_secret
        if auth == "client_credentials" and certificate is not None:
            self._credential = self._load_certificate(*certificate)
        self._cache = self._load_cache()
        self._app: Any = None
        self._token: str | None = None
        self._valid_until = 0.0

    def token(self) -> str:
        """A bearer token, from memory while it has five minutes left."""
        if self._token is None or time.monotonic() >= self._valid_until:
            self._acquire(fresh=False)
        return cast(str, self._token)

    def renew(self) -> str:
        """A new bearer token after Graph refused the current one."""
        self._acquire(fresh=True)
        return cast(str, self._token)

    def _acquire(self, *, fresh: bool) -> None:
        self._token = None
        try:
            app = self._application()
            if self._auth == "client_credentials":
                if fresh:
                    app.remove_tokens_for_client()
                result = app.acquire_token_for_client(self._scopes)
            else:
                result = self._acquire_delegated(app, fresh=fresh)
        except requests.RequestException as exc:
            raise TransientError(
                f"mailbox {self._mailbox!r}: cannot reach the sign-in service "
                f"{self._authority} ({exc.__class__.__name__})"
            ) from exc
        except msal.exceptions.MsalServiceError as exc:
            raise TransientError(
                f"mailbox {self._mailbox!r}: the sign-in service "
                f"{self._authority} failed ({self._scrub(str(exc))})"
            ) from exc
        except ValueError as exc:  # an answer that is not JSON, a bad assertion
            raise AuthError(
                f"mailbox {self._mailbox!r}: signing in at {self._authority} "
                f"failed: {self._scrub(str(exc))[:300]}"
            ) from exc
        finally:
            self._save_cache()

        if not isinstance(result, dict) or "access_token" not in result:
            raise self._refusal(cast(dict[str, Any], result or {}))

        expires_in = int(result.get("expires_in") or 3600)
        self._token = str(result["access_token"])
        self._valid_until = time.monotonic() + max(0, expires_in - 300)

    def _acquire_delegated(self, app: Any, *, fresh: bool) -> Any:
        accounts = app.get_accounts()
        chosen = next(
            (a for a in accounts if str(a.get("username")).lower() == self._user),
            accounts[0] if accounts else None,
        )
        result = None
        if chosen is not None:
            result = app.acquire_token_silent_with_error(
                self._scopes, account=chosen, force_refresh=fresh
            )
            if result is not None and "access_token" in result:
                return result

        if self._device_flow_callback is None:
            if result is None:
                raise AuthError(
                    f"mailbox {self._mailbox!r} is not connected to {self._user} "
                    f"yet: run 'mail2wo connect {self._mailbox}'"
                )
            return result

        flow = app.initiate_device_flow(scopes=self._scopes)
        if "user_code" not in flow:
            return flow
        self._device_flow_callback(flow)
        return app.acquire_token_by_device_flow(flow)

    def _application(self) -> Any:
        if self._app is not None:
            return self._app

        # The configured authority is used as given: instance discovery would
        # ask login.microsoftonline.com about any other host (a sovereign
        # cloud, a test server) and fail where that host is unreachable.
        options: dict[str, Any] = {
            "authority": self._authority,
            "instance_discovery": False,
            "http_client": self._session,
            "token_cache": self._cache,
        }
        try:
            if self._auth == "client_credentials":
                self._app = msal.ConfidentialClientApplication(
                    self._client_id, client_credential=self._credential, **options
                )
            else:
                self._app = msal.PublicClientApplication(self._client_id, **options)
        except ValueError as exc:
            # msal re-raises a generic ValueError; Entra's answer is its context.
            text = f"{exc} {exc.__context__ or ''}"
            raise self._authority_refusal(text) from exc
        return self._app

    def _authority_refusal(self, text: str) -> Mail2woError:
        if "should consist of an https url" in text:
            return SettingsError(
                f"mailbox {self._mailbox!r}: authority {self._authority!r}: "
                "expected an https URL such as https://login.microsoftonline.com"
            )
        if "AADSTS90002" in text or "invalid_tenant" in text:
            return AuthError(
                f"mailbox {self._mailbox!r}: tenant {self._tenant_id!r} was not "
                "found in Entra ID (AADSTS90002); check tenant_id"
            )
        return AuthError(
            f"mailbox {self._mailbox!r}: the sign-in service {self._authority} "
            f"does not describe itself: {self._scrub(text)[:300]}"
        )

    def _refusal(self, result: dict[str, Any]) -> Mail2woError:
        """Turn msal's error dict into an error an administrator can act on."""
        error = str(result.get("error") or "unknown_error")
        description = self._scrub(str(result.get("error_description") or ""))
        codes = {int(c) for c in result.get("error_codes") or [] if str(c).isdigit()}
        found = _AADSTS.search(description)
        aadsts = found.group(0) if found else error
        where = f"mailbox {self._mailbox!r}: "
        app = f"app {self._client_id}"

        if error in ("temporarily_unavailable", "server_error"):
            return TransientError(f"{where}Entra ID is unavailable ({aadsts})")
        if 90002 in codes or error == "invalid_tenant":
            return AuthError(
                f"{where}tenant {self._tenant_id!r} was not found in Entra ID "
                f"({aadsts}); check tenant_id"
            )
        if 700016 in codes:
            return AuthError(
                f"{where}{app} is not registered in tenant {self._tenant_id!r} "
                f"({aadsts}); check client_id and tenant_id"
            )
        if error == "invalid_client":
            if 7000222 in codes:
                problem = "the client secret has expired"
            elif codes & {700027, 700023, 700024, 500212}:
                problem = "the certificate was not accepted"
            else:
                problem = "the client secret or certificate is wrong"
            return AuthError(
                f"{where}Entra ID refused the credentials of {app} ({aadsts}): "
                f"{problem}; an administrator must add a new secret or "
                "certificate to the app registration and update the mailbox"
            )
        if 65001 in codes or error in ("consent_required", "unauthorized_client"):
            return AuthError(
                f"{where}{app} lacks consent for the mail permissions ({aadsts}); "
                "an administrator must grant admin consent in the Azure portal"
            )
        if error == "invalid_grant" or error == "interaction_required":
            return AuthError(
                f"{where}the sign-in for {self._user} was revoked or has expired "
                f"({aadsts}); reconnect with 'mail2wo connect {self._mailbox}'"
            )
        if error in ("authorization_declined", "expired_token", "access_denied"):
            return AuthError(
                f"{where}the device sign-in for {self._user} was declined or "
                f"timed out ({error}); run 'mail2wo connect {self._mailbox}' again"
            )
        return AuthError(
            f"{where}Entra ID refused the sign-in ({error}, {aadsts}): "
            f"{description.splitlines()[0][:300] if description else 'no details'}"
        )

    def _scrub(self, text: str) -> str:
        if self._secret:  # Defensive: no known msal message repeats the secret
            text = text.replace(self._secret, "<secret>")
        return text

    def _load_certificate(self, key_path: str, thumbprint: str) -> dict[str, str]:
        path = Path(key_path)
        try:
            pem = read_private(path)
        except PermissionError as exc:
            raise SettingsError(f"mailbox {self._mailbox!r}: {exc}") from exc
        if pem is None:
            raise SettingsError(
                f"mailbox {self._mailbox!r}: certificate key {path} does not exist"
            )
        try:
            serialization.load_pem_private_key(pem, password=None)
        except (TypeError, ValueError) as exc:
            raise SettingsError(
                f"mailbox {self._mailbox!r}: certificate key {path} is not an "
                "unencrypted PEM private key"
            ) from exc
        return {"private_key": pem.decode("ascii"), "thumbprint": thumbprint}

    def _load_cache(self) -> Any:
        cache = msal.SerializableTokenCache()
        try:
            data = read_private(self._cache_path)
        except PermissionError as exc:
            raise SettingsError(
                f"mailbox {self._mailbox!r}: refusing the token cache: {exc}"
            ) from exc
        if not data:
            return cache

        try:
            cache.deserialize(data.decode("utf-8"))
        except ValueError:
            logger.warning(
                "mailbox %r: token cache %s is unreadable; starting with an empty one",
                self._mailbox,
                self._cache_path,
            )
        return cache

    def _save_cache(self) -> None:
        """Persist the cache at once, so a rotated refresh token is never lost."""
        if not self._cache.has_state_changed:
            return
        data = str(self._cache.serialize()).encode("utf-8")
        try:
            write_atomic(self._cache_path, data, mode=0o600)
        except OSError as exc:
            raise TransientError(
                f"mailbox {self._mailbox!r}: cannot save the token cache "
                f"{self._cache_path}: {exc.strerror}"
            ) from exc
