/** Named values (parameters, metrics) as a description list. */
import { DataList } from "@chakra-ui/react";

import { formatJson } from "../format";
import type { Json } from "../types";
import { Empty } from "./Feedback";

export function ValueList({ empty, values }: { empty: string; values: Record<string, Json> }) {
  const names = Object.keys(values).sort();

  if (names.length === 0) {
    return <Empty>{empty}</Empty>;
  }
  return (
    <DataList.Root orientation="horizontal" size="sm">
      {names.map((name) => (
        <DataList.Item key={name}>
          <DataList.ItemLabel>{name}</DataList.ItemLabel>
          <DataList.ItemValue wordBreak="break-word">{formatJson(values[name])}</DataList.ItemValue>
        </DataList.Item>
      ))}
    </DataList.Root>
  );
}
