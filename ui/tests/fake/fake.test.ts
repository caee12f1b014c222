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

  it("names the current context of a forward saved without one, as the shell does", async () => {
    const f = shell();
    await f.handle("save_forward", { original: null, forward: { name: "new", namespace: "demo", target: "service/echo", port: 80, local_port: 18500 } });
    expect(f.config.forwards.find((x) => x.name === "new")?.context).toBe("ferry-fake");
    await f.handle("save_forward", { original: null, forward: { name: "other", context: "staging", target: "service/api", port: 80, local_port: 18501 } });
    expect(f.config.forwards.find((x) => x.name === "other")?.context).toBe("staging");
  });

  it("imports as the shell does: renames reported, contexts pinned, nothing replaced", async () => {
    const f = shell();
    const text = "# tunnels\nkubectl port-forward svc/echo 18090:80 -n demo\nkubectl port-forward svc/kubernetes 16443:443\n\nkubectl port-forward pod/kubernetes 16444:443 --context staging\n";
    const report = await f.handle("import_config", { text, format: "auto", dryRun: true });
    expect(report).toEqual({
      added: ["echo-2", "kubernetes", "kubernetes-2"],
      replaced: [],
      warnings: [
        "echo: no context given; saved with `ferry-fake`, the current context now, so that switching kubectl's context does not move it",
        "kubernetes: no context given; saved with `ferry-fake`, the current context now, so that switching kubectl's context does not move it",
        "kubernetes is taken; imported as kubernetes-2",
        "echo is taken; imported as echo-2",
      ],
    });
    expect(f.config.forwards.length).toBe(4);
    await f.handle("import_config", { text, format: "auto", dryRun: false });
    expect(f.config.forwards.slice(4).map((x) => [x.name, x.context])).toEqual([
      ["echo-2", "ferry-fake"],
      ["kubernetes", "ferry-fake"],
      ["kubernetes-2", "staging"],
    ]);
    // All or nothing: a line that cannot be read names its line, and nothing is imported.
    await expect(f.handle("import_config", { text: "kubectl port-forward svc/a 1:80\nsvc/b 2:80", format: "auto", dryRun: false })).rejects.toMatchObject({
      code: "invalid",
      field: "text",
      message: "line 2: expected a `kubectl port-forward` command, found `svc/b`; nothing was imported",
    });
    await expect(f.handle("import_config", { text: "kubectl port-forward svc/a 18080:80", format: "auto", dryRun: true })).rejects.toMatchObject({ field: "forwards[7].local_port" });
    expect(f.config.forwards.length).toBe(7);
  });
});
