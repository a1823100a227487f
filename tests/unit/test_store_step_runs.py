"""Step-run records in the store: a final write keeps the details its script set and drops the rest (what the
UI shows while the step waits), and the step runs of many pipeline runs come back grouped by run."""

from __future__ import annotations

from datetime import datetime, timedelta


def test_final_write_keeps_named_details_and_replaces_the_rest(workspace):
    store = workspace.store
    store.upsert_step_run("r1.train", pipeline_run_id="r1", details={"tags": {"team": "a"}, "cache": {"decision": "x"},
                                                                     "waiting_for": {"step_run": "r0.train"}})
    row = store.upsert_step_run("r1.train", keep_details=("tags", "cache"), status="Finished",
                                details={"cache_key": "blake3:k", "cache": {"decision": "computed"}})
    assert row["details"] == {"tags": {"team": "a"}, "cache": {"decision": "computed"}, "cache_key": "blake3:k"}
    assert row["status"] == "Finished"
    fresh = store.upsert_step_run("r2.train", keep_details=("tags",), pipeline_run_id="r2", details={"cache_key": "k"})
    assert fresh["details"] == {"cache_key": "k"}


def test_step_runs_of_many_pipeline_runs_grouped_in_start_order(workspace):
    store = workspace.store
    t0 = datetime(2026, 1, 1)  # the store keeps naive UTC
    for run, step, minutes in (("a", "second", 2), ("b", "only", 0), ("a", "first", 1)):
        store.upsert_step_run(f"{run}.{step}", pipeline_run_id=run, task_id=step,
                              start_time=t0 + timedelta(minutes=minutes))
    grouped = store.step_runs_by_pipeline_run(["a", "b", "missing"])
    assert {k: [r["task_id"] for r in v] for k, v in grouped.items()} == {"a": ["first", "second"], "b": ["only"]}
    assert [r["task_id"] for r in store.list_step_runs("a")] == ["first", "second"]
    assert store.step_runs_by_pipeline_run([]) == {} and store.list_step_runs("missing") == []
