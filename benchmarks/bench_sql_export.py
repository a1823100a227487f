"""Benchmark: SQL -> Parquet export (ADBC, batched) against ``pandas.read_sql`` + ``to_parquet``.

Creates a PostgreSQL table of ``--rows`` rows (ints, floats, text, timestamp, bool) and one of ``--small-rows``
rows once, then runs interleaved rounds of (a) ``airflow_mlpipe.data.sql_export.export`` to a local Parquet file
and (b) ``pandas.read_sql(query, engine).to_parquet(...)``, each in a fresh subprocess. Prints min / median / p90
of the copy's wall time (measured inside the child, imports excluded) and of the whole process, and each child's
peak RSS; the small table shows whether peak memory grows with the row count. Drops its tables at the end
(``--keep`` keeps them for the next run).

    uv run python benchmarks/bench_sql_export.py [--rounds 5] [--rows 1000000] [--small-rows 250000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _databricks import HEADER, row, summary

URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (each: one export, one pandas)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=250_000, help="second table (0: skip)")
    parser.add_argument("--url", default=URL, help="SQLAlchemy URL of the PostgreSQL database")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark tables for the next run")
    parser.add_argument("--child", choices=["export", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(args: argparse.Namespace) -> int:
    """One measured copy in this (fresh) process; prints JSON with its own timing and peak RSS."""
    import fsspec
    import pandas as pd
    import sqlalchemy as sa

    from airflow_mlpipe.data.sql_export import export

    query = f"SELECT * FROM {args.table}"
    t0 = time.perf_counter()
    if args.child == "export":
        res = export(args.url, query=query, fs=fsspec.filesystem("file"), path=args.out)
        rows = res.rows
    else:
        engine = sa.create_engine(args.url)
        df = pd.read_sql(query, engine)
        df.to_parquet(args.out)
        rows = len(df)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "rss_mb": rss_mb, "bytes": Path(args.out).stat().st_size}))
    return 0


def make_table(url: str, name: str, rows: int) -> None:
    import psycopg2
    from sqlalchemy import make_url

    u = make_url(url)
    conn = psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE tablename = %s", (name,))
        if cur.fetchone()[0]:
            cur.execute(f"SELECT count(*) FROM {name}")
            if cur.fetchone()[0] == rows:
                print(f"reusing table {name} ({rows:,} rows)")
                return
            cur.execute(f"DROP TABLE {name}")
        t0 = time.monotonic()
        cur.execute(f"""CREATE TABLE {name} AS SELECT g::bigint AS id, (g % 1000)::int AS a, (g * 7 % 97)::int AS b,
                        g * 0.25::float8 AS x, sqrt(g)::float8 AS y, 'customer-' || (g % 50000) AS s,
                        timestamp '2024-01-01' + g * interval '1 second' AS ts, g % 3 = 0 AS flag
                        FROM generate_series(1, {rows}) g""")
        cur.execute(f"ANALYZE {name}")
    conn.close()
    print(f"created table {name} ({rows:,} rows) in {time.monotonic() - t0:.1f} s")


def drop_table(url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    engine.dispose()


def run_child(kind: str, url: str, table: str, out: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--url", url, "--table", table,
                           "--out", str(out)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - t0
    out.unlink()
    return result


def mb_row(label: str, values: list[float]) -> str:
    low, mid, p90 = summary(values)
    return f"{label:<52} {low:>6.0f}MB {mid:>6.0f}MB {p90:>6.0f}MB   n={len(values)}"


def compare(url: str, table: str, rows: int, rounds: int, folder: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"export": [], "pandas": []}
    for kind in results:  # warm-up: page cache, first-connection costs
        run_child(kind, url, table, folder / f"warm-{kind}.parquet")
    for i in range(rounds):
        for kind in results:
            results[kind].append(run_child(kind, url, table, folder / f"{kind}.parquet"))
        e, p = results["export"][-1], results["pandas"][-1]
        print(f"  round {i + 1}: export {e['seconds']:.2f} s / {e['rss_mb']:.0f} MB, "
              f"pandas {p['seconds']:.2f} s / {p['rss_mb']:.0f} MB", flush=True)
    print(f"\n{rows:,} rows, {rounds} interleaved rounds after one warm-up each")
    print(HEADER)
    for kind, label in (("export", "mlpipe export (ADBC -> Parquet)"), ("pandas", "pandas read_sql + to_parquet")):
        runs = results[kind]
        print(row(f"{label}: copy wall", [r["seconds"] for r in runs]))
        print(row(f"{label}: process wall", [r["process"] for r in runs]))
        print(mb_row(f"{label}: peak RSS", [r["rss_mb"] for r in runs]))
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    rss = {k: statistics.median(r["rss_mb"] for r in v) for k, v in results.items()}
    print(f"speed-up (median copy wall, pandas / export): {med['pandas'] / med['export']:.1f}x; "
          f"peak RSS export {rss['export']:.0f} MB vs pandas {rss['pandas']:.0f} MB; file "
          f"{results['export'][-1]['bytes'] / 1e6:.1f} MB (export) vs {results['pandas'][-1]['bytes'] / 1e6:.1f} MB")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    sizes = [args.rows] + ([args.small_rows] if args.small_rows else [])
    tables = {n: f"mlpipe_bench_export_{n}" for n in sizes}
    for n, name in tables.items():
        make_table(args.url, name, n)
    summaries = {}
    try:
        with tempfile.TemporaryDirectory(prefix="mlpipe-bench-sql-") as tmp:
            for n, name in tables.items():
                print(f"\n== {n:,} rows ==")
                summaries[n] = compare(args.url, name, n, args.rounds, Path(tmp))
    finally:
        if not args.keep:
            for name in tables.values():
                drop_table(args.url, name)
    if len(summaries) == 2:
        big, small = sizes
        print("\npeak RSS against row count (median):")
        for kind in ("export", "pandas"):
            a = statistics.median(r["rss_mb"] for r in summaries[small][kind])
            b = statistics.median(r["rss_mb"] for r in summaries[big][kind])
            print(f"  {kind:<7} {small:>9,} rows: {a:6.0f} MB   {big:>9,} rows: {b:6.0f} MB   "
                  f"growth {b - a:+.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
