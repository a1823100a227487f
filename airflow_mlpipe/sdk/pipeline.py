"""Pipeline: a graph of steps, validated at definition time and turned into a PipelineSpec."""

from __future__ import annotations

import os
from graphlib import CycleError, TopologicalSorter
from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError
from airflow_mlpipe.contract.spec import SPEC_VERSION, spec_hash
from airflow_mlpipe.sdk.parameters import check_unique_parameters
from airflow_mlpipe.sdk.steps.base import PipelineStep, flatten_steps


class Pipeline:
    """v1 ``Pipeline(workspace, steps, description=None, default_datastore=None, ...)``."""

    def __init__(self, workspace: Any, steps: list, description: str | None = None,
                 default_datastore: Any = None, default_source_directory: str | None = None,
                 resolve_closure: bool = True, _workflow_provider: Any = None, _service_endpoint: Any = None,
                 **kwargs: Any) -> None:
        unknown = set(kwargs) - {"enable_email_notification"}
        if unknown:
            raise ValueError(f"Pipeline: unexpected keyword argument(s) {sorted(unknown)}")
        self._workspace = workspace
        self.description = description
        self.default_datastore = default_datastore
        self.default_source_directory = default_source_directory or os.getcwd()
        listed = flatten_steps(steps)
        if not listed:
            raise PipelineValidationError("Pipeline: steps must list at least one step")
        self._steps = self._closure(listed) if resolve_closure else listed
        self._spec = self._build_spec()
        self._dag_id: str | None = None

    # ------------------------------------------------------------------ graph
    @staticmethod
    def _closure(listed: list[PipelineStep]) -> list[PipelineStep]:
        seen: dict[int, PipelineStep] = {}
        stack = list(listed)
        while stack:
            step = stack.pop(0)
            if id(step) in seen:
                continue
            seen[id(step)] = step
            stack.extend(step.upstream_steps())
        return list(seen.values())

    def _build_spec(self) -> dict[str, Any]:
        names: dict[str, PipelineStep] = {}
        task_ids: dict[str, str] = {}
        for step in self._steps:
            if step.name in names:
                raise PipelineValidationError(
                    f"Pipeline: two steps are named {step.name!r}; step names must be unique"
                )
            names[step.name] = step
        step_specs: dict[str, dict[str, Any]] = {}
        for step in self._steps:
            spec = step.to_spec(self)
            if spec["task_id"] in task_ids:
                raise PipelineValidationError(
                    f"Pipeline: steps {task_ids[spec['task_id']]!r} and {step.name!r} map to the same Airflow "
                    f"task id {spec['task_id']!r}; rename one"
                )
            task_ids[spec["task_id"]] = step.name
            deps = set(spec.pop("after"))
            for inp in spec["inputs"]:
                src = inp.get("source")
                if src:
                    if src["step"] not in names:
                        raise PipelineValidationError(
                            f"Step {step.name!r}, argument 'inputs': input {inp['name']!r} is produced by step "
                            f"{src['step']!r}, which is not in this pipeline (resolve_closure=False?)"
                        )
                    deps.add(src["step"])
            for dep in deps:
                if dep not in names:
                    raise PipelineValidationError(
                        f"Step {step.name!r}: run_after step {dep!r} is not in this pipeline"
                    )
            spec["depends_on"] = sorted(deps)
            step_specs[step.name] = spec
        try:
            order = list(TopologicalSorter({n: s["depends_on"] for n, s in step_specs.items()}).static_order())
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1]) if len(exc.args) > 1 else "?"
            raise PipelineValidationError(f"Pipeline: the steps form a cycle: {cycle}") from exc
        params = check_unique_parameters([p for s in self._steps for p in s.parameters().values()])
        outputs_seen: dict[str, str] = {}
        for spec in step_specs.values():
            for out in spec["outputs"]:
                pon = out.get("pipeline_output_name")
                if pon:
                    if pon in outputs_seen:
                        raise PipelineValidationError(f"Duplicate pipeline output with name {pon!r} "
                                                      f"(steps {outputs_seen[pon]!r} and {spec['name']!r})")
                    outputs_seen[pon] = spec["name"]
        default_ds = self.default_datastore
        return {
            "spec_version": SPEC_VERSION,
            "description": self.description,
            "workspace": self._workspace.to_ref() if self._workspace is not None else None,
            "default_datastore": (default_ds if isinstance(default_ds, str) else getattr(default_ds, "name", None)),
            "parameters": {name: {"type": p.to_spec()["type"], "default": p.to_spec()["default"]}
                           for name, p in sorted(params.items())},
            "continue_on_step_failure": False,
            "steps": [step_specs[n] for n in order],
        }

    # ------------------------------------------------------------------ public API
    @property
    def workspace(self) -> Any:
        return self._workspace

    @property
    def steps(self) -> list[PipelineStep]:
        return list(self._steps)

    @property
    def graph(self) -> dict[str, list[str]]:
        return {s["name"]: s["depends_on"] for s in self._spec["steps"]}

    def validate(self) -> list[str]:
        """Errors as strings (empty = OK); the constructor already raised for anything fatal."""
        errors: list[str] = []
        for step in self._steps:
            if step.kind == "PythonScriptStep":
                src = self._spec_step(step.name)["source_directory"]
                if not os.path.isfile(os.path.join(src, step.script_name)):
                    errors.append(f"Step {step.name!r}: script not found at: {os.path.join(src, step.script_name)}")
        return errors

    def _spec_step(self, name: str) -> dict[str, Any]:
        return next(s for s in self._spec["steps"] if s["name"] == name)

    def to_spec(self, name: str | None = None) -> dict[str, Any]:
        """The PipelineSpec (a fresh copy) under ``name`` (the DAG id it compiles to)."""
        import copy

        spec = copy.deepcopy(self._spec)
        spec["name"] = name or "pipeline"
        return spec

    def spec_hash(self) -> str:
        return spec_hash(self._spec)

    def to_dag(self, dag_id: str, schedule: Any = None, **dag_kwargs: Any):
        """Compile to an Airflow DAG, for DAG files users write (``dag = pipeline.to_dag("my_pipeline")``)."""
        from airflow_mlpipe.compiler.dag_builder import build_dag

        self._dag_id = dag_id
        return build_dag(self.to_spec(dag_id), schedule=schedule, **dag_kwargs)

    def publish(self, name: str | None = None, description: str | None = None, version: str | None = None,
                continue_on_step_failure: bool | None = None):
        """Store this pipeline immutably as a PublishedPipeline (served as a DAG and a REST endpoint)."""
        from airflow_mlpipe.sdk.published import PublishedPipeline

        return PublishedPipeline._from_pipeline(self, name=name, description=description, version=version,
                                                continue_on_step_failure=continue_on_step_failure)

    def plan(self, pipeline_parameters: dict | None = None, regenerate_outputs: bool = False) -> list:
        """Predict, before submitting, which steps will be reused and which will run, and why.

        Returns one ``Decision`` per step (``action`` is ``reuse``, ``run`` or ``pending``: decided at run
        time from its upstream outputs' content).
        """
        from airflow_mlpipe.contract.parameters import check_parameters, resolve_parameters
        from airflow_mlpipe.runtime.planner import plan_steps

        spec = self.to_spec()
        values = resolve_parameters(spec["parameters"], check_parameters(spec, pipeline_parameters))
        decisions, _ = plan_steps(self._workspace, spec["steps"], values, regenerate_outputs)
        return decisions

    def submit(self, experiment_name: str, pipeline_parameters: dict | None = None,
               continue_on_step_failure: bool = False, regenerate_outputs: bool = False,
               parent_run_id: str | None = None, credential_passthrough: Any = None, **kwargs: Any):
        """Submit as a run of ``experiment_name``; ``parent_run_id`` is recorded as run property
        ``azureml.parentrunid`` (as in v1)."""
        from airflow_mlpipe.sdk.experiment import Experiment
        from airflow_mlpipe.sdk.no_effect import warn_no_effect

        if credential_passthrough:
            warn_no_effect("Pipeline.submit", "credential_passthrough",
                           "steps read and write data with the datastores' own credentials, as the Airflow "
                           "worker, never with the submitter's identity")
        return Experiment(self._workspace, experiment_name).submit(
            self, pipeline_parameters=pipeline_parameters, continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs, tags=kwargs.get("tags"), parent_run_id=parent_run_id,
        )
