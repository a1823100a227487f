"""v1 ``azureml.pipeline.core``: pipelines, pipeline data and parameters, runs, publishing."""

from __future__ import annotations

from ..._reexport import reexport

__getattr__, __dir__ = reexport(
    __name__,
    (
        "Pipeline",
        "PipelineData",
        "PipelineParameter",
        "PipelineRun",
        "StepRun",
        "StepRunOutput",
        "PipelineStep",
        "StepSequence",
        "PublishedPipeline",
        "PipelineEndpoint",
        "Schedule",
        "ScheduleRecurrence",
        "TimeZone",
        "TrainingOutput",
        "PortDataReference",
        "InputPortBinding",
        "OutputPortBinding",
        "PipelineDataset",
    ),
)
