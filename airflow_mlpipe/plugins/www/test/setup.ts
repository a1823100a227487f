/** Test setup: jest-dom matchers, cleanup, and no console error or warning allowed in any test. */
import "@testing-library/jest-dom/vitest";

import { cleanup } from "@testing-library/react";
import { afterEach, expect } from "vitest";

const messages: string[] = [];

for (const level of ["error", "warn"] as const) {
  const original = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    messages.push(`console.${level}: ${args.map(String).join(" ")}`);
    original(...args);
  };
}

afterEach(() => {
  cleanup();
  document.head.querySelector("base")?.remove();
  expect(messages.splice(0), "console errors or warnings").toEqual([]);
});
