// The app's live state: AppState from get_state, then followed through ferry://state and
// ferry://snapshot. Nothing here polls.

import { toAppError, type Backend, type Unlisten } from "./backend";
import type { AppError, AppState, Forward, ForwardStatus, Prefs, Snapshot, UpdateInfo } from "./types";

export type Notice = { id: number; level: "error" | "info"; text: string };

export class AppStore {
  state = $state<AppState | null>(null);
  loadError = $state<AppError | null>(null);
  /** Switch positions asked for and not yet confirmed by a state event. */
  pending = $state<Record<string, boolean>>({});
  /** Stars asked for and not yet confirmed by a state event. */
  starPending = $state<Record<string, boolean>>({});
  notices = $state<Notice[]>([]);
  dismissedBanner = $state<string | null>(null);
  /** A newer Ferry on offer (from the checks the window makes as it opens and daily, or Check now). */
  update = $state<UpdateInfo | null>(null);
  /** The version whose offer the user put off ("Later"): not shown again until a newer one. */
  updateLater = $state<string | null>(null);
  /** An install on its way (download, signature check, install, restart). */
  installing = $state(false);
  /** Why the last install did not go through, in the shell's words. */
  updateError = $state<string | null>(null);
  updateVisible = $derived(!!this.update && this.update.version !== this.updateLater);

  forwards = $derived<Forward[]>(this.state?.config.forwards ?? []);
  profiles = $derived(this.state?.config.profiles ?? []);
  statuses = $derived<ForwardStatus[]>(this.state?.snapshot.forwards ?? []);
  statusByName = $derived(new Map(this.statuses.map((s) => [s.forward, s])));
  bannerVisible = $derived(!!this.state?.banner && this.state.banner !== this.dismissedBanner);
  /** The starred forwards, with the stars on their way. */
  favourites = $derived.by(() => {
    const set = new Set(this.state?.favourites ?? []);
    for (const [name, on] of Object.entries(this.starPending)) {
      if (on) set.add(name);
      else set.delete(name);
    }
    return set;
  });

  #unlisten: Unlisten[] = [];
  #stateSeen = false;
  #noticeId = 0;

  constructor(readonly backend: Backend) {}

  async start(): Promise<void> {
    this.loadError = null;
    try {
      // Follow events first so nothing between get_state and listen is missed.
      if (this.#unlisten.length === 0) {
        this.#unlisten.push(await this.backend.onState((s) => this.applyState(s, true)));
        this.#unlisten.push(await this.backend.onSnapshot((s) => this.applySnapshot(s)));
        this.#unlisten.push(await this.backend.onUpdate((u) => this.offerUpdate(u)));
        // An offer found before the window opened (the check runs while hidden in the tray).
        this.backend.offeredUpdate().then(
          (u) => {
            if (u && !this.update) this.offerUpdate(u);
          },
          () => {},
        );
      }
      const s = await this.backend.getState();
      // A state event that came while get_state was on its way is at least as new.
      if (!this.#stateSeen) this.applyState(s, false);
      else this.mergeSnapshot(s.snapshot);
    } catch (e) {
      this.loadError = toAppError(e);
    }
  }

  stop(): void {
    for (const u of this.#unlisten) u();
    this.#unlisten = [];
  }

  applyState(s: AppState, fromEvent: boolean): void {
    if (fromEvent) this.#stateSeen = true;
    const keep = this.state?.snapshot;
    // The state event's snapshot may be older than the last snapshot event.
    const snapshot = keep && keep.generation > s.snapshot.generation ? keep : s.snapshot;
    this.state = { ...s, snapshot };
    // Switch positions now come from the config.
    const pending = { ...this.pending };
    let changed = false;
    for (const f of s.config.forwards) {
      if (f.name in pending && (f.enabled !== false) === pending[f.name]) {
        delete pending[f.name];
        changed = true;
      }
    }
    if (changed) this.pending = pending;
    // Stars now come from the preferences.
    const stars = { ...this.starPending };
    let starsChanged = false;
    for (const [name, on] of Object.entries(stars)) {
      if (s.favourites.includes(name) === on) {
        delete stars[name];
        starsChanged = true;
      }
    }
    if (starsChanged) this.starPending = stars;
  }

  applySnapshot(snap: Snapshot): void {
    // Snapshot events arrive in order: each replaces the last.
    if (!this.state) return;
    this.state.snapshot = snap;
  }

  mergeSnapshot(snap: Snapshot): void {
    if (this.state && snap.generation > this.state.snapshot.generation) this.state.snapshot = snap;
  }

  isEnabled(f: Forward): boolean {
    return this.pending[f.name] ?? f.enabled !== false;
  }

  notify(level: Notice["level"], text: string): void {
    const id = ++this.#noticeId;
    this.notices = [...this.notices, { id, level, text }];
    setTimeout(() => this.dismissNotice(id), level === "error" ? 8000 : 3000);
  }

  dismissNotice(id: number): void {
    this.notices = this.notices.filter((n) => n.id !== id);
  }

  /** Runs a command; a rejection becomes a notice with the shell's own message. */
  async run<T>(fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (e) {
      const err = toAppError(e);
      this.notify("error", errorText(err));
      return undefined;
    }
  }

  /** Like `run`, telling whether the command went through. */
  async attempt(fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (e) {
      this.notify("error", errorText(toAppError(e)));
      return false;
    }
  }

  async setEnabled(name: string, enabled: boolean): Promise<void> {
    this.pending = { ...this.pending, [name]: enabled };
    try {
      await this.backend.setEnabled(name, enabled);
      // The state event clears the pending position; if the config did not change
      // (already in that position) clear it now.
      const f = this.forwards.find((x) => x.name === name);
      if (f && (f.enabled !== false) === enabled) this.clearPending(name);
    } catch (e) {
      this.clearPending(name);
      this.notify("error", errorText(toAppError(e)));
    }
  }

  isFavourite(name: string): boolean {
    return this.favourites.has(name);
  }

  /** Stars or unstars a forward: shown at once, confirmed by the state event. */
  async setFavourite(name: string, favourite: boolean): Promise<void> {
    this.starPending = { ...this.starPending, [name]: favourite };
    const settle = () => {
      const p = { ...this.starPending };
      delete p[name];
      this.starPending = p;
    };
    try {
      await this.backend.setFavourite(name, favourite);
      if ((this.state?.favourites.includes(name) ?? false) === favourite) settle();
    } catch (e) {
      settle();
      this.notify("error", errorText(toAppError(e)));
    }
  }

  /** Saves the window's preferences, shown at once; put back as they were if refused. */
  async savePrefs(change: Partial<Prefs>): Promise<boolean> {
    if (!this.state) return false;
    const before = $state.snapshot(this.state.prefs);
    const prefs = { ...before, ...change };
    this.state.prefs = prefs;
    const ok = await this.attempt(() => this.backend.savePrefs(prefs));
    if (!ok && this.state) this.state.prefs = before;
    return ok;
  }

  /** Hides the banner now, and that banner for good. */
  dismissBanner(): void {
    this.dismissedBanner = this.state?.banner ?? null;
    this.run(() => this.backend.dismissBanner());
  }

  offerUpdate(u: UpdateInfo): void {
    if (this.update?.version !== u.version) this.updateError = null;
    this.update = u;
  }

  /** Installs the update on offer. While forwards are up the shell refuses unless
   * `confirmCut`: then "confirm" is answered with the shell's sentence, to ask the user. */
  async installUpdate(confirmCut: boolean): Promise<{ outcome: "installed" } | { outcome: "confirm"; message: string } | { outcome: "failed" }> {
    this.installing = true;
    this.updateError = null;
    try {
      await this.backend.installUpdate(confirmCut);
      return { outcome: "installed" };
    } catch (e) {
      const err = toAppError(e);
      if (err.code === "conflict" && err.field === "confirm_cut") return { outcome: "confirm", message: err.message };
      this.updateError = errorText(err);
      return { outcome: "failed" };
    } finally {
      this.installing = false;
    }
  }

  clearPending(name: string): void {
    if (!(name in this.pending)) return;
    const p = { ...this.pending };
    delete p[name];
    this.pending = p;
  }
}

/** The message to show for an error: the shell's message as written; a short default
 * per code only when the message is empty. */
export function errorText(e: AppError): string {
  if (e.message) return e.message;
  switch (e.code) {
    case "engine":
      return "Ferry's engine is not running.";
    case "store":
      return "The saved forwards could not be written; nothing was changed.";
    case "cluster":
      return "The cluster could not be reached.";
    case "not_found":
      return "It no longer exists.";
    case "conflict":
      return "That name or port is already taken.";
    default:
      return "That was not accepted.";
  }
}
