import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { DashboardWidget } from "../src/views/DashboardWidget";
import { summaryView } from "./fixtures";
import { renderView, stubApi } from "./helpers";

describe("ML Pipeline runs dashboard", () => {
  it("shows the reused share and the recent runs linked to their Pipeline tab", async () => {
    stubApi({ "GET ui/summary?limit=10": { body: summaryView } });
    renderView(<DashboardWidget />);

    expect(await screen.findByTestId("reused-share")).toHaveTextContent("75 %");
    expect(screen.getByText("3 of 4 steps in the last 2 runs")).toBeInTheDocument();
    const [latest, earlier] = screen.getAllByTestId("dashboard-run") as [HTMLElement, HTMLElement];
    expect(within(latest).getByRole("link", { name: "manual__2024-05-03" })).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-03/plugin/mlpipe-pipeline");
    expect(within(latest).getByText("reused 2 of 2 steps")).toBeInTheDocument();
    expect(within(earlier).getByText("reused 1 of 2 steps")).toBeInTheDocument();
    expect(within(earlier).getByText("Running")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Published pipelines" })).toHaveAttribute("href", "/plugin/mlpipe");
    expect(screen.getByTestId("mlpipe-dashboard")).toBeInTheDocument();
  });

  it("says so when there are no runs", async () => {
    stubApi({ "GET ui/summary?limit=10": { body: { ReusedShare: null, Runs: [], StepsReused: 0, StepsTotal: 0 } } });
    renderView(<DashboardWidget />);

    expect(await screen.findByText("No ML pipeline runs yet.")).toBeInTheDocument();
    expect(screen.queryByTestId("reused-share")).toBeNull();
  });
});
