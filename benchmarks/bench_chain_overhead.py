"""Benchmark: a 10-step chain of trivial PythonScriptSteps against 10 chained no-op ``@task`` tasks.

Both DAGs run on the same embedded Airflow (SQLite, LocalExecutor, our tuned settings) in the same process
of measurement, interleaved round by round, timed from trigger to the run's end as Airflow records it.
Prints per-DAG timings, the ratio (target: <= 1.2) and the per-step overhead.

    uv run python benchmarks/bench_chain_overhead.py [--rounds 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path

PLAIN_DAG = '''
"""plain Airflow: N chained no-op tasks (benchmark baseline)."""
from airflow.sdk import dag, task

@dag(dag_id="bench_plain", schedule=None, catchup=False)
def bench_plain():
    @task
    def noop(x=None):
        return (x or 0) + 1
    prev = noop.override(task_id="t0")()
    for i in range(1, {steps}):
        prev = noop.override(task_id=f"t{{i}}")(prev)

bench_plain()
'''

MLPIPE_DAG = '''
"""airflow-mlpipe: N chained trivial PythonScriptSteps handing a PipelineData on (benchmark)."""
from pathlib import Path
from airflow_mlpipe import Pipeline, PipelineData, PythonScriptStep, Workspace

src = str(Path(__file__).parent / "bench_steps")
ws = Workspace.from_config()
steps, prev = [], None
for i in range({steps}):
    out = PipelineData(f"d{{i}}")
    args = ["--out", out] + (["--inp", prev] if prev is not None else [])
    steps.append(PythonScriptStep("step.py", name=f"s{{i}}", arguments=args, outputs=[out],
                                  inputs=[prev] if prev is not None else [], source_directory=src))
    prev = out
pipeline = Pipeline(ws, steps=steps)
dag = pipeline.to_dag("bench_mlpipe")
'''

STEP_SCRIPT = '''
import os, sys
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out, exist_ok=True)
n = 0
if "--inp" in sys.argv:
    n = int(open(os.path.join(sys.argv[sys.argv.index("--inp") + 1], "n.txt")).read())
open(os.path.join(out, "n.txt"), "w").write(str(n + 1))
'''


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def run_once(client, dag_id: str, timeout: float = 300) -> tuple[float, float]:
    """Trigger and wait; returns (client wall seconds, Airflow start→end seconds)."""
    started = time.monotonic()
    run = client.trigger(dag_id, conf={})
    run_id = run["dag_run_id"]
    while True:
        dr = client.get_dag_run(dag_id, run_id)
        if dr["state"] in ("success", "failed"):
            break
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{dag_id} run {run_id} did not finish in {timeout} s")
        time.sleep(0.05)
    wall = time.monotonic() - started
    if dr["state"] != "success":
        raise RuntimeError(f"{dag_id} run {run_id} ended {dr['state']}")
    return wall, (_parse(dr["end_date"]) - _parse(dr["queued_at"])).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)

    from airflow_mlpipe.clients import local_airflow
    from airflow_mlpipe.clients.airflow_rest import AirflowClient
    from airflow_mlpipe.workspace import Workspace

    root = Path(tempfile.mkdtemp(prefix="mlpipe-bench-"))
    dags = root / "dags"
    (dags / "bench_steps").mkdir(parents=True)
    (dags / ".airflowignore").write_text("bench_steps/\n")
    (dags / "bench_steps" / "step.py").write_text(STEP_SCRIPT)
    (dags / "bench_plain.py").write_text(textwrap.dedent(PLAIN_DAG.format(steps=args.steps)))
    (dags / "bench_mlpipe.py").write_text(textwrap.dedent(MLPIPE_DAG.format(steps=args.steps)))
    ws = Workspace(home=root / ".mlpipe")

    t0 = time.monotonic()
    info = local_airflow.start(ws, dags_folder=dags, port=args.port)
    print(f"embedded Airflow healthy after {time.monotonic() - t0:.1f} s at {info.url}")
    try:
        client = AirflowClient(info.url, info.username, info.password)
        for dag_id in ("bench_plain", "bench_mlpipe"):
            client.wait_for_dag(dag_id, timeout=180)
            client.unpause(dag_id)
        run_once(client, "bench_plain")  # warm-up: first runs pay imports and DAG parsing
        run_once(client, "bench_mlpipe")
        results: dict[str, list[tuple[float, float]]] = {"bench_plain": [], "bench_mlpipe": []}
        for _ in range(args.rounds):
            for dag_id in results:
                results[dag_id].append(run_once(client, dag_id))
    finally:
        local_airflow.stop(ws)

    print(f"\n{args.steps} sequential tasks, {args.rounds} interleaved rounds (after one warm-up run each)")
    print(f"{'DAG':<14} {'median wall':>12} {'median airflow':>15} {'runs (airflow s)':>20}")
    med = {}
    for dag_id, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        af = statistics.median(r[1] for r in runs)
        med[dag_id] = af
        print(f"{dag_id:<14} {wall:>11.2f}s {af:>14.2f}s   {' '.join(f'{r[1]:.2f}' for r in runs)}")
    ratio = med["bench_mlpipe"] / med["bench_plain"]
    per_step = (med["bench_mlpipe"] - med["bench_plain"]) / args.steps
    print(f"\nratio mlpipe/plain (median, queued->end): {ratio:.3f}  (target <= 1.2)")
    print(f"overhead per step: {per_step * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
