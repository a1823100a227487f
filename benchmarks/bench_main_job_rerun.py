"""Benchmark: the cached rerun of the README's main job, for two checkouts side by side (e.g. before/after).

Each checkout needs its own environment (``python3 -m uv sync --frozen`` inside it). The first run of each fills
the cache (data preparation and AutoML); then the rounds interleave the checkouts, each running
``mlpipe run dags/titanic_pipeline.py`` from its own folder on its own embedded Airflow (dataprep and AutoML are
reused, ``register_model`` runs). Prints, per checkout, the client's wall time and the in-task time (the sum of
the durations of the steps that ran, task start to end) as min / median / p90.

    uv run python benchmarks/bench_main_job_rerun.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 20]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEP_LINE = re.compile(r"^\s+- (\S+)\s+(\w+)\s+([\d.]+) s(.*)$")


def run_main_job(checkout: Path) -> tuple[float, float, str]:
    """One ``mlpipe run``: (client wall seconds, in-task seconds of the steps that ran, status line)."""
    env_bin = checkout / ".venv" / "bin"
    started = time.monotonic()
    proc = subprocess.run([str(env_bin / "mlpipe"), "run", "dags/titanic_pipeline.py"], cwd=checkout,
                          capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{checkout}: mlpipe run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    in_task = 0.0
    for line in proc.stdout.splitlines():
        match = STEP_LINE.match(line)
        if match and "reused" not in match.group(4):
            in_task += float(match.group(3))
    status = next((ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("status")), "?")
    return wall, in_task, status


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[max(0, int(round(0.9 * len(ordered))) - 1)]
    return f"min {ordered[0]:6.2f}  median {statistics.median(values):6.2f}  p90 {p90:6.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs=2, type=Path)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    checkouts = [c.resolve() for c in args.checkouts]
    for checkout in checkouts:  # fills the cache (and starts that checkout's embedded Airflow)
        wall, _, status = run_main_job(checkout)
        print(f"warm-up {checkout}: {wall:.1f} s ({status})", flush=True)
    results: dict[Path, list[tuple[float, float]]] = {c: [] for c in checkouts}
    for i in range(args.rounds):
        for checkout in checkouts if i % 2 == 0 else reversed(checkouts):
            wall, in_task, _ = run_main_job(checkout)
            results[checkout].append((wall, in_task))
        print(f"round {i + 1}: " + "  ".join(f"{c.name} {results[c][-1][0]:.2f} s" for c in checkouts), flush=True)
    print(f"\ncached rerun of `mlpipe run dags/titanic_pipeline.py`, {args.rounds} interleaved rounds (seconds)")
    for checkout, runs in results.items():
        print(f"{checkout.name:<12} wall    {summary([r[0] for r in runs])}")
        print(f"{'':<12} in-task {summary([r[1] for r in runs])}")
    old, new = (statistics.median(r[0] for r in results[c]) for c in checkouts)
    print(f"\nmedian wall ratio {checkouts[1].name}/{checkouts[0].name}: {new / old:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
