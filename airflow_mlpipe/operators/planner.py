"""CachePlanOperator: the head of every compiled DAG; reuses what is knowable before anything runs.

One task decides all up-front hits, records them as reused step runs, hands their outputs on through XCom and
marks their tasks skipped directly, so a reused step costs no scheduling round of its own.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from airflow_mlpipe.contract.conf import PLANNED_RUNS_KEY
from airflow_mlpipe.data.workspace_location import WorkspaceLocation
from airflow_mlpipe.operators.base import REUSED_OUTPUTS_KEY, experiment_name, parameter_values, run_meta
from airflow_mlpipe.runtime.run_spec import SpecMismatchError, pin_run_spec
from airflow_mlpipe.store.db import utcnow


class CachePlanOperator(BaseOperator):
    ui_color = "#fef3c7"

    def __init__(self, *, steps: list[dict[str, Any]], pipeline: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("doc_md", "airflow-mlpipe step cache: reuses steps whose results are known")
        super().__init__(**kwargs)
        self.steps = steps
        self.pipeline = pipeline

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        from airflow_mlpipe.runtime.cache import record_reuse
        from airflow_mlpipe.runtime.planner import format_plan, plan_steps

        meta = run_meta(context)
        ws = WorkspaceLocation.from_ref(self.pipeline.get("workspace"))
        run_id = meta.get("run_id") or context["run_id"]
        store = ws.store
        store.upsert_pipeline_run(run_id, experiment=experiment_name(self.pipeline, context, self.dag_id),
                                  dag_id=self.dag_id,
                                  status="Running")
        try:
            pin_run_spec(store, run_id, self.dag_id, self.pipeline, meta.get("spec_hash"))
        except SpecMismatchError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from None
        try:
            decisions, timings = plan_steps(ws, self.steps, parameter_values(self.pipeline, context),
                                            bool(meta.get("regenerate_outputs")))
        except Exception:  # noqa: BLE001 - without a plan every step checks the cache itself
            self.log.exception("cache plan failed; every step will check the cache itself")
            return {}
        self.log.info("Cache plan:\n%s", format_plan(decisions))
        self.log.info("cache check per step: %s", ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in timings.items()))
        hits = [d for d in decisions if d.action == "reuse"]
        reused: dict[str, Any] = {}
        for d in hits:
            step = next(s for s in self.steps if s["name"] == d.step)
            reused[d.task_id] = record_reuse(ws, f"{run_id}.{d.task_id}", d.key, d.entry, pipeline_run_id=run_id,
                                             step_name=d.step, task_id=d.task_id, kind=step["kind"],
                                             start_time=utcnow())
            self.log.info("Step %r reused from step run %s (pipeline run %s)", d.step, d.entry["step_run_id"],
                          d.entry["pipeline_run_id"])
        context["ti"].xcom_push(key=REUSED_OUTPUTS_KEY, value=reused)
        planned = {d.task_id: d.handover() for d in decisions if d.handover() is not None}
        if planned:  # one request less when every step is reused (or none was decided up front)
            context["ti"].xcom_push(key=PLANNED_RUNS_KEY, value=planned)
        summary = {d.step: {"action": d.action, "reason": d.reason} for d in decisions}
        context["ti"].xcom_push(key="return_value", value=summary)
        if hits:
            raise DownstreamTasksSkipped(tasks=[d.task_id for d in hits])
        return summary
