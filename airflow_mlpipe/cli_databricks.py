"""``mlpipe databricks start|stop|status|import``: the workspace's local Databricks emulator, from a shell.

``start`` also points an Airflow connection at it, so a ``DatabricksStep`` whose target uses that connection
runs on the emulator. The emulator itself runs as its own program (``python -m airflow_mlpipe.emulators.databricks``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from airflow_mlpipe.clients import databricks_connection as dbc


def _workspace() -> Any:
    from airflow_mlpipe.cli import _workspace as cli_workspace

    return cli_workspace()


def _cmd_start(args: argparse.Namespace) -> int:
    ws = _workspace()
    info = dbc.connect_emulator(ws, conn_id=args.conn_id)
    print(f"The Databricks emulator of {ws.home} is running")
    print(f"  host:       {info['host']}")
    print(f"  port:       {info['port']}")
    print(f"  url:        {info['url']}")
    print(f"  connection: {info['conn_id']} (Airflow connection, type databricks)")
    print(f"  home:       {info['home']}")
    print("Stop it with: mlpipe databricks stop")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    ws = _workspace()
    stopped = dbc.stop_emulator(ws)
    print(f"Stopped the Databricks emulator of {ws.home}" if stopped
          else f"The Databricks emulator of {ws.home} was not running")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    ws = _workspace()
    info = dbc.emulator_status(ws)
    if args.json:
        print(json.dumps(info, indent=2))
    elif info["running"]:
        print(f"The Databricks emulator of {ws.home} is running")
        print(f"  url:  {info['url']}")
        print(f"  port: {info['port']}")
        print(f"  pid:  {info.get('pid')}")
    else:
        print(f"The Databricks emulator of {ws.home} is not running (start it with: mlpipe databricks start)")
    return 0 if info["running"] else dbc.EMULATOR_DOWN


def _cmd_import(args: argparse.Namespace) -> int:
    ws = _workspace()
    obj = dbc.import_notebook(ws, args.local_notebook, args.workspace_path, overwrite=not args.no_overwrite)
    print(f"Imported {args.local_notebook} as {obj.get('path', args.workspace_path)} "
          f"({obj.get('language', 'PYTHON')} {obj.get('object_type', 'NOTEBOOK')})")
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``databricks`` on the ``mlpipe`` sub-command parser."""
    db = sub.add_parser("databricks", help="run the workspace's local Databricks emulator")
    db_sub = db.add_subparsers(dest="databricks_command", metavar="ACTION")
    db_sub.required = True
    p = db_sub.add_parser("start", help="start the emulator and point an Airflow connection at it")
    p.add_argument("--conn-id", default=dbc.EMULATOR_CONN_ID, metavar="ID",
                   help=f"the Airflow connection to create or update (default {dbc.EMULATOR_CONN_ID})")
    p.set_defaults(func=_cmd_start)
    p = db_sub.add_parser("stop", help="stop the emulator and every process it started")
    p.set_defaults(func=_cmd_stop)
    p = db_sub.add_parser("status", help="whether the emulator runs (exit 0) or not (exit 3), and where")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=_cmd_status)
    p = db_sub.add_parser("import", help="put a local notebook into the emulator's workspace")
    p.add_argument("local_notebook", metavar="LOCAL_NOTEBOOK", help="a .py source notebook or an .ipynb file")
    p.add_argument("workspace_path", metavar="WORKSPACE_PATH", help="e.g. /Users/me/aggregate")
    p.add_argument("--no-overwrite", action="store_true", help="fail if WORKSPACE_PATH exists")
    p.set_defaults(func=_cmd_import)
