"""Benchmark: what a DatabricksStep adds to its notebook (Airflow + provider + emulator, deferrable mode).

(a) Warm: a trivial notebook step (``spark.range(10).count()``, a tiny file in its output folder,
``dbutils.notebook.exit``) on a warm long-lived cluster (``existing_cluster_id``, ``allow_reuse=False``),
against the same notebook run in this process on a warm SparkSession with the emulator's notebook pieces.
Rounds are interleaved (pipeline, direct). A deferrable step first waits up to 2 s for its run in the worker
(``operators/databricks.INLINE_WAIT_S``), so a run this short ends without deferring; a longer one defers and
its TI start→end spans both worker phases and the deferral. Prints the step's in-task time (Airflow's TI
start→end), the Databricks run's own duration (``runs/get`` start→end), the DAG run
(queued→end) and the direct run, the added overhead per step (target: <= 2 s) and where the time goes.

(b) Cold start: a step on a new cluster (``num_workers=1``, a fresh Spark session per run) against starting a
SparkSession in a fresh Python process, interleaved.

Everything it starts (a scratch project's embedded Airflow, the Databricks emulator) it stops.

    uv run python benchmarks/bench_databricks_step.py [--rounds 20] [--cold-rounds 3] [--port N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

from _databricks import (
    HEADER,
    NOTEBOOK_PATH,
    WARM,
    DirectNotebook,
    Project,
    log_marks,
    parse_ts,
    row,
    scratch_project,
    seconds,
    timeline,
)

TARGET_SECONDS = 2.0
COLD_SPARK = ("from pyspark.sql import SparkSession; "
              "s=SparkSession.builder.master('local[1]').getOrCreate(); s.range(1).count()")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="warm rounds (each: one pipeline, one direct run)")
    parser.add_argument("--cold-rounds", type=int, default=3, help="new-cluster rounds (each: one step, one "
                                                                    "fresh SparkSession process)")
    parser.add_argument("--port", type=int, default=None, help="port of the embedded Airflow")
    return parser.parse_args(argv)


def _step(project: Project, cold: bool) -> Any:
    from airflow_mlpipe import PipelineData
    from airflow_mlpipe.sdk.steps.databricks_step import DatabricksStep

    out = PipelineData("out", datastore=project.store)
    cluster = {"num_workers": 1} if cold else {"existing_cluster_id": WARM}
    return DatabricksStep(name="trivial", outputs=[out], notebook_path=NOTEBOOK_PATH, compute_target=project.compute,
                          allow_reuse=False, run_name="bench cold" if cold else "bench warm", **cluster)


def run_pipeline(project: Project, cold: bool, timeout: float = 600) -> dict[str, Any]:
    """Submit the one-step pipeline, wait for its DAG run, and collect what Airflow and the emulator recorded."""
    from airflow_mlpipe import Experiment, Pipeline

    t0 = time.monotonic()
    run = Experiment(project.ws, "bench_cold" if cold else "bench_warm").submit(
        Pipeline(project.ws, [_step(project, cold)]))
    dag_id = project.ws.store.get_pipeline_run(run.id)["dag_id"]
    with project.client() as client:
        while (dr := client.get_dag_run(dag_id, run.id))["state"] not in ("success", "failed"):
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{dag_id} run {run.id} did not finish in {timeout} s")
            time.sleep(0.1)
        ti = next(t for t in client.task_instances(dag_id, run.id) if t["task_id"] == "trivial")
        log = client.task_log(dag_id, run.id, "trivial", try_number=ti["try_number"] or 1)
    if dr["state"] != "success":
        raise RuntimeError(f"{dag_id} run {run.id} ended {dr['state']}:\n{log[-3000:]}")
    details = project.ws.store.get_step_run(f"{run.id}.trivial")["details"]["databricks"]
    emulated = project.api.run_seconds(details["run_id"])
    return {"wall": time.monotonic() - t0, "ti": seconds(ti["start_date"], ti["end_date"]),
            "dag": seconds(dr["queued_at"], dr["end_date"]), "db_run": emulated["run"], "emulated": emulated,
            "dr": dr, "ti_row": ti, "marks": log_marks(log), "log": log}


def cold_spark_process() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", COLD_SPARK], check=True, capture_output=True)
    return time.perf_counter() - t0


def _ms(value: Any) -> float:
    return parse_ts(value).timestamp() if isinstance(value, str) else value / 1000


def breakdown(runs: list[dict[str, Any]]) -> list[tuple[str, list[float]]]:
    """Where a step's time goes, phase by phase (seconds between consecutive marks)."""
    phases: dict[str, list[float]] = {}

    def add(name: str, start: float | None, end: float | None) -> None:
        if start is not None and end is not None:
            phases.setdefault(name, []).append(end - start)

    for r in runs:
        m, dr, ti, em = r["marks"], r["dr"], r["ti_row"], r["emulated"]
        t = {k: v.timestamp() for k, v in m.items()}
        add("DAG run queued -> TI start (scheduling)", _ms(dr["queued_at"]), _ms(ti["start_date"]))
        add("TI start -> first log line (task start-up)", _ms(ti["start_date"]), t.get("first"))
        add("first log line -> run submitted (key, submit)", t.get("first"), t.get("submitted"))
        add("run submitted -> task deferred (worker 1 exits)", t.get("submitted"), t.get("deferred"))
        add("task deferred -> triggerer starts the trigger", t.get("deferred"), t.get("trigger_started"))
        add("trigger started -> trigger fired (polls)", t.get("trigger_started"), t.get("trigger_fired"))
        add("later of run end, trigger start -> fired", max(em["end_ms"] / 1000, t.get("trigger_started", 0)),
            t.get("trigger_fired"))
        add("Databricks run start -> end (emulator)", em["start_ms"] / 1000, em["end_ms"] / 1000)
        add("Databricks run end -> trigger fired", em["end_ms"] / 1000, t.get("trigger_fired"))
        add("trigger fired -> completion's first line (worker 2)", t.get("trigger_fired"), t.get("resumed"))
        add("completion's first line -> run output logged", t.get("resumed"), t.get("complete_output"))
        add("execute_complete output -> TI end (commit)", t.get("complete_output"), _ms(ti["end_date"]))
        add("TI end -> DAG run end", _ms(ti["end_date"]), _ms(dr["end_date"]))
    return list(phases.items())


def warm(project: Project, rounds: int) -> float:
    print(f"\nstarting warm cluster {WARM}: {project.api.start_cluster(WARM):.1f} s")
    direct = DirectNotebook(project.api.home)
    print(f"in-process SparkSession started in {direct.startup:.1f} s")
    try:
        first = run_pipeline(project, cold=False)  # parses the DAG, warms the cluster's first run
        print(f"warm-up pipeline run: {first['wall']:.1f} s wall (DAG parse included); warm-up direct run: "
              f"{direct.run():.2f} s")
        pipelines, directs = [], []
        for i in range(rounds):
            pipelines.append(run_pipeline(project, cold=False))
            directs.append(direct.run())
            p = pipelines[-1]
            print(f"  round {i + 1:>2}: step TI {p['ti']:.2f} s, Databricks run {p['db_run']:.2f} s, "
                  f"DAG run {p['dag']:.2f} s, direct {directs[-1]:.3f} s", flush=True)
    finally:
        direct.close()
    ti = [p["ti"] for p in pipelines]
    print(f"\n(a) warm cluster, deferrable, {rounds} interleaved rounds after one warm-up each")
    print(HEADER)
    print(row("step in-task time (TI start->end)", ti))
    print(row("Databricks run (runs/get start->end)", [p["db_run"] for p in pipelines]))
    print(row("whole DAG run (queued->end)", [p["dag"] for p in pipelines]))
    print(row("direct run in a warm local SparkSession", directs))
    last = pipelines[-1]
    print("\ntask log of the last round (offsets from the TI's start_date):")
    print("\n".join(timeline(last["log"], parse_ts(last["ti_row"]["start_date"]))))
    print(f"  Databricks run: {(last['emulated']['start_ms'] / 1000 - _ms(last['ti_row']['start_date'])):+.3f}s -> "
          f"{(last['emulated']['end_ms'] / 1000 - _ms(last['ti_row']['start_date'])):+.3f}s")
    print("\nwhere the step's time goes (per round):")
    print(HEADER)
    for name, values in breakdown(pipelines):
        print(row("  " + name, values))
    overhead = statistics.median(ti) - statistics.median(directs)
    verdict = "met" if overhead <= TARGET_SECONDS else "MISSED"
    print(f"\nadded overhead per step = median(step TI) - median(direct) = {statistics.median(ti):.2f} - "
          f"{statistics.median(directs):.2f} = {overhead:.2f} s  (target <= {TARGET_SECONDS:.0f} s: {verdict})")
    dag_over = statistics.median(p["dag"] for p in pipelines) - statistics.median(directs)
    print(f"whole DAG run over direct (scheduling included): {dag_over:.2f} s")
    return overhead


def cold(project: Project, rounds: int) -> None:
    steps, spark = [], []
    for i in range(rounds):
        steps.append(run_pipeline(project, cold=True))
        spark.append(cold_spark_process())
        s = steps[-1]
        print(f"  cold round {i + 1}: step TI {s['ti']:.2f} s, Databricks run {s['db_run']:.2f} s "
              f"(setup {s['emulated'].get('setup_duration', float('nan')):.2f} s), DAG run {s['dag']:.2f} s, "
              f"fresh SparkSession process {spark[-1]:.2f} s", flush=True)
    print(f"\n(b) cold start: new cluster (num_workers=1) per run, {rounds} interleaved rounds")
    print(HEADER)
    print(row("step in-task time (TI start->end)", [s["ti"] for s in steps]))
    print(row("Databricks run (runs/get start->end)", [s["db_run"] for s in steps]))
    print(row("whole DAG run (queued->end)", [s["dag"] for s in steps]))
    print(row("fresh SparkSession in a new process (wall)", spark))
    med = statistics.median
    print(f"difference of medians: step TI - fresh process = {med(s['ti'] for s in steps) - med(spark):.2f} s; "
          f"Databricks run - fresh process = {med(s['db_run'] for s in steps) - med(spark):.2f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_project(args.port) as project:
        warm(project, args.rounds)
        if args.cold_rounds > 0:
            print()
            cold(project, args.cold_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
