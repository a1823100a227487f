"""AirflowPlugin: listeners that record pipeline-run outcomes in the airflow-mlpipe store, the REST API mounted at
``/mlpipe`` in the api-server, and the ML views of the Airflow UI (``react_apps``: one bundle, five entries)."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlpipe.plugins.listeners import pipeline_run_listener

URL_PREFIX = "/mlpipe"
#: relative to the UI's base URL (the UI resolves it against ``document.baseURI``)
BUNDLE_URL = "mlpipe/static/mlpipe-ui.js"


class _LazyFastAPIApps:
    """Built on first access (only the api-server asks): other processes never import FastAPI routes."""

    _apps: list[dict[str, Any]] | None = None

    def __get__(self, obj: Any, owner: Any) -> list[dict[str, Any]]:
        if _LazyFastAPIApps._apps is None:
            from airflow_mlpipe.plugins.api import create_app

            _LazyFastAPIApps._apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "airflow-mlpipe API"}]
        return _LazyFastAPIApps._apps


def _unroutable_path_middleware(app: Any, prefix: str) -> Any:
    """Imported lazily, like the API: only the api-server builds middlewares."""
    from airflow_mlpipe.plugins.guard import UnroutablePathMiddleware

    return UnroutablePathMiddleware(app, prefix=prefix)


class MlpipePlugin(AirflowPlugin):
    name = "airflow_mlpipe"
    listeners = [pipeline_run_listener]
    fastapi_apps = _LazyFastAPIApps()
    fastapi_root_middlewares = [
        {"middleware": _unroutable_path_middleware, "args": [], "kwargs": {"prefix": URL_PREFIX},
         "name": "airflow-mlpipe unroutable paths"},
    ]
    #: one bundle serves every entry: it registers a component under each ``name`` (the UI looks it up there);
    #: the tabs' and page's ``url_route`` give the in-app paths ``…/plugin/<url_route>``
    react_apps = [
        {"name": "Pipeline", "bundle_url": BUNDLE_URL, "destination": "dag_run", "url_route": "mlpipe-pipeline"},
        {"name": "Step", "bundle_url": BUNDLE_URL, "destination": "task_instance", "url_route": "mlpipe-step"},
        {"name": "Experiment", "bundle_url": BUNDLE_URL, "destination": "dag", "url_route": "mlpipe-experiment"},
        {"name": "ML Pipelines", "bundle_url": BUNDLE_URL, "destination": "nav", "category": "browse",
         "url_route": "mlpipe"},
        {"name": "ML Pipeline runs", "bundle_url": BUNDLE_URL, "destination": "dashboard"},
    ]
