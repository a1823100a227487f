"""Datastore and DataReference: real files on local and memory:// stores."""

from __future__ import annotations

import os
import uuid

import pytest

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.sdk.data_reference import DataPath, DataPathComputeBinding, DataReference
from airflow_mlpipe.sdk.datastore import Datastore, resolve_uri


def _tree(tmp_path, files: dict[str, str]):
    root = tmp_path / "src"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_builtins_default_and_names(workspace):
    blob = Datastore.get(workspace, "workspaceblobstore")
    assert blob.datastore_type == "AzureBlob" and blob.is_local
    assert Datastore(workspace).name == "workspaceblobstore"
    assert Datastore.get_default(workspace) == blob
    assert os.path.isdir(blob.root) and blob.root == str(workspace.home / "datastores" / "workspaceblobstore")
    files = Datastore.get(workspace, "WorkspaceFileStore")
    assert files.datastore_type == "AzureFile"
    assert set(Datastore.list(workspace)) >= {"workspaceblobstore", "workspacefilestore"}
    assert blob.uri("a/b.csv") == blob.url + "/a/b.csv"
    assert blob.full_path("/a/b.csv") == blob.root + "/a/b.csv"


def test_bad_and_unknown_names(workspace):
    with pytest.raises(UserErrorException, match="letters, digits"):
        Datastore.get(workspace, "bad-name")
    with pytest.raises(UserErrorException, match="'nostore'.*workspaceblobstore"):
        Datastore.get(workspace, "nostore")


def test_register_refuses_secrets(workspace):
    with pytest.raises(UserErrorException, match="account_key.*conn_id|conn_id.*account_key"):
        Datastore.register_azure_blob_container(workspace, "blob2", "c", "acct", account_key="k", conn_id="mine")
    with pytest.raises(UserErrorException, match="credentials"):
        Datastore.register(workspace, "s3x", "s3://user:pw@bucket/x")
    store = Datastore.register_azure_blob_container(workspace, "blob2", "cont", "acct", conn_id="my_azure")
    assert store.url == "abfs://cont@acct.dfs.core.windows.net"
    assert store.conn_id == "my_azure" and store.datastore_type == "AzureBlob"
    assert store.container_name == "cont" and store.account_name == "acct"
    store.unregister()
    with pytest.raises(UserErrorException):
        Datastore.get(workspace, "blob2")


def test_config_datastores_and_default(tmp_path, monkeypatch):
    from airflow_mlpipe.workspace import Workspace

    monkeypatch.chdir(tmp_path)
    ws = Workspace(home=tmp_path / "home", config={"datastores": {"shared": {"url": (tmp_path / "sh").as_uri()}}})
    assert Datastore.get(ws, "shared").url == (tmp_path / "sh").as_uri()
    assert "shared" in Datastore.list(ws)
    Datastore.get(ws, "shared").set_as_default()
    assert Datastore.get_default(ws).name == "shared"


def test_upload_skip_and_identical_not_rewritten(workspace, tmp_path, capsys):
    src = _tree(tmp_path, {"a.txt": "one", "sub/b.txt": "two"})
    store = Datastore.get_default(workspace)
    ref = store.upload(str(src), target_path="./../up", show_progress=True)
    assert isinstance(ref, DataReference) and ref.path_on_datastore == "up"
    target_a = store.full_path("up/a.txt")
    target_b = store.full_path("up/sub/b.txt")
    assert open(target_b).read() == "two"
    os.utime(target_a, (1_000_000, 1_000_000))
    os.utime(target_b, (1_000_000, 1_000_000))
    capsys.readouterr()

    (src / "sub" / "b.txt").write_text("changed")
    store.upload(str(src), target_path="up")
    assert "skipped 2" in capsys.readouterr().out
    assert store.last_transfer == {"uploaded": 0, "skipped": 2, "unchanged": 0}
    assert open(target_b).read() == "two"

    store.upload(str(src), target_path="up", overwrite=True)
    assert store.last_transfer == {"uploaded": 1, "skipped": 0, "unchanged": 1}
    assert os.stat(target_a).st_mtime == 1_000_000  # identical content: untouched
    assert open(target_b).read() == "changed"
    assert not [n for n in os.listdir(os.path.dirname(target_b)) if n.endswith(".tmp")]


def test_upload_files_rules(workspace, tmp_path):
    src = _tree(tmp_path, {"x/a.csv": "1", "x/y/b.csv": "2"})
    store = Datastore.get_default(workspace)
    store.upload_files([str(src / "x/a.csv"), str(src / "x/y/b.csv")], target_path="/t", show_progress=False)
    assert os.path.isfile(store.full_path("t/a.csv")) and os.path.isfile(store.full_path("t/y/b.csv"))
    with pytest.raises(UserErrorException, match="not a file"):
        store.upload_files([str(src / "x")])
    with pytest.raises(UserErrorException, match="not under relative_root"):
        store.upload_files([str(src / "x/a.csv")], relative_root=str(src / "x/y"))
    with pytest.raises(UserErrorException, match="not a directory"):
        store.upload(str(src / "x/a.csv"))


def test_download_keeps_prefix(workspace, tmp_path):
    src = _tree(tmp_path, {"a.txt": "1", "d/b.txt": "2"})
    store = Datastore.get_default(workspace)
    store.upload(str(src), target_path="pre", show_progress=False)
    out = tmp_path / "out"
    assert store.download(str(out), prefix="pre/d", show_progress=False) == 1
    assert (out / "pre" / "d" / "b.txt").read_text() == "2"
    assert store.download(str(out), prefix="pre", show_progress=False) == 1  # b.txt exists: skipped
    assert store.download(str(out), prefix="pre", overwrite=True, show_progress=False) == 2


def test_memory_datastore_end_to_end(workspace, tmp_path):
    name = f"mem_{uuid.uuid4().hex[:8]}"
    store = Datastore.register(workspace, name, f"memory://{name}/root")
    assert store.datastore_type == "Memory" and not store.is_local
    again = Datastore.get(workspace, name.upper())
    assert again.url == f"memory://{name}/root"
    src = _tree(tmp_path, {"a.txt": "hello", "s/b.txt": "world"})
    store.upload(str(src), target_path="in", show_progress=False)
    assert store.fs.cat_file(store.full_path("in/s/b.txt")) == b"world"
    fs, path = resolve_uri(workspace, {"datastore": name, "path": "in/a.txt"})
    assert fs.cat_file(path) == b"hello"
    fs, path = resolve_uri(workspace, store.uri("in/a.txt"))
    assert fs.cat_file(path) == b"hello"
    assert store.download(str(tmp_path / "dl"), prefix="in", show_progress=False) == 2
    assert (tmp_path / "dl" / "in" / "s" / "b.txt").read_text() == "world"
    with pytest.raises(UserErrorException, match="already registered"):
        Datastore.register(workspace, name, "memory://other")


def test_resolve_local_uri(workspace, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    fs, path = resolve_uri(workspace, (tmp_path / "f.txt").as_uri())
    assert fs.cat_file(path) == b"x"


def test_data_reference(workspace):
    store = Datastore.get_default(workspace)
    root = DataReference(store)
    assert root.data_reference_name == "workspaceblobstore" and str(root) == "$AZUREML_DATAREFERENCE_workspaceblobstore"
    ref = store.path("data/in")
    assert ref.mode == "mount" and ref.data_reference_name == DataReference(store, path_on_datastore="data/in").data_reference_name
    child = ref.path("x.csv", data_reference_name="xin")
    assert child.path_on_datastore == "data/in/x.csv" and str(child) == "$AZUREML_DATAREFERENCE_xin"
    dl = child.as_download("/tmp/p")
    assert dl.mode == "download" and dl.path_on_compute == "/tmp/p" and dl.data_reference_name == "xin"
    assert dl.as_mount().mode == "mount" and child.as_upload().mode == "upload"
    with pytest.raises(UserErrorException, match="invalid mode"):
        DataReference(store, mode="copy")
    assert dl.to_config() == {"datastore_name": "workspaceblobstore", "mode": "download",
                              "path_on_datastore": "data/in/x.csv", "path_on_compute": "/tmp/p", "overwrite": False}
    spec = dl.to_spec()
    assert spec["kind"] == "data_reference" and spec["datastore"] == "workspaceblobstore"
    back = DataReference.from_spec(workspace, spec)
    assert back.to_spec() == spec
    assert store.as_download().mode == "download" and store.as_upload().mode == "upload"


def test_datapath_and_binding(workspace):
    store = Datastore.get_default(workspace)
    dp = DataPath(store, "p/q", name="dp")
    assert dp.to_spec() == {"kind": "data_path", "datastore": "workspaceblobstore", "path": "p/q", "name": "dp"}
    binding = DataPathComputeBinding(mode="download", path_on_compute="x")
    ref = dp.create_data_reference("r", binding)
    assert ref.mode == "download" and ref.path_on_datastore == "p/q" and ref.data_reference_name == "r"
    assert DataPath.from_spec(workspace, dp.to_spec()) == dp
    with pytest.raises(UserErrorException):
        DataPathComputeBinding(mode="bogus")
