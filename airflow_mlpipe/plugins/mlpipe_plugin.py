"""AirflowPlugin: listeners that record pipeline-run outcomes in the airflow-mlpipe store, the REST API mounted at
``/mlpipe`` in the api-server, and the "ML Pipelines" page in the UI navigation."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlpipe.plugins.listeners import pipeline_run_listener

URL_PREFIX = "/mlpipe"


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
    external_views = [
        {"name": "ML Pipelines", "href": f"{URL_PREFIX}/ui", "destination": "nav", "category": "browse",
         "url_route": "mlpipe"},
    ]
