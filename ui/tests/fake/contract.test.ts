// The fake shell the UI's tests run against is held to the real one: the same script of
// commands (tests/contract/script.json) must get the answers the real shell gives
// (tests/contract/answers.json, written and checked by src-tauri/tests/contract.rs),
// normalized the same way: errors by code and field, values by shape, or exactly without
// messages where a step says so.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { FakeShell } from "./fake";

type Step = { cmd: string; args: Record<string, unknown>; exact?: boolean };
const dir = new URL("../contract/", import.meta.url);
const script = JSON.parse(readFileSync(new URL("script.json", dir), "utf8")) as { steps: Step[] };
const answers = JSON.parse(readFileSync(new URL("answers.json", dir), "utf8")) as { cmd: string; answer: unknown }[];

/** JSON with sorted keys, as serde_json writes a map (the order shapes are sorted in). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object")
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(v);
}

function shape(v: unknown): unknown {
  if (v === null) return "null";
  if (Array.isArray(v)) {
    const shapes: unknown[] = [];
    for (const s of v.map(shape)) if (!shapes.some((x) => canonical(x) === canonical(s))) shapes.push(s);
    return shapes.sort((a, b) => (canonical(a) < canonical(b) ? -1 : canonical(a) > canonical(b) ? 1 : 0));
  }
  if (typeof v === "object") return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, shape(x)]));
  return typeof v;
}

function wordless(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(wordless);
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v as object).filter(([k]) => k !== "message").map(([k, x]) => [k, wordless(x)]));
  return v;
}

/**
 * Where `got` differs from `want` (a path), or null. A `null` leaf goes with anything (a
 * disabled forward has no pod in one shell and a made-up one in the other), and so does an
 * empty array (no health history yet); object keys must be the same, and every shape in
 * one array must be in the other.
 */
function mismatch(want: unknown, got: unknown, path = "$"): string | null {
  if (want === "null" || got === "null") return null;
  if (Array.isArray(want) && Array.isArray(got)) {
    if (want.length === 0 || got.length === 0) return null;
    for (const g of got) if (!want.some((w) => mismatch(w, g) === null)) return `${path}[]: ${canonical(g)} is not in the real shell's answer`;
    for (const w of want) if (!got.some((g) => mismatch(w, g) === null)) return `${path}[]: ${canonical(w)} is missing`;
    return null;
  }
  if (want !== null && got !== null && typeof want === "object" && typeof got === "object" && !Array.isArray(want) && !Array.isArray(got)) {
    const wk = Object.keys(want).sort();
    const gk = Object.keys(got).sort();
    if (canonical(wk) !== canonical(gk)) return `${path}: keys ${canonical(gk)}, the real shell's ${canonical(wk)}`;
    for (const k of wk) {
      const m = mismatch((want as Record<string, unknown>)[k], (got as Record<string, unknown>)[k], `${path}.${k}`);
      if (m) return m;
    }
    return null;
  }
  return canonical(want) === canonical(got) ? null : `${path}: ${canonical(got)}, the real shell's ${canonical(want)}`;
}

describe("the fake shell", () => {
  it("answers the contract script as the real shell does", async () => {
    expect(answers.length).toBe(script.steps.length);
    const shell = new FakeShell("empty", () => {}, { settleMs: 0 });
    const got: { cmd: string; answer: unknown }[] = [];
    for (const step of script.steps) {
      let answer: unknown;
      try {
        // What crosses IPC is JSON: undefined fields are not there.
        const v = JSON.parse(JSON.stringify((await shell.handle(step.cmd, structuredClone(step.args))) ?? null));
        answer = { ok: step.exact ? wordless(v) : shape(v) };
      } catch (e) {
        const err = e as { code?: string; field?: string | null };
        answer = typeof e === "string" ? { error: { code: `(a bare string: ${e})`, field: null } } : { error: { code: err.code, field: err.field ?? null } };
      }
      got.push({ cmd: step.cmd, answer });
    }
    for (let i = 0; i < got.length; i++) {
      const where = `step ${i}: ${script.steps[i].cmd} ${JSON.stringify(script.steps[i].args)}`;
      expect(mismatch(answers[i], got[i]), `${where}\nreal: ${canonical(answers[i])}\nfake: ${canonical(got[i])}`).toBe(null);
    }
  });
});
