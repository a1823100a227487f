"""PythonScriptStepOperator: runs a PythonScriptStep on the worker and hands its outputs on through XCom."""

from __future__ import annotations

from airflow_mlpipe.operators.base import MlpipeStepOperator


class PythonScriptStepOperator(MlpipeStepOperator):
    """The return value (XCom) maps each output to ``{uri, content_hash, format, ...}`` for consumers (and plain
    ``@task`` code). A cache hit is a skipped task. Its body is the registry's runtime for the kind."""
