"""The Titanic transfers example run the way a user runs it, in a project holding a copy of the repo's dags/:
seed the sources (``python dags/titanic_transfers/seed_sources.py``), then ``mlpipe run
dags/titanic_transfers.py``. Azurite stands in for Azure Blob, the machine's PostgreSQL for Azure Database for
PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlpipe import Datastore, Experiment, Workspace
from airflow_mlpipe.clients import local_airflow
from tests.helpers.embedded import working_directory
from tests.helpers.secrets import files_holding

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "titanic_transfers"
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(600)]


def _user_env(azurite) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TITANIC_"))}
    env["TITANIC_BLOB_ENDPOINT"] = azurite.host
    return env


def _run(root: Path, env: dict[str, str], *args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def ran(tmp_path_factory, azurite):
    root = tmp_path_factory.mktemp("transfer_example")
    shutil.copytree(REPO / "dags", root / "dags")
    env = _user_env(azurite)
    engine = sa.create_engine(PG_URL)
    with working_directory(root):
        ws = Workspace.from_config()
        try:
            seeded = _run(root, env, "dags/titanic_transfers/seed_sources.py")
            assert seeded.returncode == 0, seeded.stdout[-3000:] + seeded.stderr[-3000:]
            proc = _run(root, env, "-m", "airflow_mlpipe.cli", "run", "dags/titanic_transfers.py")
            run = next(iter(Experiment(ws, DAG_ID).get_runs()), None)
            yield root, ws, proc, run, engine
        finally:
            stopped = _run(root, env, "-m", "airflow_mlpipe.cli", "airflow", "stop", timeout=180)
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            assert local_airflow.status(ws) is None
            with engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE IF EXISTS titanic_scores"))
                conn.execute(sa.text("DROP TABLE IF EXISTS titanic_passengers"))
            engine.dispose()


def test_every_step_finishes(ran):
    _, _, proc, run, _ = ran
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert run is not None and run.get_status() == "Finished"
    for step in ("blob_to_local", "pg_to_parquet", "train", "scores_to_pg"):
        assert run.find_step_run(step)[0].get_status() == "Finished", step


def test_the_halves_landed_and_the_scores_are_in_postgres(ran):
    root, ws, _, run, engine = ran
    store = Datastore(ws, "workspaceblobstore")
    landed = Path(store.full_path("titanic/landed/raw/Titanic.csv"))
    assert landed.read_bytes() == (REPO / "dags" / "titanic" / "data" / "Titanic.csv").read_bytes()
    exported = pd.read_parquet(store.full_path("titanic/landed/passengers.parquet"))
    assert exported["PassengerId"].tolist() == pd.read_csv(
        REPO / "dags" / "titanic" / "data" / "Titanic2.csv")["PassengerId"].tolist()
    scores = pd.read_sql("SELECT * FROM titanic_scores ORDER BY passenger_id", engine)
    assert len(scores) == 891 and scores["passenger_id"].tolist() == list(range(1, 892))
    assert scores["survival_probability"].between(0, 1).all()
    assert ws.store.get_metrics(f"{run.id}.train")["rows"] == 891


def test_no_secret_reached_the_workspace(ran):
    root, ws, *_ = ran
    from tests.helpers.storage_servers import AZURITE_KEY

    assert files_holding(root / ".mlpipe", AZURITE_KEY) == []
