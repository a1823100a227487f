/**
 * The client of the plugin's API (`mlpipe/api/v1/...` under the Airflow base URL).
 *
 * Requests carry the UI's session cookie (`_token`, same origin). An expired or missing session sends the browser
 * to Airflow's login page and back, as the Airflow UI itself does; other errors become an ApiError carrying the
 * server's `detail` text.
 */
import { useCallback, useEffect, useState } from "react";

/** The API root, relative to the Airflow base URL (`document.baseURI`). */
const API_ROOT = "mlpipe/api/v1/";
/** Airflow's login route (it redirects to the auth manager's login page, then to `next`). */
const LOGIN_ROUTE = "api/v2/auth/login";

export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** Builds an API path from a template, URL-encoding every interpolated value as one path segment or query value. */
export function apiPath(strings: TemplateStringsArray, ...values: (string | number)[]): string {
  return strings.reduce(
    (path, part, index) => path + part + (index < values.length ? encodeURIComponent(String(values[index])) : ""),
    "",
  );
}

export function apiUrl(path: string): URL {
  return new URL(API_ROOT + path, document.baseURI);
}

/** Airflow's login URL that comes back to the current page. */
export function loginUrl(): string {
  const { hash, pathname, search } = globalThis.location;
  const url = new URL(LOGIN_ROUTE, document.baseURI);

  url.searchParams.set("next", `${pathname}${search}${hash}`);

  return url.href;
}

function sessionExpired(status: number, detail: string): boolean {
  return status === 401 || (status === 403 && detail === "Invalid JWT token");
}

async function errorDetail(response: Response): Promise<string> {
  const fallback = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
  try {
    const body: unknown = await response.json();
    if (typeof body === "object" && body !== null && "detail" in body) {
      const { detail } = body;
      return typeof detail === "string" ? detail : JSON.stringify(detail);
    }
  } catch {
    // not JSON: the status line says enough
  }
  return fallback;
}

/** Sends one request; resolves to the JSON body, rejects with an ApiError. */
export async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  let response: Response;
  try {
    response = await fetch(apiUrl(path), {
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      headers,
      method,
      signal,
    });
  } catch (error) {
    if (signal?.aborted) {
      throw error;
    }
    throw new ApiError(0, `The airflow-mlpipe API could not be reached: ${String(error)}`);
  }
  if (!response.ok) {
    const detail = await errorDetail(response);
    if (sessionExpired(response.status, detail)) {
      globalThis.location.replace(loginUrl());
      throw new ApiError(response.status, "Your session has expired: opening the login page.");
    }
    throw new ApiError(response.status, detail);
  }
  return (await response.json()) as T;
}

function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError(0, String(error));
}

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  /** fetches again; the current data stays shown until the answer arrives */
  reload: () => void;
}

interface LoadState<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  path: string | undefined;
}

/** GETs `path` (no request while it is undefined) and again on reload(). */
export function useApi<T>(path: string | undefined): Loaded<T> {
  const [state, setState] = useState<LoadState<T>>({ data: undefined, error: undefined, loading: true, path });
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    if (path === undefined) {
      return undefined;
    }
    const controller = new AbortController();
    setState((previous) => ({ ...previous, loading: true }));
    request<T>("GET", path, undefined, controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) {
          setState({ data, error: undefined, loading: false, path });
        }
      },
      (error: unknown) => {
        if (!controller.signal.aborted) {
          setState({ data: undefined, error: asApiError(error), loading: false, path });
        }
      },
    );
    return () => controller.abort();
  }, [path, generation]);

  const reload = useCallback(() => setGeneration((value) => value + 1), []);
  const current = state.path === path;

  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    loading: path !== undefined && (state.loading || !current),
    reload,
  };
}

export interface Action {
  busy: boolean;
  error: ApiError | undefined;
  /** runs one request; resolves to its answer, or to undefined after an error (then shown through `error`) */
  run: <T>(method: string, path: string, body?: unknown) => Promise<T | undefined>;
  clear: () => void;
}

/** State for user actions (POST/PUT): one at a time, the last error kept for display. */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);

  const run = useCallback(async <T,>(method: string, path: string, body?: unknown): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await request<T>(method, path, body);
    } catch (caught) {
      setError(asApiError(caught));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  const clear = useCallback(() => setError(undefined), []);

  return { busy, clear, error, run };
}
