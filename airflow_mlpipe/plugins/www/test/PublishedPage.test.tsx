import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { PublishedPage } from "../src/views/PublishedPage";
import { publishedView } from "./fixtures";
import { type Call, renderView, type Route, stubApi, tabTo } from "./helpers";

const SUBMITTED = { DagId: "train_pipeline", DagRunId: "manual__2024-05-04", Id: "run-4" };

async function renderPage(can: { submit: boolean; manage: boolean }, routes: Record<string, Route> = {}):
  Promise<Call[]> {
  const calls = stubApi({ "GET ui/published": { body: publishedView(can) }, ...routes });
  renderView(<PublishedPage />);
  await screen.findAllByTestId("pipeline-row");
  return calls;
}

/** the row of a pipeline, endpoint or schedule, by its id */
function row(kind: string, id: string): HTMLElement {
  const found = screen.getAllByTestId(`${kind}-row`).find((element) => element.getAttribute(`data-${kind}-id`) === id);
  if (found === undefined) {
    throw new Error(`no ${kind} ${id}`);
  }
  return found;
}

const fetchesOfList = (calls: Call[]) => calls.filter((call) => call.path === "ui/published").length;

describe("ML Pipelines page", () => {
  it("lists pipelines, endpoints and schedules with links to their DAGs", async () => {
    await renderPage({ manage: true, submit: true });

    const pipeline = row("pipeline", "pl-1");
    expect(within(pipeline).getByRole("link", { name: "train_pipeline" })).toHaveAttribute("href", "/dags/train_pipeline");
    expect(within(pipeline).getByText("epochs: int = 10")).toBeInTheDocument();
    expect(within(pipeline).getByText("Active")).toBeInTheDocument();
    expect(within(row("pipeline", "pl-2")).getByText("Disabled")).toBeInTheDocument();
    const endpoint = row("endpoint", "ep-1");
    expect(within(endpoint).getByText("default")).toBeInTheDocument();
    expect(within(endpoint).getByRole("link", { name: "train_pipeline_v2" })).toHaveAttribute(
      "href", "/dags/train_pipeline_v2");
    const schedule = row("schedule", "sch-1");
    expect(within(schedule).getByText("every 1 Day at 06:00")).toBeInTheDocument();
    expect(within(schedule).getByText("pipeline train")).toBeInTheDocument();
    expect(screen.getByTestId("mlpipe-published")).toBeInTheDocument();
  });

  it("shows no action without the permissions", async () => {
    await renderPage({ manage: false, submit: false });

    for (const testId of ["submit-button", "enable-button", "disable-button", "set-default-button"]) {
      expect(screen.queryAllByTestId(testId)).toHaveLength(0);
    }
  });

  it("shows submit but no management actions to a user who may only run", async () => {
    await renderPage({ manage: false, submit: true });

    expect(screen.getAllByTestId("submit-button")).toHaveLength(3);
    expect(screen.queryAllByTestId("disable-button")).toHaveLength(0);
    expect(screen.queryAllByTestId("set-default-button")).toHaveLength(0);
  });

  it("submits typed parameter values and links to the new DAG run", async () => {
    const user = userEvent.setup();
    const calls = await renderPage({ manage: false, submit: true },
      { "POST PipelineRuns/PipelineSubmit/pl-1": { body: SUBMITTED } });

    await user.click(within(row("pipeline", "pl-1")).getByTestId("submit-button"));
    const dialog = await screen.findByRole("dialog");
    expect(within(dialog).getByLabelText("epochs")).toHaveValue(10);
    expect(within(dialog).getByLabelText("epochs")).toHaveAttribute("type", "number");
    expect(dialog.querySelector("input[name=epochs]")).toBe(within(dialog).getByLabelText("epochs"));
    expect(within(dialog).getByLabelText("optimizer")).toHaveValue("adam");
    expect(within(dialog).getByRole("checkbox", { name: "shuffle" })).toBeChecked();

    await user.clear(within(dialog).getByLabelText("epochs"));
    await user.type(within(dialog).getByLabelText("epochs"), "7");
    await user.clear(within(dialog).getByLabelText("learning_rate"));
    await user.type(within(dialog).getByLabelText("learning_rate"), "0.05");
    await user.click(within(dialog).getByRole("checkbox", { name: "shuffle" }));
    await user.clear(within(dialog).getByLabelText(/Experiment name/u));
    await user.type(within(dialog).getByLabelText(/Experiment name/u), "churn");
    await user.click(within(dialog).getByRole("button", { name: "Submit run" }));

    const link = await within(dialog).findByTestId("submitted-run-link");
    expect(link).toHaveAttribute("href", "/dags/train_pipeline/runs/manual__2024-05-04");
    const post = calls.find((call) => call.method === "POST");
    expect(post?.body).toStrictEqual({
      DataPathAssignments: { input_path: { DataStoreName: "workspaceblobstore", RelativePath: "data/in" } },
      ExperimentName: "churn",
      ParameterAssignments: { epochs: 7, learning_rate: 0.05, optimizer: "adam", shuffle: false },
    });
    await waitFor(() => expect(fetchesOfList(calls)).toBe(2));
  });

  it("refuses a non-number and shows the server's refusal", async () => {
    const user = userEvent.setup();
    const calls = await renderPage({ manage: false, submit: true }, { "POST PipelineRuns/PipelineSubmit/pl-1": {
      body: { detail: "Pipeline parameter 'optimizer': not allowed", error: { code: "UserError" } }, status: 400 } });

    await user.click(within(row("pipeline", "pl-1")).getByTestId("submit-button"));
    const dialog = await screen.findByRole("dialog");
    await user.clear(within(dialog).getByLabelText("epochs"));
    await user.click(within(dialog).getByRole("button", { name: "Submit run" }));
    expect(within(dialog).getByText("Enter a whole number.")).toBeInTheDocument();
    expect(calls.filter((call) => call.method === "POST")).toHaveLength(0);

    await user.type(within(dialog).getByLabelText("epochs"), "3");
    await user.click(within(dialog).getByRole("button", { name: "Submit run" }));
    expect(await within(dialog).findByText("Pipeline parameter 'optimizer': not allowed")).toBeInTheDocument();
    expect(within(dialog).queryByTestId("submitted-run-link")).toBeNull();
  });

  it("operates the submit dialog with the keyboard", async () => {
    const user = userEvent.setup();
    const calls = await renderPage({ manage: false, submit: true },
      { "POST PipelineRuns/PipelineEndpointSubmit/Id/ep-1": { body: SUBMITTED } });

    const submit = within(row("endpoint", "ep-1")).getByTestId("submit-button");
    await tabTo(user, submit);
    await user.keyboard("{Enter}");
    const dialog = await screen.findByRole("dialog");
    expect(dialog).toHaveAccessibleName("Submit pipeline endpoint churn-endpoint");
    await waitFor(() => expect(within(dialog).getByLabelText(/Experiment name/u)).toHaveFocus());

    await user.keyboard("{Control>}a{/Control}nightly");
    await user.tab();
    expect(within(dialog).getByLabelText("epochs")).toHaveFocus();
    await user.keyboard("{Control>}a{/Control}12");
    await tabTo(user, within(dialog).getByRole("checkbox", { name: "shuffle" }));
    await user.keyboard(" ");
    await tabTo(user, within(dialog).getByRole("button", { name: "Submit run" }));
    await user.keyboard("{Enter}");

    await within(dialog).findByTestId("submitted-run-link");
    expect(calls.find((call) => call.method === "POST")?.body).toMatchObject({
      ExperimentName: "nightly",
      ParameterAssignments: { epochs: 12, shuffle: false },
    });
    await user.keyboard("{Escape}");
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
  });

  it("enables, disables and sets the default version, then refetches", async () => {
    const user = userEvent.setup();
    const calls = await renderPage({ manage: true, submit: true }, {
      "POST ui/pipelines/pl-1/disable": { body: {} },
      "POST ui/pipelines/pl-2/enable": { body: {} },
      "POST ui/schedules/sch-1/disable": { body: {} },
      "PUT ui/endpoints/ep-1/default-version": { body: {} },
    });

    await user.click(within(row("pipeline", "pl-1")).getByTestId("disable-button"));
    await waitFor(() => expect(fetchesOfList(calls)).toBe(2));
    await user.click(within(row("pipeline", "pl-2")).getByTestId("enable-button"));
    await waitFor(() => expect(fetchesOfList(calls)).toBe(3));
    await user.click(within(row("schedule", "sch-1")).getByTestId("disable-button"));
    await waitFor(() => expect(fetchesOfList(calls)).toBe(4));
    const setDefault = within(row("endpoint", "ep-1")).getByTestId("set-default-button");
    expect(setDefault).toHaveAccessibleName("Make version 2 the default of endpoint churn-endpoint");
    await user.click(setDefault);
    await waitFor(() => expect(fetchesOfList(calls)).toBe(5));

    expect(calls.filter((call) => call.method !== "GET").map((call) => [call.method, call.path, call.body])).toEqual([
      ["POST", "ui/pipelines/pl-1/disable", undefined],
      ["POST", "ui/pipelines/pl-2/enable", undefined],
      ["POST", "ui/schedules/sch-1/disable", undefined],
      ["PUT", "ui/endpoints/ep-1/default-version", { Version: "2" }],
    ]);
  });

  it("shows a refused action's detail", async () => {
    const user = userEvent.setup();
    const calls = await renderPage({ manage: true, submit: true }, { "POST ui/pipelines/pl-1/disable": {
      body: { detail: "Forbidden: DAG train_pipeline edit", error: { code: "Forbidden" } }, status: 403 } });

    await user.click(within(row("pipeline", "pl-1")).getByTestId("disable-button"));
    expect(await screen.findByText("Forbidden: DAG train_pipeline edit")).toBeInTheDocument();
    await act(async () => undefined);
    expect(fetchesOfList(calls)).toBe(1);
    await user.click(screen.getByRole("button", { name: "Dismiss the message" }));
    expect(screen.queryByText("Forbidden: DAG train_pipeline edit")).toBeNull();
  });
});
