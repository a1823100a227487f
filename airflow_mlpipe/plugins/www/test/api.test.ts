import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { ApiError, apiPath, loginUrl, request } from "../src/api";
import { stubApi } from "./helpers";

describe("API client", () => {
  let replace: ReturnType<typeof vi.fn<(url: string | URL) => void>>;

  beforeEach(() => {
    const base = document.createElement("base");
    base.href = "/airflow/";
    document.head.append(base);
    window.history.replaceState(null, "", "/airflow/dags/d/runs/r/plugin/mlpipe-pipeline?tab=1#steps");
    replace = vi.fn<(url: string | URL) => void>();
    vi.spyOn(window.location, "replace").mockImplementation(replace);
  });

  afterEach(() => {
    window.history.replaceState(null, "", "/");
  });

  it("resolves paths under the Airflow base URL and sends the session cookie", async () => {
    const calls = stubApi({ "GET ui/published": { body: { Pipelines: [] } } });

    await expect(request("GET", "ui/published")).resolves.toEqual({ Pipelines: [] });
    expect(calls[0]).toMatchObject({ credentials: "same-origin", url: "http://localhost:8080/airflow/mlpipe/api/v1/ui/published" });
  });

  it("encodes every interpolated value", () => {
    expect(apiPath`ui/dags/${"a/b"}/runs/${"x?y#z"}/preview?port=${"p&q"}`).toBe(
      "ui/dags/a%2Fb/runs/x%3Fy%23z/preview?port=p%26q");
  });

  it("turns an error answer into an ApiError with the server's detail", async () => {
    stubApi({ "POST ui/pipelines/x/enable": { body: { detail: "Published pipeline 'x' was not found" }, status: 404 } });

    const error = await request("POST", "ui/pipelines/x/enable").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ message: "Published pipeline 'x' was not found", status: 404 });
    expect(replace).not.toHaveBeenCalled();
  });

  it.each([
    [401, "Not authenticated"],
    [403, "Invalid JWT token"],
  ])("sends the browser to the login page on %i %s", async (status, detail) => {
    stubApi({ "GET ui/summary": { body: { detail }, status } });

    await expect(request("GET", "ui/summary")).rejects.toMatchObject({ status });
    expect(replace).toHaveBeenCalledWith(
      "http://localhost:8080/airflow/api/v2/auth/login?next=%2Fairflow%2Fdags%2Fd%2Fruns%2Fr%2Fplugin%2Fmlpipe-pipeline%3Ftab%3D1%23steps");
    expect(loginUrl()).toBe(replace.mock.calls[0]?.[0]);
  });

  it("does not log out on a plain 403", async () => {
    stubApi({ "GET ui/summary": { body: { detail: "Forbidden" }, status: 403 } });

    await expect(request("GET", "ui/summary")).rejects.toMatchObject({ message: "Forbidden", status: 403 });
    expect(replace).not.toHaveBeenCalled();
  });
});
