/** A link to a page of the Airflow UI, through the host's router (paths from ../links). */
import { Link as ChakraLink, type LinkProps } from "@chakra-ui/react";
import type { ReactNode } from "react";
import { Link as RouterLink } from "react-router-dom";

export function AppLink({ children, to, ...rest }: { children: ReactNode; to: string } & Omit<LinkProps, "href">) {
  return (
    <ChakraLink asChild color="fg.info" {...rest}>
      <RouterLink to={to}>{children}</RouterLink>
    </ChakraLink>
  );
}
