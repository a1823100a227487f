"""PublishedPipeline, PipelineEndpoint, PipelineVersion (v1 ``azureml.pipeline.core``): authoring and the store.

A published pipeline is an immutable PipelineSpec stored in our store under a fresh id; its spec's ``name`` is
the DAG id (``published__<name>__<id8>``) that the workspace's published-pipelines DAG file builds for it. Submitting it
triggers that DAG through the submission service (:mod:`airflow_mlpipe.clients.submit`), like ``Experiment.submit``.
An endpoint is a named pointer to versions ``"0"``, ``"1"``, ... of published pipelines with a default version.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

from airflow_mlpipe.clients import published_entities as entities
from airflow_mlpipe.clients.published_entities import ENDPOINT_PREFIX  # noqa: F401 - its old import path
from airflow_mlpipe.clients.published_entities import rest_base_url as _base_url
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.spec import canonical_json, check_spec, spec_hash
from airflow_mlpipe.store import published_queries as q
from airflow_mlpipe.store.published_queries import ACTIVE, DISABLED

log = logging.getLogger(__name__)


DAG_PREFIX = "published__"


def dag_id_for(name: str, pipeline_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_]", "_", name or "pipeline")[:150]
    return f"{DAG_PREFIX}{slug}__{pipeline_id.replace('-', '')[:8]}"


# ---------------------------------------------------------------------------------------------- submission
def _pipeline_run(ws: Any, submitted: Any):
    """The SDK's view of a run the submission service started."""
    from airflow_mlpipe.sdk.experiment import Experiment
    from airflow_mlpipe.sdk.runs import PipelineRun

    print(f"Submitted PipelineRun {submitted.run_id}")
    return PipelineRun(Experiment(ws, submitted.experiment), submitted.run_id)


# ---------------------------------------------------------------------------------------------- PublishedPipeline
class PublishedPipeline:
    """v1 ``PublishedPipeline``: an immutable, stored pipeline with a REST endpoint and a generated DAG."""

    def __init__(self, workspace: Any, _row: dict[str, Any]) -> None:
        self._workspace = workspace
        self._row = _row

    # ------------------------------------------------------------------ creation
    @staticmethod
    def _publish_spec(workspace: Any, spec: dict[str, Any], name: str, description: str | None = None,
                      version: str | None = None, continue_on_step_failure: bool | None = None,
                      source_run_id: str | None = None) -> PublishedPipeline:
        if not isinstance(name, str) or not name.strip():
            raise UserErrorException("publish: name must be a non-empty string")
        pipeline_id = str(uuid.uuid4())
        dag_id = dag_id_for(name, pipeline_id)
        spec = json.loads(canonical_json(spec))  # a deep, JSON-clean copy
        spec.pop("experiment", None)  # a published pipeline runs in whichever experiment it is submitted to
        spec["name"] = dag_id
        if description is not None:
            spec["description"] = description
        spec["continue_on_step_failure"] = bool(continue_on_step_failure)
        check_spec(spec, f"published pipeline {name!r}")
        row = q.insert_pipeline(workspace.store, {
            "id": pipeline_id, "name": name, "description": description, "version": None if version is None
            else str(version), "status": ACTIVE, "dag_id": dag_id, "spec": spec, "spec_hash": spec_hash(spec),
            "continue_on_step_failure": bool(continue_on_step_failure), "total_run_steps": len(spec["steps"]),
            "source_run_id": source_run_id,
        })
        return PublishedPipeline(workspace, row)

    @staticmethod
    def _from_pipeline(pipeline: Any, name: str, description: str | None = None, version: str | None = None,
                       continue_on_step_failure: bool | None = None) -> PublishedPipeline:
        if pipeline.workspace is None:
            raise UserErrorException("Pipeline.publish: the pipeline has no workspace")
        return PublishedPipeline._publish_spec(pipeline.workspace, pipeline.to_spec(name), name, description,
                                               version, continue_on_step_failure)

    @staticmethod
    def _from_run(run: Any, name: str, description: str | None = None, version: str | None = None,
                  continue_on_step_failure: bool | None = None) -> PublishedPipeline:
        """The spec a PipelineRun ran: every run records it content-addressed in the store (submissions, DAG
        files run with ``mlpipe run``, runs triggered from the UI, REST or a schedule)."""
        from airflow_mlpipe.store.tables_specs import get_spec

        ws = run.experiment.workspace
        row = ws.store.get_pipeline_run(run.id) or {}
        spec = get_spec(ws.store, row.get("spec_hash"))
        if spec is None:
            pub = _published_row_for_dag(ws, row.get("dag_id"))
            if pub is None or pub["spec_hash"] != row.get("spec_hash"):
                raise UserErrorException(
                    f"publish_pipeline: run {run.id!r} has no recorded pipeline spec (it started before this "
                    "version of airflow-mlpipe recorded specs, or no step of it has started yet); publish the "
                    "Pipeline object instead (pipeline.publish(...))"
                )
            spec = pub["spec"]
        return PublishedPipeline._publish_spec(ws, spec, name, description, version, continue_on_step_failure,
                                               source_run_id=run.id)

    # ------------------------------------------------------------------ lookup
    @staticmethod
    def get(workspace: Any, id: str, _workflow_provider: Any = None, _service_endpoint: Any = None
            ) -> PublishedPipeline:
        row = q.get_pipeline(workspace.store, str(id))
        if row is None:
            raise UserErrorException(f"PublishedPipeline with id {id!r} was not found in workspace {workspace.name!r}")
        return PublishedPipeline(workspace, row)

    @staticmethod
    def list(workspace: Any, active_only: bool = True, _service_endpoint: Any = None) -> list[PublishedPipeline]:
        return [PublishedPipeline(workspace, r) for r in q.list_pipelines(workspace.store, active_only)]

    get_all = list

    def _refresh(self) -> dict[str, Any]:
        self._row = q.get_pipeline(self._workspace.store, self.id) or self._row
        return self._row

    # ------------------------------------------------------------------ properties
    @property
    def id(self) -> str:
        return self._row["id"]

    @property
    def name(self) -> str:
        return self._row["name"]

    @property
    def description(self) -> str | None:
        return self._row.get("description")

    @property
    def version(self) -> str | None:
        return self._row.get("version")

    @property
    def status(self) -> str:
        return self._refresh()["status"]

    @property
    def graph_id(self) -> str:
        return self._row["spec_hash"]

    @property
    def dag_id(self) -> str:
        return self._row["dag_id"]

    @property
    def total_run_steps(self) -> int:
        return int(self._row.get("total_run_steps") or 0)

    @property
    def continue_on_step_failure(self) -> bool:
        return bool(self._row.get("continue_on_step_failure"))

    @property
    def endpoint(self) -> str:
        return entities.pipeline_submit_url(_base_url(self._workspace), self.id)

    @property
    def parameters(self) -> dict[str, Any]:
        return {n: p.get("default") for n, p in (self._row["spec"].get("parameters") or {}).items()}

    def get_graph(self, _workflow_provider: Any = None) -> dict[str, list[str]]:
        return {s["name"]: list(s.get("depends_on", [])) for s in self._row["spec"]["steps"]}

    def get_step_names(self, _workflow_provider: Any = None) -> list[str]:
        return [s["name"] for s in self._row["spec"]["steps"]]

    def to_spec(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._row["spec"]))

    def save(self, path: str | None = None, _workflow_provider: Any = None) -> str:
        target = Path(path or f"{self.name}.json")
        target.write_text(json.dumps({"id": self.id, "name": self.name, "description": self.description,
                                      "version": self.version, "spec": self._row["spec"]}, indent=1, sort_keys=True))
        return str(target)

    # ------------------------------------------------------------------ state
    def enable(self) -> None:
        q.set_pipeline_status(self._workspace.store, self.id, ACTIVE)
        self._refresh()

    def disable(self) -> None:
        q.set_pipeline_status(self._workspace.store, self.id, DISABLED)
        self._refresh()

    # ------------------------------------------------------------------ runs
    def submit(self, workspace: Any, experiment_name: str, pipeline_parameters: dict | None = None,
               _workflow_provider: Any = None, _service_endpoint: Any = None, parent_run_id: str | None = None,
               continue_on_step_failure: bool | None = None, tags: dict | None = None):
        """Trigger a run (the generated DAG with these parameter values); returns the PipelineRun."""
        from airflow_mlpipe.clients.submit import submit_published

        ws = workspace or self._workspace
        submitted = submit_published(ws, self._refresh(), experiment_name, pipeline_parameters, tags=tags,
                                     continue_on_step_failure=continue_on_step_failure, parent_run_id=parent_run_id)
        return _pipeline_run(ws, submitted)

    def to_entity(self) -> dict[str, Any]:
        """The v1 REST entity (PascalCase keys)."""
        return entities.pipeline_entity(self._row, _base_url(self._workspace))

    def __repr__(self) -> str:
        return (f"PublishedPipeline(Name: {self.name}, Id: {self.id}, Status: {self._row['status']}, "
                f"Endpoint: {self.endpoint})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublishedPipeline) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def _published_row_for_dag(ws: Any, dag_id: str | None) -> dict[str, Any] | None:
    if not dag_id or not dag_id.startswith(DAG_PREFIX):
        return None
    for row in q.list_pipelines(ws.store, active_only=False):
        if row["dag_id"] == dag_id:
            return row
    return None


# ---------------------------------------------------------------------------------------------- endpoints
class PipelineVersion:
    """v1 ``PipelineVersion(pipeline_id, version, workspace)``."""

    def __init__(self, pipeline_id: str, version: str, workspace: Any = None) -> None:
        self.pipeline_id = pipeline_id
        self.version = str(version)
        self._workspace = workspace

    def get_pipeline(self) -> PublishedPipeline:
        return PublishedPipeline.get(self._workspace, self.pipeline_id)

    def __repr__(self) -> str:
        return f"PipelineVersion(Version: {self.version}, PipelineId: {self.pipeline_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipelineVersion) and (other.pipeline_id, other.version) == (self.pipeline_id,
                                                                                             self.version)

    def __hash__(self) -> int:
        return hash((self.pipeline_id, self.version))


def _as_published(workspace: Any, pipeline: Any, name_hint: str) -> PublishedPipeline:
    from airflow_mlpipe.sdk.pipeline import Pipeline

    if isinstance(pipeline, PublishedPipeline):
        return pipeline
    if isinstance(pipeline, Pipeline):
        return PublishedPipeline._from_pipeline(pipeline, name=name_hint)
    raise UserErrorException(
        f"PipelineEndpoint: pipeline must be a Pipeline or a PublishedPipeline, got {type(pipeline).__name__}"
    )


class PipelineEndpoint:
    """v1 ``PipelineEndpoint``: a named, versioned pointer to published pipelines with a default version."""

    def __init__(self, workspace: Any, _row: dict[str, Any]) -> None:
        self._workspace = workspace
        self._row = _row

    @staticmethod
    def publish(workspace: Any, name: str, description: str, pipeline: Any, _workflow_provider: Any = None,
                _service_endpoint: Any = None, **kwargs: Any) -> PipelineEndpoint:
        if not isinstance(name, str) or not name.strip():
            raise UserErrorException("PipelineEndpoint.publish: name must be a non-empty string")
        if q.get_endpoint(workspace.store, name=name) is not None:
            raise UserErrorException(
                f"PipelineEndpoint already exists with the given name {name!r}; use PipelineEndpoint.get(ws, "
                "name=...).add_default(pipeline) to add a version"
            )
        published = _as_published(workspace, pipeline, name)
        row = q.insert_endpoint(workspace.store, {"id": str(uuid.uuid4()), "name": name,
                                                  "description": description}, published.id)
        return PipelineEndpoint(workspace, row)

    @staticmethod
    def get(workspace: Any, id: str | None = None, name: str | None = None, _workflow_provider: Any = None,
            _service_endpoint: Any = None) -> PipelineEndpoint:
        if not id and not name:
            raise UserErrorException("PipelineEndpoint.get: give id or name")
        row = q.get_endpoint(workspace.store, endpoint_id=id, name=None if id else name)
        if row is None:
            raise UserErrorException(f"PipelineEndpoint {id or name!r} was not found in workspace {workspace.name!r}")
        return PipelineEndpoint(workspace, row)

    @staticmethod
    def list(workspace: Any, active_only: bool = True, max_results: int = 100, _workflow_provider: Any = None,
             _service_endpoint: Any = None) -> list[PipelineEndpoint]:
        rows = q.list_endpoints(workspace.store, active_only)[:max_results]
        return [PipelineEndpoint(workspace, r) for r in rows]

    get_all = list

    def _refresh(self) -> dict[str, Any]:
        self._row = q.get_endpoint(self._workspace.store, endpoint_id=self.id) or self._row
        return self._row

    # ------------------------------------------------------------------ properties
    @property
    def id(self) -> str:
        return self._row["id"]

    @property
    def name(self) -> str:
        return self._refresh()["name"]

    @property
    def description(self) -> str | None:
        return self._row.get("description")

    @property
    def status(self) -> str:
        return self._refresh()["status"]

    @property
    def default_version(self) -> str:
        return self._refresh()["default_version"]

    @property
    def endpoint(self) -> str:
        return entities.endpoint_submit_url(_base_url(self._workspace), self.id)

    @property
    def swaggerurl(self) -> str:
        return entities.swagger_url(_base_url(self._workspace))

    @property
    def pipeline_version_list(self) -> list[PipelineVersion]:
        return self.list_versions()

    # ------------------------------------------------------------------ versions
    def list_versions(self) -> list[PipelineVersion]:
        return [PipelineVersion(r["pipeline_id"], r["version"], self._workspace)
                for r in q.list_versions(self._workspace.store, self.id)]

    get_all_versions = list_versions

    def list_pipelines(self, active_only: bool = True) -> list[PublishedPipeline]:
        out = []
        for v in self.list_versions():
            p = v.get_pipeline()
            if not active_only or p.status == ACTIVE:
                out.append(p)
        return out

    get_all_pipelines = list_pipelines

    def get_default_version(self) -> str:
        return self.default_version

    def get_pipeline(self, version: str | None = None) -> PublishedPipeline:
        version = self.default_version if version is None else str(version)
        row = q.get_version(self._workspace.store, self.id, version)
        if row is None:
            raise UserErrorException(
                f"PipelineEndpoint {self.name!r} has no version {version!r} "
                f"(versions: {[v.version for v in self.list_versions()]})"
            )
        return PublishedPipeline.get(self._workspace, row["pipeline_id"])

    def add(self, pipeline: Any) -> PipelineVersion:
        """A new version (default unchanged)."""
        published = _as_published(self._workspace, pipeline, self.name)
        version = q.add_version(self._workspace.store, self.id, published.id, make_default=False)
        return PipelineVersion(published.id, version, self._workspace)

    def add_default(self, pipeline: Any) -> PipelineVersion:
        """A new version, made the default."""
        published = _as_published(self._workspace, pipeline, self.name)
        version = q.add_version(self._workspace.store, self.id, published.id, make_default=True)
        self._refresh()
        return PipelineVersion(published.id, version, self._workspace)

    def set_default_version(self, version: str) -> None:
        version = str(version)
        if q.get_version(self._workspace.store, self.id, version) is None:
            raise UserErrorException(
                f"Cannot set version {version!r} as default: PipelineEndpoint {self.name!r} has no such version. "
                "Please, use add() or add_default() to add a new version"
            )
        q.update_endpoint(self._workspace.store, self.id, default_version=version)
        self._refresh()

    def set_default(self, pipeline: Any) -> None:
        pid = pipeline.id if isinstance(pipeline, PublishedPipeline) else str(pipeline)
        for v in self.list_versions():
            if v.pipeline_id == pid:
                self.set_default_version(v.version)
                return
        raise UserErrorException(f"Published pipeline {pid!r} is not a version of PipelineEndpoint {self.name!r}")

    # ------------------------------------------------------------------ state
    def enable(self) -> None:
        q.update_endpoint(self._workspace.store, self.id, status=ACTIVE)
        self._refresh()

    def disable(self) -> None:
        q.update_endpoint(self._workspace.store, self.id, status=DISABLED)
        self._refresh()

    def archive(self) -> None:
        """As in v1: disabled and renamed to a random id, so the name can be reused."""
        q.update_endpoint(self._workspace.store, self.id, status=DISABLED, name=str(uuid.uuid4()))
        self._refresh()

    def reactivate(self, name: str) -> None:
        if q.get_endpoint(self._workspace.store, name=name) not in (None, self._row):
            raise UserErrorException(f"PipelineEndpoint name {name!r} is already in use")
        q.update_endpoint(self._workspace.store, self.id, status=ACTIVE, name=name)
        self._refresh()

    def set_name(self, name: str) -> None:
        other = q.get_endpoint(self._workspace.store, name=name)
        if other is not None and other["id"] != self.id:
            raise UserErrorException(f"PipelineEndpoint name {name!r} is already in use")
        q.update_endpoint(self._workspace.store, self.id, name=name)
        self._refresh()

    # ------------------------------------------------------------------ runs
    def _resolve(self, pipeline_version: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        row = self._refresh()
        if row["status"] != ACTIVE:
            raise UserErrorException(
                f"PipelineEndpoint {row['name']!r} is {row['status']}: Status must be Active to submit"
            )
        version = row["default_version"] if pipeline_version is None else str(pipeline_version)
        published = self.get_pipeline(version)
        return published._row, {"id": self.id, "version": version}

    def submit(self, experiment_name: str, pipeline_parameters: dict | None = None, parent_run_id: str | None = None,
               pipeline_version: str | None = None, tags: dict | None = None):
        """Run the default version (or ``pipeline_version``); returns the PipelineRun."""
        from airflow_mlpipe.clients.submit import submit_published

        prow, ep = self._resolve(pipeline_version)
        submitted = submit_published(self._workspace, prow, experiment_name, pipeline_parameters, tags=tags,
                                     endpoint=ep, parent_run_id=parent_run_id)
        return _pipeline_run(self._workspace, submitted)

    def to_entity(self) -> dict[str, Any]:
        row = self._refresh()
        return entities.endpoint_entity(row, q.list_versions(self._workspace.store, self.id),
                                        _base_url(self._workspace))

    def __repr__(self) -> str:
        return (f"PipelineEndpoint(Name: {self._row['name']}, Id: {self.id}, Status: {self._row['status']}, "
                f"DefaultVersion: {self._row['default_version']})")


# ---------------------------------------------------------------------------------------------- DAG factory
# The DAG factory is the compiler's (airflow_mlpipe.compiler.published); DAG files copied by hand into older
# set-ups' DAGs folders still do ``from airflow_mlpipe.sdk.published import build_published_dags``. The alias loads
# the compiler (and Airflow) only when such a file asks for it, never on ``import airflow_mlpipe.sdk.published``.
_FACTORY_ALIASES = {
    "build_published_dags": ("airflow_mlpipe.compiler.published", "build_published_dags"),
    "PublishedPipelineLoadError": ("airflow_mlpipe.compiler.load_errors", "PipelineLoadError"),
}


def __getattr__(name: str) -> Any:
    if name in _FACTORY_ALIASES:
        import importlib

        module, attr = _FACTORY_ALIASES[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
