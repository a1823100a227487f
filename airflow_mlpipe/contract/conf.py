"""What a submission writes into ``dag_run.conf`` and what tasks read back, and the fixed task/XCom names.

``conf = {<parameter name>: <value>, ..., "__mlpipe": {"run_id", "experiment", "spec_hash", ...}}``. Anyone who
may trigger a DAG can write ``conf``, so readers check it (:func:`read_meta`).
"""

from __future__ import annotations

from typing import Any

from airflow_mlpipe.contract.paths import check_run_id

#: key of ``dag_run.conf`` where submissions put the experiment name, run id and flags
CONF_KEY = "__mlpipe"
#: task id of the cache planner at the head of every compiled DAG
PLANNER_TASK_ID = "mlpipe_cache_plan"
#: XCom key under which the planner hands on the outputs of the steps it reused
REUSED_OUTPUTS_KEY = "reused_outputs"
#: XCom key under which the planner hands each step it decided to run its key and input manifest
PLANNED_RUNS_KEY = "planned_runs"


def read_meta(conf: Any) -> dict[str, Any]:
    """The submission's metadata in ``conf``, checked: an object, with a run id that is safe as a path part."""
    meta = (dict(conf or {})).get(CONF_KEY) or {}
    if not isinstance(meta, dict):
        raise ValueError(f"dag_run.conf[{CONF_KEY!r}] must be an object")
    if meta.get("run_id") is not None:
        check_run_id(meta["run_id"], f"dag_run.conf[{CONF_KEY!r}].run_id")
    return meta
