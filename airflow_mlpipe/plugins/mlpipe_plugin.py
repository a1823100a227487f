"""AirflowPlugin: listeners that record pipeline-run outcomes in the airflow-mlpipe store."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_mlpipe.plugins.listeners import pipeline_run_listener


class MlpipePlugin(AirflowPlugin):
    name = "airflow_mlpipe"
    listeners = [pipeline_run_listener]
