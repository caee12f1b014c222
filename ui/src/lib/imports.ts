// What an import adds, entry by entry, from import_config's report (unit tested in
// imports.test.ts). The shell sends each entry as it will be saved, the name it asked for,
// why it was renamed ("config": a saved forward has the name; "paste": an earlier entry of
// the same text has it) and its notes; the report's warnings are the notes about no entry.

import type { Forward, ImportResult } from "./types";

export type RenameWhy = "config" | "paste";

export type PreviewEntry = {
  /** The name it is imported as. */
  name: string;
  /** The forward as it will be saved. */
  forward: Forward;
  /** Why it does not have the name it asked for. */
  rename: { from: string; why: RenameWhy } | null;
  /** Its notes, as sentences. */
  notes: string[];
};

export type ImportPreview = {
  entries: PreviewEntry[];
  replaced: string[];
  /** Notes about no one entry (`line 3: --kubeconfig … is not carried over`). */
  notes: string[];
};

function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?)]$/.test(first) ? first : `${first}.`;
}

/** Why a forward got another name than it asked for, in words. */
export function renameReason(from: string, why: RenameWhy): string {
  return why === "config" ? `a saved forward is already named ${from}` : `an earlier entry of this text is also named ${from}`;
}

/** The entries of an import report, with their notes as sentences. */
export function importPreview(r: ImportResult): ImportPreview {
  return {
    entries: r.entries.map((e) => ({
      name: e.forward.name,
      forward: e.forward,
      rename: e.renamed && e.wanted !== e.forward.name ? { from: e.wanted, why: e.renamed } : null,
      notes: e.notes.map(sentence),
    })),
    replaced: r.replaced,
    notes: r.warnings.map(sentence),
  };
}
