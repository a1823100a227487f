"""Run.get_context() in a real step-script process, the offline run, metrics I/O and the azureml compat package.

Scripts run in subprocesses exactly as an operator starts them: the compat directory on PYTHONPATH, the run
context and metrics files named by environment variables (airflow_mlpipe/contract/run_context.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_mlpipe.contract import metrics_io
from airflow_mlpipe.contract import run_context as contract
from airflow_mlpipe.contract.exceptions import RunEnvironmentException, UserErrorException
from airflow_mlpipe.sdk import run as run_mod
from airflow_mlpipe.sdk.run import Run, _OfflineRun

REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "airflow_mlpipe" / "compat"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPIPE_", "AZUREML_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(COMPAT), str(REPO)])
    env.update(extra)
    return env


def _run_script(folder: Path, code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = folder / "script.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=folder, capture_output=True, text=True, timeout=180
    )
    return proc


def _step_env(tmp_path: Path, ws, ctx_extra: dict) -> tuple[dict[str, str], Path]:
    ctx = {
        "run_id": "pr1_train",
        "pipeline_run_id": "pr1",
        "step_name": "train",
        "experiment": "exp1",
        "workspace": ws.to_ref(),
        "input_datasets": {},
        "output_datasets": {},
        "parameters": {"lr": 0.1},
        **ctx_extra,
    }
    ctx_file = tmp_path / "ctx.json"
    ctx_file.write_text(json.dumps(ctx))
    metrics_file = tmp_path / "metrics.jsonl"
    env = _env(**{contract.ENV_RUN_CONTEXT: str(ctx_file), contract.ENV_METRICS_FILE: str(metrics_file)})
    return env, metrics_file


STEP_SCRIPT = """
from azureml.core import Run
from azureml.core.run import Run as Run2

run = Run.get_context()
assert run is Run.get_context() and Run2 is Run
run.log('acc', 0.9)
run.log('acc', 0.95)
run.log_list('l', [1, 2])
run.log_row('r', a=1, b=2)
run.log_table('t', {'x': [1, 2]})
run.tag('team', 'ml')
print('EXP', run.experiment.name, run.id, run.type)
print('WS', run.experiment.workspace.name)
print('PARENT', run.parent.id)
print('RAW', run.input_datasets['raw'])
print('OUT', run.output_datasets['model'])
print('HAS', 'raw' in run.input_datasets, sorted(run.input_datasets))
try:
    run.input_datasets['nope']
except KeyError as exc:
    print('KEYERROR', exc)
try:
    run.log('bad', [1, 2])
except Exception as exc:
    print('LOGLIST', type(exc).__name__, exc)
print('METRICS', __import__('json').dumps(run.get_metrics(), sort_keys=True))
"""


def test_step_script_logs_to_metrics_file_and_store_gives_v1_shapes(tmp_path, workspace):
    ws = workspace
    ws.store.upsert_pipeline_run("pr1", experiment="exp1", dag_id="d1")
    out_dir = tmp_path / "out_model"
    env, metrics_file = _step_env(
        tmp_path,
        ws,
        {
            "input_datasets": {"raw": {"mode": "download", "path": "/data/raw"}},
            "output_datasets": {"model": str(out_dir)},
        },
    )
    proc = _run_script(tmp_path, STEP_SCRIPT, env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "EXP exp1 pr1_train azureml.StepRun" in lines
    assert f"WS {ws.name}" in lines
    assert "PARENT pr1" in lines
    assert "RAW /data/raw" in lines
    assert f"OUT {out_dir}" in lines
    assert "HAS True ['raw']" in lines
    keyerror = next(line for line in lines if line.startswith("KEYERROR"))
    assert "'nope'" in keyerror and "'raw'" in keyerror
    loglist = next(line for line in lines if line.startswith("LOGLIST"))
    assert "UserErrorException" in loglist and "log_list" in loglist
    in_script = json.loads(next(line for line in lines if line.startswith("METRICS"))[len("METRICS ") :])
    assert in_script == {"acc": [0.9, 0.95], "l": [1, 2], "r": {"a": [1], "b": [2]}, "t": {"x": [1, 2]}}

    records = metrics_io.read_records(metrics_file)
    assert [(r["name"], r["kind"], r["value"]) for r in records] == [
        ("acc", "scalar", 0.9),
        ("acc", "scalar", 0.95),
        ("l", "list", [1, 2]),
        ("r", "row", {"a": 1, "b": 2}),
        ("t", "table", {"x": [1, 2]}),
        ("team", "tag", "ml"),
    ]
    assert all(set(r) == {"name", "kind", "value", "step", "description"} for r in records)

    split = metrics_io.split_records(records)
    assert split.tags == {"team": "ml"} and split.status is None
    ws.store.add_metrics("pr1_train", "pr1", split.metrics)
    from airflow_mlpipe.sdk.experiment import Experiment

    stored = Run(Experiment(ws, "exp1"), "pr1_train")
    assert stored.get_metrics() == {
        "acc": [0.9, 0.95],
        "l": [1, 2],
        "r": {"a": [1], "b": [2]},
        "t": {"x": [1, 2]},
    }
    assert stored.get_metrics("acc") == {"acc": [0.9, 0.95]}
    assert stored.get_metrics(recursive=True) == {"pr1_train": stored.get_metrics()}


def test_direct_mode_input_is_a_dataset_object(tmp_path, workspace):
    from airflow_mlpipe.sdk.dataset import Dataset

    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    Dataset.Tabular.from_delimited_files(path=str(csv)).register(workspace, "tab")
    definition = workspace.store.get_dataset("tab")["definition"]
    env, _ = _step_env(
        tmp_path, workspace, {"input_datasets": {"tab": {"mode": "direct", "dataset": definition}}}
    )
    code = """
        from azureml.core import Run
        ds = Run.get_context().input_datasets['tab']
        print('DS', type(ds).__name__, len(ds.to_pandas_dataframe()))
    """
    proc = _run_script(tmp_path, code, env)
    assert proc.returncode == 0, proc.stderr
    assert "DS TabularDataset 2" in proc.stdout.splitlines()


def test_fail_and_status_records_reach_the_operator(tmp_path, workspace):
    env, metrics_file = _step_env(tmp_path, workspace, {})
    code = """
        from azureml.core import Run
        run = Run.get_context()
        run.add_properties({'k': 'v'})
        run.fail(error_details='bad data')
        print('STATUS', run.get_status())
    """
    proc = _run_script(tmp_path, code, env)
    assert proc.returncode == 0, proc.stderr
    assert "STATUS Failed" in proc.stdout
    split = metrics_io.split_records(metrics_io.read_records(metrics_file))
    assert split.metrics == [] and split.properties == {"k": "v"}
    assert split.status == "Failed" and split.error == "bad data"


OFFLINE_SCRIPT = """
from azureml.core import Run
from azureml.core.run import _OfflineRun
from azureml.exceptions import RunEnvironmentException

run = Run.get_context()
print('ID', run.id, isinstance(run, _OfflineRun))
run.log('acc', 0.9)
run.log_list('l', [1, 2])
run.tag('k', 'v')
print('CHILD', run.child_run('c').id == run.id + '.c')
print('HASEXP', hasattr(run, 'experiment'))
try:
    run.input_datasets
except AttributeError as exc:
    print('ATTR', exc)
try:
    Run.get_context(allow_offline=False)
except RunEnvironmentException as exc:
    print('RAISED', type(exc).__name__)
with run:
    pass
run.complete()
"""


def test_offline_run_prints(tmp_path):
    proc = _run_script(tmp_path, OFFLINE_SCRIPT, _env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("ID OfflineRun_") and line.endswith("True") for line in lines)
    assert "Attempted to log scalar metric acc: 0.9" in lines
    assert "Attempted to log list metric l: [1, 2]" in lines
    assert "CHILD True" in lines
    assert "HASEXP False" in lines
    attr = next(line for line in lines if line.startswith("ATTR"))
    assert "offline run" in attr and "outside a pipeline step" in attr
    assert "RAISED RunEnvironmentException" in lines


def test_importing_azureml_core_is_cheap(tmp_path):
    code = (
        f"import sys; sys.path.insert(0, {str(COMPAT)!r}); import azureml.core; from azureml.core import Run; "
        "print('pandas' in sys.modules, 'pyarrow' in sys.modules, 'airflow' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False False"


def test_compat_package_is_not_top_level_and_names_unsupported():
    assert importlib.util.find_spec("azureml") is None, (
        "the compat package must only be on a step's PYTHONPATH"
    )
    core = importlib.import_module("airflow_mlpipe.compat.azureml.core")
    assert core.Run is Run
    assert importlib.import_module("airflow_mlpipe.compat.azureml.core.run")._OfflineRun is _OfflineRun
    with pytest.raises(ImportError, match="not supported by airflow-mlpipe"):
        core.Webservice  # noqa: B018
    exc_mod = importlib.import_module("airflow_mlpipe.compat.azureml.exceptions")
    assert exc_mod.UserErrorException is UserErrorException
    assert "Run" in dir(core)


def test_offline_run_in_process(monkeypatch, capsys):
    monkeypatch.delenv(contract.ENV_RUN_CONTEXT, raising=False)
    monkeypatch.setattr(run_mod, "_CONTEXT_CACHE", {})
    run = Run.get_context()
    assert isinstance(run, _OfflineRun) and run.id.startswith("OfflineRun_")
    with pytest.raises(UserErrorException, match="log_list"):
        run.log("acc", [1, 2])
    with pytest.raises(UserErrorException, match="log_list"):
        run.log("acc", range(3))
    run.log("acc", 0.9)
    assert "Attempted to log scalar metric acc: 0.9" in capsys.readouterr().out
    with pytest.raises(AttributeError, match="offline run"):
        run.experiment  # noqa: B018
    with pytest.raises(AttributeError, match="offline run"):
        run.parent  # noqa: B018
    with pytest.raises(RunEnvironmentException):
        Run.get_context(allow_offline=False)


def test_store_run_logging_validation_and_files(tmp_path, workspace):
    import numpy as np

    from airflow_mlpipe.sdk.experiment import Experiment

    run = Run(Experiment(workspace, "exp2"), "plain_run")
    run.log("n", np.float64(0.5))
    run.log("n", 0.75)
    run.log_list("arr", np.arange(3))
    run.log("s", 1, step=0)
    run.log("s", 2, step=1)
    with pytest.raises(UserErrorException, match="step"):
        run.log("s", 3)
    with pytest.raises(UserErrorException, match="step"):
        run.log("n", 1.0, step=2)
    with pytest.raises(UserErrorException, match="log_list"):
        run.log("bad", (x for x in range(2)))
    with pytest.raises(UserErrorException, match="differ in length"):
        run.log_table("t", {"a": [1, 2], "b": [1]})
    with pytest.raises(UserErrorException):
        run.log_confusion_matrix("cm", "not json")
    run.log_confusion_matrix("cm", {"schema_type": "confusion_matrix", "data": {"matrix": [[1, 0], [0, 1]]}})
    metrics = run.get_metrics()
    assert metrics["n"] == [0.5, 0.75] and metrics["arr"] == [0, 1, 2] and metrics["s"] == [1, 2]
    assert metrics["cm"]["data"]["matrix"] == [[1, 0], [0, 1]]
    assert run.parent is None

    src = tmp_path / "model.txt"
    src.write_text("weights")
    target = run.upload_file("outputs/model.txt", str(src))
    assert Path(target) == workspace.home / "runs" / "plain_run" / "outputs" / "model.txt"
    image = tmp_path / "plot.png"
    image.write_bytes(b"\x89PNG")
    run.log_image("roc", path=str(image))
    assert Path(run.get_metrics("roc")["roc"]).is_file()
    assert "outputs/model.txt" in run.get_file_names()
    dest = run.download_file("outputs/model.txt", str(tmp_path / "copy.txt"))
    assert Path(dest).read_text() == "weights"
    with pytest.raises(UserErrorException, match="no file"):
        run.download_file("missing.txt")
    with pytest.raises(UserErrorException):
        run.upload_file("../escape.txt", str(src))

    details = run.get_details()
    assert details["runId"] == "plain_run" and details["target"] == "local"
    assert {"status", "properties", "inputDatasets", "outputDatasets"} <= set(details)
    run.tag("k")
    assert run.get_tags() == {"k": ""}
    run.add_properties({"p": 1})
    with pytest.raises(UserErrorException, match="cannot be changed"):
        run.add_properties({"p": 2})
    with run:
        pass
    assert run.status == "Completed"


def test_tags_of_a_stored_pipeline_run_are_persisted(workspace):
    from airflow_mlpipe.sdk.experiment import Experiment

    workspace.store.upsert_pipeline_run("pr9", experiment="exp9", dag_id="d9")
    Run(Experiment(workspace, "exp9"), "pr9").tag("owner", "me")
    assert workspace.store.get_pipeline_run("pr9")["tags"] == {"owner": "me"}
    assert Run(Experiment(workspace, "exp9"), "pr9").tags == {"owner": "me"}


def test_metrics_file_tolerates_truncated_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    metrics_io.append_record(path, metrics_io.make_record("a", "scalar", 1))
    metrics_io.append_record(path, metrics_io.make_record("a", "scalar", 2, step=1))
    with open(path, "a") as fh:
        fh.write('{"name": "a", "kind": "sca')
    records = metrics_io.read_records(path)
    assert [r["value"] for r in records] == [1, 2]
    assert metrics_io.fold_metrics(records) == {"a": [1, 2]}
    assert metrics_io.read_records(tmp_path / "missing.jsonl") == []
