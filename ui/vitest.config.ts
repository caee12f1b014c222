import { defineConfig } from "vitest/config";
import { svelte } from "@sveltejs/vite-plugin-svelte";

export default defineConfig({
  test: {
    projects: [
      {
        // Compiles runes in *.svelte.ts for the store tests.
        plugins: [svelte()],
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "tests/fake/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "browser",
          include: ["tests/browser/**/*.test.ts"],
          environment: "node",
          testTimeout: 30_000,
          hookTimeout: 60_000,
          // One Chromium per file; files share the two cores better one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
