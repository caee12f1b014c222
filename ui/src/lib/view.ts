// Pure view logic: how forwards are described, filtered and grouped (unit tested in view.test.ts).

import type { Forward, ForwardState, ForwardStatus, GroupBy, Profile, SortKey, StateFilter } from "./types";

export const KIND_SHORT: Record<string, string> = {
  service: "svc",
  services: "svc",
  svc: "svc",
  deployment: "deploy",
  deployments: "deploy",
  deploy: "deploy",
  statefulset: "sts",
  statefulsets: "sts",
  sts: "sts",
  pod: "pod",
  pods: "pod",
  po: "pod",
};

const KIND_LONG: Record<string, string> = {
  svc: "service",
  service: "service",
  services: "service",
  deploy: "deployment",
  deployment: "deployment",
  deployments: "deployment",
  sts: "statefulset",
  statefulset: "statefulset",
  statefulsets: "statefulset",
  po: "pod",
  pod: "pod",
  pods: "pod",
};

/** Splits "service/echo" into kind and name; a bare name is a pod, as kubectl reads it. */
export function splitTarget(target: string): { kind: string; name: string } {
  const i = target.indexOf("/");
  if (i < 0) return { kind: "pod", name: target };
  const k = target.slice(0, i).toLowerCase();
  return { kind: KIND_LONG[k] ?? k, name: target.slice(i + 1) };
}

/** "service/echo:80" → "svc/echo:80" (the status target carries the port). */
export function shortTarget(target: string): string {
  const i = target.indexOf("/");
  if (i < 0) return target;
  const k = target.slice(0, i).toLowerCase();
  return `${KIND_SHORT[k] ?? k}${target.slice(i)}`;
}

/** The target as kubectl would name it with its remote port: "svc/echo:80". */
export function configTarget(f: Pick<Forward, "target" | "port" | "pod_port">): string {
  const pods = f.pod_port && splitTarget(f.target).kind === "service" ? " (pods' port)" : "";
  return `${shortTarget(f.target)}:${f.port}${pods}`;
}

/** "svc/echo:80 in demo @ ferry-fake": the status's resolved values first, then the config's. */
export function targetDisplay(f: Forward | undefined, s: ForwardStatus | undefined): string {
  const target = s?.target ? shortTarget(s.target) : f ? configTarget(f) : "";
  const ns = s?.namespace ?? f?.namespace ?? null;
  const ctx = s?.context ?? f?.context ?? null;
  let out = target;
  if (ns) out += ` in ${ns}`;
  if (ctx) out += ` @ ${ctx}`;
  return out;
}

/** True for addresses only this machine reaches: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(bind: string | null | undefined): boolean {
  if (bind == null || bind === "") return true; // default 127.0.0.1
  const b = bind.trim().toLowerCase().replace(/^\[|\]$/g, "");
  if (b === "localhost" || b === "::1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(b);
}

export function isExposed(f: Forward | undefined, s: ForwardStatus | undefined): boolean {
  if (s) return s.exposed || !isLoopback(f?.bind);
  return !isLoopback(f?.bind);
}

/** The local address: the running listener's, else what the config asks for. */
export function localAddress(f: Forward | undefined, s: ForwardStatus | undefined): string {
  if (s?.local) return s.local;
  if (!f) return "";
  const bind = f.bind || "127.0.0.1";
  const host = bind.includes(":") && !bind.startsWith("[") ? `[${bind}]` : bind;
  return f.local_port === 0 ? `${host}:any` : `${host}:${f.local_port}`;
}

/** The URL to open in a browser, only for http(s). */
export function browserUrl(s: ForwardStatus | undefined): string | null {
  const u = s?.url;
  if (!u) return null;
  return /^https?:\/\//i.test(u) ? u : null;
}

function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?)]$/.test(first) ? first : `${first}.`;
}

/** What is wrong with a forward, as one readable sentence, or null when nothing is. */
export function problemSentence(s: ForwardStatus | undefined): { level: "error" | "warning"; text: string } | null {
  if (!s) return null;
  if (s.error) return { level: "error", text: sentence(s.error) };
  if (s.state === "reconnecting" && s.last_error) return { level: "warning", text: `Reconnecting after: ${sentence(s.last_error)}` };
  if (s.state === "degraded" && s.detail) return { level: "warning", text: `Health check failing: ${sentence(s.detail)}` };
  if (s.alias_warning) return { level: "warning", text: `Local name: ${sentence(s.alias_warning)}` };
  return null;
}

/** The state a forward is in: its status's, else disabled/starting from the config. */
export function stateOf(f: Forward | undefined, s: ForwardStatus | undefined): ForwardState {
  if (s) return s.state;
  return f && f.enabled === false ? "disabled" : "starting";
}

export type Row = { forward: Forward; status: ForwardStatus | undefined };

export function rowsOf(forwards: Forward[], statuses: ForwardStatus[]): Row[] {
  const byName = new Map(statuses.map((s) => [s.forward, s]));
  return forwards.map((f) => ({ forward: f, status: byName.get(f.name) }));
}

export type Filter = { text: string; state: StateFilter };

/** Text matches name, target, namespace and context (case-insensitive, every word must match). */
export function matchesFilter(r: Row, filter: Filter): boolean {
  const st = stateOf(r.forward, r.status);
  if (filter.state === "problems") {
    if (!(st === "error" || st === "degraded" || st === "reconnecting")) return false;
  } else if (filter.state !== "all" && st !== filter.state) return false;
  const words = filter.text.trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const f = r.forward;
  const s = r.status;
  const hay = [
    f.name,
    f.target,
    configTarget(f),
    s?.target ?? "",
    s ? shortTarget(s.target) : "",
    f.namespace ?? "",
    s?.namespace ?? "",
    f.context ?? "",
    s?.context ?? "",
    f.alias ?? "",
  ]
    .join("\n")
    .toLowerCase();
  return words.every((w) => hay.includes(w));
}

export type Group = {
  key: string;
  title: string;
  /** The profile this group shows, for profile headers with a switch. */
  profile: Profile | null;
  rows: Row[];
};

export const UNGROUPED = "Ungrouped";

/**
 * Groups rows by profile (a forward in no profile goes under "Ungrouped", one in two
 * profiles shows under both; profiles keep their config order and show even when empty
 * unless a filter is on) or by context and namespace (sorted).
 */
export function groupRows(
  rows: Row[],
  profiles: Profile[],
  by: GroupBy,
  opts: { filtering?: boolean; currentContext?: string | null } = {},
): Group[] {
  if (by === "profile") {
    const byName = new Map(rows.map((r) => [r.forward.name, r]));
    const inProfile = new Set<string>();
    const groups: Group[] = [];
    for (const p of profiles) {
      const prow: Row[] = [];
      const seen = new Set<string>();
      for (const n of p.forwards) {
        inProfile.add(n);
        const r = byName.get(n);
        if (r && !seen.has(n)) {
          seen.add(n);
          prow.push(r);
        }
      }
      if (prow.length > 0 || !opts.filtering) groups.push({ key: `profile:${p.name}`, title: p.name, profile: p, rows: prow });
    }
    const rest = rows.filter((r) => !inProfile.has(r.forward.name));
    if (rest.length > 0) groups.push({ key: "ungrouped", title: UNGROUPED, profile: null, rows: rest });
    return groups;
  }
  const map = new Map<string, Group>();
  for (const r of rows) {
    const ctx = r.status?.context ?? r.forward.context ?? opts.currentContext ?? "current context";
    const ns = r.status?.namespace ?? r.forward.namespace ?? "default";
    const key = `ctx:${ctx}\u0000${ns}`;
    let g = map.get(key);
    if (!g) {
      g = { key, title: `${ctx} / ${ns}`, profile: null, rows: [] };
      map.set(key, g);
    }
    g.rows.push(r);
  }
  return [...map.values()].sort((a, b) => a.title.localeCompare(b.title));
}

/** Distinct forward names of the visible rows, in order (for "Start all"/"Stop all"). */
export function visibleNames(groups: Group[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const g of groups)
    for (const r of g.rows)
      if (!seen.has(r.forward.name)) {
        seen.add(r.forward.name);
        out.push(r.forward.name);
      }
  return out;
}

/** Whether every forward of a profile is switched on (an empty profile is not active). */
export function profileActive(p: Profile, forwards: Forward[]): boolean {
  return profileSwitch(p, forwards).position === "on";
}

/** A profile switch's position: "on" when every forward of the profile is switched on,
 * "off" when none is (or it has none), "mixed" when some are; with the counts to say so. */
export function profileSwitch(p: Profile, forwards: Forward[]): { position: "on" | "off" | "mixed"; on: number; total: number } {
  const by = new Map(forwards.map((f) => [f.name, f]));
  const members = [...new Set(p.forwards)].map((n) => by.get(n)).filter((f): f is Forward => !!f);
  const on = members.filter((f) => f.enabled !== false).length;
  const position = on === 0 ? "off" : on === members.length ? "on" : "mixed";
  return { position, on, total: members.length };
}

export type { SortKey };
export const SORT_KEYS: { key: SortKey; label: string }[] = [
  { key: "saved", label: "Saved order" },
  { key: "name", label: "By name" },
  { key: "state", label: "By state" },
  { key: "port", label: "By local port" },
];

/** Problems first, then forwards on their way, then running ones, then switched-off ones. */
const STATE_RANK: Record<ForwardState, number> = { error: 0, reconnecting: 1, degraded: 2, starting: 3, active: 4, disabled: 5 };

/** The local port a row listens on (the listener's, else the config's); any free port last. */
function localPortOf(r: Row): number {
  const m = r.status?.local ? /:(\d+)$/.exec(r.status.local) : null;
  const port = m ? Number(m[1]) : r.forward.local_port;
  return port > 0 ? port : Number.POSITIVE_INFINITY;
}

const byName = (a: Row, b: Row) => a.forward.name.localeCompare(b.forward.name, undefined, { numeric: true });

/** Rows in the order asked for; ties go by name, and "saved" keeps the config's order. */
export function sortRows(rows: Row[], key: SortKey): Row[] {
  if (key === "saved") return rows;
  const out = [...rows];
  if (key === "name") return out.sort(byName);
  if (key === "state") return out.sort((a, b) => STATE_RANK[stateOf(a.forward, a.status)] - STATE_RANK[stateOf(b.forward, b.status)] || byName(a, b));
  return out.sort((a, b) => {
    const [x, y] = [localPortOf(a), localPortOf(b)];
    return x === y ? byName(a, b) : x < y ? -1 : 1;
  });
}

/** The groups with their rows sorted; the groups keep their own order. Starred forwards
 * come first in each group, in the order asked for among themselves. */
export function sortGroups(groups: Group[], key: SortKey, favourites: ReadonlySet<string> = new Set()): Group[] {
  return groups.map((g) => ({ ...g, rows: favouritesFirst(sortRows(g.rows, key), favourites) }));
}

/** Starred rows first, each part keeping its order. */
export function favouritesFirst(rows: Row[], favourites: ReadonlySet<string>): Row[] {
  if (favourites.size === 0) return rows;
  const starred = rows.filter((r) => favourites.has(r.forward.name));
  if (starred.length === 0) return rows;
  return [...starred, ...rows.filter((r) => !favourites.has(r.forward.name))];
}

/** The rows the favourites-only switch lets through. */
export function onlyFavourites(rows: Row[], on: boolean, favourites: ReadonlySet<string>): Row[] {
  return on ? rows.filter((r) => favourites.has(r.forward.name)) : rows;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The forward as a kubectl line, as the dialog previews it, in the shell's order
 * (`ferry_core::config::import::kubectl_command`, held to it by the contract test):
 * `kubectl port-forward --context x -n demo --address 0.0.0.0 svc/echo 18080:80`.
 * A local port of 0 is written as `:80` (kubectl picks one).
 */
export function kubectlLine(f: Partial<Forward>): string {
  const parts = ["kubectl", "port-forward"];
  if (f.context) parts.push("--context", shellQuote(f.context));
  if (f.namespace) parts.push("-n", shellQuote(f.namespace));
  if (f.bind && f.bind !== "127.0.0.1") parts.push("--address", shellQuote(f.bind));
  parts.push(f.target ? shellQuote(shortTarget(f.target)) : "<target>");
  const remote = f.port === undefined || f.port === "" ? "<port>" : String(f.port);
  const local = f.local_port === undefined || f.local_port === null || Number.isNaN(f.local_port) ? "" : f.local_port === 0 ? "" : String(f.local_port);
  parts.push(local ? `${local}:${remote}` : `:${remote}`);
  return parts.join(" ");
}

/**
 * Lines to look at the pod a forward uses now, with the namespace and context its status
 * names: `kubectl logs echo-7d9f8-abcde -n demo --context ferry-fake` and
 * `kubectl describe pod echo-7d9f8-abcde -n demo --context ferry-fake`. Null without a pod.
 */
export function podCommands(s: ForwardStatus | undefined): { logs: string; describe: string } | null {
  if (!s?.pod) return null;
  const pod = shellQuote(s.pod);
  const scope = [...(s.namespace ? ["-n", shellQuote(s.namespace)] : []), ...(s.context ? ["--context", shellQuote(s.context)] : [])];
  return {
    logs: ["kubectl", "logs", pod, ...scope].join(" "),
    describe: ["kubectl", "describe", "pod", pod, ...scope].join(" "),
  };
}

/** A forward name from a target: "service/echo" → "echo". */
export function nameFromTarget(target: string): string {
  return splitTarget(target).name;
}
