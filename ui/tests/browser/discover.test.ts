// Forwards the cluster declares: the add dialog's "From the cluster" section and the
// badge beside Add, against the fake shell's cluster (ferry-fake's demo namespace declares
// what the demo scenario does; staging's payments one forward and a kind the user may not
// list).

import { describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { browserSuite, eventually, textOf } from "./harness";

const suite = browserSuite();

/** Opens the app, on the demo scenario unless told otherwise, once its list is drawn. */
async function open(opts: Parameters<typeof suite.open>[0] = {}) {
  const a = await suite.open(opts);
  await a.page.getByTestId(opts.scenario === "empty" ? "empty-state" : "forward-row-echo").first().waitFor();
  return a;
}

/** The declared forwards listed, by name. */
const listed = (page: Page) => page.locator('[data-testid^="declared-"][data-namespace]').evaluateAll((els) => els.map((e) => e.getAttribute("data-testid")!.slice("declared-".length)));
const entry = (page: Page, name: string) => page.getByTestId(`declared-${name}`);
const addButton = (page: Page, name: string) => page.getByTestId(`declared-add-${name}`);

/** Opens Add, then its "From the cluster" tab. */
async function openSection(page: Page) {
  await page.getByTestId("add-forward").click();
  await page.getByTestId("forward-dialog").waitFor();
  await page.getByTestId("cluster-tab").click();
  await page.getByTestId("cluster-section").waitFor();
}

describe("from the cluster", () => {
  it("lists what a namespace declares, with what the user has, and adds one in a click", async () => {
    const a = await open();
    const { page } = a;
    await openSection(page);
    // The form's context (the current one) and its namespace (none: the context's own,
    // where nothing is declared).
    await textOf(page, "cluster-empty", /Nothing here declares forwards/);
    await page.getByTestId("cluster-namespace").selectOption("demo");
    await eventually(() => listed(page), (l) => l.length === 4, "the demo's four");
    expect(await listed(page)).toEqual(["web-pod", "echo", "web", "db-pg"]);
    expect(await textOf(page, "cluster-count")).toBe("4 declared, 3 you do not have");

    const webPod = entry(page, "web-pod");
    expect(await webPod.getByTestId("declared-description").innerText()).toBe("One web pod, straight");
    expect(await webPod.locator(".source").innerText()).toBe("Ferry");
    expect(await webPod.getByTestId("declared-target").innerText()).toBe("deploy/web:http");
    expect(await webPod.getByTestId("declared-local").innerText()).toBe("127.0.0.1:18090");
    expect(await addButton(page, "web-pod").innerText()).toBe("Add");

    // The kftray one: to the pods' port, offered under a name no saved forward has.
    const echo = entry(page, "echo");
    expect(await echo.locator(".source").innerText()).toBe("kftray");
    expect(await echo.getByTestId("declared-target").innerText()).toBe("svc/echo:9000 (pods' port)");
    expect(await addButton(page, "echo").innerText()).toBe("Add as echo-2");
    expect(await echo.getByTestId("declared-note").allInnerTexts()).toEqual(["a saved forward is named echo; offered as echo-2"]);

    // A local port a saved forward holds is moved, and said.
    const web = entry(page, "web");
    expect(await web.getByTestId("declared-local").innerText()).toBe("127.0.0.1:18082");
    expect(await web.getByTestId("declared-note").allInnerTexts()).toEqual([
      "a saved forward is named web; offered as web-2",
      "local port 18081 is taken by web; offered with 18082",
    ]);

    // Already had: said, and not offered.
    expect(await addButton(page, "db-pg").innerText()).toBe("You have it: db");
    expect(await addButton(page, "db-pg").isDisabled()).toBe(true);
    expect(await entry(page, "db-pg").locator(".source").innerText()).toBe("k9s");

    // One click adds it through save_forward, as offered; then it is had.
    await addButton(page, "web-pod").click();
    await textOf(page, "declared-add-web-pod", "You have it: web-pod");
    expect(await page.getByTestId("notice").first().innerText()).toContain("Added web-pod.");
    expect(await textOf(page, "cluster-count")).toBe("4 declared, 2 you do not have");
    const saves = await a.fake((f) => f.calls.filter((c) => c.cmd === "save_forward").map((c) => c.args));
    expect(saves).toEqual([
      {
        original: null,
        forward: { name: "web-pod", context: "ferry-fake", namespace: "demo", target: "deployment/web", port: "http", local_port: 18090, alias: "web-pod" },
      },
    ]);
    await page.getByTestId("close-cluster").click();
    await page.getByTestId("forward-row-web-pod").waitFor();
  });

  it("says what could not be read, quietly, and what the cluster answered when it failed", async () => {
    const a = await open();
    const { page } = a;
    await openSection(page);
    await page.getByTestId("cluster-context").selectOption("staging");
    await textOf(page, "cluster-empty", /Nothing here declares forwards/);
    await eventually(() => page.locator('[data-testid="cluster-namespace"] option').allInnerTexts(), (o) => o.includes("payments"), "staging's namespaces");
    await page.getByTestId("cluster-namespace").selectOption("payments");
    await eventually(() => listed(page), (l) => l.join() === "api", "payments' forward");
    expect(await textOf(page, "cluster-problems")).toContain('deployments in namespace payments: not allowed to list them (deployments.apps is forbidden: User "dev" cannot list resource "deployments"');
    expect(await page.getByTestId("cluster-problems").getAttribute("role")).toBeNull();

    // The cluster does not answer: said in its words, with a way to ask again.
    await a.fake((f) => f.failures.set("discover_forwards", { code: "cluster", message: 'context "staging": connection refused', field: null }));
    await page.getByTestId("cluster-refresh").click();
    expect(await textOf(page, "cluster-error")).toContain('Could not ask the cluster: context "staging": connection refused');
    await page.getByTestId("cluster-error").getByRole("button", { name: "Try again" }).click();
    await eventually(() => listed(page), (l) => l.join() === "api", "payments' forward again");

    // A save the shell refuses is said on the entry; nothing is added.
    await a.fake((f) => f.failures.set("save_forward", { code: "conflict", message: "local port 8080 is used by api as well", field: "local_port" }));
    await addButton(page, "api").click();
    expect(await textOf(page, "declared-error")).toBe("local port 8080 is used by api as well");
    expect(await addButton(page, "api").innerText()).toBe("Add as api-2");
    expect(await a.fake((f) => f.config.forwards.length)).toBe(4);
  });

  it("shows every namespace at once, and a slow answer as loading", async () => {
    const a = await open();
    const { page } = a;
    // The next answer waits until the test lets it go.
    await a.fake((f) => {
      const handle = f.handle.bind(f);
      const w = window as unknown as { release?: () => void };
      f.handle = async (cmd, args) => {
        if (cmd === "discover_forwards" && !w.release) await new Promise<void>((ok) => (w.release = ok));
        return handle(cmd, args);
      };
    });
    await openSection(page);
    await textOf(page, "cluster-loading", "Asking the cluster…");
    await page.evaluate(() => (window as unknown as { release: () => void }).release());
    await textOf(page, "cluster-empty", /Nothing here/);
    await page.getByTestId("cluster-all").check();
    await eventually(() => listed(page), (l) => l.length === 4, "all namespaces");
    expect(await entry(page, "echo").getByTestId("declared-target").innerText()).toBe("svc/echo:9000 (pods' port) in demo");
    expect(await page.getByTestId("cluster-namespace").isDisabled()).toBe(true);
  });
});

describe("the badge", () => {
  it("counts what the namespaces the user forwards from declare that the user lacks, and opens them", async () => {
    const a = await open();
    const { page } = a;
    // demo: web-pod, echo (to the pods' port) and web (port 80, not "http"); payments: api.
    expect(await textOf(page, "cluster-badge")).toBe("4 from the cluster");
    expect(await page.getByTestId("cluster-badge").getAttribute("title")).toBe(
      "The cluster declares 4 forwards you do not have (3 in demo @ ferry-fake, 1 in payments @ staging)",
    );
    await page.getByTestId("cluster-badge").click();
    await page.getByTestId("cluster-section").waitFor();
    expect(await page.getByTestId("cluster-tab").getAttribute("aria-selected")).toBe("true");
    expect(await page.getByTestId("cluster-namespace").inputValue()).toBe("demo");
    await eventually(() => listed(page), (l) => l.length === 4, "the demo's four");
    await addButton(page, "echo").click();
    await textOf(page, "declared-add-echo", "You have it: echo-2");
    await page.keyboard.press("Escape");
    await textOf(page, "cluster-badge", "3 from the cluster");
    // The form is the other tab, as it was.
    await page.getByTestId("add-forward").click();
    expect(await page.getByTestId("form-tab").getAttribute("aria-selected")).toBe("true");
    expect(await page.getByTestId("cluster-section").count()).toBe(0);
  });

  it("is not shown when there is nothing new", async () => {
    const a = await open({ scenario: "empty" });
    const { page } = a;
    expect(await page.getByTestId("cluster-badge").count()).toBe(0);
    await a.fake((f) => {
      f.config.forwards.push({ name: "db", context: "ferry-fake", namespace: "demo", target: "statefulset/db", port: "pg", local_port: 15432 });
      f.emitState();
    });
    await textOf(page, "cluster-badge", "3 from the cluster");
  });
});
