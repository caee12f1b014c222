// What an import adds, entry by entry, from import_config's report (unit tested in
// imports.test.ts).
//
// The shell's report (ImportReport in src-tauri/src/app.rs) gives the names added and its
// remarks as sentences: per-entry notes ("echo: no context given; …") and one sentence per
// rename ("echo is taken; imported as echo-2"), whether the name was taken by a saved forward
// or by an earlier entry of the same text. The preview reads those into entries, telling the
// two kinds of rename apart by whether a saved forward has the name. What it cannot show
// without more from the shell (each entry's target, port and local port) comes with the
// proposed `entries` field (`ImportEntry`, types.ts); a report that has it is used as it is.

import type { Forward, ImportResult } from "./types";

export type RenameWhy = "config" | "paste";

export type PreviewEntry = {
  /** The name it is imported as. */
  name: string;
  /** The forward as it will be saved, when the shell says (the proposed `entries`). */
  forward: Forward | null;
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

/** The shell's sentence for a rename (`Imported::renamed` as app.rs words it). */
const RENAMED = /^(\S+) is taken; imported as (\S+)$/;
/** A note about one forward: `name: what`. A `line 3: …` note is about no one entry. */
const ABOUT = /^([^\s:]+): (.+)$/s;

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

/**
 * The entries of an import report. `saved` are the names of the forwards saved before the
 * import (a name taken by one of them is a clash; one taken by an earlier entry of the same
 * text is only a rename within it).
 */
export function importPreview(r: ImportResult, saved: Iterable<string>): ImportPreview {
  if (r.entries) {
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
  const savedNames = new Set(saved);
  const entries: PreviewEntry[] = r.added.map((name) => ({ name, forward: null, rename: null, notes: [] }));
  const byName = new Map(entries.map((e) => [e.name, e]));
  const notes: string[] = [];
  const renames: { from: string; to: string }[] = [];
  const remarks: string[] = [];
  for (const w of r.warnings) {
    const m = RENAMED.exec(w.trim());
    if (m) renames.push({ from: m[1], to: m[2] });
    else remarks.push(w);
  }
  // A name is first made unique within the text, then against the saved forwards: one entry
  // may be reported twice, under the same reason.
  for (const { from, to } of renames) {
    const why: RenameWhy = savedNames.has(from) ? "config" : "paste";
    const e = byName.get(to);
    if (e && !e.rename) e.rename = { from, why };
    else if (!e || e.rename!.from !== from) notes.push(`${from} is imported as ${to}: ${renameReason(from, why)}.`);
  }
  // Notes name the entry as the text did, which may have been renamed since.
  const entryFor = (subject: string): PreviewEntry | undefined =>
    byName.get(subject) ?? renames.filter((x) => x.from === subject).map((x) => byName.get(x.to)).find((e) => !!e);
  for (const w of remarks) {
    const m = ABOUT.exec(w.trim());
    const e = m ? entryFor(m[1]) : undefined;
    if (m && e) e.notes.push(sentence(m[2]));
    else notes.push(sentence(w));
  }
  return { entries, replaced: r.replaced, notes };
}
