"""``mlpipe`` command line: manage the embedded Airflow, run pipelines, list and show runs, and manage published
pipelines, endpoints and schedules (``cli_published``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from airflow_mlpipe.contract.exceptions import UserErrorException


def _workspace():
    from airflow_mlpipe.sdk.workspace import Workspace

    return Workspace.from_config()


def _parse_params(items: Sequence[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserErrorException(f"--param expects NAME=VALUE, got {item!r}")
        params[name.strip()] = value
    return params


# ---------------------------------------------------------------------------------------------- airflow
def _cmd_airflow_start(args: argparse.Namespace) -> int:
    from airflow_mlpipe.clients import local_airflow

    ws = _workspace()
    if not ws.is_embedded:
        print(f"This workspace uses a remote Airflow at {ws.airflow_config['url']}; nothing to start.")
        return 0
    already = local_airflow.status(ws)
    if already is None:
        print("Starting the embedded Airflow (about 30 s)...", flush=True)
    info = local_airflow.start(ws, dags_folder=args.dags_folder, port=args.port, timeout=args.timeout)
    print(("Airflow is already running" if already is not None else "Airflow is running") + f" for {ws.home}")
    print(f"  UI:        {info.url}")
    print(f"  user:      {info.username}")
    print(f"  password:  {info.password}")
    print(f"  DAGs:      {info.dags_folder}")
    print(f"  submitted: {local_airflow.submitted_dags_folder(ws)}")
    print(f"  logs:      {ws.airflow_home / 'logs' / 'components'}")
    print("Stop it with: mlpipe airflow stop")
    return 0


def _cmd_airflow_stop(args: argparse.Namespace) -> int:
    from airflow_mlpipe.clients import local_airflow

    ws = _workspace()
    report = local_airflow.shutdown(ws, timeout=args.timeout)
    if report:
        print(f"Stopped the embedded Airflow of {ws.home}; no process of it is left:")
        print("\n".join(report.lines()))
    else:
        print(f"The embedded Airflow of {ws.home} was not running")
    return 0


def _cmd_airflow_status(args: argparse.Namespace) -> int:
    from airflow_mlpipe.clients import local_airflow

    ws = _workspace()
    if not ws.is_embedded:
        from airflow_mlpipe.clients.airflow_rest import AirflowAPIError, client_for

        url = ws.airflow_config["url"]
        try:
            health = client_for(ws).health()
        except AirflowAPIError as exc:
            print(f"Remote Airflow at {url}: unreachable ({exc})")
            return 1
        states = ", ".join(f"{k}={v.get('status')}" for k, v in health.items() if isinstance(v, dict))
        print(f"Remote Airflow at {url}: {states}")
        return 0
    info = local_airflow.status(ws)
    if info is None:
        print(f"The embedded Airflow of {ws.home} is not running (start it with: mlpipe airflow start)")
        return 1
    print(f"Airflow is running for {ws.home}")
    print(f"  UI:       {info.url}")
    print(f"  user:     {info.username}")
    print(f"  password: {info.password}")
    print(f"  DAGs:     {info.dags_folder}")
    print("  pids:     " + ", ".join(f"{k}={v}" for k, v in info.pids.items()))
    return 0


# ---------------------------------------------------------------------------------------------- runs
def _cmd_run(args: argparse.Namespace) -> int:
    from airflow_mlpipe import runner

    return int(
        runner.run_pipeline_file(
            args.pipeline_file,
            experiment=args.experiment,
            parameters=_parse_params(args.param),
            regenerate_outputs=args.regenerate_outputs,
            wait=not args.no_wait,
            unreachable_timeout=args.unreachable_timeout,
        )
    )


def _cmd_plan(args: argparse.Namespace) -> int:
    from airflow_mlpipe import runner

    print(runner.plan_pipeline_file(args.pipeline_file, parameters=_parse_params(args.param),
                                    regenerate_outputs=args.regenerate_outputs))
    return 0


def _cmd_runs_list(args: argparse.Namespace) -> int:
    from airflow_mlpipe import runner

    print(runner.list_runs(_workspace(), experiment=args.experiment, limit=args.limit))
    return 0


def _cmd_runs_show(args: argparse.Namespace) -> int:
    from airflow_mlpipe import runner

    print(runner.show_run(_workspace(), args.run_id))
    return 0


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpipe", description="Azure ML SDK v1 pipelines on Apache Airflow")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    af = sub.add_parser("airflow", help="manage the embedded Airflow of this workspace")
    af_sub = af.add_subparsers(dest="airflow_command", metavar="ACTION")
    af_sub.required = True
    p = af_sub.add_parser("start", help="start Airflow (api-server, scheduler, dag-processor, triggerer)")
    p.add_argument("--dags-folder", metavar="DIR", help="folder of your own DAG files (default: ./dags)")
    p.add_argument("--port", type=int, metavar="N", help="api-server port (default 8080, or a free one)")
    p.add_argument("--timeout", type=float, default=180, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_airflow_start)
    p = af_sub.add_parser("stop", help="stop the embedded Airflow")
    p.add_argument("--timeout", type=float, default=30, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_airflow_stop)
    p = af_sub.add_parser("status", help="show whether Airflow is running, its URL and credentials")
    p.set_defaults(func=_cmd_airflow_status)

    p = sub.add_parser("run", help="submit a pipeline file and (by default) wait for it")
    p.add_argument("pipeline_file", metavar="PIPELINE_FILE")
    p.add_argument("--experiment", metavar="NAME")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", default=[],
                   help="pipeline parameter value (repeatable)")
    p.add_argument("--regenerate-outputs", action="store_true", help="do not reuse cached step outputs")
    p.add_argument("--no-wait", action="store_true", help="return once the run is submitted")
    p.add_argument("--unreachable-timeout", type=float, metavar="SECONDS",
                   help="give up when Airflow does not answer for this long while waiting "
                        "(default: $MLPIPE_AIRFLOW_UNREACHABLE_TIMEOUT, else 300)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("plan", help="predict which steps a run would reuse and which would run, and why")
    p.add_argument("pipeline_file", metavar="PIPELINE_FILE")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", default=[],
                   help="pipeline parameter value (repeatable)")
    p.add_argument("--regenerate-outputs", action="store_true", help="plan a run that reuses nothing")
    p.set_defaults(func=_cmd_plan)

    runs = sub.add_parser("runs", help="list or show pipeline runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    runs_sub.required = True
    p = runs_sub.add_parser("list", help="list recent pipeline runs")
    p.add_argument("--experiment", metavar="NAME")
    p.add_argument("--limit", type=int, default=20, metavar="N")
    p.set_defaults(func=_cmd_runs_list)
    p = runs_sub.add_parser("show", help="show one pipeline run with its steps")
    p.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(func=_cmd_runs_show)

    from airflow_mlpipe.cli_published import add_parsers

    add_parsers(sub)  # pipelines, endpoints, schedules
    from airflow_mlpipe.cli_databricks import add_parsers as add_databricks_parsers

    add_databricks_parsers(sub)  # the local Databricks emulator
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UserErrorException, FileNotFoundError) as exc:
        print(f"mlpipe: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a clear one-line message for operational errors
        from airflow_mlpipe.clients.airflow_rest import AirflowAPIError
        from airflow_mlpipe.clients.databricks_connection import EmulatorError
        from airflow_mlpipe.clients.local_airflow import LocalAirflowError

        if isinstance(exc, AirflowAPIError | LocalAirflowError | EmulatorError | TimeoutError):
            print(f"mlpipe: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
