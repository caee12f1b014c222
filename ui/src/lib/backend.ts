// The one way the UI reaches the shell: the commands and events of docs/app-ipc.md.
// Components use the `Backend` interface; `tauriBackend` implements it over Tauri's IPC.
// Tests and `npm run dev` in a plain browser install an in-memory fake behind the same
// IPC (see tests/fake), so this file is exercised as it is in the app.

import { getVersion } from "@tauri-apps/api/app";
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AppError,
  AppState,
  Checked,
  Contexts,
  DiscoverReport,
  ErrorCode,
  ExchangeBatch,
  Exchanges,
  ExportFormat,
  HarExport,
  Replayed,
  ExportResult,
  FieldProblem,
  Forward,
  ImportFormat,
  ImportResult,
  Kind,
  LogLine,
  Prefs,
  Profile,
  Settings,
  Snapshot,
  TargetInfo,
  TestResult,
  UpdateInfo,
} from "./types";
import { wireProblems } from "./wire";

export const STATE_EVENT = "ferry://state";
export const SNAPSHOT_EVENT = "ferry://snapshot";
export const UPDATE_EVENT = "ferry://update";
export const EXCHANGE_EVENT = "ferry://exchange";

export type Unlisten = () => void;

export interface Backend {
  getState(): Promise<AppState>;
  setEnabled(name: string, enabled: boolean): Promise<void>;
  setAllEnabled(names: string[], enabled: boolean): Promise<void>;
  setProfileActive(name: string, active: boolean): Promise<void>;
  saveForward(original: string | null, forward: Forward): Promise<void>;
  deleteForward(name: string): Promise<void>;
  validateForward(original: string | null, forward: Forward): Promise<FieldProblem[]>;
  parseKubectl(line: string): Promise<Forward>;
  suggestLocalPort(port: number): Promise<number>;
  listContexts(): Promise<Contexts>;
  listNamespaces(context: string | null): Promise<string[]>;
  listTargets(context: string | null, namespace: string | null, kind: Kind): Promise<TargetInfo[]>;
  /** What the user may not do that a forward to a `kind` in the namespace needs, as one sentence; null when all is granted or the cluster cannot say. */
  checkAccess(context: string | null, namespace: string | null, kind: Kind): Promise<string | null>;
  /** What the cluster's objects declare (Ferry's, kftray's and k9s's annotations) in a
   * namespace (null: the context's own) or in every one, each with the saved forward that
   * does it; the others offered with a name and a local port no saved forward has, to add
   * through saveForward as they are. */
  discoverForwards(context: string | null, namespace: string | null, allNamespaces: boolean): Promise<DiscoverReport>;
  /** Ferry's version (the workspace's, as `ferry --version` and the packages say). */
  appVersion(): Promise<string>;
  testConnection(name: string): Promise<TestResult>;
  /** Checks a forward again now: its pods resolved and its health probed at once. */
  retryForward(name: string): Promise<void>;
  kubectlCommand(name: string): Promise<string>;
  forwardLog(name: string): Promise<LogLine[]>;
  saveProfile(original: string | null, profile: Profile): Promise<void>;
  deleteProfile(name: string): Promise<void>;
  saveSettings(settings: Settings): Promise<void>;
  /** The window's own preferences: theme, grouping, the list's last view. */
  savePrefs(prefs: Prefs): Promise<void>;
  /** Stars or unstars a forward (an app preference; the CLI's config is not touched). */
  setFavourite(name: string, favourite: boolean): Promise<void>;
  /** Hides the banner, and that banner for good. */
  dismissBanner(): Promise<void>;
  startDemo(): Promise<void>;
  importConfig(text: string, format: ImportFormat, dryRun: boolean): Promise<ImportResult>;
  /** The saved forwards and profiles as Ferry's YAML, or kftray's JSON (services only). */
  exportConfig(format: ExportFormat): Promise<ExportResult>;
  openUrl(url: string): Promise<void>;
  /** Stops every forward and exits the app. */
  quit(): Promise<void>;
  /** Asks the update server now: offered, current, or unreachable (never an error for that). */
  checkUpdate(): Promise<Checked>;
  /** The newer release found by the last check, if any (no request). */
  offeredUpdate(): Promise<UpdateInfo | null>;
  /** Downloads the release on offer, checks its signature, installs it and restarts Ferry.
   * Refused (`conflict`, field `confirm_cut`) while forwards are up, unless `confirmCut`. */
  installUpdate(confirmCut: boolean): Promise<void>;
  /** The HTTP exchanges a forward's inspection keeps (`invalid` on `inspect` when it has none). */
  inspectExchanges(forward: string): Promise<Exchanges>;
  /** The same, and every later exchange of the forward as `onExchange` batches until
   * unfollowExchanges (one forward at a time). */
  followExchanges(forward: string): Promise<Exchanges>;
  unfollowExchanges(): Promise<void>;
  /** Sends a recorded request again through the forward; the answer. */
  replayExchange(forward: string, id: number): Promise<Replayed>;
  /** A recorded request as a curl line through the local port. */
  exchangeCurl(forward: string, id: number): Promise<string>;
  /** A HAR 1.2 document of the kept exchanges (all, or `ids`), to save. */
  exportHar(forward: string, ids: number[] | null): Promise<HarExport>;
  clearExchanges(forward: string): Promise<void>;
  onExchange(handler: (batch: ExchangeBatch) => void): Promise<Unlisten>;
  onState(handler: (state: AppState) => void): Promise<Unlisten>;
  onSnapshot(handler: (snapshot: Snapshot) => void): Promise<Unlisten>;
  /** A newer release was found (at start, daily, or by checkUpdate). */
  onUpdate(handler: (update: UpdateInfo) => void): Promise<Unlisten>;
}

const CODES: ErrorCode[] = ["invalid", "not_found", "conflict", "cluster", "store", "engine"];

/** Turns whatever a rejected command gave into an `AppError`. The shell always sends
 * `{code, message, field?}`; anything else (a string from Tauri itself, an exception)
 * is reported as `engine` with its text. */
export function toAppError(e: unknown): AppError {
  if (e && typeof e === "object" && "message" in e) {
    const o = e as { code?: unknown; message?: unknown; field?: unknown };
    const code = typeof o.code === "string" && (CODES as string[]).includes(o.code) ? (o.code as ErrorCode) : "engine";
    return {
      code,
      message: String(o.message ?? ""),
      field: typeof o.field === "string" ? o.field : null,
    };
  }
  if (typeof e === "string") return { code: "engine", message: e, field: null };
  return { code: "engine", message: String(e), field: null };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toAppError(e);
  }
}

/** Refuses, with the field and a sentence, a forward the shell could not deserialize: the
 * shell would answer with Tauri's own text and no field (see wire.ts). */
async function sendable(forward: Forward): Promise<void> {
  const p = wireProblems(forward)[0];
  if (p) throw { code: "invalid", message: p.message, field: p.field } satisfies AppError;
}

async function follow<T>(event: string, handler: (payload: T) => void): Promise<Unlisten> {
  const un: UnlistenFn = await listen<T>(event, (e) => handler(e.payload));
  return un;
}

export const tauriBackend: Backend = {
  getState: () => call("get_state"),
  setEnabled: (name, enabled) => call("set_enabled", { name, enabled }),
  setAllEnabled: (names, enabled) => call("set_all_enabled", { names, enabled }),
  setProfileActive: (name, active) => call("set_profile_active", { name, active }),
  saveForward: (original, forward) => sendable(forward).then(() => call("save_forward", { original, forward })),
  deleteForward: (name) => call("delete_forward", { name }),
  validateForward: (original, forward) => sendable(forward).then(() => call("validate_forward", { original, forward })),
  parseKubectl: (line) => call("parse_kubectl", { line }),
  suggestLocalPort: (port) => call("suggest_local_port", { port }),
  listContexts: () => call("list_contexts"),
  listNamespaces: (context) => call("list_namespaces", { context }),
  listTargets: (context, namespace, kind) => call("list_targets", { context, namespace, kind }),
  checkAccess: (context, namespace, kind) => call("check_access", { context, namespace, kind }),
  discoverForwards: (context, namespace, allNamespaces) => call("discover_forwards", { context, namespace, allNamespaces }),
  appVersion: () => getVersion(),
  testConnection: (name) => call("test_connection", { name }),
  retryForward: (name) => call("retry_forward", { name }),
  kubectlCommand: (name) => call("kubectl_command", { name }),
  forwardLog: (name) => call("forward_log", { name }),
  saveProfile: (original, profile) => call("save_profile", { original, profile }),
  deleteProfile: (name) => call("delete_profile", { name }),
  saveSettings: (settings) => call("save_settings", { settings }),
  savePrefs: (prefs) => call("save_prefs", { prefs }),
  setFavourite: (name, favourite) => call("set_favourite", { name, favourite }),
  dismissBanner: () => call("dismiss_banner"),
  startDemo: () => call("start_demo"),
  importConfig: (text, format, dryRun) => call("import_config", { text, format, dryRun }),
  exportConfig: (format) => call("export_config", { format }),
  openUrl: (url) => call("open_url", { url }),
  quit: () => call("quit"),
  checkUpdate: () => call("check_update"),
  offeredUpdate: () => call("offered_update"),
  installUpdate: (confirmCut) => call("install_update", { confirmCut }),
  inspectExchanges: (forward) => call("inspect_exchanges", { forward }),
  followExchanges: (forward) => call("follow_exchanges", { forward }),
  unfollowExchanges: () => call("unfollow_exchanges"),
  replayExchange: (forward, id) => call("replay_exchange", { forward, id }),
  exchangeCurl: (forward, id) => call("exchange_curl", { forward, id }),
  exportHar: (forward, ids) => call("export_har", ids ? { forward, ids } : { forward }),
  clearExchanges: (forward) => call("clear_exchanges", { forward }),
  onExchange: (handler) => follow<ExchangeBatch>(EXCHANGE_EVENT, handler),
  onState: (handler) => follow<AppState>(STATE_EVENT, handler),
  onSnapshot: (handler) => follow<Snapshot>(SNAPSHOT_EVENT, handler),
  onUpdate: (handler) => follow<UpdateInfo>(UPDATE_EVENT, handler),
};
