"""Every reader honours the commit markers of a transferred folder: Datastore-style listings and downloads,
dataset file listings (folders and globs) and tree hashes see exactly the manifest's files, never the markers,
and refuse a folder whose transfer is pending; a folder without markers reads as is."""

from __future__ import annotations

import json

import pytest
from fsspec.implementations.local import LocalFileSystem

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data import commit_marker as cm
from airflow_mlpipe.data.dataset_files import list_files
from airflow_mlpipe.data.file_copy import copy
from airflow_mlpipe.data.hashing import hash_tree
from airflow_mlpipe.data.transfer import download, list_prefix
from tests.integration.test_file_copy import location, put_tree

LOCAL = LocalFileSystem()
WRITER = LocalFileSystem(auto_mkdir=True)  # makes the parent folders of what the tests write
FILES = {"a.csv": b"x\n1\n", "sub/b.csv": b"x\n2\n", "notes.md": b"hello"}


@pytest.fixture
def s3_env(moto_s3, monkeypatch):
    """Dataset URIs (``s3://…``) resolve with fsspec's defaults: point them at the moto server."""
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_s3.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", moto_s3.region)
    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def committed_with_stray(tmp_path, s3, bucket: str) -> None:
    """``bucket/out`` published by a transfer, plus files the manifest does not list (a killed rewrite's)."""
    put_tree(WRITER, str(tmp_path / "src"), FILES)
    copy(LOCAL, str(tmp_path / "src"), s3, f"{bucket}/out")
    put_tree(s3, f"{bucket}/out", {"stray.csv": b"x\n9\n", "sub/stray.csv": b"x\n9\n"})


def test_committed_folder_reads_exactly_the_manifest_files(fresh_stores, tmp_path, moto_s3, s3_env):
    s3, b = fresh_stores["s3"], fresh_stores["bucket"]
    committed_with_stray(tmp_path, s3, b)
    expected = sorted(f"{b}/out/{rel}" for rel in FILES)
    assert cm.committed_files(s3, f"{b}/out") == expected
    store = location("s3", moto_s3, b)
    assert list_prefix(store, "out") == expected
    assert list_prefix(store, None) == expected
    assert list_prefix(store, "out/s") == [f"{b}/out/sub/b.csv"]  # a name prefix, not a folder
    assert list_prefix(store, f"out/{cm.MANIFEST}") == []

    assert download(store, str(tmp_path / "dl"), "out", overwrite=False) == (3, 0)
    got = {p.relative_to(tmp_path / "dl").as_posix(): p.read_bytes() for p in (tmp_path / "dl").rglob("*")
           if p.is_file()}
    assert got == {f"out/{rel}": data for rel, data in FILES.items()}

    folder = list_files(None, {"format": "files", "paths": [{"uri": f"s3://{b}/out"}]})
    assert [m.rel for m in folder.matches] == ["a.csv", "notes.md", "sub/b.csv"]
    csv = list_files(None, {"format": "delimited", "paths": [{"uri": f"s3://{b}/out"}]})
    assert [m.rel for m in csv.matches] == ["a.csv", "sub/b.csv"]
    globbed = list_files(None, {"format": "delimited", "paths": [{"uri": f"s3://{b}/out/*.csv"}]})
    assert [m.rel for m in globbed.matches] == ["a.csv"]
    assert hash_tree(s3, f"{b}/out") == hash_tree(LOCAL, str(tmp_path / "src"))


def test_pending_transfer_is_refused_by_every_reader(fresh_stores, tmp_path, azurite, moto_s3, s3_env):
    az, s3, b, c = fresh_stores["az"], fresh_stores["s3"], fresh_stores["bucket"], fresh_stores["container"]
    put_tree(az, f"{c}/out", FILES)
    cm.write_pending(az, f"{c}/out", {"transfer": "t1", "files": {}})
    store = location("az", azurite, c)
    for read in (lambda: list_prefix(store, "out"), lambda: list_prefix(store, None),
                 lambda: download(store, str(tmp_path / "dl"), "out", overwrite=True),
                 lambda: hash_tree(az, f"{c}/out"), lambda: cm.committed_files(az, f"{c}/out")):
        with pytest.raises(cm.IncompleteTransfer, match=f"Folder {c}/out is not readable: a transfer into it did "
                                                         "not finish or is still in progress"):
            read()
    assert not (tmp_path / "dl").exists()
    assert issubclass(cm.IncompleteTransfer, UserErrorException)

    committed_with_stray(tmp_path, s3, b)  # a new transfer starts rewriting a committed folder
    cm.write_pending(s3, f"{b}/out", {"transfer": "another", "files": {}})
    for source in ({"uri": f"s3://{b}/out"}, {"uri": f"s3://{b}/out/*.csv"}):
        with pytest.raises(cm.IncompleteTransfer, match=f"{b}/out"):
            list_files(None, {"format": "delimited", "paths": [source]})


def test_manifest_and_pending_of_the_same_transfer_is_committed(fresh_stores):
    s3, b = fresh_stores["s3"], fresh_stores["bucket"]
    put_tree(s3, f"{b}/out", {"x.csv": b"1", "y.csv": b"2"})
    cm.write_pending(s3, f"{b}/out", {"transfer": "t7", "files": {}})
    cm.write_manifest(s3, f"{b}/out", "t7", {"x.csv": {"size": 1, "hash": "00"}}, {"url": "file:///src"})
    assert cm.committed_files(s3, f"{b}/out") == [f"{b}/out/x.csv"]  # only the clean-up was left
    assert json.loads(s3.cat_file(f"{b}/out/{cm.MANIFEST}"))["version"] == 1
    cm.write_pending(s3, f"{b}/out", {"transfer": "t8", "files": {}})
    with pytest.raises(cm.IncompleteTransfer):
        cm.committed_files(s3, f"{b}/out")
    cm.remove_pending(s3, f"{b}/out")
    assert cm.visible_find(s3, f"{b}/out") == [f"{b}/out/x.csv"]


def test_plain_folders_read_as_is_and_local_markers_are_honoured_too(fresh_stores, tmp_path, moto_s3):
    s3, b = fresh_stores["s3"], fresh_stores["bucket"]
    put_tree(s3, f"{b}/plain", {"x.csv": b"1", "_hidden.csv": b"2"})
    assert cm.committed_files(s3, f"{b}/plain") is None
    assert list_prefix(location("s3", moto_s3, b), "plain") == [f"{b}/plain/_hidden.csv", f"{b}/plain/x.csv"]
    folder = tmp_path / "ds" / "out"
    put_tree(WRITER, str(folder), {"keep.csv": b"1", "drop.csv": b"2"})
    cm.write_manifest(LOCAL, str(folder), "t1", {"keep.csv": {"size": 1, "hash": "00"}}, {"url": "x"})
    assert list_prefix(location("local", None, str(tmp_path / "ds")), "out") == [str(folder / "keep.csv")]
    listing = list_files(None, {"format": "files", "paths": [{"uri": str(folder)}]})
    assert [m.rel for m in listing.matches] == ["keep.csv"]
