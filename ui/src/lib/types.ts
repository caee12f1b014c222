// Shapes of the IPC contract in docs/app-ipc.md. Config field names are snake_case
// as in the config file; command argument keys are camelCase.

// The shapes the shell sends and takes are generated from its Rust types (generated.ts,
// checked in CI); this file adds the UI's own names and constants.
import type { ExportReport, ImportReport, ProbeKind } from "./generated";

export type {
  AppError,
  AppState,
  Checked,
  Config,
  Contexts,
  DeclaredForward,
  DeclaredNew,
  DeclaredSource,
  DiscoverReport,
  ErrorCode,
  Exchange,
  ExchangeBatch,
  Exchanges,
  HarExport,
  Header,
  Message,
  Replayed,
  Timings,
  ExportFormat,
  FieldProblem,
  Forward,
  ForwardState,
  ForwardStatus,
  GroupBy,
  HealthSpec,
  HealthState,
  ImportEntry,
  ImportFormat,
  KubeconfigInfo,
  LogLine,
  Pick,
  Prefs,
  Profile,
  Settings,
  Snapshot,
  SortKey,
  StateFilter,
  TargetInfo,
  TargetPort,
  TestResult,
  Theme,
  Transition,
  UpdateInfo,
  View,
} from "./generated";
import type { ForwardState } from "./generated";

export type Kind = "service" | "deployment" | "statefulset" | "pod";
export const KINDS: Kind[] = ["service", "deployment", "statefulset", "pod"];

export type HealthKind = ProbeKind;

export const FORWARD_STATES: ForwardState[] = [
  "active",
  "starting",
  "degraded",
  "reconnecting",
  "error",
  "disabled",
];

/** export_config's answer: the text to save or share, and what could not be carried over. */
export type ExportResult = ExportReport;
/** import_config's answer, with one entry per forward added. */
export type ImportResult = ImportReport;
