"""Datastore locations: which storage root a datastore name means, and its fsspec filesystem.

A datastore is a named root URL (``file://``, ``memory://``, ``s3://``, ``gs://``, ``abfs://`` …) plus, for
remote stores, the id of an Airflow connection that holds the credentials. ``workspaceblobstore`` and
``workspacefilestore`` always exist as local folders in the workspace home unless the workspace config points
them elsewhere (a cluster uses shared object storage). The runtime resolves step outputs and inputs with
:class:`DatastoreLocation`; the v1 ``Datastore`` of the SDK subclasses it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.datastore_urls import (
    CONN_HINT,
    KIND_BY_PROTOCOL,
    check_name,
    is_sql_kind,
    kind_of,
    normalize_url,
    option_secrets,
    protocol_of,
)
from airflow_mlpipe.data.workspace_location import DEFAULT_DATASTORE

log = logging.getLogger(__name__)

#: built-in datastores and their v1 ``datastore_type``
BUILTINS: dict[str, str] = {"workspaceblobstore": "AzureBlob", "workspacefilestore": "AzureFile"}


def _config_entries(workspace: Any) -> dict[str, dict[str, Any]]:
    raw = (getattr(workspace, "config", None) or {}).get("datastores") or {}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        entry = {"url": entry} if isinstance(entry, str) else dict(entry)
        out[str(name).lower()] = {"name": str(name), **entry}
    return out


def default_datastore_name(workspace: Any) -> str:
    """The workspace's default datastore: its config's, or the one set with ``set_default_datastore``."""
    name = getattr(workspace, "_default_datastore_name", None) or DEFAULT_DATASTORE
    if name.lower() == DEFAULT_DATASTORE:
        try:
            name = workspace.store.get_setting("default_datastore") or name
        except Exception:  # pragma: no cover - a store problem must not hide the default
            log.debug("could not read default datastore setting", exc_info=True)
    return name


def datastore_record(workspace: Any, name: str | None) -> dict[str, Any]:
    """Find a datastore: workspace config first (deployments remap stores), then the store, then built-ins."""
    name = check_name(default_datastore_name(workspace) if name is None else name)
    key = name.lower()
    config = _config_entries(workspace)
    if key in config:
        entry = config[key]
        if not entry.get("url"):
            raise UserErrorException(f"Workspace config datastore {name!r} has no 'url'")
        url = normalize_url(entry["url"], f"Workspace config datastore {name!r}")
        kind = entry.get("kind") or BUILTINS.get(key) or KIND_BY_PROTOCOL.get(protocol_of(url), protocol_of(url))
        return {"name": entry["name"], "url": url, "conn_id": entry.get("conn_id"), "kind": kind,
                "options": dict(entry.get("options") or {}), "origin": "config"}
    row = workspace.store.get_datastore(key)
    if row is not None:
        options = dict(row.get("options") or {})
        return {"name": options.pop("display_name", row["name"]), "url": row["url"], "conn_id": row["conn_id"],
                "kind": row["kind"], "options": options.get("storage_options") or {},
                "settings": options.get("settings") or {}, "origin": "store"}
    if key in BUILTINS:
        folder = Path(workspace.home) / "datastores" / key
        folder.mkdir(parents=True, exist_ok=True)
        return {"name": key, "url": folder.as_uri(), "conn_id": None, "kind": BUILTINS[key], "options": {},
                "origin": "builtin"}
    known = sorted(known_datastore_names(workspace))
    raise UserErrorException(f"Datastore {name!r} is not registered in this workspace; known datastores: {known}")


def known_datastore_names(workspace: Any) -> list[str]:
    """Built-in, registered and configured datastore names, in that order."""
    names = dict.fromkeys(BUILTINS)
    names.update(dict.fromkeys(r["name"] for r in workspace.store.list_datastores()))
    names.update(dict.fromkeys(_config_entries(workspace)))
    return list(names)


def register_datastore(workspace: Any, datastore_name: str, url: str, conn_id: str | None = None,
                       overwrite: bool = False, kind: str | None = None,
                       storage_options: dict[str, Any] | None = None,
                       settings: dict[str, Any] | None = None) -> None:
    """Record a datastore in the workspace store; credentials only through the Airflow connection ``conn_id``.

    ``storage_options`` are non-secret filesystem options (e.g. an endpoint URL) kept in the store;
    ``settings`` are the non-secret v1 properties of a registration (account, protocol, server, user ...).
    """
    check_name(datastore_name)
    url = normalize_url(url, f"Datastore {datastore_name!r}")
    protocol = protocol_of(url)
    import fsspec

    if is_sql_kind(kind):
        pass  # a SQLAlchemy URL, read by the SQL engines and never through fsspec
    elif protocol not in fsspec.available_protocols() and protocol != "azfile":
        raise UserErrorException(f"Datastore {datastore_name!r}: fsspec knows no protocol {protocol!r} ({url})")
    if storage_options is not None and not isinstance(storage_options, dict):
        raise UserErrorException(f"Datastore {datastore_name!r}: storage_options must be a dict, got "
                                 f"{type(storage_options).__name__}")
    found = option_secrets(storage_options or {})
    if found:
        raise UserErrorException(
            f"Datastore {datastore_name!r}: storage option(s) {', '.join(repr(f) for f in found)} look like "
            f"credentials; {CONN_HINT}"
        )
    found = option_secrets(settings or {})
    if found:
        raise UserErrorException(f"Datastore {datastore_name!r}: setting(s) {', '.join(found)} look like credentials; "
                                 f"{CONN_HINT}")
    options: dict[str, Any] = {"display_name": datastore_name}
    if storage_options:
        options["storage_options"] = dict(storage_options)
    if settings:
        options["settings"] = {k: v for k, v in settings.items() if v is not None}
    workspace.store.register_datastore(datastore_name, kind or kind_of(url), url, conn_id=conn_id,
                                       options=options, overwrite=overwrite)
    if protocol == "file":
        Path(urlsplit(url).path).mkdir(parents=True, exist_ok=True)


#: ways to read an Airflow connection outside an Airflow task, ``(workspace, conn_id) -> Connection | None``;
#: the clients layer adds the embedded Airflow's metadata DB (the data layer must not know the launcher)
ConnectionReader = Callable[[Any, str], Any]
_CONNECTION_READERS: list[ConnectionReader] = []


def add_connection_reader(reader: ConnectionReader) -> None:
    """Let :func:`find_connection` ask ``reader`` first when it runs outside an Airflow task."""
    if reader not in _CONNECTION_READERS:
        _CONNECTION_READERS.append(reader)


def make_connection(conn_id: str, conn_type: str | None, *, host: str | None = None, login: str | None = None,
                    password: str | None = None, port: int | None = None, schema: str | None = None,
                    extra: str | None = None) -> Any:
    """An Airflow ``Connection`` held in memory (the layers above never import Airflow themselves)."""
    from airflow.sdk import Connection

    return Connection(conn_id=conn_id, conn_type=conn_type, host=host, login=login, password=password, port=port,
                      schema=schema, extra=extra)


def in_airflow_task() -> bool:
    """True inside a task process of an Airflow worker (its connections come through the Task SDK)."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def find_connection(workspace: Any, conn_id: str, owner: str) -> Any:
    """The Airflow connection ``conn_id`` with its secrets: in a task through Airflow, in the user's own process
    from the workspace's Airflow (the registered readers), else Airflow's env-var / secrets backends.

    The result holds secrets: never log it, ``repr`` it or put it in a message.
    """
    if not in_airflow_task():
        for reader in _CONNECTION_READERS:
            conn = reader(workspace, conn_id)
            if conn is not None:
                return conn
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or no secrets backend reachable
        raise UserErrorException(
            f"{owner}: the Airflow connection {conn_id!r} cannot be read ({type(exc).__name__}); create it "
            f"(`airflow connections add {conn_id} ...`) or register the datastore again with its credentials"
        ) from None


class DatastoreLocation:
    """A named storage root of a workspace: its URL, filesystem and paths. ``name=None`` → the default."""

    def __init__(self, workspace: Any, name: str | None = None, *, _rec: dict[str, Any] | None = None) -> None:
        rec = _rec if _rec is not None else datastore_record(workspace, name)
        self.workspace = workspace
        self._name: str = rec["name"]
        self._url: str = rec["url"]
        self._conn_id: str | None = rec.get("conn_id")
        self._kind: str = rec["kind"]
        self._options: dict[str, Any] = dict(rec.get("options") or {})
        self._settings: dict[str, Any] = dict(rec.get("settings") or {})
        self._origin: str = rec.get("origin", "store")
        self._fs: Any = None
        self._connection: Any = None

    @classmethod
    def get(cls, workspace: Any, datastore_name: str | None = None) -> Any:
        return cls(workspace, datastore_name)

    @classmethod
    def list(cls, workspace: Any) -> dict[str, Any]:
        return {store.name: store for store in (cls(workspace, n) for n in known_datastore_names(workspace))}

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return self._name

    @property
    def datastore_type(self) -> str:
        return self._kind

    @property
    def url(self) -> str:
        return self._url

    @property
    def protocol(self) -> str:
        return protocol_of(self._url)

    @property
    def url_protocol(self) -> str:
        """The protocol of the root URL (``abfs``, ``s3``, ``postgresql+psycopg2`` …), whatever ``protocol`` says."""
        return protocol_of(self._url)

    @property
    def settings(self) -> dict[str, Any]:
        """The non-secret v1 settings of the registration (account, endpoint, server, user …)."""
        return dict(self._settings)

    @property
    def is_sql(self) -> bool:
        """A SQL database (read with :meth:`sql_url` by the engines), not a file store."""
        return is_sql_kind(self._kind)

    @property
    def conn_id(self) -> str | None:
        return self._conn_id

    @property
    def storage_options(self) -> dict[str, Any]:
        """Non-secret fsspec options of this datastore (e.g. an endpoint URL)."""
        return dict(self._options)

    @property
    def is_local(self) -> bool:
        return self.url_protocol in ("file", "local")

    def connection(self) -> Any:
        """The datastore's Airflow connection, secrets included (see :func:`find_connection`); never log it."""
        if self._connection is None:
            if not self._conn_id:
                raise UserErrorException(f"Datastore {self.name!r} has no Airflow connection")
            self._connection = find_connection(self.workspace, self._conn_id, f"Datastore {self.name!r}")
        return self._connection

    def sql_url(self) -> str:
        """The SQLAlchemy URL of a SQL datastore WITH the credentials of its connection: for the engines only,
        never log it."""
        if not self.is_sql:
            raise UserErrorException(f"Datastore {self.name!r} is a {self._kind} datastore, not a SQL one")
        if not self._conn_id:
            return self._url
        from sqlalchemy.engine import make_url

        conn = self.connection()
        if self._settings.get("auth") == "ServicePrincipal":
            raise UserErrorException(
                f"Datastore {self.name!r}: service principal sign-in to Azure SQL needs an ODBC driver with Entra ID "
                "support, which this installation has not; register it with username= and password= instead"
            )
        url = make_url(self._url)
        url = url.set(username=conn.login or url.username, password=conn.password or None,
                      host=conn.host or url.host, port=conn.port or url.port, database=conn.schema or url.database)
        return url.render_as_string(hide_password=False)

    @property
    def fs(self) -> Any:
        """The fsspec filesystem (lazily); with a ``conn_id`` it is built in memory from the connection."""
        if self._fs is None:
            if self.is_sql:
                raise UserErrorException(
                    f"Datastore {self.name!r} is a SQL datastore ({self._kind}), not a file store: read it with "
                    "SqlDataReference(datastore, sql_table=... | sql_query=...) in a DataTransferStep"
                )
            if self.url_protocol == "azfile":
                raise UserErrorException(
                    f"Datastore {self.name!r}: Azure file shares have no fsspec backend; register the storage as "
                    "a blob container (abfs://) or mount the share and register its local path"
                )
            if self._conn_id:
                self._fs = connection_fs(self.url_protocol, self._conn_id, self.connection(), self._options)
            else:
                from fsspec.core import url_to_fs

                self._fs, _ = url_to_fs(self._url, **self._options)
        return self._fs

    @property
    def root(self) -> str:
        """The root path inside :attr:`fs`."""
        if self.is_local:
            root = urlsplit(self._url).path or "/"
            Path(root).mkdir(parents=True, exist_ok=True)
            return root.rstrip("/") or "/"
        root = type(self.fs)._strip_protocol(self._url)
        return root.rstrip("/") if root not in ("", "/") else root

    def full_path(self, relative: str | None = None) -> str:
        """The path of ``relative`` (datastore-relative) inside :attr:`fs`."""
        rel = (relative or "").replace("\\", "/").lstrip("/")
        root = self.root
        if not rel or rel == ".":
            return root
        return f"{root}{rel}" if root.endswith("/") or root == "" else f"{root}/{rel}"

    def uri(self, relative: str | None = None) -> str:
        rel = (relative or "").replace("\\", "/").lstrip("/")
        base = self._url.rstrip("/") if not self._url.endswith(":///") else self._url
        if not rel:
            return self._url
        return f"{base}{rel}" if base.endswith("/") else f"{base}/{rel}"

    def to_ref(self) -> dict[str, Any]:
        """Non-secret description for specs and the UI."""
        return {"name": self.name, "type": self.datastore_type, "url": self.url, "conn_id": self.conn_id}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, datastore_type={self.datastore_type!r}, url={self.url!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DatastoreLocation) and other.name.lower() == self.name.lower()
                and other.url == self.url)

    def __hash__(self) -> int:
        return hash((self.name.lower(), self.url))


def _azure_blob_fs(conn: Any, extra: dict[str, Any]) -> Any:
    """adlfs from a ``wasb``/``adls`` connection: the account URL is the host (adlfs itself only knows
    ``https://<account>.<host>``, so an emulator's path-style URL goes through a connection string composed here)."""
    from adlfs import AzureBlobFileSystem

    if extra.get("connection_string"):
        return AzureBlobFileSystem(connection_string=extra["connection_string"], skip_instance_cache=True)
    account = extra.get("account_name") or conn.login
    host = (conn.host or f"https://{account}.blob.core.windows.net").rstrip("/")
    host = host if "://" in host else f"https://{host}"
    if extra.get("tenant_id"):  # a service principal: client id and secret are login and password
        return AzureBlobFileSystem(account_name=account, tenant_id=extra["tenant_id"], client_id=conn.login,
                                   client_secret=conn.password, account_host=urlsplit(host).netloc,
                                   skip_instance_cache=True)
    parts = [f"DefaultEndpointsProtocol={urlsplit(host).scheme}", f"AccountName={account}", f"BlobEndpoint={host}"]
    if extra.get("sas_token"):
        parts.append(f"SharedAccessSignature={str(extra['sas_token']).lstrip('?')}")
    elif conn.password:
        parts.append(f"AccountKey={conn.password}")
    else:
        return AzureBlobFileSystem(account_name=account, account_host=urlsplit(host).netloc, anon=True,
                                   skip_instance_cache=True)
    return AzureBlobFileSystem(connection_string=";".join(parts), skip_instance_cache=True)


def _s3_fs(conn: Any, extra: dict[str, Any], options: dict[str, Any]) -> Any:
    """s3fs from an ``aws`` connection: keys are login/password, endpoint and region come from the extra."""
    import s3fs

    service = (extra.get("service_config") or {}).get("s3") or {}
    region = extra.get("region_name")
    kwargs: dict[str, Any] = {
        "key": conn.login or extra.get("aws_access_key_id") or None,
        "secret": conn.password or extra.get("aws_secret_access_key") or None,
        "token": extra.get("aws_session_token") or None,
        "endpoint_url": service.get("endpoint_url") or extra.get("endpoint_url") or None,
        "skip_instance_cache": True,
        **options,
    }
    if region:
        kwargs["client_kwargs"] = {"region_name": region, **kwargs.get("client_kwargs", {})}
    return s3fs.S3FileSystem(**kwargs)


def connection_fs(protocol: str, conn_id: str, conn: Any, options: dict[str, Any] | None = None) -> Any:
    """The fsspec filesystem for ``protocol`` from an Airflow connection held in memory (Blob and S3 built here,
    other protocols by the Airflow provider's ``get_fs`` reading this same connection)."""
    extra = conn.extra_dejson
    conn_type = (conn.conn_type or "").lower()
    if protocol in ("abfs", "abfss", "az") and conn_type in ("wasb", "adls", "azure_data_lake", ""):
        return _azure_blob_fs(conn, extra)
    if protocol in ("s3", "s3a") and conn_type in ("aws", "s3", ""):
        return _s3_fs(conn, extra, dict(options or {}))
    from airflow.sdk.execution_time.context import _preset_connections
    from airflow.sdk.io.fs import get_fs

    token = _preset_connections.set({**(_preset_connections.get() or {}), conn_id: conn})
    try:
        return get_fs(protocol, conn_id, dict(options or {}) or None)
    finally:
        _preset_connections.reset(token)


def resolve_uri(workspace: Any, location: str | dict[str, Any]) -> tuple[Any, str]:
    """``(fs, path inside fs)`` for a URI, a local path, ``{"uri": …}`` or ``{"datastore": name, "path": rel}``.

    A URI under a datastore registered with a ``conn_id`` goes through that datastore, so credentials apply.
    """
    if isinstance(location, dict):
        if location.get("datastore"):
            store = DatastoreLocation(workspace, location["datastore"])
            return store.fs, store.full_path(location.get("path") or "")
        if "uri" not in location:
            raise UserErrorException(f"Cannot resolve location {location!r}: expected 'uri' or 'datastore'")
        location = location["uri"]
    if not isinstance(location, str):
        raise UserErrorException(f"Cannot resolve location {location!r}: expected a URI string")
    uri = normalize_url(location)
    if protocol_of(uri) in ("http", "https"):
        raise UserErrorException(f"{uri}: http(s) sources are not supported (no internet); copy the data to a "
                                 "datastore and reference it there")
    if workspace is not None and not uri.startswith("file:"):
        for store in DatastoreLocation.list(workspace).values():
            if not (store.conn_id or store.storage_options):
                continue
            base = store.url.rstrip("/")
            if uri == base or uri.startswith(base + "/"):
                return store.fs, store.full_path(uri[len(base):])
    from fsspec.core import url_to_fs

    return url_to_fs(uri)
