/** Fixture answers of the UI routes, shaped as in the UI data contract. */
import type { DataRef, ExperimentView, PipelineView, Preview, PublishedView, StepSummary, StepView, SummaryView }
  from "../src/types";

const rawData: DataRef = {
  ContentHash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  Files: 1,
  Name: "raw_data",
  Size: 2048,
  Tabular: true,
  Uri: "file:///data/store/raw.parquet",
};

const model: DataRef = {
  ContentHash: null,
  Files: 3,
  Name: "model",
  Size: 5 * 1024 * 1024,
  Tabular: false,
  Uri: "abfs://models/run-2/model",
};

export const preparedStep: StepSummary = {
  CacheReason: "cache key 3f2a9c matched the outputs of run manual__2024-05-01",
  DurationSeconds: 0.4,
  EndTime: "2024-05-02T10:00:01Z",
  Inputs: [],
  Kind: "PythonScriptStep",
  Metrics: {},
  MissReasons: [],
  WaitingFor: null,
  Name: "prepare",
  Outputs: [rawData],
  ReusedFrom: {
    DagId: "train_pipeline",
    DagRunId: "manual__2024-05-01",
    PipelineRunId: "run-1",
    StepRunId: "run-1-prepare",
    TaskId: "prepare",
  },
  Reused: true,
  StartTime: "2024-05-02T10:00:00Z",
  Status: "Finished",
  TaskId: "prepare",
};

export const trainStep: StepSummary = {
  CacheReason: "computed: no earlier outputs for this key",
  DurationSeconds: 125,
  EndTime: "2024-05-02T10:02:06Z",
  Inputs: [rawData],
  Kind: "PythonScriptStep",
  Metrics: { accuracy: 0.912345678, losses: [0.9, 0.5, 0.25] },
  MissReasons: ["source train.py changed", "parameter learning_rate changed from 0.1 to 0.01"],
  WaitingFor: null,
  Name: "train",
  Outputs: [model],
  ReusedFrom: null,
  Reused: false,
  StartTime: "2024-05-02T10:00:01Z",
  Status: "Finished",
  TaskId: "train",
};

export const pipelineView: PipelineView = {
  Metrics: { final_auc: 0.87 },
  Run: {
    CreationTime: "2024-05-02T09:59:58Z",
    DagId: "train_pipeline",
    DagRunId: "manual__2024-05-02",
    EndTime: "2024-05-02T10:02:07Z",
    Experiment: "churn",
    Id: "run-2",
    Parameters: { epochs: 10, learning_rate: 0.01 },
    Status: "Finished",
  },
  Steps: [preparedStep, trainStep],
};

export const preview: Preview = {
  Columns: ["customer", "churned"],
  Rows: [["alice", true], ["bob", false]],
  TotalRows: 1000,
};

export const automlStep: StepView = {
  ...trainStep,
  Cache: {
    Components: {
      config: { arguments: [{ literal: "--data" }, { input: "raw_data" }], compute: "local" },
      environment: "sha256:env01",
      inputs: { raw_data: "sha256:9f86d0" },
      params: { learning_rate: 0.01 },
      source: { "train.py": "sha256:ab12cd" },
    },
    Decision: "computed",
    Key: "3f2a9c0d1e",
    Reasons: ["no entry for key 3f2a9c0d1e", "source train.py changed"],
  },
  Images: [
    { Name: "confusion matrix", Url: "mlpipe/api/v1/ui/images/img-1" },
    { Name: "elsewhere", Url: "https://example.org/tracker.png" },
  ],
  Kind: "AutoMLStep",
  Leaderboard: {
    BestIteration: 2,
    PrimaryMetric: "AUC_weighted",
    Rows: [
      { Iteration: 0, Model: "LogisticRegression", Score: 0.81, TrainingSeconds: 12 },
      { Iteration: 1, Model: "RandomForest", Score: 0.86, TrainingSeconds: 30 },
      { Iteration: 2, Model: "LightGBM", Score: 0.91, TrainingSeconds: 21 },
      { Iteration: 3, Model: "XGBoost", Score: null, TrainingSeconds: null },
    ],
  },
  Tables: [{ Columns: ["threshold", "precision"], Name: "pr_curve", Rows: [[0.5, 0.8], [0.7, 0.9]] }],
};

export const experimentView: ExperimentView = {
  Curves: [
    { Metric: "AUC_weighted", Points: [{ Iteration: 0, Score: 0.8 }, { Iteration: 1, Score: 0.85 }], RunId: "run-3",
      Step: "automl" },
    { Metric: "AUC_weighted", Points: [{ Iteration: 0, Score: 0.79 }, { Iteration: 1, Score: 0.83 },
      { Iteration: 2, Score: 0.88 }], RunId: "run-1", Step: "automl" },
  ],
  Runs: [
    { CreationTime: "2024-05-03T09:00:00Z", DagRunId: "manual__2024-05-03", Id: "run-3",
      Metrics: { "train/accuracy": 0.93, final_auc: 0.9 }, Parameters: { epochs: 20, optimizer: "adam" },
      Status: "Finished" },
    { CreationTime: "2024-05-02T09:00:00Z", DagRunId: "manual__2024-05-02", Id: "run-2",
      Metrics: { final_auc: 0.87 }, Parameters: { epochs: 10 }, Status: "Failed" },
    { CreationTime: "2024-05-01T09:00:00Z", DagRunId: "manual__2024-05-01", Id: "run-1",
      Metrics: { "train/accuracy": 0.88, final_auc: 0.85 }, Parameters: { epochs: 5, optimizer: "sgd" },
      Status: "Finished" },
  ],
};

export function publishedView(can: { submit: boolean; manage: boolean }): PublishedView {
  return {
    Endpoints: [{
      CanManage: can.manage,
      CanSubmit: can.submit,
      DefaultVersion: "1",
      Id: "ep-1",
      Name: "churn-endpoint",
      Status: "Active",
      Versions: [
        { DagId: "train_pipeline", PipelineId: "pl-1", PipelineName: "train", Version: "1" },
        { DagId: "train_pipeline_v2", PipelineId: "pl-2", PipelineName: "train v2", Version: "2" },
      ],
    }],
    Pipelines: [
      {
        CanManage: can.manage,
        CanSubmit: can.submit,
        DagId: "train_pipeline",
        Description: "trains the churn model",
        Id: "pl-1",
        Name: "train",
        Parameters: [
          { Default: 10, Name: "epochs", Type: "int" },
          { Default: 0.1, Name: "learning_rate", Type: "float" },
          { Default: true, Name: "shuffle", Type: "bool" },
          { Default: "adam", Name: "optimizer", Type: "string" },
          { Default: { datastore: "workspaceblobstore", path: "data/in" }, Name: "input_path", Type: "datapath" },
        ],
        Status: "Active",
        TotalRunSteps: 2,
        Version: "1",
      },
      {
        CanManage: can.manage,
        CanSubmit: can.submit,
        DagId: "train_pipeline_v2",
        Description: null,
        Id: "pl-2",
        Name: "train v2",
        Parameters: [],
        Status: "Disabled",
        TotalRunSteps: 2,
        Version: "2",
      },
    ],
    Schedules: [{
      CanManage: can.manage,
      DagId: "train_pipeline",
      EndpointId: null,
      Id: "sch-1",
      Name: "nightly",
      NextRun: "2024-05-04T06:00:00Z",
      PipelineId: "pl-1",
      Recurrence: "every 1 Day at 06:00",
      Status: "Active",
    }],
  };
}

export const summaryView: SummaryView = {
  ReusedShare: 0.75,
  Runs: [
    { CreationTime: "2024-05-03T09:00:00Z", DagId: "train_pipeline", DagRunId: "manual__2024-05-03",
      Experiment: "churn", Id: "run-3", ReusedSteps: 2, Status: "Finished", Steps: 2 },
    { CreationTime: "2024-05-02T09:00:00Z", DagId: "train_pipeline", DagRunId: "manual__2024-05-02",
      Experiment: "churn", Id: "run-2", ReusedSteps: 1, Status: "Running", Steps: 2 },
  ],
  StepsReused: 3,
  StepsTotal: 4,
};
