import { describe, expect, it } from "vitest";
import type { Forward, ForwardStatus, Profile } from "./types";
import {
  browserUrl,
  favouritesFirst,
  groupRows,
  isExposed,
  isLoopback,
  kubectlLine,
  localAddress,
  matchesFilter,
  onlyFavourites,
  podCommands,
  problemSentence,
  profileActive,
  profileSwitch,
  rowsOf,
  shortTarget,
  sortGroups,
  sortRows,
  splitTarget,
  stateOf,
  targetDisplay,
  visibleNames,
} from "./view";

const fwd = (name: string, extra: Partial<Forward> = {}): Forward => ({
  name,
  target: "service/" + name,
  port: 80,
  local_port: 18080,
  ...extra,
});

const status = (name: string, extra: Partial<ForwardStatus> = {}): ForwardStatus => ({
  forward: name,
  state: "active",
  target: `service/${name}:80`,
  context: "ferry-fake",
  namespace: "demo",
  pod: `${name}-abc`,
  local: "127.0.0.1:18080",
  error: null,
  last_error: null,
  connections: 0,
  total_connections: 0,
  bytes_out: 0,
  bytes_in: 0,
  since_ms: 0,
  health: "up",
  latency_ms: 12,
  detail: null,
  last_probe_ms: null,
  history: [],
  credential_plugin: null,
  url: "http://127.0.0.1:18080",
  alias: null,
  alias_warning: null,
  exposed: false,
  port_in_use: false,
  ...extra,
});

describe("targets", () => {
  it("shortens kinds like kubectl", () => {
    expect(shortTarget("service/echo:80")).toBe("svc/echo:80");
    expect(shortTarget("deployment/web:http")).toBe("deploy/web:http");
    expect(shortTarget("statefulset/db:5432")).toBe("sts/db:5432");
    expect(shortTarget("pod/x:1")).toBe("pod/x:1");
  });
  it("splits targets; a bare name is a pod", () => {
    expect(splitTarget("svc/echo")).toEqual({ kind: "service", name: "echo" });
    expect(splitTarget("deployment/web")).toEqual({ kind: "deployment", name: "web" });
    expect(splitTarget("echo-abc")).toEqual({ kind: "pod", name: "echo-abc" });
  });
  it("shows the status's resolved target, namespace and context", () => {
    expect(targetDisplay(fwd("echo"), status("echo"))).toBe("svc/echo:80 in demo @ ferry-fake");
  });
  it("falls back to the config", () => {
    expect(targetDisplay(fwd("echo", { namespace: "demo", context: "x", port: "http" }), undefined)).toBe("svc/echo:http in demo @ x");
    expect(targetDisplay(fwd("echo", { namespace: "demo", context: "x", port: 9000, pod_port: true }), undefined)).toBe("svc/echo:9000 (pods' port) in demo @ x");
    expect(targetDisplay(fwd("echo"), undefined)).toBe("svc/echo:80");
    expect(targetDisplay(fwd("echo", { namespace: "ns" }), status("echo", { namespace: null, context: null }))).toBe("svc/echo:80 in ns");
  });
});

describe("addresses", () => {
  it("knows loopback", () => {
    for (const b of [undefined, "", "127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]) expect(isLoopback(b)).toBe(true);
    for (const b of ["0.0.0.0", "192.168.1.5", "::"]) expect(isLoopback(b)).toBe(false);
  });
  it("flags exposure from the status or the bind", () => {
    expect(isExposed(fwd("a", { bind: "0.0.0.0" }), undefined)).toBe(true);
    expect(isExposed(fwd("a"), status("a", { exposed: true }))).toBe(true);
    expect(isExposed(fwd("a"), status("a"))).toBe(false);
  });
  it("shows the listener's address, else the config's", () => {
    expect(localAddress(fwd("a"), status("a", { local: "127.0.0.1:5555" }))).toBe("127.0.0.1:5555");
    expect(localAddress(fwd("a", { bind: "127.0.0.2", local_port: 5432 }), undefined)).toBe("127.0.0.2:5432");
    expect(localAddress(fwd("a", { local_port: 0 }), undefined)).toBe("127.0.0.1:any");
    expect(localAddress(fwd("a", { bind: "::1" }), undefined)).toBe("[::1]:18080");
  });
  it("opens only http(s) URLs", () => {
    expect(browserUrl(status("a"))).toBe("http://127.0.0.1:18080");
    expect(browserUrl(status("a", { url: "tcp://127.0.0.1:5432" }))).toBeNull();
    expect(browserUrl(undefined)).toBeNull();
  });
});

describe("problems", () => {
  it("writes the error as a sentence", () => {
    expect(problemSentence(status("a", { state: "error", error: "local port 18080 is in use" }))).toEqual({ level: "error", text: "Local port 18080 is in use." });
  });
  it("falls back to the alias warning", () => {
    expect(problemSentence(status("a", { alias_warning: "web.local is answered by another host" }))?.text).toBe("Local name: Web.local is answered by another host.");
  });
  it("says nothing when all is well", () => {
    expect(problemSentence(status("a"))).toBeNull();
  });
  it("derives a state without a status", () => {
    expect(stateOf(fwd("a", { enabled: false }), undefined)).toBe("disabled");
    expect(stateOf(fwd("a"), undefined)).toBe("starting");
  });
});

describe("filter and groups", () => {
  const forwards = [
    fwd("echo", { namespace: "demo", context: "ferry-fake" }),
    fwd("web", { namespace: "demo", context: "ferry-fake" }),
    fwd("api", { namespace: "payments", context: "staging", target: "deployment/api", enabled: false }),
    fwd("lonely"),
  ];
  const statuses = [
    status("echo"),
    status("web", { state: "error", error: "boom" }),
    status("api", { state: "disabled", context: "staging", namespace: "payments", target: "deployment/api:80" }),
    status("lonely", { context: "ferry-fake", namespace: "default" }),
  ];
  const rows = rowsOf(forwards, statuses);
  const profiles: Profile[] = [
    { name: "demo", forwards: ["echo", "web"] },
    { name: "both", forwards: ["web", "api", "ghost"] },
    { name: "empty", forwards: [] },
  ];

  it("matches words over name, target, namespace and context", () => {
    const names = (text: string, state: "all" | "problems" | "disabled" = "all") =>
      rows.filter((r) => matchesFilter(r, { text, state })).map((r) => r.forward.name);
    expect(names("")).toEqual(["echo", "web", "api", "lonely"]);
    expect(names("ECHO")).toEqual(["echo"]);
    expect(names("staging")).toEqual(["api"]);
    expect(names("deploy/api")).toEqual(["api"]);
    expect(names("demo web")).toEqual(["web"]);
    expect(names("", "problems")).toEqual(["web"]);
    expect(names("", "disabled")).toEqual(["api"]);
    expect(names("nothing-like-this")).toEqual([]);
  });

  it("groups by profile, with Ungrouped and forwards under every profile they are in", () => {
    const g = groupRows(rows, profiles, "profile");
    expect(g.map((x) => [x.title, x.rows.map((r) => r.forward.name)])).toEqual([
      ["demo", ["echo", "web"]],
      ["both", ["web", "api"]],
      ["empty", []],
      ["Ungrouped", ["lonely"]],
    ]);
    expect(g[0].profile?.name).toBe("demo");
    expect(g[3].profile).toBeNull();
  });

  it("hides empty profiles while filtering", () => {
    const g = groupRows(rows.slice(0, 1), profiles, "profile", { filtering: true });
    expect(g.map((x) => x.title)).toEqual(["demo"]);
  });

  it("groups by context and namespace", () => {
    const g = groupRows(rows, profiles, "context");
    expect(g.map((x) => [x.title, x.rows.map((r) => r.forward.name)])).toEqual([
      ["ferry-fake / default", ["lonely"]],
      ["ferry-fake / demo", ["echo", "web"]],
      ["staging / payments", ["api"]],
    ]);
  });

  it("lists each visible forward once for Start all / Stop all", () => {
    expect(visibleNames(groupRows(rows, profiles, "profile"))).toEqual(["echo", "web", "api", "lonely"]);
  });

  it("calls a profile active when all of its forwards are on", () => {
    expect(profileActive(profiles[0], forwards)).toBe(true);
    expect(profileActive(profiles[1], forwards)).toBe(false);
    expect(profileActive(profiles[2], forwards)).toBe(false);
  });

  it("puts a profile's switch in between when only some of its forwards are on", () => {
    expect(profileSwitch(profiles[0], forwards)).toEqual({ position: "on", on: 2, total: 2 });
    // web on, api off; "ghost" is no forward and does not count.
    expect(profileSwitch(profiles[1], forwards)).toEqual({ position: "mixed", on: 1, total: 2 });
    expect(profileSwitch(profiles[2], forwards)).toEqual({ position: "off", on: 0, total: 0 });
    expect(profileSwitch({ name: "off", forwards: ["api"] }, forwards)).toEqual({ position: "off", on: 0, total: 1 });
    expect(profileSwitch({ name: "twice", forwards: ["echo", "echo"] }, forwards).position).toBe("on");
  });
});

describe("sorting", () => {
  const forwards = [
    fwd("web", { local_port: 18081 }),
    fwd("db-10", { local_port: 15432 }),
    fwd("any", { local_port: 0 }),
    fwd("db-9", { local_port: 20000 }),
    fwd("api", { local_port: 8080, enabled: false }),
  ];
  const statuses = [
    status("web", { state: "active", local: "127.0.0.1:18081" }),
    status("db-10", { state: "degraded", local: "127.0.0.1:15432" }),
    // Listening on a port the system chose: the listener's port counts.
    status("any", { state: "error", local: "127.0.0.1:30001" }),
    status("db-9", { state: "reconnecting", local: "127.0.0.1:20000" }),
  ];
  const rows = rowsOf(forwards, statuses);
  const names = (key: Parameters<typeof sortRows>[1]) => sortRows(rows, key).map((r) => r.forward.name);

  it("keeps the saved order", () => {
    expect(names("saved")).toEqual(["web", "db-10", "any", "db-9", "api"]);
  });
  it("sorts by name, numbers as numbers", () => {
    expect(names("name")).toEqual(["any", "api", "db-9", "db-10", "web"]);
  });
  it("sorts by state, problems first and switched-off last, then by name", () => {
    // api has no status: its config says disabled.
    expect(names("state")).toEqual(["any", "db-9", "db-10", "web", "api"]);
  });
  it("sorts by local port, any free port last", () => {
    expect(names("port")).toEqual(["api", "db-10", "web", "db-9", "any"]);
    expect(sortRows(rowsOf([fwd("b", { local_port: 0 }), fwd("a", { local_port: 0 })], []), "port").map((r) => r.forward.name)).toEqual(["a", "b"]);
  });
  it("sorts within each group and leaves the groups in place", () => {
    const g = sortGroups(groupRows(rows, [{ name: "p", forwards: ["web", "api"] }], "profile"), "name");
    expect(g.map((x) => [x.title, x.rows.map((r) => r.forward.name)])).toEqual([
      ["p", ["api", "web"]],
      ["Ungrouped", ["any", "db-9", "db-10"]],
    ]);
    expect(rows.map((r) => r.forward.name)).toEqual(["web", "db-10", "any", "db-9", "api"]);
  });
  it("puts starred forwards first in every order and every group, sorted among themselves", () => {
    const stars = new Set(["db-9", "api", "any"]);
    const order = (key: Parameters<typeof sortRows>[1]) => favouritesFirst(sortRows(rows, key), stars).map((r) => r.forward.name);
    expect(order("saved")).toEqual(["any", "db-9", "api", "web", "db-10"]);
    expect(order("name")).toEqual(["any", "api", "db-9", "db-10", "web"]);
    expect(order("port")).toEqual(["api", "db-9", "any", "db-10", "web"]);
    const g = sortGroups(groupRows(rows, [{ name: "p", forwards: ["web", "api"] }], "profile"), "saved", stars);
    expect(g.map((x) => [x.title, x.rows.map((r) => r.forward.name)])).toEqual([
      ["p", ["api", "web"]],
      ["Ungrouped", ["any", "db-9", "db-10"]],
    ]);
    // No stars: the order asked for, untouched.
    expect(favouritesFirst(rows, new Set())).toBe(rows);
  });
  it("shows only starred forwards when asked", () => {
    const stars = new Set(["web", "gone"]);
    expect(onlyFavourites(rows, true, stars).map((r) => r.forward.name)).toEqual(["web"]);
    expect(onlyFavourites(rows, false, stars)).toBe(rows);
  });
});

describe("pod commands", () => {
  it("names the pod in use with the status's namespace and context", () => {
    expect(podCommands(status("echo", { pod: "echo-7d9f8-abcde" }))).toEqual({
      logs: "kubectl logs echo-7d9f8-abcde -n demo --context ferry-fake",
      describe: "kubectl describe pod echo-7d9f8-abcde -n demo --context ferry-fake",
    });
    expect(podCommands(status("echo", { pod: "db-0", namespace: null, context: "my ctx" }))).toEqual({
      logs: "kubectl logs db-0 --context 'my ctx'",
      describe: "kubectl describe pod db-0 --context 'my ctx'",
    });
  });
  it("offers nothing without a pod", () => {
    expect(podCommands(status("echo", { pod: null }))).toBeNull();
    expect(podCommands(undefined)).toBeNull();
  });
});

describe("kubectl line", () => {
  it("writes what kubectl would be given", () => {
    expect(kubectlLine(fwd("echo", { namespace: "demo", context: "x" }))).toBe("kubectl port-forward --context x -n demo svc/echo 18080:80");
    expect(kubectlLine({ target: "statefulset/db", port: "pg", local_port: 0 })).toBe("kubectl port-forward sts/db :pg");
    expect(kubectlLine({ target: "pod/a", port: 1, local_port: 2, bind: "0.0.0.0" })).toBe("kubectl port-forward --address 0.0.0.0 pod/a 2:1");
    expect(kubectlLine({})).toBe("kubectl port-forward <target> :<port>");
    expect(kubectlLine({ target: "service/a", port: 1, local_port: 2, context: "my ctx" })).toBe("kubectl port-forward --context 'my ctx' svc/a 2:1");
  });
});
