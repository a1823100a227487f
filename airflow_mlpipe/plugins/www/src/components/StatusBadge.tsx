/** A badge for a v1 run/step status or a published entity's status. */
import { Badge } from "@chakra-ui/react";

const PALETTES: Record<string, string> = {
  Active: "green",
  Bypassed: "purple",
  CancelRequested: "orange",
  Canceled: "orange",
  Cancelled: "orange",
  Completed: "green",
  Disabled: "gray",
  Failed: "red",
  Finished: "green",
  NotStarted: "gray",
  Preparing: "yellow",
  Queued: "yellow",
  Running: "blue",
  Skipped: "purple",
};

export function StatusBadge({ status }: { status: string }) {
  return (
    <Badge colorPalette={PALETTES[status] ?? "gray"} variant="subtle">
      {status}
    </Badge>
  );
}
