"""PublishedPipeline, PipelineEndpoint, Schedule: the SDK and store, the DAG factory (no scheduler)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from airflow_mlpipe import (
    PipelineEndpoint,
    PublishedPipeline,
    Schedule,
    ScheduleRecurrence,
    TimeZone,
    UserErrorException,
)
from airflow_mlpipe.clients.submit import submit_published
from airflow_mlpipe.store import published_queries as q
from tests.helpers.pipelines import chain_pipeline

REPO = Path(__file__).resolve().parents[2]


class FakeClient:
    def __init__(self, digest_ok: bool = True) -> None:
        self.triggered: list[tuple] = []

    def wait_for_dag(self, dag_id, predicate=None, timeout=60):
        return {}

    def get_dag(self, dag_id):
        return {"is_paused": False}

    def unpause(self, dag_id):
        return {}

    def trigger(self, dag_id, conf=None, dag_run_id=None, note=None):
        self.triggered.append((dag_id, conf, dag_run_id))
        return {"dag_run_id": dag_run_id}


def test_publish_get_list_disable(workspace, tmp_path):
    p = chain_pipeline(workspace, tmp_path).publish("My_Published_Pipeline", description="desc", version="1.0")
    assert p.status == "Active" and p.name == "My_Published_Pipeline" and p.version == "1.0"
    assert p.dag_id.startswith("published__My_Published_Pipeline__")
    assert p.endpoint.endswith(f"/mlpipe/api/v1/PipelineRuns/PipelineSubmit/{p.id}")
    assert p.total_run_steps == 2 and p.get_step_names() == ["s0", "s1"]
    assert p.parameters == {"label": "x", "pipeline_arg": 10}
    same = PublishedPipeline.get(workspace, p.id)
    assert same == p and same.to_spec()["name"] == p.dag_id
    assert [x.id for x in PublishedPipeline.list(workspace)] == [p.id]
    p.disable()
    assert PublishedPipeline.get(workspace, p.id).status == "Disabled"
    assert PublishedPipeline.list(workspace) == []
    assert [x.id for x in PublishedPipeline.list(workspace, active_only=False)] == [p.id]
    with pytest.raises(UserErrorException, match="Status must be Active"):
        p.submit(workspace, "exp")
    p.enable()
    assert p.status == "Active"
    with pytest.raises(UserErrorException, match="not found"):
        PublishedPipeline.get(workspace, "nope")


def test_published_spec_is_immutable(workspace, tmp_path):
    pipeline = chain_pipeline(workspace, tmp_path)
    a = pipeline.publish("p", version="1")
    b = pipeline.publish("p", version="2")
    assert a.id != b.id and a.dag_id != b.dag_id
    spec = a.to_spec()
    spec["steps"][0]["name"] = "changed"
    assert PublishedPipeline.get(workspace, a.id).get_step_names() == ["s0", "s1"]


def test_submit_validates_and_triggers(workspace, tmp_path):
    p = chain_pipeline(workspace, tmp_path).publish("sub")
    row = q.get_pipeline(workspace.store, p.id)
    client = FakeClient()
    run_id = submit_published(workspace, row, "exp1", {"pipeline_arg": "20"}, tags={"a": "b"}, client=client).run_id
    dag_id, conf, dag_run_id = client.triggered[0]
    assert dag_id == p.dag_id and dag_run_id == run_id
    assert conf["pipeline_arg"] == 20 and "label" not in conf
    assert conf["__mlpipe"]["experiment"] == "exp1" and conf["__mlpipe"]["published_pipeline_id"] == p.id
    run = workspace.store.get_pipeline_run(run_id)
    assert run["experiment"] == "exp1" and run["parameters"] == {"pipeline_arg": 20}
    assert run["properties"]["azureml.pipelineid"] == p.id
    with pytest.raises(UserErrorException, match="'nope' does not exist"):
        submit_published(workspace, row, "exp1", {"nope": 1}, client=client)
    with pytest.raises(UserErrorException, match="expects a value of type integer"):
        submit_published(workspace, row, "exp1", {"pipeline_arg": "abc"}, client=client)
    with pytest.raises(UserErrorException, match="Experiment name"):
        submit_published(workspace, row, "bad name!", {}, client=client)
    assert len(client.triggered) == 1


def test_endpoint_versions(workspace, tmp_path):
    pipeline = chain_pipeline(workspace, tmp_path)
    p0 = pipeline.publish("v0")
    ep = PipelineEndpoint.publish(workspace, "PipelineEndpointTest", "Test description", p0)
    assert ep.default_version == "0"
    assert [(v.version, v.pipeline_id) for v in ep.list_versions()] == [("0", p0.id)]
    with pytest.raises(UserErrorException, match="already exists"):
        PipelineEndpoint.publish(workspace, "PipelineEndpointTest", "again", p0)
    p1 = pipeline.publish("v1")
    v1 = ep.add(p1)
    assert v1.version == "1" and ep.default_version == "0"
    v2 = ep.add_default(pipeline)  # a Pipeline is published first
    assert v2.version == "2" and ep.default_version == "2"
    assert ep.get_pipeline().id == v2.pipeline_id and ep.get_pipeline("1") == p1
    ep.set_default_version("1")
    assert PipelineEndpoint.get(workspace, name="PipelineEndpointTest").default_version == "1"
    with pytest.raises(UserErrorException, match="Cannot set version '7'"):
        ep.set_default_version("7")
    with pytest.raises(UserErrorException, match="no version '9'"):
        ep.get_pipeline("9")
    assert PipelineEndpoint.get(workspace, id=ep.id).name == "PipelineEndpointTest"
    assert [e.id for e in PipelineEndpoint.list(workspace)] == [ep.id]
    ep.disable()
    with pytest.raises(UserErrorException, match="Status must be Active"):
        ep.submit("exp")
    ep.enable()
    ep.archive()
    assert ep.status == "Disabled" and ep.name != "PipelineEndpointTest"
    PipelineEndpoint.publish(workspace, "PipelineEndpointTest", "reused name", p0)  # the name is free again


def test_publish_pipeline_from_run(workspace, tmp_path):
    """``PipelineRun.publish_pipeline``: the spec the run ran, from the store (content-addressed), even after
    the DAG's spec file was replaced by a later submission."""
    from airflow_mlpipe.clients.submit import publish_spec
    from airflow_mlpipe.contract.exceptions import UserErrorException
    from airflow_mlpipe.sdk.experiment import Experiment
    from airflow_mlpipe.sdk.runs import PipelineRun
    from airflow_mlpipe.store.tables_specs import save_spec

    pipeline = chain_pipeline(workspace, tmp_path)
    spec = pipeline.to_spec("exp_a")
    _, digest = publish_spec(workspace, spec)
    save_spec(workspace.store, spec, digest)
    workspace.store.upsert_pipeline_run("r1", experiment="exp_a", dag_id="exp_a", spec_hash=digest)
    publish_spec(workspace, chain_pipeline(workspace, tmp_path, n_steps=3).to_spec("exp_a"))  # the DAG moves on
    p = PipelineRun(Experiment(workspace, "exp_a"), "r1").publish_pipeline("from_run", "d", "1.0")
    assert p.get_step_names() == ["s0", "s1"] and p.version == "1.0"
    workspace.store.upsert_pipeline_run("r2", experiment="exp_a", dag_id="exp_a", spec_hash="f" * 64)
    with pytest.raises(UserErrorException, match="no recorded pipeline spec"):
        PipelineRun(Experiment(workspace, "exp_a"), "r2").publish_pipeline("nope")


def test_recurrence_to_cron():
    assert ScheduleRecurrence("Minute", 15).to_cron() == "*/15 * * * *"
    assert ScheduleRecurrence("Hour", 2, start_time="2024-01-01T00:30:00").to_cron() == "30 */2 * * *"
    assert ScheduleRecurrence("Day", 1, hours=[1, 13], minutes=[5]).to_cron() == "5 1,13 * * *"
    assert ScheduleRecurrence("Day", 1, time_of_day="07:45").to_cron() == "45 7 * * *"
    rec = ScheduleRecurrence("Week", 1, week_days=["Monday", "Friday"], time_of_day="08:00",
                             time_zone=TimeZone.PacificStandardTime)
    assert rec.to_cron() == "0 8 * * mon,fri"
    assert ScheduleRecurrence("Month", 1, start_time=datetime(2024, 1, 3, 4, 5)).to_cron() == "5 4 3 * *"
    assert ScheduleRecurrence("Minute", 7).to_cron().total_seconds() == 420
    with pytest.raises(UserErrorException, match="frequency"):
        ScheduleRecurrence("Year", 1)
    with pytest.raises(UserErrorException, match="naive"):
        from datetime import UTC

        ScheduleRecurrence("Day", 1, start_time=datetime.now(UTC))
    with pytest.raises(UserErrorException, match="time_of_day"):
        ScheduleRecurrence("Day", 1, time_of_day="25:00")


def test_schedule_create_list_disable(workspace, tmp_path):
    p = chain_pipeline(workspace, tmp_path).publish("sched")
    s = Schedule.create(workspace, "every-15", p.id, "sched-exp",
                        recurrence=ScheduleRecurrence("Minute", 15))
    assert s.status == "Active" and s.recurrence.to_cron() == "*/15 * * * *"
    assert [x.id for x in Schedule.list(workspace, pipeline_id=p.id)] == [s.id]
    s.disable()
    assert Schedule.get(workspace, s.id).status == "Disabled" and Schedule.list(workspace) == []
    s.enable()
    with pytest.raises(UserErrorException, match="exactly one"):
        Schedule.create(workspace, "x", p.id, "e")
    with pytest.raises(UserErrorException, match="does not exist"):
        Schedule.create(workspace, "x", p.id, "e", recurrence=ScheduleRecurrence("Day", 1),
                        pipeline_parameters={"zzz": 1})
    d = Schedule.create(workspace, "on-data", p.id, "sched-exp", datastore="workspaceblobstore",
                        path_on_datastore="incoming", polling_interval=1)
    assert d.datastore_name == "workspaceblobstore" and d.polling_interval == 1


def test_factory_builds_schedules_and_isolates_bad_specs(workspace, tmp_path):
    from airflow.timetables.trigger import CronTriggerTimetable

    good = chain_pipeline(workspace, tmp_path).publish("good")
    bad = chain_pipeline(workspace, tmp_path).publish("bad")
    disabled = chain_pipeline(workspace, tmp_path).publish("disabled")
    disabled.disable()
    Schedule.create(workspace, "hourly", good.id, "e", recurrence=ScheduleRecurrence("Hour", 1))
    data = Schedule.create(workspace, "files", good.id, "e", datastore="workspaceblobstore",
                           path_on_datastore="in")
    from sqlalchemy import update

    from airflow_mlpipe.store.tables_published import published_pipelines as t

    with workspace.store.begin() as conn:  # an incompatible spec, as if written by a future version
        conn.execute(update(t).where(t.c.id == bad.id).values(spec={**bad.to_spec(), "spec_version": 99}))
    from airflow_mlpipe.compiler.load_errors import FACTORY_ERRORS
    from airflow_mlpipe.compiler.published import build_published_dags
    from airflow_mlpipe.contract.schedule_rules import watcher_dag_id

    dags = build_published_dags(workspace)
    assert set(dags) == {good.dag_id, watcher_dag_id({"id": data.id})}
    errors = FACTORY_ERRORS["published"]
    assert bad.id in errors and "spec_version 99" in errors[bad.id]
    dag = dags[good.dag_id]
    assert dag.params["pipeline_arg"] == 10
    assert isinstance(dag.timetable.timetable if hasattr(dag.timetable, "timetable") else dag.timetable,
                      CronTriggerTimetable)


def test_factory_file_in_dagbag(workspace, tmp_path, monkeypatch):
    """The generated DAG file through Airflow's DagBag: good pipelines load, a bad one is an import error naming
    it."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MLPIPE_WORKSPACE_HOME", str(workspace.home))
    good = chain_pipeline(workspace, tmp_path).publish("good")
    bad = chain_pipeline(workspace, tmp_path).publish("broken")
    from sqlalchemy import update

    from airflow_mlpipe.store.tables_published import published_pipelines as t

    spec = bad.to_spec()
    spec["steps"][0]["kind"] = "NoSuchStep"
    with workspace.store.begin() as conn:
        conn.execute(update(t).where(t.c.id == bad.id).values(spec=spec))
    from airflow_mlpipe.clients.bundle_stubs import PUBLISHED_STUB_NAME, write_stub

    folder = workspace.airflow_home / "submitted"
    write_stub(folder)  # what `mlpipe airflow start` writes into the workspace's submitted-pipelines bundle
    bag = DagBag(dag_folder=str(folder))
    assert good.dag_id in bag.dag_ids and bad.dag_id not in bag.dag_ids
    assert PUBLISHED_STUB_NAME not in "".join(bag.import_errors)  # its good DAGs stay schedulable
    errors = "\n".join(bag.import_errors.values())
    assert "broken" in errors and bad.id in errors and "NoSuchStep" in errors
    assert "good" not in errors.replace("broken", "")


def test_factory_builds_200_pipelines(workspace, tmp_path):
    """200 published pipelines of 10 steps all become DAGs (benchmarks/bench_factory_parse.py times it)."""
    pipeline = chain_pipeline(workspace, tmp_path, n_steps=10)
    spec = pipeline.to_spec("x")
    for i in range(200):
        PublishedPipeline._publish_spec(workspace, spec, f"bench_{i}")
    from airflow_mlpipe.compiler.published import build_published_dags

    dags = build_published_dags(workspace)
    assert len(dags) == 200 and sum(len(d.tasks) for d in dags.values()) >= 2000


def test_a_hand_copied_factory_defines_nothing_once_the_bundle_serves(workspace, tmp_path):
    """Older set-ups copied the factory into the DAGs folder; with the bundle's file present it steps aside, so no
    DAG is defined twice."""
    from airflow_mlpipe.clients.bundle_stubs import write_stub

    good = chain_pipeline(workspace, tmp_path).publish("good")
    from airflow_mlpipe.compiler.published import build_published_dags

    assert good.dag_id in build_published_dags(workspace)
    write_stub(workspace.airflow_home / "submitted")
    assert build_published_dags(workspace) == {}
    assert good.dag_id in build_published_dags(workspace, served_by_bundle=True)
