"""The step-kind registry: the one place that maps a kind named in a spec to its SDK class, operator and runtime.

The compiler picks a step's operator here, the spec check and the REST API accept exactly these kinds, the
planner asks whether a kind can be decided before anything runs, and the cache key leaves out what a kind
declares result-neutral. Adding a kind is one SDK class, one operator, one runtime module and one line in
:data:`STEP_KINDS` (see ARCHITECTURE.md).

References are ``"module:attribute"`` strings, loaded on use, as Airflow providers name their hooks and
operators: this layer stays importable without the SDK or Airflow, and the compiler loads only the operators
its spec uses.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError


@dataclass(frozen=True)
class StepKind:
    """What the rest of the code needs to know about one step kind."""

    #: the name in the spec's ``kind`` and the v1 class name (``PythonScriptStep``)
    name: str
    #: the authoring class users write
    sdk_class: str
    #: the Airflow operator the compiler instantiates for it
    operator: str
    #: ``(StepExecution) -> StepResult``: the body the operator runs inside the shared step lifecycle
    runtime: str
    #: whether the cache planner may decide it before anything runs (its key needs no remote call)
    plannable: bool = True
    #: spec fields of this kind that do not change its results, left out of the cache key
    not_in_key: tuple[str, ...] = ()


STEP_KINDS: dict[str, StepKind] = {kind.name: kind for kind in (
    StepKind("PythonScriptStep",
             sdk_class="airflow_mlpipe.sdk.steps.python_script_step:PythonScriptStep",
             operator="airflow_mlpipe.operators.python_script:PythonScriptStepOperator",
             runtime="airflow_mlpipe.runtime.step_runner:run_python_step"),
    StepKind("AutoMLStep",
             sdk_class="airflow_mlpipe.sdk.steps.automl_step:AutoMLStep",
             operator="airflow_mlpipe.operators.automl:AutoMLStepOperator",
             runtime="airflow_mlpipe.runtime.automl_runner:run_automl_step"),
    # its key needs the notebook's or script's content from the Databricks workspace: decided in its task
    StepKind("DatabricksStep",
             sdk_class="airflow_mlpipe.sdk.steps.databricks_step:DatabricksStep",
             operator="airflow_mlpipe.operators.databricks:DatabricksStepOperator",
             runtime="airflow_mlpipe.operators.databricks:run_databricks_step",
             plannable=False),
    # a SQL source is known only by reading it, and object sources are listed where the copy runs: in its task
    StepKind("DataTransferStep",
             sdk_class="airflow_mlpipe.sdk.steps.data_transfer_step:DataTransferStep",
             operator="airflow_mlpipe.operators.data_transfer:DataTransferStepOperator",
             runtime="airflow_mlpipe.runtime.transfer_runner:run_transfer_step",
             plannable=False),
)}


def step_kind(name: Any, where: str = "step") -> StepKind:
    """The registered kind, or an error naming the step and the kinds this version runs."""
    kind = STEP_KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise PipelineValidationError(f"{where}: kind {name!r} is not a step kind this airflow-mlpipe runs "
                                      f"(one of {', '.join(STEP_KINDS)})")
    return kind


def load(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
