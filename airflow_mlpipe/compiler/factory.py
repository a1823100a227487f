"""DAG factory over a folder of spec files: one DAG per spec, each isolated from the others.

A DAG file that raises loses every DAG it defines, so a bad spec is reported as that pipeline's own import
problem (a DAG that fails clearly when run is not built: the error is logged and kept in ``FACTORY_ERRORS``)
while every other spec keeps loading.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow_mlpipe.spec import load_spec

log = logging.getLogger(__name__)
FACTORY_ERRORS: dict[str, str] = {}
SPECS_DIRNAME = "specs"


def build_dags_from_folder(folder: str | Path) -> dict[str, Any]:
    """Build a DAG for every ``*.json`` spec in ``folder``; returns dag_id → DAG."""
    from airflow_mlpipe.compiler.dag_builder import build_dag

    dags: dict[str, Any] = {}
    FACTORY_ERRORS.clear()
    for path in sorted(Path(folder).glob("*.json")):
        try:
            spec = load_spec(path)
            dags[spec["name"]] = build_dag(spec)
        except Exception as exc:  # noqa: BLE001 - one bad spec must not hide the others
            FACTORY_ERRORS[str(path)] = f"{type(exc).__name__}: {exc}"
            log.error("airflow-mlpipe: pipeline spec %s was not loaded: %s", path, exc)
    return dags


STUB = '''"""airflow-mlpipe: DAGs of submitted pipelines (generated; one DAG per spec in ./specs)."""
from airflow_mlpipe.compiler.factory import build_dags_from_folder

build_dags_from_folder(__file__.rsplit("/", 1)[0] + "/specs")
'''


PUBLISHED_STUB = '''"""airflow-mlpipe: DAGs of published pipelines, endpoints and schedules (generated; from the store)."""
from airflow_mlpipe.sdk.published import build_published_dags
from airflow_mlpipe.workspace import Workspace

build_published_dags(Workspace.from_config(), served_by_bundle=True)
'''
#: file names of the generated DAG files in the submitted-pipelines bundle
SUBMITTED_STUB, PUBLISHED_STUB_NAME = "mlpipe_submitted_dags.py", "mlpipe_published_dags.py"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def write_stub(folder: Path) -> Path:
    """The two generated DAG files of the submitted-pipelines bundle: one serves submitted specs (``specs/``),
    the other published pipelines, endpoints and schedules, so no DAG file needs copying anywhere."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPECS_DIRNAME).mkdir(exist_ok=True)
    stub = folder / SUBMITTED_STUB
    _write_if_changed(stub, STUB)
    _write_if_changed(folder / PUBLISHED_STUB_NAME, PUBLISHED_STUB)
    return stub
