import "./app.css";
import { mount } from "svelte";
import App from "./App.svelte";
import { tauriBackend } from "./lib/backend";

async function boot() {
  // `npm run dev` in a plain browser has no shell: serve the in-memory fake behind the same
  // IPC. Never part of a production build.
  if (import.meta.env.DEV && !("__TAURI_INTERNALS__" in window)) {
    await import("../tests/fake/install");
  }
  mount(App, { target: document.getElementById("app")!, props: { backend: tauriBackend } });
}

boot();
