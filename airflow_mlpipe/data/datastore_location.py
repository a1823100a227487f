"""Datastore locations: which storage root a datastore name means, and its fsspec filesystem.

A datastore is a named root URL (``file://``, ``memory://``, ``s3://``, ``gs://``, ``abfs://`` …) plus, for
remote stores, the id of an Airflow connection that holds the credentials. ``workspaceblobstore`` and
``workspacefilestore`` always exist as local folders in the workspace home unless the workspace config points
them elsewhere (a cluster uses shared object storage). The runtime resolves step outputs and inputs with
:class:`DatastoreLocation`; the v1 ``Datastore`` of the SDK subclasses it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.datastore_urls import (
    CONN_HINT,
    KIND_BY_PROTOCOL,
    check_name,
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
                "kind": row["kind"], "options": options.get("storage_options") or {}, "origin": "store"}
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
                       storage_options: dict[str, Any] | None = None) -> None:
    """Record a datastore in the workspace store; credentials only through the Airflow connection ``conn_id``.

    ``storage_options`` are non-secret filesystem options (e.g. an endpoint URL) kept in the store.
    """
    check_name(datastore_name)
    url = normalize_url(url, f"Datastore {datastore_name!r}")
    protocol = protocol_of(url)
    import fsspec

    if protocol not in fsspec.available_protocols() and protocol != "azfile":
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
    options: dict[str, Any] = {"display_name": datastore_name}
    if storage_options:
        options["storage_options"] = dict(storage_options)
    workspace.store.register_datastore(datastore_name, kind or kind_of(url), url, conn_id=conn_id,
                                       options=options, overwrite=overwrite)
    if protocol == "file":
        Path(urlsplit(url).path).mkdir(parents=True, exist_ok=True)


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
        self._origin: str = rec.get("origin", "store")
        self._fs: Any = None

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
    def conn_id(self) -> str | None:
        return self._conn_id

    @property
    def storage_options(self) -> dict[str, Any]:
        """Non-secret fsspec options of this datastore (e.g. an endpoint URL)."""
        return dict(self._options)

    @property
    def is_local(self) -> bool:
        return self.protocol in ("file", "local")

    @property
    def fs(self) -> Any:
        """The fsspec filesystem; with a ``conn_id`` it is built by Airflow from the connection (lazily)."""
        if self._fs is None:
            if self.protocol == "azfile":
                raise UserErrorException(
                    f"Datastore {self.name!r}: Azure file shares have no fsspec backend; register the storage as "
                    "a blob container (abfs://) or mount the share and register its local path"
                )
            if self._conn_id:
                from airflow.sdk import ObjectStoragePath  # the one Airflow import of the data layer

                self._fs = ObjectStoragePath(self._url, conn_id=self._conn_id).fs
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
