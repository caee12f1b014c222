import { describe, expect, it } from "vitest";
import { FakeShell } from "./fake";

describe("fake shell", () => {
  const shell = () => new FakeShell("demo", () => {}, { settleMs: 0 });

  it("reports a taken name and local port with their field", async () => {
    const f = shell();
    const problems = (await f.handle("validate_forward", {
      original: null,
      forward: { name: "echo", target: "service/echo", port: 80, local_port: 18081 },
    })) as { field: string }[];
    expect(problems.map((p) => p.field)).toEqual(["name", "local_port"]);
    await expect(f.handle("save_forward", { original: null, forward: { name: "new", target: "service/echo", port: 80, local_port: 18080 } })).rejects.toMatchObject({
      code: "conflict",
      field: "local_port",
    });
  });

  it("refuses what the shell's types cannot hold as Tauri does: a string, no field", async () => {
    const f = shell();
    const forward = { name: "new", target: "service/echo", port: 80, local_port: 70000 };
    for (const cmd of ["validate_forward", "save_forward"])
      await expect(f.handle(cmd, { original: null, forward })).rejects.toBe(`invalid args \`forward\` for command \`${cmd}\`: 70000 is not a port (use 1-65535, or 0 for any free port)`);
    for (const bad of [{ bind: "localhost" }, { port: 0 }, { target: "service/Echo" }, { health: { interval: "often" } }, { extra: 1 }])
      await expect(f.handle("validate_forward", { original: null, forward: { ...forward, local_port: 1, ...bad } }), JSON.stringify(bad)).rejects.toMatch(/^invalid args/);
    expect(f.config.forwards.some((x) => x.name === "new")).toBe(false);
  });

  it("parses kubectl lines", async () => {
    const f = shell();
    // "echo" is taken: quick add names it as the shell does.
    expect(await f.handle("parse_kubectl", { line: "kubectl port-forward svc/echo 18080:80 -n demo --context x" })).toEqual({
      name: "echo-2",
      target: "service/echo",
      port: 80,
      local_port: 18080,
      namespace: "demo",
      context: "x",
    });
    await expect(f.handle("parse_kubectl", { line: "svc/echo" })).rejects.toMatchObject({ code: "invalid" });
  });
});
