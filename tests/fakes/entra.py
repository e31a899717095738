"""A fake Microsoft Entra ID that the real msal signs in against.

It serves the tenant's OpenID configuration, the v2.0 token endpoint
(client credentials with a secret or a certificate assertion, device code,
refresh token with rotation) and the device-code endpoint, and answers
errors as Entra does: OAuth2 JSON with ``AADSTS`` codes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from tests.fakes.loopback import Request, Response

__all__ = ["AccessGrant", "FakeEntra", "RegisteredApp", "oauth_error"]

TOKEN_LIFETIME = 3599
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class RegisteredApp:
    """An app registration: its credentials and its consented permissions."""

    client_id: str
    secret: str | None = None
    secret_expired: bool = False
    certificate_key: Any = None  # the public key that checks client assertions
    thumbprint: str | None = None  # SHA-1 hex, as the portal shows it
    roles: set[str] = field(default_factory=lambda: {"Mail.ReadWrite"})
    consented: bool = True


@dataclass
class AccessGrant:
    """What one access token stands for."""

    client_id: str
    user: str | None  # None for an app-only token
    permissions: set[str]
    expires_at: float

    @property
    def can_write(self) -> bool:
        return "Mail.ReadWrite" in self.permissions


@dataclass
class _RefreshGrant:
    client_id: str
    user: str


@dataclass
class _DeviceLogin:
    client_id: str
    scope: str
    user_code: str
    user: str | None = None
    declined: bool = False
    pending_polls: int = 1
    polls: int = 0


def oauth_error(
    status: int, error: str, description: str, codes: list[int]
) -> Response:
    """An Entra error answer (RFC 6749 §5.2 plus Entra's extra fields)."""
    trace = secrets.token_hex(8)
    return Response.json(
        status,
        {
            "error": error,
            "error_description": f"{description} Trace ID: {trace}",
            "error_codes": codes,
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": trace,
            "correlation_id": secrets.token_hex(8),
        },
    )


class FakeEntra:
    """The identity side of the fake: tenants, apps, users and their tokens."""

    def __init__(self, tenant_id: str) -> None:
        self.base_url = ""  # set once the server listens
        self.tenant_id = tenant_id
        self.tenants = {tenant_id}
        self.apps: dict[str, RegisteredApp] = {}
        self.users: dict[str, str] = {}  # UPN -> object id
        self.access_tokens: dict[str, AccessGrant] = {}
        self.refresh_tokens: dict[str, _RefreshGrant] = {}
        self.device_logins: dict[str, _DeviceLogin] = {}
        self.token_requests: list[dict[str, str]] = []
        self.rotate_refresh_tokens = True
        self.device_pending_polls = 1

    # -- knobs for tests --------------------------------------------------

    def register_app(self, client_id: str, **options: Any) -> RegisteredApp:
        app = RegisteredApp(client_id, **options)
        self.apps[client_id] = app
        return app

    def add_user(self, upn: str) -> None:
        self.users[upn.lower()] = f"0000{secrets.token_hex(14)}"

    def approve(self, user_code: str, upn: str) -> None:
        """The user signs in at the verification page and enters the code."""
        for login in self.device_logins.values():
            if login.user_code == user_code:
                login.user = upn.lower()
                return
        raise KeyError(user_code)

    def decline(self, user_code: str) -> None:
        for login in self.device_logins.values():
            if login.user_code == user_code:
                login.declined = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is past its lifetime."""
        for grant in self.access_tokens.values():
            grant.expires_at = 0.0

    def revoke_refresh_tokens(self) -> None:
        """An administrator revoked every user session (AADSTS50173)."""
        self.refresh_tokens.clear()

    def check(self, token: str) -> AccessGrant | None:
        """The grant behind a bearer token, or ``None`` when it is not valid."""
        grant = self.access_tokens.get(token)
        if grant is None or grant.expires_at <= time.time():
            return None
        return grant

    # -- HTTP -------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        parts = request.path.strip("/").split("/")
        if len(parts) < 2:
            return None
        tenant, rest = parts[0], parts[1:]
        if rest == ["v2.0", ".well-known", "openid-configuration"]:
            return self._configuration(tenant)
        if rest == ["oauth2", "v2.0", "token"] and request.method == "POST":
            return self._token(tenant, request)
        if rest == ["oauth2", "v2.0", "devicecode"] and request.method == "POST":
            return self._device_code(tenant, request)
        return None

    def _configuration(self, tenant: str) -> Response:
        if tenant not in self.tenants:
            return self._unknown_tenant(tenant)
        root = f"{self.base_url}/{tenant}"
        return Response.json(
            200,
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "tenant_region_scope": "EU",
            },
        )

    def _unknown_tenant(self, tenant: str) -> Response:
        return oauth_error(
            400,
            "invalid_tenant",
            f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you "
            "have the correct tenant ID and are signing into the correct cloud.",
            [90002],
        )

    def _token(self, tenant: str, request: Request) -> Response:
        if tenant not in self.tenants:
            return self._unknown_tenant(tenant)
        form = request.form()
        self.token_requests.append(form)
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return oauth_error(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier "
                f"'{form.get('client_id')}' was not found in the directory "
                f"'{tenant}'.",
                [700016],
            )

        grant_type = form.get("grant_type")
        if grant_type == "client_credentials":
            refusal = self._client_refusal(app, tenant, form, request)
            if refusal is not None:
                return refusal
            return self._app_token(app)
        if grant_type == DEVICE_GRANT:
            return self._device_poll(app, form)
        if grant_type == "refresh_token":
            return self._refresh(app, form)
        return oauth_error(
            400,
            "unsupported_grant_type",
            f"AADSTS70003: The app requested an unsupported grant type '{grant_type}'.",
            [70003],
        )

    def _client_refusal(
        self, app: RegisteredApp, tenant: str, form: dict[str, str], request: Request
    ) -> Response | None:
        """Check a confidential client's secret or certificate assertion."""
        if form.get("client_assertion_type") == JWT_BEARER:
            endpoint = f"{self.base_url}/{tenant}/oauth2/v2.0/token"
            if self._assertion_valid(app, form.get("client_assertion", ""), endpoint):
                return None
            return oauth_error(
                401,
                "invalid_client",
                "AADSTS700027: Client assertion failed signature validation.",
                [700027],
            )

        secret = form.get("client_secret")
        basic = request.header("Authorization")
        if secret is None and basic.startswith("Basic "):
            secret = base64.b64decode(basic[6:]).decode().partition(":")[2]
        if app.secret is not None and secret == app.secret:
            if not app.secret_expired:
                return None
            return oauth_error(
                401,
                "invalid_client",
                f"AADSTS7000222: The provided client secret keys for app "
                f"'{app.client_id}' are expired. Visit the Azure portal to create "
                "new keys for your app.",
                [7000222],
            )
        return oauth_error(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret "
            "being sent in the request is the client secret value, not the client "
            f"secret ID, for a secret added to app '{app.client_id}'.",
            [7000215],
        )

    def _assertion_valid(self, app: RegisteredApp, assertion: str, aud: str) -> bool:
        if app.certificate_key is None or app.thumbprint is None:
            return False
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                app.certificate_key,
                algorithms=["RS256", "PS256"],
                audience=aud,
                issuer=app.client_id,
            )
        except jwt.PyJWTError:
            return False
        x5t = base64.urlsafe_b64encode(bytes.fromhex(app.thumbprint)).decode()
        sent = str(header.get("x5t", "")).rstrip("=")
        return sent == x5t.rstrip("=") and claims.get("sub") == app.client_id

    def _app_token(self, app: RegisteredApp) -> Response:
        token = f"fake-at-{secrets.token_urlsafe(16)}"
        permissions = set(app.roles) if app.consented else set()
        self.access_tokens[token] = AccessGrant(
            app.client_id, None, permissions, time.time() + TOKEN_LIFETIME
        )
        return Response.json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "ext_expires_in": TOKEN_LIFETIME,
                "access_token": token,
            },
        )

    def _device_code(self, tenant: str, request: Request) -> Response:
        if tenant not in self.tenants:
            return self._unknown_tenant(tenant)
        form = request.form()
        if form.get("client_id") not in self.apps:
            return oauth_error(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier "
                f"'{form.get('client_id')}' was not found in the directory "
                f"'{tenant}'.",
                [700016],
            )
        device_code = secrets.token_urlsafe(24)
        user_code = secrets.token_hex(4).upper()
        self.device_logins[device_code] = _DeviceLogin(
            form["client_id"],
            form.get("scope", ""),
            user_code,
            pending_polls=self.device_pending_polls,
        )
        uri = "https://microsoft.com/devicelogin"
        return Response.json(
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": uri,
                "expires_in": 900,
                "interval": 0,  # msal then polls without sleeping
                "message": f"To sign in, use a web browser to open the page {uri} "
                f"and enter the code {user_code} to authenticate.",
            },
        )

    def _device_poll(self, app: RegisteredApp, form: dict[str, str]) -> Response:
        login = self.device_logins.get(form.get("device_code", ""))
        if login is None or login.polls > 50:
            return oauth_error(
                400,
                "expired_token",
                "AADSTS70020: The provided value for the input parameter "
                "'device_code' is not valid. This device code has expired.",
                [70020],
            )
        login.polls += 1
        if login.declined:
            return oauth_error(
                400,
                "authorization_declined",
                "AADSTS70000: The user declined the sign-in.",
                [70000],
            )
        if login.user is None or login.polls <= login.pending_polls:
            return oauth_error(
                400,
                "authorization_pending",
                "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. "
                "Continue polling.",
                [70016],
            )
        del self.device_logins[form["device_code"]]
        if not app.consented:
            return self._consent_missing(app)
        return self._user_tokens(app, login.user, login.scope)

    def _refresh(self, app: RegisteredApp, form: dict[str, str]) -> Response:
        old = form.get("refresh_token", "")
        grant = self.refresh_tokens.get(old)
        if grant is None or grant.client_id != app.client_id:
            return oauth_error(
                400,
                "invalid_grant",
                "AADSTS50173: The provided grant has expired due to it being "
                "revoked, a fresh auth token is needed. The user might have "
                "changed or reset their password.",
                [50173],
            )
        if not app.consented:
            return self._consent_missing(app)
        if self.rotate_refresh_tokens:
            del self.refresh_tokens[old]
        return self._user_tokens(app, grant.user, form.get("scope", ""))

    def _consent_missing(self, app: RegisteredApp) -> Response:
        return oauth_error(
            400,
            "invalid_grant",
            "AADSTS65001: The user or administrator has not consented to use the "
            f"application with ID '{app.client_id}' named 'mail2wo'. Send an "
            "interactive authorization request for this user and resource.",
            [65001],
        )

    def _user_tokens(self, app: RegisteredApp, user: str, scope: str) -> Response:
        oid = self.users.setdefault(user, f"0000{secrets.token_hex(14)}")
        token = f"fake-user-at-{secrets.token_urlsafe(16)}"
        refresh = f"fake-rt-{secrets.token_urlsafe(16)}"
        self.access_tokens[token] = AccessGrant(
            app.client_id, user, set(scope.split()), time.time() + TOKEN_LIFETIME
        )
        self.refresh_tokens[refresh] = _RefreshGrant(app.client_id, user)
        now = int(time.time())
        claims = {
            "aud": app.client_id,
            "iss": f"{self.base_url}/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "name": user.partition("@")[0],
            "oid": oid,
            "preferred_username": user,
            "sub": hashlib.sha256(oid.encode()).hexdigest()[:43],
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        client_info = {"uid": oid, "utid": self.tenant_id}
        return Response.json(
            200,
            {
                "token_type": "Bearer",
                "scope": scope,
                "expires_in": TOKEN_LIFETIME,
                "ext_expires_in": TOKEN_LIFETIME,
                "access_token": token,
                "refresh_token": refresh,
                "id_token": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
                "client_info": _b64(client_info),
            },
        )


def _b64(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
