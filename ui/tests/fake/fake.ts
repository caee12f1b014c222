// An in-memory stand-in for Ferry's shell that implements docs/app-ipc.md: forwards,
// profiles, settings, a small fake cluster (contexts ferry-fake and staging), validation,
// and ferry://state / ferry://snapshot events. Used by the browser tests and by
// `npm run dev` outside the app.

import type {
  AppError,
  AppState,
  Checked,
  Config,
  DeclaredForward,
  DeclaredNew,
  DeclaredSource,
  DiscoverReport,
  Exchange,
  ExchangeBatch,
  Exchanges,
  ExportFormat,
  HarExport,
  Message,
  ExportResult,
  FieldProblem,
  Forward,
  ForwardStatus,
  ImportResult,
  LogLine,
  Prefs,
  Profile,
  Settings,
  Snapshot,
  TargetInfo,
  UpdateInfo,
} from "../../src/lib/types";
import { kubectlLine } from "../../src/lib/view";

export type Scenario = "no-kubeconfig" | "empty" | "demo" | "banner";
export type Emit = (event: string, payload: unknown) => void;
export type FakeOptions = {
  /** Milliseconds until a starting forward turns active (0: only on settle()). */
  settleMs?: number;
  now?: () => number;
  /** Whether the desktop shows a tray (default true). */
  tray?: boolean;
};

type Ports = TargetInfo["ports"];
const http = (port: number, name = "http"): Ports[number] => ({ port, name, protocol: "TCP" });

/** The fake cluster: context → namespace → kind → targets. */
export const CLUSTER: Record<string, Record<string, Record<string, TargetInfo[]>>> = {
  "ferry-fake": {
    default: { service: [{ name: "kubernetes", ports: [{ port: 443, name: "https", protocol: "TCP" }] }], deployment: [], statefulset: [], pod: [] },
    demo: {
      service: [
        { name: "echo", ports: [http(80), { port: 9090, name: "metrics", protocol: "TCP" }] },
        { name: "web", ports: [http(80), { port: 443, name: "https", protocol: "TCP" }] },
        { name: "db", ports: [{ port: 5432, name: "pg", protocol: "TCP" }] },
      ],
      deployment: [
        { name: "echo", ports: [http(8080)] },
        { name: "web", ports: [http(8080)] },
      ],
      statefulset: [{ name: "db", ports: [{ port: 5432, name: "pg", protocol: "TCP" }] }],
      pod: [
        { name: "echo-7d9f8-abcde", ports: [http(8080)] },
        { name: "web-5c6b7-fghij", ports: [http(8080)] },
        { name: "db-0", ports: [{ port: 5432, name: "pg", protocol: "TCP" }] },
      ],
    },
    "kube-system": { service: [{ name: "kube-dns", ports: [{ port: 53, name: "dns", protocol: "UDP" }, { port: 53, name: "dns-tcp", protocol: "TCP" }] }], deployment: [], statefulset: [], pod: [] },
  },
  staging: {
    default: { service: [], deployment: [], statefulset: [], pod: [] },
    payments: {
      service: [{ name: "api", ports: [http(8080), { port: 9000, name: "grpc", protocol: "TCP" }] }],
      deployment: [{ name: "api", ports: [http(8080)] }],
      statefulset: [{ name: "ledger", ports: [{ port: 5432, name: "pg", protocol: "TCP" }] }],
      pod: [{ name: "api-6f5d4-xyz12", ports: [http(8080)] }],
    },
  },
};
export const CURRENT_CONTEXT = "ferry-fake";

/** What the fake shell says Ferry's version is. */
export const FERRY_VERSION = "0.1.0";

/** Namespaces where the kubeconfig's user may not forward, with what the shell says. */
export const ACCESS_DENIED: Record<string, Record<string, string>> = {
  staging: {
    payments:
      "user `dev` cannot create pods/portforward in namespace `payments`; since Kubernetes 1.35 port-forwarding needs `create` on pods/portforward, not only `get`; ask a cluster admin for a Role that grants it",
  },
};

/** A forward a cluster object declares, as the shell's discovery reads it. */
type Declaration = { object: string; source: DeclaredSource; description: string | null; notes: string[]; forward: Forward };

/**
 * What the objects of the fake cluster declare in annotations, per context and namespace,
 * and what could not be read there. ferry-fake's demo namespace declares what the demo
 * scenario does (crates/ferry-fakecluster/scenarios/demo.yaml): one forward in each format.
 */
export const DECLARED: Record<string, Record<string, { declared: Declaration[]; problems: string[] }>> = {
  "ferry-fake": {
    demo: {
      declared: [
        {
          object: "deployment/web",
          source: "Ferry",
          description: "One web pod, straight",
          notes: [],
          forward: { name: "web-pod", context: "ferry-fake", namespace: "demo", target: "deployment/web", port: "http", local_port: 18090, alias: "web-pod" },
        },
        {
          object: "service/echo",
          source: "kftray",
          description: null,
          notes: [],
          forward: { name: "echo", context: "ferry-fake", namespace: "demo", target: "service/echo", port: 9000, pod_port: true, local_port: 19000 },
        },
        {
          object: "service/web",
          source: "Ferry",
          description: "The demo's web page",
          notes: [],
          forward: { name: "web", context: "ferry-fake", namespace: "demo", target: "service/web", port: 80, local_port: 18081 },
        },
        {
          object: "statefulset/db",
          source: "k9s",
          description: null,
          notes: ["k9s looks the port name `pg` up in container `db`; Ferry looks it up among all the pod's containers"],
          forward: { name: "db-pg", context: "ferry-fake", namespace: "demo", target: "statefulset/db", port: "pg", local_port: 15432 },
        },
      ],
      problems: [],
    },
  },
  staging: {
    payments: {
      declared: [
        {
          object: "service/api",
          source: "Ferry",
          description: "The payments API",
          notes: [],
          forward: { name: "api", context: "staging", namespace: "payments", target: "service/api", port: 8080, local_port: 8080 },
        },
      ],
      problems: [
        'deployments in namespace payments: not allowed to list them (deployments.apps is forbidden: User "dev" cannot list resource "deployments" in API group "apps" in the namespace "payments"), so what they declare is not shown',
      ],
    },
  },
};

const DEMO_FORWARDS: Forward[] = [
  { name: "echo", context: "ferry-fake", namespace: "demo", target: "service/echo", port: 80, local_port: 18080 },
  {
    name: "web",
    context: "ferry-fake",
    namespace: "demo",
    target: "service/web",
    port: "http",
    local_port: 18081,
    alias: "web",
    health: { kind: "http", interval: "5s", fast_interval: "1s", timeout: "2s", rise: 2, fall: 3, http: { path: "/healthz", expect_status: "200-399" } },
  },
  { name: "db", context: "ferry-fake", namespace: "demo", target: "statefulset/db", port: "pg", local_port: 15432 },
];

const DURATION_UNIT = "nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y";
const DURATION = new RegExp(`^\\s*(\\d+(\\.\\d+)?\\s*(${DURATION_UNIT})(?![A-Za-z])\\s*)+$`);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isIp(b: string): boolean {
  if (IPV4.test(b)) return true;
  if (!b.includes(":") || /[^0-9a-fA-F:.]/.test(b)) return false;
  try {
    new URL(`http://[${b}]/`);
    return true;
  } catch {
    return false;
  }
}

/**
 * What serde says when a `Forward` argument does not fit the shell's config types
 * (crates/ferry-core/src/config), or null when it fits. The shell never sees such a forward:
 * Tauri rejects the command with a plain string and no field, as here.
 */
/** What the shell cannot read in a forward, as `[field, message]` (the field as the shell's
 * reader names it: `local_port`, `health.interval`; `forward` for the whole). */
function serdeError(f: Record<string, unknown>): [string, string] | null {
  const keys = ["name", "context", "namespace", "target", "port", "pod_port", "local_port", "bind", "pick", "alias", "health", "enabled", "inspect"];
  const unknown = Object.keys(f).find((k) => !keys.includes(k));
  if (unknown) return ["forward", `unknown field \`${unknown}\`, expected one of ${keys.map((k) => `\`${k}\``).join(", ")}`];
  if (typeof f.name !== "string") return ["forward", "missing field `name`"];
  const target = f.target;
  if (typeof target !== "string") return ["target", "invalid type: expected a string or a number"];
  const [kind, name] = target.includes("/") ? [target.slice(0, target.indexOf("/")), target.slice(target.indexOf("/") + 1)] : [null, null];
  if (kind === null || name === null) return ["target", `\`${target}\` is not a target; write KIND/NAME with KIND one of pod, service, deployment, statefulset`];
  if (!/^[a-z0-9.-]{1,253}$/.test(name) || /^[-.]|[-.]$/.test(name)) return ["target", `\`${name}\` is not a valid object name (lower-case letters, digits, '-' and '.')`];
  if (!["pod", "pods", "po", "service", "services", "svc", "deployment", "deployments", "deploy", "statefulset", "statefulsets", "sts"].includes(kind.toLowerCase()))
    return ["target", `\`${kind}\` is not a target kind; use pod, service, deployment or statefulset`];
  const port = f.port;
  if (typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port))) {
    const n = Number(port);
    if (!Number.isInteger(n)) return ["port", "data did not match any variant of untagged enum Raw"];
    if (n < 1 || n > 65535) return ["port", `${port} is not a port`];
  } else if (typeof port !== "string" || !/^[a-z0-9-]{1,15}$/.test(port) || !/[a-z]/.test(port)) return ["port", `\`${port}\` is not a port number or port name`];
  const lp = f.local_port;
  if (typeof lp !== "number" || !Number.isInteger(lp)) return ["local_port", `invalid type: ${JSON.stringify(lp)}, expected a port number (1-65535, or 0 for any free port)`];
  if (lp < 0 || lp > 65535) return ["local_port", `${lp} is not a port (use 1-65535, or 0 for any free port)`];
  if (f.bind !== undefined && (typeof f.bind !== "string" || !isIp(f.bind))) return ["bind", "invalid IP address syntax"];
  if (f.pick !== undefined && !["sticky", "round-robin", "random"].includes(f.pick as string)) return ["pick", `unknown variant \`${f.pick}\`, expected one of \`sticky\`, \`round-robin\`, \`random\``];
  const ins = f.inspect;
  if (ins !== undefined && ins !== null && ins !== "http" && ins !== "off") {
    if (typeof ins !== "object" || Array.isArray(ins)) return ["inspect", `${JSON.stringify(ins)} is not an inspection: use \`http\` or \`off\``];
    const io = ins as Record<string, unknown>;
    const unknownKey = Object.keys(io).find((k) => k !== "body_kib" && k !== "redact");
    if (unknownKey) return ["inspect", `unknown field \`${unknownKey}\`, expected \`body_kib\` or \`redact\``];
    if (io.body_kib !== undefined && (typeof io.body_kib !== "number" || !Number.isInteger(io.body_kib) || io.body_kib < 0 || io.body_kib > 4294967295))
      return ["inspect.body_kib", `invalid value: ${JSON.stringify(io.body_kib)}, expected u32`];
    if (io.redact !== undefined && !(Array.isArray(io.redact) && io.redact.every((x) => typeof x === "string"))) return ["inspect.redact", "invalid type: expected a sequence of strings"];
  }
  const h = f.health as Record<string, unknown> | undefined;
  if (h !== undefined) {
    if (h.kind !== undefined && !["tunnel", "tcp", "http", "none"].includes(h.kind as string)) return ["health.kind", `unknown variant \`${h.kind}\``];
    for (const k of ["interval", "fast_interval", "down_interval", "idle_interval", "timeout", "max_idle", "max_age"]) {
      const v = h[k];
      if (v === undefined || (v === null && !["interval", "fast_interval", "idle_interval", "timeout"].includes(k))) continue;
      if (typeof v !== "string" || !DURATION.test(v)) return [`health.${k}`, `\`${v}\` is not a duration (expected number at 0); write e.g. 500ms, 5s or 1m`];
    }
    for (const k of ["rise", "fall"]) {
      const v = h[k];
      if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 4294967295)) return [`health.${k}`, `invalid value: ${JSON.stringify(v)}, expected u32`];
    }
  }
  return null;
}

const KINDS: Record<string, string> = {
  pod: "pod",
  pods: "pod",
  po: "pod",
  service: "service",
  services: "service",
  svc: "service",
  deployment: "deployment",
  deployments: "deployment",
  deploy: "deployment",
  statefulset: "statefulset",
  statefulsets: "statefulset",
  sts: "statefulset",
};

/** A forward's target and port as the shell holds them once read: `svc/echo` is
 * `service/echo`, the port "8080" is the number 8080. */
function settled(f: Forward): { kind: string; target: string; port: number | string } {
  const i = f.target.indexOf("/");
  const kind = KINDS[f.target.slice(0, i).toLowerCase()] ?? f.target.slice(0, i);
  const port = typeof f.port === "string" && /^\d+$/.test(f.port) ? Number(f.port) : f.port;
  return { kind, target: `${kind}/${f.target.slice(i + 1)}`, port };
}

/** The fields of a forward in the order the shell's config type writes them. */
const FORWARD_FIELDS = ["name", "context", "namespace", "target", "port", "pod_port", "local_port", "bind", "pick", "alias", "health", "enabled", "inspect"] as const;

/** A YAML scalar: plain where YAML reads it back as the same string, else double-quoted
 * (a JSON string is a valid YAML double-quoted scalar). */
function yamlScalar(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  const s = String(v);
  const plain = (/^[A-Za-z_/][A-Za-z0-9_./-]*$/.test(s) || /^\d+(\.\d+)?[A-Za-z]+$/.test(s)) && !/^(true|false|yes|no|on|off|y|n|null)$/i.test(s);
  return plain ? s : JSON.stringify(s);
}

function yamlLines(v: unknown, indent: string): string[] {
  const nested = (x: unknown) => x !== null && typeof x === "object" && Object.keys(x).length > 0;
  const inline = (x: unknown) => (Array.isArray(x) ? "[]" : x !== null && typeof x === "object" ? "{}" : yamlScalar(x));
  if (Array.isArray(v)) {
    return v.flatMap((item) => {
      if (!nested(item)) return [`${indent}- ${inline(item)}`];
      const inner = yamlLines(item, `${indent}  `);
      return [`${indent}- ${inner[0].trimStart()}`, ...inner.slice(1)];
    });
  }
  return Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined && x !== null)
    .flatMap(([k, x]) => (nested(x) ? [`${indent}${yamlScalar(k)}:`, ...yamlLines(x, `${indent}  `)] : [`${indent}${yamlScalar(k)}: ${inline(x)}`]));
}

/** A config as YAML that Ferry's config reader takes back as it is (absent fields, like
 * null ones, are left out, as the shell leaves out what is not set). */
export function configYaml(config: Config): string {
  const forwards = config.forwards.map((f) => {
    const { target, port } = settled(f);
    const out: Record<string, unknown> = {};
    for (const k of FORWARD_FIELDS) out[k] = k === "target" ? target : k === "port" ? port : k === "pod_port" && !f.pod_port ? undefined : f[k];
    return out;
  });
  const doc: Record<string, unknown> = { version: config.version, forwards };
  if ((config.profiles ?? []).length > 0) doc.profiles = config.profiles;
  return `${yamlLines(doc, "").join("\n")}\n`;
}

/** What serde says when `save_prefs`'s argument does not fit the shell's `Prefs` (every
 * key optional, none unknown), as `[field, message]`, or null when it fits; with the
 * preferences it gives (missing keys take their defaults). */
function readPrefs(v: unknown): [string, string] | Prefs {
  const enums: Record<string, string[]> = {
    theme: ["system", "light", "dark"],
    group_by: ["profile", "context"],
    "view.sort": ["saved", "name", "state", "port"],
    "view.state": ["all", "problems", "active", "starting", "degraded", "reconnecting", "error", "disabled"],
  };
  const out: Prefs = { theme: "system", group_by: "profile", view: { sort: "saved", state: "all", favourites_only: false }, check_updates: true };
  const object = (x: unknown) => x !== null && typeof x === "object" && !Array.isArray(x);
  if (!object(v)) return ["prefs", "invalid type: expected struct Prefs"];
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (k === "view") {
      if (!object(x)) return ["view", "invalid type: expected struct View"];
      for (const [vk, vx] of Object.entries(x as Record<string, unknown>)) {
        const field = `view.${vk}`;
        if (vk === "favourites_only") {
          if (typeof vx !== "boolean") return [field, `invalid type: ${JSON.stringify(vx)}, expected a boolean`];
          out.view.favourites_only = vx;
        } else if (field in enums) {
          if (typeof vx !== "string" || !enums[field].includes(vx)) return [field, `unknown variant \`${vx}\``];
          (out.view as Record<string, unknown>)[vk] = vx;
        } else return [field, `unknown field \`${vk}\`, expected one of \`sort\`, \`state\`, \`favourites_only\``];
      }
    } else if (k === "check_updates") {
      if (typeof x !== "boolean") return [k, `invalid type: ${JSON.stringify(x)}, expected a boolean`];
      out.check_updates = x;
    } else if (k in enums) {
      if (typeof x !== "string" || !enums[k].includes(x)) return [k, `unknown variant \`${x}\``];
      (out as Record<string, unknown>)[k] = x;
    } else return [k, `unknown field \`${k}\`, expected one of \`theme\`, \`group_by\`, \`view\`, \`check_updates\``];
  }
  return out;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function fail(code: AppError["code"], message: string, field: string | null = null): never {
  throw { code, message, field } satisfies AppError;
}

export class FakeShell {
  config: Config = { version: 1, forwards: [], profiles: [] };
  settings: Settings = {
    start_at_login: false,
    notifications: true,
    close_to_tray: true,
    kubeconfig_paths: [],
  };
  /** The app's own preferences (prefs.json in the shell). */
  prefs: Prefs = { theme: "system", group_by: "profile", view: { sort: "saved", state: "all", favourites_only: false }, check_updates: true };
  /** Starred forwards, in the order starred. */
  favourites: string[] = [];
  /** Banners closed for good. */
  dismissedBanners: string[] = [];
  banner: string | null = null;
  kubeFound = true;
  demo = false;
  generation = 1;
  statuses = new Map<string, ForwardStatus>();
  logs = new Map<string, LogLine[]>();
  calls: { cmd: string; args: Record<string, unknown> }[] = [];
  /** Errors to give the next call of a command, once. */
  failures = new Map<string, AppError>();
  /** Addresses `open_url` was asked to open. */
  opened: string[] = [];
  /** How many times the UI asked to quit. */
  quits = 0;
  /** What the update server has: a newer release, nothing newer, or no answer. */
  updateServer: { outcome: "offered"; update: UpdateInfo } | { outcome: "current" } | { outcome: "unreachable" } = { outcome: "current" };
  /** The release found by the last check (the shell keeps it for install_update). */
  updateOffered: UpdateInfo | null = null;
  /** Why the next install fails (a bad signature, say), in the shell's words. */
  installFailure: AppError | null = null;
  /** Releases installed (each restarts the app). */
  installed: string[] = [];
  /** Whether the desktop shows a tray. */
  tray: boolean;
  settleMs: number;
  now: () => number;
  timers = new Set<ReturnType<typeof setTimeout>>();
  /** Per inspected forward: the exchanges kept (in memory, as the engine's ring). */
  exchanges = new Map<string, Exchange[]>();
  /** Per inspected forward: the "not HTTP" note, once a connection was not HTTP. */
  passthroughs = new Map<string, string>();
  /** The forward whose exchanges the window follows (follow_exchanges). */
  followed: string | null = null;
  nextExchangeId = 1;

  constructor(
    scenario: Scenario,
    readonly emit: Emit,
    opts: FakeOptions = {},
  ) {
    this.settleMs = opts.settleMs ?? 400;
    this.tray = opts.tray ?? true;
    this.now = opts.now ?? (() => Date.now());
    if (scenario === "no-kubeconfig") this.kubeFound = false;
    if (scenario === "demo" || scenario === "banner") {
      this.demo = true;
      this.config.forwards = clone(DEMO_FORWARDS);
      this.config.forwards.push({ name: "api", context: "staging", namespace: "payments", target: "deployment/api", port: 8080, local_port: 8080, bind: "0.0.0.0", enabled: false });
      this.config.profiles = [{ name: "demo", forwards: ["echo", "web", "db"] }, { name: "backend", forwards: ["db", "api"] }];
      for (const f of this.config.forwards) this.statuses.set(f.name, this.statusFor(f, f.enabled === false ? "disabled" : "active"));
      const db = this.statuses.get("db")!;
      Object.assign(db, { state: "degraded", health: "down", latency_ms: null, detail: "connection refused by demo/db-0:5432", error: null });
    }
    if (scenario === "banner") this.banner = "The saved forwards could not be read; kept as /home/me/.config/ferry/forwards.yaml.bad. Starting empty.";
  }

  // ---- state ----

  appState(): AppState {
    return {
      config: clone(this.config),
      settings: clone(this.settings),
      prefs: clone(this.prefs),
      favourites: this.favourites.filter((n) => this.config.forwards.some((f) => f.name === n)),
      snapshot: this.snapshot(),
      banner: this.banner,
      kubeconfig: this.kubeFound
        ? { found: true, paths: ["/home/me/.kube/config"], message: null }
        : {
            found: false,
            paths: ["$KUBECONFIG (not set)", "/home/me/.kube/config", ...this.settings.kubeconfig_paths],
            message: "/home/me/.kube/config does not exist.",
          },
      demo: this.demo,
      store_path: "/home/me/.config/ferry/forwards.yaml",
      tray: this.tray,
      declared: this.declaredNew(),
    };
  }

  /** The saved forward that does what `d` declares (same context, namespace, target, port). */
  alreadyHave(d: Declaration): string | null {
    const want = settled(d.forward);
    const f = this.config.forwards.find((x) => {
      const have = settled(x);
      return x.context === d.forward.context && x.namespace === d.forward.namespace && have.target === want.target && have.port === want.port && !!x.pod_port === !!d.forward.pod_port;
    });
    return f?.name ?? null;
  }

  /** Per namespace the saved forwards use, what it declares that they do not do. */
  declaredNew(): DeclaredNew[] {
    const out: DeclaredNew[] = [];
    for (const f of this.config.forwards) {
      const context = f.context ?? CURRENT_CONTEXT;
      const namespace = f.namespace ?? "default";
      if (out.some((x) => x.context === context && x.namespace === namespace)) continue;
      const count = (DECLARED[context]?.[namespace]?.declared ?? []).filter((d) => this.alreadyHave(d) === null).length;
      if (count > 0) out.push({ context, namespace, count });
    }
    return out;
  }

  /** discover_forwards as the shell answers it (src-tauri/src/discover.rs): each declared
   * forward with the saved one that does it; the others with a name and a local port no
   * saved forward (nor an earlier offer) has, each change in a note. */
  discover(context: string | null, namespace: string | null, all: boolean): DiscoverReport {
    const ctx = context?.trim() || CURRENT_CONTEXT;
    if (!(ctx in CLUSTER)) fail("cluster", `context "${ctx}": no such context in the kubeconfig`);
    const ns = namespace?.trim() || null;
    if (ns && all) fail("invalid", "a namespace and all namespaces were both asked for: give one", "namespace");
    const places = all ? Object.keys(CLUSTER[ctx]) : [ns ?? "default"];
    const names = new Set(this.config.forwards.map((f) => f.name));
    const ports = new Map(this.config.forwards.filter((f) => f.local_port !== 0).map((f) => [`${f.bind ?? "127.0.0.1"}:${f.local_port}`, f.name]));
    const declared: DeclaredForward[] = [];
    const problems: string[] = [];
    for (const place of [...places].sort()) {
      const here = DECLARED[ctx]?.[place];
      if (!here) continue;
      problems.push(...here.problems);
      for (const d of here.declared) {
        const have = this.alreadyHave(d);
        const forward = clone(d.forward);
        const notes = [...d.notes];
        if (have === null) {
          let name = forward.name;
          for (let n = 2; names.has(name); n++) name = `${forward.name}-${n}`;
          names.add(name);
          if (name !== forward.name) notes.push(`a saved forward is named ${forward.name}; offered as ${name}`);
          forward.name = name;
          const bind = forward.bind ?? "127.0.0.1";
          const wanted = forward.local_port;
          if (wanted !== 0) {
            const holder = ports.get(`${bind}:${wanted}`);
            if (holder) {
              let p = wanted + 1;
              while (ports.has(`${bind}:${p}`)) p++;
              forward.local_port = p;
              notes.push(`local port ${wanted} is taken by ${holder}; offered with ${p}`);
            }
            ports.set(`${bind}:${forward.local_port}`, forward.name);
          }
        }
        declared.push({ name: d.forward.name, object: d.object, namespace: place, source: d.source, description: d.description, notes, have, forward });
      }
    }
    return { context: ctx, declared, problems };
  }

  snapshot(): Snapshot {
    return {
      generation: this.generation,
      forwards: this.config.forwards.map((f) => clone(this.statuses.get(f.name) ?? this.statusFor(f, f.enabled === false ? "disabled" : "starting"))),
    };
  }

  emitState(): void {
    this.generation++;
    this.emit("ferry://state", this.appState());
  }

  emitSnapshot(): void {
    this.generation++;
    this.emit("ferry://snapshot", this.snapshot());
  }

  statusFor(f: Forward, state: ForwardStatus["state"]): ForwardStatus {
    const on = state !== "disabled";
    const ctx = f.context ?? CURRENT_CONTEXT;
    const ns = f.namespace ?? "default";
    const bind = f.bind ?? "127.0.0.1";
    const local = f.local_port === 0 ? 30000 + (this.config.forwards.indexOf(f) % 1000) : f.local_port;
    const isHttp = f.port === 80 || f.port === "http" || f.port === 8080 || f.health?.kind === "http";
    const host = f.alias ? `${f.alias}.local` : bind === "0.0.0.0" ? "127.0.0.1" : bind;
    const pod = f.target.startsWith("pod/") ? f.target.slice(4) : `${f.target.split("/")[1]}-7d9f8-abcde`;
    return {
      forward: f.name,
      state,
      target: `${f.target}:${f.port}`,
      context: ctx,
      namespace: ns,
      pod: state === "active" || state === "degraded" ? pod : null,
      local: on ? `${bind}:${local}` : null,
      error: null,
      last_error: null,
      connections: state === "active" ? 1 : 0,
      total_connections: state === "active" ? 3 : 0,
      bytes_out: state === "active" ? 2048 : 0,
      bytes_in: state === "active" ? 1_572_864 : 0,
      since_ms: this.now(),
      health: state === "active" ? "up" : state === "disabled" ? "disabled" : "unknown",
      latency_ms: state === "active" ? 12 : null,
      detail: null,
      last_probe_ms: state === "active" ? this.now() : null,
      history: state === "active" ? [{ from: "unknown", to: "up", at_ms: this.now(), code: "ok", detail: "tunnel opened" }] : [],
      credential_plugin: null,
      url: on ? `${isHttp ? "http" : "tcp"}://${host}:${local}` : null,
      alias: f.alias ?? null,
      alias_warning: null,
      exposed: !(bind.startsWith("127.") || bind === "::1" || bind === "localhost"),
      port_in_use: false,
    };
  }

  log(name: string, level: string, message: string): void {
    const list = this.logs.get(name) ?? [];
    list.push({ at_ms: this.now(), level, message });
    this.logs.set(name, list.slice(-200));
  }

  /** Moves a forward to a state and tells the UI. */
  setForwardState(name: string, state: ForwardStatus["state"], extra: Partial<ForwardStatus> = {}): void {
    const f = this.config.forwards.find((x) => x.name === name);
    if (!f) return;
    const before = this.statuses.get(name);
    const s = { ...this.statusFor(f, state), ...extra };
    if (before) s.history = [...before.history, ...(before.health !== s.health ? [{ from: before.health, to: s.health, at_ms: this.now(), code: state, detail: extra.detail ?? state }] : [])].slice(-32);
    this.statuses.set(name, s);
    // A stopped forward's inspection ends (its exchanges go with it).
    if (state === "disabled" && before?.state !== "disabled") {
      this.exchanges.delete(name);
      if (this.followed === name) {
        this.emitExchanges(name, [], true);
        this.followed = null;
      }
    }
    this.log(name, state === "error" ? "ERROR" : "INFO", `${name}: ${before?.state ?? "new"} -> ${state}${extra.error ? `: ${extra.error}` : ""}`);
    this.emitSnapshot();
  }

  /** Every starting forward turns active now. */
  settle(): void {
    for (const f of this.config.forwards) {
      if (this.statuses.get(f.name)?.state === "starting") this.setForwardState(f.name, "active");
    }
  }

  start(name: string): void {
    this.setForwardState(name, "starting");
    if (this.settleMs > 0) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (this.statuses.get(name)?.state === "starting") this.setForwardState(name, "active");
      }, this.settleMs);
      this.timers.add(t);
    }
  }

  dispose(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  // ---- validation ----

  validate(original: string | null, f: Forward): FieldProblem[] {
    const out: FieldProblem[] = [];
    const others = this.config.forwards.filter((x) => x.name !== original);
    if (!f.name || !f.name.trim()) out.push({ field: "name", message: "A forward needs a name.", code: "invalid" });
    else if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(f.name)) out.push({ field: "name", message: `"${f.name}" is not a usable name: use letters, digits, '.', '_' and '-'.`, code: "invalid" });
    else if (others.some((x) => x.name === f.name)) out.push({ field: "name", message: `A forward named "${f.name}" already exists.`, code: "conflict" });
    if (f.context && !(f.context in CLUSTER)) out.push({ field: "context", message: `There is no context "${f.context}" in the kubeconfig.`, code: "invalid" });
    if (f.namespace && !DNS_LABEL.test(f.namespace)) out.push({ field: "namespace", message: `"${f.namespace}" is not a valid namespace name.`, code: "invalid" });
    // Target, ports, bind and durations that do not fit were refused before (serdeError).
    if (typeof f.port === "string" && /^-|-$/.test(f.port)) out.push({ field: "port", message: `"${f.port}" is not a port name.`, code: "invalid" });
    if (f.local_port !== 0) {
      const bind = f.bind ?? "127.0.0.1";
      const clash = others.find((x) => x.local_port === f.local_port && (x.bind ?? "127.0.0.1") === bind);
      if (clash) out.push({ field: "local_port", message: `Local port ${f.local_port} is already used by "${clash.name}".`, code: "conflict" });
    }
    if (f.alias && !DNS_LABEL.test(f.alias)) out.push({ field: "alias", message: `"${f.alias}" is not a DNS label (a-z, 0-9 and '-').`, code: "invalid" });
    if (f.alias && others.some((x) => x.alias === f.alias)) out.push({ field: "alias", message: `The local name "${f.alias}" is already used.`, code: "conflict" });
    const ins = f.inspect;
    if (ins && typeof ins === "object") {
      if ((ins.body_kib ?? 0) > 1024)
        out.push({ field: "inspect.body_kib", message: `${ins.body_kib} KiB is more than an inspector keeps of a body (at most 1024 KiB)`, code: "invalid" });
      (ins.redact ?? []).forEach((h, j) => {
        if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h)) out.push({ field: `inspect.redact[${j}]`, message: `"${h}" is not a header name`, code: "invalid" });
      });
    }
    if (f.health) {
      if (f.health.rise === 0) out.push({ field: "health.rise", message: "Rise must be at least 1.", code: "invalid" });
      if (f.health.fall === 0) out.push({ field: "health.fall", message: "Fall must be at least 1.", code: "invalid" });
      if (!f.health.http?.path?.startsWith("/")) out.push({ field: "health.http.path", message: "The HTTP path must start with /.", code: "invalid" });
    }
    return out;
  }

  // ---- commands ----

  async handle(cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
    this.calls.push({ cmd, args: clone(args) });
    const injected = this.failures.get(cmd);
    if (injected) {
      this.failures.delete(cmd);
      throw injected;
    }
    const a = args as Record<string, never>;
    switch (cmd) {
      case "get_state":
        return this.appState();
      case "set_enabled":
        return this.setEnabled(a.name, a.enabled, true);
      case "set_all_enabled": {
        for (const n of a.names as string[]) this.setEnabled(n, a.enabled, false);
        this.emitState();
        return null;
      }
      case "set_profile_active": {
        const p = this.profile(a.name);
        for (const n of p.forwards) if (this.config.forwards.some((f) => f.name === n)) this.setEnabled(n, a.active, false);
        this.emitState();
        return null;
      }
      case "save_forward":
      case "validate_forward": {
        // The shell reads the forward itself: what it cannot read is a problem on its field.
        const bad = serdeError(a.forward);
        if (bad !== null) {
          const [field, why] = bad;
          const message = field === "forward" ? `the forward cannot be read: ${why}` : `${field} cannot be read: ${why}`;
          if (cmd === "validate_forward") return [{ field, message, code: "invalid" }];
          fail("invalid", message, field);
        }
        return cmd === "save_forward" ? this.saveForward(a.original, a.forward) : this.validate(a.original, a.forward);
      }
      case "delete_forward": {
        const i = this.config.forwards.findIndex((f) => f.name === a.name);
        if (i < 0) fail("not_found", `There is no forward named "${a.name}".`);
        this.config.forwards.splice(i, 1);
        for (const p of this.config.profiles ?? []) p.forwards = p.forwards.filter((n) => n !== a.name);
        this.favourites = this.favourites.filter((n) => n !== a.name);
        this.statuses.delete(a.name);
        this.emitState();
        return null;
      }
      case "parse_kubectl": {
        // Quick add gets a name no forward has yet ("echo-2"), as from the shell.
        const f = this.parseKubectl(a.line);
        const wanted = f.name;
        for (let n = 2; this.config.forwards.some((x) => x.name === f.name); n++) f.name = `${wanted}-${n}`;
        return f;
      }
      case "suggest_local_port": {
        const port = a.port as number;
        const used = new Set(this.config.forwards.map((f) => f.local_port));
        let p = port >= 1024 ? port : 10000 + port;
        while (used.has(p)) p++;
        return p;
      }
      case "list_contexts":
        return { contexts: Object.keys(CLUSTER), current: CURRENT_CONTEXT };
      case "list_namespaces": {
        const ctx = (a.context as string | null) ?? CURRENT_CONTEXT;
        if (!(ctx in CLUSTER)) fail("cluster", `context "${ctx}": no such context in the kubeconfig`);
        return Object.keys(CLUSTER[ctx]);
      }
      case "check_access": {
        const ctx = (a.context as string | null) ?? CURRENT_CONTEXT;
        if (!(ctx in CLUSTER)) fail("cluster", `context "${ctx}": no such context in the kubeconfig`);
        if (!["service", "svc", "deployment", "deploy", "statefulset", "sts", "pod", "po"].includes(a.kind as string))
          fail("invalid", `\`${a.kind}\` is not a kind; use service, deployment, statefulset or pod`, "kind");
        const ns = (a.namespace as string | null) ?? "default";
        return ACCESS_DENIED[ctx]?.[ns] ?? null;
      }
      case "list_targets": {
        const ctx = (a.context as string | null) ?? CURRENT_CONTEXT;
        if (!(ctx in CLUSTER)) fail("cluster", `context "${ctx}": no such context in the kubeconfig`);
        const ns = (a.namespace as string | null) ?? "default";
        return clone(CLUSTER[ctx][ns]?.[a.kind as string] ?? []);
      }
      case "discover_forwards":
        return this.discover(a.context ?? null, a.namespace ?? null, a.allNamespaces ?? false);
      case "inspect_exchanges":
        return this.kept(a.forward);
      case "follow_exchanges": {
        try {
          const kept = this.kept(a.forward);
          this.followed = a.forward;
          return kept;
        } catch (e) {
          this.followed = null;
          throw e;
        }
      }
      case "unfollow_exchanges":
        this.followed = null;
        return null;
      case "replay_exchange":
        return this.replay(a.forward, a.id);
      case "exchange_curl":
        return this.curl(a.forward, a.id);
      case "export_har":
        return this.har(a.forward, (a.ids as number[] | undefined) ?? null);
      case "clear_exchanges":
        this.inspection(a.forward);
        this.exchanges.set(a.forward, []);
        return null;
      case "retry_forward": {
        if (!this.config.forwards.some((f) => f.name === a.name)) fail("not_found", `There is no forward named "${a.name}".`);
        return null;
      }
      case "test_connection": {
        const s = this.statuses.get(a.name);
        if (!this.config.forwards.some((f) => f.name === a.name)) fail("not_found", `There is no forward named "${a.name}".`);
        if (s?.state === "active") return { ok: true, ms: 4, message: `connected to ${s.pod ?? "the pod"}` };
        return { ok: false, ms: 2000, message: s?.state === "disabled" ? "the forward is stopped" : "timed out after 2s" };
      }
      case "kubectl_command":
        return kubectlLine(this.forward(a.name));
      case "forward_log":
        this.forward(a.name);
        return clone(this.logs.get(a.name) ?? []);
      case "save_profile":
        return this.saveProfile(a.original, a.profile);
      case "delete_profile": {
        this.profile(a.name);
        this.config.profiles = (this.config.profiles ?? []).filter((p) => p.name !== a.name);
        this.emitState();
        return null;
      }
      case "save_settings": {
        const s = a.settings as Settings;
        const bad = s.kubeconfig_paths.findIndex((p) => !p.startsWith("/") && !p.startsWith("~"));
        if (bad >= 0) fail("invalid", `"${s.kubeconfig_paths[bad]}" is not an absolute path.`, `kubeconfig_paths[${bad}]`);
        this.settings = clone(s);
        this.emitState();
        return null;
      }
      case "save_prefs": {
        const read = readPrefs(a.prefs);
        if (Array.isArray(read)) fail("invalid", `${read[0]} cannot be read: ${read[1]}`, read[0]);
        this.prefs = read;
        if (this.banner?.includes("app's preferences")) this.banner = null;
        this.emitState();
        return null;
      }
      case "set_favourite": {
        const name = a.name as string;
        if (!this.config.forwards.some((f) => f.name === name)) fail("not_found", `There is no forward named "${name}".`, "name");
        const on = this.favourites.includes(name);
        if (a.favourite && !on) this.favourites.push(name);
        if (!a.favourite && on) this.favourites = this.favourites.filter((n) => n !== name);
        this.emitState();
        return null;
      }
      case "dismiss_banner": {
        if (this.banner) this.dismissedBanners.push(this.banner);
        this.banner = null;
        this.emitState();
        return null;
      }
      case "start_demo": {
        this.demo = true;
        this.kubeFound = true;
        for (const f of DEMO_FORWARDS) if (!this.config.forwards.some((x) => x.name === f.name)) this.config.forwards.push(clone(f));
        this.config.profiles = [...(this.config.profiles ?? []).filter((p) => p.name !== "demo"), { name: "demo", forwards: ["echo", "web", "db"] }];
        this.emitState();
        for (const f of DEMO_FORWARDS) this.start(f.name);
        return null;
      }
      case "import_config":
        return this.importConfig(a.text, a.format, a.dryRun);
      case "export_config": {
        const format = a.format as string;
        // Tauri's own rejection of a value the shell's enum does not have.
        if (format !== "ferry" && format !== "kftray") throw `invalid args \`format\` for command \`export_config\`: unknown variant \`${format}\`, expected \`ferry\` or \`kftray\``;
        return this.exportConfig(format);
      }
      case "open_url": {
        const url = a.url as string;
        if (!/^https?:\/\//.test(url)) fail("invalid", "Only http and https addresses are opened.", "url");
        this.opened.push(url);
        return null;
      }
      case "quit":
        this.quits++;
        return null;
      case "check_update":
        return this.checkUpdate();
      case "offered_update":
        return clone(this.updateOffered);
      case "install_update": {
        const u = this.updateOffered;
        if (!u) fail("not_found", "There is no update to install: check for updates first.");
        const up = this.config.forwards.filter((f) => !["disabled", "error"].includes(this.statuses.get(f.name)?.state ?? "disabled")).map((f) => f.name);
        if (up.length > 0 && !a.confirmCut)
          fail("conflict", `Installing Ferry ${u!.version} restarts it, which cuts ${up.length} forward${up.length === 1 ? "" : "s"} for a moment (${up.join(", ")}). Confirm to go on.`, "confirm_cut");
        const failure = this.installFailure;
        if (failure) {
          this.installFailure = null;
          throw failure;
        }
        this.installed.push(u!.version);
        return null;
      }
      // Tauri's own: the app's version (`getVersion`).
      case "plugin:app|version":
        return FERRY_VERSION;
      default:
        fail("engine", `unknown command ${cmd}`);
    }
  }

  /** What a check finds now (as the shell's `check_update`); an offer is also sent as
   * ferry://update. */
  checkUpdate(): Checked {
    const c = clone(this.updateServer);
    if (c.outcome === "offered") {
      this.updateOffered = clone(c.update);
      this.emit("ferry://update", clone(c.update));
    } else if (c.outcome === "current") this.updateOffered = null;
    return c;
  }

  forward(name: string): Forward {
    const f = this.config.forwards.find((x) => x.name === name);
    if (!f) fail("not_found", `There is no forward named "${name}".`);
    return f;
  }

  profile(name: string): Profile {
    const p = (this.config.profiles ?? []).find((x) => x.name === name);
    if (!p) fail("not_found", `There is no profile named "${name}".`);
    return p;
  }

  setEnabled(name: string, enabled: boolean, emit: boolean): null {
    const f = this.forward(name);
    const was = f.enabled !== false;
    if (enabled) delete f.enabled;
    else f.enabled = false;
    if (emit) this.emitState();
    if (was !== enabled) {
      if (enabled) this.start(name);
      else this.setForwardState(name, "disabled");
    }
    return null;
  }

  /** kubectl's current context, as list_contexts gives it. */
  currentContext(): string | null {
    return CURRENT_CONTEXT;
  }

  // ---- HTTP inspection (src-tauri/src/inspect.rs) ----

  /** The inspected forward's ring, as the engine's `inspection` finds it. */
  inspection(name: string): Exchange[] {
    const f = this.config.forwards.find((x) => x.name === name);
    if (!f) fail("not_found", `there is no forward named "${name}"`);
    if (f.inspect === undefined || f.inspect === null || (f.inspect as unknown) === "off")
      fail("invalid", `forward ${name} is not inspected: turn it on with \`inspect: http\` (\`ferry inspect ${name} on\`)`, "inspect");
    if (f.enabled === false) fail("invalid", `forward ${name} is disabled`, "inspect");
    let ring = this.exchanges.get(name);
    if (!ring) this.exchanges.set(name, (ring = []));
    return ring;
  }

  kept(name: string): Exchanges {
    return { exchanges: clone(this.inspection(name)), passthrough: this.passthroughs.get(name) ?? null };
  }

  /** Where the forward listens ("127.0.0.1:18081"), or the shell's error. */
  listeningAt(name: string): string {
    const local = this.statuses.get(name)?.local;
    if (!local) fail("engine", `${name} is not listening now: switch it on first`);
    return local.replace(/^0\.0\.0\.0:/, "127.0.0.1:");
  }

  exchangeOf(name: string, id: number): Exchange {
    const e = this.inspection(name).find((x) => x.id === id);
    if (!e) fail("not_found", `exchange ${id} is no longer kept (cleared, or pushed out by newer ones)`, "id");
    return e;
  }

  /** The request's body if it was kept whole, else the shell's error. */
  replayBody(e: Exchange): string {
    const r = e.request;
    if (r.contentSize > 0 && (r.truncated || r.bodyBase64 === ""))
      fail("invalid", `the request body was not captured in full (${atob(r.bodyBase64).length} of ${r.contentSize} bytes); raise the body capture limit to replay it`, "id");
    return r.bodyBase64 ? atob(r.bodyBase64) : "";
  }

  replay(name: string, id: number): { exchange: Exchange } {
    const e = this.exchangeOf(name, id);
    this.replayBody(e);
    this.listeningAt(name);
    const answer = this.request(name, { ...clone(e), startedMs: this.now(), durationMs: Math.max(1, (e.durationMs ?? 2) - 1) });
    return { exchange: answer ?? clone(e) };
  }

  curl(name: string, id: number): string {
    const e = this.exchangeOf(name, id);
    const body = this.replayBody(e);
    const q = (v: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(v) ? v : `'${v.replace(/'/g, "'\\''")}'`);
    const args = ["curl"];
    if (!(e.method === "GET" && !body)) args.push("-X", e.method);
    args.push(q(`http://${this.listeningAt(name)}${e.target}`));
    const skip = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "te", "trailer", "upgrade", "expect"];
    for (const h of e.request.headers) if (!h.redacted && !skip.includes(h.name.toLowerCase())) args.push("-H", q(`${h.name}: ${h.value}`));
    if (body) args.push("--data-binary", q(body));
    return args.join(" ");
  }

  har(name: string, ids: number[] | null): HarExport {
    const list = this.inspection(name).filter((e) => ids === null || ids.includes(e.id));
    const local = this.statuses.get(name)?.local ?? "127.0.0.1:80";
    const pairs = (hs: Message["headers"]) => hs.map((h) => ({ name: h.name, value: h.value }));
    const entries = list.map((e) => ({
      startedDateTime: new Date(e.startedMs).toISOString(),
      time: e.durationMs ?? -1,
      request: { method: e.method, url: `http://${local}${e.target}`, httpVersion: e.request.version, cookies: [], headers: pairs(e.request.headers), queryString: [], headersSize: e.request.headSize, bodySize: e.request.bodySize },
      response: {
        status: e.status ?? 0,
        statusText: e.reason ?? "",
        httpVersion: e.response?.version ?? "HTTP/1.1",
        cookies: [],
        headers: pairs(e.response?.headers ?? []),
        content: { size: e.response?.contentSize ?? 0, mimeType: "" },
        redirectURL: "",
        headersSize: e.response?.headSize ?? -1,
        bodySize: e.response?.bodySize ?? -1,
      },
      cache: {},
      timings: { send: e.timings?.sendMs ?? 0, wait: e.timings?.waitMs ?? 0, receive: e.timings?.receiveMs ?? 0 },
    }));
    const text = JSON.stringify({ log: { version: "1.2", creator: { name: "Ferry", version: FERRY_VERSION }, entries } }, null, 2);
    return { text, file_name: `ferry-${name}-20260101-120000.har`, entries: entries.length };
  }

  /** A test's request through an inspected, listening forward: recorded like the engine
   * records one, and sent to the window when it follows the forward. Returns the
   * exchange, or null when the forward is not inspected. */
  request(name: string, over: Partial<Exchange> = {}): Exchange | null {
    const f = this.config.forwards.find((x) => x.name === name);
    if (!f || f.inspect === undefined || f.inspect === null || f.enabled === false) return null;
    const body = (text: string, type: string | null): Partial<Message> =>
      text ? { bodyBase64: btoa(text), contentSize: text.length, bodySize: text.length, headers: type ? [{ name: "Content-Type", value: type }] : [] } : {};
    const message = (m: Partial<Message> = {}): Message => ({
      version: "HTTP/1.1",
      headers: [],
      trailers: [],
      headSize: 80,
      bodySize: 0,
      contentSize: 0,
      bodyBase64: "",
      truncated: false,
      complete: true,
      ...m,
    });
    const e: Exchange = {
      id: this.nextExchangeId++,
      startedMs: this.now(),
      method: "GET",
      target: "/",
      status: 200,
      reason: "OK",
      durationMs: 3.2,
      timings: { sendMs: 0.1, waitMs: 2.8, receiveMs: 0.3 },
      request: message({ headers: [{ name: "Host", value: "127.0.0.1" }, { name: "User-Agent", value: "curl/8.5.0" }] }),
      response: message({ ...body("<!doctype html><title>web</title>", "text/html"), headers: [{ name: "Content-Type", value: "text/html" }] }),
      interim: [],
      upgrade: null,
      incomplete: false,
      ...clone(over),
    };
    if (over.id !== undefined) e.id = this.nextExchangeId++;
    const ring = this.exchanges.get(name) ?? [];
    ring.push(e);
    if (ring.length > 1000) ring.splice(0, ring.length - 1000);
    this.exchanges.set(name, ring);
    if (this.followed === name) {
      // Batched as the shell's follower does: what completes together is one event.
      if (this.pendingExchanges.length === 0) setTimeout(() => this.flushExchanges(), 0);
      this.pendingExchanges.push(e);
    }
    return clone(e);
  }

  /** A connection through the forward that is not HTTP, said once. */
  notHttp(name: string, why = "TLS handshake"): void {
    if (this.passthroughs.has(name)) return;
    this.passthroughs.set(name, `not HTTP: traffic passed through unparsed (${why})`);
    if (this.followed === name) this.emitExchanges(name, []);
  }

  /** Exchanges of the followed forward not yet sent. */
  pendingExchanges: Exchange[] = [];

  flushExchanges(): void {
    const batch = this.pendingExchanges;
    this.pendingExchanges = [];
    if (this.followed && batch.length > 0) this.emitExchanges(this.followed, batch);
  }

  emitExchanges(name: string, exchanges: Exchange[], ended = false): void {
    const batch: ExchangeBatch = { forward: name, exchanges: clone(exchanges), missed: 0, passthrough: this.passthroughs.get(name) ?? null, ended };
    this.emit("ferry://exchange", batch);
  }

  saveForward(original: string | null, forward: Forward): null {
    if (original !== null) this.forward(original);
    // As the shell does: a forward names its context, one that names none gets the current.
    const f = clone(forward);
    if (f.context == null) {
      const current = this.currentContext();
      if (current) f.context = current;
    }
    const problems = this.validate(original, f);
    if (problems.length > 0) {
      const p = problems[0];
      const conflict = /already/.test(p.message);
      fail(conflict ? "conflict" : "invalid", p.message, p.field);
    }
    const saved = clone(f);
    // A changed inspection starts empty, and its followers hear that the old one ended.
    const before = original === null ? undefined : this.config.forwards.find((x) => x.name === original);
    if (before && JSON.stringify(before.inspect ?? null) !== JSON.stringify(saved.inspect ?? null)) {
      this.exchanges.delete(original!);
      this.passthroughs.delete(original!);
      if (this.followed === original) {
        this.emitExchanges(original!, [], true);
        this.followed = null;
      }
    }
    if (original === null) {
      this.config.forwards.push(saved);
    } else {
      const i = this.config.forwards.findIndex((x) => x.name === original);
      this.config.forwards[i] = saved;
      if (original !== f.name) {
        for (const p of this.config.profiles ?? []) p.forwards = p.forwards.map((n) => (n === original ? f.name : n));
        const st = this.statuses.get(original);
        this.statuses.delete(original);
        if (st) this.statuses.set(f.name, { ...st, forward: f.name });
        const lg = this.logs.get(original);
        if (lg) this.logs.set(f.name, lg);
        // A star follows its forward to its new name.
        if (this.favourites.includes(original)) this.favourites = this.favourites.filter((n) => n !== f.name).map((n) => (n === original ? f.name : n));
      }
    }
    this.emitState();
    if (saved.enabled === false) this.setForwardState(saved.name, "disabled");
    else this.start(saved.name);
    return null;
  }

  saveProfile(original: string | null, p: Profile): null {
    const profiles = this.config.profiles ?? [];
    if (!p.name.trim()) fail("invalid", "A profile needs a name.", "name");
    if (profiles.some((x) => x.name === p.name && x.name !== original)) fail("conflict", `A profile named "${p.name}" already exists.`, "name");
    for (const n of p.forwards) if (!this.config.forwards.some((f) => f.name === n)) fail("invalid", `There is no forward named "${n}".`, "forwards");
    if (original === null) profiles.push(clone(p));
    else {
      const i = profiles.findIndex((x) => x.name === original);
      if (i < 0) fail("not_found", `There is no profile named "${original}".`);
      profiles[i] = clone(p);
    }
    this.config.profiles = profiles;
    this.emitState();
    return null;
  }

  parseKubectl(line: string): Forward {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words[0] === "kubectl") words.shift();
    if (words[0] === "port-forward") words.shift();
    let target: string | null = null;
    let ports: string | null = null;
    let namespace: string | null = null;
    let context: string | null = null;
    let bind: string | undefined;
    for (let i = 0; i < words.length; i++) {
      const w = words[i];
      const val = () => {
        const v = words[++i];
        if (v === undefined) fail("invalid", `${w} needs a value.`, "line");
        return v;
      };
      if (w === "-n" || w === "--namespace") namespace = val();
      else if (w.startsWith("--namespace=")) namespace = w.slice(12);
      else if (w === "--context") context = val();
      else if (w.startsWith("--context=")) context = w.slice(10);
      else if (w === "--address") bind = val();
      else if (w.startsWith("--address=")) bind = w.slice(10);
      else if (w.startsWith("-")) fail("invalid", `Ferry does not know the option ${w}.`, "line");
      else if (!target) target = w;
      else if (!ports) ports = w;
      else fail("invalid", `Only one port pair is read from a line; "${w}" is extra.`, "line");
    }
    if (!target) fail("invalid", "The line names no target, like svc/echo.", "line");
    if (!ports) fail("invalid", "The line has no port, like 18080:80.", "line");
    const [kindRaw, name] = target.includes("/") ? target.split("/", 2) : ["pod", target];
    const kinds: Record<string, string> = { svc: "service", service: "service", deploy: "deployment", deployment: "deployment", sts: "statefulset", statefulset: "statefulset", po: "pod", pod: "pod" };
    const kind = kinds[kindRaw.toLowerCase()];
    if (!kind) fail("invalid", `"${kindRaw}" is not a kind Ferry forwards to.`, "line");
    const [l, r] = ports.includes(":") ? ports.split(":", 2) : [ports, ports];
    const remote = /^\d+$/.test(r) ? Number(r) : r;
    const local = l === "" ? 0 : Number(l);
    if (!Number.isInteger(local)) fail("invalid", `"${l}" is not a local port.`, "line");
    const f: Forward = { name, target: `${kind}/${name}`, port: remote, local_port: local };
    if (context) f.context = context;
    if (namespace) f.namespace = namespace;
    if (bind) f.bind = bind;
    return f;
  }

  /**
   * export_config as the shell does it (src-tauri/src/app.rs, `kftray_export` in
   * crates/ferry-core/src/config/import.rs): Ferry's YAML of the forwards and profiles, or
   * kftray's JSON of the services with a port number, each forward left out or changed
   * named in a note.
   */
  exportConfig(format: ExportFormat): ExportResult {
    if (format === "ferry") return { text: configYaml(this.config), notes: [] };
    const entries: Record<string, unknown>[] = [];
    const notes: string[] = [];
    for (const f of this.config.forwards) {
      const { kind, target, port } = settled(f);
      if (kind !== "service") {
        notes.push(`${f.name}: ${target} has no kftray equivalent; not exported`);
        continue;
      }
      if (typeof port !== "number") {
        notes.push(`${f.name}: kftray needs a port number, not the name \`${port}\`; not exported`);
        continue;
      }
      if (!f.pod_port) notes.push(`${f.name}: exported remote_port ${port} is the service's port; kftray expects the pods' port`);
      const entry: Record<string, unknown> = {
        service: target.slice("service/".length),
        namespace: f.namespace ?? "default",
        local_port: f.local_port,
        remote_port: port,
      };
      if (f.context != null) entry.context = f.context;
      Object.assign(entry, {
        workload_type: "service",
        protocol: "tcp",
        local_address: f.bind ?? "127.0.0.1",
        alias: f.alias ?? f.name,
        domain_enabled: f.alias != null,
      });
      entries.push(entry);
    }
    return { text: `${JSON.stringify(entries, null, 2)}\n`, notes };
  }

  /**
   * import_config for kubectl lines, as the shell does it (src-tauri/src/app.rs,
   * crates/ferry-core/src/config/import.rs): all or nothing (a line that cannot be read
   * fails the import, naming the line); names unique within the text first, then against the
   * saved forwards, each rename reported; a forward that names no context gets the current
   * one, with a note; nothing is ever replaced.
   */
  importConfig(text: string, format: string, dryRun: boolean): ImportResult {
    if (format !== "auto" && format !== "kubectl") {
      return { added: [], replaced: [], warnings: [`The demo shell reads only kubectl lines, not ${format}.`], entries: [] };
    }
    const unique = (wanted: string, taken: Set<string>) => {
      let name = wanted;
      for (let n = 2; taken.has(name); n++) name = `${wanted}-${n}`;
      taken.add(name);
      return name;
    };
    const forwards: Forward[] = [];
    const notes: string[] = [];
    const renamed: [string, string][] = [];
    /** Per forward (by index): the name asked for, why it changed, its own notes. */
    const entries: { wanted: string; renamed: "config" | "paste" | null; notes: string[] }[] = [];
    const inText = new Set<string>();
    text.split("\n").forEach((raw, i) => {
      const line = raw.trim().replace(/^\$\s+/, "").replace(/\s*&$/, "");
      if (!line || line.startsWith("#")) return;
      const first = line.split(/\s+/)[0];
      if (first.replace(/^.*\//, "") !== "kubectl") fail("invalid", `line ${i + 1}: expected a \`kubectl port-forward\` command, found \`${first}\`; nothing was imported`, "text");
      let f: Forward;
      try {
        f = this.parseKubectl(`kubectl${line.slice(first.length)}`);
      } catch (e) {
        fail("invalid", `line ${i + 1}: ${(e as AppError).message}; nothing was imported`, "text");
      }
      const name = unique(f.name, inText);
      entries.push({ wanted: f.name, renamed: name !== f.name ? "paste" : null, notes: [] });
      if (name !== f.name) renamed.push([f.name, name]);
      f.name = name;
      forwards.push(f);
    });
    if (forwards.length === 0) fail("invalid", "no forwards found; nothing was imported", "text");
    const current = this.currentContext();
    forwards.forEach((f, i) => {
      if (f.context != null || !current) return;
      f.context = current;
      const note = `no context given; saved with \`${current}\`, the current context now, so that switching kubectl's context does not move it`;
      notes.push(`${f.name}: ${note}`);
      entries[i].notes.push(note);
    });
    const taken = new Set(this.config.forwards.map((f) => f.name));
    forwards.forEach((f, i) => {
      const name = unique(f.name, taken);
      if (name !== f.name) {
        renamed.push([f.name, name]);
        entries[i].renamed = "config";
      }
      f.name = name;
    });
    // The config joined is validated as a whole: a local port used twice fails the import.
    const all = [...this.config.forwards, ...forwards];
    all.forEach((f, i) => {
      const other = f.local_port !== 0 && all.slice(0, i).find((x) => x.local_port === f.local_port && (x.bind ?? "127.0.0.1") === (f.bind ?? "127.0.0.1"));
      if (other) fail("invalid", `forward "${f.name}": local port ${f.local_port} is used by "${other.name}" as well`, `forwards[${i}].local_port`);
    });
    const res: ImportResult = {
      added: forwards.map((f) => f.name),
      replaced: [],
      // Each entry's notes and rename are in its entry; no note here is about no entry.
      warnings: [],
      entries: forwards.map((f, i) => ({ forward: clone(f), ...entries[i] })),
    };
    if (!dryRun) {
      this.config.forwards.push(...forwards);
      this.emitState();
      for (const f of forwards) this.start(f.name);
    }
    return res;
  }
}
