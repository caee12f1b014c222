// Updates as a person meets them: the strip that offers a newer Ferry, its notes, the
// install that asks before cutting forwards, a refused signature, Later, and Settings'
// switch and Check now. Runs the built app (dist/) in Chromium with the fake shell.

import { describe, expect, it } from "vitest";
import { browserSuite, eventually, textOf, type AppPage } from "./harness";

const open = browserSuite().open;

const gone = (page: AppPage["page"], testid: string) => eventually(() => page.getByTestId(testid).count(), (n) => n === 0, `${testid} gone`);

const NEWER = { version: "0.2.0", current_version: "0.1.0", notes: "Faster reconnects.\nAn HTTP inspector.", date: "2026-12-01T10:00:00Z" };

describe("updates", () => {
  it("offers a newer Ferry with its notes and installs it only after asking, when forwards are up", async () => {
    const a = await open({ scenario: "demo" });
    const { page } = a;
    await textOf(page, "state-echo", "active");
    expect(await page.getByTestId("update").count()).toBe(0);
    await a.fake((f) => {
      f.updateServer = { outcome: "offered", update: { version: "0.2.0", current_version: "0.1.0", notes: "Faster reconnects.\nAn HTTP inspector.", date: "2026-12-01T10:00:00Z" } };
      f.checkUpdate();
    });
    expect(await textOf(page, "update")).toMatch(/^Ferry 0\.2\.0 is available · you have 0\.1\.0/);
    expect(await page.getByTestId("update-notes").count()).toBe(0);
    await page.getByTestId("update-notes-toggle").click();
    expect(await textOf(page, "update-notes")).toBe(NEWER.notes);

    // Three forwards are up: the shell refuses until the user agrees to cut them.
    await page.getByTestId("update-install").click();
    const dialog = page.getByTestId("confirm-dialog");
    await dialog.waitFor();
    expect(await dialog.innerText()).toContain("Install Ferry 0.2.0");
    expect(await dialog.innerText()).toContain("cuts 3 forwards for a moment (echo, web, db)");
    await page.getByTestId("confirm-cancel").click();
    await gone(page, "confirm-dialog");
    expect(await a.fake((f) => f.installed)).toEqual([]);
    const asked = await a.fake((f) => f.calls.filter((c) => c.cmd === "install_update").map((c) => c.args));
    expect(asked).toEqual([{ confirmCut: false }]);

    await page.getByTestId("update-install").click();
    await page.getByTestId("confirm-ok").click();
    await eventually(() => a.fake((f) => f.installed), (i) => i.length === 1, "the install");
    expect(await a.fake((f) => f.installed)).toEqual(["0.2.0"]);
    expect(await page.getByTestId("update-error").count()).toBe(0);
  });

  it("says so when the download's signature is refused, and Later puts the offer off", async () => {
    const a = await open({ scenario: "empty" });
    const { page } = a;
    await a.fake((f) => {
      f.updateServer = { outcome: "offered", update: { version: "0.2.0", current_version: "0.1.0", notes: null, date: null } };
      f.installFailure = {
        code: "invalid",
        message: "The update to Ferry 0.2.0 was not installed: its signature does not match Ferry's key (the signature was made with another key).",
        field: null,
      };
      f.checkUpdate();
    });
    await page.getByTestId("update").waitFor();
    // No notes: nothing to open.
    expect(await page.getByTestId("update-notes-toggle").count()).toBe(0);
    // Nothing is up: no question, straight to the download, which is refused.
    await page.getByTestId("update-install").click();
    expect(await textOf(page, "update-error")).toContain("its signature does not match Ferry's key");
    expect(await page.getByTestId("confirm-dialog").count()).toBe(0);
    expect(await a.fake((f) => f.installed)).toEqual([]);

    await page.getByTestId("update-later").click();
    await gone(page, "update");
    // The same release found again stays put off; a newer one is offered.
    await a.fake((f) => f.checkUpdate());
    await new Promise((r) => setTimeout(r, 200));
    expect(await page.getByTestId("update").count()).toBe(0);
    await a.fake((f) => {
      f.updateServer = { outcome: "offered", update: { version: "0.2.1", current_version: "0.1.0", notes: null, date: null } };
      f.checkUpdate();
    });
    expect(await textOf(page, "update")).toMatch(/^Ferry 0\.2\.1 is available/);
    expect(await page.getByTestId("update-error").count()).toBe(0);
  });

  it("shows an offer found while the window was closed as soon as it opens", async () => {
    const { page } = await open({
      scenario: "empty",
      init: `window.__ferryFake.updateOffered = ${JSON.stringify(NEWER)};`,
    });
    expect(await textOf(page, "update")).toMatch(/^Ferry 0\.2\.0 is available/);
  });

  it("checks now from Settings, quietly when the server is down, and keeps the switch", async () => {
    const a = await open({ scenario: "empty" });
    const { page } = a;
    await page.getByTestId("open-settings").click();
    const toggle = page.getByTestId("setting-check-updates");
    expect(await toggle.isChecked()).toBe(true);

    await page.getByTestId("check-updates-now").click();
    expect(await textOf(page, "update-checked")).toBe("Ferry 0.1.0 is the newest release.");

    await a.fake((f) => (f.updateServer = { outcome: "unreachable" }));
    await page.getByTestId("check-updates-now").click();
    expect(await textOf(page, "update-checked")).toBe("The update server could not be reached; Ferry tries again later.");
    // No error anywhere for that.
    expect(await page.getByTestId("notice").count()).toBe(0);
    expect(await page.getByTestId("update").count()).toBe(0);

    await a.fake((f) => (f.updateServer = { outcome: "offered", update: { version: "0.3.0", current_version: "0.1.0", notes: null, date: null } }));
    await page.getByTestId("check-updates-now").click();
    expect(await textOf(page, "update-checked")).toContain("Ferry 0.3.0 is available");
    await page.getByTestId("update").waitFor();

    await toggle.click();
    await eventually(() => a.fake((f) => f.prefs.check_updates), (on) => on === false, "check_updates saved off");
    expect(await toggle.isChecked()).toBe(false);
  });
});
