"""A project on PostgreSQL + CeleryExecutor + Redis with real processes, for the distributed tests.

A fresh PostgreSQL database holds the Airflow metadata, another one the airflow-mlpipe store; Celery uses a
private Redis database (claimed with a marker key, so parallel runs never share one). Everything made here is
dropped again on exit. PostgreSQL and Redis on 127.0.0.1 are required: when they are not reachable the tests
FAIL (never skip).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mlpipe import Workspace
from airflow_mlpipe.clients import local_airflow
from tests.helpers.embedded import working_directory, write_project_config

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_URL = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}"
CLAIM_KEY = "mlpipe_ci_claim"


def require_services() -> None:
    problems = []
    for name, host, port in (("PostgreSQL", PG_HOST, PG_PORT), ("Redis", REDIS_HOST, REDIS_PORT)):
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as exc:
            problems.append(f"{name} on {host}:{port} is not reachable ({exc})")
    if problems:
        pytest.fail(
            "the distributed tests need PostgreSQL and Redis running on 127.0.0.1: " + "; ".join(problems)
            + " (start them, e.g. `pg_ctlcluster 15 main start` and `redis-server --daemonize yes "
            "--bind 127.0.0.1`, and re-run)",
            pytrace=False,
        )


def _pg_admin():
    import psycopg2

    try:
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"cannot connect to PostgreSQL as {PG_USER!r} on {PG_HOST}:{PG_PORT}: {exc}", pytrace=False)
    conn.autocommit = True
    return conn


def query(dbname: str, sql: str, args: tuple = ()) -> list[tuple]:
    """The rows of one statement against the PostgreSQL database ``dbname``."""
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def _drop_database(admin, name: str) -> None:
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _claim_redis_db():
    """A Redis database nobody uses (empty, no client on it), claimed with a marker key so parallel runs differ."""
    import redis

    token = secrets.token_hex(8)
    numbers = list(range(1, 16))
    secrets.SystemRandom().shuffle(numbers)
    for number in numbers:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=5)
        try:
            me = str(client.client_id())
            in_use = {int(c.get("db", 0)) for c in client.client_list() if str(c.get("id")) != me}
            if number not in in_use and client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=3600):
                return number, client
        except redis.RedisError as exc:
            pytest.fail(f"Redis on {REDIS_HOST}:{REDIS_PORT} does not answer: {exc}", pytrace=False)
        client.close()
    pytest.fail(f"no empty Redis database (1-15) on {REDIS_HOST}:{REDIS_PORT} to use as a private broker",
                pytrace=False)


@contextlib.contextmanager
def celery_project(root: Path, workspace_name: str, *, settings: dict[str, str] | None = None,
                   **airflow: Any) -> Iterator[dict[str, Any]]:
    """A project in ``root`` (cwd inside the block) whose embedded Airflow runs on CeleryExecutor with
    PostgreSQL and Redis, and whose store and shared datastore folder (``root/shared-datastore``, what every
    worker mounts in a cluster) are the cluster's.

    ``settings`` add ``AIRFLOW__*`` settings; ``airflow`` adds keys of the config's ``airflow`` section
    (``celery_queues``, ``celery_concurrency``, ``celery_workers``). Yields ``root``, ``ws``, ``info``,
    ``af_db``, ``store_db``, ``shared``, ``redis_db`` and ``start_s`` (start to healthy, in seconds).
    """
    require_services()
    suffix = secrets.token_hex(4)
    af_db, store_db = f"mlpipe_ci_{suffix}_airflow", f"mlpipe_ci_{suffix}_store"
    admin = _pg_admin()
    redis_db, redis_client = _claim_redis_db()
    created: list[str] = []
    ws = None
    try:
        with admin.cursor() as cur:
            for name in (af_db, store_db):
                cur.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
        (root / "dags").mkdir()
        shared = root / "shared-datastore"
        shared.mkdir()
        config_path = write_project_config(root, workspace_name=workspace_name, store_url=f"{PG_URL}/{store_db}",
                                           datastores={"workspaceblobstore": str(shared)}, airflow={
            "settings": {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG_URL}/{af_db}",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{af_db}",
                **(settings or {}),
            },
            **airflow,
        })
        with working_directory(root):
            ws = Workspace.from_config()
            assert ws.config_path == config_path.resolve()
            t0 = time.monotonic()
            info = local_airflow.start(ws, dags_folder=root / "dags", port=local_airflow._free_port(), timeout=180)
            yield {"root": root, "ws": ws, "info": info, "af_db": af_db, "store_db": store_db, "shared": shared,
                   "redis_db": redis_db, "start_s": time.monotonic() - t0}
    finally:
        if ws is not None:
            local_airflow.stop(ws, timeout=30)
            from airflow_mlpipe.store import db as store_module

            # pooled connections of this process to the store database (Store.for_url caches stores)
            for url in [u for u in store_module._STORES if store_db in u]:
                store_module._STORES.pop(url).engine.dispose()
        for name in created:
            _drop_database(admin, name)
        admin.close()
        try:
            redis_client.flushdb()
        finally:
            redis_client.close()
