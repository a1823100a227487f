/** `ML Pipeline runs` (dashboard): recent pipeline runs with how many steps each reused, and the overall share. */
import { Box, Heading, HStack, Stat, Table } from "@chakra-ui/react";

import { apiPath, useApi } from "../api";
import { AppLink } from "../components/AppLink";
import { Empty, LoadedView } from "../components/Feedback";
import { StatusBadge } from "../components/StatusBadge";
import { TableFrame } from "../components/TableFrame";
import { formatPercent, formatTime } from "../format";
import { dagPath, pipelineTabPath, PUBLISHED_PATH } from "../links";
import type { SummaryView } from "../types";

/** runs shown */
const RUN_LIMIT = 10;

function Summary({ view }: { view: SummaryView }) {
  if (view.Runs.length === 0) {
    return <Empty>No ML pipeline runs yet.</Empty>;
  }
  return (
    <>
      <Stat.Root borderWidth="1px" maxW="xs" p={3} rounded="md">
        <Stat.Label>Steps reused</Stat.Label>
        <Stat.ValueText data-testid="reused-share">{formatPercent(view.ReusedShare)}</Stat.ValueText>
        <Stat.HelpText>
          {view.StepsReused} of {view.StepsTotal} steps in the last {view.Runs.length} runs
        </Stat.HelpText>
      </Stat.Root>
      <TableFrame columns={["Run", "DAG", "Experiment", "Status", "Created", "Reuse"]} label="Recent ML pipeline runs"
        mt={4}>
        {view.Runs.map((run) => (
          <Table.Row data-testid="dashboard-run" key={run.Id}>
            <Table.Cell>
              <AppLink to={pipelineTabPath(run.DagId, run.DagRunId)}>{run.DagRunId}</AppLink>
            </Table.Cell>
            <Table.Cell>
              <AppLink to={dagPath(run.DagId)}>{run.DagId}</AppLink>
            </Table.Cell>
            <Table.Cell>{run.Experiment}</Table.Cell>
            <Table.Cell>
              <StatusBadge status={run.Status} />
            </Table.Cell>
            <Table.Cell>{formatTime(run.CreationTime)}</Table.Cell>
            <Table.Cell>
              reused {run.ReusedSteps} of {run.Steps} steps
            </Table.Cell>
          </Table.Row>
        ))}
      </TableFrame>
    </>
  );
}

export function DashboardWidget() {
  const state = useApi<SummaryView>(apiPath`ui/summary?limit=${RUN_LIMIT}`);

  return (
    <Box borderWidth="1px" data-testid="mlpipe-dashboard" p={4} rounded="md">
      <HStack justifyContent="space-between" mb={3}>
        <Heading as="h2" size="md">
          ML pipeline runs
        </Heading>
        <AppLink fontSize="sm" to={PUBLISHED_PATH}>
          Published pipelines
        </AppLink>
      </HStack>
      <LoadedView state={state}>{(view) => <Summary view={view} />}</LoadedView>
    </Box>
  );
}
