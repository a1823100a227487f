"""A step task reads its datasets, datastores and workspace through the data layer only: starting a task does
not load the authoring SDK (its v1 classes, its AutoML config), and what the task reads is what the SDK reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from airflow_mlpipe.data.datastore_location import DatastoreLocation
from airflow_mlpipe.data.materialize import materialize
from airflow_mlpipe.data.readers import read_pandas
from airflow_mlpipe.data.workspace_location import WorkspaceLocation
from airflow_mlpipe.sdk.dataset import Dataset
from airflow_mlpipe.sdk.datastore import Datastore


def test_task_modules_and_data_reads_leave_the_sdk_unloaded(workspace, test_data, tmp_path):
    store = Datastore.get_default(workspace)
    store.upload(str(test_data / "titanic"), target_path="parts", show_progress=False)
    ds = Dataset.Tabular.from_delimited_files([(store, "parts")]).take(5)
    folder_definition = Dataset.File.from_files((store, "parts")).to_definition()
    script = textwrap.dedent("""
        import json, sys
        import airflow_mlpipe.clients.airflow_rest
        import airflow_mlpipe.runtime.automl_engine
        import airflow_mlpipe.runtime.automl_runner
        import airflow_mlpipe.runtime.cache
        import airflow_mlpipe.runtime.step_runner
        from airflow_mlpipe.data.materialize import materialize
        from airflow_mlpipe.data.readers import read_pandas
        from airflow_mlpipe.data.workspace_location import WorkspaceLocation
        from airflow_mlpipe.runtime.fingerprints import dataset_fingerprint

        tabular, files = json.loads(sys.argv[1])
        ws = WorkspaceLocation.from_config()
        rows = len(read_pandas(ws, tabular))
        folder = materialize(ws, files, "mount", sys.argv[2])
        dataset_fingerprint(ws, tabular)
        loaded = sorted(m for m in sys.modules if m.startswith(("airflow_mlpipe.sdk", "airflow_mlpipe.workspace")))
        print(json.dumps({"rows": rows, "folder": folder, "loaded": loaded}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPIPE")}
    done = subprocess.run([sys.executable, "-c", script, json.dumps([ds.to_definition(), folder_definition]),
                           str(tmp_path / "in")],
                          cwd=workspace.home.parent, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["rows"] == 5 == len(ds.to_pandas_dataframe())
    assert result["folder"] == store.full_path("parts")  # a local store read in full is used in place


def test_location_and_v1_classes_agree(workspace, test_data, tmp_path):
    location = WorkspaceLocation.from_config()
    assert location == workspace and location.store_url == workspace.store_url
    assert type(WorkspaceLocation.from_ref(workspace.to_ref())) is WorkspaceLocation
    assert type(type(workspace).from_ref(workspace.to_ref())).__name__ == "Workspace"
    v1 = Datastore.get_default(workspace)
    low = DatastoreLocation.get(location)
    assert (low.name, low.url, low.full_path("a/b")) == (v1.name, v1.url, v1.full_path("a/b"))
    v1.upload_files([str(test_data / "titanic.csv")], target_path="whole", show_progress=False)
    definition = Dataset.File.from_files((v1, "whole/titanic.csv")).to_definition()
    copied = materialize(location, definition, "download", str(tmp_path / "dl"))
    assert open(copied, "rb").read() == (test_data / "titanic.csv").read_bytes()
    tabular = Dataset.Tabular.from_delimited_files((v1, "whole/titanic.csv")).drop_columns("Name")
    assert read_pandas(location, tabular.to_definition()).equals(tabular.to_pandas_dataframe())
