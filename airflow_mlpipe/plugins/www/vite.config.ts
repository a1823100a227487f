/**
 * Builds dist/mlpipe-ui.js: one IIFE that registers the five react_apps components on globalThis.
 *
 * React, ReactDOM, the JSX runtime, react-router-dom, Chakra UI and Emotion are not bundled: Airflow's UI exposes
 * its own instances on globalThis, and using them makes our components share the host's router, Chakra theme and
 * color mode (a second copy would have its own contexts).
 */
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/** module id -> the globalThis key under which the Airflow 3.3 UI exposes that module */
const HOST_GLOBALS: Record<string, string> = {
  "@chakra-ui/react": "ChakraUI",
  "@emotion/react": "EmotionReact",
  react: "React",
  "react-dom": "ReactDOM",
  "react-router-dom": "ReactRouterDOM",
  "react/jsx-runtime": "ReactJSXRuntime",
};

export default defineConfig({
  build: {
    copyPublicDir: false,
    emptyOutDir: true,
    lib: {
      entry: "src/main.tsx",
      fileName: () => "mlpipe-ui.js",
      formats: ["iife"],
      name: "MlpipeUi",
    },
    minify: true,
    outDir: "dist",
    reportCompressedSize: false,
    rolldownOptions: {
      external: Object.keys(HOST_GLOBALS),
      output: { globals: HOST_GLOBALS },
    },
    sourcemap: false,
    target: "es2022",
  },
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  plugins: [react()],
});
