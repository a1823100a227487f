"""v1 ``azureml.train.automl.run``: ``AutoMLRun``, the class ``AutoMLStepRun`` extends (``get_best_child``,
``get_output``, ``get_children``)."""

from __future__ import annotations

from typing import Any

from ..._reexport import reexport

_reexported, __dir__ = reexport(
    __name__,
    ("AutoMLRun",),
)


def __getattr__(name: str) -> Any:
    """``AutoMLRun`` lives beside ``AutoMLStepRun`` (not a top-level export); anything else as every compat
    module answers."""
    if name == "AutoMLRun":
        from airflow_mlpipe.sdk.steps.automl_step import AutoMLRun

        globals()[name] = AutoMLRun
        return AutoMLRun
    return _reexported(name)
