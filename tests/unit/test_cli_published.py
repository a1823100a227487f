"""``mlpipe pipelines|endpoints|schedules`` in-process against a real workspace store (no Airflow needed:
everything but a successful submit is answered before Airflow is contacted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mlpipe import (
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PublishedPipeline,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
)
from airflow_mlpipe.cli import main


def _pipeline(ws, root: Path, default: int = 10) -> Pipeline:
    src = root / "src"
    src.mkdir(exist_ok=True)
    (src / "step.py").write_text("print('hi')\n")
    arg = PipelineParameter("pipeline_arg", default_value=default)
    rate = PipelineParameter("rate", default_value=0.5)
    out = PipelineData("prepared")
    prep = PythonScriptStep("step.py", name="prep", arguments=["--out", out, "--arg", arg], outputs=[out],
                            source_directory=str(src))
    train = PythonScriptStep("step.py", name="train", arguments=["--in", out, "--rate", rate], inputs=[out],
                             source_directory=str(src))
    return Pipeline(ws, [prep, train])


@pytest.fixture(autouse=True)
def _own_environment():
    """``submit`` points this process's environment at the workspace's Airflow (MLPIPE_WORKSPACE_HOME, ...), as
    ``mlpipe run`` does; a command runs once per process, so each test gets the environment back."""
    import os

    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _json(capsys, *argv: str):
    rc, out, err = _run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)  # stdout is exactly one JSON document


def test_pipelines_list_show(workspace, tmp_path, capsys):
    on = _pipeline(workspace, tmp_path).publish("cli_pipeline", description="for the CLI", version="1.0")
    off = _pipeline(workspace, tmp_path, default=3).publish("cli_off")
    off.disable()

    listed = _json(capsys, "pipelines", "list")
    assert [p["id"] for p in listed] == [on.id]
    assert listed[0] | {"created": None} == {
        "id": on.id, "name": "cli_pipeline", "version": "1.0", "status": "Active", "dag_id": on.dag_id,
        "endpoint": on.endpoint, "created": None}
    everything = _json(capsys, "pipelines", "list", "--all")
    assert {p["name"]: p["status"] for p in everything} == {"cli_pipeline": "Active", "cli_off": "Disabled"}

    rc, out, _ = _run(capsys, "pipelines", "list")
    assert rc == 0 and "DAG id" in out and on.id in out and on.dag_id in out and off.id not in out

    shown = _json(capsys, "pipelines", "show", on.id)
    assert shown["description"] == "for the CLI" and shown["graph_id"] == on.graph_id
    assert shown["parameters"] == [{"name": "pipeline_arg", "type": "int", "default": 10},
                                   {"name": "rate", "type": "float", "default": 0.5}]
    assert [(s["name"], s["depends_on"], s["parameters"]) for s in shown["steps"]] == [
        ("prep", [], ["pipeline_arg"]), ("train", ["prep"], ["rate"])]
    rc, out, _ = _run(capsys, "pipelines", "show", on.id)
    assert rc == 0 and "pipeline_arg (int, default 10)" in out and "train (PythonScriptStep" in out
    assert "after prep" in out


def test_pipelines_enable_disable_and_unknown_ids(workspace, tmp_path, capsys):
    p = _pipeline(workspace, tmp_path).publish("toggle")
    rc, out, _ = _run(capsys, "pipelines", "disable", p.id)
    assert rc == 0 and "Disabled" in out
    assert PublishedPipeline.get(workspace, p.id).status == "Disabled"
    rc, out, _ = _run(capsys, "pipelines", "enable", p.id)
    assert rc == 0 and "Active" in out
    assert PublishedPipeline.get(workspace, p.id).status == "Active"

    for argv in (["pipelines", "show", "nope"], ["pipelines", "disable", "nope"],
                 ["pipelines", "submit", "nope", "--experiment", "e"], ["endpoints", "show", "nope"],
                 ["endpoints", "set-default", "nope", "0"], ["schedules", "enable", "nope"],
                 ["pipelines", "show", "nope", "--json"]):
        rc, out, err = _run(capsys, *argv)
        assert (rc, out) == (2, ""), argv
        assert err.startswith("mlpipe: error: ") and "'nope'" in err and "not found" in err, (argv, err)


def test_submit_checks_before_contacting_airflow(workspace, tmp_path, capsys):
    """Bad parameters and a disabled pipeline fail at once with the reason; nothing is started or recorded."""
    from airflow_mlpipe.clients import local_airflow

    p = _pipeline(workspace, tmp_path).publish("checked")
    cases = [
        (["--param", "pipeline_arg=abc"], "Pipeline parameter 'pipeline_arg' expects a value of type integer"),
        (["--param", "zzz=1"], "Pipeline parameter with name 'zzz' does not exist"),
        (["--param", "novalue"], "--param expects NAME=VALUE"),
    ]
    for extra, message in cases:
        rc, out, err = _run(capsys, "pipelines", "submit", p.id, "--experiment", "e", *extra, "--json")
        assert (rc, out) == (2, "") and message in err, (extra, err)
    p.disable()
    rc, _, err = _run(capsys, "pipelines", "submit", p.id, "--experiment", "e")
    assert rc == 2 and "is Disabled" in err and f"mlpipe pipelines enable {p.id}" in err
    assert local_airflow.status(workspace) is None
    assert workspace.store.list_pipeline_runs(None, 10) == []


def test_endpoints_list_show_set_default(workspace, tmp_path, capsys):
    p0 = _pipeline(workspace, tmp_path).publish("ep_v0")
    p1 = _pipeline(workspace, tmp_path, default=5).publish("ep_v1")
    ep = PipelineEndpoint.publish(workspace, "cli_endpoint", "endpoint for the CLI", p0)
    ep.add_default(p1)

    listed = _json(capsys, "endpoints", "list")
    assert [(e["name"], e["default_version"], e["versions"]) for e in listed] == [("cli_endpoint", "1", 2)]
    by_name = _json(capsys, "endpoints", "show", "cli_endpoint")
    assert _json(capsys, "endpoints", "show", ep.id) == by_name
    assert [(v["version"], v["pipeline_id"], v["default"]) for v in by_name["versions"]] == [
        ("0", p0.id, False), ("1", p1.id, True)]

    rc, out, _ = _run(capsys, "endpoints", "set-default", "cli_endpoint", "0")
    assert rc == 0 and "default version is now 0" in out
    assert PipelineEndpoint.get(workspace, name="cli_endpoint").default_version == "0"
    rc, out, _ = _run(capsys, "endpoints", "show", "cli_endpoint")
    assert rc == 0 and p0.id in out and "ep_v1" in out

    rc, _, err = _run(capsys, "endpoints", "set-default", ep.id, "7")
    assert rc == 2 and "has no such version" in err
    assert PipelineEndpoint.get(workspace, id=ep.id).default_version == "0"
    rc, _, err = _run(capsys, "endpoints", "submit", "cli_endpoint", "--experiment", "e", "--version", "9")
    assert rc == 2 and "has no version '9'" in err
    rc, _, err = _run(capsys, "endpoints", "submit", "cli_endpoint", "--experiment", "e", "--param", "rate=x")
    assert rc == 2 and "Pipeline parameter 'rate' expects a value of type number" in err


def test_schedules_list_enable_disable(workspace, tmp_path, capsys):
    p = _pipeline(workspace, tmp_path).publish("scheduled")
    s = Schedule.create(workspace, "every-15", p.id, "sched-exp", recurrence=ScheduleRecurrence("Minute", 15))
    d = Schedule.create(workspace, "on-data", p.id, "sched-exp", datastore="workspaceblobstore",
                        path_on_datastore="incoming", polling_interval=1)

    listed = _json(capsys, "schedules", "list")
    assert [(r["id"], r["status"], r["pipeline_id"], r["experiment"]) for r in listed] == [
        (s.id, "Active", p.id, "sched-exp"), (d.id, "Active", p.id, "sched-exp")]
    assert listed[0]["trigger"] == "every 15 Minute"
    assert listed[1]["trigger"] == "on change of workspaceblobstore:incoming (polled every 1 min)"

    rc, out, _ = _run(capsys, "schedules", "disable", s.id)
    assert rc == 0 and "Disabled" in out and Schedule.get(workspace, s.id).status == "Disabled"
    assert [r["id"] for r in _json(capsys, "schedules", "list")] == [d.id]
    assert {r["id"]: r["status"] for r in _json(capsys, "schedules", "list", "--all")} == {
        s.id: "Disabled", d.id: "Active"}
    rc, out, _ = _run(capsys, "schedules", "list", "--all")
    assert rc == 0 and "every-15" in out and "Disabled" in out
    rc, out, _ = _run(capsys, "schedules", "enable", s.id)
    assert rc == 0 and Schedule.get(workspace, s.id).status == "Active"


def test_empty_lists(workspace, capsys):
    for group in ("pipelines", "endpoints", "schedules"):
        assert _json(capsys, group, "list") == []
        rc, out, _ = _run(capsys, group, "list")
        assert rc == 0 and out.startswith("no ")


@pytest.mark.parametrize(("argv", "message"), [
    (["pipelines"], "usage: mlpipe pipelines [-h] ACTION"),
    (["endpoints", "submit", "x"], "the following arguments are required: --experiment"),
    (["schedules", "list", "extra"], "unrecognized arguments: extra"),
])
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
