// View state that is not the shell's: filter, sort order, open dialog, selected forward,
// theme. The sort, the state filter and the favourites-only switch are also kept in the
// app's preferences (`view`), so the list opens as it was left.

import type { Filter, SortKey } from "./view";
import type { Forward, Profile, Theme } from "./types";

export type Dialog =
  | { kind: "forward"; original: string | null; initial: Forward | null; quickLine?: string; cluster?: ClusterPlace }
  | { kind: "profile"; original: Profile | null }
  | { kind: "settings" }
  | { kind: "import" }
  | { kind: "export" }
  | null;

/** Where the add dialog's "From the cluster" section looks when it opens on it (null: the
 * current context, the context's namespace). */
export type ClusterPlace = { context: string | null; namespace: string | null };

export type Confirm = {
  title: string;
  message: string;
  confirmLabel: string;
  /** The label of the button that keeps things as they are; "Cancel" when absent. */
  cancelLabel?: string;
  run: () => Promise<unknown> | unknown;
} | null;

export class UiStore {
  filter = $state<Filter>({ text: "", state: "all" });
  /** The list's order. */
  sort = $state<SortKey>("saved");
  /** Only starred forwards. */
  favouritesOnly = $state(false);
  dialog = $state<Dialog>(null);
  confirm = $state<Confirm>(null);
  selected = $state<string | null>(null);
  /** A rename on its way, so the details panel follows the forward to its new name. */
  renamed = $state<{ from: string; to: string } | null>(null);
  anyModal = $derived(this.dialog !== null || this.confirm !== null);
  filtering = $derived(this.filter.text.trim() !== "" || this.filter.state !== "all" || this.favouritesOnly);

  openAdd(initial: Forward | null = null, quickLine?: string): void {
    this.dialog = { kind: "forward", original: null, initial, quickLine };
  }
  /** Opens the add dialog on what the cluster declares in a namespace. */
  openFromCluster(place: ClusterPlace): void {
    this.dialog = { kind: "forward", original: null, initial: null, cluster: place };
  }
  openEdit(f: Forward): void {
    this.dialog = { kind: "forward", original: f.name, initial: f };
  }
  close(): void {
    this.dialog = null;
  }
  /** Closes the open dialog (Esc, its close button, Cancel); one with unsaved changes first
   * asks whether to discard them. */
  requestClose(unsaved: boolean): void {
    if (!unsaved) {
      this.close();
      return;
    }
    if (this.confirm) return;
    this.confirm = {
      title: "Discard changes?",
      message: "What you entered in this dialog has not been saved.",
      confirmLabel: "Discard",
      cancelLabel: "Keep editing",
      run: () => this.close(),
    };
  }
}

/** Sets `data-theme` on <html> to "light" or "dark"; "system" follows prefers-color-scheme
 * and keeps following it. */
export class ThemeController {
  #theme: Theme = "system";
  #mq: MediaQueryList | null = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;

  constructor() {
    this.#mq?.addEventListener("change", () => {
      if (this.#theme === "system") this.#paint();
    });
  }

  set(theme: Theme): void {
    this.#theme = theme;
    this.#paint();
  }

  #paint(): void {
    const dark = this.#theme === "dark" || (this.#theme === "system" && !!this.#mq?.matches);
    const root = document.documentElement;
    root.dataset.theme = dark ? "dark" : "light";
    root.dataset.themeSetting = this.#theme;
  }
}
