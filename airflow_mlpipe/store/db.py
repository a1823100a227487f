"""The metadata store: one engine per URL, versioned schema, and the few queries everyone needs.

Plain methods over SQLAlchemy Core, so that the SDK, operators, the CLI and the plugin share them.
SQLite runs in WAL mode with a busy timeout because step processes and the client write concurrently.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, func, insert, select, update
from sqlalchemy.engine import Engine

from airflow_mlpipe.store import models as t

_LOCK = threading.Lock()
_STORES: dict[str, Store] = {}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _migration_1(engine: Engine) -> None:
    t.metadata.create_all(engine, tables=t.CORE_TABLES)


def _tables_of(module: str) -> Callable[[Engine], None]:
    """A migration that creates the tables a feature module lists in ``TABLES``."""

    def migrate(engine: Engine) -> None:
        import importlib

        t.metadata.create_all(engine, tables=importlib.import_module(module).TABLES)

    migrate.__name__ = f"create_tables_of_{module.rsplit('.', 1)[-1]}"
    return migrate


def _run_of(module: str, function: str) -> Callable[[Engine], None]:
    """A migration a feature module implements itself (e.g. columns added to one of its tables)."""

    def migrate(engine: Engine) -> None:
        import importlib

        getattr(importlib.import_module(module), function)(engine)

    migrate.__name__ = function
    return migrate


#: ordered schema migrations; append, never edit a released one
MIGRATIONS: list[Callable[[Engine], None]] = [
    _migration_1,
    _tables_of("airflow_mlpipe.store.tables_cache"),  # 2: step cache (issue 3)
    _tables_of("airflow_mlpipe.store.tables_published"),  # 3: published pipelines, endpoints, schedules
    _tables_of("airflow_mlpipe.store.tables_models"),  # 4: model registry
    _tables_of("airflow_mlpipe.store.tables_audit"),  # 5: audit trail of code and spec uploads (issue 9)
    _run_of("airflow_mlpipe.store.tables_cache", "add_file_hash_stat_columns"),  # 6: file hash stat signature
    _tables_of("airflow_mlpipe.store.tables_specs"),  # 7: every run's PipelineSpec, content-addressed (issue 8)
]


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite file owner-only (0600), or tighten an existing one: it holds run records and metrics.

    SQLite gives its ``-wal``/``-shm``/journal files the mode of the database file. An existing file is never
    opened here: closing any descriptor of it would drop the POSIX locks this process's SQLite connections hold
    on it, and another process could then re-initialise the ``-shm`` under them (SIGBUS).
    """
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:  # an unwritable folder: SQLite reports what matters when it opens the file
        return
    for item in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            st = item.stat()
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                os.chmod(item, 0o600)
        except OSError:  # absent companion file, or not ours
            continue


def _one(conn: Connection, stmt: Any) -> dict[str, Any] | None:
    row = conn.execute(stmt).mappings().first()
    return dict(row) if row else None


def _all(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(stmt).mappings()]


class Store:
    """Access to one metadata database (SQLite file by default, PostgreSQL in production)."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                _private_sqlite_file(Path(path.split("?", 1)[0]))
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            @event.listens_for(self.engine, "begin")
            def _begin_immediate(conn):  # pragma: no cover - trivial
                # take the write lock up front: a read that later upgrades to a write can fail at once with
                # "database is locked" under concurrency, whatever the busy timeout
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        self.migrate()

    @classmethod
    def for_url(cls, url: str) -> Store:
        with _LOCK:
            store = _STORES.get(url)
            if store is None:
                store = _STORES[url] = cls(url)
            return store

    # ------------------------------------------------------------------ plumbing
    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version."""
        with self.engine.begin() as conn:
            t.schema_version.create(conn, checkfirst=True)
            current = conn.scalar(select(func.max(t.schema_version.c.version))) or 0
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            migration(self.engine)
            with self.engine.begin() as conn:
                if conn.scalar(select(t.schema_version.c.version).where(t.schema_version.c.version == number)) is None:
                    conn.execute(insert(t.schema_version).values(version=number, applied_at=utcnow()))
        return len(MIGRATIONS)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction (committed on success, rolled back on error)."""
        with self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------ settings
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self.begin() as conn:
            value = conn.scalar(select(t.settings.c.value).where(t.settings.c.key == key))
            return default if value is None else value

    def set_setting(self, key: str, value: str) -> None:
        with self.begin() as conn:
            if conn.execute(update(t.settings).where(t.settings.c.key == key).values(value=value)).rowcount == 0:
                conn.execute(insert(t.settings).values(key=key, value=value))

    def settings_with_prefix(self, prefix: str) -> dict[str, str]:
        with self.begin() as conn:
            rows = _all(conn, select(t.settings).where(t.settings.c.key.like(prefix + "%")))
        return {r["key"]: r["value"] for r in rows}

    # ------------------------------------------------------------------ experiments
    def _ensure_experiment(self, conn: Connection, name: str) -> None:
        if conn.scalar(select(t.experiments.c.name).where(t.experiments.c.name == name)) is None:
            conn.execute(insert(t.experiments).values(name=name, created_at=utcnow()))

    def ensure_experiment(self, name: str) -> None:
        with self.begin() as conn:
            self._ensure_experiment(conn, name)

    def list_experiments(self) -> list[str]:
        with self.begin() as conn:
            return list(conn.scalars(select(t.experiments.c.name).order_by(t.experiments.c.name)))

    # ------------------------------------------------------------------ pipeline runs
    def upsert_pipeline_run(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Create the run row if missing (first writer wins for creation fields), then apply ``fields``."""
        table = t.pipeline_runs
        with self.begin() as conn:
            row = _one(conn, select(table).where(table.c.run_id == run_id))
            if row is None:
                experiment = fields.get("experiment") or fields.get("dag_id") or "default"
                self._ensure_experiment(conn, experiment)
                values = {
                    "run_id": run_id, "experiment": experiment, "dag_id": fields.get("dag_id", ""),
                    "airflow_run_id": fields.get("airflow_run_id", run_id), "status": "NotStarted",
                    "parameters": {}, "tags": {}, "properties": {}, "regenerate_outputs": False,
                    "created_at": utcnow(), **fields,
                }
                values["experiment"] = experiment
                conn.execute(insert(table).values(**values))
            elif fields:
                conn.execute(update(table).where(table.c.run_id == run_id).values(**fields))
            return _one(conn, select(table).where(table.c.run_id == run_id))  # type: ignore[return-value]

    def claim_spec_hash(self, run_id: str, digest: str) -> str | None:
        """Record ``digest`` as the spec of run ``run_id`` unless one is recorded; returns the recorded one."""
        table = t.pipeline_runs
        with self.begin() as conn:
            conn.execute(update(table).where(table.c.run_id == run_id, table.c.spec_hash.is_(None))
                         .values(spec_hash=digest))
            return conn.scalar(select(table.c.spec_hash).where(table.c.run_id == run_id))

    def get_pipeline_run(self, run_id: str) -> dict[str, Any] | None:
        with self.begin() as conn:
            return _one(conn, select(t.pipeline_runs).where(t.pipeline_runs.c.run_id == run_id))

    def get_pipeline_run_by_dag_run(self, dag_id: str, airflow_run_id: str) -> dict[str, Any] | None:
        """The pipeline run that Airflow's DAG run ``(dag_id, airflow_run_id)`` is (None: not one of ours)."""
        table = t.pipeline_runs
        q = (select(table).where(table.c.dag_id == dag_id, table.c.airflow_run_id == airflow_run_id)
             .order_by(table.c.created_at.desc()))
        with self.begin() as conn:
            return _one(conn, q)

    def list_pipeline_runs_of_dag(self, dag_id: str) -> list[dict[str, Any]]:
        table = t.pipeline_runs
        with self.begin() as conn:
            return _all(conn, select(table.c.run_id, table.c.status).where(table.c.dag_id == dag_id))

    def list_pipeline_runs(self, experiment: str | None = None, limit: int = 100, dag_id: str | None = None,
                           offset: int = 0) -> list[dict[str, Any]]:
        """Pipeline runs, newest first (of one experiment or DAG when given)."""
        table = t.pipeline_runs
        q = select(table).order_by(table.c.created_at.desc(), table.c.run_id).limit(limit).offset(offset)
        if experiment:
            q = q.where(table.c.experiment == experiment)
        if dag_id:
            q = q.where(table.c.dag_id == dag_id)
        with self.begin() as conn:
            return _all(conn, q)

    # ------------------------------------------------------------------ step runs
    def upsert_step_run(self, step_run_id: str, keep_details: Collection[str] = (), **fields: Any) -> dict[str, Any]:
        """Create or update a step run; with ``details`` given, the existing ``details`` keys named in
        ``keep_details`` survive unless ``details`` sets them (read and written in one transaction)."""
        table = t.step_runs
        with self.begin() as conn:
            exists = conn.execute(select(table.c.step_run_id, table.c.details)
                                  .where(table.c.step_run_id == step_run_id)).first()
            if exists is not None and keep_details and "details" in fields:
                kept = {k: v for k, v in (exists.details or {}).items() if k in keep_details}
                fields["details"] = {**kept, **(fields["details"] or {})}
            if exists is None:
                values = {"step_run_id": step_run_id, "pipeline_run_id": "", "step_name": "", "task_id": "",
                          "kind": "PythonScriptStep", "status": "NotStarted", "outputs": {}, "inputs": {},
                          "details": {}, **fields}
                conn.execute(insert(table).values(**values))
            elif fields:
                conn.execute(update(table).where(table.c.step_run_id == step_run_id).values(**fields))
            return _one(conn, select(table).where(table.c.step_run_id == step_run_id))  # type: ignore[return-value]

    def merge_step_run_details(self, step_run_id: str, **entries: Any) -> None:
        """Set some keys of an existing step run's ``details`` (one transaction; other keys are kept)."""
        table = t.step_runs
        with self.begin() as conn:
            details = conn.scalar(select(table.c.details).where(table.c.step_run_id == step_run_id))
            if entries:
                conn.execute(update(table).where(table.c.step_run_id == step_run_id)
                             .values(details={**(details or {}), **entries}))

    def end_running_step_run(self, step_run_id: str, try_number: int | None, status: str, error: str) -> bool:
        """End a step run still ``Running`` in try ``try_number`` (compare-and-set: a newer try, or the step's own
        final write, wins); True if this call ended it."""
        table = t.step_runs
        stmt = (update(table).where(table.c.step_run_id == step_run_id, table.c.status == "Running")
                .values(status=status, error=error[:4000], end_time=utcnow()))
        if try_number is not None:
            stmt = stmt.where(table.c.try_number == try_number)
        with self.begin() as conn:
            return conn.execute(stmt).rowcount > 0

    def get_step_run(self, step_run_id: str) -> dict[str, Any] | None:
        with self.begin() as conn:
            return _one(conn, select(t.step_runs).where(t.step_runs.c.step_run_id == step_run_id))

    def list_step_runs(self, pipeline_run_id: str) -> list[dict[str, Any]]:
        return self.step_runs_by_pipeline_run([pipeline_run_id]).get(pipeline_run_id, [])

    def step_runs_by_pipeline_run(self, pipeline_run_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
        """The step runs of these pipeline runs (one query), each run's in start order."""
        if not pipeline_run_ids:
            return {}
        table = t.step_runs
        q = (select(table).where(table.c.pipeline_run_id.in_(list(pipeline_run_ids)))
             .order_by(table.c.start_time))
        found: dict[str, list[dict[str, Any]]] = {}
        with self.begin() as conn:
            for row in _all(conn, q):
                found.setdefault(row["pipeline_run_id"], []).append(row)
        return found

    # ------------------------------------------------------------------ metrics
    def add_metrics(self, run_id: str, pipeline_run_id: str | None, records: list[dict[str, Any]]) -> int:
        """``records``: ``{"name", "kind", "value", "step"?, "description"?}`` as written by ``Run.log*``."""
        if not records:
            return 0
        now = utcnow()
        rows = [{"run_id": run_id, "pipeline_run_id": pipeline_run_id, "name": rec["name"],
                 "kind": rec.get("kind", "scalar"), "value": rec.get("value"), "step": rec.get("step"),
                 "description": rec.get("description") or None, "logged_at": now} for rec in records]
        with self.begin() as conn:
            conn.execute(insert(t.metrics), rows)
        return len(rows)

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        """v1 shape: name → value, or a list when logged several times; rows → ``{col: [..]}``."""
        q = select(t.metrics).where(t.metrics.c.run_id == run_id).order_by(t.metrics.c.id)
        if name:
            q = q.where(t.metrics.c.name == name)
        with self.begin() as conn:
            rows = _all(conn, q)
        from airflow_mlpipe.contract.metrics_io import fold_metrics

        return fold_metrics(rows)

    def list_metric_rows(self, run_ids: Collection[str]) -> list[dict[str, Any]]:
        """The raw metric rows of these runs (``id``, ``run_id``, ``name``, ``kind``, ``value`` ...), in the order
        they were logged."""
        if not run_ids:
            return []
        q = select(t.metrics).where(t.metrics.c.run_id.in_(list(run_ids))).order_by(t.metrics.c.id)
        with self.begin() as conn:
            return _all(conn, q)

    def get_metric_row(self, metric_id: int) -> dict[str, Any] | None:
        with self.begin() as conn:
            return _one(conn, select(t.metrics).where(t.metrics.c.id == metric_id))

    # ------------------------------------------------------------------ datasets
    def register_dataset(self, name: str, definition: dict[str, Any], description: str | None = None,
                         tags: dict | None = None, create_new_version: bool = False) -> dict[str, Any]:
        """Register a dataset definition; returns the stored row (``version`` starts at 1)."""
        from airflow_mlpipe.contract.exceptions import UserErrorException

        table = t.datasets
        with self.begin() as conn:
            latest = _one(conn, select(table).where(table.c.name == name).order_by(table.c.version.desc()))
            if latest is not None:
                if latest["definition"] == definition:
                    return latest
                if not create_new_version:
                    raise UserErrorException(
                        f"There is already a dataset registered under name {name!r}. "
                        "Specify create_new_version=True to register the dataset as a new version."
                    )
            row = {"id": uuid.uuid4().hex, "name": name, "version": (latest["version"] + 1) if latest else 1,
                   "definition": definition, "description": description, "tags": dict(tags or {}),
                   "created_at": utcnow()}
            conn.execute(insert(table).values(**row))
            return row

    def get_dataset(self, name: str, version: int | str = "latest") -> dict[str, Any] | None:
        table = t.datasets
        q = select(table).where(table.c.name == name)
        if version in (None, "latest"):
            q = q.order_by(table.c.version.desc())
        else:
            q = q.where(table.c.version == int(version))
        with self.begin() as conn:
            return _one(conn, q)

    def get_dataset_by_id(self, dataset_id: str) -> dict[str, Any] | None:
        with self.begin() as conn:
            return _one(conn, select(t.datasets).where(t.datasets.c.id == dataset_id))

    def list_datasets(self) -> list[dict[str, Any]]:
        """Latest version of each registered dataset."""
        with self.begin() as conn:
            rows = _all(conn, select(t.datasets).order_by(t.datasets.c.name, t.datasets.c.version))
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            latest[row["name"]] = row
        return list(latest.values())

    # ------------------------------------------------------------------ datastores
    def register_datastore(self, name: str, kind: str, url: str, conn_id: str | None = None,
                           options: dict | None = None, overwrite: bool = False) -> dict[str, Any]:
        from airflow_mlpipe.contract.exceptions import UserErrorException

        key = name.lower()
        table = t.datastores
        with self.begin() as conn:
            row = _one(conn, select(table).where(table.c.name == key))
            if row is not None and not overwrite:
                if row["url"] == url and row["conn_id"] == conn_id and row["kind"] == kind:
                    return row
                raise UserErrorException(
                    f"Datastore {name!r} is already registered with url {row['url']!r}; "
                    "pass overwrite=True to replace it"
                )
            values = {"name": key, "kind": kind, "url": url, "conn_id": conn_id, "options": dict(options or {}),
                      "created_at": utcnow()}
            if row is not None:
                conn.execute(update(table).where(table.c.name == key).values(**values))
            else:
                conn.execute(insert(table).values(**values))
            return values

    def get_datastore(self, name: str) -> dict[str, Any] | None:
        with self.begin() as conn:
            return _one(conn, select(t.datastores).where(t.datastores.c.name == name.lower()))

    def list_datastores(self) -> list[dict[str, Any]]:
        with self.begin() as conn:
            return _all(conn, select(t.datastores).order_by(t.datastores.c.name))

    def unregister_datastore(self, name: str) -> None:
        from sqlalchemy import delete

        with self.begin() as conn:
            conn.execute(delete(t.datastores).where(t.datastores.c.name == name.lower()))
