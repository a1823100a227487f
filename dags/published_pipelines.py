"""Airflow DAG factory for airflow-mlpipe published pipelines: one DAG per Active published pipeline (and per
pipeline that is a version of an Active PipelineEndpoint), built from the specs stored in the workspace's store,
with the schedules (cron / Asset triggers) of ``Schedule.create``.

A spec that cannot be built is reported as this file's import error naming that pipeline; every other DAG keeps
loading. The workspace is ``Workspace.from_config()`` (``MLPIPE_WORKSPACE_HOME`` is set for Airflow components).
"""

from airflow_mlpipe.sdk.published import build_published_dags
from airflow_mlpipe.workspace import Workspace

build_published_dags(Workspace.from_config())
