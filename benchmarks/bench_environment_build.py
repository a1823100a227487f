"""Benchmark: building a step environment with uv, and reusing it.

A 3-package environment (tabulate==0.9.0, rich, attrs; plus the step runtime's packages at the worker's versions)
is built into a fresh workspace home each round (uv's cache warm: what every build after a worker's first sees),
then asked for again (reuse: marker check and lock-free path). Rounds interleave; ``--cold`` adds builds with an
empty uv cache (everything downloaded from PyPI: a worker's very first build).

    uv run python benchmarks/bench_environment_build.py [--rounds 5] [--cold 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

PACKAGES = ["tabulate==0.9.0", "rich", "attrs"]


def _figures(label: str, values: list[float]) -> None:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    print(f"{label:<34} n={len(values):<3} min {min(values):8.3f}s  median {statistics.median(values):8.3f}s  "
          f"p90 {p90:8.3f}s")


def main(argv: list[str] | None = None) -> None:
    from airflow_mlpipe.runtime import environments as envs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cold", type=int, default=0, help="builds with an empty uv cache (downloads)")
    args = parser.parse_args(argv)
    log = logging.getLogger("bench")
    spec = {"name": "bench", "python": {"conda": {"pip": PACKAGES}}}
    plan = envs.plan_environment(spec)
    print(f"environment {plan.content_hash}: {', '.join(plan.requirements)}")
    root = Path(tempfile.mkdtemp(prefix="mlpipe-envbench-"))
    builds: list[float] = []
    reuses: list[float] = []
    try:
        envs.ensure_environment(root / "warmup", plan, log)  # uv's cache holds every wheel from here on
        for i in range(args.rounds):
            home = root / f"home{i}"
            start = time.perf_counter()
            _, built = envs.ensure_environment(home, plan, log)
            builds.append(time.perf_counter() - start)
            assert built
            for _ in range(3):
                start = time.perf_counter()
                _, built = envs.ensure_environment(home, plan, log)
                reuses.append(time.perf_counter() - start)
                assert not built
            shutil.rmtree(home)
        cold: list[float] = []
        for i in range(args.cold):
            cache = root / f"uv-cache{i}"
            os.environ["UV_CACHE_DIR"] = str(cache)
            try:
                start = time.perf_counter()
                envs.ensure_environment(root / f"cold{i}", plan, log)
                cold.append(time.perf_counter() - start)
            finally:
                os.environ.pop("UV_CACHE_DIR")
                shutil.rmtree(cache, ignore_errors=True)
        _figures("first build (uv cache warm)", builds)
        _figures("reuse of the built environment", reuses)
        if cold:
            _figures("first build (empty uv cache)", cold)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
