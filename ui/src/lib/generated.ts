// Generated from the shell's Rust types by `src-tauri/src/contract.rs`; do not edit.
// Rewrite with: FERRY_WRITE_TYPES=1 cargo nextest run -p ferry-app --test contract

export type Config = { 
/**
 * The format version; must be [`CONFIG_VERSION`].
 */
version: number, 
/**
 * The forwards, in config order. Their names are unique.
 */
forwards: Array<Forward>, 
/**
 * Named groups of forwards, in config order. Their names are unique.
 */
profiles?: Array<Profile>, };

export type Forward = { 
/**
 * The forward's unique name, which is also its stable id (a DNS-label-like word).
 */
name: string, 
/**
 * The kubeconfig context to use; `None` means the kubeconfig's current context.
 */
context?: string | null, 
/**
 * The namespace of the target; `None` means the context's namespace, else `default`.
 */
namespace?: string | null, 
/**
 * The object to forward to.
 */
target: string, 
/**
 * The remote port on the target, by number or by name. On a service it is the
 * service's port (as `kubectl port-forward svc/…` means it), unless `pod_port` says
 * it is the pods'.
 */
port: number | string, 
/**
 * For a service: `port` is the port number the service's pods listen on, not a
 * service port, as kftray and kportal mean it (their imports set this when the
 * cluster could not be asked which service port leads there). Connections go to
 * that port of the service's ready endpoints. Other targets' ports always are the
 * pods', so there it changes nothing. Defaults to `false`.
 */
pod_port?: boolean, 
/**
 * The local port to listen on; 0 lets the system pick a free one.
 */
local_port: number, 
/**
 * The local address to listen on; defaults to `127.0.0.1`.
 */
bind?: string, 
/**
 * How to choose a pod when the target has several; defaults to [`Pick::Sticky`].
 */
pick?: Pick, 
/**
 * A name published as `<alias>.local` over mDNS while the forward runs (opt-in).
 */
alias?: string | null, 
/**
 * How the forward is checked; defaults to a `tunnel` check every 5 s.
 */
health?: HealthSpec, 
/**
 * Record the forward's HTTP/1.x exchanges as they pass (see [`Inspect`]); off when
 * absent.
 */
inspect?: "http" | { body_kib?: number, redact?: Array<string> }, 
/**
 * Whether the forward runs; defaults to `true`.
 */
enabled?: boolean, };

export type Profile = { 
/**
 * The profile's unique name (same rules as forward names).
 */
name: string, 
/**
 * The names of the forwards in the profile, in the order given.
 */
forwards: Array<string>, };

export type Pick = "sticky" | "round-robin" | "random";

export type HealthSpec = { kind: ProbeKind, 
/**
 * The steady-state period.
 */
interval: string, 
/**
 * The period while counting towards a change.
 */
fast_interval: string, 
/**
 * The period while Down; `interval` when unset.
 */
down_interval?: string | null, 
/**
 * The period while Up and the forward has carried no connection for a minute
 * (`crate::health::IDLE_AFTER`); never shorter than `interval`. Idle forwards still
 * see pod changes at once (the resolver watches them); this spares the API server a
 * tunnel every few seconds for forwards nobody uses.
 */
idle_interval?: string, 
/**
 * How long one probe may take.
 */
timeout: string, 
/**
 * Consecutive passes to go Up.
 */
rise: number, 
/**
 * Consecutive failures to go Down.
 */
fall: number, http: HttpCheck, 
/**
 * Close local connections idle longer than this.
 */
max_idle?: string | null, 
/**
 * Close local connections older than this.
 */
max_age?: string | null, };

export type ProbeKind = "tunnel" | "tcp" | "http" | "none";

export type HttpCheck = { 
/**
 * The request path (`/healthz`).
 */
path: string, 
/**
 * The status codes that pass (`200-399`).
 */
expect_status: string, 
/**
 * A regular expression the body must match, if any.
 */
body_regex?: string | null, 
/**
 * The `Host` header; the target's name when unset.
 */
host?: string | null, };

export type Snapshot = { 
/**
 * Increases with every published snapshot.
 */
generation: number, 
/**
 * Sorted by forward name.
 */
forwards: Array<ForwardStatus>, };

export type ForwardStatus = { 
/**
 * The forward's name, its id.
 */
forward: string, state: ForwardState, 
/**
 * `service/echo:80`.
 */
target: string, 
/**
 * The kubeconfig context in use, once known.
 */
context: string | null, namespace: string | null, 
/**
 * The pod new connections go to, when one is ready.
 */
pod: string | null, 
/**
 * The bound local address (with the real port when the config says 0).
 */
local: string | null, 
/**
 * What is wrong now, as one sentence; `None` when nothing is.
 */
error: string | null, 
/**
 * The most recent problem, kept after recovery so the user can see what happened.
 */
last_error: string | null, 
/**
 * Open local connections.
 */
connections: number, 
/**
 * Local connections accepted since the forward started.
 */
total_connections: number, 
/**
 * Bytes from local clients to the pod.
 */
bytes_out: number, 
/**
 * Bytes from the pod to local clients.
 */
bytes_in: number, 
/**
 * When the forward entered its state (ms since the epoch).
 */
since_ms: number, 
/**
 * The health checks' verdict.
 */
health: HealthState, 
/**
 * The last probe's latency.
 */
latency_ms: number | null, 
/**
 * The last probe's finding, as one sentence.
 */
detail: string | null, 
/**
 * When the last probe finished (ms since the epoch).
 */
last_probe_ms: number | null, 
/**
 * Health transitions, oldest first (bounded).
 */
history: Array<Transition>, 
/**
 * The credential plugin the forward's context runs, and where it was found.
 */
credential_plugin: string | null, 
/**
 * The forward's address as a URL (`http://web.local:8080`, `tcp://127.0.0.1:5432`).
 */
url: string | null, 
/**
 * The `.local` name published for the forward, if it has an alias.
 */
alias: string | null, 
/**
 * Why the alias is not published (the forward works all the same).
 */
alias_warning: string | null, 
/**
 * Whether the forward listens beyond this machine (a non-loopback bind).
 */
exposed: boolean, 
/**
 * The local address is taken by another socket: choosing another local port fixes
 * it. (`error` says by which process, where the system tells.)
 */
port_in_use: boolean, 
/**
 * Connections the cluster closed after a quiet spell, the last one's figures.
 */
idle_closed?: IdleClosed, };

export type ForwardState = "disabled" | "starting" | "active" | "degraded" | "reconnecting" | "error";

export type HealthState = "unknown" | "up" | "down" | "paused" | "disabled";

export type Transition = { from: HealthState, to: HealthState, 
/**
 * Milliseconds since the Unix epoch.
 */
at_ms: number, 
/**
 * The code of the probe that caused it (`pause`, `resume` for the user's doing).
 */
code: string, detail: string, };

export type IdleClosed = { 
/**
 * How many so far.
 */
count: number, 
/**
 * When the last one was closed (ms since the epoch).
 */
at_ms: number, 
/**
 * How long nothing had moved on it either way.
 */
quiet_ms: number, };

export type AppState = { config: Config, settings: Settings, 
/**
 * The app's own preferences (theme, grouping, the list's last view).
 */
prefs: Prefs, 
/**
 * The starred forwards (each one in `config`), in the order they were starred.
 */
favourites: Array<string>, snapshot: Snapshot, banner: string | null, kubeconfig: KubeconfigInfo, demo: boolean, store_path: string, 
/**
 * Whether the desktop shows tray icons; without one, closing the window quits.
 */
tray: boolean, 
/**
 * Per namespace the saved forwards use, the forwards its objects declare that none of
 * the saved ones does (the Add button's badge); empty until the cluster was asked.
 */
declared: Array<DeclaredNew>, };

export type KubeconfigInfo = { found: boolean, paths: Array<string>, message: string | null, };

export type Settings = { 
/**
 * Default: off (the user opts in).
 */
start_at_login: boolean, 
/**
 * Desktop notifications when a forward goes down or recovers. Default: on.
 */
notifications: boolean, 
/**
 * Closing the window keeps Ferry in the tray. Default: on, as tray apps do.
 */
close_to_tray: boolean, 
/**
 * Extra kubeconfig files, read after `KUBECONFIG` (or `~/.kube/config`).
 */
kubeconfig_paths: Array<string>, };

export type Prefs = { 
/**
 * Default: follow the system.
 */
theme: Theme, 
/**
 * How the main view groups forwards.
 */
group_by: GroupBy, 
/**
 * The list's last sort and filters.
 */
view: View, 
/**
 * Look for a newer release when the window opens and once a day while it is open.
 * Default: on.
 */
check_updates: boolean, };

export type Theme = "system" | "light" | "dark";

export type GroupBy = "profile" | "context";

export type View = { sort: SortKey, state: StateFilter, 
/**
 * Only starred forwards.
 */
favourites_only: boolean, };

export type SortKey = "saved" | "name" | "state" | "port";

export type StateFilter = "all" | "problems" | "active" | "starting" | "degraded" | "reconnecting" | "error" | "disabled";

export type FieldProblem = { field: string, message: string, 
/**
 * `invalid`, or `conflict` when another forward has the name or the port.
 */
code: ErrorCode, };

export type Contexts = { contexts: Array<string>, current: string | null, };

export type TargetInfo = { name: string, ports: Array<TargetPort>, };

export type TargetPort = { port: number, name: string | null, protocol: string, };

export type TestResult = { ok: boolean, ms: number, message: string, };

export type DiscoverReport = { 
/**
 * The context asked (the current one when none was named).
 */
context: string, 
/**
 * By namespace, then object.
 */
declared: Array<DeclaredForward>, 
/**
 * Annotations that could not be read and kinds that could not be listed, as sentences.
 */
problems: Array<string>, };

export type DeclaredForward = { 
/**
 * The name the declaration gives it.
 */
name: string, 
/**
 * The object it is declared on, `KIND/NAME` (`service/web`).
 */
object: string, namespace: string, source: DeclaredSource, 
/**
 * What it is for, in the words of whoever declared it.
 */
description: string | null, 
/**
 * What did not carry over in reading it, and what was changed to offer it (a name or a
 * local port taken).
 */
notes: Array<string>, 
/**
 * The saved forward that already does this (same context, namespace, target and
 * port), if any.
 */
have: string | null, 
/**
 * The forward to save as it is: when the user does not have it, with a name and a
 * local port no saved forward has.
 */
forward: Forward, };

export type DeclaredSource = "Ferry" | "kftray" | "k9s";

export type DeclaredNew = { context: string, namespace: string, count: number, };

export type ImportFormat = "auto" | "kubectl" | "kftray" | "kportal" | "ferry";

export type ImportReport = { added: Array<string>, replaced: Array<string>, 
/**
 * Remarks about no one entry (`line 3: …`); each entry's own are in `entries`.
 */
warnings: Array<string>, 
/**
 * One per forward in `added`, in that order.
 */
entries: Array<ImportEntry>, };

export type ImportEntry = { 
/**
 * With the name given, its context pinned and a pods' port settled.
 */
forward: Forward, 
/**
 * The name the text asked for.
 */
wanted: string, 
/**
 * Why the name is not `wanted`; `None` when it is.
 */
renamed: RenameReason | null, 
/**
 * This entry's notes, without its name.
 */
notes: Array<string>, };

export type RenameReason = "config" | "paste";

export type ExportFormat = "ferry" | "kftray";

export type ExportReport = { text: string, 
/**
 * What could not be carried over, per forward.
 */
notes: Array<string>, };

export type Exchanges = { exchanges: Array<Exchange>, 
/**
 * "not HTTP: traffic passed through unparsed (…)", once a connection was not HTTP.
 */
passthrough: string | null, };

export type ExchangeBatch = { forward: string, exchanges: Array<Exchange>, 
/**
 * Exchanges that completed but are not in any event: the follower fell behind (ask
 * `inspect_exchanges` again).
 */
missed: number, 
/**
 * The note that some traffic was not HTTP, once it is known.
 */
passthrough: string | null, 
/**
 * The inspection ended (turned off or changed, or the forward stopped): nothing more
 * comes from this follower.
 */
ended: boolean, };

export type Replayed = { 
/**
 * The answer as an exchange: status, reason, headers (secrets redacted as the
 * forward's inspection does), the first [`REPLAY_BODY_CAP`] bytes of the body.
 */
exchange: Exchange, };

export type HarExport = { text: string, 
/**
 * The name to save it under: `ferry-NAME-YYYYMMDD-HHMMSS.har`.
 */
file_name: string, entries: number, };

export type LogLine = { at_ms: number, level: string, message: string, };

export type UpdateInfo = { 
/**
 * The release's version, `X.Y.Z`.
 */
version: string, 
/**
 * The running version.
 */
current_version: string, 
/**
 * The release notes, when the release has any.
 */
notes: string | null, 
/**
 * When it was published (RFC 3339), when the release says.
 */
date: string | null, };

export type Checked = { "outcome": "offered", "update": UpdateInfo } | { "outcome": "current" } | { "outcome": "unreachable" };

export type AppError = { code: ErrorCode, message: string, field?: string | null, };

export type ErrorCode = "invalid" | "not_found" | "conflict" | "cluster" | "store" | "engine";

export type Exchange = { id: number, startedMs: number, method: string, target: string, status: number | null, reason: string | null, durationMs: number | null, timings: Timings | null, request: Message, response: Message | null, interim: Array<number>, upgrade: string | null, incomplete: boolean, };

export type Message = { version: "HTTP/1.0" | "HTTP/1.1", headers: Array<Header>, trailers: Array<Header>, headSize: number, bodySize: number, contentSize: number, bodyBase64: string, truncated: boolean, complete: boolean, };

export type Header = { name: string, value: string, redacted?: boolean, };

export type Timings = { sendMs: number, waitMs: number, receiveMs: number, };
