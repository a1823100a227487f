"""DataTransferStepOperator: runs a DataTransferStep's copy on the worker and hands the destination on."""

from __future__ import annotations

from airflow_mlpipe.operators.base import MlpipeStepOperator


class DataTransferStepOperator(MlpipeStepOperator):
    """The copy streams between the two datastores inside the task (progress in the task log); the XCom value is
    the destination with its content hash, so later steps read the copy. A cache hit is a skipped task."""

    ui_color = "#bae6fd"
