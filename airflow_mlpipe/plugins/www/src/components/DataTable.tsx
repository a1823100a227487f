/** Rows of JSON values under named columns (logged tables, previews); positions key the cells (names may repeat). */
import { Table } from "@chakra-ui/react";

import { formatJson } from "../format";
import type { Json } from "../types";
import { TableFrame } from "./TableFrame";

export function DataTable({ columns, label, rows }: { columns: string[]; label: string; rows: Json[][] }) {
  return (
    <TableFrame columns={columns} label={label} maxH="md" stickyHeader>
      {rows.map((row, rowIndex) => (
        <Table.Row key={rowIndex}>
          {columns.map((_, index) => (
            <Table.Cell key={index}>{formatJson(row[index])}</Table.Cell>
          ))}
        </Table.Row>
      ))}
    </TableFrame>
  );
}
