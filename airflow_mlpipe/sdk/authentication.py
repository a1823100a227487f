"""v1 authentication classes: ``get_authentication_header()`` returns a header the workspace's Airflow accepts.

Azure ML v1 signs REST calls with an Azure AD token. Here every REST route (Airflow's API v2 and the plugin's
``/mlpipe/api/v1``) wants an Airflow JWT, issued by the api-server's ``POST /auth/token`` for a user name and
password. So each class maps its v1 identity onto an Airflow login:

- ``InteractiveLoginAuthentication``, ``AzureCliAuthentication``, ``MsiAuthentication``: the workspace's own
  credentials. Embedded default: the ``admin`` user and its generated password (the embedded Airflow is started
  if needed, as for any SDK call); a remote api-server: the workspace config's ``airflow.token`` /
  ``airflow.token_env``, else ``airflow.username`` with ``airflow.password`` / ``airflow.password_env``.
- ``ServicePrincipalAuthentication(tenant_id, service_principal_id, service_principal_password)``: the service
  principal id is the Airflow user name and its password the user's password; a password that is a JWT is used
  as a pre-issued token instead. ``tenant_id`` is kept for display only.

The token is cached with its ``exp`` claim and fetched again shortly before it expires (or after a 401, through
:meth:`AbstractAuthentication.signed_session` and the SDK's own REST client). Which Airflow: the workspace the
object was given to (``Workspace(..., auth=auth)``, ``Workspace.from_config(auth=auth)``), else
``Workspace.from_config()``. Nothing here imports Airflow.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from airflow_mlpipe.contract.exceptions import AzureMLException, UserErrorException

#: fetch a new token this long before the cached one expires (at most a quarter of the token's lifetime)
REFRESH_MARGIN_SECONDS = 60.0

class AuthenticationException(AzureMLException):
    """The Airflow of the workspace refused the credentials, or could not be asked (v1 name)."""


class AccessToken(NamedTuple):
    """What v1 ``get_token()`` returns (the azure-core ``AccessToken`` shape)."""

    token: str
    expires_on: int


@dataclass(frozen=True)
class Credentials:
    """Where to log in and with what; ``source`` says where they came from, for error messages."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = ""


@dataclass
class _CachedToken:
    token: str
    expires_at: float | None
    lifetime: float | None

    def fresh(self, now: float) -> bool:
        if self.expires_at is None:
            return True
        margin = REFRESH_MARGIN_SECONDS
        if self.lifetime:
            margin = min(margin, self.lifetime / 4)
        return now < self.expires_at - margin


# ---------------------------------------------------------------------------------------------- JWT claims
def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, decoded without verifying it (only the server can); None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64url(parts[0]))
        payload = json.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(payload, dict):
        return None
    return payload


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _cached(token: str) -> _CachedToken:
    claims = jwt_claims(token) or {}
    exp = claims.get("exp")
    iat = claims.get("iat")
    expires_at = float(exp) if isinstance(exp, (int, float)) else None
    lifetime = expires_at - float(iat) if expires_at is not None and isinstance(iat, (int, float)) else None
    return _CachedToken(token, expires_at, lifetime)


# ---------------------------------------------------------------------------------------------- helpers
def _warn_ignored(owner: str, name: str, instead: str = "the workspace's Airflow login is used") -> None:
    """Warn once per process that a v1 argument is accepted but has no effect here."""
    from airflow_mlpipe.sdk.no_effect import warn_no_effect

    warn_no_effect(owner, name, instead)


def _check_cloud(owner: str, cloud: str | None) -> None:
    if cloud not in (None, "AzureCloud"):
        _warn_ignored(owner, "cloud", "there is no Azure cloud to sign in to; the workspace's Airflow is used")


def _config_where(ws: Any) -> str:
    return f"workspace config {ws.config_path}" if ws.config_path else f"workspace {ws.home}"


def airflow_url(ws: Any) -> str:
    """The api-server of ``ws``: the configured remote one, or the embedded one (started if needed)."""
    url = ws.airflow_config.get("url")
    if url:
        return str(url).rstrip("/")
    return _embedded(ws).url


def _embedded(ws: Any) -> Any:
    """The embedded Airflow of ``ws``: running (its processes alive) as is, else started. No health request
    first: a slow answer on a busy machine must not make a header request restart a working Airflow."""
    from airflow_mlpipe.clients import local_airflow

    return local_airflow.status(ws, check_health=False) or local_airflow.ensure_running(ws)


def workspace_credentials(ws: Any) -> Credentials:
    """The credentials the workspace itself uses for its Airflow (the config's, or the embedded admin)."""
    cfg = ws.airflow_config
    if not cfg.get("url"):
        info = _embedded(ws)
        return Credentials(info.url, info.username, info.password, None, f"embedded Airflow of {ws.home}")
    raw = ws.config.get("airflow") or {}
    where = _config_where(ws)
    token = cfg.get("token") or None  # airflow_config has read ``token_env`` already
    token_env = raw.get("token_env")
    if not token and token_env and not cfg.get("username"):
        raise UserErrorException(f"{where}: 'airflow.token_env' names ${token_env}, which is not set")
    if not token and not cfg.get("username"):
        raise UserErrorException(
            f"{where}: 'airflow' names the api-server {cfg['url']} but no credentials: set 'username' with "
            "'password' or 'password_env', or 'token' or 'token_env'"
        )
    password_env = raw.get("password_env")
    if not token and password_env and not os.environ.get(str(password_env)):
        raise UserErrorException(f"{where}: 'airflow.password_env' names ${password_env}, which is not set")
    return Credentials(str(cfg["url"]).rstrip("/"), cfg.get("username"), cfg.get("password"), token, where)


def _login(creds: Credentials) -> str:
    """A new token from ``POST /auth/token``; a refusal or an unreachable server is an AuthenticationException."""
    from airflow_mlpipe.clients.airflow_rest import AirflowAPIError, AirflowClient

    client = AirflowClient(creds.url, username=creds.username, password=creds.password or "")
    try:
        return client.fetch_token()
    except AirflowAPIError as exc:
        who = f"user {creds.username!r} (credentials from {creds.source})"
        if exc.status == 0:
            message = f"could not reach Airflow at {creds.url} to log in as {who}: {exc.detail}"
        else:
            message = f"Airflow at {creds.url} refused the login of {who}: {exc.status} {exc.detail}"
        raise AuthenticationException(message) from exc
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------- classes
class AbstractAuthentication:
    """Base of the v1 authentication classes: an Airflow JWT per workspace, cached until shortly before expiry.

    ``workspace`` (not in v1) names the workspace whose Airflow to log in to; by default the workspace this
    object is given to, else ``Workspace.from_config()``.
    """

    def __init__(self, cloud: str | None = None, *, workspace: Any = None) -> None:
        self._cloud = cloud or "AzureCloud"
        self._workspace = workspace
        self._tokens: dict[tuple[str, str], _CachedToken] = {}
        self._lock = threading.Lock()
        self._caching = True

    # ------------------------------------------------------------------ what to log in with
    def _credentials(self, ws: Any) -> Credentials:
        return workspace_credentials(ws)

    def _bind(self, ws: Any) -> None:
        """Called by ``Workspace(auth=self)``: the first workspace given this object is its default."""
        if self._workspace is None:
            self._workspace = ws

    def _resolve_workspace(self) -> Any:
        if self._workspace is None:
            from airflow_mlpipe.sdk.workspace import Workspace

            self._workspace = Workspace.from_config()
        return self._workspace

    # ------------------------------------------------------------------ tokens
    def _bearer(self, ws: Any = None, force: bool = False) -> str:
        """A token for ``ws``'s Airflow: the cached one while fresh, else a new login (``force``: always)."""
        creds = self._credentials(ws if ws is not None else self._resolve_workspace())
        key = (creds.url, creds.username or "")
        with self._lock:
            cached = self._tokens.get(key)
            if creds.token:
                cached = _cached(creds.token)
                if cached.expires_at is not None and cached.expires_at <= time.time():
                    raise AuthenticationException(
                        f"the token for Airflow at {creds.url} (from {creds.source}) expired at "
                        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(cached.expires_at))}: issue a new one "
                        "(POST /auth/token) or configure a user name and password instead"
                    )
            elif force or not self._caching or cached is None or not cached.fresh(time.time()):
                cached = _cached(_login(creds))
            self._tokens[key] = cached
            return cached.token

    def _invalidate(self, token: str | None = None) -> None:
        """Forget the cached ``token`` (all tokens if None), e.g. after the server answered 401 to it."""
        with self._lock:
            for key, cached in list(self._tokens.items()):
                if token is None or cached.token == token:
                    del self._tokens[key]

    # ------------------------------------------------------------------ v1 API
    def get_authentication_header(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for REST calls to the workspace's Airflow (v1 name)."""
        return {"Authorization": f"Bearer {self._bearer()}"}

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The token and its expiry (epoch seconds; 0 if it carries none), azure-core style; scopes are ignored."""
        token = self._bearer()
        expires_at = _cached(token).expires_at
        return AccessToken(token, int(expires_at or 0))

    def signed_session(self, session: Any = None) -> Any:
        """A ``requests.Session`` sending the header; on a 401 it logs in again and resends the request once."""
        import requests

        session = session if session is not None else requests.Session()
        session.headers.update(self.get_authentication_header())

        def retry_401(response: Any, *args: Any, **kwargs: Any) -> Any:
            if response.status_code != 401 or getattr(response.request, "_mlpipe_retried", False):
                return response
            sent = response.request.headers.get("Authorization", "")
            self._invalidate(token=sent.removeprefix("Bearer ") or None)
            header = self.get_authentication_header()
            session.headers.update(header)
            again = response.request.copy()
            again.headers.update(header)
            again._mlpipe_retried = True
            response.content  # noqa: B018 - read the body so the connection goes back to the pool
            response.close()
            return session.send(again, **kwargs)

        session.hooks["response"].append(retry_401)
        return session

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class InteractiveLoginAuthentication(AbstractAuthentication):
    """v1 interactive login: the workspace's configured Airflow credentials (embedded: the admin account).

    ``force=True`` logs in again instead of reusing a cached token; ``tenant_id`` and ``cloud`` have no effect.
    """

    def __init__(self, force: bool = False, tenant_id: str | None = None, cloud: str | None = None, *,
                 workspace: Any = None, **kwargs: Any) -> None:
        super().__init__(cloud, workspace=workspace)
        name = type(self).__name__
        if tenant_id is not None:
            _warn_ignored(name, "tenant_id", "there is no Azure AD tenant; the workspace's Airflow login is used")
        _check_cloud(name, cloud)
        for key in kwargs:
            _warn_ignored(name, key)
        self._force = bool(force)

    def _bearer(self, ws: Any = None, force: bool = False) -> str:
        if self._force:
            self._force = False
            force = True
        return super()._bearer(ws, force=force)


class AzureCliAuthentication(AbstractAuthentication):
    """v1 ``az login`` credentials: the workspace's configured Airflow credentials (embedded: the admin)."""

    def __init__(self, cloud: str | None = None, *, workspace: Any = None, **kwargs: Any) -> None:
        super().__init__(cloud, workspace=workspace)
        _check_cloud(type(self).__name__, cloud)
        for key in kwargs:
            _warn_ignored(type(self).__name__, key)


class MsiAuthentication(AbstractAuthentication):
    """v1 managed identity: the deployment's configured Airflow account (the workspace's credentials)."""

    def __init__(self, cloud: str | None = None, identity_config: dict[str, Any] | None = None, *,
                 workspace: Any = None, **kwargs: Any) -> None:
        super().__init__(cloud, workspace=workspace)
        name = type(self).__name__
        _check_cloud(name, cloud)
        if identity_config is not None:
            _warn_ignored(name, "identity_config", "a managed identity maps to the workspace's configured account")
        for key in kwargs:
            _warn_ignored(name, key)
        self.identity_config = identity_config


class ServicePrincipalAuthentication(AbstractAuthentication):
    """v1 service principal: ``service_principal_id`` is the Airflow user name, ``service_principal_password``
    its password, or, if it is a JWT, a token issued for it beforehand (used as is; it cannot be renewed).

    ``tenant_id`` is kept for display only; ``_enable_caching=False`` logs in for every header.
    """

    def __init__(self, tenant_id: str, service_principal_id: str, service_principal_password: str,
                 cloud: str = "AzureCloud", _enable_caching: bool = True, *, workspace: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(cloud, workspace=workspace)
        name = type(self).__name__
        for arg, value in (("service_principal_id", service_principal_id),
                           ("service_principal_password", service_principal_password)):
            if not isinstance(value, str) or not value:
                raise UserErrorException(
                    f"{name}: argument {arg!r} must be a non-empty string, got {type(value).__name__}"
                )
        _check_cloud(name, cloud)
        for key in kwargs:
            _warn_ignored(name, key)
        self.tenant_id = tenant_id
        self.service_principal_id = service_principal_id
        self._password = service_principal_password
        self._caching = bool(_enable_caching)

    @property
    def _is_token(self) -> bool:
        return jwt_claims(self._password) is not None

    def _credentials(self, ws: Any) -> Credentials:
        url = airflow_url(ws)
        source = f"{type(self).__name__}({self.service_principal_id!r})"
        if self._is_token:
            return Credentials(url, self.service_principal_id, None, self._password, source)
        return Credentials(url, self.service_principal_id, self._password, None, source)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tenant_id={self.tenant_id!r}, service_principal_id={self.service_principal_id!r})"

