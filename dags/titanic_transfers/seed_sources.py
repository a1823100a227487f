"""Put the example's source data where the pipeline expects it, as an existing Azure ML project would have it:
the first half of the Titanic passengers as CSV in the Blob container (``raw/``), the second half in the
PostgreSQL table ``titanic_passengers``. Run it once before the pipeline:

    python dags/titanic_transfers/seed_sources.py
"""

import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stores import titanic_stores  # noqa: E402

from airflow_mlpipe import Workspace  # noqa: E402

ws = Workspace.from_config()
blob, warehouse, _ = titanic_stores(ws)
data = HERE.parent / "titanic" / "data"
blob.upload_files([str(data / "Titanic.csv")], relative_root=str(data), target_path="raw", overwrite=True,
                  show_progress=True)
engine = sa.create_engine(warehouse.sql_url())
pd.read_csv(data / "Titanic2.csv").to_sql("titanic_passengers", engine, index=False, if_exists="replace")
engine.dispose()
print("seeded: raw/Titanic.csv in Blob container 'titanic', table titanic_passengers in PostgreSQL")
