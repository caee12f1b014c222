// The main view as a person uses it: empty states, the demo, switches, filters, grouping,
// keyboard, theme, banner. Runs the built app (dist/) in Chromium with the fake shell.

import { describe, expect, it } from "vitest";
import { browserSuite, eventually, textOf, type AppPage } from "./harness";

const open = browserSuite().open;

const gone = (page: AppPage["page"], testid: string) => eventually(() => page.getByTestId(testid).count(), (n) => n === 0, `${testid} gone`);

const rowNames = (a: AppPage) =>
  a.page.locator("[data-forward][data-testid^=forward-row-]").evaluateAll((els) => els.map((e) => e.getAttribute("data-forward")));

describe("empty states", () => {
  it("explains a missing kubeconfig and starts the demo", async () => {
    const a = await open({ scenario: "no-kubeconfig" });
    const { page } = a;
    const empty = page.getByTestId("empty-state");
    await empty.waitFor();
    const text = await empty.innerText();
    expect(text).toContain("No kubeconfig found");
    expect(text).toContain("/home/me/.kube/config does not exist.");
    expect(text).toContain("$KUBECONFIG (not set)");
    expect(await page.getByTestId("demo-badge").count()).toBe(0);

    await page.getByTestId("start-demo").click();
    await page.getByTestId("forward-row-echo").first().waitFor();
    expect(await rowNames(a)).toEqual(["echo", "web", "db"]);
    expect(await textOf(page, "demo-badge")).toBe("Demo cluster");
    // Starting, then active once the shell says so in a snapshot.
    await textOf(page, "state-echo", "active");
    expect(await textOf(page, "local-echo")).toBe("127.0.0.1:18080");
  });

  it("offers Add and quick add when there is a kubeconfig but no forwards", async () => {
    const { page } = await open({ scenario: "empty" });
    const text = await page.getByTestId("empty-state").innerText();
    expect(text).toContain("No forwards yet");
    await page.getByTestId("empty-quick-add").fill("svc/echo 18080:80 -n demo");
    await page.getByTestId("empty-quick-add").press("Enter");
    await page.getByTestId("forward-dialog").waitFor();
    expect(await page.getByTestId("field-name").inputValue()).toBe("echo");
    expect(await page.getByTestId("field-namespace").inputValue()).toBe("demo");
    expect(await page.getByTestId("field-local-port").inputValue()).toBe("18080");
  });
});

describe("when the engine does not answer", () => {
  it("says so with the shell's message and tries again on request", async () => {
    const a = await open({
      init: `window.__ferryFake.failures.set("get_state", { code: "engine", message: "Ferry's engine is shutting down.", field: null });`,
    });
    const { page } = a;
    expect(await textOf(page, "load-error")).toContain("Ferry's engine is shutting down.");
    await page.getByRole("button", { name: "Try again" }).click();
    await page.getByTestId("forward-row-echo").first().waitFor();
  });
});

describe("forward rows", () => {
  it("shows target, address, health, traffic and problems", async () => {
    const a = await open();
    const { page } = a;
    const echo = page.getByTestId("forward-row-echo").first();
    await echo.waitFor();
    const t = await echo.innerText();
    expect(t).toContain("svc/echo:80 in demo @ ferry-fake");
    expect(t).toContain("12 ms");
    expect(t).toContain("1.5 MiB");
    expect(await textOf(page, "state-echo")).toBe("active");
    expect(await echo.getByRole("button", { name: "Open echo in browser" }).count()).toBe(1);
    // db checks fail: said in a sentence on the row; it shows under both of its profiles.
    expect(await page.getByTestId("forward-row-db").count()).toBe(2);
    expect(await page.getByTestId("forward-row-db").first().innerText()).toContain("Health check failing: Connection refused by demo/db-0:5432.");
    expect(await page.getByTestId("forward-row-db").first().getByRole("button", { name: /in browser/ }).count()).toBe(0);
    // A forward with a problem can be checked again now; the shell is asked once.
    await page.getByTestId("retry-db").first().click();
    await page.getByText("Checking db again.").waitFor();
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "retry_forward").map((c) => c.args))).toEqual([{ name: "db" }]);
    expect(await page.getByTestId("retry-echo").count()).toBe(0);
    // A non-loopback bind is flagged.
    expect(await page.getByTestId("forward-row-api").innerText()).toContain("listens on all interfaces");
  });

  it("switches a forward off and on; the badge follows the snapshots", async () => {
    const a = await open({ settleMs: 400 });
    const { page } = a;
    const toggle = page.getByTestId("toggle-echo").first();
    expect(await toggle.getAttribute("role")).toBe("switch");
    expect(await toggle.isChecked()).toBe(true);
    await toggle.click();
    await textOf(page, "state-echo", "disabled");
    expect(await toggle.isChecked()).toBe(false);
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "set_enabled").map((c) => c.args))).toEqual([{ name: "echo", enabled: false }]);
    await toggle.click();
    await textOf(page, "state-echo", /starting|active/);
    await textOf(page, "state-echo", "active");

    // A snapshot event alone moves the badge and shows the error inline.
    await a.fake((f) => f.setForwardState("web", "error", { error: "local port 18081 is in use" }));
    await textOf(page, "state-web", "error");
    expect(await page.getByTestId("forward-row-web").first().innerText()).toContain("Local port 18081 is in use.");
  });

  it("keeps the address column in line whether or not a row can open a browser", async () => {
    const { page } = await open();
    await textOf(page, "state-echo", "active");
    // echo has an http URL (an "open in browser" button), db a tcp one and api is off (none).
    expect(await page.getByTestId("forward-row-echo").first().getByRole("button", { name: /in browser/ }).count()).toBe(1);
    expect(await page.getByTestId("forward-row-api").getByRole("button", { name: /in browser/ }).count()).toBe(0);
    const box = async (testid: string) => (await page.getByTestId(testid).first().boundingBox())!;
    const copy = async (name: string) => (await page.getByTestId(`forward-row-${name}`).first().getByRole("button", { name: `Copy address of ${name}` }).boundingBox())!;
    const [echo, db, api] = [await box("local-echo"), await box("local-db"), await box("local-api")];
    expect(db.x).toBe(echo.x);
    expect(api.x).toBe(echo.x);
    expect((await copy("db")).x).toBe((await copy("echo")).x);
    expect((await copy("api")).x).toBe((await copy("echo")).x);
  });

  it("shows the whole target in the row, with no tooltip over the next row", async () => {
    const a = await open({ width: 720 });
    const { page } = a;
    await page.getByTestId("forward-row-echo").first().waitFor();
    // A long target, in the demo profile between echo and web.
    await a.fake((f) => {
      f.handle("save_forward", {
        original: null,
        forward: { name: "long", context: "ferry-fake", namespace: "a-rather-long-namespace-for-a-demo", target: "service/a-service-name-long-enough-to-not-fit-in-one-line", port: 8080, local_port: 18555 },
      });
      f.config.profiles![0].forwards.splice(1, 0, "long");
      f.emitState();
    });
    const row = page.getByTestId("forward-row-long");
    await row.waitFor();
    const target = page.getByTestId("target-long");
    // No native tooltip: one opens below the pointer, over the next row's switch and buttons.
    expect(await row.evaluate((el) => [...el.querySelectorAll("[title]")].filter((x) => x.closest("[data-testid^=target-]")).length)).toBe(0);
    expect(await target.getAttribute("title")).toBeNull();
    // The whole target shows, not cut off, and inside its own row.
    const text = await target.innerText();
    expect(text).toContain("svc/a-service-name-long-enough-to-not-fit-in-one-line:8080 in a-rather-long-namespace-for-a-demo @ ferry-fake");
    expect(await target.evaluate((el) => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight)).toBe(true);
    const [t, r] = [(await target.boundingBox())!, (await row.boundingBox())!];
    expect(t.height).toBeGreaterThan(20); // wrapped onto a second line
    expect(t.y + t.height).toBeLessThanOrEqual(r.y + r.height);
    const next = (await page.getByTestId("toggle-web").first().boundingBox())!;
    expect(next.y).toBeGreaterThanOrEqual(t.y + t.height);
    // Screen readers still hear what it is.
    expect(await target.evaluate((el) => el.textContent)).toMatch(/^Target: svc\//);
  });

  it("quits from the window, with Ctrl+Q even in a dialog, for desktops with no tray", async () => {
    const a = await open();
    const { page } = a;
    await textOf(page, "state-echo", "active");
    await page.getByTestId("quit").click();
    await eventually(() => a.fake((f) => f.quits), (n) => n === 1, "quit from the button");
    await page.getByTestId("add-forward").click();
    await page.getByTestId("forward-dialog").waitFor();
    await page.keyboard.press("Control+q");
    await eventually(() => a.fake((f) => f.quits), (n) => n === 2, "quit from Ctrl+Q");
  });

  it("never polls: the shell is asked for its state once", async () => {
    const a = await open();
    await a.page.waitForTimeout(1200);
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "get_state").length)).toBe(1);
  });
});

describe("filter, start/stop all, grouping", () => {
  it("filters by text and state, and starts only what is shown", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("forward-row-echo").first().waitFor();
    await page.getByTestId("search").fill("staging");
    await eventually(() => rowNames(a), (n) => n.join() === "api", "only api");
    await page.getByTestId("start-all").click();
    await eventually(
      () => a.fake((f) => f.calls.filter((c) => c.cmd === "set_all_enabled").map((c) => c.args)),
      (c) => c.length === 1,
      "set_all_enabled",
    );
    expect(await a.fake((f) => f.calls.find((c) => c.cmd === "set_all_enabled")!.args)).toEqual({ names: ["api"], enabled: true });
    await textOf(page, "state-api", "active");

    await page.getByTestId("search").fill("nothing-matches-this");
    await page.getByTestId("no-match").waitFor();
    await page.getByTestId("search").fill("");
    await page.getByTestId("state-filter").selectOption("problems");
    await eventually(() => rowNames(a), (n) => n.join() === "db,db", "db under both profiles");
    await page.getByTestId("stop-all").click();
    await eventually(
      () => a.fake((f) => f.calls.filter((c) => c.cmd === "set_all_enabled").map((c) => c.args)),
      (c) => c.length === 2,
      "second set_all_enabled",
    );
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "set_all_enabled")[1].args)).toEqual({ names: ["db"], enabled: false });
  });

  it("groups by context and namespace and keeps the choice in settings", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("group-demo").waitFor();
    expect(await page.getByTestId("forward-row-db").count()).toBe(2);
    await page.getByTestId("group-by").click();
    await page.getByTestId("group-ferry-fake / demo").waitFor();
    await page.getByTestId("group-staging / payments").waitFor();
    expect(await page.getByTestId("forward-row-db").count()).toBe(1);
    expect(await a.fake((f) => f.prefs.group_by)).toBe("context");
    await page.getByTestId("group-by").click();
    await page.getByTestId("group-demo").waitFor();
    expect(await a.fake((f) => f.prefs.group_by)).toBe("profile");
  });

  it("activates and deactivates a profile from its header", async () => {
    const a = await open();
    const { page } = a;
    const sw = page.getByTestId("profile-toggle-demo");
    await sw.waitFor();
    expect(await sw.isChecked()).toBe(true);
    await sw.click();
    await textOf(page, "state-echo", "disabled");
    await textOf(page, "state-web", "disabled");
    expect(await sw.isChecked()).toBe(false);
    expect(await a.fake((f) => f.calls.find((c) => c.cmd === "set_profile_active")!.args)).toEqual({ name: "demo", active: false });
  });

  it("shows a profile with some forwards on as mixed, and turns them all on from there", async () => {
    const a = await open();
    const { page } = a;
    // backend: db is on, api is off.
    const sw = page.getByTestId("profile-toggle-backend");
    await sw.waitFor();
    const look = () =>
      sw.evaluate((el) => ({
        aria: el.getAttribute("aria-checked"),
        indeterminate: (el as HTMLInputElement).indeterminate,
        label: el.getAttribute("aria-label"),
        knob: getComputedStyle(el, "::after").transform,
      }));
    // The knob sits halfway, between off (none) and on (12px), once it has slid there.
    const mixed = await eventually(look, (v) => v.knob === "matrix(1, 0, 0, 1, 6, 0)", "knob halfway");
    expect(mixed).toMatchObject({ aria: "mixed", indeterminate: true, label: "Activate profile backend (partly on: 1 of 2 forwards)" });
    expect(await page.getByTestId("profile-toggle-demo").getAttribute("aria-checked")).toBe("true");

    await sw.click();
    await textOf(page, "state-api", /starting|active/);
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "set_profile_active").map((c) => c.args))).toEqual([{ name: "backend", active: true }]);
    await eventually(look, (v) => v.aria === "true" && !v.indeterminate, "all on");
    expect(await sw.isChecked()).toBe(true);
    expect((await look()).label).toBe("Deactivate profile backend");

    // Back to mixed when one goes off.
    await page.getByTestId("toggle-api").click();
    await eventually(look, (v) => v.aria === "mixed" && v.indeterminate, "mixed again");
  });
});

describe("sorting", () => {
  it("sorts by name, state or local port within each group, and keeps the choice", async () => {
    const a = await open();
    const { page } = a;
    await textOf(page, "state-echo", "active");
    // echo moves to a higher local port than web, and web fails.
    await a.fake((f) => {
      f.handle("save_forward", { original: "echo", forward: { ...f.config.forwards.find((x) => x.name === "echo")!, local_port: 19999 } });
      f.setForwardState("web", "error", { error: "local port 18081 is in use" });
    });
    await textOf(page, "local-echo", "127.0.0.1:19999");
    await textOf(page, "state-echo", "active");
    await textOf(page, "state-web", "error");
    const sortBy = page.getByTestId("sort-by");
    expect(await sortBy.inputValue()).toBe("saved");
    // Groups demo (echo, web, db) and backend (db, api), in that order.
    expect(await rowNames(a)).toEqual(["echo", "web", "db", "db", "api"]);
    await sortBy.selectOption("name");
    await eventually(() => rowNames(a), (n) => n.join() === "db,echo,web,api,db", "by name");
    await sortBy.selectOption("port");
    // db 15432, web 18081, echo 19999; api 8080 before db.
    await eventually(() => rowNames(a), (n) => n.join() === "db,web,echo,api,db", "by local port");
    await sortBy.selectOption("state");
    // error, degraded, active; degraded before disabled.
    await eventually(() => rowNames(a), (n) => n.join() === "web,db,echo,db,api", "by state");

    // The choice stays while the view changes around it.
    await page.getByTestId("open-settings").click();
    await page.keyboard.press("Escape");
    await gone(page, "settings-dialog");
    await page.getByTestId("group-by").click();
    await page.getByTestId("group-ferry-fake / demo").waitFor();
    expect(await sortBy.inputValue()).toBe("state");
    await eventually(() => rowNames(a), (n) => n.join() === "web,db,echo,api", "by state, grouped by context");
    await sortBy.selectOption("saved");
    await eventually(() => rowNames(a), (n) => n.join() === "echo,web,db,api", "saved order");
  });
});

describe("toolbar", () => {
  it("gives New profile a plus, Import an arrow going in and Export one going out", async () => {
    const { page } = await open();
    const icon = (testid: string) => page.getByTestId(testid).locator("svg").getAttribute("data-icon");
    expect(await icon("new-profile")).toBe("list-plus");
    expect(await icon("open-import")).toBe("import");
    // The import arrow points into the tray from the side, not down like a download.
    const paths = await page.getByTestId("open-import").locator("path").evaluateAll((els) => els.map((e) => e.getAttribute("d")));
    expect(paths).toContain("m10 8 4 4-4 4");
    // Export, next to it, is its mirror: the arrow leaves the tray.
    expect(await icon("open-export")).toBe("export");
    expect(await page.getByTestId("open-export").getAttribute("aria-label")).toBe("Export");
    expect(await page.getByTestId("open-export").locator("path").evaluateAll((els) => els.map((e) => e.getAttribute("d")))).toContain("m17 8 4 4-4 4");
    const x = async (testid: string) => (await page.getByTestId(testid).boundingBox())!.x;
    expect(await x("open-export")).toBeGreaterThan(await x("open-import"));
    expect(await x("open-export")).toBeLessThan(await x("open-settings"));
    expect(await page.getByTestId("new-profile").locator("path").evaluateAll((els) => els.map((e) => e.getAttribute("d")))).toContain("M18 15v6M15 18h6");
  });
});

/** Contrast ratio of two CSS rgb() colours (WCAG). */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = c.match(/[\d.]+/g)!.slice(0, 3).map((x) => {
      const v = Number(x) / 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

describe("placeholders", () => {
  it("read as hints, not values, in the light and the dark theme", async () => {
    const { page } = await open();
    await page.getByTestId("forward-row-echo").first().waitFor();
    const style = (testid: string) =>
      page.getByTestId(testid).evaluate((el) => {
        const p = getComputedStyle(el, "::placeholder");
        const s = getComputedStyle(el);
        return { hint: p.color, hintStyle: p.fontStyle, text: s.color, background: s.backgroundColor, placeholder: (el as HTMLInputElement).placeholder };
      });
    const check = async (testid: string, theme: string) => {
      const s = await style(testid);
      const what = `${testid} in ${theme}: ${JSON.stringify(s)}`;
      expect(s.placeholder, what).not.toBe("");
      // Clearly dimmer than typed text and set in italics, yet legible on the field.
      expect(contrast(s.hint, s.text), what).toBeGreaterThanOrEqual(2.5);
      expect(contrast(s.hint, s.background), what).toBeGreaterThanOrEqual(3);
      expect(contrast(s.text, s.background), what).toBeGreaterThan(contrast(s.hint, s.background) * 2);
      expect(s.hintStyle, what).toBe("italic");
    };
    for (const theme of ["light", "dark"]) {
      await page.getByTestId("open-settings").click();
      await page.getByTestId("setting-theme").selectOption(theme);
      expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe(theme);
      await check("setting-kubeconfig-paths", theme);
      await page.keyboard.press("Escape");
      await gone(page, "settings-dialog");
      await check("search", theme);
      await page.getByTestId("open-import").click();
      await check("import-text", theme);
      await page.keyboard.press("Escape");
      await gone(page, "import-dialog");
      await page.getByTestId("add-forward").click();
      for (const f of ["quick-add", "field-name", "field-context", "field-local-port"]) await check(f, theme);
      await page.keyboard.press("Escape");
      await gone(page, "forward-dialog");
    }
  });
});

describe("favourites and the last view", () => {
  it("stars a forward: it comes first in its groups, and the star is saved", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("group-demo").waitFor();
    expect(await rowNames(a)).toEqual(["echo", "web", "db", "db", "api"]);
    const star = page.getByTestId("star-db").first();
    expect(await star.getAttribute("aria-pressed")).toBe("false");
    expect(await star.getAttribute("aria-label")).toBe("Add db to favourites");
    await star.click();
    // At once, in both of its profiles; then confirmed by the shell.
    await eventually(() => rowNames(a), (n) => n.join() === "db,echo,web,db,api", "db first");
    expect(await page.getByTestId("star-db").evaluateAll((els) => els.map((e) => e.getAttribute("aria-pressed")))).toEqual(["true", "true"]);
    expect(await eventually(() => a.fake((f) => f.favourites), (f) => f.length === 1, "star saved")).toEqual(["db"]);
    // Also when sorted by name: starred first, then the rest by name.
    await page.getByTestId("star-web").click();
    await page.getByTestId("sort-by").selectOption("name");
    await eventually(() => rowNames(a), (n) => n.join() === "db,web,echo,db,api", "stars first by name");
    // Unstarring puts it back in its place.
    await page.getByTestId("star-db").first().click();
    await eventually(() => rowNames(a), (n) => n.join() === "web,db,echo,api,db", "db back");
    expect(await eventually(() => a.fake((f) => f.favourites), (f) => f.join() === "web", "unstarred")).toEqual(["web"]);
    expect(await page.getByTestId("star-web").getAttribute("aria-label")).toBe("Remove web from favourites");
  });

  it("shows only the favourites when asked, and keeps the view for the next start", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("group-demo").waitFor();
    await page.getByTestId("star-echo").click();
    await page.getByTestId("favourites-only").click();
    await eventually(() => rowNames(a), (n) => n.join() === "echo", "only echo");
    expect(await page.getByTestId("favourites-only").getAttribute("aria-pressed")).toBe("true");
    await page.getByTestId("state-filter").selectOption("problems");
    await page.getByTestId("no-match").waitFor();
    expect(await page.getByTestId("no-match").innerText()).toContain("No starred forwards match");
    const view = await eventually(
      () => a.fake((f) => f.prefs.view),
      (v) => v.favourites_only && v.state === "problems",
      "view saved",
    );
    expect(view).toEqual({ sort: "saved", state: "problems", favourites_only: true });
    // Clear filter shows everything again, and says so to the shell.
    await page.getByRole("button", { name: "Clear filter" }).click();
    await eventually(() => rowNames(a), (n) => n.length === 5, "all rows");
    expect(await eventually(() => a.fake((f) => f.prefs.view.favourites_only), (v) => v === false, "cleared")).toBe(false);
  });

  it("keeps the sort and the state filter for the next start", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("group-demo").waitFor();
    await page.getByTestId("sort-by").selectOption("name");
    await page.getByTestId("state-filter").selectOption("problems");
    const view = await eventually(
      () => a.fake((f) => f.prefs.view),
      (v) => v.sort === "name" && v.state === "problems",
      "view saved",
    );
    expect(view).toEqual({ sort: "name", state: "problems", favourites_only: false });
    // Clear filter shows everything again, and says so to the shell.
    await page.getByTestId("state-filter").selectOption("disabled");
    await page.getByTestId("search").fill("nothing like it");
    await page.getByRole("button", { name: "Clear filter" }).click();
    await eventually(() => rowNames(a), (n) => n.length === 5, "all rows");
    expect(await eventually(() => a.fake((f) => f.prefs.view.state), (v) => v === "all", "cleared")).toBe("all");
  });

  it("opens with the saved view and stars", async () => {
    const a = await open({
      init: `window.__ferryFake.prefs.view = { sort: "name", state: "all", favourites_only: false };
             window.__ferryFake.favourites = ["web"];`,
    });
    const { page } = a;
    await page.getByTestId("group-demo").waitFor();
    expect(await page.getByTestId("sort-by").inputValue()).toBe("name");
    await eventually(() => rowNames(a), (n) => n.join() === "web,db,echo,api,db", "saved order");
    expect(await page.getByTestId("star-web").getAttribute("aria-pressed")).toBe("true");
  });
});

describe("keyboard, banner, theme", () => {
  it("/ focuses search, n opens Add, Esc closes, and not while typing", async () => {
    const { page } = await open();
    await page.getByTestId("forward-row-echo").first().waitFor();
    await page.keyboard.press("/");
    expect(await page.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe("search");
    await page.keyboard.type("n");
    expect(await page.getByTestId("search").inputValue()).toBe("n");
    expect(await page.getByTestId("forward-dialog").count()).toBe(0);
    await page.getByTestId("search").fill("");
    await page.locator("main").click({ position: { x: 5, y: 600 } });
    await page.keyboard.press("n");
    const dialog = page.getByTestId("forward-dialog");
    await dialog.waitFor();
    expect(await dialog.getAttribute("role")).toBe("dialog");
    expect(await dialog.getAttribute("aria-modal")).toBe("true");
    const label = await dialog.getAttribute("aria-labelledby");
    expect(await page.locator(`#${label}`).innerText()).toBe("Add a forward");
    // Focus stays in the dialog.
    for (let i = 0; i < 25; i++) await page.keyboard.press("Tab");
    expect(await page.evaluate(() => !!document.activeElement?.closest("[data-testid=forward-dialog]"))).toBe(true);
    await page.keyboard.press("Escape");
    await eventually(() => dialog.count(), (n) => n === 0, "dialog closed");
  });

  it("shows the banner until it is dismissed", async () => {
    const a = await open({ scenario: "banner" });
    const { page } = a;
    const banner = page.getByTestId("banner");
    expect(await banner.innerText()).toContain("could not be read");
    await page.getByTestId("dismiss-banner").click();
    await eventually(() => banner.count(), (n) => n === 0, "banner gone");
    // The shell is told, so the banner stays closed after a restart.
    expect(await eventually(() => a.fake((f) => f.dismissedBanners.length), (n) => n === 1, "banner remembered")).toBe(1);
  });

  it("applies the theme at once through data-theme", async () => {
    const a = await open({ colorScheme: "dark" });
    const { page } = a;
    const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
    expect(await eventually(theme, (t) => t === "dark", "system dark")).toBe("dark");
    await page.getByTestId("open-settings").click();
    await page.getByTestId("settings-dialog").waitFor();
    await page.getByTestId("setting-theme").selectOption("light");
    expect(await theme()).toBe("light");
    await page.getByTestId("setting-theme").selectOption("dark");
    expect(await theme()).toBe("dark");
    expect(await a.fake((f) => f.prefs.theme)).toBe("dark");
    await page.getByTestId("setting-theme").selectOption("system");
    await page.emulateMedia({ colorScheme: "light" });
    await eventually(theme, (t) => t === "light", "system follows the OS");
    await page.getByTestId("close-dialog").click();
    await eventually(() => page.getByTestId("settings-dialog").count(), (n) => n === 0, "settings closed");
  });
});
