/**
 * The built dist/mlpipe-ui.js, run as Airflow's UI runs it: the host's modules on globalThis (here the npm
 * packages), the bundle evaluated, the components taken from globalThis[<react_app name>].
 */
import * as ChakraUI from "@chakra-ui/react";
import * as EmotionReact from "@emotion/react";
import { screen } from "@testing-library/react";
import * as React from "react";
import * as ReactDOM from "react-dom";
import * as ReactJSXRuntime from "react/jsx-runtime";
import * as ReactRouterDOM from "react-router-dom";
import { describe, expect, it } from "vitest";

import bundle from "../dist/mlpipe-ui.js?raw";
import type { PluginProps } from "../src/types";
import { pipelineView, summaryView } from "./fixtures";
import { renderView, stubApi } from "./helpers";

const HOST = { ChakraUI, EmotionReact, React, ReactDOM, ReactJSXRuntime, ReactRouterDOM };

function loadBundle(): Record<string, unknown> {
  const registry = globalThis as unknown as Record<string, unknown>;
  Object.assign(registry, HOST, { AirflowPlugin: undefined });
  new Function(bundle)();
  return registry;
}

describe("dist/mlpipe-ui.js", () => {
  it("is one self-contained script that uses the host's modules", () => {
    expect(bundle).toMatch(/^\(function\(/u);
    expect(bundle).toMatch(/\}\)\(ChakraUI,React,ReactRouterDOM,ReactJSXRuntime\);\s*$/u);
    expect(bundle).not.toMatch(/\brequire\(|\bimport\s*[{*"'(]|process\.env|sourceMappingURL/u);
    expect(bundle).not.toContain("createSystem(");
  });

  it("registers working components under the react_apps names", async () => {
    stubApi({
      "GET ui/dags/train_pipeline/runs/manual__2024-05-02/pipeline": { body: pipelineView },
      "GET ui/summary?limit=10": { body: summaryView },
    });
    const registry = loadBundle();
    for (const name of ["Pipeline", "Step", "Experiment", "ML Pipelines", "ML Pipeline runs"]) {
      expect(typeof registry[name], name).toBe("function");
    }
    expect(registry.AirflowPlugin).toBe(registry.Pipeline);

    const Pipeline = registry.Pipeline as React.ComponentType<PluginProps>;
    const Dashboard = registry["ML Pipeline runs"] as React.ComponentType<PluginProps>;
    renderView(
      <>
        <Pipeline dagId="train_pipeline" runId="manual__2024-05-02" />
        <Dashboard />
      </>,
    );
    expect(await screen.findAllByTestId("step-row")).toHaveLength(2);
    expect(screen.getByTestId("reused-link")).toHaveAttribute(
      "href", "/dags/train_pipeline/runs/manual__2024-05-01/plugin/mlpipe-pipeline");
    expect(await screen.findByTestId("reused-share")).toHaveTextContent("75 %");
  });
});
