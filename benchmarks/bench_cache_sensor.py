"""Benchmark: 6 concurrent runs sharing one slow step on 2 worker slots, cache sensor vs waiting in the task.

Each run of the pipeline is one slow step ``shared`` (sleeps ``--slow`` s; the same cache key in all runs of a
round: a new ``round`` parameter value per round) after the cache planner. One run computes ``shared``; the
other five wait for it: deferred to the triggerer (``cache_wait_deferrable``: true, the default) or inside
their worker slot (false). Right after the six, an unrelated one-step pipeline (``probe``) is submitted: how
long it takes to finish shows whether the waiters left a slot free. The embedded Airflow has
``AIRFLOW__CORE__PARALLELISM=2``. Modes are interleaved round by round; the mode is switched in the workspace
config, which every task reads. Prints, per round, the wall time of the six runs (first submission to the last
run's end), the probe's time and how many waiters deferred (from their task logs); then min/median/p90.

    uv run python benchmarks/bench_cache_sensor.py [--rounds 20] [--runs 6] [--slow 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SHARED = """\
import os, sys, time
time.sleep(float(os.environ["SLOW_S"]))
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "r.txt"), "w").write(sys.argv[sys.argv.index("--round") + 1])
"""
PROBE = """\
import os, sys
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "o.txt"), "w").write("own")
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per mode (interleaved)")
    parser.add_argument("--runs", type=int, default=6, help="concurrent pipeline runs per round")
    parser.add_argument("--slow", type=float, default=15.0, help="seconds the shared step computes")
    return parser.parse_args(argv)


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def all_logs(client, ws, run_id: str, task_id: str) -> str:
    """The task's log over all its tries (a try may be missing from the API: skipped)."""
    from airflow_mlpipe.clients.airflow_rest import AirflowAPIError

    dag_id = ws.store.get_pipeline_run(run_id)["dag_id"]
    ti = next(t for t in client.task_instances(dag_id, run_id) if t["task_id"] == task_id)
    text = []
    for try_number in range(1, int(ti.get("try_number") or 1) + 1):
        try:
            text.append(client.task_log(dag_id, run_id, task_id, try_number=try_number))
        except AirflowAPIError:
            continue
    return "\n".join(text)


def write_config(root: Path, deferrable: bool) -> None:
    path = root / ".mlpipe" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cache_wait_deferrable": deferrable,
                                "airflow": {"settings": {"AIRFLOW__CORE__PARALLELISM": "2"}}}, indent=2))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mlpipe-bench-sensor-"))
    os.chdir(root)
    write_config(root, True)
    src = root / "src"
    src.mkdir()
    (src / "shared.py").write_text(SHARED)
    (src / "probe.py").write_text(PROBE)

    from airflow_mlpipe import (
        Experiment,
        Pipeline,
        PipelineData,
        PipelineParameter,
        PythonScriptStep,
        RunConfiguration,
        Workspace,
    )
    from airflow_mlpipe.clients import local_airflow
    from airflow_mlpipe.clients.airflow_rest import AirflowClient

    ws = Workspace.from_config()
    rc = RunConfiguration()
    rc.environment_variables = {"SLOW_S": str(args.slow)}
    round_param = PipelineParameter("round", default_value="warm-up")
    shared_out, probe_out = PipelineData("shared_out"), PipelineData("probe_out")
    steps = [PythonScriptStep("shared.py", name="shared", arguments=["--out", shared_out, "--round", round_param],
                              outputs=[shared_out], source_directory=str(src), runconfig=rc)]
    probe = Pipeline(ws, [PythonScriptStep("probe.py", name="probe", arguments=["--out", probe_out],
                                           outputs=[probe_out], source_directory=str(src), allow_reuse=False)])
    pipeline = Pipeline(ws, steps)
    t0 = time.monotonic()
    info = local_airflow.start(ws, dags_folder=root / "dags", port=local_airflow._free_port())
    print(f"embedded Airflow (2 worker slots) healthy after {time.monotonic() - t0:.1f} s")
    try:
        client = AirflowClient(info.url, info.username, info.password)
        for warm in (Experiment(ws, "bench-sensor").submit(pipeline), Experiment(ws, "bench-probe").submit(probe)):
            status = warm.wait_for_completion(show_output=False, timeout_seconds=900, raise_on_error=False)
            if status != "Finished":
                raise RuntimeError(f"the warm-up run {warm.id} ended {status}")
        walls: dict[str, list[float]] = {"sensor": [], "in-task": []}
        probes: dict[str, list[float]] = {"sensor": [], "in-task": []}
        for i in range(args.rounds):
            for mode in ("sensor", "in-task"):
                write_config(root, mode == "sensor")
                started = time.monotonic()
                runs = [Experiment(ws, "bench-sensor").submit(pipeline, pipeline_parameters={"round": f"{mode}{i}"})
                        for _ in range(args.runs)]
                probe_started = time.monotonic()
                probe_run = Experiment(ws, "bench-probe").submit(probe)
                if probe_run.wait_for_completion(show_output=False, timeout_seconds=900,
                                                 raise_on_error=False) != "Finished":
                    raise RuntimeError(f"round {i} ({mode}): the probe run {probe_run.id} failed")
                probe_s = time.monotonic() - probe_started
                statuses = [r.wait_for_completion(show_output=False, timeout_seconds=900, raise_on_error=False)
                            for r in runs]
                wall = time.monotonic() - started
                if set(statuses) != {"Finished"}:
                    raise RuntimeError(f"round {i} ({mode}): runs ended {statuses}")
                computed = sum(1 for r in runs if not ws.store.get_step_run(f"{r.id}.shared").get("reused_run_id"))
                logs = [all_logs(client, ws, r.id, "shared") for r in runs]
                waited = sum("Another run is computing the same step" in text for text in logs)
                deferred = sum("waiting in the triggerer" in text for text in logs)
                walls[mode].append(wall)
                probes[mode].append(probe_s)
                print(f"round {i} {mode:<8} wall {wall:6.1f} s, probe {probe_s:5.1f} s; shared computed "
                      f"{computed}x, {waited} run(s) waited for it, {deferred} of them deferred", flush=True)
        print(f"\n{args.runs} concurrent runs, shared step {args.slow:.0f} s, 2 worker slots, {args.rounds} rounds")
        print(f"{'mode':<8} {'what':<10} {'min':>7} {'median':>7} {'p90':>7}")
        for mode in walls:
            for what, values in (("6 runs", walls[mode]), ("probe", probes[mode])):
                print(f"{mode:<8} {what:<10} {min(values):6.1f}s {statistics.median(values):6.1f}s "
                      f"{p90(values):6.1f}s")
    finally:
        local_airflow.stop(ws)


if __name__ == "__main__":
    sys.exit(main())
