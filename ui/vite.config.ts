import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The shell loads the built files from disk (ui/dist), so asset paths are relative.
export default defineConfig({
  base: "./",
  plugins: [svelte()],
  clearScreen: false,
  server: {
    port: 5173,
    strictPort: true,
    host: "127.0.0.1",
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
  },
});
