import { describe, expect, it } from "vitest";
import { configYaml, FakeShell } from "./fake";
import type { Config, ExportResult, ImportResult } from "../../src/lib/types";

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

  it("says on its field what the shell cannot read, as the shell does, and saves nothing", async () => {
    const f = shell();
    const forward = { name: "new", target: "service/echo", port: 80, local_port: 70000 };
    expect(await f.handle("validate_forward", { original: null, forward })).toEqual([
      { field: "local_port", message: "local_port cannot be read: 70000 is not a port (use 1-65535, or 0 for any free port)", code: "invalid" },
    ]);
    await expect(f.handle("save_forward", { original: null, forward })).rejects.toMatchObject({ code: "invalid", field: "local_port" });
    const fields: [object, string][] = [
      [{ bind: "localhost" }, "bind"],
      [{ port: 0 }, "port"],
      [{ target: "service/Echo" }, "target"],
      [{ health: { interval: "often" } }, "health.interval"],
      [{ extra: 1 }, "forward"],
    ];
    for (const [bad, field] of fields)
      expect(await f.handle("validate_forward", { original: null, forward: { ...forward, local_port: 1, ...bad } }), JSON.stringify(bad)).toMatchObject([{ field, code: "invalid" }]);
    expect(f.config.forwards.some((x) => x.name === "new")).toBe(false);
  });

  it("keeps a star through a rename and drops it with a delete, as the shell does", async () => {
    const shell = new FakeShell("demo", () => {}, { settleMs: 0 });
    await shell.handle("set_favourite", { name: "web", favourite: true });
    await shell.handle("set_favourite", { name: "db", favourite: true });
    const web = shell.config.forwards.find((f) => f.name === "web")!;
    await shell.handle("save_forward", { original: "web", forward: { ...web, name: "www" } });
    expect(shell.appState().favourites).toEqual(["www", "db"]);
    await shell.handle("delete_forward", { name: "db" });
    expect(shell.appState().favourites).toEqual(["www"]);
    shell.dispose();
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
    const report = (await f.handle("import_config", { text, format: "auto", dryRun: true })) as ImportResult;
    const pinned = "no context given; saved with `ferry-fake`, the current context now, so that switching kubectl's context does not move it";
    expect(report.added).toEqual(["echo-2", "kubernetes", "kubernetes-2"]);
    expect(report.warnings).toEqual([]);
    expect(report.entries.map((e) => [e.forward.name, e.wanted, e.renamed, e.notes])).toEqual([
      ["echo-2", "echo", "config", [pinned]],
      ["kubernetes", "kubernetes", null, [pinned]],
      ["kubernetes-2", "kubernetes", "paste", []],
    ]);
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

  it("exports Ferry's YAML of every forward and profile, as the shell does", async () => {
    const f = shell();
    const r = (await f.handle("export_config", { format: "ferry" })) as ExportResult;
    expect(r.notes).toEqual([]);
    expect(r.text).toBe(
      [
        "version: 1",
        "forwards:",
        "  - name: echo",
        "    context: ferry-fake",
        "    namespace: demo",
        "    target: service/echo",
        "    port: 80",
        "    local_port: 18080",
        "  - name: web",
        "    context: ferry-fake",
        "    namespace: demo",
        "    target: service/web",
        "    port: http",
        "    local_port: 18081",
        "    alias: web",
        "    health:",
        "      kind: http",
        "      interval: 5s",
        "      fast_interval: 1s",
        "      timeout: 2s",
        "      rise: 2",
        "      fall: 3",
        "      http:",
        "        path: /healthz",
        '        expect_status: "200-399"',
        "  - name: db",
        "    context: ferry-fake",
        "    namespace: demo",
        "    target: statefulset/db",
        "    port: pg",
        "    local_port: 15432",
        "  - name: api",
        "    context: staging",
        "    namespace: payments",
        "    target: deployment/api",
        "    port: 8080",
        "    local_port: 8080",
        '    bind: "0.0.0.0"',
        "    enabled: false",
        "profiles:",
        "  - name: demo",
        "    forwards:",
        "      - echo",
        "      - web",
        "      - db",
        "  - name: backend",
        "    forwards:",
        "      - db",
        "      - api",
        "",
      ].join("\n"),
    );
  });

  it("writes YAML that reads back as the same strings", () => {
    const config: Config = {
      version: 1,
      forwards: [
        // As the shell holds them once read: svc is service, "8080" the number 8080.
        { name: "yes", namespace: "on", target: "svc/x", port: "8080", pod_port: true, local_port: 0, alias: null, health: { kind: "tcp", interval: "1.5s", fast_interval: "500ms", timeout: "2s", rise: 1, fall: 1, http: { path: "/a b#c", expect_status: "200", body_regex: "^ok: \"yes\"$" } } },
      ],
      profiles: [],
    };
    expect(configYaml(config)).toBe(
      [
        "version: 1",
        "forwards:",
        '  - name: "yes"',
        '    namespace: "on"',
        "    target: service/x",
        "    port: 8080",
        "    pod_port: true",
        "    local_port: 0",
        "    health:",
        "      kind: tcp",
        "      interval: 1.5s",
        "      fast_interval: 500ms",
        "      timeout: 2s",
        "      rise: 1",
        "      fall: 1",
        "      http:",
        '        path: "/a b#c"',
        '        expect_status: "200"',
        '        body_regex: "^ok: \\"yes\\"$"',
        "",
      ].join("\n"),
    );
    expect(configYaml({ version: 1, forwards: [] })).toBe("version: 1\nforwards: []\n");
  });

  it("exports kftray's JSON of the services, naming each forward left out", async () => {
    const f = shell();
    await f.handle("save_forward", { original: null, forward: { name: "pods", namespace: "demo", target: "svc/echo", port: "8080", pod_port: true, local_port: 18500, bind: "127.0.0.2", alias: "echo-pods" } });
    const r = (await f.handle("export_config", { format: "kftray" })) as ExportResult;
    expect(r.text.endsWith("]\n")).toBe(true);
    expect(JSON.parse(r.text)).toEqual([
      { service: "echo", namespace: "demo", local_port: 18080, remote_port: 80, context: "ferry-fake", workload_type: "service", protocol: "tcp", local_address: "127.0.0.1", alias: "echo", domain_enabled: false },
      { service: "echo", namespace: "demo", local_port: 18500, remote_port: 8080, context: "ferry-fake", workload_type: "service", protocol: "tcp", local_address: "127.0.0.2", alias: "echo-pods", domain_enabled: true },
    ]);
    expect(r.notes).toEqual([
      "echo: exported remote_port 80 is the service's port; kftray expects the pods' port",
      "web: kftray needs a port number, not the name `http`; not exported",
      "db: statefulset/db has no kftray equivalent; not exported",
      "api: deployment/api has no kftray equivalent; not exported",
    ]);
    // Nothing to export is an empty array, as serde writes it.
    const empty = new FakeShell("empty", () => {}, { settleMs: 0 });
    expect(await empty.handle("export_config", { format: "kftray" })).toEqual({ text: "[]\n", notes: [] });
    // A format the shell's enum does not have: Tauri's own rejection, a string.
    await expect(f.handle("export_config", { format: "yaml" })).rejects.toMatch(/^invalid args `format` for command `export_config`: unknown variant `yaml`/);
  });
});
