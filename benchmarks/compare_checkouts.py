"""Benchmark driver: one benchmark on two checkouts (e.g. OLD commit vs working tree), interleaved round by round.

The machine is small and shared, so a before/after comparison made of two separate runs mostly measures the
noise of the moment. This driver alternates the checkouts within every round (old, new, then new, old, ...) so
both see the same noise, and prints, per checkout and per figure, min / median / p90 and the new/old ratio of
the medians. Each checkout runs with its own ``.venv`` (made with ``python3 -m uv sync --frozen`` if missing),
its own working directory and its own ``benchmarks/_common.py``, so each imports its own airflow_mlpipe.

- ``chain`` / ``cached`` (bench_chain_overhead.py / bench_cached_rerun.py): one long-lived child per checkout
  sets up that bench's DAG folder and embedded Airflow (own home, own port) with the checkout's ``_common.py``,
  warms each DAG up once, then answers "round" commands: each DAG once, in the bench's order. Figures per DAG:
  client wall, Airflow queued->end, in-task (sum over the run's task instances of start->end) and scheduling
  (queued->end minus in-task). Both Airflows stay up for the whole run (idle, one of them, while the other works).
- ``cache_check`` / ``factory`` (bench_cache_check.py / bench_factory_parse.py): each round runs the checkout's
  own bench script once with small per-invocation sizes and parses the figures it prints.

    uv run python benchmarks/compare_checkouts.py OLD NEW --bench {chain,cached,cache_check,factory} [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

AIRFLOW_BENCHES = {
    # bench name -> (bench script, {dag file: (template name, dag_id, steps or None for --steps, allow_reuse)})
    "chain": ("bench_chain_overhead.py", {
        "bench_plain.py": ("PLAIN_CHAIN_DAG", "bench_plain", None, None),
        "bench_mlpipe.py": ("MLPIPE_CHAIN_DAG", "bench_mlpipe", None, False),
    }),
    "cached": ("bench_cached_rerun.py", {
        "bench_one.py": ("PLAIN_CHAIN_DAG", "bench_one", 1, None),
        "bench_cached.py": ("MLPIPE_CHAIN_DAG", "bench_cached", None, True),
    }),
}
FIGURES = ("wall", "airflow", "in_task", "sched")
FIGURE_TEXT = {"wall": "client wall", "airflow": "queued->end", "in_task": "in-task", "sched": "scheduling"}
UNREACHABLE_RETRIES = 3  # reads (dag run state, task instances) the API server did not answer in time
CHILD_TIMEOUT = 900.0  # seconds for start-up + warm-up, and for one round


# ---------------------------------------------------------------------------------------------- shared helpers
def summary(values: list[float], scale: float = 1.0, unit: str = "s") -> str:
    ordered = sorted(v * scale for v in values)
    p90 = ordered[max(0, int(round(0.9 * len(ordered))) - 1)]
    return (f"min {ordered[0]:8.3f}  median {statistics.median(ordered):8.3f}  p90 {p90:8.3f} {unit}"
            f"   (n={len(ordered)})")


def ensure_venv(checkout: Path) -> Path:
    python = checkout / ".venv" / "bin" / "python"
    if not python.exists():
        print(f"{checkout}: no .venv, running `python3 -m uv sync --frozen`", flush=True)
        subprocess.run(["python3", "-m", "uv", "sync", "--frozen"], cwd=checkout, check=True)
    return python


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all bound at once, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def round_orders(checkouts: list[Path], rounds: int) -> list[list[Path]]:
    """old, new / new, old / ... : each checkout goes first in half of the rounds."""
    return [list(checkouts) if i % 2 == 0 else list(reversed(checkouts)) for i in range(rounds)]


def print_ratio(label: str, checkouts: list[Path], old: list[float], new: list[float]) -> None:
    if old and new and statistics.median(old) > 0:
        print(f"  {label:<38} median {checkouts[1].name}/{checkouts[0].name}: "
              f"{statistics.median(new) / statistics.median(old):.3f}")


# ---------------------------------------------------------------------------------------------- Airflow child
def _parse_ts(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None


class _RunIdRecorder:
    """The AirflowClient, remembering the run id of the last trigger (``_common.run_once`` does not return it)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.run_id: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def trigger(self, dag_id: str, *args: Any, **kwargs: Any) -> dict:
        answer = self._client.trigger(dag_id, *args, **kwargs)
        self.run_id = answer["dag_run_id"]
        return answer

    def get_dag_run(self, dag_id: str, run_id: str) -> dict:
        return self._read(self._client.get_dag_run, dag_id, run_id)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._read(self._client.task_instances, dag_id, run_id)

    @staticmethod
    def _read(call: Callable[..., Any], *args: Any) -> Any:
        """A read, again when the API server did not answer in time (a busy machine), as reads are safe to repeat."""
        for attempt in range(UNREACHABLE_RETRIES + 1):
            try:
                return call(*args)
            except Exception as exc:  # the checkout's AirflowAPIError: status 0 = no answer
                if getattr(exc, "status", None) != 0 or attempt == UNREACHABLE_RETRIES:
                    raise
                print(f"retrying a read the API server did not answer: {exc}", file=sys.stderr)
        raise AssertionError("the loop returns or raises")


def _timed_run(common: Any, client: _RunIdRecorder, dag_id: str) -> dict[str, float]:
    wall, airflow = common.run_once(client, dag_id)
    in_task, ran = 0.0, 0
    for ti in client.task_instances(dag_id, client.run_id):
        start, end = _parse_ts(ti.get("start_date")), _parse_ts(ti.get("end_date"))
        if start and end:
            in_task += (end - start).total_seconds()
        ran += ti.get("state") == "success"
    return {"wall": wall, "airflow": airflow, "in_task": in_task, "sched": airflow - in_task, "ran": ran}


def airflow_child(bench: str, steps: int, port: int) -> int:
    """Runs in the checkout's own venv with cwd = the checkout: its _common.py, its airflow_mlpipe."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)  # the answers; everything else goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    checkout = Path.cwd()
    sys.path[:] = [str(checkout / "benchmarks"), str(checkout)] + [
        p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    import _common as common  # the checkout's own: importable only now that sys.path is set

    import airflow_mlpipe

    def on_term(*_: object) -> None:
        raise SystemExit(143)  # so that embedded_airflow's finally stops that checkout's Airflow

    signal.signal(signal.SIGTERM, on_term)
    _, dag_files = AIRFLOW_BENCHES[bench]
    files = {name: getattr(common, tpl).format(dag_id=dag_id, steps=n or steps, allow_reuse=reuse)
             for name, (tpl, dag_id, n, reuse) in dag_files.items()}
    dag_ids = [dag_id for _, dag_id, _, _ in dag_files.values()]
    dags = common.dags_folder(files)
    try:
        with common.embedded_airflow(dags, port) as client:
            recorder = _RunIdRecorder(client)
            for dag_id in dag_ids:  # as _common.compare: wait, unpause, one warm-up run (fills the cache)
                client.wait_for_dag(dag_id, timeout=180)
                client.unpause(dag_id)
                common.run_once(recorder, dag_id)
            proto.write(json.dumps({"ready": True, "airflow_mlpipe": airflow_mlpipe.__file__,
                                    "common": common.__file__, "port": port}) + "\n")
            for line in sys.stdin:
                if line.strip() != "round":
                    break
                proto.write(json.dumps({d: _timed_run(common, recorder, d) for d in dag_ids}) + "\n")
    finally:
        shutil.rmtree(dags.parent, ignore_errors=True)
    return 0


class AirflowChild:
    """The parent's handle on one checkout's child: start, one round, quit."""

    def __init__(self, checkout: Path, python: Path, bench: str, steps: int, port: int, log_dir: Path) -> None:
        self.checkout = checkout
        self.log_path = log_dir / f"{checkout.name}-{port}.log"
        self._log = open(self.log_path, "w")  # closed in quit()
        self.proc = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--child", bench, "--steps", str(steps),
             "--port", str(port)],
            cwd=checkout, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
            env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")})

    def answer(self) -> dict:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], CHILD_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            tail = self.log_path.read_text()[-3000:]
            raise RuntimeError(f"{self.checkout}: benchmark child gave no answer (exit {self.proc.poll()}); "
                               f"log {self.log_path}:\n{tail}")
        return json.loads(line)

    def round(self) -> dict[str, dict[str, float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        return self.answer()

    def quit(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=90)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
        self._log.close()


def run_airflow_bench(args: argparse.Namespace, checkouts: list[Path], pythons: list[Path]) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="mlpipe-compare-"))
    children: dict[Path, AirflowChild] = {}
    try:
        t0 = time.monotonic()
        for checkout, python, port in zip(checkouts, pythons, args.ports or free_ports(2),
                                          strict=True):
            children[checkout] = AirflowChild(checkout, python, args.bench, args.steps, port, log_dir)
        for checkout, child in children.items():
            hello = child.answer()
            print(f"{checkout.name}: embedded Airflow on port {hello['port']}, warmed up "
                  f"({hello['airflow_mlpipe']}); log {child.log_path}", flush=True)
        print(f"both ready after {time.monotonic() - t0:.0f} s", flush=True)
        results: dict[Path, list[dict[str, dict[str, float]]]] = {c: [] for c in checkouts}
        for i, order in enumerate(round_orders(checkouts, args.rounds)):
            for checkout in order:
                results[checkout].append(children[checkout].round())
            print(f"round {i + 1:>2} ({order[0].name} first): " + "   ".join(
                f"{c.name} " + " ".join(f"{d} {r['airflow']:.2f}s" for d, r in results[c][-1].items())
                for c in checkouts), flush=True)
    finally:
        for child in children.values():
            child.quit()
    shutil.rmtree(log_dir, ignore_errors=True)  # kept only when a child failed (the error names its log)
    script, _ = AIRFLOW_BENCHES[args.bench]
    print(f"\n{script}, --steps {args.steps}: {args.rounds} interleaved rounds after one warm-up run per DAG; "
          "Airflow queued->end split into in-task (sum of task instances' start->end) and scheduling (the rest)")
    dag_ids = list(results[checkouts[0]][0])
    for dag_id in dag_ids:
        print(f"\n{dag_id}")
        for checkout in checkouts:
            runs = [r[dag_id] for r in results[checkout]]
            print(f"  {checkout.name:<14} tasks that ran per run: {statistics.median(r['ran'] for r in runs):g}")
            for fig in FIGURES:
                print(f"  {'':<14} {FIGURE_TEXT[fig]:<12} {summary([r[fig] for r in runs])}")
        for fig in FIGURES:
            old, new = ([r[dag_id][fig] for r in results[c]] for c in checkouts)
            print_ratio(f"{dag_id} {FIGURE_TEXT[fig]}", checkouts, old, new)
    mlpipe_id, base_id = dag_ids[-1], dag_ids[0]
    print(f"\nthe bench's own ratio, {mlpipe_id}/{base_id} (median queued->end) per checkout:")
    for checkout in checkouts:
        ratio = (statistics.median(r[mlpipe_id]["airflow"] for r in results[checkout])
                 / statistics.median(r[base_id]["airflow"] for r in results[checkout]))
        print(f"  {checkout.name:<14} {ratio:.3f}")


# ---------------------------------------------------------------------------------------------- script benches
_NUM = r"([\d.]+)"
CACHE_CHECK_FIGURES: list[tuple[str, str, Callable[[argparse.Namespace], str]]] = [
    # (figure, unit, regex builder over the bench's printed lines)
    ("1 MB: cache check per step p50", "ms",
     lambda a: rf"^\s*1 MB input: cache check per step p50 {_NUM} ms"),
    ("1 MB: data-reading step p50", "ms",
     lambda a: rf"^\s*1 MB input: .*step reading the data p50 {_NUM} ms"),
    ("big: cache check per step p50", "ms",
     lambda a: rf"^\s*{a.big_mb} MB input: cache check per step p50 {_NUM} ms"),
    ("big: data-reading step p50", "ms",
     lambda a: rf"^\s*{a.big_mb} MB input: .*step reading the data p50 {_NUM} ms"),
    ("big / 1 MB data-reading step", "x",
     lambda a: rf"^cache check of the data-reading step, {a.big_mb} MB / 1 MB unchanged input: {_NUM}"),
]
FACTORY_FIGURES: list[tuple[str, str, Callable[[argparse.Namespace], str]]] = [
    ("cold parse (fresh process)", "s", lambda a: rf"^\s*cold \(first parse.*\): {_NUM} s"),
    ("warm re-parse (median)", "s", lambda a: rf"^\s*warm \(median of \d+ re-parses\): {_NUM} s"),
]


def script_command(args: argparse.Namespace, python: Path) -> list[str]:
    if args.bench == "cache_check":
        return [str(python), "benchmarks/bench_cache_check.py", "--repeat", str(args.repeat),
                "--steps", str(args.steps), "--big-mb", str(args.big_mb)]
    return [str(python), "benchmarks/bench_factory_parse.py", "--pipelines", str(args.pipelines),
            "--steps", str(args.steps), "--rounds", str(args.inner_rounds)]


def run_script_once(args: argparse.Namespace, checkout: Path, python: Path,
                    figures: list[tuple[str, str, Callable[[argparse.Namespace], str]]]) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="mlpipe-compare-"))  # the benches leave their data behind: drop it
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["TMPDIR"] = str(tmp)
    try:
        started = time.monotonic()
        proc = subprocess.run(script_command(args, python), cwd=checkout, env=env, capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT)
        wall = time.monotonic() - started
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{checkout}: bench failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    values = {"invocation wall": wall}
    for name, _, pattern in figures:
        match = re.search(pattern(args), proc.stdout, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"{checkout}: no {name!r} in the bench's output:\n{proc.stdout}")
        values[name] = float(match.group(1))
    return values


def run_script_bench(args: argparse.Namespace, checkouts: list[Path], pythons: list[Path]) -> None:
    figures = CACHE_CHECK_FIGURES if args.bench == "cache_check" else FACTORY_FIGURES
    if args.bench == "factory" and args.inner_rounds < 2:
        figures = figures[:1]  # with one parse there is no warm re-parse
    python_of = dict(zip(checkouts, pythons, strict=True))
    results: dict[Path, list[dict[str, float]]] = {c: [] for c in checkouts}
    for i, order in enumerate(round_orders(checkouts, args.rounds)):
        for checkout in order:
            results[checkout].append(run_script_once(args, checkout, python_of[checkout], figures))
        print(f"round {i + 1:>2} ({order[0].name} first): " + "   ".join(
            f"{c.name} {figures[0][0]} {results[c][-1][figures[0][0]]:.3f}" for c in checkouts), flush=True)
    cmd = " ".join(script_command(args, Path("python"))[1:])
    print(f"\n{cmd}: {args.rounds} interleaved rounds, one invocation per checkout per round")
    if args.bench == "cache_check":
        print(f"(big input: {args.big_mb} MB, {args.repeat} plans per invocation; medians of each invocation)")
    for name, unit, _ in [*figures, ("invocation wall", "s", None)]:
        print(f"\n{name}")
        for checkout in checkouts:
            print(f"  {checkout.name:<14} {summary([r[name] for r in results[checkout]], unit=unit)}")
        print_ratio(name, checkouts, *([r[name] for r in results[c]] for c in checkouts))


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path, help="OLD NEW")
    parser.add_argument("--bench", choices=[*AIRFLOW_BENCHES, "cache_check", "factory"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ports", type=int, nargs=2, default=None, help="API ports (default: two free ones)")
    parser.add_argument("--repeat", type=int, default=20, help="cache_check: plans per invocation")
    parser.add_argument("--big-mb", type=int, default=1024, help="cache_check: size of the big input")
    parser.add_argument("--pipelines", type=int, default=200, help="factory: published pipelines")
    parser.add_argument("--inner-rounds", type=int, default=2, help="factory: parses per invocation")
    parser.add_argument("--child", choices=list(AIRFLOW_BENCHES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return airflow_child(args.child, args.steps, args.port)
    if len(args.checkouts) != 2 or not args.bench:
        parser.error("give OLD NEW and --bench")
    checkouts = [c.resolve() for c in args.checkouts]
    if checkouts[0].name == checkouts[1].name:
        parser.error("the two checkouts' folder names are used as labels: they must differ")
    pythons = [ensure_venv(c) for c in checkouts]
    started = time.monotonic()
    if args.bench in AIRFLOW_BENCHES:
        run_airflow_bench(args, checkouts, pythons)
    else:
        run_script_bench(args, checkouts, pythons)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
