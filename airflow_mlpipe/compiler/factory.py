"""DAG factory over a folder of spec files (the submitted pipelines): one DAG per spec, each isolated from the
others.

A DAG file that raises loses every DAG it defines, so a bad spec is skipped and recorded in the one error registry
(:mod:`airflow_mlpipe.compiler.load_errors`, reported as one Airflow import error by the bundle's
``mlpipe_pipeline_errors.py``) while every other spec keeps its DAG.

The generated bundle files import :func:`build_dags_from_folder` from here (``from
airflow_mlpipe.compiler.factory import build_dags_from_folder``), so this path stays.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from airflow_mlpipe.compiler.load_errors import FACTORY_ERRORS, FactoryRun
from airflow_mlpipe.contract.bundle_files import PUBLISHED_STUB_NAME, SPECS_DIRNAME, SUBMITTED_STUB
from airflow_mlpipe.contract.spec import load_spec

__all__ = ["FACTORY_ERRORS", "PUBLISHED_STUB_NAME", "SPECS_DIRNAME", "SUBMITTED_STUB", "build_dags_from_folder"]

FACTORY = "submitted"


def build_dags_from_folder(folder: str | Path) -> dict[str, Any]:
    """Build a DAG for every ``*.json`` spec in ``folder``; returns dag_id → DAG. Specs that cannot be built are
    in ``FACTORY_ERRORS["submitted"]`` (spec file path → message)."""
    from airflow_mlpipe.compiler.dag_builder import build_dag

    run = FactoryRun(FACTORY)
    dags: dict[str, Any] = {}
    for path in sorted(Path(folder).glob("*.json")):
        dag_ids = [path.stem]  # the spec's own name once read: a half-built DAG is forgotten
        with run.pipeline(str(path), f"submitted pipeline spec {path}", dag_ids=dag_ids):
            spec = load_spec(path)
            dag_ids.append(spec.get("name"))
            dags[spec["name"]] = build_dag(spec)
    return dags


def __getattr__(name: str) -> Any:
    """``write_stub`` moved to :mod:`airflow_mlpipe.clients.bundle_stubs` (it needs no Airflow); the init commands
    of existing docker-compose deployments still call it here. Loaded on use only: the compiler does not depend on
    the clients."""
    if name == "write_stub":
        return importlib.import_module("airflow_mlpipe.clients.bundle_stubs").write_stub
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
