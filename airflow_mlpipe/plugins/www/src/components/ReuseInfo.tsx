/** Whether a step reused earlier outputs (with a link to the run that produced them) or computed, and why. */
import { Badge, HStack, List, Stack, Text } from "@chakra-ui/react";

import { pipelineTabPath, taskInstancePath } from "../links";
import type { StepSummary } from "../types";
import { AppLink } from "./AppLink";

export function ReasonList({ label, reasons }: { label: string; reasons: string[] }) {
  if (reasons.length === 0) {
    return undefined;
  }
  return (
    <List.Root aria-label={label} fontSize="xs" ps={4}>
      {reasons.map((reason, index) => (
        <List.Item key={index}>{reason}</List.Item>
      ))}
    </List.Root>
  );
}

/** A step deferred while another run computes its cache key: the note next to Airflow's "deferred" state. */
export function WaitingNote({ step }: { step: StepSummary }) {
  const waiting = step.WaitingFor;
  if (waiting === null) {
    return undefined;
  }
  const { DagId: dagId, DagRunId: dagRunId, TaskId: taskId } = waiting;
  return (
    <Text data-testid="waiting-for" fontSize="sm">
      deferred: waiting for{" "}
      {dagId !== null && dagRunId !== null && taskId !== null ? (
        <AppLink to={taskInstancePath(dagId, dagRunId, taskId)}>run {dagRunId}</AppLink>
      ) : (
        (waiting.Description ?? waiting.StepRunId ?? "another run")
      )}
      , which computes the same step
    </Text>
  );
}

/** `badges`: false where the view shows the cache decision already. */
export function ReuseInfo({ badges = true, step }: { badges?: boolean; step: StepSummary }) {
  const producer = step.Reused ? step.ReusedFrom : null;

  return (
    <Stack gap={1}>
      <WaitingNote step={step} />
      <HStack flexWrap="wrap" gap={2}>
        {badges && step.Reused ? (
          <Badge colorPalette="teal" variant="solid">
            reused
          </Badge>
        ) : undefined}
        {badges && !step.Reused && step.StartTime !== null ? (
          <Badge colorPalette="blue" variant="outline">
            computed
          </Badge>
        ) : undefined}
        {producer === null ? undefined : (
          <Text fontSize="sm">
            from run{" "}
            <AppLink data-testid="reused-link" to={pipelineTabPath(producer.DagId, producer.DagRunId)}>
              {producer.DagRunId}
            </AppLink>
          </Text>
        )}
      </HStack>
      {step.CacheReason === null ? undefined : (
        <Text color="fg.muted" fontSize="xs">
          {step.CacheReason}
        </Text>
      )}
      <ReasonList label={`Why ${step.Name} computed`} reasons={step.MissReasons} />
    </Stack>
  );
}
