import { describe, expect, it } from "vitest";
import { addLabel, badgeOf, declaredLocal, declaredTarget } from "./declared";
import type { DeclaredForward } from "./types";

const echo: DeclaredForward = {
  name: "echo",
  object: "service/echo",
  namespace: "demo",
  source: "kftray",
  description: null,
  notes: [],
  have: null,
  forward: { name: "echo-2", context: "ferry-fake", namespace: "demo", target: "service/echo", port: 9000, pod_port: true, local_port: 19000 },
};

describe("the badge", () => {
  it("is absent with nothing new", () => {
    expect(badgeOf(undefined)).toBeNull();
    expect(badgeOf([])).toBeNull();
    expect(badgeOf([{ context: "c", namespace: "n", count: 0 }])).toBeNull();
  });

  it("adds up the namespaces and opens on the one with most", () => {
    const b = badgeOf([
      { context: "ferry-fake", namespace: "demo", count: 1 },
      { context: "staging", namespace: "payments", count: 2 },
    ]);
    expect(b?.text).toBe("3 from the cluster");
    expect(b?.place).toEqual({ context: "staging", namespace: "payments" });
    expect(b?.title).toBe("The cluster declares 3 forwards you do not have (1 in demo @ ferry-fake, 2 in payments @ staging)");
  });
});

describe("a declared forward", () => {
  it("reads as its target and local address", () => {
    expect(declaredTarget(echo, false)).toBe("svc/echo:9000 (pods' port)");
    expect(declaredTarget(echo, true)).toBe("svc/echo:9000 (pods' port) in demo");
    expect(declaredLocal(echo)).toBe("127.0.0.1:19000");
    expect(declaredLocal({ ...echo, forward: { ...echo.forward, local_port: 0 } })).toBe("127.0.0.1: any free port");
  });

  it("is added once, under the name offered", () => {
    expect(addLabel(echo, new Set())).toEqual({ disabled: false, text: "Add as echo-2" });
    expect(addLabel({ ...echo, forward: { ...echo.forward, name: "echo" } }, new Set())).toEqual({ disabled: false, text: "Add" });
    expect(addLabel(echo, new Set(["echo-2"]))).toEqual({ disabled: true, text: "Added as echo-2" });
    expect(addLabel({ ...echo, have: "echo" }, new Set())).toEqual({ disabled: true, text: "You have it: echo" });
  });
});
