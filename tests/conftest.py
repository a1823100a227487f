"""Test setup: a private AIRFLOW_HOME before anything imports Airflow, and a throwaway workspace per test."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_AF_HOME = tempfile.mkdtemp(prefix="mlpipe_af_home_")
os.environ.setdefault("AIRFLOW_HOME", _AF_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AF_HOME}/airflow.db")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_AF_HOME, "dags"))
for _var in ("MLPIPE_WORKSPACE_HOME", "MLPIPE_WORKSPACE_CONFIG", "MLPIPE_STORE_URL", "MLPIPE_AIRFLOW_URL"):
    os.environ.pop(_var, None)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An embedded-default workspace in a fresh project folder (cwd is that folder)."""
    from airflow_mlpipe.workspace import Workspace

    monkeypatch.chdir(tmp_path)
    return Workspace.from_config()


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The Titanic data of the Azure ML walkthroughs (whole, and in two parts), shipped in the repository."""
    return REPO / "tests" / "data"


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB in the session's private AIRFLOW_HOME (for ``dag.test()``)."""
    from airflow.utils import db

    db.resetdb()
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture
def run_dag(airflow_db):
    """Run a pipeline through Airflow in-process (``dag.test()``), from a spec in the test DAGs folder."""
    from airflow_mlpipe.clients.bundle_stubs import SPECS_DIRNAME, write_stub
    from airflow_mlpipe.compiler.dag_builder import build_dag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

    def _run(pipeline, dag_id: str, conf: dict | None = None):
        import json

        write_stub(folder)
        spec = pipeline.to_spec(dag_id)
        (folder / SPECS_DIRNAME / f"{dag_id}.json").write_text(json.dumps(spec))
        return build_dag(spec).test(run_conf=conf or {})

    return _run


from tests.helpers.storage_servers import azurite, fresh_stores, moto_s3  # noqa: E402,F401 - fixtures for every test
