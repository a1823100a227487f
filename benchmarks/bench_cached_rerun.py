"""Benchmark: a fully cached re-run of a 10-step pipeline against a 1-task DAG on the same Airflow.

The planner task reuses every step up front and marks their tasks skipped, so a cached run should cost about
one scheduling round (target: ratio <= 1.5).

    uv run python benchmarks/bench_cached_rerun.py [--rounds 5] [--steps 10]
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
        "bench_one.py": PLAIN_CHAIN_DAG.format(dag_id="bench_one", steps=1),
        "bench_cached.py": MLPIPE_CHAIN_DAG.format(dag_id="bench_cached", steps=args.steps, allow_reuse=True),
    })
    with embedded_airflow(dags, args.port) as client:
        results = compare(client, ["bench_one", "bench_cached"], args.rounds)  # warm-up run fills the cache
    one, cached = median_airflow(results["bench_one"]), median_airflow(results["bench_cached"])
    print(f"\nratio cached {args.steps}-step rerun / 1-task DAG (median): {cached / one:.3f}  (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
