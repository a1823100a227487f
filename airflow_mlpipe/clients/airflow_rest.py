"""A small client for the Airflow 3 REST API v2 (token auth through ``POST /auth/token``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.workspace_location import WorkspaceLocation

#: attempts to trigger a run with our own run id when Airflow answers a transient error (SQLite lock, restart)
TRIGGER_ATTEMPTS = 4
#: retries of an idempotent request that Airflow answered with its "Database error" 500 (SQLite write lock)
DB_BUSY_RETRIES = 3
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})


class AirflowAPIError(RuntimeError):
    """A 4xx/5xx answer of the Airflow API (or a transport failure, status 0)."""

    def __init__(self, status: int, detail: Any, method: str, path: str) -> None:
        self.status = status
        self.detail = detail
        self.method = method
        self.path = path
        super().__init__(f"Airflow API {method} {path} -> {status}: {_detail_text(detail)}")

    @property
    def unreachable(self) -> bool:
        """True if nothing answered (transport failure) or a proxy said the server is gone (502/503/504)."""
        return self.status in (0, 502, 503, 504)


class AirflowUnreachableError(TimeoutError):
    """Airflow did not answer for longer than the unreachable timeout while we were waiting for a run."""


#: how long polling keeps retrying an Airflow that does not answer before giving up (seconds)
ENV_UNREACHABLE_TIMEOUT = "MLPIPE_AIRFLOW_UNREACHABLE_TIMEOUT"
DEFAULT_UNREACHABLE_TIMEOUT = 300.0


def unreachable_timeout(value: float | str | None = None) -> float:
    """``value``, else ``$MLPIPE_AIRFLOW_UNREACHABLE_TIMEOUT``, else 300 s; a bad value is a clear error."""
    source = "unreachable_timeout"
    if value is None:
        value = os.environ.get(ENV_UNREACHABLE_TIMEOUT) or None
        source = ENV_UNREACHABLE_TIMEOUT
    if value is None:
        return DEFAULT_UNREACHABLE_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise UserErrorException(f"{source} must be a positive number of seconds, got {value!r}")
    return seconds


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):  # pydantic validation errors
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", []))
                parts.append(f"{loc}: {item.get('msg', item)}")
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def _seg(value: str) -> str:
    """One URL path segment (run ids hold ``+`` and ``:``)."""
    return quote(str(value), safe="")


class AirflowClient:
    """Airflow REST API v2 client. ``token`` wins; otherwise ``username``/``password`` fetch one when needed."""

    API = "/api/v2"

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._token = token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AirflowClient({self.base_url!r}, username={self.username!r})"

    @property
    def token(self) -> str | None:
        if self._token is None and self.username:
            self._token = self.fetch_token()
        return self._token

    def fetch_token(self) -> str:
        path = "/auth/token"
        try:
            resp = self._http.post(path, json={"username": self.username, "password": self.password or ""})
        except httpx.HTTPError as exc:
            raise AirflowAPIError(0, f"cannot reach {self.base_url}: {exc}", "POST", path) from exc
        if resp.status_code >= 400:
            raise AirflowAPIError(resp.status_code, _error_detail(resp), "POST", path)
        return resp.json()["access_token"]

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        allow_404: bool = False,
        content: bytes | None = None,
    ) -> httpx.Response | None:
        """Send a request with the bearer token; on 401 re-fetch the token once. Raises AirflowAPIError."""
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        relogged, busy_retries = False, 0
        while True:
            hdrs = dict(headers or {})
            token = self.token
            if token:
                hdrs["Authorization"] = f"Bearer {token}"
            try:
                resp = self._http.request(method, path, json=json, params=params, headers=hdrs, content=content)
            except httpx.HTTPError as exc:
                raise AirflowAPIError(0, f"cannot reach {self.base_url}: {exc}", method, path) from exc
            if resp.status_code == 401 and not relogged and self.username:
                self._token = None  # expired or server secret changed: log in again
                relogged = True
                continue
            if (resp.status_code == 500 and method in IDEMPOTENT_METHODS and busy_retries < DB_BUSY_RETRIES
                    and "Database error" in resp.text):
                # Airflow on SQLite: another component held the write lock; the same request again is safe
                busy_retries += 1
                time.sleep(0.5 * 2**busy_retries)
                continue
            break
        if resp.status_code == 404 and allow_404:
            return None
        if resp.status_code >= 400:
            raise AirflowAPIError(resp.status_code, _error_detail(resp), method, path)
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.request(method, path, **kw)
        if resp is None:
            return None
        if not resp.content:
            return None
        return resp.json()

    def _paged(self, path: str, key: str, params: dict[str, Any] | None = None, page: int = 100) -> list[dict]:
        items: list[dict] = []
        offset = 0
        while True:
            data = self._json("GET", path, params={**(params or {}), "limit": page, "offset": offset})
            batch = data.get(key, [])
            items.extend(batch)
            offset += len(batch)
            if not batch or offset >= int(data.get("total_entries", 0)):
                return items

    # ------------------------------------------------------------------ monitor
    def health(self) -> dict[str, Any]:
        return self._json("GET", f"{self.API}/monitor/health")

    def version(self) -> dict[str, Any]:
        return self._json("GET", f"{self.API}/version")

    # ------------------------------------------------------------------ DAGs
    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        return self._json("GET", f"{self.API}/dags/{_seg(dag_id)}", allow_404=True)

    def get_dag_details(self, dag_id: str) -> dict[str, Any]:
        return self._json("GET", f"{self.API}/dags/{_seg(dag_id)}/details")

    def wait_for_dag(
        self,
        dag_id: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 60,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        """Poll until the DAG exists in the API and ``predicate(details)`` holds; return the details."""
        deadline = time.monotonic() + timeout
        details: dict[str, Any] | None = None
        while True:
            if self.get_dag(dag_id) is not None:
                details = self.get_dag_details(dag_id)
                if predicate is None or predicate(details):
                    return details
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        errors = ""
        try:
            errs = self.import_errors()
            if errs:
                errors = "; import errors: " + "; ".join(
                    f"{e.get('filename')}: {str(e.get('stack_trace', '')).strip().splitlines()[-1:]}" for e in errs
                )
        except AirflowAPIError:
            pass
        what = "did not appear" if details is None else "did not reach the expected state"
        raise TimeoutError(f"DAG {dag_id!r} {what} in Airflow at {self.base_url} within {timeout:.0f}s{errors}")

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self._json("PATCH", f"{self.API}/dags/{_seg(dag_id)}", json={"is_paused": False})

    def pause(self, dag_id: str) -> dict[str, Any]:
        return self._json("PATCH", f"{self.API}/dags/{_seg(dag_id)}", json={"is_paused": True})

    def import_errors(self) -> list[dict[str, Any]]:
        return self._paged(f"{self.API}/importErrors", "import_errors")

    # ------------------------------------------------------------------ DAG runs
    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        dag_run_id: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if dag_run_id:
            body["dag_run_id"] = dag_run_id
        if note is not None:
            body["note"] = note
        path = f"{self.API}/dags/{_seg(dag_id)}/dagRuns"
        for attempt in range(TRIGGER_ATTEMPTS):
            try:
                return self._json("POST", path, json=body)
            except AirflowAPIError as exc:
                # Airflow on SQLite answers "Database error" (500) while another component holds the write lock;
                # with our own run id a retry is safe: a run the failed answer did create is found, not doubled
                transient = exc.status >= 500 or exc.status == 0
                if not dag_run_id or not transient or attempt == TRIGGER_ATTEMPTS - 1:
                    if dag_run_id and exc.status == 409 and attempt > 0:
                        return self.get_dag_run(dag_id, dag_run_id)
                    raise
                time.sleep(0.5 * 2**attempt)
                existing = self.request("GET", f"{path}/{_seg(dag_run_id)}", allow_404=True)
                if existing is not None:
                    return existing.json()
        raise AssertionError("unreachable")

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"{self.API}/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}")

    def list_dag_runs(
        self,
        dag_id: str = "~",
        limit: int = 100,
        order_by: str = "-run_after",
        state: str | list[str] | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "order_by": order_by, "offset": offset}
        if state:
            params["state"] = state
        data = self._json("GET", f"{self.API}/dags/{_seg(dag_id)}/dagRuns", params=params)
        return data.get("dag_runs", [])

    def set_dag_run_state(self, dag_id: str, run_id: str, state: str) -> dict[str, Any]:
        """PATCH a run's state (``failed`` cancels a running run; ``success``/``queued`` also accepted)."""
        return self._json(
            "PATCH", f"{self.API}/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}", json={"state": state}
        )

    def wait_for_dag_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 600,
        interval: float = 0.5,
        states: tuple[str, ...] = ("success", "failed"),
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_dag_run(dag_id, run_id)
            if run.get("state") in states:
                return run
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"DAG run {dag_id}/{run_id} still {run.get('state')!r} after {timeout:.0f}s"
                )
            time.sleep(interval)

    # ------------------------------------------------------------------ task instances, XCom, logs
    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._paged(
            f"{self.API}/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/taskInstances", "task_instances"
        )

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """The (deserialised) value of one XCom entry; raises AirflowAPIError(404) when absent."""
        path = (
            f"{self.API}/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/taskInstances/{_seg(task_id)}"
            f"/xcomEntries/{_seg(key)}"
        )
        data = self._json("GET", path, params={"map_index": map_index})
        return data.get("value")

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        path = (
            f"{self.API}/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/taskInstances/{_seg(task_id)}"
            f"/logs/{int(try_number)}"
        )
        data = self._json("GET", path, params={"full_content": True, "map_index": map_index})
        content = data.get("content", []) if isinstance(data, dict) else data
        if isinstance(content, str):
            return content
        return "\n".join(_format_log_entry(entry) for entry in content or [])

    # ------------------------------------------------------------------ connections
    def get_connection(self, conn_id: str) -> dict[str, Any] | None:
        """The connection as Airflow's API shows it (password and secret extras masked), or None."""
        return self._json("GET", f"{self.API}/connections/{_seg(conn_id)}", allow_404=True)

    def put_connection(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the connection ``body["connection_id"]``, or update the fields ``body`` sets when it exists.

        The password never reaches an error message: Airflow's validation errors echo the request body.
        """
        conn_id = str(body.get("connection_id") or "")
        path = f"{self.API}/connections"
        try:
            try:
                return self._json("POST", path, json=body)
            except AirflowAPIError as exc:
                if exc.status != 409:
                    raise
            return self._json("PATCH", f"{path}/{_seg(conn_id)}", json=body)
        except AirflowAPIError as exc:
            secret = body.get("password")
            raise AirflowAPIError(exc.status, _without_secret(exc.detail, secret), exc.method, exc.path) from None


def _without_secret(detail: Any, secret: Any) -> Any:
    """``detail`` with every password field and every occurrence of ``secret`` masked."""
    if isinstance(detail, dict):
        return {k: "***" if str(k).lower() == "password" else _without_secret(v, secret) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_without_secret(item, secret) for item in detail]
    if isinstance(detail, str) and secret:
        return detail.replace(str(secret), "***")
    return detail


_LOG_META = {"timestamp", "event", "level", "logger", "filename", "lineno", "try_number", "run_id", "dag_id",
             "task_id", "ti_id", "map_index", "error_detail"}


def _format_log_entry(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    parts = []
    if entry.get("timestamp"):
        parts.append(f"[{entry['timestamp']}]")
    if entry.get("level"):
        parts.append(str(entry["level"]).upper())
    if entry.get("logger"):
        parts.append(f"{entry['logger']}:")
    parts.append(str(entry.get("event", "")))
    extra = {k: v for k, v in entry.items() if k not in _LOG_META}
    if extra:
        parts.append(" ".join(f"{k}={v}" for k, v in extra.items()))
    line = " ".join(parts)
    for err in entry.get("error_detail") or []:
        if isinstance(err, dict):
            frames = err.get("frames") or []
            where = f" at {frames[-1].get('filename')}:{frames[-1].get('lineno')}" if frames else ""
            line += f"\n    {err.get('exc_type')}: {err.get('exc_value')}{where}"
    return line


def _error_detail(resp: httpx.Response) -> Any:
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip() or resp.reason_phrase
    if isinstance(data, dict) and "detail" in data:
        return data["detail"]
    return data


class AuthenticatedAirflowClient(AirflowClient):
    """An AirflowClient whose tokens come from an authentication object (``Workspace(..., auth=auth)``).

    Duck-typed on what the SDK's v1 authentication classes offer: ``_credentials(ws)`` (where to log in, as
    whom), ``_bearer(ws, force=False)`` (a cached or new token) and ``_invalidate(token)`` (forget one).
    """

    def __init__(self, ws: Any, auth: Any, url: str, username: str | None, timeout: float) -> None:
        # a user name makes the base class retry once after a 401 (it then asks ``token`` again)
        super().__init__(url, username=username or "token", timeout=timeout)
        self._ws = ws
        self._auth = auth
        self._handed: str | None = None

    @property
    def token(self) -> str | None:
        if self._token is None and self._handed is not None:  # the server said 401: log in again
            self._auth._invalidate(self._handed)
        self._token = self._handed = self._auth._bearer(self._ws)
        return self._token

    def fetch_token(self) -> str:
        return self._auth._bearer(self._ws, force=True)


def is_auth_object(auth: Any) -> bool:
    """Whether ``auth`` can sign requests the way :class:`AuthenticatedAirflowClient` asks it to."""
    return all(callable(getattr(auth, name, None)) for name in ("_credentials", "_bearer", "_invalidate"))


def client_with_auth(ws: Any, auth: Any) -> AuthenticatedAirflowClient:
    """The Airflow REST client for ``ws``, logging in with ``auth`` (``Workspace(..., auth=auth)``)."""
    if not is_auth_object(auth):
        raise UserErrorException(
            f"Workspace auth must be an airflow_mlpipe authentication object (InteractiveLoginAuthentication, "
            f"ServicePrincipalAuthentication, ...), got {type(auth).__name__}"
        )
    creds = auth._credentials(ws)
    return AuthenticatedAirflowClient(ws, auth, creds.url, creds.username,
                                      float(ws.airflow_config.get("timeout", 30)))


def client_for(ws: WorkspaceLocation) -> AirflowClient:
    """The Airflow of ``ws``: the configured remote one, or the embedded one (started if needed)."""
    if getattr(ws, "auth", None) is not None:  # Workspace(..., auth=...): log in as that identity
        return client_with_auth(ws, ws.auth)
    cfg = ws.airflow_config
    if cfg.get("url"):
        return AirflowClient(
            cfg["url"],
            username=cfg.get("username"),
            password=cfg.get("password"),
            token=cfg.get("token"),
            timeout=float(cfg.get("timeout", 30)),
        )
    from airflow_mlpipe.clients import local_airflow

    info = local_airflow.ensure_running(ws)
    return AirflowClient(info.url, username=info.username, password=info.password)
