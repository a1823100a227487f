import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { PipelineTab } from "../src/views/PipelineTab";
import { pipelineView, preview, trainStep } from "./fixtures";
import { renderView, stubApi, tabTo } from "./helpers";

const RUN = "ui/dags/train_pipeline/runs/manual__2024-05-02";

describe("Pipeline tab", () => {
  it("shows the run, its steps and links a reused step to the run that produced it", async () => {
    const calls = stubApi({ [`GET ${RUN}/pipeline`]: { body: pipelineView } });
    renderView(<PipelineTab dagId="train_pipeline" runId="manual__2024-05-02" />);

    const rows = await screen.findAllByTestId("step-row");
    expect(rows.map((row) => row.dataset.step)).toEqual(["prepare", "train"]);
    expect(screen.getByTestId("mlpipe-pipeline")).toBeInTheDocument();
    expect(calls[0]?.credentials).toBe("same-origin");
    expect(calls[0]?.url).toBe(`http://localhost:8080/mlpipe/api/v1/${RUN}/pipeline`);

    const [prepare, train] = rows as [HTMLElement, HTMLElement];
    expect(within(prepare).getByText("reused")).toBeInTheDocument();
    expect(within(prepare).getByTestId("reused-link")).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-01/plugin/mlpipe-pipeline");
    expect(within(prepare).getByText(pipelineView.Steps[0]?.CacheReason ?? "")).toBeInTheDocument();
    expect(within(prepare).getByRole("link", { name: "prepare" })).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-02/tasks/prepare");

    expect(within(train).queryByTestId("reused-link")).toBeNull();
    expect(within(train).getByText("computed")).toBeInTheDocument();
    expect(within(train).getByText("source train.py changed")).toBeInTheDocument();
    expect(within(train).getByText("2 min 05 s")).toBeInTheDocument();

    expect(screen.getByText("learning_rate")).toBeInTheDocument();
    expect(screen.getByText("final_auc")).toBeInTheDocument();
    expect(screen.getByText("1 of 2")).toBeInTheDocument();
  });

  it("says which run a deferred step waits for", async () => {
    const waiting = {
      ...pipelineView,
      Steps: [{
        ...trainStep, EndTime: null, Status: "Running",
        WaitingFor: { DagId: "train_pipeline", DagRunId: "manual__2024-05-01", Description: null,
                      Since: "2024-05-02T10:00:00Z", StepRunId: "manual__2024-05-01.train", TaskId: "train" },
      }],
    };
    stubApi({ [`GET ${RUN}/pipeline`]: { body: waiting } });
    renderView(<PipelineTab dagId="train_pipeline" runId="manual__2024-05-02" />);

    const note = await screen.findByTestId("waiting-for");
    expect(note).toHaveTextContent("deferred: waiting for run manual__2024-05-01, which computes the same step");
    expect(within(note).getByRole("link")).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-01/tasks/train");
  });

  it("expands a step and previews a tabular output with the keyboard", async () => {
    const calls = stubApi({
      [`GET ${RUN}/pipeline`]: { body: pipelineView },
      [`GET ${RUN}/steps/prepare/preview?port=raw_data&side=output&rows=20`]: { body: preview },
    });
    const user = userEvent.setup();
    renderView(<PipelineTab dagId="train_pipeline" runId="manual__2024-05-02" />);
    const expander = await screen.findByRole("button", { name: "Details of step prepare" });

    await user.tab();
    expect(expander).toHaveFocus();
    expect(expander).toHaveAttribute("aria-expanded", "false");
    await user.keyboard("{Enter}");
    expect(expander).toHaveAttribute("aria-expanded", "true");

    const details = screen.getByTestId("step-details");
    expect(within(details).getByText("file:///data/store/raw.parquet")).toBeInTheDocument();
    expect(within(details).getByText("2.0 KB")).toBeInTheDocument();
    expect(within(details).getByText("sha256:9f86d…")).toHaveAttribute("title", expect.stringMatching(/^sha256:9f86/u));
    expect(within(details).getByRole("link", { name: /Open the step view/u })).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-02/tasks/prepare/plugin/mlpipe-step");

    const previewButton = within(details).getByRole("button", { name: "Preview output raw_data" });
    await tabTo(user, previewButton);
    await user.keyboard(" ");
    const table = await screen.findByRole("table", { name: "Preview of raw_data" });
    expect(within(table).getAllByRole("columnheader").map((cell) => cell.textContent)).toEqual(["customer", "churned"]);
    expect(within(table).getAllByRole("row")).toHaveLength(3);
    expect(screen.getByText("First 2 of 1000 rows")).toBeInTheDocument();
    expect(calls.map((call) => call.path)).toContain(
      "ui/dags/train_pipeline/runs/manual__2024-05-02/steps/prepare/preview?port=raw_data&side=output&rows=20");

    await user.click(expander);
    expect(screen.queryByTestId("step-details")).toBeNull();
  });

  it("says so when the DAG run is no pipeline run", async () => {
    stubApi({ [`GET ${RUN}/pipeline`]: {
      body: { detail: "DAG run manual__2024-05-02 is not an airflow-mlpipe pipeline run",
        error: { code: "NotFound", message: "…" } }, status: 404 } });
    renderView(<PipelineTab dagId="train_pipeline" runId="manual__2024-05-02" />);

    expect(await screen.findByText("DAG run manual__2024-05-02 is not an airflow-mlpipe pipeline run"))
      .toBeInTheDocument();
    expect(screen.queryByTestId("step-row")).toBeNull();
  });

  it("encodes ids in API paths and keeps them readable in links", async () => {
    const runId = "scheduled__2024-05-02T10:00:00+00:00";
    const calls = stubApi({ [`GET ui/dags/train_pipeline/runs/${encodeURIComponent(runId)}/pipeline`]: {
      body: { ...pipelineView, Run: { ...pipelineView.Run, DagRunId: runId } } } });
    renderView(<PipelineTab dagId="train_pipeline" runId={runId} />);

    const link = await screen.findByRole("link", { name: "train" });
    expect(link).toHaveAttribute("href", `/dags/train_pipeline/runs/${runId}/tasks/train`);
    expect(calls[0]?.path).toBe("ui/dags/train_pipeline/runs/scheduled__2024-05-02T10%3A00%3A00%2B00%3A00/pipeline");
  });
});
