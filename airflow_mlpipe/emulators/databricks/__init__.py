"""A local Databricks workspace: the REST API the Airflow Databricks provider and our uploads call, running
notebooks, Python files and JARs for real on local PySpark (the optional extra ``databricks``).

    python -m airflow_mlpipe.emulators.databricks start --home DIR [--port N] [--token T]
    python -m airflow_mlpipe.emulators.databricks import notebook.py /Users/me/notebook --home DIR
    python -m airflow_mlpipe.emulators.databricks status|stop --home DIR

Point a ``databricks`` Airflow connection at it with ``host=127.0.0.1``, ``port=<port>``, ``schema=http`` and
any token (the one given to ``start`` when there is one). See ``daemon.py`` for the home folder's layout and
``dbutils.py`` for what notebooks get.
"""

from __future__ import annotations

from airflow_mlpipe.emulators.databricks.cli import main
from airflow_mlpipe.emulators.databricks.daemon import import_notebook, start, status, stop

__all__ = ["import_notebook", "main", "start", "status", "stop"]
