// The add/edit form as strings, and the Forward it stands for (unit tested in form.test.ts).

import type { FieldProblem, Forward, HealthKind, HealthSpec, Kind, Pick } from "./types";
import { KINDS } from "./types";
import { splitTarget } from "./view";

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
  };
}

/** Remote port: digits are a number, anything else a port name. */
export function parsePort(s: string): number | string {
  const t = s.trim();
  return /^\d+$/.test(t) ? Number(t) : t;
}

/**
 * The Forward the form describes, built on the original (so fields the form does not show,
 * such as health.rise, are kept), plus problems found before asking the shell (a local port
 * that is not a number). Empty optional fields are left out of the config.
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

  const lp = m.localPort.trim();
  if (lp === "") f.local_port = 0;
  else if (/^-?\d+$/.test(lp)) f.local_port = Number(lp);
  else {
    f.local_port = 0;
    problems.push({ field: "local_port", message: "Enter a port number, or leave it empty for any free port." });
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
  return { forward: f, problems };
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
] as const;

export const ADVANCED_FIELDS = new Set(["bind", "pick", "alias", "health.kind", "health.interval", "health.timeout", "health.http.path"]);

/** Maps a problem's field path to the form field that shows it: "forwards[2].port" → "port",
 * "health" → "health.kind", "health.http" → "health.http.path", "kind" → "target". */
export function formFieldOf(path: string | null | undefined): string | null {
  if (!path) return null;
  let p = path.replace(/^forwards\[\d+\]\./, "");
  if (p === "health" || p.startsWith("health.fast_interval") || p.startsWith("health.down_interval")) p = p === "health" ? "health.kind" : p;
  if (p.startsWith("health.http")) p = "health.http.path";
  if (p === "kind" || p === "resource") p = "target";
  return (FORM_FIELDS as readonly string[]).includes(p) ? p : null;
}
