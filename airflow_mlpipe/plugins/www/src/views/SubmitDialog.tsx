/**
 * The "Submit" form of a published pipeline or pipeline endpoint: one typed input per parameter, prefilled with its
 * default, sent to the v1 submit route as typed JSON (an int as a number, a bool as a boolean); then a link to the
 * new DAG run.
 */
import { Alert, Button, Checkbox, CloseButton, Dialog, Field, Input, Portal, Stack } from "@chakra-ui/react";
import { type FormEvent, useState } from "react";

import { apiPath, useAction } from "../api";
import { AppLink } from "../components/AppLink";
import { ApiAlert, Empty } from "../components/Feedback";
import { dagRunPath } from "../links";
import type { Json, PipelineParameter, SubmissionInfo, SubmittedRun } from "../types";

export interface SubmitTarget {
  kind: "pipeline" | "endpoint";
  id: string;
  name: string;
  /** null: not known (an endpoint whose default version's pipeline is not listed); the defaults apply */
  parameters: PipelineParameter[] | null;
}

interface DataPathValue {
  datastore: string;
  path: string;
}

type FieldValue = string | boolean | DataPathValue;

type Typed = { error: string } | { value: string | number | boolean | DataPathValue };

function initialValue(parameter: PipelineParameter): FieldValue {
  const value = parameter.Default;
  if (parameter.Type === "bool") {
    return value === true || (typeof value === "string" && value.toLowerCase() === "true");
  }
  if (parameter.Type === "datapath") {
    const record = typeof value === "object" && value !== null && !Array.isArray(value) ? value : {};
    const text = (item: Json | undefined) => (typeof item === "string" ? item : "");
    return { datastore: text(record.datastore), path: text(record.path) };
  }
  if (value === null) {
    return "";
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The value to send, or what is wrong with the input. */
function typedValue(type: string, value: FieldValue): Typed {
  if (typeof value === "boolean" || typeof value === "object") {
    return type === "datapath" && typeof value === "object" && value.datastore.trim() === ""
      ? { error: "Enter the datastore name." }
      : { value };
  }
  const text = value.trim();
  if (type === "int") {
    const number = Number(text);
    return /^[+-]?\d+$/u.test(text) && Number.isSafeInteger(number) ? { value: number }
      : { error: "Enter a whole number." };
  }
  if (type === "float") {
    const number = Number(text);
    return text !== "" && Number.isFinite(number) ? { value: number } : { error: "Enter a number." };
  }
  return { value };
}

function ParameterField({ onChange, parameter, showError, value }: { onChange: (value: FieldValue) => void;
  parameter: PipelineParameter; showError: boolean; value: FieldValue }) {
  const typed = typedValue(parameter.Type, value);
  const error = showError && "error" in typed ? typed.error : undefined;
  const helper = `${parameter.Type}${parameter.Default === null ? "" : `, default ${JSON.stringify(parameter.Default)}`}`;

  if (typeof value === "boolean") {
    return (
      <Field.Root>
        <Checkbox.Root checked={value} name={parameter.Name}
          onCheckedChange={(details) => onChange(details.checked === true)}>
          <Checkbox.HiddenInput />
          <Checkbox.Control />
          <Checkbox.Label>{parameter.Name}</Checkbox.Label>
        </Checkbox.Root>
        <Field.HelperText>{helper}</Field.HelperText>
      </Field.Root>
    );
  }
  if (typeof value === "object") {
    return (
      <Stack as="fieldset" gap={2}>
        <Field.Root invalid={error !== undefined} required>
          <Field.Label>{parameter.Name}: datastore</Field.Label>
          <Input name={`${parameter.Name}.datastore`} onChange={(event) => onChange({ ...value,
            datastore: event.target.value })} value={value.datastore} />
          <Field.ErrorText>{error}</Field.ErrorText>
        </Field.Root>
        <Field.Root>
          <Field.Label>{parameter.Name}: path in the datastore</Field.Label>
          <Input name={`${parameter.Name}.path`} onChange={(event) => onChange({ ...value, path: event.target.value })}
            value={value.path} />
          <Field.HelperText>{helper}</Field.HelperText>
        </Field.Root>
      </Stack>
    );
  }
  const numeric = parameter.Type === "int" || parameter.Type === "float";
  return (
    <Field.Root invalid={error !== undefined} required={numeric}>
      <Field.Label>{parameter.Name}</Field.Label>
      <Input
        inputMode={parameter.Type === "int" ? "numeric" : numeric ? "decimal" : undefined}
        name={parameter.Name}
        onChange={(event) => onChange(event.target.value)}
        step={parameter.Type === "int" ? 1 : numeric ? "any" : undefined}
        type={numeric ? "number" : "text"}
        value={value}
      />
      {error === undefined ? <Field.HelperText>{helper}</Field.HelperText> : <Field.ErrorText>{error}</Field.ErrorText>}
    </Field.Root>
  );
}

/** The body of the submit request, or undefined when an input is invalid. */
function submission(experiment: string, parameters: PipelineParameter[], values: Record<string, FieldValue>):
  SubmissionInfo | undefined {
  const body: SubmissionInfo = { ExperimentName: experiment.trim(), ParameterAssignments: {} };
  for (const parameter of parameters) {
    const typed = typedValue(parameter.Type, values[parameter.Name] ?? "");
    if ("error" in typed) {
      return undefined;
    }
    if (typeof typed.value === "object") {
      body.DataPathAssignments = { ...body.DataPathAssignments,
        [parameter.Name]: { DataStoreName: typed.value.datastore.trim(), RelativePath: typed.value.path.trim() } };
    } else {
      body.ParameterAssignments[parameter.Name] = typed.value;
    }
  }
  return body.ExperimentName === "" ? undefined : body;
}

function SubmitForm({ onSubmitted, target }: { onSubmitted: () => void; target: SubmitTarget }) {
  const parameters = target.parameters ?? [];
  const [experiment, setExperiment] = useState(target.name);
  const [values, setValues] = useState<Record<string, FieldValue>>(() =>
    Object.fromEntries(parameters.map((parameter) => [parameter.Name, initialValue(parameter)])));
  const [attempted, setAttempted] = useState(false);
  const [submitted, setSubmitted] = useState<SubmittedRun | undefined>(undefined);
  const action = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setAttempted(true);
    const body = submission(experiment, parameters, values);
    if (body === undefined || action.busy) {
      return;
    }
    const path = target.kind === "pipeline" ? apiPath`PipelineRuns/PipelineSubmit/${target.id}`
      : apiPath`PipelineRuns/PipelineEndpointSubmit/Id/${target.id}`;
    const run = await action.run<SubmittedRun>("POST", path, body);
    if (run !== undefined) {
      setSubmitted(run);
      onSubmitted();
    }
  };

  return (
    <form noValidate onSubmit={(event) => void submit(event)}>
      <Dialog.Body>
        <Stack gap={4}>
          <Field.Root invalid={attempted && experiment.trim() === ""} required>
            <Field.Label>
              Experiment name
              <Field.RequiredIndicator />
            </Field.Label>
            <Input maxLength={255} name="ExperimentName" onChange={(event) => setExperiment(event.target.value)}
              value={experiment} />
            <Field.ErrorText>Enter the experiment to record the run in.</Field.ErrorText>
          </Field.Root>
          {target.parameters === null ? (
            <Empty>The parameters of the default version are not listed here: their defaults apply.</Empty>
          ) : undefined}
          {target.parameters?.length === 0 ? <Empty>This pipeline has no parameters.</Empty> : undefined}
          {parameters.map((parameter) => (
            <ParameterField
              key={parameter.Name}
              onChange={(value) => setValues((previous) => ({ ...previous, [parameter.Name]: value }))}
              parameter={parameter}
              showError={attempted}
              value={values[parameter.Name] ?? ""}
            />
          ))}
          {action.error === undefined ? undefined : (
            <ApiAlert error={action.error} title="The submission was refused" />
          )}
          {submitted === undefined ? undefined : (
            <Alert.Root status="success">
              <Alert.Indicator />
              <Alert.Content>
                <Alert.Title>Run submitted</Alert.Title>
                <Alert.Description>
                  <AppLink data-testid="submitted-run-link" to={dagRunPath(submitted.DagId, submitted.DagRunId)}>
                    Open DAG run {submitted.DagRunId}
                  </AppLink>
                </Alert.Description>
              </Alert.Content>
            </Alert.Root>
          )}
        </Stack>
      </Dialog.Body>
      <Dialog.Footer>
        <Dialog.ActionTrigger asChild>
          <Button variant="outline">{submitted === undefined ? "Cancel" : "Close"}</Button>
        </Dialog.ActionTrigger>
        <Button data-testid="submit-run-button" loading={action.busy} type="submit">
          Submit run
        </Button>
      </Dialog.Footer>
    </form>
  );
}

/** `target` stays set while the dialog closes (its title must not change meanwhile); `open` says whether it shows. */
export function SubmitDialog({ onClose, onSubmitted, open, target }: { onClose: () => void; onSubmitted: () => void;
  open: boolean; target: SubmitTarget | undefined }) {
  return (
    <Dialog.Root lazyMount onOpenChange={(details) => (details.open ? undefined : onClose())}
      open={open && target !== undefined} unmountOnExit>
      <Portal>
        <Dialog.Backdrop />
        <Dialog.Positioner>
          <Dialog.Content data-testid="submit-dialog">
            <Dialog.Header>
              <Dialog.Title>
                Submit {target?.kind === "endpoint" ? "pipeline endpoint" : "pipeline"} {target?.name}
              </Dialog.Title>
            </Dialog.Header>
            {target === undefined ? undefined : (
              <SubmitForm key={`${target.kind}:${target.id}`} onSubmitted={onSubmitted} target={target} />
            )}
            <Dialog.CloseTrigger asChild>
              <CloseButton aria-label="Close the dialog" size="sm" />
            </Dialog.CloseTrigger>
          </Dialog.Content>
        </Dialog.Positioner>
      </Portal>
    </Dialog.Root>
  );
}
