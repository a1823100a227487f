/** A step's inputs or outputs (URI, size, files, content hash), each tabular port with a "Preview" of its first rows. */
import { Button, Code, Table, Text } from "@chakra-ui/react";
import { useId, useState } from "react";

import { apiPath, useApi } from "../api";
import { formatBytes } from "../format";
import type { DataRef, Preview, StepSummary } from "../types";
import { DataTable } from "./DataTable";
import { Empty, LoadedView } from "./Feedback";
import { Section } from "./Section";
import { TableFrame } from "./TableFrame";

export type Side = "input" | "output";

/** rows asked for in a preview (the server allows up to 100) */
const PREVIEW_ROWS = 20;
const COLUMNS = 6;

function PreviewRows({ path, port }: { path: string; port: string }) {
  const state = useApi<Preview>(path);

  return (
    <LoadedView state={state}>
      {(preview) => (
        <>
          <Text color="fg.muted" fontSize="xs">
            First {preview.Rows.length}
            {preview.TotalRows === null ? "" : ` of ${preview.TotalRows}`} rows
          </Text>
          <DataTable columns={preview.Columns} label={`Preview of ${port}`} rows={preview.Rows} />
        </>
      )}
    </LoadedView>
  );
}

function DataRefRow({ dataRef, side, stepPath }: { dataRef: DataRef; side: Side; stepPath: string }) {
  const [open, setOpen] = useState(false);
  const previewId = useId();
  const hash = dataRef.ContentHash;
  const previewPath = `${stepPath}/preview${apiPath`?port=${dataRef.Name}&side=${side}&rows=${PREVIEW_ROWS}`}`;

  return (
    <>
      <Table.Row>
        <Table.Cell fontWeight="medium">{dataRef.Name}</Table.Cell>
        <Table.Cell>{dataRef.Uri === null ? "—" : <Code wordBreak="break-all">{dataRef.Uri}</Code>}</Table.Cell>
        <Table.Cell>{formatBytes(dataRef.Size)}</Table.Cell>
        <Table.Cell>{dataRef.Files ?? "—"}</Table.Cell>
        <Table.Cell>{hash === null ? "—" : <Code title={hash}>{hash.length > 12 ? `${hash.slice(0, 12)}…` : hash}</Code>}</Table.Cell>
        <Table.Cell>
          {dataRef.Tabular ? (
            <Button
              aria-controls={open ? previewId : undefined}
              aria-expanded={open}
              aria-label={`Preview ${side} ${dataRef.Name}`}
              data-testid="preview-button"
              onClick={() => setOpen((value) => !value)}
              size="xs"
              variant="outline"
            >
              {open ? "Hide preview" : "Preview"}
            </Button>
          ) : undefined}
        </Table.Cell>
      </Table.Row>
      {open ? (
        <Table.Row>
          <Table.Cell colSpan={COLUMNS} id={previewId}>
            <PreviewRows path={previewPath} port={dataRef.Name} />
          </Table.Cell>
        </Table.Row>
      ) : undefined}
    </>
  );
}

/** `stepPath`: the step's API path (`ui/dags/{dag}/runs/{run}/steps/{task}`). */
export function DataRefs({ refs, side, stepPath }: { refs: DataRef[]; side: Side; stepPath: string }) {
  if (refs.length === 0) {
    return <Empty>No {side}s.</Empty>;
  }
  return (
    <TableFrame columns={[side === "input" ? "Input" : "Output", "URI", "Size", "Files", "Content hash",
      <Text srOnly>Preview</Text>]} label={side === "input" ? "Inputs" : "Outputs"}>
      {refs.map((dataRef) => (
        <DataRefRow dataRef={dataRef} key={dataRef.Name} side={side} stepPath={stepPath} />
      ))}
    </TableFrame>
  );
}

/** A step's "Inputs" and "Outputs" sections, as two siblings: the caller lays them out (stacked or in a grid). */
export function PortsSections({ step, stepPath }: { step: Pick<StepSummary, "Inputs" | "Outputs">;
  stepPath: string }) {
  return (
    <>
      <Section title="Inputs">
        <DataRefs refs={step.Inputs} side="input" stepPath={stepPath} />
      </Section>
      <Section title="Outputs">
        <DataRefs refs={step.Outputs} side="output" stepPath={stepPath} />
      </Section>
    </>
  );
}
