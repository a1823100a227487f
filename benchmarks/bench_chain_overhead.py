"""Benchmark: a 10-step chain of trivial PythonScriptSteps against 10 chained no-op ``@task`` tasks.

Both DAGs run on the same embedded Airflow (SQLite, LocalExecutor, our tuned settings), interleaved round by
round, timed from queued to the run's end as Airflow records it. The steps have ``allow_reuse=False`` so
every run executes every step. Prints the ratio (target: <= 1.2) and the per-step overhead.

    uv run python benchmarks/bench_chain_overhead.py [--rounds 5] [--steps 10]
"""

from __future__ import annotations

import sys

from _common import (
    MLPIPE_CHAIN_DAG,
    PLAIN_CHAIN_DAG,
    chain_args,
    compare,
    dags_folder,
    embedded_airflow,
    median_airflow,
)


def main(argv: list[str] | None = None) -> int:
    args = chain_args(__doc__, argv)
    dags = dags_folder({
        "bench_plain.py": PLAIN_CHAIN_DAG.format(dag_id="bench_plain", steps=args.steps),
        "bench_mlpipe.py": MLPIPE_CHAIN_DAG.format(dag_id="bench_mlpipe", steps=args.steps, allow_reuse=False),
    })
    with embedded_airflow(dags, args.port) as client:
        results = compare(client, ["bench_plain", "bench_mlpipe"], args.rounds)
    plain, mlpipe = median_airflow(results["bench_plain"]), median_airflow(results["bench_mlpipe"])
    print(f"\nratio mlpipe/plain (median): {mlpipe / plain:.3f}  (target <= 1.2)")
    print(f"overhead per step: {(mlpipe - plain) / args.steps * 1000:.0f} ms "
          f"(plain: {plain / args.steps * 1000:.0f} ms per task)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
