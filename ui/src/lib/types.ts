// Shapes of the IPC contract in docs/app-ipc.md. Config field names are snake_case
// as in the config file; command argument keys are camelCase.

export type ErrorCode = "invalid" | "not_found" | "conflict" | "cluster" | "store" | "engine";

export type AppError = { code: ErrorCode; message: string; field?: string | null };

export type Kind = "service" | "deployment" | "statefulset" | "pod";
export const KINDS: Kind[] = ["service", "deployment", "statefulset", "pod"];

export type HealthKind = "tunnel" | "tcp" | "http" | "none";
export type Pick = "sticky" | "round-robin" | "random";

export type HealthSpec = {
  kind: HealthKind;
  interval: string;
  fast_interval: string;
  down_interval?: string;
  idle_interval?: string;
  timeout: string;
  rise: number;
  fall: number;
  http: { path: string; expect_status: string; body_regex?: string | null; host?: string | null };
  max_idle?: string | null;
  max_age?: string | null;
};

export type Forward = {
  name: string;
  context?: string | null;
  namespace?: string | null;
  target: string;
  port: number | string;
  /** For a service: `port` is the pods' port (imported from kftray or kportal), not the service's. */
  pod_port?: boolean;
  local_port: number;
  bind?: string;
  pick?: Pick;
  alias?: string | null;
  health?: HealthSpec;
  enabled?: boolean;
};

export type Profile = { name: string; forwards: string[] };

export type Config = { version: 1; forwards: Forward[]; profiles?: Profile[] };

export type Theme = "system" | "light" | "dark";
export type GroupBy = "profile" | "context";

export type Settings = {
  theme: Theme;
  start_at_login: boolean;
  notifications: boolean;
  close_to_tray: boolean;
  kubeconfig_paths: string[];
  group_by: GroupBy;
};

export type ForwardState = "disabled" | "starting" | "active" | "degraded" | "reconnecting" | "error";
export const FORWARD_STATES: ForwardState[] = [
  "active",
  "starting",
  "degraded",
  "reconnecting",
  "error",
  "disabled",
];
export type HealthState = "unknown" | "up" | "down" | "paused" | "disabled";

export type Transition = { from: HealthState; to: HealthState; at_ms: number; code: string; detail: string };

export type ForwardStatus = {
  forward: string;
  state: ForwardState;
  target: string;
  context: string | null;
  namespace: string | null;
  pod: string | null;
  local: string | null;
  error: string | null;
  last_error: string | null;
  connections: number;
  total_connections: number;
  bytes_out: number;
  bytes_in: number;
  since_ms: number;
  health: HealthState;
  latency_ms: number | null;
  detail: string | null;
  last_probe_ms: number | null;
  history: Transition[];
  credential_plugin: string | null;
  url: string | null;
  alias: string | null;
  alias_warning: string | null;
  exposed: boolean;
  /** The local port is taken by another program (`error` names it where the system tells). */
  port_in_use: boolean;
};

export type Snapshot = { generation: number; forwards: ForwardStatus[] };

export type KubeconfigInfo = { found: boolean; paths: string[]; message: string | null };

export type AppState = {
  config: Config;
  settings: Settings;
  snapshot: Snapshot;
  banner: string | null;
  kubeconfig: KubeconfigInfo;
  demo: boolean;
  store_path: string;
  /** Whether the desktop shows tray icons; without one, closing the window quits Ferry. */
  tray: boolean;
};

export type FieldProblem = { field: string; message: string };
export type Contexts = { contexts: string[]; current: string | null };
export type TargetPort = { port: number; name: string | null; protocol: string };
export type TargetInfo = { name: string; ports: TargetPort[] };
export type TestResult = { ok: boolean; ms: number; message: string };
export type LogLine = { at_ms: number; level: string; message: string };
export type ImportFormat = "auto" | "kubectl" | "kftray" | "kportal" | "ferry";
export type ExportFormat = "ferry" | "kftray";
/** export_config's answer: the text to save or share, and what could not be carried over. */
export type ExportResult = { text: string; notes: string[] };
export type ImportResult = {
  added: string[];
  replaced: string[];
  warnings: string[];
  /** Not sent by the shell yet (see imports.ts): one per forward in `added`, in that order. */
  entries?: ImportEntry[];
};
/** One imported forward, as the shell would describe it (proposed; see imports.ts). */
export type ImportEntry = {
  /** As it will be saved: the name given, its context pinned, a pod port settled. */
  forward: Forward;
  /** The name the text asked for. */
  wanted: string;
  /** Why the name differs from `wanted`: a saved forward has it ("config"), or an earlier
   * entry of the same text ("paste"); null when it does not. */
  renamed: "config" | "paste" | null;
  /** This entry's notes (what was not carried over, what was assumed), without its name. */
  notes: string[];
};
