import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

// Builds the fake shell into one classic script for page.addInitScript (tests only).
export default defineConfig({
  build: {
    outDir: fileURLToPath(new URL("../../dist-fake", import.meta.url)),
    emptyOutDir: true,
    minify: false,
    lib: {
      entry: fileURLToPath(new URL("./install.ts", import.meta.url)),
      formats: ["iife"],
      name: "FerryFake",
      fileName: () => "fake.js",
    },
  },
});
