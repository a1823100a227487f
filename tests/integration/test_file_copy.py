"""The DataTransferStep copy engine against real fresh_stores: Azurite (Blob), moto's S3 server and local disk.

What a user notices: the bytes arrive exactly, the content hash names what arrived, a killed copy is never half
visible and its rerun does not copy again what already arrived, and bad input fails with the path named.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data import commit_marker as cm
from airflow_mlpipe.data.datastore_location import DatastoreLocation
from airflow_mlpipe.data.file_copy import SourceFile, TransferError, _Streamer, copy, source_listing
from airflow_mlpipe.data.hashing import hash_tree
from airflow_mlpipe.data.transfer import list_prefix

REPO = Path(__file__).resolve().parents[2]
LOCAL = LocalFileSystem()
TREE = {"top.bin": 70_000, "a/one.bin": 1, "a/b/two.bin": 300_000, "a/b/c/empty.bin": 0, "big.bin": 3 << 20}


def make_tree(root: Path, tree: dict[str, int] = TREE, seed: int = 0) -> dict[str, bytes]:
    out = {}
    for i, (rel, size) in enumerate(sorted(tree.items())):
        data = (bytes([(seed + i) % 251]) + os.urandom(max(size - 1, 0)))[:size]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        out[rel] = data
    return out


def read_tree(fs, root: str) -> dict[str, bytes]:
    """What a reader sees under ``root``: committed files only, by relative path."""
    return {p[len(root) + 1:]: fs.cat_file(p) for p in cm.visible_find(fs, root)}


def put_tree(fs, root: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        fs.pipe_file(f"{root}/{rel}", data)


def location(kind: str, server, root: str) -> DatastoreLocation:
    """A datastore rooted at a bucket / container / local folder, credentials as filesystem options."""
    if kind == "s3":
        rec = {"url": f"s3://{root}", "options": {"key": server.access_key_id, "secret": server.secret_access_key,
                                                   "endpoint_url": server.endpoint_url, "skip_instance_cache": True}}
    elif kind == "az":
        rec = {"url": f"abfs://{root}", "options": {"connection_string": server.connection_string,
                                                     "skip_instance_cache": True}}
    else:
        rec = {"url": f"file://{root}", "options": {}}
    return DatastoreLocation(None, _rec={"name": f"ds_{kind}", "kind": kind, **rec})


# ---------------------------------------------------------------------------------------------- round trips
def test_folder_blob_to_local_then_local_to_s3_then_s3_to_blob(fresh_stores, tmp_path):
    az, s3, c, b = fresh_stores["az"], fresh_stores["s3"], fresh_stores["container"], fresh_stores["bucket"]
    files = make_tree(tmp_path / "src")
    put_tree(az, f"{c}/in", files)

    first = copy(az, f"{c}/in", LOCAL, str(tmp_path / "dl"), reference_type="directory")
    assert read_tree(LOCAL, str(tmp_path / "dl")) == files
    assert (first.files, first.copied, first.skipped, first.bytes) == (5, 5, 0, sum(TREE.values()))
    assert first.content_hash == hash_tree(LOCAL, str(tmp_path / "dl"))[0]
    assert sorted(os.listdir(tmp_path)) == ["dl", "src"]  # no staging folder left beside it

    second = copy(LOCAL, str(tmp_path / "dl"), s3, f"{b}/out")
    assert read_tree(s3, f"{b}/out") == files
    assert second.content_hash == hash_tree(s3, f"{b}/out")[0] == first.content_hash
    assert cm.committed_files(s3, f"{b}/out") == sorted(f"{b}/out/{r}" for r in files)
    assert not s3.exists(f"{b}/out/{cm.PENDING}")

    third = copy(s3, f"{b}/out", az, f"{c}/copy", workers=3)
    assert read_tree(az, f"{c}/copy") == files
    assert third.content_hash == hash_tree(az, f"{c}/copy")[0] == first.content_hash
    # the source's manifest is honoured: markers are not copied as data
    assert not az.exists(f"{c}/copy/{cm.MANIFEST}/{cm.MANIFEST}")
    assert {e[0] for e in third.entries} == set(files)


def test_local_to_local_folder_and_single_files(fresh_stores, tmp_path):
    az, s3, c, b = fresh_stores["az"], fresh_stores["s3"], fresh_stores["container"], fresh_stores["bucket"]
    files = make_tree(tmp_path / "src")
    res = copy(LOCAL, str(tmp_path / "src"), LOCAL, str(tmp_path / "out" / "deep" / "copy"))
    assert read_tree(LOCAL, str(tmp_path / "out" / "deep" / "copy")) == files
    assert res.content_hash == hash_tree(LOCAL, str(tmp_path / "out" / "deep" / "copy"))[0]

    one = copy(LOCAL, str(tmp_path / "src" / "big.bin"), s3, f"{b}/single/big.bin", chunk=1 << 20)
    assert s3.cat_file(f"{b}/single/big.bin") == files["big.bin"]
    assert one.content_hash == hash_tree(s3, f"{b}/single/big.bin")[0]
    two = copy(s3, f"{b}/single/big.bin", az, f"{c}/x/big.bin", reference_type="file", chunk=1 << 20)
    assert az.cat_file(f"{c}/x/big.bin") == files["big.bin"] and two.content_hash == one.content_hash
    three = copy(az, f"{c}/x/big.bin", LOCAL, str(tmp_path / "b.bin"))
    assert (tmp_path / "b.bin").read_bytes() == files["big.bin"]
    assert three.content_hash == hash_tree(LOCAL, str(tmp_path / "b.bin"))[0]  # named by the destination name
    small = copy(az, f"{c}/x/big.bin", LOCAL, str(tmp_path / "b.bin"), chunk=1 << 16)  # replaces in place
    assert small.content_hash == three.content_hash and not list(tmp_path.glob("b.bin.*"))
    # a file onto an existing folder replaces the folder
    copy(LOCAL, str(tmp_path / "src" / "top.bin"), LOCAL, str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == files["top.bin"]


def test_source_listing_reports_identity_and_detects_the_kind(fresh_stores, tmp_path):
    s3, b = fresh_stores["s3"], fresh_stores["bucket"]
    put_tree(s3, f"{b}/f", {"x/y.txt": b"hello", "z.txt": b"!"})
    listed = source_listing(s3, f"s3://{b}/f", None)
    assert [(f.rel, f.size) for f in listed] == [("x/y.txt", 5), ("z.txt", 1)]
    assert all(f.etag for f in listed)
    single = source_listing(s3, f"{b}/f/z.txt", None)
    assert [(f.rel, f.full) for f in single] == [("z.txt", f"{b}/f/z.txt")]
    with pytest.raises(UserErrorException, match=f"{b}/f/z.txt is a file, but reference_type is 'directory'"):
        source_listing(s3, f"{b}/f/z.txt", "directory")
    with pytest.raises(UserErrorException, match=f"{b}/f is a directory, but reference_type is 'file'"):
        source_listing(s3, f"{b}/f", "file")


# ---------------------------------------------------------------------------------------------- replace
def test_replacing_a_folder_with_fewer_files_leaves_exactly_the_new_files(fresh_stores, tmp_path, azurite, moto_s3):
    s3, b = fresh_stores["s3"], fresh_stores["bucket"]
    old = make_tree(tmp_path / "old")
    new = make_tree(tmp_path / "new", {"top.bin": 10, "a/other.bin": 20}, seed=7)
    for dst_fs, dst in ((s3, f"{b}/out"), (LOCAL, str(tmp_path / "out"))):
        copy(LOCAL, str(tmp_path / "old"), dst_fs, dst)
        assert read_tree(dst_fs, dst) == old
        res = copy(LOCAL, str(tmp_path / "new"), dst_fs, dst)
        assert read_tree(dst_fs, dst) == new and res.copied == 2
        assert res.content_hash == hash_tree(dst_fs, dst)[0]
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
                  if p.is_file()) == ["a/other.bin", "top.bin"]
    assert sorted(s3.find(f"{b}/out")) == sorted([f"{b}/out/{cm.MANIFEST}", f"{b}/out/a/other.bin",
                                                  f"{b}/out/top.bin"])
    assert list_prefix(location("s3", moto_s3, b), "out") == [f"{b}/out/a/other.bin", f"{b}/out/top.bin"]


def test_rerun_of_a_finished_copy_copies_nothing_and_a_changed_source_file_is_copied_again(fresh_stores, tmp_path):
    s3, b = fresh_stores["s3"], fresh_stores["bucket"]
    files = make_tree(tmp_path / "src")
    copy(LOCAL, str(tmp_path / "src"), s3, f"{b}/out", source_id={"datastore": "local", "path": "src"})
    again = copy(LOCAL, str(tmp_path / "src"), s3, f"{b}/out", source_id={"datastore": "local", "path": "src"})
    assert (again.copied, again.skipped) == (0, 5)
    time.sleep(0.01)
    (tmp_path / "src" / "top.bin").write_bytes(b"changed")
    third = copy(LOCAL, str(tmp_path / "src"), s3, f"{b}/out", source_id={"datastore": "local", "path": "src"})
    assert (third.copied, third.skipped) == (1, 4)
    assert read_tree(s3, f"{b}/out") == {**files, "top.bin": b"changed"}
    assert third.content_hash == hash_tree(s3, f"{b}/out")[0]
    other = copy(LOCAL, str(tmp_path / "src"), s3, f"{b}/out", source_id={"datastore": "elsewhere"})
    assert other.copied == 5  # nothing recorded for that source: nothing is trusted


# ---------------------------------------------------------------------------------------------- interrupted
def test_copy_aborted_from_progress_is_invisible_and_resumes(fresh_stores, tmp_path, moto_s3):
    s3, b = fresh_stores["s3"], fresh_stores["bucket"]
    files = make_tree(tmp_path / "src", {f"part-{i:03d}.bin": 50_000 for i in range(40)})
    make_tree(tmp_path / "old", {"old.bin": 5})
    copy(LOCAL, str(tmp_path / "old"), s3, f"{b}/out")
    calls = []

    def progress(message: str) -> None:
        calls.append(message)
        if int(message.split("/")[0]) >= 8:
            raise KeyboardInterrupt("operator pressed Ctrl-C")

    with pytest.raises(KeyboardInterrupt):
        copy(LOCAL, str(tmp_path / "src"), s3, f"{b}/out", workers=2, progress=progress, progress_every=0)
    assert "files" in calls[0] and "MB/s" in calls[0]
    with pytest.raises(cm.IncompleteTransfer, match=f"{b}/out.*did not finish or is still in progress"):
        list_prefix(location("s3", moto_s3, b), "out")
    with pytest.raises(cm.IncompleteTransfer):
        cm.committed_files(s3, f"{b}/out")
    done = copy(LOCAL, str(tmp_path / "src"), s3, f"{b}/out", workers=2)
    assert done.skipped >= 8 and done.copied + done.skipped == 40
    assert read_tree(s3, f"{b}/out") == files and "old.bin" not in read_tree(s3, f"{b}/out")
    assert done.content_hash == hash_tree(s3, f"{b}/out")[0]


CHILD = """
import json, sys, time
from airflow_mlpipe.data.file_copy import copy

args = json.loads(sys.argv[1])


def make(spec):
    if spec["kind"] == "local":
        from fsspec.implementations.local import LocalFileSystem
        return LocalFileSystem()
    if spec["kind"] == "s3":
        import s3fs
        return s3fs.S3FileSystem(skip_instance_cache=True, **spec["options"])
    from adlfs import AzureBlobFileSystem
    return AzureBlobFileSystem(skip_instance_cache=True, **spec["options"])


def progress(message):
    if int(message.split("/")[0]) >= args["after"]:
        open(args["flag"], "w").write(message)
        time.sleep(600)


copy(make(args["src"]), args["src"]["path"], make(args["dst"]), args["dst"]["path"], workers=2,
     progress=progress, progress_every=0)
"""


def kill_mid_copy(tmp_path: Path, src: dict, dst: dict, after: int) -> None:
    """Run a copy in a child process and SIGKILL it once ``after`` files were reported done."""
    flag = tmp_path / "flag"
    flag.unlink(missing_ok=True)
    args = json.dumps({"src": src, "dst": dst, "after": after, "flag": str(flag)})
    proc = subprocess.Popen([sys.executable, "-c", CHILD, args], cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while not flag.exists():
            assert proc.poll() is None, f"the copy ended before it was killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "the copy made no progress in 120 s"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()


def test_blob_to_local_killed_keeps_old_content_and_resumes(fresh_stores, tmp_path, azurite):
    az, c = fresh_stores["az"], fresh_stores["container"]
    files = make_tree(tmp_path / "gen", {f"d{i % 3}/f{i:03d}.bin": 40_000 for i in range(30)})
    put_tree(az, f"{c}/in", files)
    old = make_tree(tmp_path / "dst", {"old.txt": 3})
    options = {"connection_string": azurite.connection_string}
    kill_mid_copy(tmp_path, {"kind": "az", "options": options, "path": f"{c}/in"},
                  {"kind": "local", "path": str(tmp_path / "dst")}, after=6)
    assert read_tree(LOCAL, str(tmp_path / "dst")) == old  # readers still see the old content, untouched
    assert list_prefix(location("local", None, str(tmp_path / "dst")), None) == [str(tmp_path / "dst" / "old.txt")]
    done = copy(az, f"{c}/in", LOCAL, str(tmp_path / "dst"))
    assert done.skipped >= 6 and done.copied + done.skipped == 30
    assert read_tree(LOCAL, str(tmp_path / "dst")) == files
    assert done.content_hash == hash_tree(LOCAL, str(tmp_path / "dst"))[0]
    assert sorted(os.listdir(tmp_path)) == ["dst", "flag", "gen"]  # no staging folder left beside dst


def test_local_to_s3_killed_is_refused_by_readers_and_resumes(fresh_stores, tmp_path, moto_s3):
    s3, b = fresh_stores["s3"], fresh_stores["bucket"]
    files = make_tree(tmp_path / "src", {f"f{i:03d}.bin": 60_000 for i in range(30)})
    options = {"key": moto_s3.access_key_id, "secret": moto_s3.secret_access_key,
               "endpoint_url": moto_s3.endpoint_url}
    kill_mid_copy(tmp_path, {"kind": "local", "path": str(tmp_path / "src")},
                  {"kind": "s3", "options": options, "path": f"{b}/out"}, after=5)
    assert s3.exists(f"{b}/out/{cm.PENDING}") and not s3.exists(f"{b}/out/{cm.MANIFEST}")
    with pytest.raises(cm.IncompleteTransfer, match=f"{b}/out"):
        list_prefix(location("s3", moto_s3, b), "out/")
    done = copy(LOCAL, str(tmp_path / "src"), s3, f"{b}/out")
    assert done.skipped >= 5 and read_tree(s3, f"{b}/out") == files
    assert done.content_hash == hash_tree(s3, f"{b}/out")[0]


def test_failed_streamed_upload_leaves_no_object(fresh_stores, tmp_path):
    import threading

    s3, az, b, c = fresh_stores["s3"], fresh_stores["az"], fresh_stores["bucket"], fresh_stores["container"]
    (tmp_path / "f.bin").write_bytes(os.urandom(12 << 20))
    lying = SourceFile("f.bin", str(tmp_path / "f.bin"), (12 << 20) + 1)  # the file "shrank" after listing
    for fs, key in ((s3, f"{b}/f.bin"), (az, f"{c}/f.bin")):
        streamer = _Streamer(LOCAL, fs, 1 << 20, threading.Event())
        with pytest.raises(TransferError, match="changed during the copy"):
            streamer.to_remote(lying, key)
        fs.invalidate_cache()
        assert not fs.exists(key)


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_source_names_the_path(fresh_stores, tmp_path):
    s3, az, b, c = fresh_stores["s3"], fresh_stores["az"], fresh_stores["bucket"], fresh_stores["container"]
    for fs, path in ((LOCAL, str(tmp_path / "nope")), (s3, f"{b}/nope"), (az, f"{c}/nope/x.csv")):
        with pytest.raises(UserErrorException, match=f"source .*{path} does not exist"):
            copy(fs, path, LOCAL, str(tmp_path / "dst"))
    with pytest.raises(UserErrorException, match="reference_type must be 'file', 'directory' or None"):
        copy(LOCAL, str(tmp_path), LOCAL, str(tmp_path / "d"), reference_type="folder")
    with pytest.raises(UserErrorException, match="is inside its source"):
        copy(LOCAL, str(tmp_path), LOCAL, str(tmp_path / "d"))
    assert not (tmp_path / "dst").exists()


def test_bad_credentials_fail_naming_the_path(fresh_stores, tmp_path, azurite, moto_checking_signatures):
    import s3fs
    from adlfs import AzureBlobFileSystem

    c = fresh_stores["container"]
    fresh_stores["az"].pipe_file(f"{c}/in/x.bin", b"x")
    make_tree(tmp_path / "src", {"x.bin": 10})
    wrong_key = azurite.connection_string.replace(azurite.account_key, "d3Jvbmcta2V5" * 4)
    bad_az = AzureBlobFileSystem(connection_string=wrong_key, skip_instance_cache=True)
    with pytest.raises(TransferError, match=f"source abfs://{c}/in: .*check the credentials"):
        copy(bad_az, f"{c}/in", LOCAL, str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()
    # the session's moto server accepts any signature: this one checks them (a real key, the wrong secret)
    server = moto_checking_signatures
    bad_s3 = s3fs.S3FileSystem(key=server["key"], secret="wrong-secret", endpoint_url=server["endpoint_url"],
                               skip_instance_cache=True)
    with pytest.raises(TransferError, match=f"s3://{server['bucket']}/out failed: .*check the credentials"):
        copy(LOCAL, str(tmp_path / "src"), bad_s3, f"{server['bucket']}/out")
    with pytest.raises(TransferError, match=f"source s3://{server['bucket']}/in"):
        copy(bad_s3, f"{server['bucket']}/in", LOCAL, str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()


@pytest.fixture(scope="module")
def moto_checking_signatures(tmp_path_factory):
    """A moto S3 server with authentication on: its first requests (unauthenticated) create an IAM user with an
    access key and a bucket; every later request must be signed with that key's secret."""
    import boto3

    from tests.helpers.storage_servers import _stop, _wait_listening, free_port

    server = __import__("shutil").which("moto_server", path=os.path.dirname(sys.executable))
    assert server, "moto_server is missing; run `python3 -m uv sync --frozen --all-extras`"
    port, folder = free_port(), tmp_path_factory.mktemp("moto-auth")
    log = folder / "moto.log"
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    _wait_listening(port, proc, "moto S3 server (auth)", log)
    endpoint = f"http://127.0.0.1:{port}"
    kw = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "boot",
          "aws_secret_access_key": "boot"}
    iam = boto3.client("iam", **kw)
    iam.create_user(UserName="mlpipe")
    key = iam.create_access_key(UserName="mlpipe")["AccessKey"]
    boto3.client("s3", **kw).create_bucket(Bucket="authbucket")
    yield {"endpoint_url": endpoint, "key": key["AccessKeyId"], "bucket": "authbucket"}
    _stop(proc)
