"""One compiler, one error report: broken submitted specs and broken published pipelines are named in ONE
Airflow import error of the bundle, and every other pipeline stays schedulable and triggerable; the DAG files
that older versions generated or users copied by hand still load; the SDK and the stub writer load no Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import update

from airflow_mlpipe.clients.bundle_stubs import (
    ERRORS_STUB_NAME,
    PUBLISHED_STUB_NAME,
    SPECS_DIRNAME,
    SUBMITTED_STUB,
    write_stub,
)
from airflow_mlpipe.store.tables_published import published_pipelines
from tests.helpers.pipelines import chain_pipeline

#: the published-pipelines file the bundle got before issue 10, and the factory file older set-ups copied by hand
OLD_PUBLISHED_STUB = '''"""airflow-mlpipe: DAGs of published pipelines, endpoints and schedules (generated; from the store)."""
from airflow_mlpipe.sdk.published import build_published_dags
from airflow_mlpipe.workspace import Workspace

build_published_dags(Workspace.from_config(), served_by_bundle=True)
'''
HAND_COPIED_FACTORY = '''"""Airflow DAG factory for airflow-mlpipe published pipelines (copied into the DAGs folder)."""

from airflow_mlpipe.sdk.published import build_published_dags
from airflow_mlpipe.workspace import Workspace

build_published_dags(Workspace.from_config())
'''


def _break(workspace, published) -> None:
    spec = published.to_spec()
    spec["steps"][0]["kind"] = "NoSuchStep"
    t = published_pipelines
    with workspace.store.begin() as conn:
        conn.execute(update(t).where(t.c.id == published.id).values(spec=spec))


def _bundle_with_broken_pipelines(workspace, tmp_path):
    """A bundle serving a good and a broken submitted spec, and a good and a broken published pipeline."""
    folder = workspace.airflow_home / "submitted"
    write_stub(folder)
    pipeline = chain_pipeline(workspace, tmp_path)
    (folder / SPECS_DIRNAME / "sub_good.json").write_text(json.dumps(pipeline.to_spec("sub_good")))
    bad_spec = pipeline.to_spec("sub_broken")
    bad_spec["steps"][1]["kind"] = "NoSuchStep"
    (folder / SPECS_DIRNAME / "sub_broken.json").write_text(json.dumps(bad_spec))
    good = pipeline.publish("pub_good")
    bad = chain_pipeline(workspace, tmp_path).publish("pub_broken")
    _break(workspace, bad)
    return folder, good, bad


def test_broken_pipelines_are_one_import_error_and_the_others_stay_schedulable(workspace, tmp_path, monkeypatch,
                                                                               airflow_db):
    """Through the DagBag and Airflow's own DB sync (what the DAG processor does): Airflow 3 marks every DAG of a
    file with an import error stale and untriggerable, so the error must not come from the factory files."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    monkeypatch.setenv("MLPIPE_WORKSPACE_HOME", str(workspace.home))
    folder, good, bad = _bundle_with_broken_pipelines(workspace, tmp_path)
    bundle = f"mlpipe-test-{tmp_path.name}"
    with create_session() as session:
        session.add(DagBundleModel(name=bundle))

    bag = DagBag(dag_folder=str(folder), bundle_path=folder, bundle_name=bundle)
    assert {"sub_good", good.dag_id} <= set(bag.dag_ids)
    assert "sub_broken" not in bag.dag_ids and bad.dag_id not in bag.dag_ids
    assert list(bag.import_errors) == [ERRORS_STUB_NAME]  # one report, not one per factory file
    report = bag.import_errors[ERRORS_STUB_NAME]
    assert "sub_broken.json" in report and "pub_broken" in report and bad.id in report
    assert "NoSuchStep" in report and "pub_good" not in report and "sub_good" not in report

    sync_bag_to_db(bag, bundle, None)
    with create_session() as session:
        rows = {m.dag_id: m for m in session.query(DagModel).filter(DagModel.bundle_name == bundle)}
        assert {d: (rows[d].is_stale, rows[d].has_import_errors) for d in ("sub_good", good.dag_id)} == {
            "sub_good": (False, False), good.dag_id: (False, False)}


def test_a_bundle_without_broken_pipelines_reports_nothing(workspace, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MLPIPE_WORKSPACE_HOME", str(workspace.home))
    folder = workspace.airflow_home / "submitted"
    write_stub(folder)
    good = chain_pipeline(workspace, tmp_path).publish("pub_good")
    bag = DagBag(dag_folder=str(folder))
    assert good.dag_id in bag.dag_ids and bag.import_errors == {}
    assert sorted(p.name for p in folder.glob("*.py")) == sorted([SUBMITTED_STUB, PUBLISHED_STUB_NAME,
                                                                  ERRORS_STUB_NAME])


def test_dag_files_of_older_versions_still_load(workspace, tmp_path, monkeypatch):
    """A bundle file not yet rewritten by ``mlpipe airflow start``, and a factory file copied by hand into a DAGs
    folder, import the factory from ``airflow_mlpipe.sdk.published``."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MLPIPE_WORKSPACE_HOME", str(workspace.home))
    good = chain_pipeline(workspace, tmp_path).publish("pub_good")
    copied = tmp_path / "dags"
    copied.mkdir()
    (copied / "published_pipelines.py").write_text(HAND_COPIED_FACTORY)
    bag = DagBag(dag_folder=str(copied))
    assert good.dag_id in bag.dag_ids and bag.import_errors == {}

    old_bundle = tmp_path / "old_bundle"
    old_bundle.mkdir()
    (old_bundle / PUBLISHED_STUB_NAME).write_text(OLD_PUBLISHED_STUB)
    bag = DagBag(dag_folder=str(old_bundle))
    assert good.dag_id in bag.dag_ids and bag.import_errors == {}


def test_old_write_stub_path_of_docker_compose_init_writes_the_current_files(tmp_path):
    from airflow_mlpipe.compiler.factory import write_stub as old_path_write_stub

    old_path_write_stub(tmp_path / "bundle")
    text = (tmp_path / "bundle" / PUBLISHED_STUB_NAME).read_text()
    assert "airflow_mlpipe.compiler.published import build_published_dags" in text
    assert (tmp_path / "bundle" / ERRORS_STUB_NAME).is_file()


def test_sdk_schedules_and_stub_writer_load_no_airflow(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import airflow_mlpipe.sdk.published as published
        from airflow_mlpipe.clients.bundle_stubs import write_stub
        from airflow_mlpipe.sdk.schedule import ScheduleRecurrence, TimeZone

        write_stub(__import__("pathlib").Path({str(tmp_path / "b")!r}))
        rec = ScheduleRecurrence("Week", 1, week_days=["Monday", "Friday"], time_of_day="7:30",
                                 time_zone=TimeZone.WEuropeStandardTime)
        assert rec.to_cron() == "30 7 * * mon,fri", rec.to_cron()
        assert callable(published.PublishedPipeline.get)
        loaded = sorted(m for m in sys.modules if m == "airflow" or m.startswith(("airflow.", "airflow_mlpipe.compiler")))
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
