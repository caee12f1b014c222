import { describe, expect, it } from "vitest";
import { importPreview } from "./imports";
import type { ImportResult } from "./types";

describe("import preview", () => {
  it("shows each entry with its rename and notes, and the notes about no entry", () => {
    const forward = { name: "echo-2", context: "ferry-fake", namespace: "demo", target: "service/echo", port: 80, local_port: 18090 };
    const r: ImportResult = {
      added: ["echo-2"],
      replaced: [],
      warnings: ["line 3: a note for no entry"],
      entries: [{ forward, wanted: "echo", renamed: "paste", notes: ["no context given; saved with `ferry-fake`"] }],
    };
    expect(importPreview(r)).toEqual({
      entries: [{ name: "echo-2", forward, rename: { from: "echo", why: "paste" }, notes: ["No context given; saved with `ferry-fake`."] }],
      replaced: [],
      notes: ["Line 3: a note for no entry."],
    });
  });

  it("says a clash with a saved forward apart from a rename within the text, and nothing for a kept name", () => {
    const f = (name: string) => ({ name, target: "service/echo", port: 80, local_port: 0 });
    const r: ImportResult = {
      added: ["echo-2", "api"],
      replaced: [],
      warnings: [],
      entries: [
        { forward: f("echo-2"), wanted: "echo", renamed: "config", notes: [] },
        { forward: f("api"), wanted: "api", renamed: null, notes: [] },
      ],
    };
    const v = importPreview(r);
    expect(v.entries.map((e) => e.rename)).toEqual([{ from: "echo", why: "config" }, null]);
    expect(v.notes).toEqual([]);
  });
});
