"""Shared pieces of the scheduler benchmarks: a DAGs folder, the embedded Airflow, timed runs."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

MLPIPE_CHAIN_DAG = '''
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
                                  inputs=[prev] if prev is not None else [], source_directory=src,
                                  allow_reuse={allow_reuse}))
    prev = out
pipeline = Pipeline(ws, steps=steps)
dag = pipeline.to_dag("{dag_id}")
'''

PLAIN_CHAIN_DAG = '''
"""plain Airflow: N chained no-op tasks (benchmark baseline)."""
from airflow.sdk import dag, task

@dag(dag_id="{dag_id}", schedule=None, catchup=False)
def bench_plain():
    @task
    def noop(x=None):
        return (x or 0) + 1
    prev = noop.override(task_id="t0")()
    for i in range(1, {steps}):
        prev = noop.override(task_id=f"t{{i}}")(prev)

bench_plain()
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


def chain_args(doc: str, argv: list[str] | None) -> argparse.Namespace:
    """The options every scheduler benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--port", type=int, default=None)
    return parser.parse_args(argv)


def dags_folder(files: dict[str, str]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="mlpipe-bench-"))
    dags = root / "dags"
    (dags / "bench_steps").mkdir(parents=True)
    (dags / ".airflowignore").write_text("bench_steps/\n")
    (dags / "bench_steps" / "step.py").write_text(STEP_SCRIPT)
    for name, text in files.items():
        (dags / name).write_text(textwrap.dedent(text))
    return dags


@contextmanager
def embedded_airflow(dags: Path, port: int | None = None) -> Iterator:
    from airflow_mlpipe.clients import local_airflow
    from airflow_mlpipe.clients.airflow_rest import AirflowClient
    from airflow_mlpipe.workspace import Workspace

    ws = Workspace(home=dags.parent / ".mlpipe")
    t0 = time.monotonic()
    info = local_airflow.start(ws, dags_folder=dags, port=port)
    print(f"embedded Airflow healthy after {time.monotonic() - t0:.1f} s at {info.url}")
    try:
        yield AirflowClient(info.url, info.username, info.password)
    finally:
        local_airflow.stop(ws)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def run_once(client, dag_id: str, timeout: float = 300) -> tuple[float, float]:
    """Trigger and wait; returns (client wall seconds, Airflow queued→end seconds)."""
    started = time.monotonic()
    run_id = client.trigger(dag_id, conf={})["dag_run_id"]
    while True:
        dr = client.get_dag_run(dag_id, run_id)
        if dr["state"] in ("success", "failed"):
            break
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{dag_id} run {run_id} did not finish in {timeout} s")
        time.sleep(0.05)
    if dr["state"] != "success":
        raise RuntimeError(f"{dag_id} run {run_id} ended {dr['state']}")
    return time.monotonic() - started, (_parse(dr["end_date"]) - _parse(dr["queued_at"])).total_seconds()


def compare(client, dag_ids: list[str], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Warm each DAG up once, then run them interleaved ``rounds`` times; prints a table of medians."""
    for dag_id in dag_ids:
        client.wait_for_dag(dag_id, timeout=180)
        client.unpause(dag_id)
        run_once(client, dag_id)
    results: dict[str, list[tuple[float, float]]] = {d: [] for d in dag_ids}
    for _ in range(rounds):
        for dag_id in dag_ids:
            results[dag_id].append(run_once(client, dag_id))
    print(f"\n{rounds} interleaved rounds after one warm-up run each (Airflow queued->end seconds)")
    print(f"{'DAG':<16} {'median wall':>12} {'median airflow':>15}   runs")
    for dag_id, runs in results.items():
        print(f"{dag_id:<16} {statistics.median(r[0] for r in runs):>11.2f}s "
              f"{statistics.median(r[1] for r in runs):>14.2f}s   {' '.join(f'{r[1]:.2f}' for r in runs)}")
    return results


def median_airflow(runs: list[tuple[float, float]]) -> float:
    return statistics.median(r[1] for r in runs)
