"""Datastore (v1 ``azureml.core.Datastore``) over fsspec.

A datastore is a named root URL (``file://``, ``memory://``, ``s3://``, ``gs://``, ``abfs://`` …) plus, for
remote stores, the id of an Airflow connection that holds the credentials: secrets never reach our store,
specs or logs. The location, the filesystem and the transfers are :mod:`airflow_mlpipe.data`; this is the v1
class users write against (registration, upload/download, data references).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

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

    # ------------------------------------------------------------------ v1 properties
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
        report = transfer.upload(self, transfer.upload_plan(self, paths, relative_root, target), overwrite)
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
        count, skipped = transfer.download(self, target_path, prefix, overwrite)
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
    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, datastore_type={self.datastore_type!r}, url={self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datastore) and other.name.lower() == self.name.lower() and other.url == self.url

    def __hash__(self) -> int:
        return hash((self.name.lower(), self.url))
