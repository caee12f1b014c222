// The add/edit dialog, details panel, profiles, import (pasted or from a file), export and
// settings, as a person uses them.

import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import type { Page } from "playwright-core";
import { browserSuite, eventually, textOf } from "./harness";

const suite = browserSuite((a) => a.page.getByTestId("forward-row-echo").first().waitFor());
const open = suite.open;

/** The suggestions of a field's list (the list keeps them while closed). */
const options = (page: Page, list: string) =>
  page.locator(`#${list} [role=option]`).evaluateAll((els) => els.map((e) => ({ value: e.getAttribute("data-value"), label: e.textContent!.trim() })));
const listOpen = (page: Page, list: string) => page.locator(`#${list}`).isVisible();

const gone = (page: Page, testid: string) => eventually(() => page.getByTestId(testid).count(), (n) => n === 0, `${testid} gone`);

describe("add a forward", () => {
  it("through the pickers, with a suggested local port and inline validation", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("add-forward").click();
    const dialog = page.getByTestId("forward-dialog");
    await dialog.waitFor();

    // Contexts, then namespaces of the chosen context, then targets of the chosen kind.
    await eventually(() => options(page, "ff-contexts"), (o) => o.length === 2, "contexts");
    expect((await options(page, "ff-contexts")).map((o) => o.value)).toEqual(["ferry-fake", "staging"]);
    await page.getByTestId("field-context").fill("staging");
    await eventually(() => options(page, "ff-namespaces"), (o) => o.map((x) => x.value).join() === "default,payments", "staging namespaces");
    await page.getByTestId("field-context").fill("ferry-fake");
    await eventually(() => options(page, "ff-namespaces"), (o) => o.map((x) => x.value).includes("demo"), "ferry-fake namespaces");
    await page.getByTestId("field-namespace").fill("demo");
    await eventually(() => options(page, "ff-targets"), (o) => o.map((x) => x.value).join() === "echo,web,db", "services");
    await page.getByTestId("field-kind").selectOption("deployment");
    await eventually(() => options(page, "ff-targets"), (o) => o.map((x) => x.value).join() === "echo,web", "deployments");
    await page.getByTestId("field-kind").selectOption("service");
    await eventually(() => options(page, "ff-targets"), (o) => o.length === 3, "services again");

    // The name follows the resource, as a name no forward has ("web" is taken).
    await page.getByTestId("field-target").fill("web");
    expect(await page.getByTestId("field-name").inputValue()).toBe("web-2");
    // A taken name typed in is said under the name.
    await page.getByTestId("field-name").fill("web");
    expect(await textOf(page, "error-name", 'A forward named "web" already exists.')).toBeTruthy();
    await page.getByTestId("field-name").fill("web-2");
    await gone(page, "error-name");

    // Port names are shown with the numbers; choosing one suggests a local port.
    await eventually(() => options(page, "ff-ports"), (o) => o.length === 2, "ports");
    expect((await options(page, "ff-ports")).map((o) => o.label)).toEqual(["80 (http)", "443 (https)"]);
    await page.getByTestId("field-port").fill("80");
    await eventually(() => page.getByTestId("field-local-port").inputValue(), (v) => v === "10080", "suggested port");
    expect(await page.getByTestId("kubectl-preview").innerText()).toBe("kubectl port-forward --context ferry-fake -n demo svc/web 10080:80");

    await page.getByTestId("save-forward").click();
    await gone(page, "forward-dialog");
    await page.getByTestId("forward-row-web-2").waitFor();
    expect(await textOf(page, "local-web-2")).toBe("127.0.0.1:10080");
    await textOf(page, "state-web-2", "active");
    expect(await a.fake((f) => f.config.forwards.find((x) => x.name === "web-2"))).toEqual({
      name: "web-2",
      context: "ferry-fake",
      namespace: "demo",
      target: "service/web",
      port: 80,
      local_port: 10080,
    });
  });

  it("does not replace a local port the user typed", async () => {
    const { page } = await open();
    await page.keyboard.press("n");
    await page.getByTestId("forward-dialog").waitFor();
    await page.getByTestId("field-local-port").fill("23456");
    await page.getByTestId("field-port").fill("8080");
    await page.waitForTimeout(500);
    expect(await page.getByTestId("field-local-port").inputValue()).toBe("23456");
  });

  it("quick add fills the form from a pasted kubectl line", async () => {
    const { page } = await open();
    await page.getByTestId("add-forward").click();
    const qa = page.getByTestId("quick-add");
    await qa.waitFor();
    // Focus starts in the quick-add field; pasting parses at once.
    expect(await page.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe("quick-add");
    await page.evaluate(() => {
      const el = document.querySelector<HTMLInputElement>("[data-testid=quick-add]")!;
      el.value = "kubectl port-forward deploy/api 18090:8080 -n payments --context staging";
      el.dispatchEvent(new Event("input", { bubbles: true }));
      const dt = new DataTransfer();
      dt.setData("text/plain", el.value);
      el.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true }));
    });
    // "api" is taken: the shell names it "api-2".
    await eventually(() => page.getByTestId("field-name").inputValue(), (v) => v === "api-2", "name filled");
    expect(await page.getByTestId("field-context").inputValue()).toBe("staging");
    expect(await page.getByTestId("field-namespace").inputValue()).toBe("payments");
    expect(await page.getByTestId("field-kind").inputValue()).toBe("deployment");
    expect(await page.getByTestId("field-target").inputValue()).toBe("api");
    expect(await page.getByTestId("field-port").inputValue()).toBe("8080");
    expect(await page.getByTestId("field-local-port").inputValue()).toBe("18090");

    // A line that cannot be read says why, under the quick-add field.
    await qa.fill("kubectl port-forward svc/echo");
    await qa.press("Enter");
    expect(await textOf(page, "error-quick_add")).toBe("The line has no port, like 18080:80.");
  });

  it("quick add also fills the form from a typed line", async () => {
    const a = await open();
    const { page } = a;
    await page.keyboard.press("n");
    await page.getByTestId("quick-add").waitFor();
    await page.keyboard.type("svc/db 15433:5432 -n demo");
    await eventually(() => page.getByTestId("field-local-port").inputValue(), (v) => v === "15433", "typed line parsed");
    expect(await page.getByTestId("field-name").inputValue()).toBe("db-2");
    expect(await page.getByTestId("field-target").inputValue()).toBe("db");
    expect(await page.getByTestId("field-port").inputValue()).toBe("5432");
    // The form holds the line now: Enter adds it (the line is not read again).
    const parses = await a.fake((f) => f.calls.filter((c) => c.cmd === "parse_kubectl").length);
    await page.getByTestId("quick-add").press("Enter");
    await gone(page, "forward-dialog");
    await page.getByTestId("forward-row-db-2").waitFor();
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "parse_kubectl").length)).toBe(parses);
  });

  it("names the current context in the Context field, as a value the user can change", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("add-forward").click();
    const context = page.getByTestId("field-context");
    // A value, not only the placeholder's hint; the preview says it too.
    await eventually(() => context.inputValue(), (v) => v === "ferry-fake", "current context filled");
    await eventually(() => page.getByTestId("kubectl-preview").innerText(), (t) => t.includes("--context ferry-fake "), "preview names it");
    // Nothing was typed: the dialog closes without asking.
    await page.keyboard.press("Escape");
    await gone(page, "forward-dialog");
    expect(await page.getByTestId("confirm-dialog").count()).toBe(0);

    // Quick add: a line without --context gets the current context, one with it keeps its own.
    await page.keyboard.press("n");
    await page.getByTestId("quick-add").waitFor();
    await page.keyboard.type("kubectl port-forward svc/api 18095:8080 -n payments --context staging");
    await eventually(() => page.getByTestId("field-local-port").inputValue(), (v) => v === "18095", "line read");
    expect(await context.inputValue()).toBe("staging");
    await page.getByTestId("quick-add").fill("");
    await page.keyboard.type("svc/echo 18096:80 -n demo");
    await eventually(() => page.getByTestId("field-local-port").inputValue(), (v) => v === "18096", "second line read");
    expect(await context.inputValue()).toBe("ferry-fake");
    // The user can change it, and what is shown is what is saved.
    await context.fill("staging");
    await page.getByTestId("field-namespace").fill("payments");
    await page.getByTestId("field-target").fill("api");
    await page.getByTestId("field-port").fill("8080");
    await page.getByTestId("field-name").fill("api-staging");
    await page.getByTestId("save-forward").click();
    await gone(page, "forward-dialog");
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "save_forward").map((c) => (c.args.forward as { context?: string }).context))).toEqual(["staging"]);

    // Editing shows the forward's own context, not the current one.
    await page.getByTestId("forward-row-api").getByRole("button", { name: "Details of api" }).click();
    await page.getByTestId("edit-forward").click();
    await page.getByTestId("forward-dialog").waitFor();
    await page.waitForTimeout(400);
    expect(await context.inputValue()).toBe("staging");
  });

  it("an out-of-range port is said under its field, the other fields keep their errors, and nothing unreadable is sent", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("add-forward").click();
    await page.getByTestId("field-name").fill("Big One");
    await page.getByTestId("field-namespace").fill("demo");
    await page.getByTestId("field-target").fill("echo");
    await page.getByTestId("field-port").fill("80");
    const nameError = await textOf(page, "error-name", /not a usable name/);

    // The shell cannot even read a u16 of 70000: the form says so itself, under the field.
    await page.getByTestId("field-local-port").fill("70000");
    await textOf(page, "error-local_port", "70000 is not a port: use a number from 1 to 65535, or leave it empty for any free port.");
    // The other fields are still checked by the shell while this one is out of range.
    await page.getByTestId("field-namespace").fill("Demo");
    await textOf(page, "error-namespace", '"Demo" is not a valid namespace name.');
    expect(await textOf(page, "error-name")).toBe(nameError);
    await page.getByTestId("field-port").fill("99999");
    await textOf(page, "error-port", "99999 is not a port: use a number from 1 to 65535.");
    await page.locator("summary", { hasText: "Advanced" }).click();
    await page.getByTestId("field-bind").fill("localhost");
    await textOf(page, "error-bind", '"localhost" is not an IP address: use one like 127.0.0.1, 0.0.0.0 or ::1.');
    await page.waitForTimeout(500);
    expect(await textOf(page, "error-name")).toBe(nameError);
    expect(await textOf(page, "error-namespace")).toBe('"Demo" is not a valid namespace name.');

    // Saving sends nothing and focuses the first field in error; the input stays.
    await page.getByTestId("save-forward").click();
    expect(await page.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe("field-name");
    expect(await page.getByTestId("form-error").count()).toBe(0);
    expect(await page.getByTestId("forward-dialog").innerText()).not.toContain("invalid args");
    expect(await page.getByTestId("field-local-port").inputValue()).toBe("70000");
    expect(await page.getByTestId("field-local-port").getAttribute("aria-invalid")).toBe("true");
    const sent = await a.fake((f) => f.calls.filter((c) => c.cmd === "save_forward" || c.cmd === "validate_forward").map((c) => c.args.forward as { local_port: number; port: unknown; bind?: string }));
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.filter((f) => f.local_port > 65535 || f.port === 99999 || f.bind === "localhost")).toEqual([]);
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "save_forward").length)).toBe(0);

    // A conflict only the shell knows about (the port is taken by another program).
    await page.getByTestId("field-name").fill("big");
    await page.getByTestId("field-namespace").fill("demo");
    await page.getByTestId("field-port").fill("80");
    await page.getByTestId("field-bind").fill("");
    await page.getByTestId("field-local-port").fill("18500");
    await gone(page, "error-local_port");
    await a.fake((f) => f.failures.set("save_forward", { code: "conflict", message: "Port 18500 on 127.0.0.1 is in use by another program.", field: "local_port" }));
    await page.getByTestId("save-forward").click();
    await textOf(page, "error-local_port", "Port 18500 on 127.0.0.1 is in use by another program.");
    expect(await page.getByTestId("field-local-port").inputValue()).toBe("18500");

    // An error with no field is shown above the buttons, as written.
    await a.fake((f) => f.failures.set("save_forward", { code: "store", message: "Could not write /home/me/.config/ferry/forwards.yaml: disk full.", field: null }));
    await page.getByTestId("save-forward").click();
    await textOf(page, "form-error", "Could not write /home/me/.config/ferry/forwards.yaml: disk full.");
    expect(await page.getByTestId("forward-dialog").count()).toBe(1);

    // Now it goes through.
    await page.getByTestId("save-forward").click();
    await gone(page, "forward-dialog");
    await page.getByTestId("forward-row-big").waitFor();
  });

  it("says under the target when the user may not forward in that namespace", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("add-forward").click();
    await page.getByTestId("forward-dialog").waitFor();
    await page.getByTestId("field-context").fill("staging");
    await page.getByTestId("field-namespace").fill("payments");
    expect(await textOf(page, "access-denied")).toContain("user `dev` cannot create pods/portforward in namespace `payments`");
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "check_access").at(-1)?.args)).toEqual({ context: "staging", namespace: "payments", kind: "service" });
    // Where the user may forward, nothing is said.
    await page.getByTestId("field-context").fill("ferry-fake");
    await page.getByTestId("field-namespace").fill("demo");
    await gone(page, "access-denied");
  });

  it("shows advanced problems in the Advanced section", async () => {
    const { page } = await open();
    await page.getByTestId("add-forward").click();
    await page.getByTestId("field-name").fill("adv");
    await page.getByTestId("field-target").fill("echo");
    await page.getByTestId("field-port").fill("80");
    await page.locator("summary", { hasText: "Advanced" }).click();
    await page.getByTestId("field-health-kind").selectOption("http");
    await page.getByTestId("field-health-interval").fill("often");
    await textOf(page, "error-health.interval", '"often" is not a duration like 5s or 500ms.');
    await page.getByTestId("field-bind").fill("0.0.0.0");
    expect(await page.getByTestId("forward-dialog").innerText()).toContain("Listens on all interfaces");
  });
});

describe("quick add and suggestions", () => {
  it("Enter in quick add fills the form and adds the forward", async () => {
    const a = await open();
    const { page } = a;
    await page.keyboard.press("n");
    await page.getByTestId("quick-add").waitFor();
    await page.keyboard.type("svc/db 15433:5432 -n demo");
    await page.keyboard.press("Enter");
    await gone(page, "forward-dialog");
    await page.getByTestId("forward-row-db-2").waitFor();
    // The line names no context: the form named the current one, and it was sent.
    expect(await a.fake((f) => f.config.forwards.find((x) => x.name === "db-2"))).toEqual({
      name: "db-2",
      context: "ferry-fake",
      namespace: "demo",
      target: "service/db",
      port: 5432,
      local_port: 15433,
    });
  });

  it("says a local port clash while the line is typed", async () => {
    const { page } = await open();
    await page.keyboard.press("n");
    await page.getByTestId("quick-add").waitFor();
    await page.keyboard.type("kubectl port-forward svc/web 18080");
    // At once, before anything is filled or sent.
    expect(await textOf(page, "quick-add-clash", 'Local port 18080 is already used by "echo".')).toBeTruthy();
    expect(await page.getByTestId("field-target").inputValue()).toBe("");
    await page.keyboard.type("1:80");
    await gone(page, "quick-add-clash");
  });

  it("Esc closes an open suggestion list first, then the dialog", async () => {
    const a = await open();
    const { page } = a;
    await page.keyboard.press("n");
    await page.getByTestId("forward-dialog").waitFor();
    await eventually(() => options(page, "ff-contexts"), (o) => o.length === 2, "contexts");
    await page.getByTestId("field-context").focus();
    await page.keyboard.press("ArrowDown");
    expect(await listOpen(page, "ff-contexts")).toBe(true);
    expect(await page.getByTestId("field-context").getAttribute("aria-expanded")).toBe("true");
    await page.keyboard.press("Escape");
    expect(await listOpen(page, "ff-contexts")).toBe(false);
    expect(await page.getByTestId("forward-dialog").count()).toBe(1);
    // Nothing was changed: the second Esc closes the dialog at once.
    await page.keyboard.press("Escape");
    await gone(page, "forward-dialog");
    expect(await page.getByTestId("confirm-dialog").count()).toBe(0);
  });

  it("picks a suggestion with the keyboard without submitting", async () => {
    const a = await open();
    const { page } = a;
    await page.keyboard.press("n");
    await eventually(() => options(page, "ff-contexts"), (o) => o.length === 2, "contexts");
    await page.getByTestId("field-context").focus();
    // The field holds the current context: type over it.
    await eventually(() => page.getByTestId("field-context").inputValue(), (v) => v === "ferry-fake", "current context");
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.type("stag");
    expect(await listOpen(page, "ff-contexts")).toBe(true);
    expect((await page.locator("#ff-contexts [role=option]:visible").allInnerTexts()).map((t) => t.trim())).toEqual(["staging"]);
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    expect(await page.getByTestId("field-context").inputValue()).toBe("staging");
    expect(await listOpen(page, "ff-contexts")).toBe(false);
    expect(await page.getByTestId("forward-dialog").count()).toBe(1);
    expect(await a.fake((f) => f.calls.some((c) => c.cmd === "save_forward"))).toBe(false);
    // A click picks too.
    await eventually(() => options(page, "ff-namespaces"), (o) => o.map((x) => x.value).join() === "default,payments", "staging namespaces");
    await page.getByTestId("field-namespace").click();
    await page.locator("#ff-namespaces [role=option]", { hasText: "payments" }).click();
    expect(await page.getByTestId("field-namespace").inputValue()).toBe("payments");
  });
});

describe("closing dialogs", () => {
  it("asks before discarding changes, from Esc and from the close button", async () => {
    const a = await open();
    const { page } = a;
    await page.keyboard.press("n");
    await page.getByTestId("forward-dialog").waitFor();
    await page.getByTestId("field-context").fill("s");
    expect(await listOpen(page, "ff-contexts")).toBe(true);
    await page.keyboard.press("Escape");
    expect(await listOpen(page, "ff-contexts")).toBe(false);
    await page.keyboard.press("Escape");
    const confirm = page.getByTestId("confirm-dialog");
    await confirm.waitFor();
    expect(await page.locator(`#${await confirm.getAttribute("aria-labelledby")}`).innerText()).toBe("Discard changes?");
    // Keep editing has the focus: Esc (or Enter) keeps the dialog and what was typed.
    expect(await textOf(page, "confirm-cancel")).toBe("Keep editing");
    await page.keyboard.press("Escape");
    await gone(page, "confirm-dialog");
    expect(await page.getByTestId("field-context").inputValue()).toBe("s");

    // The close button, pressed once the dialog has its focus back, as a person would: on a
    // busy machine a click in the instant the confirm goes can still meet an inert dialog.
    await eventually(() => page.evaluate(() => document.activeElement?.getAttribute("data-testid") ?? ""), (t) => t === "field-context", "focus back in the form");
    await eventually(
      async () => {
        if ((await page.getByTestId("confirm-dialog").count()) === 0) await page.getByTestId("close-dialog").click();
        return page.getByTestId("confirm-dialog").count();
      },
      (n) => n === 1,
      "the discard question",
    );
    await page.getByTestId("confirm-ok").click();
    await gone(page, "forward-dialog");
    await gone(page, "confirm-dialog");
    expect(await a.fake((f) => f.calls.some((c) => c.cmd === "save_forward"))).toBe(false);
  });

  it("closes untouched dialogs at once, and asks for pasted import text", async () => {
    const { page } = await open();
    await page.getByTestId("forward-row-echo").first().getByRole("button", { name: "Details of echo" }).click();
    await page.getByTestId("edit-forward").click();
    await page.getByTestId("forward-dialog").waitFor();
    await page.keyboard.press("Escape");
    await gone(page, "forward-dialog");

    await page.getByTestId("new-profile").click();
    await page.getByTestId("profile-dialog").waitFor();
    await page.getByTestId("close-dialog").click();
    await gone(page, "profile-dialog");

    await page.getByTestId("open-import").click();
    await page.getByTestId("import-text").fill("kubectl port-forward svc/echo 18080:80");
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByTestId("confirm-dialog").waitFor();
    await page.getByTestId("confirm-ok").click();
    await gone(page, "import-dialog");
  });
});

describe("details", () => {
  it("offers another local port when the port is taken, and moves the forward there", async () => {
    const a = await open();
    const { page } = a;
    await a.fake((f) => f.setForwardState("web", "error", { error: "127.0.0.1:18081 is already in use by python3 (pid 4242); stop it, or choose another local port", port_in_use: true }));
    await page.getByTestId("forward-row-web").first().getByRole("button", { name: "Details of web" }).click();
    const panel = page.getByTestId("details-panel");
    await panel.waitFor();
    expect(await panel.innerText()).toContain("python3 (pid 4242)");
    await panel.getByTestId("use-another-port").click();
    const saved = await eventually(
      () => a.fake((f) => f.calls.filter((c) => c.cmd === "save_forward").map((c) => c.args)),
      (calls) => calls.length === 1,
      "the forward saved once",
    );
    const sent = saved[0] as { original: string; forward: { name: string; local_port: number } };
    expect(sent.original).toBe("web");
    expect(sent.forward.name).toBe("web");
    expect(sent.forward.local_port).not.toBe(18081);
    expect(sent.forward.local_port).toBeGreaterThan(0);
    // Without a port conflict there is nothing to offer.
    await page.getByTestId("forward-row-echo").first().getByRole("button", { name: "Details of echo" }).click();
    await eventually(() => page.getByTestId("use-another-port").count(), (n) => n === 0, "no offer for echo");
  });

  it("shows the pod, health, history and log, tests the connection and copies kubectl", async () => {
    const a = await open();
    const { page } = a;
    await a.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: suite.url });
    await page.getByTestId("forward-row-echo").first().getByRole("button", { name: "Details of echo" }).click();
    const panel = page.getByTestId("details-panel");
    await panel.waitFor();
    const text = await panel.innerText();
    expect(text).toContain("echo-7d9f8-abcde");
    expect(text).toContain("probe 12 ms");
    // The check's code is set off from the state: "up (ok)", not "up(ok)".
    expect(text).toContain("unknown → up (ok)");
    await page.getByTestId("test-connection").click();
    expect(await textOf(page, "test-result", /Connected in 4 ms/)).toContain("connected to echo-7d9f8-abcde");
    await page.getByTestId("copy-kubectl").click();
    await eventually(
      () => page.evaluate(() => navigator.clipboard.readText()),
      (t) => t === "kubectl port-forward --context ferry-fake -n demo svc/echo 18080:80",
      "clipboard",
    );
    // Lines to look at the pod in use, copied the same way.
    await page.getByTestId("copy-kubectl-logs").click();
    await eventually(() => page.evaluate(() => navigator.clipboard.readText()), (t) => t === "kubectl logs echo-7d9f8-abcde -n demo --context ferry-fake", "logs line");
    await page.getByTestId("copy-kubectl-describe").click();
    await eventually(() => page.evaluate(() => navigator.clipboard.readText()), (t) => t === "kubectl describe pod echo-7d9f8-abcde -n demo --context ferry-fake", "describe line");
    expect(await page.getByTestId("notice").last().innerText()).toContain("Copied kubectl describe pod echo-7d9f8-abcde");
    // The log follows state changes without polling.
    await a.fake((f) => f.setForwardState("echo", "reconnecting", { last_error: "pod echo-7d9f8-abcde went away" }));
    await eventually(() => page.getByTestId("log").innerText(), (t) => t.includes("echo: active -> reconnecting"), "log line");
    expect(await panel.innerText()).toContain("Reconnecting after: Pod echo-7d9f8-abcde went away.");
    await page.keyboard.press("Escape");
    await gone(page, "details-panel");

    // A forward with no pod in use (switched off) offers no pod lines.
    await page.getByTestId("forward-row-api").getByRole("button", { name: "Details of api" }).click();
    await page.getByTestId("details-panel").waitFor();
    expect(await page.getByTestId("copy-kubectl-logs").count()).toBe(0);
    expect(await page.getByTestId("copy-kubectl-describe").count()).toBe(0);
  });

  it("says when the cluster closed a connection for idleness", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("forward-row-echo").first().getByRole("button", { name: "Details of echo" }).click();
    await page.getByTestId("details-panel").waitFor();
    expect(await page.getByTestId("idle-closed").count()).toBe(0);
    await a.fake((f) => f.setForwardState("echo", "active", { idle_closed: { count: 2, at_ms: f.now() - 60_000, quiet_ms: 300_000 } }));
    const said = await textOf(page, "idle-closed");
    expect(said).toContain("The cluster closed 2 connections after 5m 0s without traffic");
    expect(said).toMatch(/\(last (1m \d+s|5\ds) ago\)/);
    expect(said).toContain("New connections open at once");
  });

  it("Esc never confirms a delete; the confirm button does", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("forward-row-web").first().getByRole("button", { name: "Details of web" }).click();
    await page.getByTestId("delete-forward").click();
    const confirm = page.getByTestId("confirm-dialog");
    await confirm.waitFor();
    // Cancel has the focus, so Enter would not delete either.
    expect(await page.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe("confirm-cancel");
    await page.keyboard.press("Escape");
    await gone(page, "confirm-dialog");
    expect(await page.getByTestId("forward-row-web").count()).toBe(1);
    expect(await a.fake((f) => f.calls.some((c) => c.cmd === "delete_forward"))).toBe(false);

    await page.getByTestId("delete-forward").click();
    await page.getByTestId("confirm-ok").click();
    await gone(page, "forward-row-web");
    await gone(page, "details-panel");
    expect(await a.fake((f) => f.config.profiles![0].forwards)).toEqual(["echo", "db"]);
  });

  it("edits a forward, renaming it", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("forward-row-echo").first().getByRole("button", { name: "Details of echo" }).click();
    await page.getByTestId("edit-forward").click();
    await page.getByTestId("forward-dialog").waitFor();
    expect(await page.getByTestId("field-local-port").inputValue()).toBe("18080");
    await page.getByTestId("field-name").fill("echo-2");
    await page.getByTestId("save-forward").click();
    await gone(page, "forward-dialog");
    await page.getByTestId("forward-row-echo-2").waitFor();
    expect(await a.fake((f) => f.calls.find((c) => c.cmd === "save_forward")!.args.original)).toBe("echo");
    expect(await page.getByTestId("details-panel").getAttribute("data-forward")).toBe("echo-2");
  });
});

describe("profiles, import, settings", () => {
  it("creates a profile with chosen forwards, renames it and deletes it", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("new-profile").click();
    await page.getByTestId("profile-dialog").waitFor();
    await page.getByTestId("field-profile-name").fill("demo");
    await page.getByTestId("profile-member-echo").check();
    await page.getByTestId("profile-member-api").check();
    await page.getByTestId("save-profile").click();
    await textOf(page, "error-name", 'A profile named "demo" already exists.');
    await page.getByTestId("field-profile-name").fill("mine");
    await page.getByTestId("save-profile").click();
    await gone(page, "profile-dialog");
    const group = page.getByTestId("group-mine");
    await group.waitFor();
    expect(await a.fake((f) => f.config.profiles!.find((p) => p.name === "mine"))).toEqual({ name: "mine", forwards: ["echo", "api"] });

    await page.getByRole("button", { name: "Edit profile mine" }).click();
    await page.getByTestId("field-profile-name").fill("ours");
    await page.getByTestId("save-profile").click();
    await page.getByTestId("group-ours").waitFor();

    await page.getByRole("button", { name: "Delete profile ours" }).click();
    await page.getByTestId("confirm-ok").click();
    await gone(page, "group-ours");
    expect(await page.getByTestId("forward-row-api").count()).toBe(1); // still in "backend"
  });

  it("previews an import entry by entry, then imports", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("open-import").click();
    await page.getByTestId("import-dialog").waitFor();
    // A line that cannot be read: nothing is imported, and the line is named.
    await page.getByTestId("import-text").fill("kubectl port-forward svc/kubernetes 16443:443\nnot a line at all here");
    await page.getByTestId("import-preview-button").click();
    expect(await textOf(page, "import-error")).toContain("line 2: expected a `kubectl port-forward` command");
    expect(await page.getByTestId("import-button").isDisabled()).toBe(true);

    // Two entries named kubernetes (renamed within the text), and echo, which is saved.
    await page
      .getByTestId("import-text")
      .fill("kubectl port-forward svc/echo 18090:80 -n demo\nkubectl port-forward svc/kubernetes 16443:443\nkubectl port-forward pod/kubernetes 16444:443 --context staging");
    await page.getByTestId("import-preview-button").click();
    const preview = await textOf(page, "import-preview");
    expect(preview).toContain("Will add 3 forwards:");
    expect(await a.fake((f) => f.calls.find((c) => c.cmd === "import_config")!.args)).toMatchObject({ format: "auto", dryRun: true });
    const entry = (name: string) => page.getByTestId(`import-entry-${name}`);
    // echo clashes with the saved forward; it is said so, as a warning.
    const echo = await entry("echo-2").innerText();
    expect(echo).toContain("Named echo-2: a saved forward is already named echo.");
    expect(await entry("echo-2").locator("[data-rename]").getAttribute("data-rename")).toBe("config");
    // The shell's note for the entry is under it.
    expect(echo).toContain("No context given; saved with `ferry-fake`");
    // The second kubernetes is only renamed within the paste: no clash with saved forwards.
    const second = await entry("kubernetes-2").innerText();
    expect(second).toContain("Named kubernetes-2: an earlier entry of this text is also named kubernetes.");
    expect(second).not.toMatch(/saved forward|already named|is taken/);
    expect(await entry("kubernetes-2").locator("[data-rename]").getAttribute("data-rename")).toBe("paste");
    expect(await entry("kubernetes").innerText()).not.toContain("Named");
    expect(preview).not.toContain("is taken");
    expect(await page.getByTestId("forward-row-kubernetes").count()).toBe(0);

    await page.getByTestId("import-button").click();
    const result = await textOf(page, "import-result");
    expect(result).toContain("Added 3 forwards:");
    // Judged against the forwards saved before the import, not with the new ones.
    expect(await entry("kubernetes-2").locator("[data-rename]").getAttribute("data-rename")).toBe("paste");
    await page.getByTestId("forward-row-kubernetes-2").waitFor();
    expect(await a.fake((f) => f.config.forwards.slice(-3).map((x) => [x.name, x.context]))).toEqual([
      ["echo-2", "ferry-fake"],
      ["kubernetes", "ferry-fake"],
      ["kubernetes-2", "staging"],
    ]);
    await page.getByTestId("close-dialog").click();
    await gone(page, "import-dialog");
  });

  it("says in Settings that closing quits when the desktop shows no tray", async () => {
    const a = await open({ init: "window.__ferryFake.tray = false" });
    await a.page.getByTestId("open-settings").click();
    const note = a.page.getByTestId("no-tray");
    await note.waitFor();
    expect(await note.innerText()).toContain("closing the window quits Ferry");
    await a.close();
    const b = await open();
    await b.page.getByTestId("open-settings").click();
    await b.page.getByTestId("setting-close-to-tray").waitFor();
    expect(await b.page.getByTestId("no-tray").count()).toBe(0);
  });

  it("says which Ferry this is at the foot of the settings", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("open-settings").click();
    await page.getByTestId("settings-dialog").waitFor();
    expect(await textOf(page, "about")).toBe("Ferry 0.1.0 · Apache-2.0");
  });

  it("saves settings and shows a refused kubeconfig path", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("open-settings").click();
    await page.getByTestId("settings-dialog").waitFor();
    await page.getByTestId("setting-start-at-login").check();
    await eventually(() => a.fake((f) => f.settings.start_at_login), (v) => v === true, "start at login saved");
    await page.getByTestId("setting-kubeconfig-paths").fill("/home/me/.kube/extra.yaml\nrelative.yaml");
    await page.getByTestId("setting-theme").focus();
    await textOf(page, "error-kubeconfig_paths[1]", '"relative.yaml" is not an absolute path.');
    await page.getByTestId("setting-kubeconfig-paths").fill("/home/me/.kube/extra.yaml");
    await page.getByTestId("setting-theme").focus();
    await eventually(() => a.fake((f) => f.settings.kubeconfig_paths), (p) => p.join() === "/home/me/.kube/extra.yaml", "paths saved");
    await page.keyboard.press("Escape");
    await gone(page, "settings-dialog");
  });
});

describe("import from a file, export", () => {
  const file = (name: string, text: string | Buffer, mimeType = "text/plain") => ({ name, mimeType, buffer: Buffer.isBuffer(text) ? text : Buffer.from(text) });

  it("reads a chosen file into the import box, then previews and imports it as pasted text", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("open-import").click();
    await page.getByTestId("import-dialog").waitFor();
    // The picker offers configs, exports and scripts first, and any file.
    expect(await page.getByTestId("import-file").getAttribute("accept")).toBe(".json,.yaml,.yml,.sh,.txt,*/*");
    expect(await page.getByTestId("import-file").isHidden()).toBe(true);
    const lines = "# tunnels\nkubectl port-forward svc/kubernetes 16443:443\n";
    await page.getByTestId("import-file").setInputFiles(file("tunnels.sh", lines, "application/x-sh"));
    await eventually(() => page.getByTestId("import-text").inputValue(), (v) => v === lines, "the file's text in the box");
    expect(await textOf(page, "import-file-name")).toBe("tunnels.sh");
    expect(await page.getByTestId("import-format").inputValue()).toBe("auto");

    await page.getByTestId("import-preview-button").click();
    expect(await textOf(page, "import-preview")).toContain("Will add 1 forward:");
    await page.getByTestId("import-button").click();
    expect(await textOf(page, "import-result")).toContain("Added 1 forward:");
    await page.getByTestId("forward-row-kubernetes").waitFor();
    const sent = await a.fake((f) => f.calls.filter((c) => c.cmd === "import_config").map((c) => c.args));
    expect(sent).toEqual([
      { text: lines, format: "auto", dryRun: true },
      { text: lines, format: "auto", dryRun: false },
    ]);
  });

  it("sets the format from the file's name when it is clear, else leaves it to the shell", async () => {
    const a = await open();
    const { page } = a;
    await page.getByTestId("open-import").click();
    const choose = async (name: string, text: string) => {
      await page.getByTestId("import-file").setInputFiles(file(name, text));
      await eventually(() => page.getByTestId("import-text").inputValue(), (v) => v === text, `${name} read`);
      await textOf(page, "import-file-name", name);
      return page.getByTestId("import-format").inputValue();
    };
    const kftray = '[{"service": "echo", "namespace": "demo", "local_port": 18090, "remote_port": 8080}]';
    expect(await choose("kftray-configs.json", kftray)).toBe("kftray");
    // Ferry's own config as JSON is not kftray's: the shell's detection finds it.
    expect(await choose("forwards.json", '{"version": 1, "forwards": []}')).toBe("auto");
    expect(await choose("kportal.yaml", "contexts:\n  - name: ferry-fake\n")).toBe("kportal");
    expect(await choose("forwards.yaml", "version: 1\nforwards: []\n")).toBe("auto");
    // A choice made by hand stands until another file is chosen.
    await page.getByTestId("import-format").selectOption("ferry");
    expect(await choose("kftray-configs.json", kftray)).toBe("kftray");
    await page.getByTestId("import-preview-button").click();
    await page.getByTestId("import-preview").waitFor();
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "import_config").map((c) => c.args.format))).toEqual(["kftray"]);
    // Text edited after it was read is no longer the file's.
    await page.getByTestId("import-text").fill("kubectl port-forward svc/echo 18090:80");
    expect(await textOf(page, "import-file-name")).toBe("kftray-configs.json (edited)");
  });

  it("says so under the field when a file is too large or cannot be read, and changes nothing", async () => {
    const { page } = await open();
    await page.getByTestId("open-import").click();
    const typed = "kubectl port-forward svc/echo 18090:80 -n demo";
    await page.getByTestId("import-text").fill(typed);
    await page.getByTestId("import-format").selectOption("kubectl");
    const unchanged = async () => {
      expect(await page.getByTestId("import-text").inputValue()).toBe(typed);
      expect(await page.getByTestId("import-format").inputValue()).toBe("kubectl");
      expect(await page.getByTestId("import-file-name").count()).toBe(0);
    };

    await page.getByTestId("import-file").setInputFiles(file("huge.txt", Buffer.alloc(1024 * 1024 + 1, "k")));
    expect(await textOf(page, "import-file-error")).toBe("huge.txt is larger than 1 MiB, the most Ferry reads.");
    await unchanged();

    // A file that cannot be read (gone, or no permission, since it was chosen).
    await page.evaluate(() => {
      const w = window as unknown as { __text: unknown };
      w.__text = Blob.prototype.text;
      Blob.prototype.text = () => Promise.reject(new DOMException("The requested file could not be read.", "NotReadableError"));
    });
    await page.getByTestId("import-file").setInputFiles(file("forwards.yaml", "version: 1\nforwards: []\n"));
    await textOf(page, "import-file-error", "forwards.yaml could not be read.");
    await unchanged();

    // A file that reads clears the error.
    await page.evaluate(() => {
      Blob.prototype.text = (window as unknown as { __text: Blob["text"] }).__text;
    });
    await page.getByTestId("import-file").setInputFiles(file("tunnels.txt", "kubectl port-forward svc/web 18091:80 -n demo\n"));
    await textOf(page, "import-file-name", "tunnels.txt");
    expect(await page.getByTestId("import-file-error").count()).toBe(0);
    expect(await page.getByTestId("import-format").inputValue()).toBe("auto");
  });

  it("exports Ferry's YAML and kftray's JSON: shown, copied and saved as a file", async () => {
    const a = await open();
    const { page } = a;
    await a.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: suite.url });
    const shellText = (format: "ferry" | "kftray") =>
      page.evaluate((fmt) => (window as unknown as { __ferryFake: { exportConfig(f: string): { text: string } } }).__ferryFake.exportConfig(fmt).text, format);
    await page.getByTestId("open-export").click();
    await page.getByTestId("export-dialog").waitFor();
    expect(await page.getByTestId("export-format").inputValue()).toBe("ferry");
    const yaml = await shellText("ferry");
    expect(yaml).toMatch(/^version: 1\nforwards:\n {2}- name: echo\n/);
    await eventually(() => page.getByTestId("export-text").inputValue(), (v) => v === yaml, "the YAML shown");
    expect(await page.getByTestId("export-text").getAttribute("readonly")).not.toBeNull();
    expect(await page.getByTestId("export-notes").count()).toBe(0);

    await page.getByTestId("export-copy").click();
    await eventually(() => page.evaluate(() => navigator.clipboard.readText()), (t) => t === yaml, "the YAML copied");
    await textOf(page, "notice", "Copied the Ferry YAML.");

    const save = async () => {
      const link = page.getByTestId("export-save");
      expect(await link.getAttribute("href")).toMatch(/^blob:/);
      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
      const path = await download.path();
      return { name: download.suggestedFilename(), text: await readFile(path, "utf8") };
    };
    expect(await save()).toEqual({ name: "ferry-forwards.yaml", text: yaml });

    await page.getByTestId("export-format").selectOption("kftray");
    const json = await shellText("kftray");
    await eventually(() => page.getByTestId("export-text").inputValue(), (v) => v === json, "the JSON shown");
    expect(JSON.parse(json).map((e: { service: string }) => e.service)).toEqual(["echo"]);
    const notes = await page.getByTestId("export-notes").locator("li").allInnerTexts();
    expect(notes).toContain("db: statefulset/db has no kftray equivalent; not exported");
    expect(notes).toContain("api: deployment/api has no kftray equivalent; not exported");
    expect(await page.getByTestId("export-save").getAttribute("download")).toBe("ferry-forwards.kftray.json");
    expect(await save()).toEqual({ name: "ferry-forwards.kftray.json", text: json });
    expect(await a.fake((f) => f.calls.filter((c) => c.cmd === "export_config").map((c) => c.args.format))).toEqual(["ferry", "kftray"]);

    // What is shown follows the saved forwards.
    await a.fake((f) => f.handle("delete_forward", { name: "echo" }));
    await eventually(() => page.getByTestId("export-text").inputValue(), (v) => v.trim() === "[]", "echo gone from the export");

    // Nothing here is unsaved: Esc closes at once.
    await page.keyboard.press("Escape");
    await gone(page, "export-dialog");
    expect(await page.getByTestId("confirm-dialog").count()).toBe(0);
  });

  it("says why when the shell cannot export", async () => {
    const a = await open();
    const { page } = a;
    await a.fake((f) => f.failures.set("export_config", { code: "engine", message: "Ferry is shutting down." }));
    await page.getByTestId("open-export").click();
    expect(await textOf(page, "export-error")).toBe("Ferry is shutting down.");
    expect(await page.getByTestId("export-copy").isDisabled()).toBe(true);
    expect(await page.getByTestId("export-save").getAttribute("href")).toBeNull();
    // Another format asks again.
    await page.getByTestId("export-format").selectOption("kftray");
    await eventually(() => page.getByTestId("export-text").inputValue(), (v) => v.startsWith("["), "the JSON shown");
    expect(await page.getByTestId("export-error").count()).toBe(0);
    await page.getByTestId("close-dialog").click();
    await gone(page, "export-dialog");
  });
});
