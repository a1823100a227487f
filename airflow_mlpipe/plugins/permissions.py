"""Who may do what through the plugin API, decided by Airflow's auth manager.

- Reading (pipelines, endpoints, runs, steps, metrics): the DAG read permission (Viewer and up).
- Submitting a published pipeline or endpoint: the DAG-run create permission, as triggering in Airflow (User and up).
- Uploading code (source snapshots) or a pipeline spec: that is deploying DAG code, which Airflow reserves for
  whoever deploys DAG files. On the SimpleAuthManager (the embedded default and docker-compose) only the Admin
  role may; with any other auth manager (e.g. FAB, Keycloak) the user needs the custom-view permission
  ``MLPipe Code Deployment`` for the PUT method plus the DAG edit permission, which an administrator grants
  explicitly. (The SimpleAuthManager grants every custom view to any Viewer whatever the method, so there it
  cannot be the check.)
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

#: the custom-view resource an auth manager grants to let a user upload code or specs
CODE_DEPLOYMENT_RESOURCE = "MLPipe Code Deployment"


def may_dag(user: Any, method: str, dag_id: str | None, run: bool = False) -> bool:
    """Whether the user has the DAG (or DAG-run) permission for ``method``."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(get_auth_manager().is_authorized_dag(
        method=method, access_entity=DagAccessEntity.RUN if run else None, details=DagDetails(id=dag_id), user=user
    ))


def authorize_dag(user: Any, method: str, dag_id: str | None, run: bool = False) -> None:
    """403 unless the user has the DAG (or DAG-run) permission for ``method``."""
    if not may_dag(user, method, dag_id, run):
        what = "trigger runs of" if run and method == "POST" else "read" if method == "GET" else "change"
        raise HTTPException(403, f"Forbidden: user {user.get_name()!r} may not {what} DAG {dag_id or '(any)'}")


def may_deploy_code(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    manager = get_auth_manager()
    if isinstance(manager, SimpleAuthManager):
        return str(getattr(user, "role", "") or "").lower() == "admin"
    return bool(manager.is_authorized_custom_view(method="PUT", resource_name=CODE_DEPLOYMENT_RESOURCE, user=user)
                and manager.is_authorized_dag(method="PUT", details=DagDetails(id=None), user=user))


def authorize_code_deployment(user: Any) -> None:
    """403 unless the user may deploy code (see the module docstring)."""
    if not may_deploy_code(user):
        raise HTTPException(
            403, f"Forbidden: user {user.get_name()!r} may not upload code or pipeline specs (that deploys code "
                 f"to the workers): it needs the Admin role, or the '{CODE_DEPLOYMENT_RESOURCE}' permission with "
                 "an auth manager that grants it; triggering published pipelines needs only the DAG-run permission")
