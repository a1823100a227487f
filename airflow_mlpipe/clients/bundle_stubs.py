"""The generated files of the workspace's submitted-pipelines DAG bundle (``<airflow home>/submitted``).

Writing them needs no Airflow and no compiler: they are three small Python files that Airflow's DAG processor
parses, each calling one compiler entry point. ``mlpipe airflow start`` and every submission (re)write them, so
the files of existing workspaces follow the current import paths; the old paths they used
(``airflow_mlpipe.sdk.published.build_published_dags``) stay importable for files copied by hand.
"""

from __future__ import annotations

from pathlib import Path

from airflow_mlpipe.contract.bundle_files import (
    ERRORS_STUB_NAME,
    PUBLISHED_STUB_NAME,
    SPECS_DIRNAME,
    SUBMITTED_STUB,
)

__all__ = ["ERRORS_STUB_NAME", "PUBLISHED_STUB_NAME", "SPECS_DIRNAME", "SUBMITTED_STUB", "write_stub"]

STUB = '''"""airflow-mlpipe: DAGs of submitted pipelines (generated; one DAG per spec in ./specs)."""
from airflow_mlpipe.compiler.factory import build_dags_from_folder

build_dags_from_folder(__file__.rsplit("/", 1)[0] + "/specs")
'''

PUBLISHED_STUB = '''"""airflow-mlpipe: DAGs of published pipelines, endpoints and schedules (generated; from the store)."""
from airflow_mlpipe.compiler.published import build_published_dags
from airflow_mlpipe.workspace import Workspace

build_published_dags(Workspace.from_config(), served_by_bundle=True)
'''

ERRORS_STUB = '''"""airflow-mlpipe: the pipelines of this bundle that could not be built (generated).

Its one import error names each of them; it defines no DAG, so the pipelines that build keep theirs."""
from airflow_mlpipe.compiler.load_errors import raise_pipeline_errors
from airflow_mlpipe.workspace import Workspace

raise_pipeline_errors(__file__.rsplit("/", 1)[0], Workspace.from_config())
'''


def write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def write_stub(folder: Path) -> Path:
    """The generated DAG files of the submitted-pipelines bundle ``folder``: one serves submitted specs
    (``specs/``), one published pipelines, endpoints and schedules, one reports the pipelines that cannot be
    built; nothing needs copying anywhere. Returns the submitted-specs file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPECS_DIRNAME).mkdir(exist_ok=True)
    stub = folder / SUBMITTED_STUB
    write_if_changed(stub, STUB)
    write_if_changed(folder / PUBLISHED_STUB_NAME, PUBLISHED_STUB)
    write_if_changed(folder / ERRORS_STUB_NAME, ERRORS_STUB)
    return stub
