"""The emulator's command line, callable from the project's CLI as ``main(argv)``.

    start  --home DIR [--port N] [--token T]   start in the background; prints host, port, pid, url as JSON
    stop   --home DIR                          stop it and every process it started
    status --home DIR                          JSON; exit code 0 when running, 3 when not
    import LOCAL_NOTEBOOK WORKSPACE_PATH --home DIR [--no-overwrite]
    serve  --home DIR [--port N]               run in the foreground (what ``start`` launches)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from airflow_mlpipe.emulators.databricks import daemon


def build_parser(prog: str = "python -m airflow_mlpipe.emulators.databricks") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="A local Databricks emulator running real Spark.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status", "serve", "import"):
        command = commands.add_parser(name)
        command.add_argument("--home", required=True, type=Path, help="the emulator's data folder")
        if name in ("start", "serve"):
            command.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
        if name == "start":
            command.add_argument("--token", default=None, help="require this token from clients")
        if name == "import":
            command.add_argument("local_notebook", type=Path)
            command.add_argument("workspace_path")
            command.add_argument("--no-overwrite", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "start":
        print(json.dumps(daemon.start(args.home, args.port, args.token)))
        return 0
    if args.command == "stop":
        stopped = daemon.stop(args.home)
        print(json.dumps({"stopped": stopped}))
        return 0
    if args.command == "status":
        info = daemon.status(args.home)
        print(json.dumps(info))
        return 0 if info["running"] else 3
    if args.command == "serve":
        return daemon.serve(args.home, args.port)
    obj = daemon.import_notebook(args.home, args.local_notebook, args.workspace_path,
                                 overwrite=not args.no_overwrite)
    print(json.dumps(obj))
    return 0
