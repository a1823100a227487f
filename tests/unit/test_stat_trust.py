"""Stat trust (issue 9.5): a cached content hash is only reused when the file's stat signature (size, mtime,
ctime, inode, device) is unchanged and the file was not modified within the timestamp granularity of its
hashing; the snapshot store never serves bytes that differ from the digest (or file) they claim to be."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest
from sqlalchemy import select, update

from airflow_mlpipe.contract.exceptions import PipelineValidationError
from airflow_mlpipe.runtime import fingerprints
from airflow_mlpipe.runtime.fingerprints import local_file_hashes, tree_manifest
from airflow_mlpipe.runtime.snapshot import (
    SnapshotIntegrityError,
    SnapshotStore,
    snapshot_files,
    source_manifest,
)
from airflow_mlpipe.store.tables_cache import file_hashes


def _digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def _rewrite_keeping_size_and_mtime(path: Path, data: bytes, replace: bool = False) -> None:
    """Overwrite ``path`` with same-size bytes and put its mtime (and atime) back, as tools that restore
    timestamps do: size and mtime alone can no longer tell the files apart."""
    before = os.stat(path)
    assert len(data) == before.st_size
    if replace:  # a new file (new inode) renamed over the old one
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    else:
        with open(path, "r+b") as fh:
            fh.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def _set_cached_hash(workspace, path: Path, value: str) -> None:
    """Make the cached row disagree with the bytes while its stat signature still matches: exactly what a write
    in the same timestamp tick as the hashing leaves behind (the stat cannot see it)."""
    with workspace.store.begin() as conn:
        conn.execute(update(file_hashes).where(file_hashes.c.path == str(path)).values(hash=value))


@pytest.mark.parametrize("replace", [False, True], ids=["in-place", "renamed-over"])
def test_same_size_restored_mtime_rewrite_is_rehashed(workspace, tmp_path, monkeypatch, replace):
    monkeypatch.setattr(fingerprints, "RACY_WINDOW_NS", 0)  # only the stat signature decides here
    path = tmp_path / "data.csv"
    path.write_bytes(b"x\n1\n2\n3\n")
    assert local_file_hashes(workspace.store, [str(path)]) == {str(path): _digest(b"x\n1\n2\n3\n")}
    _rewrite_keeping_size_and_mtime(path, b"x\n1\n2\n4\n", replace)
    assert local_file_hashes(workspace.store, [str(path)]) == {str(path): _digest(b"x\n1\n2\n4\n")}


def test_unchanged_file_is_served_from_the_cache_without_reading(workspace, tmp_path, monkeypatch):
    """The fast path is real: an unchanged, settled file is not re-read (a doctored row is believed)."""
    monkeypatch.setattr(fingerprints, "RACY_WINDOW_NS", 0)
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * 1000)
    local_file_hashes(workspace.store, [str(path)])
    _set_cached_hash(workspace, path, "f" * 64)
    assert local_file_hashes(workspace.store, [str(path)])[str(path)] == "f" * 64


def test_file_modified_right_after_hashing_is_rehashed(workspace, tmp_path):
    """Racily clean (git): the file was written within the timestamp granularity of its hashing, so a later
    write in the same tick could have left its stat unchanged; its cached hash is not trusted."""
    path = tmp_path / "prep.py"
    path.write_text("print('old')\n")
    local_file_hashes(workspace.store, [str(path)])
    _set_cached_hash(workspace, path, "f" * 64)  # the same-tick write the stat cannot see
    assert local_file_hashes(workspace.store, [str(path)])[str(path)] == _digest(b"print('old')\n")


def test_row_hashed_long_after_the_last_write_is_trusted(workspace, tmp_path):
    """Once hashed outside the racy window, the row records that and later checks cost one stat."""
    path = tmp_path / "settled.txt"
    path.write_text("settled")
    local_file_hashes(workspace.store, [str(path)])
    with workspace.store.begin() as conn:  # as if the last hashing happened a minute after the write
        conn.execute(update(file_hashes).where(file_hashes.c.path == str(path))
                     .values(hashed_at_ns=os.stat(path).st_ctime_ns + 60 * 10**9, hash="e" * 64))
    assert local_file_hashes(workspace.store, [str(path)])[str(path)] == "e" * 64


def test_forced_rerun_materializes_the_new_code(workspace, tmp_path):
    """The v1 failure: a same-size, restored-mtime script edit kept its old hash, the snapshot store held an
    object under that hash, and the step ran the OLD code even with regenerate_outputs."""
    src = tmp_path / "src"
    src.mkdir()
    script = src / "prep.py"
    script.write_text("print('old')\n")
    snapshots = SnapshotStore(workspace.home)
    first = tree_manifest(workspace.store, src)
    snapshots.save(src, first, "run1.prep", None)
    _rewrite_keeping_size_and_mtime(script, b"print('new')\n")
    second = tree_manifest(workspace.store, src)
    assert second["prep.py"] == _digest(b"print('new')\n")
    snapshots.save(src, second, "run2.prep", None)
    snapshots.materialize(second, tmp_path / "work")
    assert (tmp_path / "work" / "prep.py").read_text() == "print('new')\n"


def test_save_refuses_a_file_that_changed_after_it_was_hashed(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "prep.py").write_text("print('new')\n")
    stale = {"prep.py": _digest(b"print('old')\n")}  # hashed before the edit
    snapshots = SnapshotStore(workspace.home)
    with pytest.raises(SnapshotIntegrityError, match="source file prep.py .* changed after it was hashed"):
        snapshots.save(src, stale, "run1.prep", None)
    assert not snapshots.has(stale["prep.py"])  # nothing stored under a name its bytes do not have
    # an object already stored under the stale digest: the file still has to match it
    old = tmp_path / "old"
    old.mkdir()
    (old / "prep.py").write_text("print('old')\n")
    snapshots.save(old, stale, "run0.prep", None)
    with pytest.raises(SnapshotIntegrityError):
        snapshots.save(src, stale, "run2.prep", None)


def test_materialize_never_serves_a_corrupt_object(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "prep.py").write_text("print('good')\n")
    snapshots = SnapshotStore(workspace.home)
    manifest = tree_manifest(workspace.store, src)
    snapshots.save(src, manifest, "run1.prep", None)
    obj = snapshots.objects / manifest["prep.py"][:2] / manifest["prep.py"]
    obj.write_text("print('evil')\n")
    with pytest.raises(SnapshotIntegrityError, match="does not hold the bytes its digest names"):
        snapshots.materialize(manifest, tmp_path / "work")
    assert not (tmp_path / "work" / "prep.py").exists()
    assert not snapshots.has(manifest["prep.py"])  # moved aside, kept for inspection
    assert obj.with_name(obj.name + ".corrupt").read_text() == "print('evil')\n"
    snapshots.save(src, manifest, "run2.prep", None)  # the next run stores it afresh
    snapshots.materialize(manifest, tmp_path / "work2")
    assert (tmp_path / "work2" / "prep.py").read_text() == "print('good')\n"


# ---------------------------------------------------------------------------------------------- symbolic links
def _linked_project(tmp_path: Path) -> Path:
    shared = tmp_path / "shared_lib"
    shared.mkdir()
    (shared / "helpers.py").write_text("K = 1\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "prep.py").write_text("from lib.helpers import K\n")
    (src / "lib").symlink_to(shared, target_is_directory=True)
    (src / "cfg.py").symlink_to(shared / "helpers.py")
    return src


def test_symlinked_folder_and_file_are_followed(workspace, tmp_path):
    src = _linked_project(tmp_path)
    assert snapshot_files(src) == ["cfg.py", "lib/helpers.py", "prep.py"]
    step = {"name": "prep", "source_directory": str(src)}
    before, _ = source_manifest(workspace, step)
    assert before["lib/helpers.py"] == before["cfg.py"] == _digest(b"K = 1\n")
    (tmp_path / "shared_lib" / "helpers.py").write_text("K = 22\n")  # an edit behind the link changes the key
    after, _ = source_manifest(workspace, step)
    assert after["lib/helpers.py"] == _digest(b"K = 22\n") != before["lib/helpers.py"]
    snapshots = SnapshotStore(workspace.home)  # and the step runs with the linked files
    snapshots.save(src, after, "run1.prep", None)
    snapshots.materialize(after, tmp_path / "work")
    assert (tmp_path / "work" / "lib" / "helpers.py").read_text() == "K = 22\n"
    assert not (tmp_path / "work" / "lib").is_symlink()


def test_symlink_loop_is_rejected_naming_step_and_path(workspace, tmp_path):
    src = _linked_project(tmp_path)
    (tmp_path / "shared_lib" / "back").symlink_to(src, target_is_directory=True)  # src/lib/back -> src
    with pytest.raises(PipelineValidationError, match=r"Step 'prep'.*symbolic link lib/back .*loop"):
        source_manifest(workspace, {"name": "prep", "source_directory": str(src)})


def test_dangling_symlink_is_rejected_naming_step_and_path(workspace, tmp_path):
    src = _linked_project(tmp_path)
    (src / "gone").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    with pytest.raises(PipelineValidationError, match=r"Step 'prep'.*symbolic link gone .*missing target"):
        source_manifest(workspace, {"name": "prep", "source_directory": str(src)})
    (src / ".amlignore").write_text("gone\n")  # an ignored link is not looked at
    assert "gone" not in source_manifest(workspace, {"name": "prep", "source_directory": str(src)})[0]


# ---------------------------------------------------------------------------------------------- committed outputs
def _recorded_output(workspace):
    from airflow_mlpipe.data.hashing import hash_tree
    from airflow_mlpipe.runtime import cache
    from airflow_mlpipe.sdk.datastore import Datastore

    store = Datastore.get(workspace)
    folder = Path(store.full_path("azureml/run1/prep/prepared"))
    folder.mkdir(parents=True)
    (folder / "prepared.txt").write_text("fast:2,4,6")
    out = {"uri": store.uri("azureml/run1/prep/prepared"), "datastore": store.name,
           "path": "azureml/run1/prep/prepared", "content_hash": hash_tree(store.fs, str(folder))[0]}
    key = cache.StepKey("blake3:" + "1" * 64, {})
    cache.record(workspace, {"name": "prep", "kind": "PythonScriptStep"}, key, {"prepared": out}, "run1.prep",
                 "run1")
    return key.key, folder / "prepared.txt"


def test_committed_output_rewritten_with_same_size_and_mtime_is_evicted(workspace, monkeypatch):
    from airflow_mlpipe.runtime import cache

    monkeypatch.setattr(fingerprints, "RACY_WINDOW_NS", 0)  # only the stat signature decides here
    key, path = _recorded_output(workspace)
    assert cache.lookup(workspace, key)[0] is not None
    _rewrite_keeping_size_and_mtime(path, b"fast:2,4,9")
    entry, why = cache.lookup(workspace, key)
    assert entry is None and "was modified after it was recorded" in why


def test_committed_output_recorded_right_after_writing_is_hashed_before_reuse(workspace):
    from airflow_mlpipe.runtime import cache
    from airflow_mlpipe.store.tables_cache import cache_entries

    key, path = _recorded_output(workspace)
    with workspace.store.begin() as conn:  # a same-tick rewrite the stat cannot see: doctor the hash instead
        outputs = conn.execute(select(cache_entries.c.outputs).where(cache_entries.c.key == key)).scalar()
        outputs["prepared"]["content_hash"] = "blake3:" + "f" * 64
        conn.execute(update(cache_entries).where(cache_entries.c.key == key).values(outputs=outputs))
    entry, why = cache.lookup(workspace, key)
    assert entry is None and "was modified after it was recorded" in why


# ---------------------------------------------------------------------------------------------- migration
def test_existing_workspace_upgrades_and_rehashes_old_rows(tmp_path):
    from airflow_mlpipe.store.db import MIGRATIONS, Store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    Store(url)
    old = Store(url)
    with old.engine.begin() as conn:  # the table as released before the stat signature, with one row
        conn.exec_driver_sql("DROP TABLE mlpipe_file_hashes")
        conn.exec_driver_sql("CREATE TABLE mlpipe_file_hashes (path TEXT PRIMARY KEY, size BIGINT, "
                             "mtime_ns BIGINT, hash VARCHAR(80))")
        ours = next(n for n, m in enumerate(MIGRATIONS, 1) if m.__name__ == "add_file_hash_stat_columns")
        conn.exec_driver_sql(f"DELETE FROM mlpipe_schema_version WHERE version >= {ours}")
        path = tmp_path / "data.csv"
        path.write_text("x\n1\n")
        st = os.stat(path)
        conn.exec_driver_sql("INSERT INTO mlpipe_file_hashes VALUES (?, ?, ?, ?)",
                             (str(path), st.st_size, st.st_mtime_ns, "f" * 64))
    upgraded = Store(url)
    with upgraded.begin() as conn:
        row = conn.execute(select(file_hashes).where(file_hashes.c.path == str(path))).mappings().one()
    assert row["hash"] == "f" * 64 and row["ctime_ns"] is None  # kept, but not trusted:
    assert local_file_hashes(upgraded, [str(path)]) == {str(path): _digest(b"x\n1\n")}
    assert upgraded.migrate() == len(MIGRATIONS)  # idempotent
