"""Benchmark: the cache check per step, and its cost with 1 GB against 1 MB of unchanged input data.

Runs the real planner (key computation: source snapshot, input fingerprints, parameters; lookup; output
verification) in-process on a pipeline whose steps are all cached. Targets: p50 under 20 ms per step; the
1 GB / 1 MB ratio at most 1.2 when the data is unchanged (file contents are never re-read).

    uv run python benchmarks/bench_cache_check.py [--repeat 50] [--big-mb 1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _pipeline(ws, src: Path, data_path: str, steps: int):
    from airflow_mlpipe import Dataset, Datastore, Pipeline, PipelineData, PythonScriptStep

    store = Datastore(ws, "workspaceblobstore")
    raw = Dataset.File.from_files([(store, data_path)])
    prev, items = None, []
    for i in range(steps):
        out = PipelineData(f"d{i}")
        inputs = [raw.as_named_input("raw")] if prev is None else [prev]
        args = ["--out", out] + (["--inp", prev] if prev is not None else [])
        items.append(PythonScriptStep("step.py", name=f"s{i}", arguments=args, inputs=inputs, outputs=[out],
                                      source_directory=str(src)))
        prev = out
    return Pipeline(ws, items)


def _write(path: str, mb: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(mb):
            fh.write(block)


def measure(mb: int, repeat: int, steps: int) -> tuple[list[float], list[float]]:
    from airflow_mlpipe.runtime.planner import plan_steps
    from airflow_mlpipe.runtime.step_runner import StepExecution, run_python_step
    from airflow_mlpipe.workspace import Workspace

    root = Path(tempfile.mkdtemp(prefix="mlpipe-cachebench-"))
    src = root / "src"
    src.mkdir()
    (src / "step.py").write_text(
        "import os, sys\nout = sys.argv[sys.argv.index('--out') + 1]\nos.makedirs(out, exist_ok=True)\n"
        "open(os.path.join(out, 'o.txt'), 'w').write('x')\n")
    ws = Workspace(home=root / ".mlpipe")
    from airflow_mlpipe.sdk.datastore import Datastore

    _write(Datastore(ws).full_path("data/input.bin"), mb)
    spec = _pipeline(ws, src, "data/input.bin", steps).to_spec("bench")
    # fill the cache by running every step once, in order, handing outputs on like XCom does
    produced: dict[str, dict] = {}
    for step in spec["steps"]:
        ex = StepExecution(ws, "fill", "bench", "bench", step, {"parameters": {}, "default_datastore": None}, {},
                           lambda task_id, output: produced[task_id][output])
        produced[step["task_id"]] = run_python_step(ex).outputs
    plan_steps(ws, spec["steps"], {})  # warm-up: imports and first connections are not the check's cost
    per_step: list[float] = []
    for _ in range(repeat):
        decisions, timings = plan_steps(ws, spec["steps"], {})
        assert all(d.action == "reuse" for d in decisions), [(d.step, d.reason) for d in decisions]
        per_step.extend(timings.values())
    first = per_step[::steps]  # the step that fingerprints the input data
    return per_step, first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--big-mb", type=int, default=1024)
    args = parser.parse_args(argv)
    results = {}
    for mb in (1, args.big_mb):
        t0 = time.perf_counter()
        per_step, first = measure(mb, args.repeat, args.steps)
        results[mb] = (per_step, first)
        q = statistics.quantiles(per_step, n=100)
        print(f"{mb:>5} MB input: cache check per step p50 {statistics.median(per_step) * 1000:.2f} ms, "
              f"p95 {q[94] * 1000:.2f} ms; step reading the data p50 {statistics.median(first) * 1000:.2f} ms "
              f"({args.repeat} plans of {args.steps} steps; setup+fill {time.perf_counter() - t0:.1f} s)")
    ratio = statistics.median(results[args.big_mb][1]) / statistics.median(results[1][1])
    print(f"\ncache check of the data-reading step, {args.big_mb} MB / 1 MB unchanged input: {ratio:.3f} "
          "(target <= 1.2)")
    p50 = statistics.median(results[1][0]) * 1000
    print(f"cache check per step p50: {p50:.2f} ms (target < 20 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
