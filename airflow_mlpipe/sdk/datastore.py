"""Datastore (v1 ``azureml.core.Datastore``) over fsspec.

A datastore is a named root URL (``file://``, ``memory://``, ``s3://``, ``gs://``, ``abfs://`` …) plus, for
remote stores, the id of an Airflow connection that holds the credentials: secrets never reach our store,
specs or logs. ``workspaceblobstore`` and ``workspacefilestore`` always exist as local folders in the
workspace home unless the workspace config points them elsewhere (a cluster uses shared object storage).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from airflow_mlpipe.exceptions import UserErrorException
from airflow_mlpipe.sdk.data_reference import DataReference

log = logging.getLogger(__name__)

#: built-in datastores and their v1 ``datastore_type``
BUILTINS: dict[str, str] = {"workspaceblobstore": "AzureBlob", "workspacefilestore": "AzureFile"}
DEFAULT_DATASTORE = "workspaceblobstore"
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_KIND_BY_PROTOCOL = {
    "file": "Local", "local": "Local", "memory": "Memory", "s3": "S3", "s3a": "S3", "gs": "GCS", "gcs": "GCS",
    "abfs": "AzureBlob", "abfss": "AzureBlob", "az": "AzureBlob", "adl": "AzureDataLake", "dbfs": "DBFS",
    "azfile": "AzureFile", "hdfs": "Hdfs", "sftp": "SFTP", "ftp": "FTP",
}
#: parts of a query parameter or option name that carry a credential (compared without case and separators)
_SECRET_NAME_PARTS = ("password", "passwd", "passphrase", "secret", "token", "signature", "credential",
                      "accesskey", "sharedaccess", "connectionstring", "connstr")
#: whole words of such a name (``sig`` of a SAS, ``pwd`` of a connection string)
_SECRET_NAME_WORDS = frozenset({"sig", "pwd", "sas"})
#: option values that name an anonymous / ambient auth mode rather than carry a secret (gcsfs ``token``)
_AUTH_MODES = frozenset({"", "anon", "google_default", "cloud", "browser", "none"})
_CONN_HINT = ("put it in an Airflow Connection and pass its id as conn_id=... (secrets never go into the "
              "workspace store, specs or logs)")
_CHUNK = 1 << 20


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserErrorException(
            f"Invalid datastore name {name!r}: datastore names may contain only letters, digits and '_'"
        )
    return name


def _secret_name(name: str) -> bool:
    """True for a query parameter / option name that carries a credential (``X-Amz-Signature``, ``sig``,
    ``AccountKey``, ``aws_secret_access_key``, ``sas_token``, ``pwd`` ...), whatever its case or separators."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    joined = "".join(words)
    return (joined.endswith("key") or any(part in joined for part in _SECRET_NAME_PARTS)
            or bool(_SECRET_NAME_WORDS.intersection(words)))


def _url_secret(url: str) -> str | None:
    """What in ``url`` carries a credential (a description naming the key, never its value), or None."""
    parts = urlsplit(url) if "://" in url else None
    if parts is not None and parts.password:
        return "a password in its user info (user:password@host)"
    path = parts.path if parts is not None else url
    pairs = [p for p in path.split(";")[1:] if "=" in p]  # connection-string / matrix style ``;AccountKey=…``
    if parts is not None:
        pairs += [p for p in re.split(r"[&;]", f"{parts.query}&{parts.fragment}") if p]
    for pair in pairs:
        name, _, value = pair.partition("=")
        name = unquote_plus(name).strip()
        if value and _secret_name(name):
            return f"query parameter {name!r}"
    return None


def _normalize_url(url: str, owner: str = "Datastore url") -> str:
    """Plain local paths become ``file://`` URLs; URLs carrying credentials are refused."""
    if not isinstance(url, str) or not url:
        raise UserErrorException(f"{owner}: the url must be a non-empty string, got {url!r}")
    found = _url_secret(url)
    if found:
        raise UserErrorException(f"{owner}: the url must not carry credentials, but has {found}; {_CONN_HINT}")
    if "://" not in url:
        return Path(url).expanduser().resolve().as_uri()
    return url


def _option_secrets(value: Any, path: str = "") -> list[str]:
    """Key paths (``client_kwargs.aws_secret_access_key``) of credentials anywhere in nested storage options."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _secret_name(str(key)) and not _auth_mode(item):
                found.append(where)
            else:
                found += _option_secrets(item, where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += _option_secrets(item, f"{path}[{i}]")
    elif isinstance(value, str) and "://" in value and _url_secret(value):
        found.append(f"{path} ({_url_secret(value)})")
    return found


def _auth_mode(value: Any) -> bool:
    """An option value that selects an auth mode (``token="anon"``, ``anon=True``) instead of holding a secret."""
    return value is None or isinstance(value, bool) or (isinstance(value, str) and value.lower() in _AUTH_MODES)


def _protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def _strip_target_path(target_path: str | None) -> str:
    """v1: leading ``./``, ``../`` and ``/`` sequences are dropped; backslashes become slashes."""
    if not target_path:
        return ""
    path = str(target_path).replace("\\", "/")
    path = re.sub(r"^(\.{1,2}/|/)+", "", path)
    return "" if path in (".", "..") else path.rstrip("/")


def _same_content(src: str, fs: Any, target: str) -> bool:
    """Same size and same bytes (cheap size check first)."""
    try:
        if fs.size(target) != os.path.getsize(src):
            return False
        with open(src, "rb") as a, fs.open(target, "rb") as b:
            while True:
                ca, cb = a.read(_CHUNK), b.read(_CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except (OSError, FileNotFoundError):
        return False


def atomic_local_copy(read: Any, dst: str) -> None:
    """Copy a readable binary stream to ``dst`` through a temp file in the same folder and ``os.replace``."""
    folder = os.path.dirname(dst) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dst)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(read, out, _CHUNK)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _config_entries(workspace: Any) -> dict[str, dict[str, Any]]:
    raw = (getattr(workspace, "config", None) or {}).get("datastores") or {}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        entry = {"url": entry} if isinstance(entry, str) else dict(entry)
        out[str(name).lower()] = {"name": str(name), **entry}
    return out


def _default_name(workspace: Any) -> str:
    name = getattr(workspace, "_default_datastore_name", None) or DEFAULT_DATASTORE
    if name.lower() == DEFAULT_DATASTORE:
        try:
            name = workspace.store.get_setting("default_datastore") or name
        except Exception:  # pragma: no cover - a store problem must not hide the default
            log.debug("could not read default datastore setting", exc_info=True)
    return name


def _record(workspace: Any, name: str | None) -> dict[str, Any]:
    """Find a datastore: workspace config first (deployments remap stores), then the store, then built-ins."""
    name = _check_name(_default_name(workspace) if name is None else name)
    key = name.lower()
    config = _config_entries(workspace)
    if key in config:
        entry = config[key]
        if not entry.get("url"):
            raise UserErrorException(f"Workspace config datastore {name!r} has no 'url'")
        url = _normalize_url(entry["url"], f"Workspace config datastore {name!r}")
        kind = entry.get("kind") or BUILTINS.get(key) or _KIND_BY_PROTOCOL.get(_protocol(url), _protocol(url))
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
    known = sorted(_known_names(workspace))
    raise UserErrorException(f"Datastore {name!r} is not registered in this workspace; known datastores: {known}")


def _known_names(workspace: Any) -> list[str]:
    names = dict.fromkeys(BUILTINS)
    names.update(dict.fromkeys(r["name"] for r in workspace.store.list_datastores()))
    names.update(dict.fromkeys(_config_entries(workspace)))
    return list(names)


class Datastore:
    """A named storage root. ``Datastore(ws)`` / ``Datastore.get(ws, name)``; ``name=None`` → the default."""

    def __init__(self, workspace: Any, name: str | None = None, *, _rec: dict[str, Any] | None = None) -> None:
        rec = _rec if _rec is not None else _record(workspace, name)
        self.workspace = workspace
        self._name: str = rec["name"]
        self._url: str = rec["url"]
        self._conn_id: str | None = rec.get("conn_id")
        self._kind: str = rec["kind"]
        self._options: dict[str, Any] = dict(rec.get("options") or {})
        self._origin: str = rec.get("origin", "store")
        self._fs: Any = None

    # ------------------------------------------------------------------ lookup
    @staticmethod
    def get(workspace: Any, datastore_name: str | None = None) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Any) -> Datastore:
        return Datastore(workspace, None)

    @staticmethod
    def list(workspace: Any) -> dict[str, Datastore]:
        return {store.name: store for store in (Datastore(workspace, n) for n in _known_names(workspace))}

    # ------------------------------------------------------------------ registration
    @staticmethod
    def register(workspace: Any, datastore_name: str, url: str, conn_id: str | None = None,
                 overwrite: bool = False, kind: str | None = None,
                 storage_options: dict[str, Any] | None = None) -> Datastore:
        """Register any fsspec URL; credentials only through the Airflow connection ``conn_id``.

        ``storage_options`` are non-secret filesystem options (e.g. an endpoint URL) kept in the store.
        """
        _check_name(datastore_name)
        url = _normalize_url(url, f"Datastore {datastore_name!r}")
        protocol = _protocol(url)
        import fsspec

        if protocol not in fsspec.available_protocols() and protocol != "azfile":
            raise UserErrorException(f"Datastore {datastore_name!r}: fsspec knows no protocol {protocol!r} ({url})")
        if storage_options is not None and not isinstance(storage_options, dict):
            raise UserErrorException(f"Datastore {datastore_name!r}: storage_options must be a dict, got "
                                     f"{type(storage_options).__name__}")
        found = _option_secrets(storage_options or {})
        if found:
            raise UserErrorException(
                f"Datastore {datastore_name!r}: storage option(s) {', '.join(repr(f) for f in found)} look like "
                f"credentials; {_CONN_HINT}"
            )
        kind = kind or _KIND_BY_PROTOCOL.get(protocol, protocol.upper())
        options: dict[str, Any] = {"display_name": datastore_name}
        if storage_options:
            options["storage_options"] = dict(storage_options)
        workspace.store.register_datastore(datastore_name, kind, url, conn_id=conn_id, options=options,
                                           overwrite=overwrite)
        if protocol == "file":
            Path(urlsplit(url).path).mkdir(parents=True, exist_ok=True)
        return Datastore(workspace, datastore_name)

    @staticmethod
    def _refuse_secrets(name: str, **secrets: Any) -> None:
        given = [k for k, v in secrets.items() if v]
        if given:
            raise UserErrorException(
                f"Datastore {name!r}: {', '.join(given)} cannot be passed here. Put the credentials in an Airflow "
                "connection (e.g. `airflow connections add my_azure --conn-type wasb ...`) and pass its id as "
                "conn_id=...; secrets are never stored in the workspace"
            )

    @staticmethod
    def register_azure_blob_container(
        workspace: Any, datastore_name: str, container_name: str, account_name: str, sas_token: str | None = None,
        account_key: str | None = None, protocol: str | None = None, endpoint: str | None = None,
        overwrite: bool = False, create_if_not_exists: bool = False, skip_validation: bool = False,
        blob_cache_timeout: int | None = None, grant_workspace_access: bool = False,
        subscription_id: str | None = None, resource_group: str | None = None, conn_id: str | None = None,
    ) -> Datastore:
        Datastore._refuse_secrets(datastore_name, sas_token=sas_token, account_key=account_key)
        url = f"abfs://{container_name}@{account_name}.dfs.{endpoint or 'core.windows.net'}"
        return Datastore.register(workspace, datastore_name, url, conn_id=conn_id, overwrite=overwrite,
                                  kind="AzureBlob")

    @staticmethod
    def register_azure_file_share(
        workspace: Any, datastore_name: str, file_share_name: str, account_name: str, sas_token: str | None = None,
        account_key: str | None = None, protocol: str | None = None, endpoint: str | None = None,
        overwrite: bool = False, create_if_not_exists: bool = False, skip_validation: bool = False,
        conn_id: str | None = None,
    ) -> Datastore:
        """Recorded for ported code; fsspec has no Azure Files backend, so reading it raises a clear error."""
        Datastore._refuse_secrets(datastore_name, sas_token=sas_token, account_key=account_key)
        url = f"azfile://{file_share_name}@{account_name}.file.{endpoint or 'core.windows.net'}"
        return Datastore.register(workspace, datastore_name, url, conn_id=conn_id, overwrite=overwrite,
                                  kind="AzureFile")

    @staticmethod
    def register_azure_data_lake_gen2(
        workspace: Any, datastore_name: str, filesystem: str, account_name: str, tenant_id: str | None = None,
        client_id: str | None = None, client_secret: str | None = None, resource_url: str | None = None,
        authority_url: str | None = None, protocol: str | None = None, endpoint: str | None = None,
        overwrite: bool = False, subscription_id: str | None = None, resource_group: str | None = None,
        grant_workspace_access: bool = False, conn_id: str | None = None,
    ) -> Datastore:
        Datastore._refuse_secrets(datastore_name, client_secret=client_secret)
        url = f"abfs://{filesystem}@{account_name}.dfs.{endpoint or 'core.windows.net'}"
        return Datastore.register(workspace, datastore_name, url, conn_id=conn_id, overwrite=overwrite,
                                  kind="AzureDataLakeGen2")

    @staticmethod
    def register_dbfs(workspace: Any, datastore_name: str, conn_id: str | None = None) -> Datastore:
        return Datastore.register(workspace, datastore_name, "dbfs:///", conn_id=conn_id, overwrite=True,
                                  kind="DBFS")

    def set_as_default(self) -> None:
        self.workspace.set_default_datastore(self.name)

    def unregister(self) -> None:
        """Forget the registration (the storage itself is not touched)."""
        if self._origin == "builtin":
            raise UserErrorException(f"Datastore {self.name!r} is built in and cannot be unregistered")
        if self._origin == "config":
            raise UserErrorException(
                f"Datastore {self.name!r} comes from the workspace config file; remove it there"
            )
        self.workspace.store.unregister_datastore(self.name)

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
        return _protocol(self._url)

    @property
    def conn_id(self) -> str | None:
        return self._conn_id

    @property
    def is_local(self) -> bool:
        return self.protocol in ("file", "local")

    @property
    def container_name(self) -> str | None:
        netloc = urlsplit(self._url).netloc
        return netloc.split("@", 1)[0] if "@" in netloc else None

    @property
    def account_name(self) -> str | None:
        netloc = urlsplit(self._url).netloc
        return netloc.split("@", 1)[1].split(".", 1)[0] if "@" in netloc else None

    @property
    def credential_type(self) -> str:
        return "AirflowConnection" if self._conn_id else "None"

    sas_token = None
    account_key = None

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
                from airflow.sdk import ObjectStoragePath

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

    # ------------------------------------------------------------------ transfer
    def upload(self, src_dir: str, target_path: str | None = None, overwrite: bool = False,
               show_progress: bool = True) -> DataReference:
        """Upload every file under ``src_dir`` to ``target_path/<relative path>``."""
        if not os.path.isdir(src_dir):
            raise UserErrorException(f"Datastore.upload: src_dir {src_dir!r} is not a directory")
        files = [os.path.join(d, f) for d, _, names in sorted(os.walk(src_dir)) for f in sorted(names)]
        if not files:
            return DataReference(datastore=self, path_on_datastore=_strip_target_path(target_path) or None)
        return self.upload_files(files, relative_root=src_dir, target_path=target_path, overwrite=overwrite,
                                 show_progress=show_progress)

    def upload_files(self, files: Iterable[str], relative_root: str | None = None, target_path: str | None = None,
                     overwrite: bool = False, show_progress: bool = True) -> DataReference:
        """v1 semantics, but errors raise and skipped files are counted and reported.

        ``overwrite=False`` skips existing targets; ``overwrite=True`` rewrites only targets whose bytes differ.
        """
        paths = [os.path.abspath(os.fspath(f)) for f in files]
        for path in paths:
            if not os.path.isfile(path):
                raise UserErrorException(f"Datastore.upload_files: {path!r} is not a file")
        target = _strip_target_path(target_path)
        if not paths:
            return DataReference(datastore=self, path_on_datastore=target or None)
        root = os.path.abspath(relative_root) if relative_root else os.path.commonpath(
            [os.path.dirname(p) for p in paths])
        plan: list[tuple[str, str]] = []
        for path in paths:
            rel = os.path.relpath(path, root)
            if rel.startswith(".."):
                raise UserErrorException(
                    f"Datastore.upload_files: {path!r} is not under relative_root {root!r}"
                )
            rel = rel.replace(os.sep, "/")
            plan.append((path, self.full_path(f"{target}/{rel}" if target else rel)))
        fs = self.fs
        uploaded = skipped = unchanged = 0
        failures: list[str] = []
        for src, dst in plan:
            try:
                if fs.exists(dst):
                    if not overwrite:
                        skipped += 1
                        continue
                    if _same_content(src, fs, dst):
                        unchanged += 1
                        continue
                if self.is_local:
                    with open(src, "rb") as handle:
                        atomic_local_copy(handle, dst)
                else:
                    parent = dst.rsplit("/", 1)[0]
                    if parent:
                        fs.makedirs(parent, exist_ok=True)
                    fs.put_file(src, dst)
                uploaded += 1
            except Exception as exc:  # collected so that one bad file does not hide the others
                failures.append(f"{src} -> {dst}: {exc}")
        self.last_transfer = {"uploaded": uploaded, "skipped": skipped, "unchanged": unchanged}
        message = (f"Uploaded {uploaded} file(s) to datastore {self.name!r}"
                   + (f", skipped {skipped} existing (pass overwrite=True to replace)" if skipped else "")
                   + (f", {unchanged} already identical" if unchanged else ""))
        log.info(message)
        if show_progress:
            print(message)
        if failures:
            raise UserErrorException(f"Datastore.upload_files: {len(failures)} file(s) failed:\n" + "\n".join(failures))
        return DataReference(datastore=self, path_on_datastore=target or None)

    def _list(self, prefix: str | None) -> list[str]:
        """Files whose datastore-relative name starts with ``prefix`` (a folder or a name prefix)."""
        fs = self.fs
        if not prefix:
            base = self.root
            return sorted(fs.find(base)) if fs.exists(base) else []
        full = self.full_path(prefix)
        if fs.isfile(full):
            return [full]
        if fs.isdir(full):
            return sorted(fs.find(full))
        parent = full.rsplit("/", 1)[0]
        if not fs.exists(parent):
            return []
        return sorted(p for p in fs.find(parent) if p.startswith(full))

    def download(self, target_path: str, prefix: str | None = None, overwrite: bool = False,
                 show_progress: bool = True) -> int:
        """Write ``target_path/<name on datastore>`` (prefix kept); returns how many files were written."""
        fs = self.fs
        root = self.root.rstrip("/")
        count = skipped = 0
        for remote in self._list(_strip_target_path(prefix) or None):
            rel = remote[len(root):].lstrip("/") if remote.startswith(root) else remote.rsplit("/", 1)[-1]
            local = os.path.join(target_path, *rel.split("/"))
            if os.path.exists(local) and not overwrite:
                skipped += 1
                continue
            with fs.open(remote, "rb") as handle:
                atomic_local_copy(handle, local)
            count += 1
        message = f"Downloaded {count} file(s) from datastore {self.name!r}" + (
            f", skipped {skipped} existing (pass overwrite=True to replace)" if skipped else "")
        log.info(message)
        if show_progress:
            print(message)
        return count

    # ------------------------------------------------------------------ data references
    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        return DataReference(datastore=self, data_reference_name=data_reference_name, path_on_datastore=path)

    def as_mount(self) -> DataReference:
        return DataReference(datastore=self, mode="mount")

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        return DataReference(datastore=self, mode="download", path_on_compute=path_on_compute)

    def as_upload(self, path_on_compute: str | None = None) -> DataReference:
        return DataReference(datastore=self, mode="upload", path_on_compute=path_on_compute)

    # ------------------------------------------------------------------ misc
    def to_ref(self) -> dict[str, Any]:
        """Non-secret description for specs and the UI."""
        return {"name": self.name, "type": self.datastore_type, "url": self.url, "conn_id": self.conn_id}

    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, datastore_type={self.datastore_type!r}, url={self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datastore) and other.name.lower() == self.name.lower() and other.url == self.url

    def __hash__(self) -> int:
        return hash((self.name.lower(), self.url))


def resolve_uri(workspace: Any, location: str | dict[str, Any]) -> tuple[Any, str]:
    """``(fs, path inside fs)`` for a URI, a local path, ``{"uri": …}`` or ``{"datastore": name, "path": rel}``.

    A URI under a datastore registered with a ``conn_id`` goes through that datastore, so credentials apply.
    """
    if isinstance(location, dict):
        if location.get("datastore"):
            store = Datastore.get(workspace, location["datastore"])
            return store.fs, store.full_path(location.get("path") or "")
        if "uri" not in location:
            raise UserErrorException(f"Cannot resolve location {location!r}: expected 'uri' or 'datastore'")
        location = location["uri"]
    if not isinstance(location, str):
        raise UserErrorException(f"Cannot resolve location {location!r}: expected a URI string")
    uri = _normalize_url(location)
    if _protocol(uri) in ("http", "https"):
        raise UserErrorException(f"{uri}: http(s) sources are not supported (no internet); copy the data to a "
                                 "datastore and reference it there")
    if workspace is not None and not uri.startswith("file:"):
        for store in Datastore.list(workspace).values():
            if not (store.conn_id or store._options):
                continue
            base = store.url.rstrip("/")
            if uri == base or uri.startswith(base + "/"):
                return store.fs, store.full_path(uri[len(base):])
    from fsspec.core import url_to_fs

    return url_to_fs(uri)
