"""The metadata store: one engine per URL, versioned schema, and the few queries everyone needs.

Plain functions over SQLAlchemy sessions, so that the SDK, operators, the CLI and the plugin share them.
SQLite runs in WAL mode with a busy timeout because step processes and the client write concurrently.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from airflow_mlpipe.store import models as m

_LOCK = threading.Lock()
_STORES: dict[str, Store] = {}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _migration_1(engine: Engine) -> None:
    m.Base.metadata.create_all(engine)


#: ordered schema migrations; append, never edit a released one
MIGRATIONS: list[Callable[[Engine], None]] = [_migration_1]


def _row_dict(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


class Store:
    """Access to one metadata database (SQLite file by default, PostgreSQL in production)."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
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
        m.SchemaVersion.__table__.create(self.engine, checkfirst=True)
        with self.session() as s:
            current = s.scalar(select(func.max(m.SchemaVersion.version))) or 0
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            migration(self.engine)
            with self.session() as s:
                if not s.get(m.SchemaVersion, number):
                    s.add(m.SchemaVersion(version=number, applied_at=utcnow()))
        return len(MIGRATIONS)

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # ------------------------------------------------------------------ settings
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self.session() as s:
            row = s.get(m.Setting, key)
            return row.value if row else default

    def set_setting(self, key: str, value: str) -> None:
        with self.session() as s:
            s.merge(m.Setting(key=key, value=value))

    # ------------------------------------------------------------------ experiments
    def ensure_experiment(self, name: str) -> None:
        with self.session() as s:
            if not s.get(m.ExperimentRow, name):
                s.add(m.ExperimentRow(name=name, created_at=utcnow()))

    def list_experiments(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(m.ExperimentRow.name).order_by(m.ExperimentRow.name)))

    # ------------------------------------------------------------------ pipeline runs
    def upsert_pipeline_run(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Create the run row if missing (first writer wins for creation fields), then apply ``fields``."""
        with self.session() as s:
            row = s.get(m.PipelineRunRow, run_id)
            if row is None:
                experiment = fields.get("experiment") or fields.get("dag_id") or "default"
                if not s.get(m.ExperimentRow, experiment):
                    s.add(m.ExperimentRow(name=experiment, created_at=utcnow()))
                    s.flush()
                row = m.PipelineRunRow(
                    run_id=run_id,
                    experiment=experiment,
                    dag_id=fields.get("dag_id", ""),
                    airflow_run_id=fields.get("airflow_run_id", run_id),
                    status=fields.get("status", "NotStarted"),
                    parameters={},
                    tags={},
                    properties={},
                    regenerate_outputs=False,
                    created_at=utcnow(),
                )
                s.add(row)
            for key, value in fields.items():
                setattr(row, key, value)
            s.flush()
            return _row_dict(row)

    def get_pipeline_run(self, run_id: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(m.PipelineRunRow, run_id)
            return _row_dict(row) if row else None

    def list_pipeline_runs(self, experiment: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(m.PipelineRunRow).order_by(m.PipelineRunRow.created_at.desc()).limit(limit)
            if experiment:
                q = q.where(m.PipelineRunRow.experiment == experiment)
            return [_row_dict(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------ step runs
    def upsert_step_run(self, step_run_id: str, **fields: Any) -> dict[str, Any]:
        with self.session() as s:
            row = s.get(m.StepRunRow, step_run_id)
            if row is None:
                row = m.StepRunRow(
                    step_run_id=step_run_id,
                    pipeline_run_id=fields.get("pipeline_run_id", ""),
                    step_name=fields.get("step_name", ""),
                    task_id=fields.get("task_id", ""),
                    kind=fields.get("kind", "PythonScriptStep"),
                    status=fields.get("status", "NotStarted"),
                    outputs={},
                    inputs={},
                    details={},
                )
                s.add(row)
            for key, value in fields.items():
                setattr(row, key, value)
            s.flush()
            return _row_dict(row)

    def get_step_run(self, step_run_id: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(m.StepRunRow, step_run_id)
            return _row_dict(row) if row else None

    def list_step_runs(self, pipeline_run_id: str) -> list[dict[str, Any]]:
        with self.session() as s:
            q = (
                select(m.StepRunRow)
                .where(m.StepRunRow.pipeline_run_id == pipeline_run_id)
                .order_by(m.StepRunRow.start_time)
            )
            return [_row_dict(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------ metrics
    def add_metrics(self, run_id: str, pipeline_run_id: str | None, records: list[dict[str, Any]]) -> int:
        """``records``: ``{"name", "kind", "value", "step"?, "description"?}`` as written by ``Run.log*``."""
        with self.session() as s:
            for rec in records:
                s.add(
                    m.MetricRow(
                        run_id=run_id,
                        pipeline_run_id=pipeline_run_id,
                        name=rec["name"],
                        kind=rec.get("kind", "scalar"),
                        value=rec.get("value"),
                        step=rec.get("step"),
                        description=rec.get("description") or None,
                        logged_at=utcnow(),
                    )
                )
        return len(records)

    def get_metrics(self, run_id: str, name: str | None = None) -> dict[str, Any]:
        """v1 shape: name → value, or a list when logged several times; rows → ``{col: [..]}``."""
        with self.session() as s:
            q = select(m.MetricRow).where(m.MetricRow.run_id == run_id).order_by(m.MetricRow.id)
            if name:
                q = q.where(m.MetricRow.name == name)
            rows = list(s.scalars(q))
        out: dict[str, Any] = {}
        for row in rows:
            if row.kind == "row":
                table = out.setdefault(row.name, {})
                for col, val in (row.value or {}).items():
                    table.setdefault(col, []).append(val)
            elif row.kind in ("list", "table"):
                out[row.name] = row.value
            elif row.name in out:
                prev = out[row.name]
                out[row.name] = (prev if isinstance(prev, list) else [prev]) + [row.value]
            else:
                out[row.name] = row.value
        return out

    # ------------------------------------------------------------------ datasets
    def register_dataset(
        self,
        name: str,
        definition: dict[str, Any],
        description: str | None = None,
        tags: dict | None = None,
        create_new_version: bool = False,
    ) -> dict[str, Any]:
        """Register a dataset definition; returns the stored row (``version`` starts at 1)."""
        from airflow_mlpipe.exceptions import UserErrorException

        with self.session() as s:
            latest = s.scalars(
                select(m.DatasetRow).where(m.DatasetRow.name == name).order_by(m.DatasetRow.version.desc())
            ).first()
            if latest is not None:
                if latest.definition == definition:
                    return _row_dict(latest)
                if not create_new_version:
                    raise UserErrorException(
                        f"There is already a dataset registered under name {name!r}. "
                        "Specify create_new_version=True to register the dataset as a new version."
                    )
            row = m.DatasetRow(
                id=uuid.uuid4().hex,
                name=name,
                version=(latest.version + 1) if latest else 1,
                definition=definition,
                description=description,
                tags=dict(tags or {}),
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _row_dict(row)

    def get_dataset(self, name: str, version: int | str = "latest") -> dict[str, Any] | None:
        with self.session() as s:
            q = select(m.DatasetRow).where(m.DatasetRow.name == name)
            if version in (None, "latest"):
                q = q.order_by(m.DatasetRow.version.desc())
            else:
                q = q.where(m.DatasetRow.version == int(version))
            row = s.scalars(q).first()
            return _row_dict(row) if row else None

    def get_dataset_by_id(self, dataset_id: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(m.DatasetRow, dataset_id)
            return _row_dict(row) if row else None

    def list_datasets(self) -> list[dict[str, Any]]:
        """Latest version of each registered dataset."""
        with self.session() as s:
            rows = list(s.scalars(select(m.DatasetRow).order_by(m.DatasetRow.name, m.DatasetRow.version)))
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            latest[row.name] = _row_dict(row)
        return list(latest.values())

    # ------------------------------------------------------------------ datastores
    def register_datastore(
        self, name: str, kind: str, url: str, conn_id: str | None = None, options: dict | None = None,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        from airflow_mlpipe.exceptions import UserErrorException

        key = name.lower()
        with self.session() as s:
            row = s.get(m.DatastoreRow, key)
            if row is not None and not overwrite:
                if row.url == url and row.conn_id == conn_id and row.kind == kind:
                    return _row_dict(row)
                raise UserErrorException(
                    f"Datastore {name!r} is already registered with url {row.url!r}; pass overwrite=True to replace it"
                )
            row = m.DatastoreRow(
                name=key, kind=kind, url=url, conn_id=conn_id, options=dict(options or {}), created_at=utcnow()
            )
            s.merge(row)
            return _row_dict(row)

    def get_datastore(self, name: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(m.DatastoreRow, name.lower())
            return _row_dict(row) if row else None

    def list_datastores(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [_row_dict(r) for r in s.scalars(select(m.DatastoreRow).order_by(m.DatastoreRow.name))]

    def unregister_datastore(self, name: str) -> None:
        with self.session() as s:
            row = s.get(m.DatastoreRow, name.lower())
            if row:
                s.delete(row)
