/** A titled part of a view. */
import { Heading, Stack } from "@chakra-ui/react";
import { type ReactNode, useId } from "react";

export function Section({ children, title }: { children: ReactNode; title: ReactNode }) {
  const headingId = useId();

  return (
    <Stack aria-labelledby={headingId} as="section" gap={2}>
      <Heading as="h3" id={headingId} size="sm">
        {title}
      </Heading>
      {children}
    </Stack>
  );
}
