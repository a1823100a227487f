"""Request and response bodies of the plugin's REST API (its OpenAPI schemas).

v1 entities keep v1's PascalCase keys. Every request field is strict and bounded: what passes these schemas
is what the routes accept, except for what depends on server state (a pipeline's parameter names, uploaded
snapshots), which the routes refuse with a 400 naming it.
"""

# no ``from __future__ import annotations``: FastAPI and pydantic read these annotations as objects
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from airflow_mlpipe.contract.step_kinds import STEP_KINDS

MAX_HASHES = 100_000

ParamValue = StrictStr | StrictInt | StrictFloat | StrictBool


Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: Airflow's DAG/task id characters, not dots only (ids name files)
AirflowId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
                                             max_length=250)]


class MissingObjects(BaseModel):
    hashes: list[Digest] = Field(..., max_length=MAX_HASHES, description="blake3 hex digests of snapshot objects")


class ParameterSpecBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["int", "float", "bool", "string", "dataset", "datapath"]


class OutputSpecBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,255}$")]
    destination_path: StrictStr | None = None


class StepSpecBody(BaseModel):
    """One step of an uploaded PipelineSpec (the fields the server checks; the others are kept as sent)."""

    model_config = ConfigDict(extra="allow")

    name: StrictStr = Field(..., min_length=1, max_length=255)
    task_id: AirflowId
    kind: Literal[tuple(STEP_KINDS)]  # type: ignore[valid-type]  # the names in the step-kind registry
    source_directory: Annotated[str, StringConstraints(pattern=r"^mlpipe-snapshot:[0-9a-f]{64}$")] | None = Field(
        None, description="the uploaded snapshot manifest of the step's code (upload its objects first)")
    script_name: StrictStr | None = Field(None, min_length=1, max_length=1024)
    depends_on: list[StrictStr] = []
    inputs: list[dict[StrictStr, Any]] = []
    outputs: list[OutputSpecBody] = []
    arguments: list[dict[StrictStr, Any]] = []
    parameters: list[StrictStr] = []
    hash_paths: list[StrictStr] = []


class PipelineSpecBody(BaseModel):
    """An uploaded PipelineSpec (the contract; see ``airflow_mlpipe/contract/spec.py``)."""

    model_config = ConfigDict(extra="allow")

    spec_version: Literal[1]
    name: AirflowId
    parameters: dict[StrictStr, ParameterSpecBody] = {}
    steps: list[StepSpecBody] = Field(..., min_length=1, max_length=1000)


class UploadAuditEntry(BaseModel):
    At: str | None
    User: str
    Kind: str
    Digest: str
    DagId: str | None = None
    Size: int | None = None
    Client: str | None = None


class SpecAccepted(BaseModel):
    dag_id: str
    spec_hash: str


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
    detail: str


class DataPathAssignment(BaseModel):
    """v1 ``DataPath`` value: a path on a registered datastore."""

    model_config = ConfigDict(extra="forbid")

    DataStoreName: StrictStr
    RelativePath: StrictStr


class PipelineSubmissionInfo(BaseModel):
    """v1 ``PipelineSubmissionInfo`` (PascalCase keys; ``tags`` lower-case as in v1)."""

    model_config = ConfigDict(extra="forbid")

    ExperimentName: StrictStr = Field(..., min_length=1, max_length=255, examples=["My_Pipeline"])
    Description: StrictStr | None = None
    RunSource: StrictStr | None = Field(None, examples=["API"])
    RunType: StrictStr | None = None
    ParameterAssignments: dict[StrictStr, ParamValue] | None = Field(
        None, description="pipeline parameter values, as strings (v1 SDK) or typed JSON values",
        examples=[{"pipeline_arg": "20"}])
    DataPathAssignments: dict[StrictStr, DataPathAssignment] | None = Field(
        None, description="values of DataPath pipeline parameters: a datastore name and a path inside it")
    DataSetDefinitionValueAssignments: dict[StrictStr, dict[StrictStr, Any]] | None = None
    ScheduleId: StrictStr | None = None
    ContinueRunOnStepFailure: StrictBool | None = None
    EnableNotification: StrictBool | None = None
    tags: dict[StrictStr, StrictStr] | None = None
    Properties: dict[StrictStr, StrictStr] | None = None


class RunStatus(BaseModel):
    StatusCode: str
    StatusDetail: str | None = None
    CreationTime: str | None = None
    EndTime: str | None = None


class PipelineRunEntity(BaseModel):
    Id: str
    Status: RunStatus
    Description: str | None = None
    GraphId: str | None = None
    IsSubmitted: bool = True
    HasErrors: bool = False
    ParameterAssignments: dict[str, Any] = {}
    RunHistoryExperimentName: str
    PipelineId: str | None = None
    PipelineEndpointId: str | None = None
    RunSource: str | None = None
    RunType: str = "HTTP"
    TotalRunSteps: int | None = None
    tags: dict[str, Any] = {}
    Properties: dict[str, Any] = {}
    DagId: str
    DagRunId: str
    AirflowUrl: str | None = None


class StepRunEntity(BaseModel):
    Name: str
    TaskId: str
    StepRunId: str
    Status: str
    Reused: bool = False
    ReusedRunId: str | None = None
    StartTime: str | None = None
    EndTime: str | None = None
    Outputs: dict[str, Any] = {}
    Error: str | None = None


class RunMetrics(BaseModel):
    RunId: str
    Metrics: dict[str, Any]
    Steps: dict[str, dict[str, Any]]


class PublishedPipelineEntity(BaseModel):
    Id: str
    Name: str
    Description: str | None = None
    Version: str | None = None
    GraphId: str
    DagId: str
    TotalRunSteps: int | None = None
    ParameterAssignments: dict[str, Any] = {}
    ParameterTypes: dict[str, Any] = {}
    Url: str
    EntityStatus: str
    ContinueRunOnStepFailure: bool = False
    CreatedDate: str | None = None
    LastModifiedDate: str | None = None
    Etag: str | None = None


class PipelineVersionEntity(BaseModel):
    Version: str
    PipelineId: str


class PipelineEndpointEntity(BaseModel):
    Id: str
    Name: str
    Description: str | None = None
    DefaultVersion: str
    EntityStatus: str
    PipelineVersionList: list[PipelineVersionEntity]
    Url: str
    SwaggerUrl: str
    CreatedDate: str | None = None
    LastModifiedDate: str | None = None
