"""Experiment: a name grouping pipeline runs (each run is an Airflow DAG run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException


class Experiment:
    """v1 ``Experiment(workspace, name)``; get-or-created on construction."""

    def __init__(self, workspace: Any, name: str, _skip_name_validation: bool = False, **kwargs: Any) -> None:
        if not _skip_name_validation:
            from airflow_mlpipe.clients.submit import check_experiment_name

            check_experiment_name(name)
        self.workspace = workspace
        self.name = name
        self.tags: dict[str, str] = {}
        workspace.store.ensure_experiment(name)

    @property
    def id(self) -> str:
        return self.name

    def submit(self, config: Any, tags: dict[str, str] | None = None, **kwargs: Any):
        """Submit a Pipeline (``pipeline_parameters``, ``regenerate_outputs``, ``continue_on_step_failure``,
        ``parent_run_id``); returns its PipelineRun without waiting.

        ``dag_id`` (not in v1): a DAG file in Airflow's DAGs folder already defines this pipeline
        (``pipeline.to_dag(dag_id)``); the run is pinned to the spec that DAG serves when it is triggered.
        """
        from airflow_mlpipe.sdk.pipeline import Pipeline

        if "pipeline_params" in kwargs and "pipeline_parameters" not in kwargs:
            kwargs["pipeline_parameters"] = kwargs.pop("pipeline_params")
        if isinstance(config, Pipeline):
            from airflow_mlpipe.clients.submit import submit_spec
            from airflow_mlpipe.sdk.runs import PipelineRun

            dag_id = kwargs.get("dag_id")
            submitted = submit_spec(
                self.workspace, config.to_spec(dag_id or ""), self.name,
                kwargs.get("pipeline_parameters"), dag_id=dag_id,
                regenerate_outputs=bool(kwargs.get("regenerate_outputs", False)),
                continue_on_step_failure=bool(kwargs.get("continue_on_step_failure", False)),
                tags=tags, parent_run_id=kwargs.get("parent_run_id"),
            )
            run = PipelineRun(self, submitted.run_id)
            print(f"Submitted PipelineRun {submitted.run_id}")
            if run.ui_url:
                print(f"Link to Airflow UI: {run.ui_url}")
            return run
        raise UserErrorException(
            f"Experiment.submit: cannot submit a {type(config).__name__}; submit a Pipeline"
        )

    def get_runs(self, type: str | None = None, tags: Any = None, properties: Any = None,
                 include_children: bool = False) -> Iterator[Any]:
        """Pipeline runs of this experiment, newest first; ``tags`` filters by key or key/value dict."""
        from airflow_mlpipe.sdk.runs import PipelineRun

        for row in self.workspace.store.list_pipeline_runs(self.name, limit=10_000):
            run_tags = row.get("tags") or {}
            if isinstance(tags, str) and tags not in run_tags:
                continue
            if isinstance(tags, dict) and any(run_tags.get(k) != v for k, v in tags.items()):
                continue
            run = PipelineRun(self, row["run_id"])
            yield run
            if include_children:
                yield from run.get_children()

    @staticmethod
    def list(workspace: Any, experiment_name: str | None = None, **_: Any) -> list[Experiment]:
        names = workspace.store.list_experiments()
        return [Experiment(workspace, n) for n in names if experiment_name in (None, n)]

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"
