/** A bordered, scrolling small table: an aria-label, one header row of `columns`, `children` as the body rows. */
import { Table } from "@chakra-ui/react";
import { Fragment, isValidElement, type ReactNode } from "react";

export interface TableFrameProps {
  /** the body rows */
  children: ReactNode;
  /** each a header cell's content, or a whole `Table.ColumnHeader` (used as is, e.g. for a narrow hidden column) */
  columns: ReactNode[];
  /** the table's aria-label */
  label: string;
  maxH?: string;
  mt?: number;
  stickyHeader?: boolean;
}

function isColumnHeader(column: ReactNode): boolean {
  return isValidElement(column) && column.type === Table.ColumnHeader;
}

export function TableFrame({ children, columns, label, maxH, mt, stickyHeader }: TableFrameProps) {
  return (
    <Table.ScrollArea borderWidth="1px" maxH={maxH} mt={mt} rounded="md">
      <Table.Root aria-label={label} size="sm" stickyHeader={stickyHeader}>
        <Table.Header>
          <Table.Row>
            {columns.map((column, index) => (
              <Fragment key={index}>
                {isColumnHeader(column) ? column : <Table.ColumnHeader>{column}</Table.ColumnHeader>}
              </Fragment>
            ))}
          </Table.Row>
        </Table.Header>
        <Table.Body>{children}</Table.Body>
      </Table.Root>
    </Table.ScrollArea>
  );
}
