"""Executing one task inside a cluster's warm Python process: a notebook, or a Python file with argv.

A notebook gets what a Databricks notebook gets: ``spark``, ``sc``, ``dbutils``, ``display``, ``sql``,
``table`` and ``getArgument``; its cells run in order (``%sql`` through ``spark.sql`` and displayed,
``%md`` skipped, ``%sh`` through bash, ``%run`` inlining another notebook, ``%pip`` reported and skipped).
A Python file runs as ``__main__`` with ``sys.argv = [file, *parameters]``; ``sys.exit(0)`` is success.

Paths: ``/dbfs/...`` works in Python's file functions and ``dbfs:/...`` (or ``/dbfs/...``) in Spark's
readers and writers, both mapped to the emulator's DBFS folder. A bare absolute path is a local path
(on Databricks it would be a DBFS path for Spark), so local datastores stay readable.
"""

from __future__ import annotations

import builtins
import functools
import io
import os
import runpy
import shlex
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from airflow_mlpipe.emulators.databricks import notebook_source
from airflow_mlpipe.emulators.databricks.dbfs_paths import DbfsRoot
from airflow_mlpipe.emulators.databricks.dbutils import (
    DBUtils,
    NotebookExit,
    SecretStore,
    display,
    display_html,
)
from airflow_mlpipe.emulators.databricks.workspace_store import WorkspaceError, WorkspaceStore

_PACKAGE_DIR = str(Path(__file__).resolve().parent)
NOTEBOOK_RESULT_LIMIT = 5 * 1024 * 1024


class TaskFailed(Exception):
    """A task that cannot start (a missing notebook or file); its message is the run's error."""


@dataclass
class TaskContext:
    home: Path
    dbfs: DbfsRoot
    workspace: WorkspaceStore
    secrets: SecretStore
    spark: Any


def run_task(ctx: TaskContext, task: dict[str, Any]) -> str | None:
    """Run a task spec (``notebook_task`` or ``spark_python_task``); the notebook's exit value, if any."""
    if "notebook_task" in task:
        notebook = task["notebook_task"]
        return run_notebook(ctx, notebook["notebook_path"], notebook.get("base_parameters") or {})
    if "spark_python_task" in task:
        python = task["spark_python_task"]
        run_python_file(ctx, python["python_file"], [str(p) for p in python.get("parameters") or []])
        return None
    raise TaskFailed(f"The emulator's cluster cannot run this task: {sorted(task)}")


def run_notebook(ctx: TaskContext, notebook_path: str, parameters: dict[str, Any]) -> str | None:
    try:
        obj, content = ctx.workspace.read(notebook_path)
    except WorkspaceError as err:
        raise TaskFailed(f"Notebook not found: {notebook_path} ({err.message})") from None
    if obj.object_type != "NOTEBOOK":
        raise TaskFailed(f"{notebook_path} is a workspace file, not a notebook")
    cells = notebook_source.parse_notebook(content)
    dbutils = DBUtils(ctx.dbfs, ctx.secrets, {k: str(v) for k, v in parameters.items()},
                      run_child=functools.partial(_run_child_notebook, ctx, obj.path))
    namespace = notebook_namespace(ctx.spark, dbutils)
    try:
        execute_cells(ctx, cells, namespace, obj.path)
    except NotebookExit as finished:
        return finished.value
    return None


def notebook_namespace(spark: Any, dbutils: DBUtils) -> dict[str, Any]:
    return {"__name__": "__main__", "__builtins__": builtins, "spark": spark,
            "sc": spark.sparkContext if spark is not None else None, "dbutils": dbutils, "display": display,
            "displayHTML": display_html, "sql": spark.sql if spark is not None else None,
            "table": spark.table if spark is not None else None, "getArgument": dbutils.widgets.getArgument}


def _run_child_notebook(ctx: TaskContext, parent_path: str, path: str, timeout_seconds: int,
                        arguments: dict[str, str]) -> str:
    result = run_notebook(ctx, _relative_to(parent_path, path), arguments)
    return "" if result is None else result


def _relative_to(notebook_path: str, target: str) -> str:
    if target.startswith("/"):
        return target
    combined = PurePosixPath(notebook_path).parent / target
    parts: list[str] = []
    for part in combined.parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def execute_cells(ctx: TaskContext, cells: list[notebook_source.Cell], namespace: dict[str, Any],
                  notebook_path: str) -> None:
    for cell in cells:
        label = f"{notebook_path} (cell {cell.index + 1})"
        if cell.language == "python":
            exec(compile(cell.source + "\n", label, "exec"), namespace)  # noqa: S102 - running the notebook
        elif cell.language == "sql":
            _run_sql(ctx.spark, cell.source)
        elif cell.language == "md":
            continue
        elif cell.language == "sh":
            _run_shell(cell.source, ctx)
        elif cell.language == "pip":
            print(f"[emulator] %pip {cell.source.strip()} skipped: the cluster uses the emulator's Python "
                  "environment")
        elif cell.language == "run":
            target, *_ = shlex.split(cell.source.strip() or "''") or [""]
            try:
                obj, content = ctx.workspace.read(_relative_to(notebook_path, target))
            except WorkspaceError as err:
                raise TaskFailed(f"%run {target}: notebook not found ({err.message})") from None
            execute_cells(ctx, notebook_source.parse_notebook(content), namespace, obj.path)
        else:
            raise NotImplementedError(f"{label}: %{cell.language} cells are not supported by the emulator "
                                      "(Python, SQL, Markdown and shell cells are)")


def _run_sql(spark: Any, source: str) -> None:
    statements = [s.strip() for s in _split_sql(source) if s.strip()]
    for statement in statements:
        frame = spark.sql(statement)
        if frame.columns:
            display(frame)


def _split_sql(source: str) -> list[str]:
    lines = [line for line in source.splitlines() if not line.strip().startswith("--")]
    return "\n".join(lines).split(";")


def _run_shell(source: str, ctx: TaskContext) -> None:
    env = {**os.environ, "DBFS_ROOT": str(ctx.dbfs.root)}
    completed = subprocess.run(["bash", "-c", source], capture_output=True, text=True, env=env, check=False)
    sys.stdout.write(completed.stdout)
    sys.stdout.write(completed.stderr)
    if completed.returncode != 0:
        raise RuntimeError(f"%sh cell exited with code {completed.returncode}")


def resolve_python_file(ctx: TaskContext, python_file: str) -> Path:
    if python_file.startswith("dbfs:"):
        local = ctx.dbfs.local(python_file)
    elif python_file.startswith("file:"):
        local = Path("/" + python_file[len("file:"):].lstrip("/"))
    elif python_file.startswith("/dbfs/"):
        local = ctx.dbfs.local(python_file[len("/dbfs"):])
    else:
        try:
            obj = ctx.workspace.get_status(python_file)
        except WorkspaceError:
            raise TaskFailed(f"Python file not found: {python_file}") from None
        local = ctx.workspace._local(obj.path)
    if not local.is_file():
        raise TaskFailed(f"Python file not found: {python_file}")
    return local


def run_python_file(ctx: TaskContext, python_file: str, parameters: list[str]) -> None:
    local = resolve_python_file(ctx, python_file)
    dbutils = DBUtils(ctx.dbfs, ctx.secrets, {})
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [python_file, *parameters]
    sys.path.insert(0, str(local.parent))
    try:
        runpy.run_path(str(local), init_globals={"spark": ctx.spark, "dbutils": dbutils, "display": display},
                       run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            raise RuntimeError(f"The Python process exited with exit code {exit_.code}.") from None
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def user_traceback(error: BaseException) -> str:
    """The traceback from the user's code on (frames of the emulator itself left out)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    lines = traceback.format_exception(type(error), error, tb)
    return "".join(lines)


def error_summary(error: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def install_path_mapping(dbfs: DbfsRoot) -> None:
    """Map ``/dbfs/...`` for Python's file functions and DBFS paths for Spark's readers/writers (once)."""
    if getattr(builtins, "_mlpipe_dbfs_mapping", False):
        return
    mapped = dbfs.from_notebook_path

    def wrap_first(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if args:
                args = (mapped(args[0]), *args[1:])
            elif "path" in kwargs:
                kwargs["path"] = mapped(kwargs["path"])
            elif "file" in kwargs:
                kwargs["file"] = mapped(kwargs["file"])
            return function(*args, **kwargs)
        return wrapper

    def wrap_two(function):
        @functools.wraps(function)
        def wrapper(source, destination, *args, **kwargs):
            return function(mapped(source), mapped(destination), *args, **kwargs)
        return wrapper

    builtins.open = io.open = wrap_first(io.open)
    for name in ("stat", "lstat", "listdir", "scandir", "mkdir", "makedirs", "remove", "unlink", "rmdir",
                 "access", "chmod", "utime"):
        if hasattr(os, name):
            setattr(os, name, wrap_first(getattr(os, name)))
    for name in ("rename", "replace"):
        setattr(os, name, wrap_two(getattr(os, name)))
    builtins._mlpipe_dbfs_mapping = True
    _install_spark_mapping(dbfs)


def _install_spark_mapping(dbfs: DbfsRoot) -> None:
    try:
        from pyspark.sql import readwriter
    except ImportError:  # the worker always has pyspark; the tests of this module may not
        return

    def translate(value):
        if isinstance(value, str):
            return dbfs.for_spark(value)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return type(value)(dbfs.for_spark(v) for v in value)
        return value

    def wrap(function):
        @functools.wraps(function)
        def wrapper(self, *args, **kwargs):
            args = tuple(translate(a) for a in args)
            for key in ("path", "paths"):
                if key in kwargs:
                    kwargs[key] = translate(kwargs[key])
            return function(self, *args, **kwargs)
        return wrapper

    for cls, names in ((readwriter.DataFrameReader, ("load", "csv", "json", "parquet", "orc", "text")),
                       (readwriter.DataFrameWriter, ("save", "csv", "json", "parquet", "orc", "text"))):
        for name in names:
            if hasattr(cls, name):
                setattr(cls, name, wrap(getattr(cls, name)))
