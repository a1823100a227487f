"""A DatabricksStep's DBFS and Workspace I/O, done through the provider's real ``DatabricksHook`` against the
local Databricks emulator (started as a background process; no cluster is started, so the module is fast)."""

from __future__ import annotations

import base64
import os
from collections import Counter
from pathlib import Path

import pytest
from airflow.providers.databricks.hooks.databricks import DatabricksHook

from airflow_mlpipe.contract.paths import UnsafePathError
from airflow_mlpipe.data.hashing import hash_file
from airflow_mlpipe.hooks.databricks_dbfs import (
    DEFAULT_ROOT,
    DbfsError,
    dbfs_file_hash,
    notebook_hash,
    tree_digest,
    upload_tree,
)
from tests.helpers.databricks import running_emulator

pytestmark = pytest.mark.timeout(120)

CONN_ID = "databricks_dbfs_hook_test"
TOKEN = "dapi-dbfs-hook-test-token"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with running_emulator(tmp_path_factory.mktemp("databricks_dbfs_emulator"), TOKEN, CONN_ID) as info:
        yield info


@pytest.fixture
def hook(emulator) -> DatabricksHook:
    return DatabricksHook(databricks_conn_id=CONN_ID, retry_limit=2, retry_delay=0.5)


@pytest.fixture
def calls(hook) -> Counter:
    """Every real API call the hook makes, counted by endpoint (the calls still go to the emulator)."""
    counter: Counter = Counter()
    real = hook._do_api_call

    def counting(endpoint_info, json=None, *args, **kwargs):
        counter[endpoint_info[1]] += 1
        return real(endpoint_info, json, *args, **kwargs)

    hook._do_api_call = counting
    return counter


def dbfs_local(emulator, dbfs_dir: str) -> Path:
    """The emulator's local folder behind a ``dbfs:/...`` folder."""
    assert dbfs_dir.startswith("dbfs:/")
    return emulator["home"] / "dbfs" / dbfs_dir[len("dbfs:/"):]


def manifest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hash_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def make_tree(root: Path) -> dict[str, str]:
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('training')\n")
    (root / "pkg" / "model.bin").write_bytes(os.urandom(2_500_000))  # 2.5 MB: three streamed blocks
    return manifest(root)


def test_upload_is_content_addressed_and_skipped_when_complete(emulator, hook, calls, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)

    folder = upload_tree(hook, src, files)
    assert folder.startswith("dbfs:/mlpipe/snapshots/") and len(folder.rsplit("/", 1)[1]) == 32
    remote = dbfs_local(emulator, folder)
    assert (remote / "train.py").read_bytes() == (src / "train.py").read_bytes()
    assert (remote / "pkg" / "model.bin").read_bytes() == (src / "pkg" / "model.bin").read_bytes()
    assert (remote / ".mlpipe-complete").is_file()
    assert calls["2.0/dbfs/put"] == 2  # the small file and the marker
    assert calls["2.0/dbfs/create"] == 1 and calls["2.0/dbfs/close"] == 1
    assert calls["2.0/dbfs/add-block"] == 3  # 2.5 MB in blocks of at most 1 MB

    # the bytes read back through the DBFS API hash like the local file
    assert dbfs_file_hash(hook, f"{folder}/pkg/model.bin") == files["pkg/model.bin"]
    assert dbfs_file_hash(hook, f"{folder}/train.py") == hash_file(src / "train.py")

    # the same tree again: one get-status on the marker, nothing uploaded
    calls.clear()
    assert upload_tree(hook, src, files) == folder
    assert dict(calls) == {"2.0/dbfs/get-status": 1}

    # one changed file: a new folder with the whole new tree, the old one untouched
    (src / "train.py").write_text("print('training v2')\n")
    changed = manifest(src)
    calls.clear()
    folder2 = upload_tree(hook, src, changed)
    assert folder2 != folder
    assert (dbfs_local(emulator, folder2) / "train.py").read_text() == "print('training v2')\n"
    assert (dbfs_local(emulator, folder) / "train.py").read_text() == "print('training')\n"
    assert calls["2.0/dbfs/add-block"] == 3 and (dbfs_local(emulator, folder2) / ".mlpipe-complete").is_file()


def test_upload_to_another_root_and_of_an_empty_tree(emulator, hook, tmp_path):
    folder = upload_tree(hook, tmp_path, {}, "dbfs:/custom/root/")
    assert folder.startswith("dbfs:/custom/root/")
    assert (dbfs_local(emulator, folder) / ".mlpipe-complete").is_file()


def test_a_file_changed_after_hashing_fails_without_marking_the_tree_complete(emulator, hook, tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    files = manifest(tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")  # changed after the cache key was computed
    with pytest.raises(DbfsError, match=r"step 'agg': snapshot file 'a.py' .* changed after it was hashed"):
        upload_tree(hook, tmp_path, files, where="step 'agg'")
    remote = dbfs_local(emulator, f"{DEFAULT_ROOT}/{tree_digest(files)}")
    assert not (remote / ".mlpipe-complete").exists()


def test_paths_outside_the_tree_are_refused_before_any_call(hook, calls, tmp_path):
    for bad in ("../escape.py", "/etc/passwd", "a/../../b"):
        with pytest.raises(UnsafePathError, match="must not contain '..'|not an absolute path"):
            upload_tree(hook, tmp_path, {bad: "0" * 64})
    with pytest.raises(DbfsError, match="is missing from"):
        upload_tree(hook, tmp_path, {"absent.py": "0" * 64})
    with pytest.raises(DbfsError, match=r"must not contain '\.\.'"):
        upload_tree(hook, tmp_path, {}, "dbfs:/mlpipe/../../etc")
    assert "2.0/dbfs/put" not in calls and "2.0/dbfs/create" not in calls


def test_dbfs_file_hash_of_missing_file_and_folder(hook, tmp_path):
    with pytest.raises(DbfsError, match=r"step 'x': DBFS file 'dbfs:/nowhere/script.py' does not exist"):
        dbfs_file_hash(hook, "dbfs:/nowhere/script.py", where="step 'x'")
    upload_tree(hook, tmp_path, {}, "dbfs:/folders")
    with pytest.raises(DbfsError, match="is a directory"):
        dbfs_file_hash(hook, "dbfs:/folders")
    with pytest.raises(DbfsError, match="must be absolute"):
        dbfs_file_hash(hook, "scripts/train.py")


def import_notebook(hook: DatabricksHook, path: str, source: str) -> None:
    hook._do_api_call(("POST", "2.0/workspace/import"), {
        "path": path, "format": "SOURCE", "language": "PYTHON", "overwrite": True,
        "content": base64.b64encode(source.encode()).decode()})


def test_notebook_hash_follows_the_notebook_source(hook):
    path = "/Users/me@example.com/aggregate"
    import_notebook(hook, path, "# Databricks notebook source\nprint(1)\n")
    first = notebook_hash(hook, path)
    assert len(first) == 64 and notebook_hash(hook, path) == first
    import_notebook(hook, path, "# Databricks notebook source\nprint(2)\n")
    assert notebook_hash(hook, path) != first
    with pytest.raises(DbfsError, match=r"notebook '/Users/me@example.com/missing' does not exist"):
        notebook_hash(hook, "/Users/me@example.com/missing")
    with pytest.raises(DbfsError, match="absolute workspace path"):
        notebook_hash(hook, "Users/aggregate")
