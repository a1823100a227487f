"""Benchmark: how soon a published pipeline's DAG appears in the embedded Airflow after ``publish()`` returns.

Published pipelines are served by the workspace's own DAG bundle (no file to copy); the DAG processor re-parses
its generated file every ``min_file_process_interval`` (2 s in the embedded Airflow). Each round publishes a new
pipeline and polls Airflow's REST API until the DAG is there (target: p90 <= 5 s).

    uv run python benchmarks/bench_publish_latency.py [--rounds 20]
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import chain_args, dags_folder, embedded_airflow


def main(argv: list[str] | None = None) -> int:
    args = chain_args(__doc__, argv)
    from airflow_mlpipe import Pipeline, PipelineData, PythonScriptStep
    from airflow_mlpipe.workspace import Workspace

    dags = dags_folder({})
    with embedded_airflow(dags, args.port) as client:
        ws = Workspace(home=dags.parent / ".mlpipe")
        src = str(dags / "bench_steps")
        seconds: list[float] = []
        for i in range(args.rounds):
            out = PipelineData("out")
            step = PythonScriptStep("step.py", name=f"s{i}", source_directory=src, outputs=[out],
                                    arguments=["--out", out])
            started = time.monotonic()
            published = Pipeline(ws, [step]).publish(f"latency_{i}")
            while client.get_dag(published.dag_id) is None:
                if time.monotonic() - started > 120:
                    raise TimeoutError(f"{published.dag_id} did not appear within 120 s")
                time.sleep(0.05)
            seconds.append(time.monotonic() - started)
    ordered = sorted(seconds)
    p90 = ordered[max(0, int(round(0.9 * len(ordered))) - 1)]
    print(f"\npublish -> DAG visible in Airflow's REST API, {len(seconds)} rounds")
    print(f"  min {ordered[0]:.2f} s   median {statistics.median(seconds):.2f} s   p90 {p90:.2f} s   "
          f"max {ordered[-1]:.2f} s   (target p90 <= 5 s)")
    print("  rounds: " + " ".join(f"{s:.2f}" for s in seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
