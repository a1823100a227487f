"""Step cache tables (issue 3): entries keyed by content hash, single-flight locks, and file fingerprints."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Float, Integer, String, Table, Text

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

#: content hash of a file cached against its size and mtime, so unchanged bytes are never re-read
file_hashes = Table(
    "mlpipe_file_hashes", metadata,
    Column("path", Text, primary_key=True),
    Column("size", BigInteger),
    Column("mtime_ns", BigInteger),
    Column("hash", String(80)),
)

TABLES: list[Table] = [cache_entries, cache_locks, file_hashes]
