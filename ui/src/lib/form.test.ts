import { describe, expect, it } from "vitest";
import { emptyForm, formFieldOf, formFromForward, forwardFromForm, localPortUser, parsePort, quickLineLocal, uniqueName } from "./form";
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
    expect(forwardFromForm(m, null).problems).toEqual([{ field: "local_port", message: expect.any(String), code: "invalid" }]);
  });

  it("reports a local port out of range and never builds one the shell cannot read", () => {
    for (const lp of ["70000", "65536", "-1", "99999999999999999999"]) {
      const m = { ...emptyForm(), name: "x", resource: "x", port: "80", localPort: lp };
      const { problems } = forwardFromForm(m, null);
      expect(problems, lp).toEqual([{ field: "local_port", message: `${lp} is not a port: use a number from 1 to 65535, or leave it empty for any free port.`, code: "invalid" }]);
    }
    const ok = { ...emptyForm(), name: "x", resource: "x", port: "80", localPort: "65535" };
    expect(forwardFromForm(ok, null).problems).toEqual([]);
  });

  it("reports every field the shell could not read, each under its own field", () => {
    const m = { ...emptyForm(), name: "x", resource: "Echo", port: "70000", localPort: "70000", bind: "localhost", healthKind: "tcp" as const, interval: "often" };
    const { problems } = forwardFromForm(m, null);
    expect(problems.map((p) => p.field)).toEqual(["local_port", "target", "port", "bind", "health.interval"]);
    // An empty new form: what to forward to and the port are missing, nothing is sent yet.
    expect(forwardFromForm(emptyForm(), null).problems.map((p) => p.field)).toEqual(["target", "port"]);
  });

  it("guards fields kept from the config too", () => {
    const original = { name: "w", target: "service/w", port: 80, local_port: 1, health: { kind: "tcp", interval: "5s", fast_interval: "1s", timeout: "2s", rise: 1.5, fall: 3, http: { path: "/", expect_status: "200-399" } } } as Forward;
    expect(forwardFromForm(formFromForward(original), original).problems.map((p) => p.field)).toEqual(["health.rise"]);
  });

  it("suggests a name no forward has", () => {
    expect(uniqueName("echo", ["web"])).toBe("echo");
    expect(uniqueName("echo", ["echo", "echo-2", "web"])).toBe("echo-3");
    expect(uniqueName("", ["echo"])).toBe("");
  });

  it("reads the local port of a quick-add line while it is typed", () => {
    expect(quickLineLocal("kubectl port-forward svc/echo 18080:80 -n demo")).toEqual({ port: 18080, bind: "127.0.0.1" });
    expect(quickLineLocal("svc/echo 8080 --address=0.0.0.0")).toEqual({ port: 8080, bind: "0.0.0.0" });
    expect(quickLineLocal("-n demo --address localhost,::1 svc/echo 9000:80")).toEqual({ port: 9000, bind: "127.0.0.1" });
    expect(quickLineLocal("svc/echo :80")).toBeNull();
    expect(quickLineLocal("svc/echo")).toBeNull();
    expect(quickLineLocal("svc/echo 1808")).toEqual({ port: 1808, bind: "127.0.0.1" });
  });

  it("finds the forward that listens on a local port already", () => {
    const forwards: Forward[] = [
      { name: "echo", target: "service/echo", port: 80, local_port: 18080 },
      { name: "api", target: "service/api", port: 80, local_port: 8080, bind: "0.0.0.0" },
    ];
    expect(localPortUser(forwards, 18080, "127.0.0.1")?.name).toBe("echo");
    expect(localPortUser(forwards, 18080, "0.0.0.0")?.name).toBe("echo");
    expect(localPortUser(forwards, 18080, "127.0.0.2")).toBeUndefined();
    expect(localPortUser(forwards, 8080, "127.0.0.1")?.name).toBe("api");
    expect(localPortUser(forwards, 8080, "::1")).toBeUndefined();
    expect(localPortUser(forwards, 18080, "127.0.0.1", "echo")).toBeUndefined();
    expect(localPortUser(forwards, 0, "127.0.0.1")).toBeUndefined();
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

  it("keeps an imported pods' port only while target and port stay as imported", () => {
    const original: Forward = { name: "echo", namespace: "demo", target: "service/echo", port: 9000, pod_port: true, local_port: 18080 };
    const m = formFromForward(original);
    m.localPort = "18090";
    expect(forwardFromForm(m, original).forward.pod_port).toBe(true);
    m.port = "80";
    expect(forwardFromForm(m, original).forward.pod_port).toBeUndefined();
    const other = formFromForward(original);
    other.resource = "web";
    expect(forwardFromForm(other, original).forward.pod_port).toBeUndefined();
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

  it("reads the inspector's switch, body KiB and headers to redact", () => {
    const base = { ...emptyForm(), name: "web", resource: "web", port: "80" };
    expect(forwardFromForm(base, null).forward.inspect).toBeUndefined();
    expect(forwardFromForm({ ...base, inspect: true }, null).forward.inspect).toBe("http");
    expect(forwardFromForm({ ...base, inspect: true, bodyKib: "16", redact: "x-api-key, X-Session" }, null).forward.inspect).toEqual({ body_kib: 16, redact: ["x-api-key", "X-Session"] });
    expect(forwardFromForm({ ...base, inspect: true, bodyKib: "lots" }, null).problems).toEqual([{ field: "inspect.body_kib", message: expect.any(String), code: "invalid" }]);
    // Off drops what the forward had.
    const had: Forward = { name: "web", target: "service/web", port: 80, local_port: 0, inspect: { body_kib: 4 } };
    const m = formFromForward(had);
    expect([m.inspect, m.bodyKib, m.redact]).toEqual([true, "4", ""]);
    expect(forwardFromForm({ ...m, inspect: false }, had).forward.inspect).toBeUndefined();
    expect(formFieldOf("forwards[0].inspect.redact[2]")).toBe("inspect.redact");
    expect(formFieldOf("inspect.body_kib")).toBe("inspect.body_kib");
  });
});
