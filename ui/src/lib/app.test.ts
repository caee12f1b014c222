import { describe, expect, it } from "vitest";
import { flushSync } from "svelte";
import { AppStore } from "./app.svelte";
import type { Backend } from "./backend";
import type { AppState, Snapshot } from "./types";
import { FakeShell } from "../../tests/fake/fake";

/** A Backend over the fake shell, with events delivered by hand. */
function harness() {
  const queued: [string, unknown][] = [];
  const fake = new FakeShell("demo", (e, p) => queued.push([e, p]), { settleMs: 0 });
  const handlers: Record<string, ((p: never) => void)[]> = {};
  const backend = new Proxy({} as Backend, {
    get(_t, prop: string) {
      const events: Record<string, string> = { onState: "ferry://state", onSnapshot: "ferry://snapshot", onUpdate: "ferry://update" };
      if (prop in events) {
        const ev = events[prop];
        return async (h: (p: never) => void) => {
          (handlers[ev] ??= []).push(h);
          return () => {};
        };
      }
      const cmd = prop.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      return (...args: unknown[]) => {
        const names: Record<string, string[]> = {
          set_enabled: ["name", "enabled"],
          set_all_enabled: ["names", "enabled"],
          set_favourite: ["name", "favourite"],
          save_prefs: ["prefs"],
          install_update: ["confirmCut"],
        };
        const keys = names[cmd] ?? [];
        return fake.handle(cmd, Object.fromEntries(keys.map((k, i) => [k, args[i]])));
      };
    },
  });
  const deliver = () => {
    while (queued.length) {
      const [e, p] = queued.shift()!;
      for (const h of handlers[e] ?? []) h(p as never);
    }
    flushSync();
  };
  return { fake, backend, deliver, queued };
}

describe("AppStore", () => {
  it("shows an offered update, puts off the version the user put off, and asks before cutting forwards", async () => {
    const { fake, backend, deliver } = harness();
    const app = new AppStore(backend);
    await app.start();
    fake.settle();
    deliver();
    expect(app.updateVisible).toBe(false);
    const u = { version: "0.2.0", current_version: "0.1.0", notes: null, date: null };
    fake.updateServer = { outcome: "offered", update: u };
    fake.checkUpdate();
    deliver();
    expect(app.update).toEqual(u);
    expect(app.updateVisible).toBe(true);
    const asked = await app.installUpdate(false);
    expect(asked.outcome).toBe("confirm");
    expect(asked.outcome === "confirm" && asked.message).toContain("cuts 3 forwards for a moment (echo, web, db)");
    expect(fake.installed).toEqual([]);
    expect(await app.installUpdate(true)).toEqual({ outcome: "installed" });
    expect(fake.installed).toEqual(["0.2.0"]);
    app.updateLater = "0.2.0";
    expect(app.updateVisible).toBe(false);
    fake.updateServer = { outcome: "offered", update: { ...u, version: "0.2.1" } };
    fake.checkUpdate();
    deliver();
    expect(app.updateVisible).toBe(true);
    fake.dispose();
  });

  it("renders get_state, then follows events", async () => {
    const { fake, backend, deliver } = harness();
    const app = new AppStore(backend);
    await app.start();
    expect(app.forwards.map((f) => f.name)).toEqual(["echo", "web", "db", "api"]);
    await app.setEnabled("echo", false);
    expect(app.isEnabled(app.forwards[0])).toBe(false); // pending until the event
    deliver();
    expect(app.forwards[0].enabled).toBe(false);
    expect(app.pending).toEqual({});
    expect(app.statusByName.get("echo")?.state).toBe("disabled");
    fake.dispose();
  });

  it("keeps the newer snapshot when a state event carries an older one", async () => {
    const { backend } = harness();
    const app = new AppStore(backend);
    await app.start();
    const base = app.state!;
    const snap = (generation: number, state: "active" | "error"): Snapshot => ({
      generation,
      forwards: base.snapshot.forwards.map((s) => ({ ...s, state })),
    });
    app.applySnapshot(snap(100, "error"));
    app.applyState({ ...(JSON.parse(JSON.stringify(base)) as AppState), snapshot: snap(50, "active") }, true);
    expect(app.state!.snapshot.generation).toBe(100);
    expect(app.statuses[0].state).toBe("error");
  });

  it("puts back a switch whose command was refused, with the shell's message", async () => {
    const { fake, backend } = harness();
    const app = new AppStore(backend);
    await app.start();
    fake.failures.set("set_enabled", { code: "engine", message: "Ferry is shutting down.", field: null });
    await app.setEnabled("echo", false);
    expect(app.isEnabled(app.forwards[0])).toBe(true);
    expect(app.notices.map((n) => n.text)).toEqual(["Ferry is shutting down."]);
  });

  it("shows a star at once and keeps it once the shell confirms it", async () => {
    const { fake, backend, deliver } = harness();
    const app = new AppStore(backend);
    await app.start();
    const done = app.setFavourite("db", true);
    expect(app.isFavourite("db")).toBe(true); // before the shell answers
    await done;
    deliver();
    expect(app.starPending).toEqual({});
    expect(app.state!.favourites).toEqual(["db"]);
    expect(fake.favourites).toEqual(["db"]);
    await app.setFavourite("db", false);
    deliver();
    expect(app.isFavourite("db")).toBe(false);
    fake.dispose();
  });

  it("puts back a refused star and refused preferences, with the shell's message", async () => {
    const { fake, backend, deliver } = harness();
    const app = new AppStore(backend);
    await app.start();
    fake.failures.set("set_favourite", { code: "not_found", message: "There is no forward named \"db\".", field: "name" });
    await app.setFavourite("db", true);
    expect(app.isFavourite("db")).toBe(false);
    fake.failures.set("save_prefs", { code: "store", message: "the preferences were not saved", field: null });
    expect(await app.savePrefs({ group_by: "context" })).toBe(false);
    expect(app.state!.prefs.group_by).toBe("profile");
    expect(await app.savePrefs({ group_by: "context" })).toBe(true);
    deliver();
    expect(app.state!.prefs.group_by).toBe("context");
    expect(fake.prefs.group_by).toBe("context");
    expect(app.notices.map((n) => n.text)).toEqual(['There is no forward named "db".', "the preferences were not saved"]);
    fake.dispose();
  });

  it("shows why it could not load", async () => {
    const { fake, backend } = harness();
    fake.failures.set("get_state", { code: "engine", message: "not running", field: null });
    const app = new AppStore(backend);
    await app.start();
    expect(app.loadError).toEqual({ code: "engine", message: "not running", field: null });
  });
});
