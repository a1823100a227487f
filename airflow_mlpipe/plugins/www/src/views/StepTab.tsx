/**
 * `Step` (task_instance tab): the cache decision with its key and what went into it, the step's data, metrics,
 * logged tables and images, and for AutoML steps the leaderboard of every model tried.
 */
import { Badge, Box, Code, DataList, Heading, HStack, Image, List, SimpleGrid, Stack, Table, Text }
  from "@chakra-ui/react";

import { apiPath, apiUrl, useApi } from "../api";
import { AppLink } from "../components/AppLink";
import { PortsSections } from "../components/DataRefs";
import { DataTable } from "../components/DataTable";
import { Empty, LoadedView } from "../components/Feedback";
import { ReasonList, ReuseInfo } from "../components/ReuseInfo";
import { Section } from "../components/Section";
import { StatusBadge } from "../components/StatusBadge";
import { TableFrame } from "../components/TableFrame";
import { ValueList } from "../components/ValueList";
import { formatDuration, formatJson, formatNumber, formatTime } from "../format";
import { stepTabPath } from "../links";
import type { CacheDecision, Json, Leaderboard, LeaderboardRow, PluginProps, StepView } from "../types";

const DECISION_PALETTES: Record<CacheDecision, string> = {
  computed: "blue",
  "no-reuse": "orange",
  pending: "gray",
  reused: "teal",
};

/** metric names whose smaller values are better, when the leaderboard's best row does not tell */
const LOWER_IS_BETTER = /error|loss|mae|mse|mape/iu;

/** Whether the images route of our API serves this URL (anything else is not shown). */
function imageSource(url: string): string | undefined {
  const source = new URL(url, document.baseURI);
  const images = apiUrl("ui/images/");
  return source.origin === images.origin && source.pathname.startsWith(images.pathname) ? source.href : undefined;
}

/** The key's components as nested lists: objects by key, lists of objects item by item, scalars as text. */
function JsonTree({ value }: { value: Json }) {
  if (Array.isArray(value) && value.some((item) => item !== null && typeof item === "object")) {
    return (
      <List.Root as="ol" fontSize="sm" ps={4}>
        {value.map((item, index) => (
          <List.Item key={index}>
            <JsonTree value={item} />
          </List.Item>
        ))}
      </List.Root>
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return <Code wordBreak="break-all">{formatJson(value)}</Code>;
  }
  const keys = Object.keys(value).sort();
  if (keys.length === 0) {
    return (
      <Text as="span" color="fg.muted">
        none
      </Text>
    );
  }
  return (
    <List.Root fontSize="sm" ps={4}>
      {keys.map((key) => (
        <List.Item key={key}>
          <Text as="span" fontWeight="medium">
            {key}
          </Text>
          : <JsonTree value={value[key] ?? null} />
        </List.Item>
      ))}
    </List.Root>
  );
}

/** Best first: the direction follows the best iteration when the server names it. */
function rankLeaderboard(board: Leaderboard): LeaderboardRow[] {
  const scores = board.Rows.flatMap((row) => (row.Score === null ? [] : [row.Score]));
  const best = board.Rows.find((row) => row.Iteration === board.BestIteration)?.Score ?? null;
  const lowerIsBetter = best === null || scores.length < 2 || Math.min(...scores) === Math.max(...scores)
    ? LOWER_IS_BETTER.test(board.PrimaryMetric)
    : best === Math.min(...scores);

  return [...board.Rows].sort((left, right) => {
    if (left.Score === null || right.Score === null) {
      return left.Score === right.Score ? left.Iteration - right.Iteration : left.Score === null ? 1 : -1;
    }
    const order = lowerIsBetter ? left.Score - right.Score : right.Score - left.Score;
    return order === 0 ? left.Iteration - right.Iteration : order;
  });
}

function LeaderboardTable({ board }: { board: Leaderboard }) {
  return (
    <TableFrame columns={["Rank", "Iteration", "Model", board.PrimaryMetric, "Training time"]}
      label="AutoML leaderboard">
      {rankLeaderboard(board).map((row, index) => {
        const isBest = row.Iteration === board.BestIteration;
        return (
          <Table.Row bg={isBest ? "bg.emphasized" : undefined} data-best={isBest || undefined}
            data-testid="leaderboard-row" key={row.Iteration}>
            <Table.Cell>{index + 1}</Table.Cell>
            <Table.Cell>{row.Iteration}</Table.Cell>
            <Table.Cell>
              <HStack gap={2}>
                <Text>{row.Model}</Text>
                {isBest ? (
                  <Badge colorPalette="green" variant="solid">
                    best
                  </Badge>
                ) : undefined}
              </HStack>
            </Table.Cell>
            <Table.Cell>{row.Score === null ? "—" : formatNumber(row.Score)}</Table.Cell>
            <Table.Cell>{formatDuration(row.TrainingSeconds)}</Table.Cell>
          </Table.Row>
        );
      })}
    </TableFrame>
  );
}

function CacheSection({ dagId, step }: { dagId: string; step: StepView }) {
  const { Cache: cache } = step;
  const producer = step.Reused ? step.ReusedFrom : null;

  return (
    <Section title="Cache">
      <DataList.Root orientation="horizontal" size="sm">
        <DataList.Item>
          <DataList.ItemLabel>Decision</DataList.ItemLabel>
          <DataList.ItemValue>
            <Badge colorPalette={DECISION_PALETTES[cache.Decision] ?? "gray"} data-testid="cache-decision">
              {cache.Decision}
            </Badge>
          </DataList.ItemValue>
        </DataList.Item>
        <DataList.Item>
          <DataList.ItemLabel>Key</DataList.ItemLabel>
          <DataList.ItemValue>{cache.Key === null ? "—" : <Code wordBreak="break-all">{cache.Key}</Code>}</DataList.ItemValue>
        </DataList.Item>
        {producer === null ? undefined : (
          <DataList.Item>
            <DataList.ItemLabel>Produced by</DataList.ItemLabel>
            <DataList.ItemValue>
              <AppLink data-testid="producer-step-link" to={stepTabPath(producer.DagId, producer.DagRunId,
                producer.TaskId)}>
                step {producer.TaskId} of {producer.DagId === dagId ? "run" : `DAG ${producer.DagId}, run`}{" "}
                {producer.DagRunId}
              </AppLink>
            </DataList.ItemValue>
          </DataList.Item>
        )}
      </DataList.Root>
      <ReuseInfo badges={false} step={step} />
      <ReasonList label="Cache decision reasons"
        reasons={cache.Reasons.filter((reason) => !step.MissReasons.includes(reason))} />
      <Heading as="h4" size="xs">
        What went into the key
      </Heading>
      {cache.Components === null ? <Empty>No key was computed.</Empty> : <JsonTree value={cache.Components} />}
    </Section>
  );
}

function StepContent({ dagId, step, stepPath }: { dagId: string; step: StepView; stepPath: string }) {
  return (
    <Stack gap={6}>
      <HStack flexWrap="wrap" gap={3}>
        <Heading as="h3" size="sm">
          {step.Name}
        </Heading>
        <StatusBadge status={step.Status} />
        {step.Kind === null ? undefined : <Badge variant="outline">{step.Kind}</Badge>}
        <Text color="fg.muted" fontSize="sm">
          {formatTime(step.StartTime)} → {formatTime(step.EndTime)} ({formatDuration(step.DurationSeconds)})
        </Text>
      </HStack>
      <CacheSection dagId={dagId} step={step} />
      <SimpleGrid columns={{ base: 1, xl: 2 }} gap={6}>
        <PortsSections step={step} stepPath={stepPath} />
      </SimpleGrid>
      <Section title="Metrics">
        <ValueList empty="No metrics logged." values={step.Metrics} />
      </Section>
      {step.Leaderboard === null ? undefined : (
        <Section title={`AutoML leaderboard (${step.Leaderboard.Rows.length} models, by ${step.Leaderboard.PrimaryMetric})`}>
          <LeaderboardTable board={step.Leaderboard} />
        </Section>
      )}
      {step.Tables.map((table, index) => (
        <Section key={`${index}:${table.Name}`} title={`Table ${table.Name}`}>
          <DataTable columns={table.Columns} label={table.Name} rows={table.Rows} />
        </Section>
      ))}
      {step.Images.length === 0 ? undefined : (
        <Section title="Images">
          <SimpleGrid columns={{ base: 1, md: 2, xl: 3 }} gap={4}>
            {step.Images.map((image, index) => {
              const source = imageSource(image.Url);
              return (
                <Box as="figure" key={`${index}:${image.Name}`}>
                  {source === undefined ? (
                    <Empty>Image {image.Name} has an unexpected address.</Empty>
                  ) : (
                    <Image alt={image.Name} borderWidth="1px" rounded="md" src={source} />
                  )}
                  <Text as="figcaption" fontSize="sm" mt={1}>
                    {image.Name}
                  </Text>
                </Box>
              );
            })}
          </SimpleGrid>
        </Section>
      )}
    </Stack>
  );
}

export function StepTab({ dagId, runId, taskId }: PluginProps) {
  const stepPath = dagId && runId && taskId ? apiPath`ui/dags/${dagId}/runs/${runId}/steps/${taskId}` : undefined;
  const state = useApi<StepView>(stepPath);

  return (
    <Box data-testid="mlpipe-step" p={4}>
      <Heading as="h2" mb={4} size="md">
        ML step
      </Heading>
      {dagId && stepPath ? (
        <LoadedView state={state}>{(step) => <StepContent dagId={dagId} step={step} stepPath={stepPath} />}</LoadedView>
      ) : (
        <Empty>Open this view from a task instance.</Empty>
      )}
    </Box>
  );
}
