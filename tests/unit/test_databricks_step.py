"""DatabricksStep authoring: every v1 rule fails at definition time naming the step and the argument, and the
spec carries the Databricks job (task, cluster, libraries, parameter tokens) and the target's connection id,
never its token."""

from __future__ import annotations

import importlib
import json
import sys
import types
import warnings

import pytest

from airflow_mlpipe import (
    AmlCompute,
    ComputeTarget,
    DatabricksCompute,
    DatabricksStep,
    DataReference,
    Datastore,
    EggLibrary,
    JarLibrary,
    MavenLibrary,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineValidationError,
    PyPiLibrary,
    PythonScriptStep,
    RCranLibrary,
    RunConfiguration,
)
from airflow_mlpipe.contract.spec import check_spec
from airflow_mlpipe.sdk.databricks_libraries import DatabricksCluster, DatabricksSection
from airflow_mlpipe.sdk.no_effect import NoEffectWarning, reset_no_effect_warnings

TOKEN = "dapi-very-secret-0123456789"


def _target(ws, name: str = "dbx", emulator: bool = True, conn_id: str | None = None) -> DatabricksCompute:
    """A Databricks target as the connection helper records it (no token: it lives in the Airflow connection)."""
    record = {"type": "Databricks", "conn_id": conn_id or f"mlpipe_databricks_{name}", "resource_group": "rg",
              "workspace_name": "dbw", "resource_id": None, "emulator": emulator,
              "host": None if emulator else "https://adb-1.azuredatabricks.net"}
    ws.store.set_setting(f"compute:{name}", json.dumps(record))
    return ComputeTarget(ws, name)


def _spec(ws, *steps, **kwargs):
    spec = Pipeline(ws, steps=list(steps), **kwargs).to_spec("p")
    check_spec(json.loads(json.dumps(spec)))
    return spec


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "dbsrc"
    folder.mkdir()
    (folder / "job.py").write_text("print('on databricks')\n")
    return folder


# ---------------------------------------------------------------------------------------------- specs
def test_notebook_step_spec_with_parameters_libraries_and_existing_cluster(workspace):
    target = _target(workspace)
    rows = PipelineParameter("rows", default_value=10)
    step = DatabricksStep(
        "aggregate", notebook_path="/Users/me/aggregate", notebook_params={"rows": rows, "mode": "fast", "k": 3},
        existing_cluster_id="0101-abc", permit_cluster_restart=True, run_name="agg", timeout_seconds=600,
        maven_libraries=[MavenLibrary("com.x:y:1.0", repo="https://repo", exclusions=["a:b"])],
        pypi_libraries=[PyPiLibrary("pandas==2.2"), "scipy", {"pypi": {"package": "rich", "repo": "https://pip"}}],
        egg_libraries=[EggLibrary("dbfs:/libs/old.egg"), EggLibrary("dbfs:/libs/new-1.0-py3-none-any.whl")],
        rcran_libraries=[RCranLibrary("forecast", repo="https://cran")],
        compute_target=target,
    )
    spec = _spec(workspace, step)
    s = spec["steps"][0]
    assert s["kind"] == "DatabricksStep" and s["parameters"] == ["rows"] and s["arguments"] == []
    assert s["compute"] == {"name": "dbx", "type": "databricks", "queue": None, "conn_id": "mlpipe_databricks_dbx",
                            "emulator": True}
    assert s["script_name"] is None and s["source_directory"] is None and s["hash_paths"] == []
    assert s["databricks"] == {
        "task": "notebook", "notebook_path": "/Users/me/aggregate", "python_script_path": None,
        "main_class_name": None,
        "notebook_params": {"rows": {"parameter": "rows"}, "mode": {"literal": "fast"}, "k": {"literal": "3"}},
        "python_script_params": [], "jar_params": [],
        "cluster": {"existing_cluster_id": "0101-abc"}, "permit_cluster_restart": True,
        "libraries": [
            {"maven": {"coordinates": "com.x:y:1.0", "repo": "https://repo", "exclusions": ["a:b"]}},
            {"pypi": {"package": "pandas==2.2"}}, {"pypi": {"package": "scipy"}},
            {"pypi": {"package": "rich", "repo": "https://pip"}},
            {"egg": "dbfs:/libs/old.egg"}, {"whl": "dbfs:/libs/new-1.0-py3-none-any.whl"},
            {"cran": {"package": "forecast", "repo": "https://cran"}},
        ],
        "timeout_seconds": 600, "run_name": "agg",
    }
    assert spec["parameters"] == {"rows": {"type": "int", "default": 10}}


def test_python_script_path_step_new_autoscaling_cluster(workspace):
    target = _target(workspace)
    seed = PipelineParameter("seed", default_value="7")
    with pytest.warns(DeprecationWarning, match="'s': init_scripts is deprecated"):
        step = DatabricksStep(
            "s", python_script_path="dbfs:/jobs/train.py", python_script_params=["--seed", seed, "--n", 5],
            min_workers=1, max_workers=4, instance_pool_id="pool-1", spark_conf={"spark.x": 1},
            init_scripts=["dbfs:/init.sh"], cluster_log_dbfs_path="dbfs:/logs", compute_target="dbx",
        )
    db = _spec(workspace, step)["steps"][0]["databricks"]
    assert db["task"] == "python_script_path" and db["python_script_path"] == "dbfs:/jobs/train.py"
    assert db["python_script_params"] == [{"literal": "--seed"}, {"parameter": "seed"}, {"literal": "--n"},
                                          {"literal": "5"}]
    assert db["cluster"] == {"new_cluster": {
        "spark_version": "10.4.x-scala2.12", "instance_pool_id": "pool-1",
        "autoscale": {"min_workers": 1, "max_workers": 4},
        "spark_env_vars": {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"}, "spark_conf": {"spark.x": "1"},
        "init_scripts": [{"dbfs": {"destination": "dbfs:/init.sh"}}],
        "cluster_log_conf": {"dbfs": {"destination": "dbfs:/logs"}},
    }}
    assert db["permit_cluster_restart"] is None and db["libraries"] == [] and target.name == "dbx"


def test_python_script_name_step_uploads_its_folder(workspace, src):
    target = _target(workspace)
    reset_no_effect_warnings()
    with pytest.warns(NoEffectWarning, match="hash_paths"):
        step = DatabricksStep("local", python_script_name="job.py", source_directory=str(src),
                              python_script_params=["--x", 1], hash_paths=["job.py"], num_workers=2,
                              node_type="Standard_DS3_v2", spark_version="13.3.x-scala2.12",
                              spark_env_variables={"A": "b"}, compute_target=target)
    s = _spec(workspace, step)["steps"][0]
    assert s["script_name"] == "job.py" and s["source_directory"] == str(src.resolve())
    assert s["hash_paths"] == ["job.py"]
    assert s["databricks"]["task"] == "python_script_name"
    assert s["databricks"]["python_script_params"] == [{"literal": "--x"}, {"literal": "1"}]
    assert s["databricks"]["cluster"] == {"new_cluster": {"spark_version": "13.3.x-scala2.12",
                                                          "node_type_id": "Standard_DS3_v2", "num_workers": 2,
                                                          "spark_env_vars": {"A": "b"}}}


def test_jar_step_needs_its_jar_and_passes_tokens(workspace):
    target = _target(workspace)
    arg = PipelineParameter("day", default_value="2024-01-01")
    step = DatabricksStep("jar", main_class_name="com.x.Main", jar_params=[arg, "--fast"], num_workers=1,
                          jar_libraries=[JarLibrary("dbfs:/apps/app.jar")], compute_target=target)
    db = _spec(workspace, step)["steps"][0]["databricks"]
    assert db["task"] == "jar" and db["main_class_name"] == "com.x.Main"
    assert db["jar_params"] == [{"parameter": "day"}, {"literal": "--fast"}]
    assert db["libraries"] == [{"jar": "dbfs:/apps/app.jar"}]
    assert db["cluster"]["new_cluster"]["node_type_id"] == "Standard_D3_v2"
    with pytest.raises(PipelineValidationError, match=r"Step 'jar2', argument 'jar_libraries': .*JarLibrary"):
        DatabricksStep("jar2", main_class_name="com.x.Main", num_workers=1, compute_target=target,
                       pypi_libraries=[PyPiLibrary("x")])


def test_runconfig_supplies_libraries_and_cluster(workspace):
    target = _target(workspace)
    rc = RunConfiguration()
    rc.environment.databricks = DatabricksSection(
        jar_libraries=[JarLibrary("dbfs:/a.jar")], pypi_libraries=[PyPiLibrary("x")],
        cluster=DatabricksCluster(existing_cluster_id="c-1"))
    step = DatabricksStep("rc", main_class_name="M", runconfig=rc, compute_target=target)
    db = _spec(workspace, step)["steps"][0]["databricks"]
    assert db["libraries"] == [{"pypi": {"package": "x"}}, {"jar": "dbfs:/a.jar"}]
    assert db["cluster"] == {"existing_cluster_id": "c-1"}
    with pytest.raises(PipelineValidationError, match=r"Step 'b', argument 'runconfig': .*pypi_libraries.*not both"):
        DatabricksStep("b", notebook_path="/n", runconfig=rc, pypi_libraries=[], compute_target=target)
    with pytest.raises(PipelineValidationError, match=r"Step 'c', argument 'runconfig': .*num_workers.*not both"):
        DatabricksStep("c", notebook_path="/n", runconfig=rc, num_workers=1, compute_target=target)
    with pytest.raises(PipelineValidationError, match=r"Step 'd', argument 'runconfig': expected a RunConfiguration"):
        DatabricksStep("d", notebook_path="/n", runconfig={"x": 1}, num_workers=1, compute_target=target)


# ---------------------------------------------------------------------------------------------- v1 rules
NB = {"notebook_path": "/Users/me/nb"}


@pytest.mark.parametrize(("kwargs", "argument", "text"), [
    ({"num_workers": 1}, "notebook_path", "exactly one of notebook_path, python_script_path"),
    ({**NB, "python_script_path": "dbfs:/a.py", "num_workers": 1}, "python_script_path", "exactly one of"),
    ({**NB, "main_class_name": "M", "num_workers": 1}, "main_class_name", "exactly one of"),
    ({"notebook_path": 5, "num_workers": 1}, "notebook_path", "non-empty string"),
    ({"python_script_name": "job.py", "num_workers": 1}, "source_directory", "required with python_script_name"),
    ({**NB}, "num_workers", "num_workers, or min_workers and max_workers"),
    ({**NB, "min_workers": 1}, "max_workers", "num_workers, or min_workers and max_workers"),
    ({**NB, "num_workers": 1, "max_workers": 2}, "num_workers", "exactly one of num_workers"),
    ({**NB, "num_workers": True}, "num_workers", "must be an int"),
    ({**NB, "num_workers": "2"}, "num_workers", "must be an int"),
    ({**NB, "min_workers": 1.0, "max_workers": 2}, "min_workers", "must be an int"),
    ({**NB, "min_workers": 3, "max_workers": 2}, "max_workers", "between 0 and max_workers"),
    ({**NB, "num_workers": 1, "node_type": "a", "instance_pool_id": "p"}, "instance_pool_id", "not both"),
    ({**NB, "num_workers": 1, "spark_version": 13}, "spark_version", "non-empty string"),
    ({**NB, "num_workers": 1, "spark_env_variables": ["A=b"]}, "spark_env_variables", "dict"),
    ({**NB, "num_workers": 1, "spark_conf": "a=b"}, "spark_conf", "dict"),
    ({**NB, "num_workers": 1, "init_scripts": "dbfs:/x.sh"}, "init_scripts", "list of strings"),
    ({**NB, "num_workers": 1, "cluster_log_dbfs_path": 3}, "cluster_log_dbfs_path", "non-empty string"),
    ({**NB, "existing_cluster_id": 12}, "existing_cluster_id", "non-empty string"),
    ({**NB, "existing_cluster_id": "c", "num_workers": 2}, "num_workers", "existing_cluster_id excludes"),
    ({**NB, "existing_cluster_id": "c", "spark_conf": {}}, "spark_conf", "existing_cluster_id excludes"),
    ({**NB, "num_workers": 1, "permit_cluster_restart": True}, "permit_cluster_restart", "only allowed with"),
    ({**NB, "existing_cluster_id": "c", "permit_cluster_restart": "yes"}, "permit_cluster_restart", "bool"),
    ({**NB, "num_workers": 1, "timeout_seconds": "60"}, "timeout_seconds", "must be an int"),
    ({**NB, "num_workers": 1, "timeout_seconds": True}, "timeout_seconds", "must be an int"),
    ({**NB, "num_workers": 1, "run_name": 1}, "run_name", "must be a string"),
    ({**NB, "num_workers": 1, "notebook_params": ["a"]}, "notebook_params", "dict"),
    ({**NB, "num_workers": 1, "notebook_params": {"a": object()}}, "notebook_params", "value of 'a' must be"),
    ({"python_script_path": "dbfs:/a.py", "num_workers": 1, "python_script_params": "--x"}, "python_script_params",
     "expected a list"),
    ({**NB, "num_workers": 1, "pypi_libraries": [JarLibrary("x")]}, "pypi_libraries", "expected a PyPiLibrary"),
    ({**NB, "num_workers": 1, "maven_libraries": MavenLibrary("a:b:1")}, "maven_libraries", "list of libraries"),
])
def test_v1_rules_name_step_and_argument(workspace, kwargs, argument, text):
    target = _target(workspace)
    with pytest.raises(PipelineValidationError) as info:
        DatabricksStep("bad step", compute_target=target, **kwargs)
    message = str(info.value)
    assert f"Step 'bad step', argument '{argument}'" in message and text in message


def test_local_script_must_exist(workspace, src):
    target = _target(workspace)
    with pytest.raises(PipelineValidationError, match=r"Step 'x', argument 'python_script_name': script not found"):
        DatabricksStep("x", python_script_name="nope.py", source_directory=str(src), num_workers=1,
                       compute_target=target)
    with pytest.raises(PipelineValidationError, match=r"Step 'x', argument 'source_directory': folder .* not exist"):
        DatabricksStep("x", python_script_name="job.py", source_directory=str(src / "missing"), num_workers=1,
                       compute_target=target)


def test_compute_target_must_be_databricks(workspace, src):
    with pytest.raises(PipelineValidationError, match=r"Step 'n', argument 'compute_target': is required"):
        DatabricksStep("n", notebook_path="/nb", num_workers=1)
    ComputeTarget.create(workspace, "cpu", AmlCompute.provisioning_configuration())
    cpu = ComputeTarget(workspace, "cpu")
    with pytest.raises(PipelineValidationError, match=r"Step 'n', argument 'compute_target': 'cpu' is a AmlCompute"
                                                      r".*DatabricksStep runs only on a Databricks target"):
        DatabricksStep("n", notebook_path="/nb", num_workers=1, compute_target=cpu)
    # a name is looked up in the workspace when the pipeline is built
    by_name = DatabricksStep("n", notebook_path="/nb", num_workers=1, compute_target="cpu")
    with pytest.raises(PipelineValidationError, match=r"Step 'n', argument 'compute_target': 'cpu' is a AmlCompute"):
        Pipeline(workspace, steps=[by_name])
    unknown = DatabricksStep("n", notebook_path="/nb", num_workers=1, compute_target="nowhere")
    with pytest.raises(PipelineValidationError, match=r"Step 'n', argument 'compute_target': no compute target "
                                                      r"named 'nowhere'.*DatabricksCompute.attach_configuration"):
        Pipeline(workspace, steps=[unknown])
    # and the other way round: a PythonScriptStep never runs on a Databricks target
    _target(workspace)
    with pytest.raises(PipelineValidationError, match=r"Step 'py', argument 'compute_target'.*only a DatabricksStep"):
        PythonScriptStep("job.py", name="py", source_directory=str(src), compute_target=ComputeTarget(workspace,
                                                                                                     "dbx"))


# ---------------------------------------------------------------------------------------------- data location
def test_local_datastore_data_fails_for_a_real_workspace_not_for_the_emulator(workspace):
    _target(workspace, "real", emulator=False)
    _target(workspace, "emu", emulator=True)
    local_ref = DataReference(Datastore.get(workspace, "workspaceblobstore"), data_reference_name="raw",
                              path_on_datastore="raw")

    def step(target: str, inputs=None, outputs=None) -> DatabricksStep:
        return DatabricksStep("agg", notebook_path="/nb", num_workers=1, compute_target=target, inputs=inputs,
                              outputs=outputs)

    with pytest.raises(PipelineValidationError) as info:
        Pipeline(workspace, steps=[step("real", inputs=[local_ref])])
    message = str(info.value)
    assert "Step 'agg', argument 'inputs': input 'raw' is on datastore 'workspaceblobstore'" in message
    assert "cannot read this machine's folders" in message and "Azure Blob" in message
    with pytest.raises(PipelineValidationError, match=r"Step 'agg', argument 'outputs': output 'result'.*"
                                                      r"cannot read this machine's folders"):
        Pipeline(workspace, steps=[step("real", outputs=[PipelineData("result")])])
    # the emulator runs on this machine and reads local folders
    spec = _spec(workspace, step("emu", inputs=[local_ref], outputs=[PipelineData("result")]))
    assert spec["steps"][0]["compute"]["emulator"] is True
    # cloud storage is fine for a real workspace, also as the pipeline's default datastore
    blob = Datastore.register_azure_blob_container(workspace, "lake", "cont", "acct", conn_id="azure_lake")
    remote_ref = DataReference(blob, data_reference_name="raw", path_on_datastore="raw")
    spec = _spec(workspace, step("real", inputs=[remote_ref], outputs=[PipelineData("result")]),
                 default_datastore=blob)
    assert spec["steps"][0]["compute"] == {"name": "real", "type": "databricks", "queue": None,
                                           "conn_id": "mlpipe_databricks_real", "emulator": False}


# ---------------------------------------------------------------------------------------------- the token
def test_token_is_passed_to_the_connection_never_stored_shown_or_in_the_spec(workspace, monkeypatch):
    calls: list[dict] = []

    def attach_databricks(ws, name, config):
        calls.append(dict(config))
        return {"type": "Databricks", "conn_id": config.get("conn_id") or f"mlpipe_databricks_{name}",
                "resource_group": config["resource_group"], "workspace_name": config["workspace_name"],
                "resource_id": config["resource_id"], "emulator": True, "host": None,
                "access_token": config["access_token"]}  # even a careless helper's record does not get stored

    fake = types.ModuleType("airflow_mlpipe.clients.databricks_connection")
    fake.attach_databricks = attach_databricks
    monkeypatch.setitem(sys.modules, fake.__name__, fake)

    config = DatabricksCompute.attach_configuration(resource_group="rg", workspace_name="dbw", access_token=TOKEN)
    assert TOKEN not in repr(config) and TOKEN not in str(config) and TOKEN not in f"{config}"
    target = ComputeTarget.attach(workspace, "dbx", config)
    assert type(target) is DatabricksCompute
    assert calls and calls[0]["access_token"] == TOKEN and calls[0]["conn_id"] is None
    stored = workspace.store.settings_with_prefix("")
    assert stored and all(TOKEN not in str(v) for v in stored.values())
    assert json.loads(stored["compute:dbx"])["conn_id"] == "mlpipe_databricks_dbx"
    step = DatabricksStep("nb", notebook_path="/nb", num_workers=1, compute_target=target)
    spec = Pipeline(workspace, steps=[step]).to_spec("p")
    assert TOKEN not in json.dumps(spec) and TOKEN not in repr(target) and TOKEN not in repr(step)
    # other target types are created as before, without the connection helper
    ComputeTarget.attach(workspace, "cpu", AmlCompute.provisioning_configuration())
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------- v1 imports
def test_v1_import_paths():
    steps = importlib.import_module("airflow_mlpipe.compat.azureml.pipeline.steps")
    databricks = importlib.import_module("airflow_mlpipe.compat.azureml.core.databricks")
    assert steps.DatabricksStep is DatabricksStep
    assert databricks.MavenLibrary is MavenLibrary and databricks.PyPiLibrary is PyPiLibrary
    assert {"EggLibrary", "JarLibrary", "RCranLibrary"} <= set(databricks.__all__)


def test_source_directory_without_local_script_warns_once(workspace, src):
    target = _target(workspace)
    reset_no_effect_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DatabricksStep("nb", notebook_path="/nb", source_directory=str(src), num_workers=1,
                       python_script_params=["x"], compute_target=target)
    texts = [str(w.message) for w in caught if issubclass(w.category, NoEffectWarning)]
    assert any("source_directory" in t for t in texts) and any("python_script_params" in t for t in texts)
