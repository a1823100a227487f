/** Rendering inside the providers the Airflow UI gives a plugin, and a fetch stub that serves fixture JSON. */
import { ChakraProvider, defaultSystem } from "@chakra-ui/react";
import { render, type RenderResult } from "@testing-library/react";
import type { ReactElement } from "react";
import { MemoryRouter } from "react-router-dom";
import { vi } from "vitest";

export function renderView(view: ReactElement): RenderResult {
  return render(
    <ChakraProvider value={defaultSystem}>
      <MemoryRouter>{view}</MemoryRouter>
    </ChakraProvider>,
  );
}

export interface Call {
  method: string;
  /** path (and query) under /mlpipe/api/v1/ */
  path: string;
  url: string;
  body: unknown;
  credentials: RequestCredentials | undefined;
}

export interface Reply {
  status?: number;
  body: unknown;
}

export type Route = Reply | ((call: Call) => Reply);

/** Serves `routes` ("METHOD path?query" -> reply) as the API; anything else answers 404. Returns the calls made. */
export function stubApi(routes: Record<string, Route>): Call[] {
  const calls: Call[] = [];

  vi.stubGlobal("fetch", async (input: URL | string, init?: RequestInit) => {
    const url = new URL(String(input));
    const path = url.pathname.replace(/^.*?\/mlpipe\/api\/v1\//u, "") + url.search;
    const method = init?.method ?? "GET";
    const call: Call = {
      body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
      credentials: init?.credentials,
      method,
      path,
      url: url.href,
    };
    calls.push(call);
    const route = routes[`${method} ${path}`];
    const reply = route === undefined ? { body: { detail: `no stub for ${method} ${path}` }, status: 404 }
      : typeof route === "function" ? route(call) : route;
    return new Response(JSON.stringify(reply.body), {
      headers: { "Content-Type": "application/json" },
      status: reply.status ?? 200,
    });
  });
  return calls;
}

/** Presses Tab until `element` has the focus (at most `limit` times); fails if it never gets it. */
export async function tabTo(user: { tab: () => Promise<void> }, element: HTMLElement, limit = 20): Promise<void> {
  for (let presses = 0; presses < limit && document.activeElement !== element; presses += 1) {
    await user.tab();
  }
  if (document.activeElement !== element) {
    throw new Error(`Tab never reached ${element.outerHTML.slice(0, 120)}`);
  }
}
