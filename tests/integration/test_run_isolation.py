"""Every run is its own pipeline (issue 8), through the embedded scheduler of a scratch project folder.

- different graphs submitted to one experiment get their own DAGs and never run each other's steps;
- a ``pipeline.to_dag()`` DAG file edited while a run is going fails that run loudly instead of running the new
  definition's steps;
- every run records its spec, so a run submitted any way can be published;
- published pipelines are served with nothing copied into the project;
- ``PipelineRun.cancel()`` stops the run and its running step.
"""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from airflow_mlpipe import Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace
from tests.helpers.embedded import embedded_airflow, working_directory
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.scheduler
http = httpx.Client(timeout=60)

#: a step that writes its label once a gate file exists (the test opens the gate: no fixed sleeps)
GATED = textwrap.dedent("""
    import os, sys, time
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    open(args["--started"], "w").write(str(os.getpid()))
    deadline = time.monotonic() + 300
    while not os.path.exists(args["--gate"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.makedirs(args["--out"], exist_ok=True)
    open(os.path.join(args["--out"], "label.txt"), "w").write(args["--label"])
""")
LABEL = textwrap.dedent("""
    import os, sys
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    os.makedirs(args["--out"], exist_ok=True)
    text = open(os.path.join(args["--in"], "label.txt")).read() if "--in" in args else ""
    open(os.path.join(args["--out"], "label.txt"), "w").write(text + "+" + args["--label"])
""")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A scratch project (not this repository) with an empty DAGs folder and its embedded Airflow."""
    root = tmp_path_factory.mktemp("isolation")
    (root / "dags").mkdir()
    (root / "src").mkdir()
    (root / "src" / "gated.py").write_text(GATED)
    (root / "src" / "label.py").write_text(LABEL)
    with working_directory(root):
        ws = Workspace.from_config()
        with embedded_airflow(ws, root / "dags") as info:
            yield root, ws, info


def gated_pipeline(ws: Workspace, root: Path, tag: str, gate: Path, second: str | None = None) -> Pipeline:
    """``first`` waits for ``gate``; an optional ``second`` step (name ``second``) appends its label."""
    src = str(root / "src")
    first_out = PipelineData("first_out")
    first = PythonScriptStep("gated.py", name=f"first_{tag}", source_directory=src, allow_reuse=False,
                             arguments=["--gate", str(gate), "--started", str(root / f"started_{tag}"),
                                        "--out", first_out, "--label", tag], outputs=[first_out])
    steps = [first]
    if second is not None:
        out = PipelineData("second_out")
        steps.append(PythonScriptStep("label.py", name="second", source_directory=src, allow_reuse=False,
                                      arguments=["--in", first_out, "--out", out, "--label", second],
                                      inputs=[first_out], outputs=[out]))
    return Pipeline(ws, steps)


def _output_text(run, step: str, name: str) -> str:
    step_run = run.find_step_run(step)[0]
    folder = Path(step_run.get_details()["outputDatasets"][name]["uri"].removeprefix("file://"))
    return (folder / "label.txt").read_text()


def test_two_graphs_in_one_experiment_run_concurrently_with_their_own_steps(project):
    root, ws, _ = project
    gate = root / "gate_two_graphs"
    exp = Experiment(ws, "shared-exp")
    run_a = exp.submit(gated_pipeline(ws, root, "a", gate, second="A2"))
    wait_until(lambda: (root / "started_a").exists(), "graph A's first step to start")
    run_b = exp.submit(gated_pipeline(ws, root, "b", gate, second="B2"))  # another graph, same experiment
    assert run_a.dag_id != run_b.dag_id and run_a.dag_id.startswith("shared-exp__")
    wait_until(lambda: (root / "started_b").exists(), "graph B's first step to start")
    gate.write_text("open")
    assert run_a.wait_for_completion(show_output=False, timeout_seconds=240) == "Finished"
    assert run_b.wait_for_completion(show_output=False, timeout_seconds=240) == "Finished"
    assert _output_text(run_a, "second", "second_out") == "a+A2"
    assert _output_text(run_b, "second", "second_out") == "b+B2"
    assert {s.name for s in run_a.get_steps()} == {"first_a", "second"}
    assert {s.name for s in run_b.get_steps()} == {"first_b", "second"}
    assert {r.id for r in exp.get_runs()} >= {run_a.id, run_b.id}
    # the same graph again reuses its DAG
    again = exp.submit(gated_pipeline(ws, root, "a", gate, second="A2"))
    assert again.dag_id == run_a.dag_id
    assert again.wait_for_completion(show_output=False, timeout_seconds=240) == "Finished"
    # the Airflow UI finds an experiment's DAGs by tag
    from airflow_mlpipe.clients.airflow_rest import client_for

    client = client_for(ws)
    tagged = client.request("GET", "/api/v2/dags", params={"tags": "experiment:shared-exp"}).json()["dags"]
    assert {d["dag_id"] for d in tagged} == {run_a.dag_id, run_b.dag_id}


DAG_FILE = textwrap.dedent("""
    from airflow_mlpipe import Pipeline, PipelineData, PythonScriptStep, Workspace

    SRC = {src!r}
    ws = Workspace.from_config()
    first_out, out = PipelineData("first_out"), PipelineData("second_out")
    first = PythonScriptStep("gated.py", name="first", source_directory=SRC, allow_reuse=False,
                             arguments=["--gate", {gate!r}, "--started", {started!r}, "--out", first_out,
                                        "--label", "file"], outputs=[first_out])
    second = PythonScriptStep("label.py", name="second", source_directory=SRC, allow_reuse=False,
                              arguments=["--in", first_out, "--out", out, "--label", {label!r}],
                              inputs=[first_out], outputs=[out])
    pipeline = Pipeline(ws, [first, second])
    dag = pipeline.to_dag("edited_mid_run")
""")


def test_a_dag_file_edited_mid_run_fails_the_run_loudly(project):
    from airflow_mlpipe.clients.airflow_rest import client_for
    from airflow_mlpipe.clients.submit import dag_spec_digest
    from airflow_mlpipe.contract.exceptions import ActivityFailedException
    from airflow_mlpipe.runner import load_pipeline_file

    root, ws, _ = project
    gate, started = root / "gate_edit", root / "started_edit"
    path = root / "dags" / "edited_pipeline.py"
    fmt = {"src": str(root / "src"), "gate": str(gate), "started": str(started)}
    path.write_text(DAG_FILE.format(label="v1", **fmt))
    _, pipeline = load_pipeline_file(path)
    run = Experiment(ws, "edits").submit(pipeline, dag_id=pipeline._dag_id)
    client = client_for(ws)
    first_digest = dag_spec_digest(client.get_dag_details("edited_mid_run"))
    wait_until(started.exists, "the first step to start")
    path.write_text(DAG_FILE.format(label="v2", **fmt))  # edited while the run is going
    client.wait_for_dag("edited_mid_run", predicate=lambda d: dag_spec_digest(d) not in (None, first_digest),
                        timeout=120)
    gate.write_text("open")
    with pytest.raises(ActivityFailedException) as err:
        run.wait_for_completion(show_output=False, timeout_seconds=240)
    assert run.get_status() == "Failed"
    second = run.find_step_run("second")
    detail = (ws.store.get_pipeline_run(run.id) or {}).get("error") or ""
    assert "was started with pipeline spec" in detail + str(err.value), (detail, str(err.value))
    assert not second or second[0].get_status() != "Finished"


def test_any_run_can_be_published(project):
    """SDK submission, a DAG file run with `mlpipe run`, and a run triggered over Airflow's REST API."""
    from airflow_mlpipe.clients.airflow_rest import client_for
    from airflow_mlpipe.runner import load_pipeline_file
    from airflow_mlpipe.sdk.runs import PipelineRun

    root, ws, _ = project
    gate = root / "gate_publish"
    gate.write_text("open")
    sdk_run = Experiment(ws, "pub-sdk").submit(gated_pipeline(ws, root, "p", gate))
    path = root / "dags" / "published_from_file.py"
    path.write_text(DAG_FILE.replace('"edited_mid_run"', '"from_file"').format(
        label="f", src=str(root / "src"), gate=str(gate), started=str(root / "started_file")))
    _, pipeline = load_pipeline_file(path)
    file_run = Experiment(ws, "pub-file").submit(pipeline, dag_id=pipeline._dag_id)
    client = client_for(ws)
    triggered = client.trigger("from_file", conf={}, dag_run_id="from_the_ui_1")
    for run in (sdk_run, file_run):
        assert run.wait_for_completion(show_output=False, timeout_seconds=240) == "Finished"
    wait_until(lambda: client.get_dag_run("from_file", triggered["dag_run_id"])["state"] == "success",
               "the REST-triggered run", timeout=240)
    ui_run = PipelineRun(Experiment(ws, "from_file", _skip_name_validation=True), "from_the_ui_1")
    for run, name in ((sdk_run, "from-sdk"), (file_run, "from-file"), (ui_run, "from-ui")):
        published = run.publish_pipeline(name=name, description="isolation test", version="1")
        assert published.name == name and [s["name"] for s in published.to_spec()["steps"]][-1] in (
            "first_p", "second")
    # and the published pipeline is served, with nothing copied into the project's dags folder
    assert sorted(p.name for p in (root / "dags").iterdir()) == ["edited_pipeline.py", "published_from_file.py"]
    rerun = published.submit(ws, "pub-ui-again")
    assert rerun.wait_for_completion(show_output=False, timeout_seconds=240) == "Finished"


def test_cancel_stops_the_run_and_its_running_step(project):
    import psutil

    root, ws, _ = project
    gate = root / "gate_never"  # never opened
    run = Experiment(ws, "cancel-me").submit(gated_pipeline(ws, root, "c", gate, second="never"))
    pid = int(wait_until(lambda: (root / "started_c").exists() and (root / "started_c").read_text(),
                         "the step to start"))
    assert psutil.pid_exists(pid)
    run.cancel()
    assert run.get_status() == "Canceled"
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
               "the step's script to be stopped", timeout=60)
    wait_until(lambda: run.find_step_run("first_c") and run.find_step_run("first_c")[0].get_status()
               in ("Canceled", "Failed"), "the step run to end", timeout=60)
    assert not run.find_step_run("second") or run.find_step_run("second")[0].get_status() != "Finished"
    assert not gate.exists()


def test_concurrent_submissions_of_one_experiment_from_threads(project):
    """Two different graphs submitted at the same moment both finish with their own outputs."""
    root, ws, _ = project
    gate = root / "gate_threads"
    gate.write_text("open")
    exp = Experiment(ws, "threads")
    runs: dict[str, object] = {}

    def submit(tag: str) -> None:
        runs[tag] = exp.submit(gated_pipeline(ws, root, tag, gate, second=tag.upper()))

    threads = [threading.Thread(target=submit, args=(t,)) for t in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    for tag, run in runs.items():
        assert run.wait_for_completion(show_output=False, timeout_seconds=240) == "Finished"
        assert _output_text(run, "second", "second_out") == f"{tag}+{tag.upper()}"
