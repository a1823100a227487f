"""Benchmark: the DataTransferStep copy engine against plain fsspec, on Azurite (Blob) and moto (S3).

Data: ``--files`` files of ``--size-mb`` MB in total (default 1 GB in 200 files of random bytes), generated once
into a temp folder and uploaded to Azurite once. Each round, interleaved (the order alternates per round):
(a) Blob -> local with ``copy()`` vs ``azfs.get(src, dst, recursive=True)``; (b) local -> S3 with ``copy()`` vs
``s3fs.put(src, dst, recursive=True)``. ``copy()`` also hashes every byte, publishes atomically and writes its
markers. Target: ours >= 0.9x the speed of plain fsspec (time_ours <= time_fsspec / 0.9).

    .venv/bin/python benchmarks/bench_file_transfer.py [--rounds 20] [--size-mb 1000] [--files 200] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _stats(name: str, times: list[float], mb: float) -> str:
    q = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
    med = statistics.median(times)
    return (f"  {name:<28} min {min(times):6.2f} s  median {med:6.2f} s  p90 {q:6.2f} s  "
            f"({mb / med:6.1f} MB/s at the median)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--size-mb", type=float, default=1000)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    from fsspec.implementations.local import LocalFileSystem

    from airflow_mlpipe.data.file_copy import copy
    from tests.helpers.storage_servers import _stop, new_bucket, new_container, start_azurite, start_moto

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the servers and cleans up
    work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-xfer-"))
    procs = []
    (work / "azurite").mkdir()
    (work / "moto").mkdir()
    try:
        pa, azurite = start_azurite(str(work / "azurite"))
        procs.append(pa)
        pm, moto = start_moto(str(work / "moto"))
        procs.append(pm)
        az, s3, local = azurite.filesystem(), moto.filesystem(), LocalFileSystem()
        container, bucket = new_container(azurite), new_bucket(moto)
        size = int(args.size_mb * 1e6 / args.files)
        src = work / "src"
        src.mkdir()
        for i in range(args.files):
            (src / f"part-{i:04d}.bin").write_bytes(os.urandom(size))
        total_mb = size * args.files / 1e6
        t0 = time.perf_counter()
        az.put(str(src) + "/", f"{container}/data/", recursive=True)
        print(f"data: {args.files} files x {size / 1e6:.1f} MB = {total_mb:.0f} MB; uploaded to Azurite in "
              f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs; workers={args.workers}")

        def blob_ours(dst: str) -> None:
            copy(az, f"{container}/data", local, dst, workers=args.workers)

        def blob_fsspec(dst: str) -> None:
            az.get(f"{container}/data/", dst + "/", recursive=True)

        def s3_ours(dst: str) -> None:
            copy(local, str(src), s3, f"{bucket}/{dst}", workers=args.workers)

        def s3_fsspec(dst: str) -> None:
            s3.put(str(src) + "/", f"{bucket}/{dst}/", recursive=True)

        variants: dict[str, Callable[[str], None]] = {
            "blob->local copy()": blob_ours, "blob->local azfs.get": blob_fsspec,
            "local->s3 copy()": s3_ours, "local->s3 s3fs.put": s3_fsspec}
        times: dict[str, list[float]] = {k: [] for k in variants}
        pairs = [("blob->local copy()", "blob->local azfs.get"), ("local->s3 copy()", "local->s3 s3fs.put")]
        for r in range(args.rounds):
            for pair in pairs:
                for name in (pair if r % 2 == 0 else pair[::-1]):
                    if name.startswith("blob"):
                        dst = str(work / f"dl-{r}")
                    else:
                        dst = f"r{r}-{name.split()[1].strip('()').replace('.', '')}"
                    t0 = time.perf_counter()
                    variants[name](dst)
                    times[name].append(time.perf_counter() - t0)
                    if name.startswith("blob"):
                        shutil.rmtree(dst)
                    else:
                        s3.rm(f"{bucket}/{dst}", recursive=True)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)
        print(f"\n{args.rounds} rounds, {total_mb:.0f} MB in {args.files} files:")
        for name in variants:
            print(_stats(name, times[name], total_mb))
        for ours, theirs in pairs:
            ratio = statistics.median(times[theirs]) / statistics.median(times[ours])
            print(f"  speed of {ours} / {theirs} (ratio of medians): {ratio:.2f}x  "
                  f"[target >= 0.90x: {'met' if ratio >= 0.9 else 'NOT met'}]")
    finally:
        for proc in procs:
            _stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
