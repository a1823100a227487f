"""One error registry and one error report for every DAG factory (submitted specs, published pipelines with
their endpoint versions and schedules).

Each factory builds each pipeline inside :meth:`FactoryRun.pipeline`: a pipeline that cannot be built (corrupt
spec, incompatible ``spec_version``, unknown step kind, schedules that cannot be combined) is skipped, logged and
recorded in :data:`FACTORY_ERRORS`; every other pipeline keeps its DAG.

The broken pipelines are reported as ONE Airflow import error naming each of them, raised by the bundle's generated
``mlpipe_pipeline_errors.py`` (:func:`raise_pipeline_errors`), not by the factory files themselves: Airflow 3 marks
every DAG of a file that has an import error stale (not scheduled, not triggerable), so a factory file reporting
its own broken pipeline would take all of its good pipelines down with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the latest run of each factory: factory name (``"submitted"``, ``"published"``) → pipeline key → message
FACTORY_ERRORS: dict[str, dict[str, str]] = {}


class PipelineLoadError(Exception):
    """Pipelines whose spec could not be turned into a DAG (reported as one Airflow import error)."""


class FactoryRun:
    """One run of a factory: starts its entry of :data:`FACTORY_ERRORS` afresh (the errors of the latest run only)."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self.errors = FACTORY_ERRORS.setdefault(factory, {})
        self.errors.clear()

    @contextmanager
    def pipeline(self, key: str, label: str, dag_ids: Iterable[str | None] = ()) -> Iterator[None]:
        """Build one pipeline: an exception skips it (forgetting its half-built DAGs ``dag_ids``) and is recorded
        under ``key`` as ``"<label>: <error>"``."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - one bad pipeline must not hide the others
            forget_dags(dag_ids)
            self.errors[key] = f"{label}: {type(exc).__name__}: {exc}"
            log.error("airflow-mlpipe: %s", self.errors[key])


def forget_dags(dag_ids: Iterable[str | None]) -> None:
    """Drop DAGs from Airflow's auto-registration (``with DAG`` registers a DAG on exit even when its body
    raised), so the file being parsed does not define them."""
    wanted = {d for d in dag_ids if d}
    if not wanted:
        return
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    for item in [i for i in DagContext.autoregistered_dags if i[0].dag_id in wanted]:
        DagContext.autoregistered_dags.discard(item)


def pipeline_errors_message(factories: Iterable[str] | None = None) -> str:
    """Every recorded broken pipeline of ``factories`` (default: all), one per ``;``-separated entry."""
    names = sorted(FACTORY_ERRORS) if factories is None else list(factories)
    entries = [errors[k] for name in names for errors in [FACTORY_ERRORS.get(name, {})] for k in sorted(errors)]
    return "; ".join(entries)


def raise_pipeline_errors(bundle_folder: str | Path, workspace: Any) -> None:
    """Body of the bundle's generated ``mlpipe_pipeline_errors.py``: build every pipeline the bundle's factories
    serve, keep none of their DAGs (the factory files define them), and raise ONE :class:`PipelineLoadError`
    naming each pipeline that could not be built. Defines nothing and raises nothing when all are fine."""
    from airflow_mlpipe.compiler.factory import build_dags_from_folder
    from airflow_mlpipe.compiler.published import build_published_dags
    from airflow_mlpipe.contract.bundle_files import SPECS_DIRNAME

    built: dict[str, Any] = {}
    try:
        built.update(build_dags_from_folder(Path(bundle_folder) / SPECS_DIRNAME))
        built.update(build_published_dags(workspace, served_by_bundle=True))
    finally:
        forget_dags(built)
    message = pipeline_errors_message(["submitted", "published"])
    if message:
        raise PipelineLoadError(message)
