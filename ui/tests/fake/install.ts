// Puts the fake shell behind Tauri's IPC in a plain browser: @tauri-apps/api's mocks
// answer invoke() with FakeShell and deliver its events to listen(). Built into an IIFE
// (dist-fake/fake.js) that the browser tests inject with addInitScript, and imported by
// `npm run dev` when the page is not inside the app.
//
// Before it runs, a page may set window.__FERRY_FAKE_OPTIONS__ = {scenario, settleMs}.
// The fake is then at window.__ferryFake (tests drive it with page.evaluate).

import { mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import { FakeShell, type Scenario } from "./fake";

declare global {
  interface Window {
    __FERRY_FAKE_OPTIONS__?: { scenario?: Scenario; settleMs?: number };
    __ferryFake?: FakeShell;
    __TAURI_INTERNALS__?: { invoke: (cmd: string, args?: unknown) => Promise<unknown> };
  }
}

function scenarioFromUrl(): Scenario | undefined {
  const m = /scenario=([a-z-]+)/.exec(location.hash + location.search);
  return (m?.[1] as Scenario) ?? undefined;
}

const opts = window.__FERRY_FAKE_OPTIONS__ ?? {};
mockWindows("main");
const emit = (event: string, payload: unknown) => {
  // Delivered like the shell's events, after the command that caused them returns.
  setTimeout(() => window.__TAURI_INTERNALS__!.invoke("plugin:event|emit", { event, payload }), 0);
};
const fake = new FakeShell(opts.scenario ?? scenarioFromUrl() ?? "no-kubeconfig", emit, { settleMs: opts.settleMs });
mockIPC((cmd, args) => fake.handle(cmd, (args ?? {}) as Record<string, unknown>), { shouldMockEvents: true });
window.__ferryFake = fake;

export {};
