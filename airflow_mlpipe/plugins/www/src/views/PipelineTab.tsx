/** `Pipeline` (dag_run tab): the run's parameters and metrics, then its steps with their cache decisions and data. */
import { Box, DataList, Heading, IconButton, SimpleGrid, Stack, Table } from "@chakra-ui/react";
import { useId, useState } from "react";

import { apiPath, useApi } from "../api";
import { AppLink } from "../components/AppLink";
import { PortsSections } from "../components/DataRefs";
import { Empty, LoadedView } from "../components/Feedback";
import { ReuseInfo } from "../components/ReuseInfo";
import { Section } from "../components/Section";
import { StatusBadge } from "../components/StatusBadge";
import { TableFrame } from "../components/TableFrame";
import { ValueList } from "../components/ValueList";
import { formatDuration, formatTime } from "../format";
import { stepTabPath, taskInstancePath } from "../links";
import type { PipelineView, PluginProps, StepSummary } from "../types";

const COLUMNS = 5;

function StepDetails({ runPath, step }: { runPath: string; step: StepSummary }) {
  const stepPath = `${runPath}/steps/${encodeURIComponent(step.TaskId)}`;

  return (
    <Stack gap={4} py={2}>
      <PortsSections step={step} stepPath={stepPath} />
      <Section title="Metrics">
        <ValueList empty="No metrics logged." values={step.Metrics} />
      </Section>
    </Stack>
  );
}

function StepRow({ dagId, runId, runPath, step }: { dagId: string; runId: string; runPath: string;
  step: StepSummary }) {
  const [open, setOpen] = useState(false);
  const detailsId = useId();

  return (
    <>
      <Table.Row data-step={step.Name} data-testid="step-row">
        <Table.Cell>
          <IconButton
            aria-controls={open ? detailsId : undefined}
            aria-expanded={open}
            aria-label={`Details of step ${step.Name}`}
            data-testid="step-expander"
            onClick={() => setOpen((value) => !value)}
            size="xs"
            variant="ghost"
          >
            <Box aria-hidden as="span" transform={open ? "rotate(90deg)" : undefined} transition="transform 0.1s">
              ▸
            </Box>
          </IconButton>
        </Table.Cell>
        <Table.Cell>
          <AppLink to={taskInstancePath(dagId, runId, step.TaskId)}>{step.Name}</AppLink>
        </Table.Cell>
        <Table.Cell>
          <StatusBadge status={step.Status} />
        </Table.Cell>
        <Table.Cell>{formatDuration(step.DurationSeconds)}</Table.Cell>
        <Table.Cell>
          <ReuseInfo step={step} />
        </Table.Cell>
      </Table.Row>
      {open ? (
        <Table.Row data-testid="step-details">
          <Table.Cell colSpan={COLUMNS} id={detailsId}>
            <StepDetails runPath={runPath} step={step} />
            <AppLink fontSize="sm" to={stepTabPath(dagId, runId, step.TaskId)}>
              Open the step view of {step.Name}
            </AppLink>
          </Table.Cell>
        </Table.Row>
      ) : undefined}
    </>
  );
}

function PipelineContent({ dagId, runId, runPath, view }: { dagId: string; runId: string; runPath: string;
  view: PipelineView }) {
  const { Run: run } = view;
  const reused = view.Steps.filter((step) => step.Reused).length;

  return (
    <Stack gap={6}>
      <SimpleGrid columns={{ base: 1, lg: 3 }} gap={6}>
        <Section title="Run">
          <DataList.Root orientation="horizontal" size="sm">
            <DataList.Item>
              <DataList.ItemLabel>Experiment</DataList.ItemLabel>
              <DataList.ItemValue>{run.Experiment}</DataList.ItemValue>
            </DataList.Item>
            <DataList.Item>
              <DataList.ItemLabel>Status</DataList.ItemLabel>
              <DataList.ItemValue>
                <StatusBadge status={run.Status} />
              </DataList.ItemValue>
            </DataList.Item>
            <DataList.Item>
              <DataList.ItemLabel>Created</DataList.ItemLabel>
              <DataList.ItemValue>{formatTime(run.CreationTime)}</DataList.ItemValue>
            </DataList.Item>
            <DataList.Item>
              <DataList.ItemLabel>Ended</DataList.ItemLabel>
              <DataList.ItemValue>{formatTime(run.EndTime)}</DataList.ItemValue>
            </DataList.Item>
            <DataList.Item>
              <DataList.ItemLabel>Reused steps</DataList.ItemLabel>
              <DataList.ItemValue>
                {reused} of {view.Steps.length}
              </DataList.ItemValue>
            </DataList.Item>
            <DataList.Item>
              <DataList.ItemLabel>Pipeline run id</DataList.ItemLabel>
              <DataList.ItemValue wordBreak="break-all">{run.Id}</DataList.ItemValue>
            </DataList.Item>
          </DataList.Root>
        </Section>
        <Section title="Parameters">
          <ValueList empty="No parameters." values={run.Parameters} />
        </Section>
        <Section title="Run metrics">
          <ValueList empty="No run-level metrics." values={view.Metrics} />
        </Section>
      </SimpleGrid>
      <Section title="Steps">
        {view.Steps.length === 0 ? (
          <Empty>This run has no steps yet.</Empty>
        ) : (
          <TableFrame columns={[
            <Table.ColumnHeader w="1">
              <Box as="span" srOnly>
                Details
              </Box>
            </Table.ColumnHeader>,
            "Step", "Status", "Duration", "Cache",
          ]} label="Steps">
            {view.Steps.map((step) => (
              <StepRow dagId={dagId} key={step.TaskId} runId={runId} runPath={runPath} step={step} />
            ))}
          </TableFrame>
        )}
      </Section>
    </Stack>
  );
}

export function PipelineTab({ dagId, runId }: PluginProps) {
  const runPath = dagId && runId ? apiPath`ui/dags/${dagId}/runs/${runId}` : undefined;
  const state = useApi<PipelineView>(runPath === undefined ? undefined : `${runPath}/pipeline`);

  return (
    <Box data-testid="mlpipe-pipeline" p={4}>
      <Heading as="h2" mb={4} size="md">
        ML pipeline
      </Heading>
      {dagId && runId && runPath ? (
        <LoadedView state={state}>
          {(view) => <PipelineContent dagId={dagId} runId={runId} runPath={runPath} view={view} />}
        </LoadedView>
      ) : (
        <Empty>Open this view from a DAG run.</Empty>
      )}
    </Box>
  );
}
