"""The UI's views shaped from real store rows (issue 14): steps that computed, were reused or ran without reuse
(executed through the real step lifecycle), logged tables and images, an AutoML leaderboard from a real FLAML
run, published entries, run summaries; and the previews' reading of ports (Parquet, CSV, TSV) inside their
folders only."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlpipe import (
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
)
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.plugins import ui_api, ui_ports
from airflow_mlpipe.plugins import ui_views as views
from airflow_mlpipe.runtime.step_runner import StagedOutputs, StepExecution, StepWork, execute_step


# ---------------------------------------------------------------------------------------------- a real step
def _spec(workspace: Any, tmp_path: Path, allow_reuse: bool = True) -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text("print('train')\n")
    out = PipelineData("scores")
    step = PythonScriptStep("train.py", name="train", source_directory=str(src), outputs=[out],
                            arguments=["--alpha", PipelineParameter("alpha", default_value=1), "--out", out],
                            allow_reuse=allow_reuse)
    return Pipeline(workspace, steps=[step]).to_spec("ui_views")


def _body(ex: StepExecution, workdir: Path, upstream: dict, manifest: dict[str, str], work: StepWork) -> None:
    """Writes a CSV and logs what the UI shows: a scalar twice, a list, rows, a table and an image."""
    work.outputs = StagedOutputs(ex, workdir)
    folder = Path(work.outputs.local_paths()["scores"])
    folder.mkdir(parents=True)
    (folder / "scores.csv").write_text(f"name,score\na,{ex.parameter_values['alpha']}\nb,0.5\n")
    ex.workspace.store.add_metrics(ex.step_run_id, ex.pipeline_run_id, [
        {"name": "loss", "kind": "scalar", "value": 0.9}, {"name": "loss", "kind": "scalar", "value": 0.4},
        {"name": "nan", "kind": "scalar", "value": math.nan},
        {"name": "curve", "kind": "list", "value": [1, 2, 3]},
        {"name": "per_class", "kind": "row", "value": {"cls": "a", "f1": 0.8}},
        {"name": "per_class", "kind": "row", "value": {"cls": "b", "f1": 0.6, "support": 3}},
        {"name": "confusion", "kind": "table", "value": {"x": [1, 2], "y": [3, 4]}},
        {"name": "chart", "kind": "image", "value": str(ex.workspace.home / "runs" / ex.step_run_id / "c.png")},
    ])


def _run(workspace: Any, spec: dict[str, Any], run: str, alpha: int) -> dict[str, Any]:
    ex = StepExecution(workspace=workspace, pipeline_run_id=run, experiment="exp", dag_id="ui_views",
                       step=spec["steps"][0], pipeline={}, parameter_values={"alpha": alpha},
                       upstream=lambda task, output: None, log=logging.getLogger("test"))
    execute_step(ex, _body)
    return workspace.store.get_step_run(f"{run}.train")


def _facts(workspace: Any, row: dict[str, Any]) -> views.StepFacts:
    """What the routes gather for a step (the real gathering of ``ui_api``)."""
    return ui_api._gather(workspace, views.StepFacts(row["task_id"], row), components=True)


def test_computed_then_reused_then_computed_after_a_parameter_change(workspace, tmp_path):
    spec = _spec(workspace, tmp_path)
    first = _facts(workspace, _run(workspace, spec, "run-1", 1))
    view = views.step_view(first)
    assert view["Status"] == "Finished" and view["Reused"] is False and view["ReusedFrom"] is None
    assert view["Cache"]["Decision"] == "computed"
    assert view["MissReasons"] == ["no earlier successful run of this step"]
    assert view["CacheReason"] == "computed: no earlier successful run of this step"
    assert view["Cache"]["Key"].startswith("blake3:") and view["Cache"]["Components"]["params"] == {"alpha": 1}
    assert set(view["Cache"]["Components"]["source"]) == {"train.py"}
    assert view["DurationSeconds"] is not None and view["DurationSeconds"] >= 0
    (out,) = view["Outputs"]
    assert out["Name"] == "scores" and out["Files"] == 1 and out["ContentHash"] and out["Tabular"] is True

    second = _facts(workspace, _run(workspace, spec, "run-2", 1))
    view = views.step_view(second)
    assert view["Reused"] is True and view["Cache"]["Decision"] == "reused" and view["MissReasons"] == []
    assert view["ReusedFrom"] == {"PipelineRunId": "run-1", "DagId": "ui_views", "DagRunId": "run-1",
                                  "TaskId": "train", "StepRunId": "run-1.train"}
    assert view["CacheReason"] == (f"cache key {views.short_key(view['Cache']['Key'])} matched the outputs of "
                                   "run run-1")
    assert view["Metrics"]["loss"] == 0.4  # a reused step reports the metrics of the run that produced it
    assert view["Cache"]["Components"]["params"] == {"alpha": 1}

    third = views.step_view(_facts(workspace, _run(workspace, spec, "run-3", 2)))
    assert third["Cache"]["Decision"] == "computed" and third["MissReasons"] == ["parameter 'alpha' 1 -> 2"]
    assert third["CacheReason"] == "computed: parameter 'alpha' 1 -> 2"


def test_a_step_without_reuse_says_so(workspace, tmp_path):
    view = views.step_view(_facts(workspace, _run(workspace, _spec(workspace, tmp_path, allow_reuse=False),
                                                  "run-1", 1)))
    assert view["Cache"]["Decision"] == "no-reuse" and view["MissReasons"] == ["allow_reuse=False"]
    assert view["CacheReason"] == "computed without reuse (allow_reuse=False)"


def test_a_step_that_has_not_started_is_pending(workspace):
    facts = views.StepFacts("train", None, {"task_id": "train", "state": "queued"}, {"name": "train",
                                                                                    "kind": "PythonScriptStep"})
    view = views.step_view(facts)
    assert view["Status"] == "Queued" and view["Cache"]["Decision"] == "pending" and view["CacheReason"] is None
    assert view["Name"] == "train" and view["Kind"] == "PythonScriptStep" and view["Inputs"] == []


def test_metrics_tables_and_images(workspace, tmp_path):
    facts = _facts(workspace, _run(workspace, _spec(workspace, tmp_path), "run-1", 7))
    view = views.step_view(facts)
    assert view["Metrics"] == {"loss": 0.4, "nan": None, "curve": [1, 2, 3]}  # last value; NaN is no JSON
    assert view["Tables"] == [
        {"Name": "per_class", "Columns": ["cls", "f1", "support"], "Rows": [["a", 0.8, None], ["b", 0.6, 3]]},
        {"Name": "confusion", "Columns": ["x", "y"], "Rows": [[1, 3], [2, 4]]},
    ]
    image_id = next(r["id"] for r in facts.metric_rows if r["kind"] == "image")
    assert view["Images"] == [{"Name": "chart", "Url": f"mlpipe/api/v1/ui/images/{image_id}"}]
    assert views.numeric_metrics(facts.metric_rows, "train/") == {"train/loss": 0.4}


def test_pipeline_experiment_and_summary_views(workspace, tmp_path):
    spec = _spec(workspace, tmp_path)
    _run(workspace, spec, "run-1", 1)
    _run(workspace, spec, "run-2", 1)
    store = workspace.store
    store.upsert_pipeline_run("run-2", parameters={"alpha": 1})
    store.add_metrics("run-2", "run-2", [{"name": "auc", "kind": "scalar", "value": 0.75}])
    run = store.get_pipeline_run_by_dag_run("ui_views", "run-2")
    steps = [views.step_summary(_facts(workspace, r)) for r in store.list_step_runs("run-2")]
    view = views.pipeline_view(run, "Finished", steps, store.list_metric_rows(["run-2"]))
    assert view["Run"] == {"Id": "run-2", "DagId": "ui_views", "DagRunId": "run-2", "Experiment": "exp",
                           "Status": "Finished", "CreationTime": view["Run"]["CreationTime"], "EndTime": None,
                           "Parameters": {"alpha": 1}}
    assert view["Run"]["CreationTime"].endswith("Z") and view["Metrics"] == {"auc": 0.75}
    assert [s["Reused"] for s in view["Steps"]] == [True]

    entry = views.experiment_run(run, "Finished", store.list_metric_rows(["run-2"]),
                                 {"train": store.list_metric_rows(["run-1.train"])})
    assert entry["Metrics"] == {"auc": 0.75, "train/loss": 0.4} and entry["DagRunId"] == "run-2"

    rows = [(store.get_pipeline_run(r), "Finished", store.list_step_runs(r)) for r in ("run-2", "run-1")]
    summary = views.summary_view(rows)
    assert [r["ReusedSteps"] for r in summary["Runs"]] == [1, 0]
    assert (summary["StepsTotal"], summary["StepsReused"], summary["ReusedShare"]) == (2, 1, 0.5)
    assert views.summary_view([])["ReusedShare"] is None
    assert [r["run_id"] for r in store.list_pipeline_runs(dag_id="ui_views", limit=1, offset=1)] == ["run-1"]


# ---------------------------------------------------------------------------------------------- AutoML
def test_leaderboard_and_best_so_far_from_a_real_flaml_run(workspace):
    from airflow_mlpipe.runtime.automl_engine import train

    store = workspace.get_default_datastore()
    folder = Path(store.full_path("automl"))
    folder.mkdir(parents=True)
    rows = ["x1,x2,label"] + [f"{i % 7},{(i * 3) % 11},{int(i % 7 > 3)}" for i in range(80)]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    definition = {"type": "tabular", "transforms": [], "source": {
        "format": "delimited", "options": {}, "paths": [{"datastore": store.name, "path": "automl/train.csv"}]}}
    settings = {"task": "classification", "primary_metric": "accuracy", "label_column_name": "label",
                "iterations": 4, "experiment_timeout_minutes": 0.5, "n_cross_validations": 2,
                "learners": ["rf", "extra_tree"]}
    job = {"settings": settings, "data": {"training_data": definition}, "outputs": {},
           "workdir": str(workspace.home)}
    summary = train(job, workspace, log=lambda msg: None)

    board = summary["leaderboard"]
    assert board["primary_metric"] == "accuracy" and board["lower_is_better"] is False
    assert len(board["rows"]) == summary["iterations"] >= 2
    details = {"automl": {"leaderboard": board, "best_iteration": summary["best_iteration"]}}
    shown = views.leaderboard(details)
    assert shown["PrimaryMetric"] == "accuracy" and shown["BestIteration"] == summary["best_iteration"]
    assert [r["Iteration"] for r in shown["Rows"]] == [r["iteration"] for r in board["rows"]]
    assert {r["Model"] for r in shown["Rows"]} <= {"rf", "extra_tree"}
    assert all(r["TrainingSeconds"] >= 0 for r in shown["Rows"])
    metric, points = views.best_so_far(details)
    scores = [p["Score"] for p in points]
    assert metric == "accuracy" and scores == sorted(scores) and scores[-1] == pytest.approx(summary["best_score"])
    assert views.leaderboard({}) is None and views.experiment_curves("r", {"s": {}}) == []
    curve = views.best_so_far({"automl": {"leaderboard": {
        "primary_metric": "normalized_root_mean_squared_error", "lower_is_better": True,
        "rows": [{"iteration": 0, "score": 0.5}, {"iteration": 1, "score": 0.7}, {"iteration": 2, "score": 0.2},
                 {"iteration": 3, "score": None}]}}})
    assert curve[1] == [{"Iteration": 0, "Score": 0.5}, {"Iteration": 1, "Score": 0.5},
                        {"Iteration": 2, "Score": 0.2}]


# ---------------------------------------------------------------------------------------------- published
def test_published_entries(workspace, tmp_path):
    spec_pipeline = Pipeline(workspace, steps=[PythonScriptStep(
        "train.py", name="train", source_directory=str(_source(tmp_path)),
        arguments=["--alpha", PipelineParameter("alpha", default_value=0.5)])])
    p0 = spec_pipeline.publish("ui_pipeline", version="1.0")
    p1 = spec_pipeline.publish("ui_pipeline_2")
    endpoint = PipelineEndpoint.publish(workspace, "ui_endpoint", "", p0)
    endpoint.add(p1)
    daily = Schedule.create(workspace, "daily", p0.id, "exp", recurrence=ScheduleRecurrence(
        "Day", 1, time_of_day="06:30", time_zone="W. Europe Standard Time"))
    catalog = ui_api._Catalog(workspace.store)

    entry = views.pipeline_entry(catalog.pipelines[p0.id], True, False)
    assert entry == {"Id": p0.id, "Name": "ui_pipeline", "Version": "1.0", "Status": "Active",
                     "DagId": p0.dag_id, "Description": None, "TotalRunSteps": 1,
                     "Parameters": [{"Name": "alpha", "Type": "float", "Default": 0.5}],
                     "CanSubmit": True, "CanManage": False}
    shown = views.endpoint_entry(catalog.endpoints[endpoint.id], catalog.versions[endpoint.id], catalog.pipelines,
                                 True, True)
    assert shown["DefaultVersion"] == "0" and shown["Versions"] == [
        {"Version": "0", "PipelineId": p0.id, "PipelineName": "ui_pipeline", "DagId": p0.dag_id},
        {"Version": "1", "PipelineId": p1.id, "PipelineName": "ui_pipeline_2", "DagId": p1.dag_id}]
    assert catalog.endpoint_dag(catalog.endpoints[endpoint.id]) == p0.dag_id
    row = ui_api.q.get_schedule(workspace.store, daily.id)
    assert catalog.schedule_dag(row) == p0.dag_id
    assert views.schedule_entry(row, p0.dag_id, None, False) == {
        "Id": daily.id, "Name": "daily", "Status": "Active", "PipelineId": p0.id, "EndpointId": None,
        "DagId": p0.dag_id, "Recurrence": "every 1 Day at 06:30 (W. Europe Standard Time)", "NextRun": None,
        "CanManage": False}
    assert views.recurrence_text({"recurrence": {"frequency": "Week", "interval": 1, "week_days": ["Monday"],
                                                 "hours": [8, 17], "minutes": [0]}}) == \
        "every 1 Week on Monday at 08:00, 17:00"
    assert views.recurrence_text({"datastore_name": "blob", "path_on_datastore": "in/", "polling_interval": 0.5}) \
        == "when files under blob:/in change (checked every 0.5 min)"


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "published_src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text("print('train')\n")
    return src


# ---------------------------------------------------------------------------------------------- previews
def _output(workspace: Any, path: str) -> dict[str, Any]:
    return {"datastore": "workspaceblobstore", "path": path, "format": "files",
            "uri": f"file:///{path}", "size": 1, "files": 1}


def test_previews_of_parquet_csv_and_tsv_outputs(workspace):
    root = Path(workspace.get_default_datastore().full_path(""))
    (root / "pq").mkdir(parents=True)
    pq.write_table(pa.table({"a": list(range(150)), "b": [f"r{i}" for i in range(150)]}), root / "pq" / "p1.parquet")
    pq.write_table(pa.table({"b": ["x"], "a": [999]}), root / "pq" / "p2.parquet")
    (root / "pq" / "_SUCCESS").write_text("")
    (root / "csv").mkdir()
    (root / "csv" / "data.csv").write_text("x,y\n1,2.5\n3,\n")
    (root / "tsv").mkdir()
    (root / "tsv" / "data.tsv").write_text("x\ty\n1\t2\n")
    (root / "txt").mkdir()
    (root / "txt" / "v.txt").write_text("20")

    source = ui_ports.table_source(workspace, ui_ports.output_port(_output(workspace, "pq")).source)
    assert source["format"] == "parquet"
    preview = ui_ports.preview(workspace, source, "pq", 100)
    assert preview["Columns"] == ["a", "b"] and len(preview["Rows"]) == 100 and preview["TotalRows"] == 151
    assert preview["Rows"][0] == [0, "r0"]
    assert ui_ports.preview(workspace, source, "pq", 3)["Rows"] == [[0, "r0"], [1, "r1"], [2, "r2"]]

    csv = ui_ports.table_source(workspace, ui_ports.output_port(_output(workspace, "csv")).source)
    assert ui_ports.preview(workspace, csv, "csv", 20) == {"Columns": ["x", "y"], "Rows": [[1, 2.5], [3, None]],
                                                          "TotalRows": None}
    tsv = ui_ports.table_source(workspace, ui_ports.output_port(_output(workspace, "tsv")).source)
    assert ui_ports.preview(workspace, tsv, "tsv", 20)["Rows"] == [[1, 2]]
    declared = {**_output(workspace, "tsv"), "format": "delimited"}  # parse_delimited_files on TSV files
    assert ui_ports.preview(workspace, ui_ports.table_source(workspace, ui_ports.output_port(declared).source), "tsv",
                           20)["Rows"] == [[1, 2]]
    assert ui_ports.table_source(workspace, ui_ports.output_port(_output(workspace, "txt")).source) is None
    assert ui_ports.output_port({"datastore": "x", "path": "t", "format": "sql_table"}).source is None


def test_inputs_from_a_registered_dataset_and_a_data_reference(workspace):
    from airflow_mlpipe import Dataset

    store = workspace.get_default_datastore()
    root = Path(store.full_path(""))
    (root / "in").mkdir(parents=True)
    (root / "in" / "data.csv").write_text("a;b\n1;x\n")
    dataset = Dataset.Tabular.from_delimited_files([(store, "in/data.csv")], separator=";").register(workspace, "ds")
    port = ui_ports.input_port(workspace, {"kind": "dataset", "dataset_id": dataset.id, "name": "ds", "version": 1})
    assert port.uri.endswith("/in/data.csv")
    assert ui_ports.preview(workspace, ui_ports.table_source(workspace, port.source), "ds", 5)["Rows"] == [[1, "x"]]
    ref = ui_ports.input_port(workspace, {"kind": "data_reference", "datastore": store.name, "path": "in"})
    assert ui_ports.port_ref(workspace, "raw", ref) == {"Name": "raw", "Uri": store.uri("in"), "Size": None,
                                                  "Files": None, "ContentHash": None, "Tabular": True}


def test_a_preview_never_reads_outside_its_port(workspace, tmp_path):
    root = Path(workspace.get_default_datastore().full_path(""))
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    (root / "out").mkdir(parents=True)
    os.symlink(secret, root / "out" / "data.csv")
    source = ui_ports.table_source(workspace, ui_ports.output_port(_output(workspace, "out")).source)
    with pytest.raises(UserErrorException, match="leads outside the port's folder"):
        ui_ports.preview(workspace, source, "out", 10)
    escaping = {"format": "delimited", "options": {}, "paths": [{"datastore": "workspaceblobstore",
                                                                 "path": "../../secret.csv"}]}
    with pytest.raises(UserErrorException, match="must not contain '..'"):
        ui_ports.preview(workspace, escaping, "out", 10)


def test_a_step_waiting_for_another_run_names_that_run_until_it_ends():
    waiting = {"key": "blake3:k", "step_run": "pr-1.shared", "since": "2026-11-30T09:00:00Z",
               "task": {"dag_id": "d", "run_id": "pr-1", "task_id": "shared", "map_index": -1, "try_number": 1},
               "description": "step run pr-1.shared (Airflow run pr-1 of DAG d, task shared)"}
    row = {"step_run_id": "pr-2.shared", "task_id": "shared", "step_name": "shared", "status": "Running",
           "details": {"waiting_for": waiting}}
    summary = views.step_summary(views.StepFacts("shared", row))
    assert summary["WaitingFor"] == {"StepRunId": "pr-1.shared", "DagId": "d", "DagRunId": "pr-1",
                                     "TaskId": "shared", "Since": "2026-11-30T09:00:00Z",
                                     "Description": waiting["description"]}
    assert views.step_summary(views.StepFacts("shared", {**row, "status": "Finished"}))["WaitingFor"] is None
