"""The step cache: content-addressed keys, verified hits, explained misses, single flight.

A step's key covers its canonical configuration, the content of its source snapshot, the content of its
inputs (upstream outputs by their committed hash, datasets by a file-content fingerprint) and the values of
the pipeline parameters it uses. A hit is only trusted after the recorded outputs are found unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.step_kinds import step_kind
from airflow_mlpipe.data.commit_marker import IncompleteTransfer, visible_find
from airflow_mlpipe.runtime.fingerprints import dataset_fingerprint, hash_json, is_racy, stat_signature
from airflow_mlpipe.runtime.processes import pid_alive
from airflow_mlpipe.store.db import utcnow
from airflow_mlpipe.store.tables_cache import cache_entries, cache_locks

KEY_VERSION = 2  # 2: output content hashes are Merkle tree hashes (data.hashing.tree_hash)
#: spec fields that say where or as what a step runs, not what it computes
_NOT_IN_KEY = {"name", "task_id", "depends_on", "source_directory", "allow_reuse", "parameters", "hash_paths"}
LOCK_HEARTBEAT_S = 5.0
LOCK_STALE_S = 30.0
#: how often a waiter asks Airflow whether the lock owner's task instance is still alive
LOCK_CHECK_S = 2.0
#: how long a step that may wait elsewhere (see :func:`wait_elsewhere`) waits in its worker first: a short
#: owner then ends without a deferral round trip through the triggerer
INLINE_WAIT_S = 1.0


@dataclass
class StepKey:
    key: str
    components: dict[str, Any]


@dataclass
class Decision:
    """What the cache says about one step."""

    step: str
    task_id: str
    action: str  # "reuse" | "run" | "pending"
    reason: str
    key: str | None = None
    entry: dict[str, Any] | None = None
    changes: list[str] = field(default_factory=list)
    #: the key's parts (source manifest, input hashes, ...), kept so the step that runs need not hash again
    components: dict[str, Any] | None = None

    @property
    def outputs(self) -> dict[str, Any]:
        return (self.entry or {}).get("outputs") or {}

    def handover(self) -> dict[str, Any] | None:
        """What the step's own task needs from a "run" decision (JSON for XCom), or None for other decisions."""
        if self.action != "run" or self.key is None or self.components is None:
            return None
        return {"key": self.key, "components": self.components, "changes": self.changes}


def step_config(step: dict[str, Any]) -> dict[str, Any]:
    """The configuration part of the key: canonical, without names and locations that do not change results."""
    neutral = (*_NOT_IN_KEY, *step_kind(step["kind"], f"Step {step.get('name')!r}").not_in_key)
    cfg = {k: v for k, v in step.items() if k not in neutral}
    inputs = []
    for inp in step.get("inputs", []):
        item = {k: v for k, v in inp.items() if k not in ("source", "dataset")}
        if inp.get("source"):
            item["output"] = inp["source"]["output"]
        inputs.append(item)
    cfg["inputs"] = inputs
    cfg["outputs"] = [{k: v for k, v in o.items() if k not in ("pipeline_output_name", "register")}
                      for o in step.get("outputs", [])]
    return cfg


def _data_ref_definition(ref: dict[str, Any], default_datastore: str) -> dict[str, Any]:
    return {"type": "file", "source": {"format": "files", "options": {},
                                       "paths": [{"datastore": ref.get("datastore") or default_datastore,
                                                  "path": ref.get("path") or ""}]}, "transforms": []}


def input_hashes(workspace: Any, step: dict[str, Any], upstream: dict[str, dict[str, Any]],
                 parameter_values: dict[str, Any]) -> dict[str, str]:
    """Content hash of every input; ``upstream`` maps input name → the producer's output (from XCom)."""
    out: dict[str, str] = {}
    for inp in step.get("inputs", []):
        try:
            out[inp["name"]] = _input_hash(workspace, inp, upstream, parameter_values)
        except UserErrorException:
            raise
        except Exception as exc:  # a store's own error (credentials, network) names neither store nor path
            ref = parameter_values.get(inp["parameter"]) if inp.get("parameter") else inp
            place = (f" (datastore {ref.get('datastore')!r}, path {ref.get('path')!r})"
                     if isinstance(ref, dict) and ref.get("datastore") else "")
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserErrorException(f"Step {step.get('name')!r}: reading input {inp['name']!r}{place} failed: "
                                     f"{reason}") from exc
    return out


def _input_hash(workspace: Any, inp: dict[str, Any], upstream: dict[str, dict[str, Any]],
                parameter_values: dict[str, Any]) -> str:
    default_ds = workspace._default_datastore_name
    kind = inp["kind"]
    if kind == "pipeline_data":
        return upstream[inp["name"]]["content_hash"]
    if kind == "dataset":
        return dataset_fingerprint(workspace, inp["dataset"])
    if kind == "dataset_parameter":
        return dataset_fingerprint(workspace, parameter_values[inp["parameter"]])
    if kind == "data_reference":
        return dataset_fingerprint(workspace, _data_ref_definition(inp, default_ds))
    if kind == "datapath_parameter":
        return dataset_fingerprint(workspace, _data_ref_definition(parameter_values[inp["parameter"]], default_ds))
    return hash_json(inp)


def compute_key(workspace: Any, step: dict[str, Any], source_manifest: dict[str, str],
                upstream: dict[str, dict[str, Any]], parameter_values: dict[str, Any]) -> StepKey:
    config = step_config(step)
    params = {p: parameter_values.get(p) for p in step.get("parameters", [])}
    inputs = input_hashes(workspace, step, upstream, parameter_values)
    env = (step.get("runconfig") or {}).get("environment")
    parts = {"v": KEY_VERSION, "kind": step["kind"], "config": hash_json(config), "environment": hash_json(env),
             "source": hash_json(source_manifest), "inputs": inputs, "params": params}
    components = {"config": config, "environment": env, "source": source_manifest, "inputs": inputs,
                  "params": params}
    return StepKey(f"blake3:{hash_json(parts)}", components)


# ---------------------------------------------------------------------------------------------- entries
def _file_signatures(store: Any, root: str) -> dict[str, list[Any]] | None:
    """``{relative path: signature}`` of an output's files (None when the output is gone). Local files: the
    stat fields git and Bazel trust (size, mtime, ctime, inode, device); object stores: size, mtime and ETag."""
    if store.is_local:
        if not os.path.exists(root):
            return None
        if not os.path.isdir(root):
            return {"": list(stat_signature(os.stat(root)))}
        found: dict[str, list[Any]] = {}
        for dirpath, _, files in os.walk(root):
            for f in files:
                path = os.path.join(dirpath, f)
                found[os.path.relpath(path, root).replace(os.sep, "/")] = list(stat_signature(os.stat(path)))
        return found
    fs = store.fs
    if not fs.exists(root):
        return None
    return {path[len(root):].lstrip("/"): [info.get("size"), _mtime_ns(info), None, None, None, _etag(info)]
            for path, info in visible_find(fs, root, detail=True).items()}


def _stat_trusted(sig: list[Any], stamped_at_ns: int | None) -> bool:
    """Whether an unchanged signature proves unchanged bytes: an ETag names the content itself; a timestamp
    only when the file was last written comfortably before the signature was taken (not racily clean)."""
    if len(sig) > 5 and sig[5]:
        return True
    return sig[1] is not None and not is_racy(sig[1], sig[2], stamped_at_ns)


def _check_output(workspace: Any, out: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(None, …) when the recorded output is still there unchanged, else (why not, None). The second item is a
    fresher stat record to store when the content had to be hashed and the new signatures can be trusted."""
    from airflow_mlpipe.data.datastore_location import DatastoreLocation
    from airflow_mlpipe.data.hashing import hash_tree

    store = DatastoreLocation.get(workspace, out["datastore"])
    if out.get("format") == "sql_table":
        rows = sql_table_rows(store, out["path"])
        if rows is None:
            return f"table {out['path']} of datastore {store.name!r} was dropped", None
        if rows != out.get("rows"):
            return f"table {out['path']} of datastore {store.name!r} has {rows} rows, not {out.get('rows')}", None
        return None, None
    root = store.full_path(out["path"]).rstrip("/")
    checked_at = time.time_ns()  # before the stats: a change after this instant is never masked
    found = _file_signatures(store, root)
    if found is None:
        return f"output {out['uri']} was deleted", None
    manifest = out.get("manifest") or []
    if isinstance(manifest, list):  # recorded before stat signatures: sizes only, then the content hash
        manifest = {"at_ns": None, "files": manifest}
    recorded = {row[0]: list(row[1:]) for row in manifest["files"]}
    if set(found) != set(recorded):
        return f"output {out['uri']} has different files than when it was recorded", None
    if any(found[r][0] != recorded[r][0] for r in found):
        return f"output {out['uri']} has files of a different size than recorded", None
    if all(found[r] == recorded[r] and _stat_trusted(found[r], manifest["at_ns"]) for r in found):
        return None, None
    # touched, or recorded within the timestamp granularity of its last write: trust only the content hash
    if hash_tree(store.fs, root)[0] != out["content_hash"]:
        return f"output {out['uri']} was modified after it was recorded", None
    if all(_stat_trusted(sig, checked_at) for sig in found.values()):
        return None, {"manifest": {"at_ns": checked_at, "files": sorted([rel, *sig] for rel, sig in found.items())}}
    return None, None


def sql_table_rows(store: Any, table: str) -> int | None:
    """``SELECT COUNT(*)`` of a table a step loaded (exact, unlike the statistics), or None when it is gone."""
    import sqlalchemy as sa

    schema, _, name = table.rpartition(".")
    engine = sa.create_engine(store.sql_url())
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(name, schema=schema or None):
                return None
            return int(conn.execute(sa.select(sa.func.count()).select_from(
                sa.table(name, schema=schema or None))).scalar_one())
    finally:
        engine.dispose()


def _mtime_ns(info: dict[str, Any]) -> int | None:
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    if mtime is None:
        return None
    if hasattr(mtime, "timestamp"):
        return int(mtime.timestamp() * 1e9)
    return int(float(mtime) * 1e9)


def _etag(info: dict[str, Any]) -> str | None:
    etag = info.get("ETag") or info.get("etag") or info.get("md5") or info.get("content_md5")
    return None if etag is None else str(etag)


def output_stat(workspace: Any, out: dict[str, Any]) -> dict[str, Any]:
    """What a cache hit's output is verified against: ``{"manifest": {"files": [[relative path, *signature]…],
    "at_ns": wall clock just before the stats}}`` (the time is for the racily-clean rule)."""
    from airflow_mlpipe.data.datastore_location import DatastoreLocation

    store = DatastoreLocation.get(workspace, out["datastore"])
    if out.get("format") == "sql_table":  # a table loaded by a DataTransferStep: its exact row count
        return {"manifest": {"at_ns": None, "files": []}}
    stamped_at = time.time_ns()
    found = _file_signatures(store, store.full_path(out["path"]).rstrip("/")) or {}
    return {"manifest": {"at_ns": stamped_at, "files": sorted([rel, *sig] for rel, sig in found.items())}}


def lookup(workspace: Any, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """A verified entry for ``key`` (evicting one whose outputs changed), and why there is none."""
    store = workspace.store
    with store.begin() as conn:
        row = conn.execute(select(cache_entries).where(cache_entries.c.key == key)).mappings().first()
    if row is None:
        return None, None
    entry = dict(row)
    refreshed: dict[str, Any] = {}
    for name, out in (entry.get("outputs") or {}).items():
        try:
            problem, fresh = _check_output(workspace, out)
        except IncompleteTransfer as exc:  # a copy into the output's folder did not finish
            problem, fresh = str(exc), None
        if problem:
            with store.begin() as conn:
                conn.execute(delete(cache_entries).where(cache_entries.c.key == key))
            return None, f"cache entry evicted: {problem}"
        if fresh:
            refreshed[name] = {**out, **fresh}
    if refreshed:  # verified by content: keep the trustworthy signatures so the next check is one stat again
        entry["outputs"] = {**entry["outputs"], **refreshed}
        with store.begin() as conn:
            conn.execute(update(cache_entries).where(cache_entries.c.key == key).values(outputs=entry["outputs"]))
    return entry, None


def touch(workspace: Any, key: str) -> None:
    with workspace.store.begin() as conn:
        conn.execute(update(cache_entries).where(cache_entries.c.key == key)
                     .values(last_used_at=utcnow(), hits=cache_entries.c.hits + 1))


def record_reuse(workspace: Any, step_run_id: str, key: str, entry: dict[str, Any],
                 **row: Any) -> dict[str, dict[str, Any]]:
    """Record that a step run reused ``entry`` (by the planner up front, or by the step's own task): the step
    run ends Finished with the entry's outputs and a link to the producing run, and the entry counts a hit.
    ``row`` adds the columns of a step run not recorded yet. Returns the outputs handed on (no manifests)."""
    outputs = {n: {k: v for k, v in o.items() if k != "manifest"} for n, o in (entry.get("outputs") or {}).items()}
    workspace.store.upsert_step_run(
        step_run_id, status="Finished", end_time=utcnow(), outputs=outputs, reused_run_id=entry["step_run_id"],
        details={"cache_key": key, "reused_pipeline_run_id": entry["pipeline_run_id"]}, **row)
    touch(workspace, key)
    return outputs


def record(workspace: Any, step: dict[str, Any], key: StepKey, outputs: dict[str, Any], step_run_id: str,
           pipeline_run_id: str) -> None:
    """Write the entry of a step that succeeded (never called for a failed or cancelled step)."""
    stored = {name: {**out, **output_stat(workspace, out)} for name, out in outputs.items()}
    values = {"key": key.key, "step_name": step["name"], "kind": step["kind"], "components": key.components,
              "outputs": stored, "step_run_id": step_run_id, "pipeline_run_id": pipeline_run_id,
              "created_at": utcnow(), "last_used_at": None, "hits": 0}
    with workspace.store.begin() as conn:
        conn.execute(delete(cache_entries).where(cache_entries.c.key == key.key))
        conn.execute(insert(cache_entries).values(**values))


def entry_components(workspace: Any, key: str | None) -> dict[str, Any] | None:
    """What went into cache key ``key`` (its entry's ``components``); None when there is no entry (any more)."""
    if not key:
        return None
    with workspace.store.begin() as conn:
        value = conn.execute(select(cache_entries.c.components).where(cache_entries.c.key == key)).scalar()
    return value if isinstance(value, dict) else None


def explain_miss(workspace: Any, step: dict[str, Any], key: StepKey) -> list[str]:
    """Which parts of the key changed since the latest entry recorded for this step."""
    with workspace.store.begin() as conn:
        row = conn.execute(select(cache_entries.c.components).where(cache_entries.c.step_name == step["name"])
                           .order_by(cache_entries.c.created_at.desc()).limit(1)).first()
    if row is None:
        return ["no earlier successful run of this step"]
    before, now = row[0] or {}, key.components
    changes: list[str] = []
    old_src, new_src = before.get("source") or {}, now["source"]
    for rel in sorted(set(old_src) | set(new_src)):
        if rel not in old_src:
            changes.append(f"source file {rel} added")
        elif rel not in new_src:
            changes.append(f"source file {rel} removed")
        elif old_src[rel] != new_src[rel]:
            changes.append(f"source file {rel} changed")
    for what in ("inputs", "params"):
        old, new = before.get(what) or {}, now[what]
        label = "input" if what == "inputs" else "parameter"
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                detail = "content changed" if what == "inputs" else f"{old.get(name)!r} -> {new.get(name)!r}"
                changes.append(f"{label} {name!r} {detail}")
    if before.get("environment") != now["environment"]:
        changes.append("environment (runconfig) changed")
    old_cfg, new_cfg = before.get("config") or {}, now["config"]
    for field_name in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(field_name) != new_cfg.get(field_name) and field_name != "runconfig":
            changes.append(f"step setting {field_name!r} changed")
    return changes or ["entry not found (evicted or recorded under another key)"]


# ---------------------------------------------------------------------------------------------- single flight
class WaitForFlight(BaseException):  # noqa: N818 - a signal, not an error
    """Not a failure: another run holds the key's lock and this step waits outside its worker (the operator
    defers to the triggerer). A BaseException, like Airflow's ``TaskDeferred``, so that no ``except Exception``
    on the way records it as the step's failure."""

    def __init__(self, key: str, owner: str) -> None:
        self.key = key
        self.owner = owner
        super().__init__(f"another run computes the same step (cache key {key}): {describe_owner(owner)}")


#: set by :func:`wait_elsewhere`: how long :meth:`SingleFlight.acquire` waits in the task before raising
#: :class:`WaitForFlight`; None: it waits in the task until the owner ends
_WAIT_ELSEWHERE: ContextVar[float | None] = ContextVar("mlpipe_wait_elsewhere", default=None)


@contextlib.contextmanager
def wait_elsewhere(inline_s: float = INLINE_WAIT_S) -> Iterator[None]:
    """Inside, a step that finds its key being computed by another run raises :class:`WaitForFlight` after
    ``inline_s`` seconds instead of holding its worker slot while it waits."""
    token = _WAIT_ELSEWHERE.set(max(0.0, float(inline_s)))
    try:
        yield
    finally:
        _WAIT_ELSEWHERE.reset(token)


def owner_info(owner: str) -> dict[str, Any]:
    """The parts of a lock owner: ``{"id", "task": TaskRef dict or None, "step_run": id or None}``."""
    with contextlib.suppress(ValueError, TypeError):
        data = json.loads(owner)
        if isinstance(data, dict):
            return {"id": data.get("id"), "task": data.get("task"), "step_run": data.get("step_run")}
    return {"id": owner, "task": None, "step_run": None}


def describe_owner(owner: str) -> str:
    """A lock owner for people: the step run and the Airflow task instance computing the key."""
    info = owner_info(owner)
    task = info["task"] or {}
    where = (f"Airflow run {task.get('run_id')} of DAG {task.get('dag_id')}, task {task.get('task_id')}"
             if task else f"process {info['id']}")
    return f"step run {info['step_run']} ({where})" if info["step_run"] else where


def _owner_dead(row: dict[str, Any], probe: Callable[[Any], str | None] | None, me: Any = None) -> bool:
    """The lock owner's task instance is over (Airflow's state), else its heartbeat stopped or its pid died.

    A deferred or retrying owner is alive without any process; an earlier try of our own task instance ``me``
    is dead (Airflow runs one try at a time). Without Airflow to ask, heartbeat and pid decide."""
    from airflow_mlpipe.runtime.liveness import ALIVE_STATES, TaskRef

    owner_task = TaskRef.from_dict(owner_info(row["owner"])["task"])
    if owner_task is not None and me is not None and owner_task.same_task(me):
        return True
    if owner_task is not None and probe is not None:
        state = probe(owner_task)
        if state is not None:
            return state not in ALIVE_STATES
    return time.time() - row["heartbeat"] > LOCK_STALE_S or (
        row["host"] == socket.gethostname() and not pid_alive(row["pid"]))


def flight_status(workspace: Any, key: str, probe: Callable[[Any], str | None] | None) -> tuple[str, str | None]:
    """Where a wait for ``key`` stands, cheaply (no output verification: the waiter verifies when it resumes):
    ``("committed", None)`` an entry is recorded, ``("free", None)`` nobody holds the lock, ``("dead", owner)``
    its owner is over, ``("held", owner)`` its owner is alive."""
    with workspace.store.begin() as conn:
        if conn.execute(select(cache_entries.c.key).where(cache_entries.c.key == key)).first() is not None:
            return "committed", None
        row = conn.execute(select(cache_locks).where(cache_locks.c.key == key)).mappings().first()
    if row is None:
        return "free", None
    return ("dead" if _owner_dead(dict(row), probe) else "held"), row["owner"]


class SingleFlight:
    """At most one execution per key across runs, hosts and processes; waiters get the winner's entry."""

    def __init__(self, workspace: Any, key: str, step_run_id: str | None = None) -> None:
        from airflow_mlpipe.runtime.liveness import current_task

        self.workspace = workspace
        self.key = key
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._task = current_task()  # the Airflow task instance we run for, if any
        if self._task is not None or step_run_id:  # liveness then follows the task instance's Airflow state
            task = self._task[0].to_dict() if self._task else None
            named = json.dumps({"id": self.owner, "task": task, "step_run": step_run_id})
            self.owner = named if len(named) <= 500 else json.dumps({"id": self.owner, "task": task})  # column size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checked: dict[str, tuple[float, bool]] = {}  # owner -> (when, dead): Airflow asked at most every 2 s
        self.detached = False

    def _owner_dead(self, row: dict[str, Any]) -> bool:
        """:func:`_owner_dead` with Airflow asked at most every ``LOCK_CHECK_S`` per owner."""
        if self._task is None:
            return _owner_dead(row, None)
        me, probe = self._task
        when, dead = self._checked.get(row["owner"], (0.0, False))
        if time.monotonic() - when < LOCK_CHECK_S:
            return dead
        dead = _owner_dead(row, probe, me)
        self._checked[row["owner"]] = (time.monotonic(), dead)
        return dead

    def _try_take(self) -> bool:
        store = self.workspace.store
        try:
            with store.begin() as conn:
                conn.execute(insert(cache_locks).values(key=self.key, owner=self.owner, host=socket.gethostname(),
                                                        pid=os.getpid(), heartbeat=time.time()))
            return True
        except IntegrityError:
            pass
        with store.begin() as conn:
            row = conn.execute(select(cache_locks).where(cache_locks.c.key == self.key)).mappings().first()
            if row is None:
                return False
            if self._owner_dead(dict(row)):
                conn.execute(delete(cache_locks).where(cache_locks.c.key == self.key)
                             .where(cache_locks.c.owner == row["owner"]))
        return False

    def attempt(self) -> tuple[bool, dict[str, Any] | None]:
        """One non-blocking try: ``(True, None)`` we hold the lock and run; ``(False, entry)`` the key's entry
        is there (the lock is not held by us); ``(False, None)`` another live run holds it."""
        if self._try_take():
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            entry, _ = lookup(self.workspace, self.key)  # it may have finished just before we took it
            if entry is not None:
                self.release()
                return False, entry
            return True, None
        entry, _ = lookup(self.workspace, self.key)
        return False, entry

    def holder(self) -> str | None:
        """The owner of the key's lock now (None: nobody)."""
        with self.workspace.store.begin() as conn:
            return conn.execute(select(cache_locks.c.owner).where(cache_locks.c.key == self.key)).scalar()

    def acquire(self, log: Any = None, poll: float = 0.25) -> dict[str, Any] | None:
        """Take the lock (returns None: we run) or, if another run finishes the same key, its entry. Inside
        :func:`wait_elsewhere`, raises :class:`WaitForFlight` instead of waiting past its inline wait."""
        inline = _WAIT_ELSEWHERE.get()
        started = time.monotonic()
        waited = False
        while True:
            taken, entry = self.attempt()
            if taken or entry is not None:
                return entry
            holder = self.holder() if not waited or inline is not None else None
            if not waited and log is not None:
                log.info("Another run is computing the same step (cache key %s): waiting for %s", self.key,
                         describe_owner(holder) if holder else "it")
            waited = True
            if inline is not None and holder is not None and time.monotonic() - started >= inline:
                raise WaitForFlight(self.key, holder)
            time.sleep(poll)

    def _beat(self) -> None:
        while not self._stop.wait(LOCK_HEARTBEAT_S):
            try:
                with self.workspace.store.begin() as conn:
                    conn.execute(update(cache_locks).where(cache_locks.c.key == self.key)
                                 .where(cache_locks.c.owner == self.owner).values(heartbeat=time.time()))
            except Exception:  # noqa: BLE001 - a missed heartbeat only risks a takeover
                pass

    def detach(self) -> None:
        """Keep the lock past this process (a deferred task holds it while the triggerer waits; its liveness
        follows the task's Airflow state): stop the heartbeat; :func:`release_lock` with :attr:`owner` ends it."""
        self._stop.set()
        self.detached = True

    def release(self) -> None:
        self._stop.set()
        release_lock(self.workspace, self.key, self.owner)


def release_lock(workspace: Any, key: str, owner: str) -> None:
    """Release a single-flight lock taken (and detached) by an earlier process of the same step."""
    with workspace.store.begin() as conn:
        conn.execute(delete(cache_locks).where(cache_locks.c.key == key).where(cache_locks.c.owner == owner))
