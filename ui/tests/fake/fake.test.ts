import { describe, expect, it } from "vitest";
import { FakeShell } from "./fake";

describe("fake shell", () => {
  const shell = () => new FakeShell("demo", () => {}, { settleMs: 0 });

  it("rejects duplicate names and out-of-range local ports with their field", async () => {
    const f = shell();
    const problems = (await f.handle("validate_forward", {
      original: null,
      forward: { name: "echo", target: "service/echo", port: 80, local_port: 70000 },
    })) as { field: string }[];
    expect(problems.map((p) => p.field)).toEqual(["name", "local_port"]);
    await expect(f.handle("save_forward", { original: null, forward: { name: "new", target: "service/echo", port: 80, local_port: 70000 } })).rejects.toMatchObject({
      code: "invalid",
      field: "local_port",
    });
  });

  it("parses kubectl lines", async () => {
    const f = shell();
    expect(await f.handle("parse_kubectl", { line: "kubectl port-forward svc/echo 18080:80 -n demo --context x" })).toEqual({
      name: "echo",
      target: "service/echo",
      port: 80,
      local_port: 18080,
      namespace: "demo",
      context: "x",
    });
    await expect(f.handle("parse_kubectl", { line: "svc/echo" })).rejects.toMatchObject({ code: "invalid" });
  });
});
