"""The response and body models of the UI routes (:mod:`airflow_mlpipe.plugins.ui_api`): the contract the React
views read (``plugins/www/src/types.ts`` mirrors them), shown in the API's OpenAPI description."""

# no ``from __future__ import annotations``: FastAPI and pydantic read these annotations as objects
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class UiDataRef(BaseModel):
    Name: str
    Uri: str | None
    Size: int | None
    Files: int | None
    ContentHash: str | None
    Tabular: bool


class UiReusedFrom(BaseModel):
    PipelineRunId: str
    DagId: str
    DagRunId: str
    TaskId: str
    StepRunId: str


class UiWaitingFor(BaseModel):
    StepRunId: str | None
    DagId: str | None
    DagRunId: str | None
    TaskId: str | None
    Since: str | None
    Description: str | None


class UiStepSummary(BaseModel):
    Name: str
    TaskId: str
    Kind: str | None
    Status: str
    StartTime: str | None
    EndTime: str | None
    DurationSeconds: float | None
    Reused: bool
    ReusedFrom: UiReusedFrom | None
    CacheReason: str | None
    MissReasons: list[str]
    WaitingFor: UiWaitingFor | None = None
    Inputs: list[UiDataRef]
    Outputs: list[UiDataRef]
    Metrics: dict[str, Any]


class UiCache(BaseModel):
    Decision: Literal["reused", "computed", "no-reuse", "pending"]
    Key: str | None
    Components: dict[str, Any] | None
    Reasons: list[str]


class UiTable(BaseModel):
    Name: str
    Columns: list[str]
    Rows: list[list[Any]]


class UiImage(BaseModel):
    Name: str
    Url: str


class UiLeaderboardRow(BaseModel):
    Iteration: int
    Model: str
    Score: float | None
    TrainingSeconds: float | None


class UiLeaderboard(BaseModel):
    PrimaryMetric: str
    BestIteration: int | None
    Rows: list[UiLeaderboardRow]


class UiStepView(UiStepSummary):
    Cache: UiCache
    Tables: list[UiTable]
    Images: list[UiImage]
    Leaderboard: UiLeaderboard | None


class UiRunRef(BaseModel):
    Id: str
    DagId: str
    DagRunId: str
    Experiment: str
    Status: str
    CreationTime: str | None


class UiRun(UiRunRef):
    EndTime: str | None
    Parameters: dict[str, Any]


class UiPipelineView(BaseModel):
    Run: UiRun
    Steps: list[UiStepSummary]
    Metrics: dict[str, Any]


class UiPreview(BaseModel):
    Columns: list[str]
    Rows: list[list[Any]]
    TotalRows: int | None


class UiExperimentRun(BaseModel):
    Id: str
    DagRunId: str
    Status: str
    CreationTime: str | None
    Parameters: dict[str, Any]
    Metrics: dict[str, float]


class UiCurvePoint(BaseModel):
    Iteration: int
    Score: float


class UiCurve(BaseModel):
    RunId: str
    Step: str
    Metric: str
    Points: list[UiCurvePoint]


class UiExperimentView(BaseModel):
    Runs: list[UiExperimentRun]
    Curves: list[UiCurve]


class UiParameter(BaseModel):
    Name: str
    Type: str
    Default: Any


class UiPublishedPipeline(BaseModel):
    Id: str
    Name: str
    Version: str | None
    Status: str
    DagId: str
    Description: str | None
    TotalRunSteps: int | None
    Parameters: list[UiParameter]
    CanSubmit: bool
    CanManage: bool


class UiEndpointVersion(BaseModel):
    Version: str
    PipelineId: str
    PipelineName: str | None
    DagId: str | None


class UiEndpoint(BaseModel):
    Id: str
    Name: str
    Status: str
    DefaultVersion: str
    Versions: list[UiEndpointVersion]
    CanSubmit: bool
    CanManage: bool


class UiSchedule(BaseModel):
    Id: str
    Name: str
    Status: str
    PipelineId: str | None
    EndpointId: str | None
    DagId: str | None
    Recurrence: str | None
    NextRun: str | None
    CanManage: bool


class UiPublishedView(BaseModel):
    Pipelines: list[UiPublishedPipeline]
    Endpoints: list[UiEndpoint]
    Schedules: list[UiSchedule]


class UiDefaultVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    Version: StrictStr = Field(..., min_length=1, max_length=20, examples=["1"])


class UiSummaryRun(UiRunRef):
    Steps: int
    ReusedSteps: int


class UiSummaryView(BaseModel):
    Runs: list[UiSummaryRun]
    StepsTotal: int
    StepsReused: int
    ReusedShare: float | None
