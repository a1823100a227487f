/** Loading, error and empty states shared by the views. */
import { Alert, CloseButton, HStack, Spinner, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import type { ApiError, Loaded } from "../api";

/** The server's message (its `detail`); `onDismiss` adds a close button. */
export function ApiAlert({ error, onDismiss, status = "error", title }: { error: ApiError; onDismiss?: () => void;
  status?: "error" | "info"; title: string }) {
  return (
    <Alert.Root status={status}>
      <Alert.Indicator />
      <Alert.Content>
        <Alert.Title>{title}</Alert.Title>
        <Alert.Description>{error.message}</Alert.Description>
      </Alert.Content>
      {onDismiss === undefined ? undefined : (
        <CloseButton aria-label="Dismiss the message" onClick={onDismiss} size="sm" />
      )}
    </Alert.Root>
  );
}

export function Loading() {
  return (
    <HStack aria-live="polite" data-loading="true" gap={2} role="status">
      <Spinner size="sm" />
      <Text>Loading…</Text>
    </HStack>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <Text color="fg.muted" fontSize="sm">
      {children}
    </Text>
  );
}

/**
 * Renders the data once loaded (kept while reloading), else the spinner or the error; a 404 (e.g. "not an
 * airflow-mlpipe pipeline run") is information, not a failure.
 */
export function LoadedView<T>({ children, state }: { children: (data: T) => ReactNode; state: Loaded<T> }) {
  if (state.error !== undefined) {
    const notFound = state.error.status === 404;
    return <ApiAlert error={state.error} status={notFound ? "info" : "error"}
      title={notFound ? "Not available" : "Loading failed"} />;
  }
  if (state.data === undefined) {
    return <Loading />;
  }
  return children(state.data);
}
