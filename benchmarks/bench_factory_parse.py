"""Parse time of the published-pipelines DAG file with N published pipelines of S steps (default 200 x 10).

Measures what the dag-processor does per parse: Airflow's DagBag over the factory file (store query + spec
checks + DAG construction + DagBag validation), in a fresh process (cold: airflow_mlpipe not yet imported, as in
a forked dag-processor child) and in a warm one (repeated parses). Target: under 2 s for 200 x 10.

    uv run python benchmarks/bench_factory_parse.py [--pipelines 200] [--steps 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _publish(home: Path, pipelines: int, steps: int) -> None:
    from airflow_mlpipe import Pipeline, PipelineData, PipelineParameter, PublishedPipeline, PythonScriptStep
    from airflow_mlpipe.workspace import Workspace

    ws = Workspace(home=home)
    src = home / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "step.py").write_text("print('x')\n")
    arg = PipelineParameter("pipeline_arg", default_value=1)
    prev, chain = None, []
    for i in range(steps):
        out = PipelineData(f"o{i}")
        chain.append(PythonScriptStep("step.py", name=f"s{i}", source_directory=str(src), outputs=[out],
                                      inputs=[prev] if prev else [], arguments=["--a", arg, "--o", out]))
        prev = out
    spec = Pipeline(ws, chain).to_spec("bench")
    for i in range(pipelines):
        PublishedPipeline._publish_spec(ws, spec, f"bench_{i}")


_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1 = time.perf_counter()
times = []
for _ in range(int(sys.argv[2])):
    s = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    times.append(time.perf_counter() - s)
print(json.dumps({"airflow_import": t1 - t0, "parses": times, "dags": len(bag.dag_ids),
                  "tasks": sum(len(d.tasks) for d in bag.dags.values()), "errors": list(bag.import_errors)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", type=int, default=200)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlpipe_bench_factory_") as tmp:
        home = Path(tmp) / "ws"
        af_home = Path(tmp) / "af"
        af_home.mkdir()
        env = {**os.environ, "MLPIPE_WORKSPACE_HOME": str(home), "AIRFLOW_HOME": str(af_home),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True"}
        os.environ.update({k: env[k] for k in ("AIRFLOW_HOME", "AIRFLOW__CORE__LOAD_EXAMPLES")})
        _publish(home, args.pipelines, args.steps)
        from airflow_mlpipe.clients.bundle_stubs import PUBLISHED_STUB_NAME, write_stub

        folder = home / "airflow" / "submitted"
        write_stub(folder)  # the generated file the workspace's submitted-pipelines bundle serves
        factory = folder / PUBLISHED_STUB_NAME
        out = subprocess.run([sys.executable, "-c", _CHILD, str(factory), str(args.rounds)], env=env,
                             capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
    cold, warm = res["parses"][0], res["parses"][1:] or res["parses"]
    print(f"factory parse, {args.pipelines} published pipelines x {args.steps} steps "
          f"({res['dags']} DAGs, {res['tasks']} tasks, import errors: {res['errors'] or 'none'})")
    print(f"  cold (first parse in a fresh process, after importing Airflow): {cold:.2f} s")
    print(f"  warm (median of {len(warm)} re-parses): {statistics.median(warm):.2f} s  "
          f"(min {min(warm):.2f}, max {max(warm):.2f})")
    print(f"  target < 2 s: {'OK' if cold < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
