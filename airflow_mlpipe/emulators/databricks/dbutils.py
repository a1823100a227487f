"""``dbutils`` and ``display`` for notebooks run by the emulator, as far as pipelines use them.

- ``dbutils.widgets``: ``text``/``dropdown``/``combobox``/``multiselect`` declare a widget with a default,
  ``get``/``getArgument`` read it; the run's ``base_parameters`` win over defaults, as on Databricks.
- ``dbutils.notebook.exit(value)`` ends the notebook successfully; the value is ``notebook_output.result``.
  ``dbutils.notebook.run(path, timeout, arguments)`` runs another workspace notebook and returns its exit value.
- ``dbutils.fs``: ``ls``/``cp``/``mv``/``rm``/``put``/``head``/``mkdirs`` over DBFS (a local folder);
  ``dbfs:/x`` and ``/x`` are DBFS paths, ``file:/x`` is a local path.
- ``dbutils.secrets.get(scope, key)``: from the environment variable
  ``MLPIPE_DATABRICKS_SECRET_<SCOPE>_<KEY>`` (upper case, other characters as ``_``), else from
  ``<home>/secrets.json`` (``{"scope": {"key": "value"}}``), else, when the emulator runs with an Airflow
  configuration (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` in its environment, as when the embedded workspace
  starts it), from Airflow: the Variable ``<scope>.<key>``, else the field ``key`` (``password``, ``login``,
  ``host``, ``schema``, ``port`` or a key of the extra) of the Connection ``<scope>``, so secrets stay in
  Airflow. Values read this way are shown as ``[REDACTED]`` in the run's output, as Databricks does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from airflow_mlpipe.emulators.databricks.dbfs_paths import DbfsRoot

SECRETS_FILENAME = "secrets.json"
SECRET_ENV_PREFIX = "MLPIPE_DATABRICKS_SECRET_"
REDACTED = "[REDACTED]"


class NotebookExit(Exception):  # noqa: N818 - the control flow of dbutils.notebook.exit, not an error
    """Raised by ``dbutils.notebook.exit``; the executor ends the notebook successfully with ``value``."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class InputWidgetNotDefined(Exception):  # noqa: N818 - the name Databricks reports
    """``dbutils.widgets.get`` of a widget that has no parameter and was never declared."""


class FileInfo(NamedTuple):
    path: str
    name: str
    size: int
    modificationTime: int  # noqa: N815 - Databricks' field name


def secret_env_name(scope: str, key: str) -> str:
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", f"{scope}_{key}").upper()


class SecretStore:
    """Secrets from the environment, then from ``<home>/secrets.json``; remembers what it handed out."""

    def __init__(self, home: Path) -> None:
        self.file = Path(home) / SECRETS_FILENAME
        self.handed_out: set[str] = set()

    def _file_scopes(self) -> dict[str, dict[str, str]]:
        if not self.file.is_file():
            return {}
        data = json.loads(self.file.read_text())
        return {str(scope): {str(k): str(v) for k, v in keys.items()} for scope, keys in data.items()}

    def get(self, scope: str, key: str) -> str:
        value = os.environ.get(secret_env_name(scope, key))
        if value is None:
            value = self._file_scopes().get(scope, {}).get(key)
        if value is None:
            value = airflow_secret(scope, key)
        if value is None:
            raise ValueError(f"Secret does not exist with scope: {scope} and key: {key}")
        if value:
            self.handed_out.add(value)
        return value

    def redact(self, text: str) -> str:
        for value in sorted(self.handed_out, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


def airflow_secret(scope: str, key: str) -> str | None:
    """The Airflow Variable ``<scope>.<key>``, else the field ``key`` of the Airflow Connection ``<scope>``
    (decrypted by Airflow with its Fernet key); None without an Airflow configuration or when neither exists."""
    if not os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        return None
    try:
        from airflow.models.variable import Variable

        value = Variable.get(f"{scope}.{key}", default_var=None)
        if value is not None:
            return str(value)
        from airflow.models.connection import Connection

        conn = Connection.get_connection_from_secrets(scope)
    except Exception:  # noqa: BLE001 - no such variable or connection, or no reachable Airflow: not a secret
        return None
    fields = {"password": conn.password, "login": conn.login, "host": conn.host, "schema": conn.schema,
              "port": conn.port, **(conn.extra_dejson or {})}
    found = fields.get(key)
    return None if found is None else str(found)


class _Widgets:
    def __init__(self, parameters: dict[str, str]) -> None:
        self._parameters = {str(k): str(v) for k, v in (parameters or {}).items()}
        self._defaults: dict[str, str] = {}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:  # noqa: N803
        self._defaults[name] = str(defaultValue)

    def dropdown(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:  # noqa: N803
        self._defaults[name] = str(defaultValue)

    combobox = dropdown
    multiselect = dropdown

    def get(self, name: str) -> str:
        if name in self._parameters:
            return self._parameters[name]
        if name in self._defaults:
            return self._defaults[name]
        raise InputWidgetNotDefined(f"No input widget named {name} is defined")

    def getArgument(self, name: str, optional: str | None = None) -> str | None:  # noqa: N802
        try:
            return self.get(name)
        except InputWidgetNotDefined:
            return optional

    def getAll(self) -> dict[str, str]:  # noqa: N802
        return {**self._defaults, **self._parameters}

    def remove(self, name: str) -> None:
        self._defaults.pop(name, None)

    def removeAll(self) -> None:  # noqa: N802
        self._defaults.clear()


class _Notebook:
    def __init__(self, run_child: Callable[[str, int, dict[str, str]], str] | None) -> None:
        self._run_child = run_child

    def exit(self, value: Any) -> None:
        raise NotebookExit("" if value is None else str(value))

    def run(self, path: str, timeout_seconds: int = 0, arguments: dict[str, str] | None = None) -> str:
        if self._run_child is None:
            raise NotImplementedError("dbutils.notebook.run is not available here")
        return self._run_child(path, timeout_seconds, dict(arguments or {}))


class _Fs:
    def __init__(self, dbfs: DbfsRoot) -> None:
        self._dbfs = dbfs

    def _local(self, path: str) -> Path:
        return self._dbfs.for_utilities(path)

    def _display_path(self, original: str, local: Path) -> str:
        if original.startswith("file:"):
            return "file:" + local.as_posix()
        return "dbfs:" + self._dbfs.dbfs_path(local)

    def ls(self, path: str) -> list[FileInfo]:
        local = self._local(path)
        if not local.exists():
            raise FileNotFoundError(f"java.io.FileNotFoundException: File {path} does not exist.")
        entries = sorted(local.iterdir()) if local.is_dir() else [local]
        infos = []
        for entry in entries:
            stat = entry.stat()
            suffix = "/" if entry.is_dir() else ""
            infos.append(FileInfo(self._display_path(path, entry) + suffix, entry.name + suffix,
                                  0 if entry.is_dir() else stat.st_size, int(stat.st_mtime * 1000)))
        return infos

    def mkdirs(self, path: str) -> bool:
        self._local(path).mkdir(parents=True, exist_ok=True)
        return True

    def put(self, path: str, contents: str, overwrite: bool = False) -> bool:
        local = self._local(path)
        if local.exists() and not overwrite:
            raise FileExistsError(f"File already exists: {path}")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(contents)
        return True

    def head(self, path: str, maxBytes: int = 65536) -> str:  # noqa: N803
        with open(self._local(path), "rb") as handle:
            return handle.read(maxBytes).decode("utf-8", "replace")

    def cp(self, source: str, destination: str, recurse: bool = False) -> bool:
        src, dst = self._local(source), self._local(destination)
        if src.is_dir():
            if not recurse:
                raise IsADirectoryError(f"{source} is a directory; pass recurse=True")
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            if dst.is_dir():
                dst = dst / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        return True

    def mv(self, source: str, destination: str, recurse: bool = False) -> bool:
        src, dst = self._local(source), self._local(destination)
        if not src.exists():
            raise FileNotFoundError(f"File {source} does not exist.")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
        return True

    def rm(self, path: str, recurse: bool = False) -> bool:
        local = self._local(path)
        if not local.exists():
            return False
        if local.is_dir():
            if not recurse and any(local.iterdir()):
                raise OSError(f"{path} is a non-empty directory; pass recurse=True")
            shutil.rmtree(local)
        else:
            local.unlink()
        return True

    def help(self) -> None:
        print("dbutils.fs: ls, cp, mv, rm, put, head, mkdirs (DBFS is a local folder in the emulator)")


class _Secrets:
    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def get(self, scope: str, key: str) -> str:
        return self._store.get(scope, key)

    def getBytes(self, scope: str, key: str) -> bytes:  # noqa: N802
        return self._store.get(scope, key).encode()

    def list(self, scope: str) -> list[dict[str, str]]:
        keys = set(self._store._file_scopes().get(scope, {}))
        return [{"key": key} for key in sorted(keys)]

    def listScopes(self) -> list[dict[str, str]]:  # noqa: N802
        return [{"name": name} for name in sorted(self._store._file_scopes())]


class DBUtils:
    """The ``dbutils`` object a notebook sees."""

    def __init__(self, dbfs: DbfsRoot, secrets: SecretStore, parameters: dict[str, str],
                 run_child: Callable[[str, int, dict[str, str]], str] | None = None) -> None:
        self.widgets = _Widgets(parameters)
        self.notebook = _Notebook(run_child)
        self.fs = _Fs(dbfs)
        self.secrets = _Secrets(secrets)


def display(value: Any = None, *args: Any, **kwargs: Any) -> None:
    """Print a DataFrame as a table (Spark's ``show`` layout, up to 1000 rows), anything else as text."""
    show = getattr(value, "show", None)
    if callable(show) and hasattr(value, "schema"):
        show(n=1000, truncate=False)
    elif hasattr(value, "to_string"):
        print(value.to_string())
    elif value is not None:
        print(value)


def display_html(html: str) -> None:
    print(html)
