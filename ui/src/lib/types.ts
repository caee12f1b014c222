// Shapes of the IPC contract in docs/app-ipc.md. Config field names are snake_case
// as in the config file; command argument keys are camelCase.

// The shapes the shell sends and takes are generated from its Rust types (generated.ts,
// checked in CI); this file adds the UI's own names and constants.
import type { ExportReport, ImportReport, ProbeKind } from "./generated";

export type {
  AppError,
  AppState,
  Config,
  Contexts,
  ErrorCode,
  ExportFormat,
  FieldProblem,
  Forward,
  ForwardState,
  ForwardStatus,
  GroupBy,
  HealthSpec,
  HealthState,
  ImportFormat,
  KubeconfigInfo,
  LogLine,
  Pick,
  Profile,
  Settings,
  Snapshot,
  TargetInfo,
  TargetPort,
  TestResult,
  Theme,
  Transition,
} from "./generated";
import type { Forward, ForwardState } from "./generated";

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
export type ImportResult = ImportReport & {
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
