"""Step cache tables (issue 3): entries keyed by content hash, single-flight locks, and file fingerprints."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Float, Integer, String, Table, Text, inspect
from sqlalchemy.engine import Engine

from airflow_mlpipe.store.models import metadata

#: one row per successful step execution whose outputs can be reused
cache_entries = Table(
    "mlpipe_cache_entries", metadata,
    Column("key", String(80), primary_key=True),
    Column("step_name", String(250), index=True),
    Column("kind", String(60)),
    Column("components", JSON),  # what went into the key, for explaining misses
    Column("outputs", JSON),  # committed outputs (uri, path, content_hash, manifest…)
    Column("step_run_id", String(500)),
    Column("pipeline_run_id", String(250)),
    Column("created_at", DateTime, index=True),
    Column("last_used_at", DateTime, nullable=True),
    Column("hits", Integer, default=0),
)

#: at most one execution per key at a time (single flight); stale owners are taken over
cache_locks = Table(
    "mlpipe_cache_locks", metadata,
    Column("key", String(80), primary_key=True),
    Column("owner", String(500)),
    Column("host", String(250)),
    Column("pid", Integer),
    Column("heartbeat", Float),
)

#: content hash of a file cached against its stat signature (the fields git and Bazel trust: size, mtime, ctime,
#: inode, device), so unchanged bytes are never re-read; ``hashed_at_ns`` (wall clock just before the stat) lets
#: a file modified within the timestamp granularity of its hashing be treated as unknown ("racily clean")
file_hashes = Table(
    "mlpipe_file_hashes", metadata,
    Column("path", Text, primary_key=True),
    Column("size", BigInteger),
    Column("mtime_ns", BigInteger),
    Column("hash", String(80)),
    Column("ctime_ns", BigInteger, nullable=True),
    Column("inode", BigInteger, nullable=True),  # stored as signed 64-bit (see fingerprints.stat_signature)
    Column("device", BigInteger, nullable=True),
    Column("hashed_at_ns", BigInteger, nullable=True),
)

TABLES: list[Table] = [cache_entries, cache_locks, file_hashes]

#: columns added to ``mlpipe_file_hashes`` after its first release (NULL in old rows: never trusted, re-hashed)
FILE_HASH_STAT_COLUMNS = ("ctime_ns", "inode", "device", "hashed_at_ns")


def add_file_hash_stat_columns(engine: Engine) -> None:
    """Migration: add the stat-signature columns to a workspace created before them (idempotent: a fresh
    workspace already has them from :data:`TABLES`). Old rows keep NULLs, so their files are re-hashed once."""
    have = {c["name"] for c in inspect(engine).get_columns(file_hashes.name)}
    with engine.begin() as conn:
        for name in FILE_HASH_STAT_COLUMNS:
            if name not in have:
                kind = file_hashes.c[name].type.compile(dialect=engine.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {file_hashes.name} ADD COLUMN {name} {kind}")
