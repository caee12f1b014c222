// The add/edit form as strings, and the Forward it stands for (unit tested in form.test.ts).

import type { FieldProblem, Forward, HealthKind, HealthSpec, Kind, Pick } from "./types";
import { KINDS } from "./types";
import { splitTarget } from "./view";
import { wireProblems } from "./wire";

export type FormModel = {
  name: string;
  context: string;
  namespace: string;
  kind: Kind;
  resource: string;
  port: string;
  localPort: string;
  bind: string;
  pick: Pick;
  alias: string;
  healthKind: HealthKind;
  interval: string;
  timeout: string;
  httpPath: string;
  /** Inspect HTTP (`inspect` in the config). */
  inspect: boolean;
  /** KiB of each body to keep, as typed ("" or "0": none). */
  bodyKib: string;
  /** More headers to redact, separated by commas or blanks. */
  redact: string;
};

export const DEFAULT_HEALTH: HealthSpec = {
  kind: "tunnel",
  interval: "5s",
  fast_interval: "1s",
  timeout: "2s",
  rise: 2,
  fall: 3,
  http: { path: "/healthz", expect_status: "200-399" },
};

export function emptyForm(): FormModel {
  return formFromForward(null);
}

export function formFromForward(f: Forward | null): FormModel {
  const t = f ? splitTarget(f.target) : { kind: "service", name: "" };
  const kind = (KINDS as string[]).includes(t.kind) ? (t.kind as Kind) : "service";
  const h = f?.health ?? DEFAULT_HEALTH;
  return {
    name: f?.name ?? "",
    context: f?.context ?? "",
    namespace: f?.namespace ?? "",
    kind,
    resource: t.name,
    port: f ? String(f.port ?? "") : "",
    localPort: f && f.local_port !== undefined && f.local_port !== null ? String(f.local_port) : "",
    bind: f?.bind ?? "",
    pick: f?.pick ?? "sticky",
    alias: f?.alias ?? "",
    healthKind: h.kind ?? "tunnel",
    interval: h.interval ?? DEFAULT_HEALTH.interval,
    timeout: h.timeout ?? DEFAULT_HEALTH.timeout,
    httpPath: h.http?.path ?? DEFAULT_HEALTH.http.path,
    inspect: f?.inspect !== undefined && f?.inspect !== null,
    bodyKib: typeof f?.inspect === "object" && f.inspect?.body_kib ? String(f.inspect.body_kib) : "",
    redact: typeof f?.inspect === "object" ? (f.inspect?.redact ?? []).join(", ") : "",
  };
}

/** The most of a body an inspector keeps, in KiB (crates/ferry-core/src/config/inspect.rs). */
export const MAX_BODY_KIB = 1024;

/** Header names typed in the redact field: split at commas and blanks. */
export function redactList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((h) => h.trim())
    .filter(Boolean);
}

/** Remote port: digits are a number, anything else a port name. */
export function parsePort(s: string): number | string {
  const t = s.trim();
  return /^\d+$/.test(t) ? Number(t) : t;
}

/**
 * The Forward the form describes, built on the original (so fields the form does not show,
 * such as health.rise, are kept), plus problems found before asking the shell: anything it
 * could not read (a local port of 70000, a bind address that is no IP address, see wire.ts).
 * A forward with problems is never sent. Empty optional fields are left out of the config.
 */
export function forwardFromForm(m: FormModel, original: Forward | null): { forward: Forward; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const f: Forward = original ? structuredCloneSafe(original) : ({ name: "", target: "", port: "", local_port: 0 } as Forward);
  f.name = m.name.trim();

  const setOpt = <K extends "context" | "namespace" | "alias" | "bind">(k: K, v: string) => {
    const t = v.trim();
    if (t) (f as Record<string, unknown>)[k] = t;
    else delete (f as Record<string, unknown>)[k];
  };
  setOpt("context", m.context);
  setOpt("namespace", m.namespace);
  setOpt("alias", m.alias);
  setOpt("bind", m.bind);

  // A resource typed as "svc/echo" carries its own kind.
  const res = m.resource.trim();
  if (res.includes("/")) {
    const t = splitTarget(res);
    f.target = `${t.kind}/${t.name}`;
  } else {
    f.target = res ? `${m.kind}/${res}` : "";
  }

  f.port = parsePort(m.port);
  // An imported service port that is the pods' port (kftray, kportal) keeps that meaning
  // only while target and port stay as imported; a port picked here is the service's.
  if (f.pod_port && (f.target !== original?.target || String(f.port) !== String(original?.port))) delete f.pod_port;

  const lp = m.localPort.trim();
  if (lp === "") f.local_port = 0;
  else if (/^\d+$/.test(lp) && Number(lp) <= 65535) f.local_port = Number(lp);
  else {
    // Kept for the preview; the problem stops it from reaching the shell.
    f.local_port = /^\d+$/.test(lp) ? Number(lp) : 0;
    const message = /^-?\d+$/.test(lp)
      ? `${lp} is not a port: use a number from 1 to 65535, or leave it empty for any free port.`
      : "Enter a port number, or leave it empty for any free port.";
    problems.push({ field: "local_port", message, code: "invalid" });
  }

  if (m.pick === "sticky" && !original?.pick) delete f.pick;
  else f.pick = m.pick;

  const healthDefault =
    m.healthKind === DEFAULT_HEALTH.kind &&
    m.interval.trim() === DEFAULT_HEALTH.interval &&
    m.timeout.trim() === DEFAULT_HEALTH.timeout &&
    m.httpPath.trim() === DEFAULT_HEALTH.http.path;
  if (healthDefault && !original?.health) {
    delete f.health;
  } else {
    const base: HealthSpec = structuredCloneSafe(original?.health ?? DEFAULT_HEALTH);
    base.kind = m.healthKind;
    base.interval = m.interval.trim();
    base.timeout = m.timeout.trim();
    base.http = { ...(base.http ?? DEFAULT_HEALTH.http), path: m.httpPath.trim() };
    f.health = base;
  }
  if (!m.inspect) delete f.inspect;
  else {
    const kib = m.bodyKib.trim();
    const redact = redactList(m.redact);
    let body = 0;
    if (kib !== "" && !/^\d+$/.test(kib)) {
      problems.push({ field: "inspect.body_kib", message: `Enter a whole number of KiB, from 0 (no bodies) to ${MAX_BODY_KIB}.`, code: "invalid" });
    } else body = kib === "" ? 0 : Number(kib);
    // Too large is the shell's to say (inspect.body_kib), as the config's own rule.
    f.inspect = body === 0 && redact.length === 0 ? "http" : { ...(body ? { body_kib: body } : {}), ...(redact.length ? { redact } : {}) };
  }
  // Whatever else the shell could not read (the remote port, the bind address, durations,
  // and fields kept from the original) is found here, before anything is sent.
  for (const p of wireProblems(f)) if (!problems.some((q) => q.field === p.field)) problems.push(p);
  return { forward: f, problems };
}

/** `wanted`, or `wanted-2`, `wanted-3`… whichever no forward has (as the shell's import
 * and quick add name forwards). */
export function uniqueName(wanted: string, taken: Iterable<string>): string {
  const names = new Set(taken);
  if (!wanted) return wanted;
  let name = wanted;
  for (let n = 2; names.has(name); n++) name = `${wanted}-${n}`;
  return name;
}

function structuredCloneSafe<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** Fields of the form and the config path each one edits; problems on other paths are
 * listed under the form. */
export const FORM_FIELDS = [
  "name",
  "context",
  "namespace",
  "target",
  "port",
  "local_port",
  "bind",
  "pick",
  "alias",
  "health.kind",
  "health.interval",
  "health.timeout",
  "health.http.path",
  "inspect.body_kib",
  "inspect.redact",
] as const;

export const ADVANCED_FIELDS = new Set(["bind", "pick", "alias", "health.kind", "health.interval", "health.timeout", "health.http.path", "inspect.body_kib", "inspect.redact"]);

/** Maps a problem's field path to the form field that shows it: "forwards[2].port" → "port",
 * "health" → "health.kind", "health.http" → "health.http.path", "kind" → "target". */
export function formFieldOf(path: string | null | undefined): string | null {
  if (!path) return null;
  let p = path.replace(/^forwards\[\d+\]\./, "");
  if (p === "health" || p.startsWith("health.fast_interval") || p.startsWith("health.down_interval")) p = p === "health" ? "health.kind" : p;
  if (p.startsWith("health.http")) p = "health.http.path";
  if (p === "kind" || p === "resource") p = "target";
  if (p === "inspect") p = "inspect.body_kib";
  if (p.startsWith("inspect.redact")) p = "inspect.redact";
  return (FORM_FIELDS as readonly string[]).includes(p) ? p : null;
}

/** Flags of `kubectl port-forward` that take a value (the shell's quick add reads these). */
const VALUE_FLAGS = new Set(["-n", "--namespace", "--context", "--address", "--pod-running-timeout", "--kubeconfig", "--cluster", "--user"]);

/**
 * The local port and listen address a quick-add line asks for, read while it is typed:
 * `kubectl port-forward svc/echo 18080:80 --address 0.0.0.0` → {port: 18080, bind: "0.0.0.0"}.
 * Null until the line has a local port. Only a hint: the shell's parse_kubectl reads the line.
 */
export function quickLineLocal(line: string): { port: number; bind: string } | null {
  const words = line.trim().split(/\s+/).filter(Boolean);
  if (words[0] === "$") words.shift();
  if (words[0]?.replace(/^.*\//, "").startsWith("kubectl")) words.shift();
  if (words[0] === "port-forward") words.shift();
  let bind = "127.0.0.1";
  const positional: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    const [flag, inline] = w.startsWith("-") && w.includes("=") ? [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)] : [w, undefined];
    if (VALUE_FLAGS.has(flag)) {
      const v = inline ?? words[++i];
      if (flag === "--address" && v) bind = v.split(",")[0].trim();
    } else if (!w.startsWith("-")) positional.push(w);
  }
  const spec = positional[1];
  if (!spec) return null;
  const local = spec.includes(":") ? spec.slice(0, spec.indexOf(":")) : spec;
  if (!/^\d+$/.test(local) || Number(local) < 1 || Number(local) > 65535) return null;
  return { port: Number(local), bind: bind === "localhost" ? "127.0.0.1" : bind };
}

/** Whether two listen addresses overlap: equal, or of one family with one of them the
 * unspecified address, which covers its family (as the shell's validation has it). */
function addressesOverlap(a: string, b: string): boolean {
  const norm = (x: string) => x.replace(/^\[|\]$/g, "").toLowerCase();
  const [x, y] = [norm(a), norm(b)];
  if (x === y) return true;
  const v6 = (t: string) => t.includes(":");
  const any = (t: string) => t === "0.0.0.0" || t === "::";
  return v6(x) === v6(y) && (any(x) || any(y));
}

/** The forward (other than `except`) that already listens on `port` at `bind`, if any. */
export function localPortUser(forwards: Forward[], port: number, bind: string, except: string | null = null): Forward | undefined {
  if (!port) return undefined;
  return forwards.find((f) => f.name !== except && f.local_port === port && addressesOverlap(f.bind || "127.0.0.1", bind || "127.0.0.1"));
}
