"""Run isolation: a run executes exactly the pipeline spec it was submitted with.

Airflow schedules every task of a run against the latest parse of its DAG file (local DAG bundles are not
versioned), so a DAG file edited, or a DAG id reused, while a run is going would make the run execute another
pipeline's steps. Each run is therefore pinned to one spec hash: the submission puts it in the run's conf (and
stores the spec), or the first task of a run triggered from the UI, a schedule or REST records the spec it
sees. Every task compares its DAG's spec with the pinned one and fails loudly on a mismatch, so such a run
ends Failed, never Finished with someone else's results.
"""

from __future__ import annotations

from typing import Any


class SpecMismatchError(RuntimeError):
    """The DAG now defines another pipeline than the one this run was started with."""


def pin_run_spec(store: Any, run_id: str, dag_id: str, pipeline: dict[str, Any], submitted: str | None) -> str:
    """Check (and on first use record) the run's spec; returns its hash. ``pipeline`` is the compiled DAG's
    pipeline context (``spec_hash`` and the ``spec`` itself); ``submitted`` the hash the submission pinned."""
    from airflow_mlpipe.store.tables_specs import save_spec

    current = pipeline.get("spec_hash")
    if not current:  # a DAG compiled before run isolation existed: nothing to compare
        return submitted or ""
    pinned = submitted or store.claim_spec_hash(run_id, current)
    if pinned is None:  # no run row yet (a direct call): pin through the row we create
        store.upsert_pipeline_run(run_id, dag_id=dag_id, spec_hash=current)
        pinned = current
    if pinned != current:
        message = (f"Run {run_id} of DAG {dag_id!r} was started with pipeline spec {pinned[:12]}, but the DAG now "
                   f"defines spec {current[:12]} (its DAG file or submission changed while the run was going). "
                   "The run is failed rather than run steps of another pipeline; submit it again to run the "
                   "current definition.")
        store.upsert_pipeline_run(run_id, status="Failed", error=message)
        raise SpecMismatchError(message)
    if pipeline.get("spec") is not None:
        save_spec(store, pipeline["spec"], current)
    return current
