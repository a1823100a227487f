import { describe, expect, it } from "vitest";

const NAMES = ["Pipeline", "Step", "Experiment", "ML Pipelines", "ML Pipeline runs"];

describe("bundle entry", () => {
  it("registers a component under every react_apps name, and AirflowPlugin", async () => {
    await import("../src/main");
    const registry = globalThis as unknown as Record<string, unknown>;

    for (const name of NAMES) {
      expect(typeof registry[name], name).toBe("function");
    }
    expect(NAMES.map((name) => registry[name])).toContain(registry.AirflowPlugin);
    expect(new Set(NAMES.map((name) => registry[name])).size).toBe(NAMES.length);
  });
});
