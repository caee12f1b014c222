// Files in and out of the window (unit tested in files.test.ts): a file chosen in the
// Import dialog read into its text box, and the names and types Export saves under.

import type { ExportFormat, ImportFormat } from "./types";

/** The largest file the Import dialog reads: configs and exports are a few KiB. */
export const MAX_IMPORT_BYTES = 1024 * 1024;

/** What the file picker offers first; any other file can still be chosen. */
export const IMPORT_ACCEPT = ".json,.yaml,.yml,.sh,.txt,*/*";

/** The part of a `File` the dialog reads. */
export type ChosenFile = Pick<File, "name" | "size" | "text">;

export type ReadFile = { ok: true; name: string; text: string } | { ok: false; error: string };

/** Reads a chosen file as text; a file larger than `MAX_IMPORT_BYTES` is not read. */
export async function readImportFile(file: ChosenFile): Promise<ReadFile> {
  if (file.size > MAX_IMPORT_BYTES) return { ok: false, error: `${file.name} is larger than 1 MiB, the most Ferry reads.` };
  try {
    return { ok: true, name: file.name, text: await file.text() };
  } catch {
    // Browsers give no reason worth showing (permissions, a file gone since it was chosen).
    return { ok: false, error: `${file.name} could not be read.` };
  }
}

/**
 * The import format a file's name makes clear, else "auto" (the shell then looks at the
 * text). A name with "kportal" in it is kportal's; a `.json` file is kftray's export unless
 * it is a Ferry config, which the shell's own detection recognises the same way (an object
 * with "forwards"), or does not look like JSON at all.
 */
export function formatForFile(name: string, text: string): ImportFormat {
  const n = name.toLowerCase();
  if (n.includes("kportal")) return "kportal";
  if (n.endsWith(".json")) {
    const t = text.trimStart();
    if (t.startsWith("{") && t.includes('"forwards"')) return "auto";
    if (t.startsWith("[") || t.startsWith("{")) return "kftray";
  }
  return "auto";
}

/** The name Export saves a format under. */
export function exportFileName(format: ExportFormat): string {
  return format === "kftray" ? "ferry-forwards.kftray.json" : "ferry-forwards.yaml";
}

/** The media type of an export, for its download link. */
export function exportMediaType(format: ExportFormat): string {
  return format === "kftray" ? "application/json" : "application/yaml";
}
