/**
 * `Experiment` (dag tab): the DAG's pipeline runs side by side (parameters and metrics as columns), a text filter,
 * a chart of one picked metric across runs and the AutoML best-so-far curves.
 */
import { Box, Field, Heading, HStack, Input, NativeSelect, Stack, Table, Text } from "@chakra-ui/react";
import { useState } from "react";

import { apiPath, useApi } from "../api";
import { AppLink } from "../components/AppLink";
import { Empty, LoadedView } from "../components/Feedback";
import { type ChartSeries, LineChart } from "../components/LineChart";
import { Section } from "../components/Section";
import { StatusBadge } from "../components/StatusBadge";
import { TableFrame } from "../components/TableFrame";
import { formatJson, formatNumber, formatTime } from "../format";
import { pipelineTabPath } from "../links";
import type { Curve, ExperimentRun, ExperimentView, PluginProps } from "../types";

/** runs asked for (newest first) */
const RUN_LIMIT = 50;

/** A run with its place in time: 1 for the oldest run listed. */
interface OrderedRun {
  order: number;
  run: ExperimentRun;
}

function union(records: Record<string, unknown>[]): string[] {
  return [...new Set(records.flatMap((record) => Object.keys(record)))].sort();
}

function matches(run: ExperimentRun, needle: string): boolean {
  const texts = [
    run.DagRunId,
    run.Status,
    ...Object.entries(run.Parameters).map(([name, value]) => `${name}=${formatJson(value)}`),
    ...Object.entries(run.Metrics).map(([name, value]) => `${name}=${formatNumber(value)}`),
  ];
  return texts.some((text) => text.toLowerCase().includes(needle));
}

function MetricChart({ metric, runs }: { metric: string; runs: OrderedRun[] }) {
  const points = runs.flatMap(({ order, run }) => {
    const value = run.Metrics[metric];
    return value === undefined ? [] : [{
      label: `Run #${order} ${run.DagRunId} (${formatTime(run.CreationTime)}): ${metric} = ${formatNumber(value)}`,
      x: order,
      y: value,
    }];
  });

  if (points.length === 0) {
    return <Empty>No run shown logged {metric}.</Empty>;
  }
  return (
    <LineChart
      integerX
      pointTestId="chart-point"
      series={[{ name: metric, points: points.sort((left, right) => left.x - right.x) }]}
      testId="metric-chart"
      title={`${metric} across runs (${points.length} runs)`}
      xLabel="Run (oldest first)"
      xTickLabel={(x) => `#${x}`}
      yLabel={metric}
    />
  );
}

function CurveCharts({ curves, runs }: { curves: Curve[]; runs: OrderedRun[] }) {
  const names = new Map(runs.map(({ run }) => [run.Id, run.DagRunId]));
  const groups = new Map<string, { curve: Curve; series: ChartSeries[] }>();

  for (const curve of curves) {
    const name = names.get(curve.RunId);
    if (name === undefined || curve.Points.length === 0) {
      continue;
    }
    const key = JSON.stringify([curve.Step, curve.Metric]);
    const group = groups.get(key) ?? { curve, series: [] };
    group.series.push({
      name,
      points: curve.Points.map((point) => ({
        label: `${name}, iteration ${point.Iteration}: best ${curve.Metric} so far ${formatNumber(point.Score)}`,
        x: point.Iteration,
        y: point.Score,
      })),
    });
    groups.set(key, group);
  }
  if (groups.size === 0) {
    return undefined;
  }
  return (
    <Section title="AutoML: best score so far by iteration">
      {[...groups.entries()].map(([key, { curve, series }]) => (
        <Stack gap={1} key={key}>
          <Text fontSize="sm" fontWeight="medium">
            {curve.Step}: {curve.Metric}
          </Text>
          <LineChart
            integerX
            pointTestId="curve-point"
            series={series}
            testId="curve-chart"
            title={`${curve.Step}: best ${curve.Metric} so far by iteration`}
            xLabel="Iteration"
            yLabel={curve.Metric}
          />
        </Stack>
      ))}
    </Section>
  );
}

function RunsTable({ dagId, metrics, parameters, runs }: { dagId: string; metrics: string[]; parameters: string[];
  runs: OrderedRun[] }) {
  return (
    <TableFrame columns={["Run", "Status", "Created", ...parameters, ...metrics]} label="Runs" stickyHeader>
      {runs.map(({ order, run }) => (
        <Table.Row data-testid="experiment-run" key={run.Id}>
          <Table.Cell>
            <Text as="span" color="fg.muted">
              #{order}{" "}
            </Text>
            <AppLink to={pipelineTabPath(dagId, run.DagRunId)}>{run.DagRunId}</AppLink>
          </Table.Cell>
          <Table.Cell>
            <StatusBadge status={run.Status} />
          </Table.Cell>
          <Table.Cell>{formatTime(run.CreationTime)}</Table.Cell>
          {parameters.map((name) => (
            <Table.Cell key={`p:${name}`}>{formatJson(run.Parameters[name])}</Table.Cell>
          ))}
          {metrics.map((name) => (
            <Table.Cell key={`m:${name}`}>{formatJson(run.Metrics[name])}</Table.Cell>
          ))}
        </Table.Row>
      ))}
    </TableFrame>
  );
}

function ExperimentContent({ dagId, view }: { dagId: string; view: ExperimentView }) {
  const [filter, setFilter] = useState("");
  const [picked, setPicked] = useState<string | undefined>(undefined);
  const ordered = view.Runs.map((run, index) => ({ order: view.Runs.length - index, run }));
  const parameters = union(view.Runs.map((run) => run.Parameters));
  const metrics = union(view.Runs.map((run) => run.Metrics));
  const metric = picked !== undefined && metrics.includes(picked) ? picked : metrics[0];
  const needle = filter.trim().toLowerCase();
  const shown = needle === "" ? ordered : ordered.filter(({ run }) => matches(run, needle));

  if (view.Runs.length === 0) {
    return <Empty>No pipeline runs of this DAG yet.</Empty>;
  }
  return (
    <Stack gap={6}>
      <HStack alignItems="flex-end" flexWrap="wrap" gap={4}>
        <Field.Root maxW="sm">
          <Field.Label>Filter runs</Field.Label>
          <Input onChange={(event) => setFilter(event.target.value)} placeholder="parameter, metric, status or run id"
            size="sm" type="search" value={filter} />
        </Field.Root>
        {metric === undefined ? undefined : (
          <Field.Root maxW="sm">
            <Field.Label>Metric</Field.Label>
            <NativeSelect.Root size="sm">
              <NativeSelect.Field data-testid="metric-picker" onChange={(event) => setPicked(event.target.value)}
                value={metric}>
                {metrics.map((name) => (
                  <option key={name} value={name}>
                    {name}
                  </option>
                ))}
              </NativeSelect.Field>
              <NativeSelect.Indicator />
            </NativeSelect.Root>
          </Field.Root>
        )}
        <Text aria-live="polite" color="fg.muted" fontSize="sm">
          {shown.length} of {view.Runs.length} runs
        </Text>
      </HStack>
      <Section title={metric === undefined ? "Metric" : `${metric} across runs`}>
        {metric === undefined ? <Empty>These runs logged no numeric metric.</Empty> : (
          <MetricChart metric={metric} runs={shown} />
        )}
      </Section>
      <Section title="Runs">
        {shown.length === 0 ? <Empty>No run matches “{filter}”.</Empty> : (
          <RunsTable dagId={dagId} metrics={metrics} parameters={parameters} runs={shown} />
        )}
      </Section>
      <CurveCharts curves={view.Curves} runs={shown} />
    </Stack>
  );
}

export function ExperimentTab({ dagId }: PluginProps) {
  const state = useApi<ExperimentView>(dagId ? apiPath`ui/dags/${dagId}/experiment?limit=${RUN_LIMIT}` : undefined);

  return (
    <Box data-testid="mlpipe-experiment" p={4}>
      <Heading as="h2" mb={4} size="md">
        ML experiment
      </Heading>
      {dagId ? (
        <LoadedView state={state}>{(view) => <ExperimentContent dagId={dagId} view={view} />}</LoadedView>
      ) : (
        <Empty>Open this view from a DAG.</Empty>
      )}
    </Box>
  );
}
