import { describe, expect, it } from "vitest";
import { importPreview } from "./imports";
import type { ImportResult } from "./types";

const pinned = (name: string) => `${name}: no context given; saved with \`ferry-fake\`, the current context now, so that switching kubectl's context does not move it`;

describe("import preview", () => {
  it("tells a rename within the text from a clash with a saved forward", () => {
    // What the shell answers for `svc/echo`, `svc/kubernetes`, `pod/kubernetes` with "echo"
    // saved: kubernetes renamed within the text, echo against the saved forward.
    const r: ImportResult = {
      added: ["echo-2", "kubernetes", "kubernetes-2"],
      replaced: [],
      warnings: [pinned("echo"), pinned("kubernetes"), "kubernetes is taken; imported as kubernetes-2", "echo is taken; imported as echo-2"],
    };
    const v = importPreview(r, ["echo", "web", "db"]);
    expect(v.entries.map((e) => [e.name, e.rename])).toEqual([
      ["echo-2", { from: "echo", why: "config" }],
      ["kubernetes", null],
      ["kubernetes-2", { from: "kubernetes", why: "paste" }],
    ]);
    // A note names the entry as the text did ("echo"), before it was renamed.
    const note = "No context given; saved with `ferry-fake`, the current context now, so that switching kubectl's context does not move it.";
    expect(v.entries.map((e) => e.notes)).toEqual([[note], [note], []]);
    expect(v.notes).toEqual([]);
    expect(v.entries.every((e) => e.forward === null)).toBe(true);
  });

  it("says a rename once when the shell reports it at both steps", () => {
    // "echo" saved, and the text names two forwards echo: renamed within the text first
    // (echo, echo-2), then against the config (echo-2, echo-2-2).
    const r: ImportResult = {
      added: ["echo-2", "echo-2-2"],
      replaced: [],
      warnings: ["echo is taken; imported as echo-2", "echo is taken; imported as echo-2", "echo-2 is taken; imported as echo-2-2"],
    };
    const v = importPreview(r, ["echo"]);
    expect(v.entries.map((e) => e.rename)).toEqual([
      { from: "echo", why: "config" },
      { from: "echo-2", why: "paste" },
    ]);
    expect(v.notes).toEqual([]);
  });

  it("keeps notes about no one entry, and renames of a name no entry ended with", () => {
    const r: ImportResult = {
      added: ["api"],
      replaced: [],
      warnings: ["line 2: --kubeconfig /tmp/k is not carried over; Ferry uses the kubeconfig's contexts", "web is taken; imported as web-2", "api: alias api is taken; published as api-2.local instead"],
    };
    const v = importPreview(r, ["web"]);
    expect(v.entries).toEqual([{ name: "api", forward: null, rename: null, notes: ["Alias api is taken; published as api-2.local instead."] }]);
    expect(v.notes).toEqual([
      "web is imported as web-2: a saved forward is already named web.",
      "Line 2: --kubeconfig /tmp/k is not carried over; Ferry uses the kubeconfig's contexts.",
    ]);
  });

  it("uses the entries when the shell sends them", () => {
    const forward = { name: "echo-2", context: "ferry-fake", namespace: "demo", target: "service/echo", port: 80, local_port: 18090 };
    const r: ImportResult = {
      added: ["echo-2"],
      replaced: [],
      warnings: ["line 3: a note for no entry"],
      entries: [{ forward, wanted: "echo", renamed: "paste", notes: ["no context given; saved with `ferry-fake`"] }],
    };
    // The shell's reason is taken as it is, whatever the saved names.
    expect(importPreview(r, ["echo"])).toEqual({
      entries: [{ name: "echo-2", forward, rename: { from: "echo", why: "paste" }, notes: ["No context given; saved with `ferry-fake`."] }],
      replaced: [],
      notes: ["Line 3: a note for no entry."],
    });
  });
});
