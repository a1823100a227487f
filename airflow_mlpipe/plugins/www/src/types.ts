/** The JSON shapes of the plugin's UI routes (`/mlpipe/api/v1/ui/...`), as in the UI data contract (issue 14). */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The props Airflow's UI passes to a react_apps component (strings or undefined). */
export interface PluginProps {
  dagId?: string;
  runId?: string;
  taskId?: string;
  mapIndex?: string;
}

/** One input or output of a step. */
export interface DataRef {
  Name: string;
  Uri: string | null;
  Size: number | null;
  Files: number | null;
  ContentHash: string | null;
  Tabular: boolean;
}

/** The run that produced the outputs a reused step took. */
export interface ReusedFrom {
  PipelineRunId: string;
  DagId: string;
  DagRunId: string;
  TaskId: string;
  StepRunId: string;
}

export interface WaitingFor {
  StepRunId: string | null;
  DagId: string | null;
  DagRunId: string | null;
  TaskId: string | null;
  Since: string | null;
  Description: string | null;
}

export interface StepSummary {
  Name: string;
  TaskId: string;
  Kind: string | null;
  Status: string;
  StartTime: string | null;
  EndTime: string | null;
  DurationSeconds: number | null;
  Reused: boolean;
  ReusedFrom: ReusedFrom | null;
  CacheReason: string | null;
  MissReasons: string[];
  /** set while the step is deferred because another run computes the same cache key: that run */
  WaitingFor: WaitingFor | null;
  Inputs: DataRef[];
  Outputs: DataRef[];
  Metrics: Record<string, Json>;
}

/** GET ui/dags/{dag_id}/runs/{dag_run_id}/pipeline */
export interface PipelineView {
  Run: RunInfo & {
    EndTime: string | null;
    Parameters: Record<string, Json>;
  };
  Steps: StepSummary[];
  Metrics: Record<string, Json>;
}

export type CacheDecision = "reused" | "computed" | "no-reuse" | "pending";

export interface LoggedTable {
  Name: string;
  Columns: string[];
  Rows: Json[][];
}

export interface LeaderboardRow {
  Iteration: number;
  Model: string;
  Score: number | null;
  TrainingSeconds: number | null;
}

export interface Leaderboard {
  PrimaryMetric: string;
  BestIteration: number | null;
  Rows: LeaderboardRow[];
}

/** GET ui/dags/{dag_id}/runs/{dag_run_id}/steps/{task_id} */
export interface StepView extends StepSummary {
  Cache: {
    Decision: CacheDecision;
    Key: string | null;
    Components: Record<string, Json> | null;
    Reasons: string[];
  };
  Tables: LoggedTable[];
  Images: { Name: string; Url: string }[];
  Leaderboard: Leaderboard | null;
}

/** GET ui/dags/{dag_id}/runs/{dag_run_id}/steps/{task_id}/preview?port=&side=&rows= */
export interface Preview {
  Columns: string[];
  Rows: Json[][];
  TotalRows: number | null;
}

export interface ExperimentRun {
  Id: string;
  DagRunId: string;
  Status: string;
  CreationTime: string | null;
  Parameters: Record<string, Json>;
  Metrics: Record<string, number>;
}

export interface Curve {
  RunId: string;
  Step: string;
  Metric: string;
  Points: { Iteration: number; Score: number }[];
}

/** GET ui/dags/{dag_id}/experiment?limit= (newest first) */
export interface ExperimentView {
  Runs: ExperimentRun[];
  Curves: Curve[];
}

export interface PipelineParameter {
  Name: string;
  Type: string;
  Default: Json;
}

export interface PublishedPipeline {
  Id: string;
  Name: string;
  Version: string | null;
  Status: string;
  DagId: string;
  Description: string | null;
  TotalRunSteps: number | null;
  Parameters: PipelineParameter[];
  CanSubmit: boolean;
  CanManage: boolean;
}

export interface EndpointVersion {
  Version: string;
  PipelineId: string;
  PipelineName: string | null;
  DagId: string | null;
}

export interface PipelineEndpoint {
  Id: string;
  Name: string;
  Status: string;
  DefaultVersion: string;
  Versions: EndpointVersion[];
  CanSubmit: boolean;
  CanManage: boolean;
}

export interface PipelineSchedule {
  Id: string;
  Name: string;
  Status: string;
  PipelineId: string | null;
  EndpointId: string | null;
  DagId: string | null;
  Recurrence: string | null;
  NextRun: string | null;
  CanManage: boolean;
}

/** GET ui/published */
export interface PublishedView {
  Pipelines: PublishedPipeline[];
  Endpoints: PipelineEndpoint[];
  Schedules: PipelineSchedule[];
}

/** POST /mlpipe/api/v1/PipelineRuns/PipelineSubmit/{id} and PipelineEndpointSubmit/Id/{id} */
export interface SubmissionInfo {
  ExperimentName: string;
  ParameterAssignments: Record<string, string | number | boolean>;
  DataPathAssignments?: Record<string, { DataStoreName: string; RelativePath: string }>;
}

/** The part of the v1 PipelineRunEntity the UI reads. */
export interface SubmittedRun {
  Id: string;
  DagId: string;
  DagRunId: string;
}

/** What the pipeline and summary views both say of a pipeline run. */
export interface RunInfo extends SubmittedRun {
  Experiment: string;
  Status: string;
  CreationTime: string | null;
}

export interface SummaryRun extends RunInfo {
  Steps: number;
  ReusedSteps: number;
}

/** GET ui/summary?limit= */
export interface SummaryView {
  Runs: SummaryRun[];
  StepsTotal: number;
  StepsReused: number;
  ReusedShare: number | null;
}
