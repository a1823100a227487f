/**
 * `ML Pipelines` (nav page): published pipelines, pipeline endpoints and schedules. Submit, Enable/Disable and
 * "Set default" appear only where the server says the user may (CanSubmit / CanManage); each action refetches.
 */
import { Badge, Box, Button, Heading, HStack, List, Stack, Table, Text } from "@chakra-ui/react";
import { useState } from "react";

import { type Action, apiPath, useAction, useApi } from "../api";
import { AppLink } from "../components/AppLink";
import { ApiAlert, Empty, LoadedView } from "../components/Feedback";
import { Section } from "../components/Section";
import { StatusBadge } from "../components/StatusBadge";
import { TableFrame } from "../components/TableFrame";
import { formatJson, formatTime } from "../format";
import { dagPath } from "../links";
import type { PipelineEndpoint, PipelineSchedule, PublishedPipeline, PublishedView } from "../types";
import { SubmitDialog, type SubmitTarget } from "./SubmitDialog";

type Collection = "pipelines" | "endpoints" | "schedules";

const NOUNS: Record<Collection, string> = { endpoints: "endpoint", pipelines: "pipeline", schedules: "schedule" };

interface Handlers {
  action: Action;
  /** runs an action, then refetches the page's data */
  act: (method: string, path: string, body?: unknown) => void;
  submit: (target: SubmitTarget) => void;
}

function DagLink({ dagId }: { dagId: string | null }) {
  return dagId === null ? <Text as="span">—</Text> : <AppLink to={dagPath(dagId)}>{dagId}</AppLink>;
}

/** Enable or Disable, whichever changes the entry's status. */
function ToggleButton({ collection, entry, handlers }: { collection: Collection;
  entry: { Id: string; Name: string; Status: string }; handlers: Handlers }) {
  const active = entry.Status === "Active";
  const verb = active ? "disable" : "enable";

  return (
    <Button
      aria-label={`${active ? "Disable" : "Enable"} ${NOUNS[collection]} ${entry.Name}`}
      data-testid={`${verb}-button`}
      disabled={handlers.action.busy}
      onClick={() => handlers.act("POST", `${apiPath`ui/${collection}/${entry.Id}`}/${verb}`)}
      size="xs"
      variant="outline"
    >
      {active ? "Disable" : "Enable"}
    </Button>
  );
}

/** Submit and Enable/Disable of a pipeline or endpoint, each only where the server says the user may. */
function EntryActions({ entry, handlers, kind, parameters }: { entry: PublishedPipeline | PipelineEndpoint;
  handlers: Handlers; kind: SubmitTarget["kind"]; parameters: SubmitTarget["parameters"] }) {
  const target: SubmitTarget = { id: entry.Id, kind, name: entry.Name, parameters };

  return (
    <HStack gap={2}>
      {entry.CanSubmit ? (
        <Button aria-label={`Submit ${kind} ${entry.Name}`} data-testid="submit-button"
          onClick={() => handlers.submit(target)} size="xs">
          Submit
        </Button>
      ) : undefined}
      {entry.CanManage ? (
        <ToggleButton collection={kind === "pipeline" ? "pipelines" : "endpoints"} entry={entry} handlers={handlers} />
      ) : undefined}
    </HStack>
  );
}

function PipelinesTable({ handlers, pipelines }: { handlers: Handlers; pipelines: PublishedPipeline[] }) {
  if (pipelines.length === 0) {
    return <Empty>No published pipelines you may read.</Empty>;
  }
  return (
    <TableFrame columns={["Name", "Version", "Status", "DAG", "Parameters", "Actions"]} label="Published pipelines">
      {pipelines.map((pipeline) => (
        <Table.Row data-pipeline-id={pipeline.Id} data-testid="pipeline-row" key={pipeline.Id}>
          <Table.Cell>
            <Text fontWeight="medium">{pipeline.Name}</Text>
            {pipeline.Description === null ? undefined : (
              <Text color="fg.muted" fontSize="xs">
                {pipeline.Description}
              </Text>
            )}
          </Table.Cell>
          <Table.Cell>{pipeline.Version ?? "—"}</Table.Cell>
          <Table.Cell>
            <StatusBadge status={pipeline.Status} />
          </Table.Cell>
          <Table.Cell>
            <DagLink dagId={pipeline.DagId} />
          </Table.Cell>
          <Table.Cell>
            {pipeline.Parameters.length === 0 ? "—" : (
              <List.Root fontSize="xs" variant="plain">
                {pipeline.Parameters.map((parameter) => (
                  <List.Item key={parameter.Name}>
                    {parameter.Name}: {parameter.Type} = {formatJson(parameter.Default)}
                  </List.Item>
                ))}
              </List.Root>
            )}
          </Table.Cell>
          <Table.Cell>
            <EntryActions entry={pipeline} handlers={handlers} kind="pipeline" parameters={pipeline.Parameters} />
          </Table.Cell>
        </Table.Row>
      ))}
    </TableFrame>
  );
}

function EndpointsTable({ endpoints, handlers, pipelines }: { endpoints: PipelineEndpoint[]; handlers: Handlers;
  pipelines: PublishedPipeline[] }) {
  if (endpoints.length === 0) {
    return <Empty>No pipeline endpoints you may read.</Empty>;
  }
  return (
    <TableFrame columns={["Name", "Status", "Versions", "Actions"]} label="Pipeline endpoints">
      {endpoints.map((endpoint) => {
        const current = endpoint.Versions.find((version) => version.Version === endpoint.DefaultVersion);
        const parameters = pipelines.find((pipeline) => pipeline.Id === current?.PipelineId)?.Parameters ?? null;
        return (
          <Table.Row data-endpoint-id={endpoint.Id} data-testid="endpoint-row" key={endpoint.Id}>
            <Table.Cell fontWeight="medium">{endpoint.Name}</Table.Cell>
            <Table.Cell>
              <StatusBadge status={endpoint.Status} />
            </Table.Cell>
            <Table.Cell>
              <List.Root fontSize="sm" gap={1} variant="plain">
                {endpoint.Versions.map((version) => (
                  <List.Item data-version={version.Version} key={version.Version}>
                    <HStack flexWrap="wrap" gap={2}>
                      <Text>
                        Version {version.Version}: {version.PipelineName ?? version.PipelineId}
                      </Text>
                      <DagLink dagId={version.DagId} />
                      {version.Version === endpoint.DefaultVersion ? (
                        <Badge colorPalette="green">default</Badge>
                      ) : undefined}
                      {endpoint.CanManage && version.Version !== endpoint.DefaultVersion ? (
                        <Button
                          aria-label={`Make version ${version.Version} the default of endpoint ${endpoint.Name}`}
                          data-testid="set-default-button"
                          disabled={handlers.action.busy}
                          onClick={() => handlers.act("PUT", apiPath`ui/endpoints/${endpoint.Id}/default-version`,
                            { Version: version.Version })}
                          size="xs"
                          variant="outline"
                        >
                          Set default
                        </Button>
                      ) : undefined}
                    </HStack>
                  </List.Item>
                ))}
              </List.Root>
            </Table.Cell>
            <Table.Cell>
              <EntryActions entry={endpoint} handlers={handlers} kind="endpoint" parameters={parameters} />
            </Table.Cell>
          </Table.Row>
        );
      })}
    </TableFrame>
  );
}

function SchedulesTable({ handlers, view }: { handlers: Handlers; view: PublishedView }) {
  if (view.Schedules.length === 0) {
    return <Empty>No schedules you may read.</Empty>;
  }
  const target = (schedule: PipelineSchedule): string => {
    if (schedule.EndpointId !== null) {
      const endpoint = view.Endpoints.find((item) => item.Id === schedule.EndpointId);
      return `endpoint ${endpoint?.Name ?? schedule.EndpointId}`;
    }
    const pipeline = view.Pipelines.find((item) => item.Id === schedule.PipelineId);
    return pipeline === undefined ? `pipeline ${schedule.PipelineId ?? "—"}` : `pipeline ${pipeline.Name}`;
  };

  return (
    <TableFrame columns={["Name", "Status", "Submits", "DAG", "Recurrence", "Next run", "Actions"]} label="Schedules">
      {view.Schedules.map((schedule) => (
        <Table.Row data-schedule-id={schedule.Id} data-testid="schedule-row" key={schedule.Id}>
          <Table.Cell fontWeight="medium">{schedule.Name}</Table.Cell>
          <Table.Cell>
            <StatusBadge status={schedule.Status} />
          </Table.Cell>
          <Table.Cell>{target(schedule)}</Table.Cell>
          <Table.Cell>
            <DagLink dagId={schedule.DagId} />
          </Table.Cell>
          <Table.Cell>{schedule.Recurrence ?? "—"}</Table.Cell>
          <Table.Cell>{formatTime(schedule.NextRun)}</Table.Cell>
          <Table.Cell>
            {schedule.CanManage ? (
              <ToggleButton collection="schedules" entry={schedule} handlers={handlers} />
            ) : undefined}
          </Table.Cell>
        </Table.Row>
      ))}
    </TableFrame>
  );
}

export function PublishedPage() {
  const state = useApi<PublishedView>("ui/published");
  const action = useAction();
  const [submitting, setSubmitting] = useState<{ open: boolean; target?: SubmitTarget }>({ open: false });
  const { reload } = state;
  const handlers: Handlers = {
    act: (method, path, body) => {
      void action.run(method, path, body).then((answer) => (answer === undefined ? undefined : reload()));
    },
    action,
    submit: (target) => setSubmitting({ open: true, target }),
  };

  return (
    <Box data-testid="mlpipe-published" p={4}>
      <Heading as="h2" mb={4} size="md">
        ML pipelines
      </Heading>
      <Stack gap={6}>
        {action.error === undefined ? undefined : (
          <ApiAlert error={action.error} onDismiss={action.clear} title="The action failed" />
        )}
        <LoadedView state={state}>
          {(view) => (
            <>
              <Section title="Published pipelines">
                <PipelinesTable handlers={handlers} pipelines={view.Pipelines} />
              </Section>
              <Section title="Pipeline endpoints">
                <EndpointsTable endpoints={view.Endpoints} handlers={handlers} pipelines={view.Pipelines} />
              </Section>
              <Section title="Schedules">
                <SchedulesTable handlers={handlers} view={view} />
              </Section>
            </>
          )}
        </LoadedView>
      </Stack>
      <SubmitDialog onClose={() => setSubmitting(({ target }) => ({ open: false, target }))} onSubmitted={reload}
        open={submitting.open} target={submitting.target} />
    </Box>
  );
}
