import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { ExperimentTab } from "../src/views/ExperimentTab";
import { experimentView } from "./fixtures";
import { renderView, stubApi } from "./helpers";

async function renderExperiment() {
  const calls = stubApi({ "GET ui/dags/train_pipeline/experiment?limit=50": { body: experimentView } });
  renderView(<ExperimentTab dagId="train_pipeline" />);
  await screen.findAllByTestId("experiment-run");
  return calls;
}

function points(): Element[] {
  return within(screen.getByTestId("metric-chart")).getAllByTestId("chart-point");
}

describe("Experiment tab", () => {
  it("puts the runs side by side with the union of their parameters and metrics", async () => {
    await renderExperiment();

    const table = screen.getByRole("table", { name: "Runs" });
    expect(within(table).getAllByRole("columnheader").map((cell) => cell.textContent)).toEqual(
      ["Run", "Status", "Created", "epochs", "optimizer", "final_auc", "train/accuracy"]);
    const rows = screen.getAllByTestId("experiment-run");
    expect(rows).toHaveLength(3);
    expect(within(rows[0] as HTMLElement).getByRole("link", { name: "manual__2024-05-03" })).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-03/plugin/mlpipe-pipeline");
    expect(within(rows[1] as HTMLElement).getAllByRole("cell").map((cell) => cell.textContent).slice(3)).toEqual(
      ["10", "—", "0.87", "—"]);
    expect(screen.getByTestId("mlpipe-experiment")).toBeInTheDocument();
  });

  it("charts the picked metric with one point per run that logged it", async () => {
    const user = userEvent.setup();
    await renderExperiment();

    const chart = screen.getByTestId("metric-chart");
    expect(chart).toHaveAccessibleName("final_auc across runs (3 runs)");
    expect(points()).toHaveLength(3);
    expect(points()[0]?.querySelector("title")?.textContent).toMatch(/^Run #1 manual__2024-05-01 .*final_auc = 0.85$/u);
    expect(within(chart).getByText("#1")).toBeInTheDocument();

    await user.selectOptions(screen.getByLabelText("Metric"), "train/accuracy");
    expect(screen.getByTestId("metric-chart")).toHaveAccessibleName("train/accuracy across runs (2 runs)");
    expect(points()).toHaveLength(2);
    expect(points().map((point) => point.querySelector("title")?.textContent?.split(" ")[2])).toEqual(
      ["manual__2024-05-01", "manual__2024-05-03"]);
  });

  it("filters runs by parameter, metric or status text", async () => {
    const user = userEvent.setup();
    await renderExperiment();

    await user.type(screen.getByLabelText("Filter runs"), "optimizer=");
    expect(screen.getAllByTestId("experiment-run")).toHaveLength(2);
    expect(points()).toHaveLength(2);
    expect(screen.getByText("2 of 3 runs")).toBeInTheDocument();

    await user.clear(screen.getByLabelText("Filter runs"));
    await user.type(screen.getByLabelText("Filter runs"), "failed");
    expect(screen.getAllByTestId("experiment-run")).toHaveLength(1);

    await user.clear(screen.getByLabelText("Filter runs"));
    await user.type(screen.getByLabelText("Filter runs"), "nothing like this");
    expect(screen.queryAllByTestId("experiment-run")).toHaveLength(0);
    expect(screen.getByText("No run matches “nothing like this”.")).toBeInTheDocument();
  });

  it("draws the AutoML curves, one line per run", async () => {
    await renderExperiment();

    const chart = screen.getByTestId("curve-chart");
    expect(chart).toHaveAccessibleName("automl: best AUC_weighted so far by iteration");
    expect(within(chart).getAllByTestId("curve-point")).toHaveLength(5);
    expect(chart.querySelectorAll("polyline")).toHaveLength(2);
    expect(screen.getByText("manual__2024-05-01", { selector: "p" })).toBeInTheDocument();
  });

  it("says so when the DAG has no runs", async () => {
    stubApi({ "GET ui/dags/train_pipeline/experiment?limit=50": { body: { Curves: [], Runs: [] } } });
    renderView(<ExperimentTab dagId="train_pipeline" />);

    expect(await screen.findByText("No pipeline runs of this DAG yet.")).toBeInTheDocument();
  });
});
