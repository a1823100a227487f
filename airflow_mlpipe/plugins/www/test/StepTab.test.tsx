import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { StepView } from "../src/types";
import { StepTab } from "../src/views/StepTab";
import { automlStep, preparedStep } from "./fixtures";
import { renderView, stubApi } from "./helpers";

const STEP = "ui/dags/train_pipeline/runs/manual__2024-05-02/steps";

function renderStep(taskId: string, step: StepView) {
  stubApi({ [`GET ${STEP}/${taskId}`]: { body: step } });
  renderView(<StepTab dagId="train_pipeline" mapIndex="-1" runId="manual__2024-05-02" taskId={taskId} />);
}

describe("Step tab", () => {
  it("shows the cache decision, the key and what went into it", async () => {
    renderStep("train", automlStep);

    expect(await screen.findByTestId("cache-decision")).toHaveTextContent("computed");
    expect(screen.getByTestId("mlpipe-step")).toBeInTheDocument();
    expect(screen.getByText("3f2a9c0d1e")).toBeInTheDocument();
    expect(screen.getByText("no entry for key 3f2a9c0d1e")).toBeInTheDocument();
    expect(screen.getByText("parameter learning_rate changed from 0.1 to 0.01")).toBeInTheDocument();
    expect(screen.getAllByText("source train.py changed")).toHaveLength(1);
    const argumentList = screen.getByText("arguments").closest("li")?.querySelector("ol") as HTMLElement;
    expect([...argumentList.children].map((item) => item.textContent)).toEqual(["literal: --data", "input: raw_data"]);
    const source = screen.getByText("source").closest("li") as HTMLElement;
    expect(within(source).getByText("train.py")).toBeInTheDocument();
    expect(within(source).getByText("sha256:ab12cd")).toBeInTheDocument();
    expect(screen.getByText("environment").closest("li")).toHaveTextContent("environment: sha256:env01");
    expect(screen.getByText("accuracy")).toBeInTheDocument();
    expect(screen.getByText("0.912346")).toBeInTheDocument();
  });

  it("ranks the AutoML leaderboard by score and marks the best model", async () => {
    renderStep("train", automlStep);

    const rows = await screen.findAllByTestId("leaderboard-row");
    expect(rows.map((row) => within(row).getAllByRole("cell")[2]?.textContent)).toEqual(
      ["LightGBMbest", "RandomForest", "LogisticRegression", "XGBoost"]);
    expect(rows[0]).toHaveAttribute("data-best", "true");
    expect(within(rows[0] as HTMLElement).getByText("best")).toBeInTheDocument();
    expect(rows.filter((row) => row.dataset.best !== undefined)).toHaveLength(1);
  });

  it("ranks ascending when the best model has the lowest score", async () => {
    const board = { BestIteration: 0, PrimaryMetric: "normalized_rmse", Rows: [
      { Iteration: 0, Model: "A", Score: 0.1, TrainingSeconds: 1 },
      { Iteration: 1, Model: "B", Score: 0.3, TrainingSeconds: 1 },
      { Iteration: 2, Model: "C", Score: 0.2, TrainingSeconds: 1 },
    ] };
    renderStep("train", { ...automlStep, Leaderboard: board });

    const rows = await screen.findAllByTestId("leaderboard-row");
    expect(rows.map((row) => within(row).getAllByRole("cell")[1]?.textContent)).toEqual(["0", "2", "1"]);
  });

  it("shows logged tables and the images our API serves, with alt text", async () => {
    renderStep("train", automlStep);

    const image = await screen.findByRole("img", { name: "confusion matrix" });
    expect(image).toHaveAttribute("src", "http://localhost:8080/mlpipe/api/v1/ui/images/img-1");
    expect(screen.queryByRole("img", { name: "elsewhere" })).toBeNull();
    expect(screen.getByText("Image elsewhere has an unexpected address.")).toBeInTheDocument();
    const table = screen.getByRole("table", { name: "pr_curve" });
    expect(within(table).getAllByRole("row")).toHaveLength(3);
    expect(within(table).getByText("0.9")).toBeInTheDocument();
  });

  it("links a reused step to its producer", async () => {
    renderStep("prepare", {
      ...preparedStep,
      Cache: { Components: null, Decision: "reused", Key: "3f2a9c", Reasons: [] },
      Images: [],
      Leaderboard: null,
      Tables: [],
    });

    expect(await screen.findByTestId("reused-link")).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-01/plugin/mlpipe-pipeline");
    expect(screen.getByTestId("producer-step-link")).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-01/tasks/prepare/plugin/mlpipe-step");
    expect(screen.getByTestId("cache-decision")).toHaveTextContent("reused");
    expect(screen.queryByRole("table", { name: "AutoML leaderboard" })).toBeNull();
  });
});
