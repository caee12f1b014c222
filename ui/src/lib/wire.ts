// What the shell can read. A `Forward` crosses the IPC into the config types of
// crates/ferry-core/src/config (model.rs, target.rs, health.rs), which cannot hold a local
// port of 70000, a bind that is no IP address or a duration like "often". The shell reads
// the forward itself and names the field it cannot read; the UI checks the same here, so
// each such problem shows under its field while the user types, and a forward that fails
// is never sent (unit tested in wire.test.ts).

import type { FieldProblem, Forward } from "./types";

const FORWARD_KEYS = new Set(["name", "context", "namespace", "target", "port", "pod_port", "local_port", "bind", "pick", "alias", "health", "enabled", "inspect"]);
const HEALTH_KEYS = new Set(["kind", "interval", "fast_interval", "down_interval", "idle_interval", "timeout", "rise", "fall", "http", "max_idle", "max_age"]);
const HTTP_KEYS = new Set(["path", "expect_status", "body_regex", "host"]);
const TARGET_KINDS = new Set(["pod", "pods", "po", "service", "services", "svc", "deployment", "deployments", "deploy", "statefulset", "statefulsets", "sts"]);
const PICKS = new Set(["sticky", "round-robin", "random"]);
const HEALTH_KINDS = new Set(["tunnel", "tcp", "http", "none"]);
/** Durations the health spec must have, with their defaults (health.rs). */
const REQUIRED_DURATIONS = { interval: "5s", fast_interval: "1s", timeout: "2s" } as const;
const OPTIONAL_DURATIONS = ["down_interval", "idle_interval", "max_idle", "max_age"] as const;
const U32_MAX = 4_294_967_295;

/** A Kubernetes port name: 1 to 15 lower-case letters, digits and '-', with a letter, not
 * starting or ending with '-' (target.rs `is_port_name`). */
export function isPortName(t: string): boolean {
  return /^[a-z0-9-]{1,15}$/.test(t) && /[a-z]/.test(t) && !t.startsWith("-") && !t.endsWith("-");
}

/** A port number: an integer from 1 to 65535. */
export function isPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;
}

// Units humantime reads (humantime 2.x `Unit::from_str`), with their length in seconds.
const UNITS: [RegExp, number][] = [
  [/^(nanos|nsec|ns)$/, 1e-9],
  [/^(usec|us|µs)$/, 1e-6],
  [/^(millis|msec|ms)$/, 1e-3],
  [/^(seconds?|secs?|s)$/, 1],
  [/^(minutes?|mins?|m)$/, 60],
  [/^(hours?|hrs?|hr|h)$/, 3600],
  [/^(days?|d)$/, 86_400],
  [/^(weeks?|wks?|w)$/, 604_800],
  [/^(months?|M)$/, 2_630_016],
  [/^(years?|yrs?|y)$/, 31_557_600],
];
/** One span: a number, an optional fraction, blanks, then a unit word. */
const SPAN = /(\d+)(?:\.(\d+))?\s*([A-Za-zµ]+)/y;

/** Whether humantime reads `text` as a duration: spans like `5s`, `500ms`, `1h 30m`. This
 * accepts a little less than humantime (no blanks inside a number), never more. */
export function isDuration(text: unknown): text is string {
  if (typeof text !== "string") return false;
  const t = text.trim();
  if (t === "") return false;
  let at = 0;
  let total = 0;
  while (at < t.length) {
    while (/\s/.test(t[at])) at++;
    SPAN.lastIndex = at;
    const m = SPAN.exec(t);
    const unit = m && UNITS.find(([re]) => re.test(m[3]));
    if (!m || !unit || m[1].length > 15) return false;
    if (m[2] !== undefined && unit[1] < 1e-6) return false; // fractions of a nanosecond overflow
    total += Number(`${m[1]}.${m[2] ?? "0"}`) * unit[1];
    at = SPAN.lastIndex;
  }
  // Far below u64 seconds, where humantime reports an overflow.
  return total < 1e18;
}

function isIpv4(t: string): boolean {
  const parts = t.split(".");
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

function isIpv6(t: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(t)) return false;
  let groups = 8;
  let s = t;
  // An IPv4 address may end the address, taking two groups.
  const last = s.lastIndexOf(":");
  if (s.slice(last + 1).includes(".")) {
    if (!isIpv4(s.slice(last + 1))) return false;
    s = `${s.slice(0, last + 1)}0`;
    groups = 7;
  }
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const count = (h: string) => (h === "" ? [] : h.split(":"));
  const hex = (g: string) => /^[0-9A-Fa-f]{1,4}$/.test(g);
  if (halves.length === 1) {
    const g = count(s);
    return g.length === groups && g.every(hex);
  }
  const [a, b] = halves.map(count);
  return a.every(hex) && b.every(hex) && a.length + b.length < groups;
}

/** Whether Rust's `IpAddr::from_str` reads `t`: `127.0.0.1`, `0.0.0.0`, `::1`, `::`. */
export function isIpAddr(t: unknown): t is string {
  return typeof t === "string" && (isIpv4(t) || isIpv6(t));
}

/** A status range such as `200-399` or `204` (health.rs `StatusRange`). */
function isStatusRange(v: unknown): boolean {
  if (typeof v !== "string" && typeof v !== "number") return false;
  const m = /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(String(v));
  if (!m) return false;
  const min = Number(m[1]);
  const max = Number(m[2] ?? m[1]);
  return min >= 100 && max <= 599 && min <= max;
}

const isU32 = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= U32_MAX;
const optString = (v: unknown) => v === undefined || v === null || typeof v === "string";
const optBool = (v: unknown) => v === undefined || typeof v === "boolean";
const shown = (v: unknown) => (typeof v === "string" ? `"${v}"` : JSON.stringify(v));

/** Why `target` is no target, or null: `KIND/NAME` with a known kind and an object name. */
export function targetProblem(target: unknown): string | null {
  if (typeof target !== "string" || target.trim() === "") return "Choose what to forward to.";
  const i = target.indexOf("/");
  if (i < 0) return `${shown(target)} is not a target: write it as KIND/NAME, like service/echo.`;
  const kind = target.slice(0, i);
  const name = target.slice(i + 1);
  if (!TARGET_KINDS.has(kind.toLowerCase())) return `"${kind}" is not a kind: use service, deployment, statefulset or pod.`;
  if (name === "") return "Enter the name of the object to forward to.";
  const valid = name.length <= 253 && /^[a-z0-9.-]+$/.test(name) && !/^[-.]|[-.]$/.test(name);
  return valid ? null : `"${name}" is not a valid name: use lower-case letters, digits, '-' and '.'.`;
}

/** Why `port` is no remote port, or null: a number from 1 to 65535 or a port name. */
export function remotePortProblem(port: unknown): string | null {
  if (port === undefined || port === null || port === "") return "Enter the remote port: a number, or a port name like http.";
  if (typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port))) {
    const n = Number(port);
    return isPort(n) ? null : `${port} is not a port: use a number from 1 to 65535.`;
  }
  if (typeof port !== "string") return `${shown(port)} is not a port.`;
  return isPortName(port) ? null : `"${port}" is not a port name: use up to 15 lower-case letters, digits and '-', like http.`;
}

/** Why `local_port` is no local port, or null: an integer from 0 (any free port) to 65535. */
export function localPortProblem(port: unknown): string | null {
  if (typeof port === "number" && Number.isInteger(port) && port >= 0 && port <= 65535) return null;
  return `${shown(port)} is not a port: use a number from 1 to 65535, or 0 for any free port.`;
}

/**
 * Everything in `f` the shell could not deserialize, each with the config path of its field
 * and a sentence for the user. Empty: the shell can read `f` (it may still find it invalid,
 * as a name that is taken, and says so with the field).
 */
export function wireProblems(f: Forward): FieldProblem[] {
  const out: FieldProblem[] = [];
  const add = (field: string, message: string | null) => {
    if (message) out.push({ field, message, code: "invalid" });
  };
  const o = f as unknown as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FORWARD_KEYS.has(k)) add(k, `"${k}" is not a setting of a forward.`);
  if (typeof f.name !== "string") add("name", "A forward needs a name.");
  for (const k of ["context", "namespace", "alias"] as const) if (!optString(f[k])) add(k, `${shown(f[k])} is not text.`);
  add("target", targetProblem(f.target));
  add("port", remotePortProblem(f.port));
  add("local_port", localPortProblem(f.local_port));
  if (!optBool(f.pod_port)) add("pod_port", "pod_port must be true or false.");
  if (!optBool(f.enabled)) add("enabled", "enabled must be true or false.");
  if (f.bind !== undefined && !isIpAddr(f.bind)) add("bind", `${shown(f.bind)} is not an IP address: use one like 127.0.0.1, 0.0.0.0 or ::1.`);
  if (f.pick !== undefined && !PICKS.has(f.pick)) add("pick", `${shown(f.pick)} is not a way to choose a pod: use sticky, round-robin or random.`);

  const ins = f.inspect as unknown;
  if (ins !== undefined && ins !== null && ins !== "http" && ins !== "off") {
    if (typeof ins !== "object" || Array.isArray(ins)) add("inspect", `${shown(ins)} is not an inspection: use "http", or body_kib and redact.`);
    else {
      const io = ins as Record<string, unknown>;
      for (const k of Object.keys(io)) if (k !== "body_kib" && k !== "redact") add(`inspect.${k}`, `"${k}" is not a setting of the inspector.`);
      if (io.body_kib !== undefined && !isU32(io.body_kib)) add("inspect.body_kib", `The KiB of bodies to keep must be a whole number, not ${shown(io.body_kib)}.`);
      if (io.redact !== undefined && !(Array.isArray(io.redact) && io.redact.every((x) => typeof x === "string")))
        add("inspect.redact", "The headers to redact must be a list of header names.");
    }
  }
  const h = f.health as unknown;
  if (h === undefined) return out;
  if (!h || typeof h !== "object" || Array.isArray(h)) {
    add("health", "The health check settings are not readable.");
    return out;
  }
  const hs = h as Record<string, unknown>;
  for (const k of Object.keys(hs)) if (!HEALTH_KEYS.has(k)) add(`health.${k}`, `"${k}" is not a setting of a health check.`);
  if (hs.kind !== undefined && !HEALTH_KINDS.has(hs.kind as string)) add("health.kind", `${shown(hs.kind)} is not a kind of check: use tunnel, tcp, http or none.`);
  for (const k of Object.keys(REQUIRED_DURATIONS)) {
    const v = hs[k];
    if (v !== undefined && !isDuration(v)) add(`health.${k}`, `${shown(v)} is not a duration like 5s or 500ms.`);
  }
  for (const k of OPTIONAL_DURATIONS) {
    const v = hs[k];
    if (v !== undefined && v !== null && !isDuration(v)) add(`health.${k}`, `${shown(v)} is not a duration like 5s or 500ms.`);
  }
  if (hs.rise !== undefined && !isU32(hs.rise)) add("health.rise", `The passes needed to count as up (rise) must be a whole number, not ${shown(hs.rise)}.`);
  if (hs.fall !== undefined && !isU32(hs.fall)) add("health.fall", `The failures needed to count as down (fall) must be a whole number, not ${shown(hs.fall)}.`);
  const http = hs.http as unknown;
  if (http !== undefined) {
    if (!http || typeof http !== "object" || Array.isArray(http)) add("health.http", "The HTTP check settings are not readable.");
    else {
      const hp = http as Record<string, unknown>;
      for (const k of Object.keys(hp)) if (!HTTP_KEYS.has(k)) add(`health.http.${k}`, `"${k}" is not a setting of an HTTP check.`);
      if (hp.path !== undefined && typeof hp.path !== "string") add("health.http.path", "The HTTP path must be text, like /healthz.");
      if (hp.expect_status !== undefined && !isStatusRange(hp.expect_status))
        add("health.http.expect_status", `${shown(hp.expect_status)} is not a status range like 200-399 or 204.`);
      for (const k of ["body_regex", "host"] as const) if (!optString(hp[k])) add(`health.http.${k}`, `${shown(hp[k])} is not text.`);
    }
  }
  return out;
}

/**
 * A copy of `f` the shell can read, for asking it about the fields that are fine: each field
 * with a problem gets a harmless stand-in. `skip` lists the fields whose answers are about a
 * stand-in (a local port clash is about the bind address too), so the caller drops them.
 */
export function readableStandIn(f: Forward, problems: FieldProblem[]): { forward: Forward; skip: Set<string> } {
  const copy = JSON.parse(JSON.stringify(f)) as Record<string, unknown>;
  const skip = new Set<string>();
  const health = () => copy.health as Record<string, unknown>;
  for (const { field } of problems) {
    skip.add(field);
    if (field === "target") copy.target = "service/x";
    else if (field === "port") copy.port = 1;
    else if (field === "local_port") copy.local_port = 0;
    else if (field === "bind") {
      delete copy.bind;
      skip.add("local_port");
    } else if (field === "name") copy.name = "";
    else if (field === "health") delete copy.health;
    else if (field.startsWith("inspect")) copy.inspect = "http";
    else if (field === "health.http") health().http = {};
    else if (field === "health.kind") health().kind = "tunnel";
    else if (field === "health.rise") health().rise = 2;
    else if (field === "health.fall") health().fall = 3;
    else if (field === "health.http.expect_status") (health().http as Record<string, unknown>).expect_status = "200-399";
    else if (field.startsWith("health.http.")) delete (health().http as Record<string, unknown>)[field.slice(12)];
    else if (field.startsWith("health.")) {
      const k = field.slice(7);
      if (k in REQUIRED_DURATIONS) health()[k] = REQUIRED_DURATIONS[k as keyof typeof REQUIRED_DURATIONS];
      else delete health()[k];
    } else delete copy[field];
  }
  return { forward: copy as unknown as Forward, skip };
}
