import { describe, expect, it } from "vitest";

import { experimentTabPath, pipelineTabPath, stepTabPath, taskInstancePath } from "../src/links";

describe("links into the Airflow UI", () => {
  it("builds the contract's paths", () => {
    expect(pipelineTabPath("d", "r")).toBe("/dags/d/runs/r/plugin/mlpipe-pipeline");
    expect(stepTabPath("d", "r", "t")).toBe("/dags/d/runs/r/tasks/t/plugin/mlpipe-step");
    expect(experimentTabPath("d")).toBe("/dags/d/plugin/mlpipe-experiment");
  });

  it("keeps an id one path segment", () => {
    expect(taskInstancePath("d", "a/b?c#d%e\\f", "t")).toBe("/dags/d/runs/a%2Fb%3Fc%23d%25e%5Cf/tasks/t");
    expect(taskInstancePath("d", "scheduled__2024-05-01T06:00:00+00:00", "t")).toBe(
      "/dags/d/runs/scheduled__2024-05-01T06:00:00+00:00/tasks/t");
  });
});
