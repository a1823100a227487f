"""Datastore (v1 ``azureml.core.Datastore``) over fsspec.

A datastore is a named root URL (``file://``, ``memory://``, ``s3://``, ``gs://``, ``abfs://`` …) plus, for
remote stores, the id of an Airflow connection that holds the credentials: secrets never reach our store,
specs or logs. The location, the filesystem and the transfers are :mod:`airflow_mlpipe.data`; this is the v1
class users write against (registration, upload/download, data references).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from airflow_mlpipe.clients import datastore_connections as dsconn
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data import transfer
from airflow_mlpipe.data.datastore_location import (  # noqa: F401 - resolve_uri and BUILTINS: public names here
    BUILTINS,
    DatastoreLocation,
    known_datastore_names,
    register_datastore,
    resolve_uri,
)
from airflow_mlpipe.data.transfer import atomic_local_copy, strip_target_path  # noqa: F401 - public names here
from airflow_mlpipe.data.workspace_location import DEFAULT_DATASTORE  # noqa: F401 - public name here
from airflow_mlpipe.sdk.data_reference import DataReference

log = logging.getLogger(__name__)
_AZURE_STORAGE = frozenset({"AzureBlob", "AzureFile", "AzureDataLakeGen2"})


class Datastore(DatastoreLocation):
    """A named storage root. ``Datastore(ws)`` / ``Datastore.get(ws, name)``; ``name=None`` → the default."""

    # ------------------------------------------------------------------ lookup
    @staticmethod
    def get(workspace: Any, datastore_name: str | None = None) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Any) -> Datastore:
        return Datastore(workspace, None)

    @staticmethod
    def list(workspace: Any) -> dict[str, Datastore]:
        return {store.name: store for store in (Datastore(workspace, n) for n in known_datastore_names(workspace))}

    # ------------------------------------------------------------------ registration
    @staticmethod
    def register(workspace: Any, datastore_name: str, url: str, conn_id: str | None = None,
                 overwrite: bool = False, kind: str | None = None,
                 storage_options: dict[str, Any] | None = None) -> Datastore:
        """Register any fsspec URL; credentials only through the Airflow connection ``conn_id``.

        ``storage_options`` are non-secret filesystem options (e.g. an endpoint URL) kept in the store.
        """
        register_datastore(workspace, datastore_name, url, conn_id=conn_id, overwrite=overwrite, kind=kind,
                           storage_options=storage_options)
        return Datastore(workspace, datastore_name)

    @staticmethod
    def _register_with_connection(workspace: Any, reg: Any, conn_id: str | None, overwrite: bool,
                                  check: Any = None) -> Datastore:
        """Try the registration (``check``) with its connection in memory, then write the connection through
        Airflow's REST API and the non-secret record into the store. An existing registration with the same
        settings is returned as it is when ``overwrite=False`` (v1); different settings are an error."""
        cid = conn_id or (reg.body["connection_id"] if reg.body else None)
        row = workspace.store.get_datastore(reg.name)
        if row is not None and not overwrite:
            options = row.get("options") or {}
            stored = {k: v for k, v in (options.get("settings") or {}).items() if v is not None}
            if (row["url"], row["kind"], row["conn_id"], stored) == (
                    reg.url, reg.kind, cid, {k: v for k, v in reg.settings.items() if v is not None}):
                return Datastore(workspace, reg.name)
            raise UserErrorException(
                f"Datastore {reg.name!r} is already registered with other settings ({row['kind']} at "
                f"{row['url']!r}); pass overwrite=True to replace it"
            )
        location = DatastoreLocation(workspace, _rec={"name": reg.name, "url": reg.url, "conn_id": cid,
                                                      "kind": reg.kind, "settings": reg.settings})
        if reg.body:
            location._connection = dsconn.in_memory(reg.body)
        elif check is not None and cid:  # the caller's connection: checked when it exists already
            try:
                location.connection()
            except UserErrorException as exc:
                log.warning("%s; registered without checking access", exc)
                check = None
        if check is not None:
            check(location)
        if reg.body:
            dsconn.write_connection(workspace, reg)
        register_datastore(workspace, reg.name, reg.url, conn_id=cid, overwrite=True, kind=reg.kind,
                           settings=reg.settings)
        return Datastore(workspace, reg.name)

    @staticmethod
    def register_azure_blob_container(
        workspace: Any, datastore_name: str, container_name: str, account_name: str, sas_token: str | None = None,
        account_key: str | None = None, protocol: str | None = None, endpoint: str | None = None,
        overwrite: bool = False, create_if_not_exists: bool = False, skip_validation: bool = False,
        blob_cache_timeout: int | None = None, grant_workspace_access: bool = False,
        subscription_id: str | None = None, resource_group: str | None = None, conn_id: str | None = None,
    ) -> Datastore:
        """The key or SAS goes into the Airflow connection ``mlpipe_ds_<name>`` (or pass your own ``conn_id``);
        ``endpoint="127.0.0.1:10000", protocol="http"`` is an emulator (path-style URL). Unless
        ``skip_validation``, the container is listed first (created with ``create_if_not_exists``)."""
        reg = dsconn.blob_registration(datastore_name, container_name, account_name, sas_token, account_key,
                                       protocol, endpoint, conn_id)
        where = f"container {container_name!r} of storage account {account_name!r} at {reg.settings['account_url']}"
        check = None if skip_validation and not create_if_not_exists else (
            lambda loc: dsconn.check_container(loc, reg, where, create_if_not_exists))
        return Datastore._register_with_connection(workspace, reg, conn_id, overwrite, check)

    @staticmethod
    def register_azure_file_share(
        workspace: Any, datastore_name: str, file_share_name: str, account_name: str, sas_token: str | None = None,
        account_key: str | None = None, protocol: str | None = None, endpoint: str | None = None,
        overwrite: bool = False, create_if_not_exists: bool = False, skip_validation: bool = False,
        conn_id: str | None = None,
    ) -> Datastore:
        """Recorded with its connection for ported code; fsspec has no Azure Files backend, so it is never
        validated and reading it raises a clear error."""
        reg = dsconn.file_share_registration(datastore_name, file_share_name, account_name, sas_token, account_key,
                                             protocol, endpoint, conn_id)
        return Datastore._register_with_connection(workspace, reg, conn_id, overwrite)

    @staticmethod
    def register_azure_data_lake_gen2(
        workspace: Any, datastore_name: str, filesystem: str, account_name: str, tenant_id: str | None = None,
        client_id: str | None = None, client_secret: str | None = None, resource_url: str | None = None,
        authority_url: str | None = None, protocol: str | None = None, endpoint: str | None = None,
        overwrite: bool = False, subscription_id: str | None = None, resource_group: str | None = None,
        grant_workspace_access: bool = False, conn_id: str | None = None,
    ) -> Datastore:
        """The service principal goes into an ``adls`` connection (login = client id, password = secret)."""
        reg = dsconn.adls_gen2_registration(datastore_name, filesystem, account_name, tenant_id, client_id,
                                            client_secret, resource_url, authority_url, protocol, endpoint, conn_id)
        return Datastore._register_with_connection(workspace, reg, conn_id, overwrite)

    @staticmethod
    def _register_sql(workspace: Any, reg: Any, conn_id: str | None, overwrite: bool,
                      skip_validation: bool) -> Datastore:
        where = f"server {reg.settings.get('host')!r} database {reg.settings.get('database_name')!r}"
        check = None if skip_validation else (lambda loc: dsconn.check_database(loc, reg, where))
        return Datastore._register_with_connection(workspace, reg, conn_id, overwrite, check)

    @staticmethod
    def register_azure_sql_database(
        workspace: Any, datastore_name: str, server_name: str, database_name: str, tenant_id: str | None = None,
        client_id: str | None = None, client_secret: str | None = None, resource_url: str | None = None,
        authority_url: str | None = None, endpoint: str | None = None, overwrite: bool = False,
        username: str | None = None, password: str | None = None, subscription_id: str | None = None,
        resource_group: str | None = None, grant_workspace_access: bool = False, conn_id: str | None = None,
        **kwargs: Any,
    ) -> Datastore:
        """``mssql+pymssql``; host ``<server_name>.database.windows.net`` (see ``sql_host``). Connects and runs
        ``SELECT 1`` first unless ``skip_validation=True``; a service principal is recorded only
        (``skip_validation`` implied: pymssql cannot sign in with one)."""
        reg = dsconn.azure_sql_registration(
            datastore_name, "AzureSqlDatabase", server_name, database_name, user=username, password=password,
            port=kwargs.get("port_number"), endpoint=endpoint, conn_id=conn_id, tenant_id=tenant_id,
            client_id=client_id, client_secret=client_secret)
        skip = bool(kwargs.get("skip_validation")) or reg.settings["auth"] == "ServicePrincipal"
        return Datastore._register_sql(workspace, reg, conn_id, overwrite, skip)

    @staticmethod
    def register_azure_postgre_sql(
        workspace: Any, datastore_name: str, server_name: str, database_name: str, user_id: str | None,
        user_password: str | None, port_number: int | None = None, endpoint: str | None = None,
        overwrite: bool = False, enforce_ssl: bool = True, conn_id: str | None = None, **kwargs: Any,
    ) -> Datastore:
        """``postgresql+psycopg2``; ``server_name`` with a dot, ``localhost`` or an IP is the host itself, else
        ``<server_name>.postgres.database.azure.com``; ``enforce_ssl`` adds ``sslmode=require`` for non-local
        hosts. Connects first unless ``skip_validation=True``."""
        reg = dsconn.azure_sql_registration(
            datastore_name, "AzurePostgreSql", server_name, database_name, user=user_id, password=user_password,
            port=port_number, endpoint=endpoint, conn_id=conn_id, enforce_ssl=enforce_ssl)
        return Datastore._register_sql(workspace, reg, conn_id, overwrite, bool(kwargs.get("skip_validation")))

    @staticmethod
    def register_azure_my_sql(
        workspace: Any, datastore_name: str, server_name: str, database_name: str, user_id: str | None,
        user_password: str | None, port_number: int | None = None, endpoint: str | None = None,
        overwrite: bool = False, conn_id: str | None = None, **kwargs: Any,
    ) -> Datastore:
        """``mysql+pymysql`` (MySQL and MariaDB); host rule as for PostgreSQL (``mysql.database.azure.com``)."""
        reg = dsconn.azure_sql_registration(
            datastore_name, "AzureMySql", server_name, database_name, user=user_id, password=user_password,
            port=port_number, endpoint=endpoint, conn_id=conn_id)
        return Datastore._register_sql(workspace, reg, conn_id, overwrite, bool(kwargs.get("skip_validation")))

    @staticmethod
    def register_sql_database(workspace: Any, datastore_name: str, url: str, overwrite: bool = False,
                              conn_id: str | None = None, skip_validation: bool = False) -> Datastore:
        """Not v1: any SQLAlchemy URL. A password in it moves into the connection ``mlpipe_ds_<name>``."""
        reg = dsconn.sql_url_registration(datastore_name, url, conn_id)
        return Datastore._register_sql(workspace, reg, conn_id, overwrite, skip_validation)

    @staticmethod
    def register_s3_bucket(workspace: Any, datastore_name: str, bucket_name: str, access_key_id: str | None = None,
                           secret_access_key: str | None = None, endpoint_url: str | None = None,
                           region_name: str | None = None, overwrite: bool = False, conn_id: str | None = None,
                           skip_validation: bool = False) -> Datastore:
        """Not v1: an S3 bucket through an ``aws`` connection (``endpoint_url`` for S3-compatible servers)."""
        reg = dsconn.s3_registration(datastore_name, bucket_name, access_key_id, secret_access_key, endpoint_url,
                                     region_name, conn_id)
        where = f"bucket {bucket_name!r}" + (f" at {endpoint_url}" if endpoint_url else "")
        check = None if skip_validation else (lambda loc: dsconn.check_container(loc, reg, where, False))
        return Datastore._register_with_connection(workspace, reg, conn_id, overwrite, check)

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
        ours = self._conn_id == dsconn.default_conn_id(self.name) and self._settings.get("auth") not in (
            None, "AirflowConnection")
        if ours:  # the connection this registration wrote holds its secret: it goes too
            dsconn.delete_connection(self.workspace, self._conn_id)

    # ------------------------------------------------------------------ v1 properties
    def _netloc_part(self, index: int) -> str | None:
        netloc = urlsplit(self._url).netloc
        if "@" not in netloc or self.is_sql:
            return None
        part = netloc.split("@", 1)[index]
        return part if index == 0 else part.split(".", 1)[0]

    @property
    def container_name(self) -> str | None:
        return self._settings.get("container_name") or self._netloc_part(0)

    @property
    def account_name(self) -> str | None:
        return self._settings.get("account_name") or self._netloc_part(1)

    @property
    def protocol(self) -> str:
        """v1: ``https``/``http`` for Azure storage; other stores: their URL's protocol (``s3``, ``file`` …)."""
        if self._kind in _AZURE_STORAGE and self.url_protocol in ("abfs", "abfss", "az", "azfile"):
            return self._settings.get("protocol") or "https"
        return self.url_protocol

    @property
    def endpoint(self) -> str | None:
        """v1: the Azure endpoint suffix (``core.windows.net``); an S3 store's endpoint URL; else None."""
        if self._kind in _AZURE_STORAGE:
            return self._settings.get("endpoint") or "core.windows.net"
        return self._settings.get("endpoint_url") or self._settings.get("endpoint")

    @property
    def credential_type(self) -> str:
        """``AccountKey`` / ``Sas`` / ``ServicePrincipal`` / ``SqlAuthentication`` / ``AccessKey`` / ``None``, or
        ``AirflowConnection`` when the registration named its own connection (we do not look inside it)."""
        return self._settings.get("auth") or ("AirflowConnection" if self._conn_id else "None")

    @property
    def server_name(self) -> str | None:
        return self._settings.get("server_name")

    @property
    def database_name(self) -> str | None:
        return self._settings.get("database_name")

    @property
    def user_id(self) -> str | None:
        return self._settings.get("user_id")

    #: v1 hands the key / SAS / password back; secrets stay in the Airflow connection here, so always None
    sas_token = None
    account_key = None
    client_secret = None
    password = None
    user_password = None

    # ------------------------------------------------------------------ transfer
    def upload(self, src_dir: str, target_path: str | None = None, overwrite: bool = False,
               show_progress: bool = True) -> DataReference:
        """Upload every file under ``src_dir`` to ``target_path/<relative path>``."""
        if not os.path.isdir(src_dir):
            raise UserErrorException(f"Datastore.upload: src_dir {src_dir!r} is not a directory")
        files = [os.path.join(d, f) for d, _, names in sorted(os.walk(src_dir)) for f in sorted(names)]
        if not files:
            return DataReference(datastore=self, path_on_datastore=strip_target_path(target_path) or None)
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
        target = strip_target_path(target_path)
        if not paths:
            return DataReference(datastore=self, path_on_datastore=target or None)
        plan = transfer.upload_plan(self, paths, relative_root, target)
        report = self._upload_shown(plan, overwrite) if show_progress else transfer.upload(self, plan, overwrite)
        self.last_transfer = report.counts()
        message = (f"Uploaded {report.uploaded} file(s) to datastore {self.name!r}"
                   + (f", skipped {report.skipped} existing (pass overwrite=True to replace)" if report.skipped
                      else "")
                   + (f", {report.unchanged} already identical" if report.unchanged else ""))
        log.info(message)
        if show_progress:
            print(message)
        if report.failures:
            raise UserErrorException(f"Datastore.upload_files: {len(report.failures)} file(s) failed:\n"
                                     + "\n".join(report.failures))
        return DataReference(datastore=self, path_on_datastore=target or None)

    def _list(self, prefix: str | None) -> list[str]:
        """Files whose datastore-relative name starts with ``prefix`` (a folder or a name prefix)."""
        return transfer.list_prefix(self, prefix)

    def download(self, target_path: str, prefix: str | None = None, overwrite: bool = False,
                 show_progress: bool = True) -> int:
        """Write ``target_path/<name on datastore>`` (prefix kept); returns how many files were written."""
        if show_progress:
            count, skipped = self._download_shown(target_path, prefix, overwrite)
        else:
            count, skipped = transfer.download(self, target_path, prefix, overwrite)
        message = f"Downloaded {count} file(s) from datastore {self.name!r}" + (
            f", skipped {skipped} existing (pass overwrite=True to replace)" if skipped else "")
        log.info(message)
        if show_progress:
            print(message)
        return count

    def _upload_shown(self, plan: list[tuple[str, str]], overwrite: bool) -> transfer.TransferReport:
        """``transfer.upload`` one file at a time under a progress bar (files and bytes, on stderr)."""
        report = transfer.TransferReport()
        with _bar(sum(os.path.getsize(src) for src, _ in plan), len(plan), f"Uploading to {self.name}") as bar:
            for done, item in enumerate(plan, 1):
                one = transfer.upload(self, [item], overwrite)
                report.uploaded += one.uploaded
                report.skipped += one.skipped
                report.unchanged += one.unchanged
                report.failures += one.failures
                bar.update(os.path.getsize(item[0]))
                bar.set_postfix_str(f"{done}/{len(plan)} files")
        return report

    def _download_shown(self, target_path: str, prefix: str | None, overwrite: bool) -> tuple[int, int]:
        """``transfer.download`` one file at a time under a progress bar (files and bytes, on stderr)."""
        remotes = transfer.list_prefix(self, strip_target_path(prefix) or None)
        sizes = [int(n or 0) for n in self.fs.sizes(remotes)] if remotes else []
        root = self.root.rstrip("/")
        count = skipped = 0
        with _bar(sum(sizes), len(remotes), f"Downloading from {self.name}") as bar:
            for done, (remote, size) in enumerate(zip(remotes, sizes, strict=True), 1):
                rel = remote[len(root):].lstrip("/") if remote.startswith(root) else remote.rsplit("/", 1)[-1]
                wrote, kept = transfer.download(self, target_path, rel, overwrite)
                count, skipped = count + wrote, skipped + kept
                bar.update(size)
                bar.set_postfix_str(f"{done}/{len(remotes)} files")
        return count, skipped

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
    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, datastore_type={self.datastore_type!r}, url={self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datastore) and other.name.lower() == self.name.lower() and other.url == self.url

    def __hash__(self) -> int:
        return hash((self.name.lower(), self.url))


def _bar(total_bytes: int, files: int, what: str) -> Any:
    """A tqdm bar in bytes on stderr, its postfix counting files."""
    from tqdm import tqdm

    return tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=what,
                postfix=f"0/{files} files", file=sys.stderr, leave=True)
