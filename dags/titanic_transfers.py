"""Titanic with DataTransferSteps: copy a Blob folder to the workspace's datastore, export a PostgreSQL query to
Parquet, train on both halves, and load the scores back into a PostgreSQL table.

The datastores are registered the v1 way (``titanic_transfers/stores.py``: the local Azurite and PostgreSQL by
default). Seed the sources once with ``python dags/titanic_transfers/seed_sources.py``, then run it with
``mlpipe run dags/titanic_transfers.py``; the scheduler picks this file up as the DAG ``titanic_transfers``.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "titanic_transfers"))

from stores import titanic_stores  # noqa: E402

from airflow_mlpipe import (  # noqa: E402
    ComputeTarget,
    ComputeTargetException,
    DataFactoryCompute,
    DataReference,
    DataTransferStep,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    SqlDataReference,
    Workspace,
)

ws = Workspace.from_config()
blob_store, pg_store, default_store = titanic_stores(ws)

try:
    data_factory = ComputeTarget(workspace=ws, name="adf")
except ComputeTargetException:
    data_factory = ComputeTarget.create(ws, "adf", DataFactoryCompute.provisioning_configuration())

blob_to_local = DataTransferStep(
    name="blob_to_local",
    source_data_reference=DataReference(datastore=blob_store, data_reference_name="blob_raw",
                                        path_on_datastore="raw"),
    destination_data_reference=DataReference(datastore=default_store, data_reference_name="landed_raw",
                                             path_on_datastore="titanic/landed/raw"),
    compute_target=data_factory,
    source_reference_type="directory",
)
pg_to_parquet = DataTransferStep(
    name="pg_to_parquet",
    source_data_reference=SqlDataReference(pg_store, "passengers",
                                           sql_query='SELECT * FROM titanic_passengers ORDER BY "PassengerId"'),
    destination_data_reference=DataReference(datastore=default_store, data_reference_name="landed_pg",
                                             path_on_datastore="titanic/landed/passengers.parquet"),
    compute_target=data_factory,
)
# both outputs are named _data_transfer_output, as in v1: bind them under names of their own
blob_part = blob_to_local.get_output().as_input("blob_part")
pg_part = pg_to_parquet.get_output().as_input("pg_part")
scores = PipelineData("scores", datastore=default_store)
train = PythonScriptStep(
    name="train",
    script_name="train.py",
    arguments=["--blob_part", blob_part, "--pg_part", pg_part, "--scores", scores],
    inputs=[blob_part, pg_part],
    outputs=[scores],
    source_directory=str(HERE / "titanic_transfers" / "train"),
)
scores_to_pg = DataTransferStep(
    name="scores_to_pg",
    source_data_reference=scores,
    destination_data_reference=SqlDataReference(pg_store, "scores_table", sql_table="titanic_scores"),
    compute_target=data_factory,
    sql_write_mode="replace",
)

pipeline = Pipeline(workspace=ws, steps=[scores_to_pg])
dag = pipeline.to_dag("titanic_transfers")
