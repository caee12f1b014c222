import { describe, expect, it } from "vitest";
import { emptyForm, formFieldOf, formFromForward, forwardFromForm, parsePort } from "./form";
import type { Forward } from "./types";

describe("form model", () => {
  it("builds a minimal forward from a new form", () => {
    const m = { ...emptyForm(), name: " echo ", namespace: "demo", resource: "echo", port: "80", localPort: "18080" };
    const { forward, problems } = forwardFromForm(m, null);
    expect(problems).toEqual([]);
    expect(forward).toEqual({ name: "echo", namespace: "demo", target: "service/echo", port: 80, local_port: 18080 });
  });

  it("reads a kind typed into the resource field and named ports", () => {
    const m = { ...emptyForm(), name: "db", resource: "sts/db", port: "pg", localPort: "" };
    expect(forwardFromForm(m, null).forward).toMatchObject({ target: "statefulset/db", port: "pg", local_port: 0 });
  });

  it("reports a local port that is not a number", () => {
    const m = { ...emptyForm(), name: "x", resource: "x", port: "80", localPort: "abc" };
    expect(forwardFromForm(m, null).problems).toEqual([{ field: "local_port", message: expect.any(String) }]);
  });

  it("keeps fields the form does not show when editing", () => {
    const original: Forward = {
      name: "web",
      target: "deployment/web",
      port: 8080,
      local_port: 8080,
      enabled: false,
      health: { kind: "http", interval: "5s", fast_interval: "500ms", timeout: "2s", rise: 4, fall: 5, http: { path: "/ready", expect_status: "200", host: "web" } },
    };
    const m = formFromForward(original);
    expect(m.kind).toBe("deployment");
    expect(m.httpPath).toBe("/ready");
    m.interval = "10s";
    m.bind = "0.0.0.0";
    const { forward } = forwardFromForm(m, original);
    expect(forward.enabled).toBe(false);
    expect(forward.bind).toBe("0.0.0.0");
    expect(forward.health).toEqual({ ...original.health, interval: "10s" });
  });

  it("leaves health out when it is the default", () => {
    const m = { ...emptyForm(), name: "x", resource: "x", port: "80" };
    expect(forwardFromForm(m, null).forward.health).toBeUndefined();
    m.healthKind = "tcp";
    expect(forwardFromForm(m, null).forward.health).toMatchObject({ kind: "tcp", interval: "5s", rise: 2, fall: 3 });
  });

  it("parses ports", () => {
    expect(parsePort(" 80 ")).toBe(80);
    expect(parsePort("http")).toBe("http");
  });

  it("maps problem paths to form fields", () => {
    expect(formFieldOf("local_port")).toBe("local_port");
    expect(formFieldOf("forwards[2].port")).toBe("port");
    expect(formFieldOf("health.interval")).toBe("health.interval");
    expect(formFieldOf("health.http.expect_status")).toBe("health.http.path");
    expect(formFieldOf("kind")).toBe("target");
    expect(formFieldOf("health.rise")).toBeNull();
    expect(formFieldOf(null)).toBeNull();
  });
});
