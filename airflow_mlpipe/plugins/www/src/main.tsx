/**
 * The bundle's entry: registers one component per react_apps entry on globalThis, where Airflow's UI looks them up
 * (`globalThis[<name>]`, falling back to `globalThis.AirflowPlugin`). The UI imports the bundle once per URL, so this
 * one module serves all five entries.
 */
import { Alert } from "@chakra-ui/react";
import { Component, type ComponentType, type ErrorInfo, type ReactNode } from "react";

import type { PluginProps } from "./types";
import { DashboardWidget } from "./views/DashboardWidget";
import { ExperimentTab } from "./views/ExperimentTab";
import { PipelineTab } from "./views/PipelineTab";
import { PublishedPage } from "./views/PublishedPage";
import { StepTab } from "./views/StepTab";

/** Keeps a failing view from taking the Airflow page (e.g. the dashboard) down with it. */
class ViewBoundary extends Component<{ children: ReactNode; name: string }, { error: Error | undefined }> {
  override state = { error: undefined };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  override componentDidCatch(error: Error, info: ErrorInfo) {
    console.error(`airflow-mlpipe view ${this.props.name} failed`, error, info.componentStack);
  }

  override render() {
    const { error } = this.state;
    if (error === undefined) {
      return this.props.children;
    }
    return (
      <Alert.Root status="error">
        <Alert.Indicator />
        <Alert.Content>
          <Alert.Title>The {this.props.name} view failed</Alert.Title>
          <Alert.Description>{String(error)}</Alert.Description>
        </Alert.Content>
      </Alert.Root>
    );
  }
}

function guarded(name: string, View: ComponentType<PluginProps>): ComponentType<PluginProps> {
  const Guarded = (props: PluginProps) => (
    <ViewBoundary name={name}>
      <View {...props} />
    </ViewBoundary>
  );
  Guarded.displayName = `Mlpipe(${name})`;
  return Guarded;
}

/** react_apps name (airflow_mlpipe/plugins/mlpipe_plugin.py) -> its component */
const VIEWS: Record<string, ComponentType<PluginProps>> = {
  Experiment: guarded("Experiment", ExperimentTab),
  "ML Pipeline runs": guarded("ML Pipeline runs", DashboardWidget),
  "ML Pipelines": guarded("ML Pipelines", PublishedPage),
  Pipeline: guarded("Pipeline", PipelineTab),
  Step: guarded("Step", StepTab),
};

for (const [name, view] of Object.entries(VIEWS)) {
  Reflect.set(globalThis, name, view);
}
Reflect.set(globalThis, "AirflowPlugin", VIEWS.Pipeline);
