import { describe, expect, it } from "vitest";
import type { Forward } from "./types";
import { isDuration, isIpAddr, readableStandIn, wireProblems } from "./wire";

const base: Forward = { name: "echo", target: "service/echo", port: 80, local_port: 18080 };

/** The fields wireProblems finds in `base` changed by `patch`. */
function check(patch: Record<string, unknown>, fields: string[]) {
  const f = { ...base, ...patch } as Forward;
  expect(wireProblems(f).map((p) => p.field), JSON.stringify(patch)).toEqual(fields);
}

describe("what the shell can read", () => {
  it("accepts a forward the shell's types hold", () => {
    check({}, []);
    check({ local_port: 0, port: "http", bind: "0.0.0.0", pick: "round-robin", pod_port: true, enabled: false }, []);
    check({ local_port: 65535, port: 65535, target: "deploy/web-1.a", bind: "::1" }, []);
  });

  it("finds each value serde would refuse, under its field", () => {
    check({ local_port: 70000 }, ["local_port"]);
    check({ local_port: -1 }, ["local_port"]);
    check({ local_port: 80.5 }, ["local_port"]);
    check({ local_port: "80" }, ["local_port"]);
    check({ port: 0 }, ["port"]);
    check({ port: 70000 }, ["port"]);
    check({ port: "" }, ["port"]);
    check({ port: "HTTP" }, ["port"]);
    check({ port: "a-very-long-port-name" }, ["port"]);
    check({ target: "" }, ["target"]);
    check({ target: "echo" }, ["target"]);
    check({ target: "service/Echo" }, ["target"]);
    check({ target: "thing/echo" }, ["target"]);
    check({ bind: "localhost" }, ["bind"]);
    check({ bind: "127.0.0.256" }, ["bind"]);
    check({ pick: "first" }, ["pick"]);
    check({ colour: "red" }, ["colour"]);
  });

  it("checks the health fields the form keeps from the config", () => {
    const health = { kind: "tcp", interval: "5s", fast_interval: "1s", timeout: "2s", rise: 2, fall: 3, http: { path: "/", expect_status: "200-399" } };
    check({ health }, []);
    check({ health: { ...health, rise: 2.5, fall: -1 } }, ["health.rise", "health.fall"]);
    check({ health: { ...health, rise: 2 ** 32 } }, ["health.rise"]);
    check({ health: { ...health, interval: "often", timeout: "" } }, ["health.interval", "health.timeout"]);
    check({ health: { ...health, max_idle: null, down_interval: "soon" } }, ["health.down_interval"]);
    check({ health: { ...health, kind: "ping" } }, ["health.kind"]);
    check({ health: { ...health, http: { path: "/", expect_status: "600" } } }, ["health.http.expect_status"]);
  });

  it("says what is wrong in plain words", () => {
    expect(wireProblems({ ...base, local_port: 70000 })[0].message).toBe("70000 is not a port: use a number from 1 to 65535, or 0 for any free port.");
    expect(wireProblems({ ...base, bind: "localhost" })[0].message).toBe('"localhost" is not an IP address: use one like 127.0.0.1, 0.0.0.0 or ::1.');
    for (const p of wireProblems({ ...base, local_port: 70000, port: "X", target: "x/y", bind: "a" } as Forward)) {
      expect(p.message).not.toMatch(/invalid args|u16|serde/);
      expect(p.message).toMatch(/\.$/);
    }
  });

  it("reads durations as humantime does", () => {
    for (const d of ["5s", "500ms", "1m", "1h 30m", "1h30m", "1.5s", "2 s", "10 minutes", "1day"]) expect(isDuration(d), d).toBe(true);
    for (const d of ["", "5", "often", "5 s x", "1.s", "-1s", "5ss", "1.5ns", "9999999999999999y"]) expect(isDuration(d), d).toBe(false);
  });

  it("reads IP addresses as Rust does", () => {
    for (const a of ["127.0.0.1", "0.0.0.0", "::", "::1", "fe80::1", "2001:db8::8:800:200c:417a", "::ffff:192.0.2.1", "1:2:3:4:5:6:7:8"]) expect(isIpAddr(a), a).toBe(true);
    for (const a of ["localhost", "[::1]", "01.2.3.4", "1.2.3", "1:2:3:4:5:6:7:8:9", "1::2::3", "fe80::1%eth0", ""]) expect(isIpAddr(a), a).toBe(false);
  });

  it("puts stand-ins where the shell could not read, and says which answers to drop", () => {
    const f = { ...base, local_port: 70000, bind: "here", health: { kind: "tcp", interval: "often", fast_interval: "1s", timeout: "2s", rise: 2, fall: 3, http: { path: "/", expect_status: "200-399" } } } as Forward;
    const { forward, skip } = readableStandIn(f, wireProblems(f));
    expect(wireProblems(forward)).toEqual([]);
    expect(forward).toMatchObject({ name: "echo", target: "service/echo", port: 80, local_port: 0 });
    expect(forward.bind).toBeUndefined();
    expect(forward.health?.interval).toBe("5s");
    expect([...skip].sort()).toEqual(["bind", "health.interval", "local_port"]);
    // The forward itself is left as it was.
    expect(f.local_port).toBe(70000);
  });
});
