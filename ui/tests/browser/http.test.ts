// The HTTP inspector in the window: the details panel's "Inspect HTTP" switch and HTTP
// tab, and the edit form's inspector fields, against the fake shell (its request() hook
// stands for a request through the forward; see tests/fake/fake.ts).

import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { browserSuite, eventually, textOf, type AppPage } from "./harness";

const suite = browserSuite();

/** Opens the demo, the details of `name`, and its HTTP tab. */
async function openTab(name = "web"): Promise<AppPage> {
  const a = await suite.open();
  const { page } = a;
  await page.getByTestId(`forward-row-${name}`).first().getByRole("button", { name: `Details of ${name}` }).click();
  await page.getByTestId("details-panel").waitFor();
  await page.getByTestId("http-tab-button").click();
  await page.getByTestId("http-tab").waitFor();
  return a;
}

/** Turns inspection on through the tab's button, and waits for the empty table. */
async function turnOn(a: AppPage) {
  await a.page.getByTestId("http-turn-on").click();
  await a.page.getByTestId("http-empty").waitFor();
  await eventually(() => a.fake((f) => f.followed), (v) => v === "web", "the window follows web");
}

const rows = (page: Page) => page.getByTestId("http-row");
const paths = (page: Page) => page.locator('[data-testid="http-row"] td.path').allInnerTexts();

describe("the HTTP tab", () => {
  it("turns inspection on, then shows requests live with their details", async () => {
    const a = await openTab();
    const { page } = a;
    // Off: says so, and offers to turn it on (saved as any edit of the forward).
    await textOf(page, "http-off", /HTTP inspection is off for web/);
    await turnOn(a);
    const saved = await a.fake((f) => f.config.forwards.find((x) => x.name === "web")!.inspect);
    expect(saved).toBe("http");
    // Empty: how to get traffic.
    expect(await textOf(page, "http-empty")).toContain("http://127.0.0.1:18081");

    await a.fake((f) => {
      f.request("web", { method: "GET", target: "/", status: 200 });
      f.request("web", {
        method: "POST",
        target: "/api/orders?draft=1",
        status: 201,
        reason: "Created",
        request: {
          version: "HTTP/1.1",
          headers: [
            { name: "Host", value: "127.0.0.1:18081" },
            { name: "Authorization", value: "[redacted]", redacted: true },
            { name: "Content-Type", value: "application/json" },
          ],
          trailers: [],
          headSize: 120,
          bodySize: 25,
          contentSize: 25,
          bodyBase64: btoa('{"item":"tea","count":2}'),
          truncated: false,
          complete: true,
        },
        response: {
          version: "HTTP/1.1",
          headers: [{ name: "Content-Type", value: "application/json" }],
          trailers: [],
          headSize: 90,
          bodySize: 12,
          contentSize: 12,
          bodyBase64: btoa('{"id":"o-17"}'),
          truncated: false,
          complete: true,
        },
      });
      f.request("web", { target: "/missing", status: 404, reason: "Not Found" });
      f.request("web", { target: "/boom", status: 503, reason: "Service Unavailable" });
    });
    await eventually(() => rows(page).count(), (n) => n === 4, "four rows");
    expect(await paths(page)).toEqual(["/", "/api/orders?draft=1", "/missing", "/boom"]);
    expect(await page.getByTestId("http-status").allInnerTexts()).toEqual(["200", "201", "404", "503"]);
    expect(await page.getByTestId("http-status").nth(3).getAttribute("class")).toContain("c5xx");
    expect(await textOf(page, "http-count")).toBe("4 exchanges");

    // Filters: status class, method, text.
    await page.getByTestId("http-class-4xx").click();
    await page.getByTestId("http-class-5xx").click();
    expect(await paths(page)).toEqual(["/missing", "/boom"]);
    expect(await textOf(page, "http-count")).toBe("2 of 4 exchanges");
    await page.getByTestId("http-class-4xx").click();
    await page.getByTestId("http-class-5xx").click();
    await page.getByTestId("http-method").selectOption("POST");
    expect(await paths(page)).toEqual(["/api/orders?draft=1"]);
    await page.getByTestId("http-method").selectOption("");
    await page.getByTestId("http-filter").fill("missing");
    expect(await paths(page)).toEqual(["/missing"]);
    await page.getByTestId("http-filter").fill("");

    // Details: headers (the redacted one as redacted), JSON bodies pretty-printed.
    await rows(page).nth(1).click();
    const detail = page.getByTestId("http-detail");
    await detail.waitFor();
    expect(await detail.getByTestId("header-redacted").allInnerTexts()).toEqual(["redacted"]);
    expect(await page.getByTestId("http-request-body").locator("pre").innerText()).toBe('{\n  "item": "tea",\n  "count": 2\n}');
    expect(await page.getByTestId("http-response-body").locator("pre").innerText()).toBe('{\n  "id": "o-17"\n}');
    // A body that was not kept says so.
    await rows(page).nth(0).click();
    expect(await textOf(page, "http-request-body")).toBe("No body.");
    await a.fake((f) => f.request("web", { target: "/big", response: { version: "HTTP/1.1", headers: [], trailers: [], headSize: 50, bodySize: 4096, contentSize: 4096, bodyBase64: "", truncated: true, complete: true } }));
    await eventually(() => rows(page).count(), (n) => n === 5, "five rows");
    await rows(page).nth(4).click();
    await textOf(page, "http-response-body", /4 KiB, not kept: keep the first KiB of bodies/);
  });

  it("takes a burst of a thousand requests in stride", async () => {
    const a = await openTab();
    const { page } = a;
    await turnOn(a);
    const started = Date.now();
    await a.fake((f) => {
      for (let i = 0; i < 1000; i++) f.request("web", { target: `/burst/${i}`, status: i % 10 === 0 ? 500 : 200 });
    });
    await textOf(page, "http-count", "1000 exchanges");
    expect(Date.now() - started).toBeLessThan(4000);
    // Still responsive: a filter answers at once.
    await page.getByTestId("http-class-5xx").click();
    await textOf(page, "http-count", "100 of 1000 exchanges");
    await page.getByTestId("http-filter").fill("/burst/990");
    expect(await paths(page)).toEqual(["/burst/990"]);
  });

  it("copies as curl, replays beside the old answer, exports HAR and clears", async () => {
    const a = await openTab();
    const { page } = a;
    await a.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: suite.url });
    await turnOn(a);
    await a.fake((f) => {
      f.request("web", { target: "/hello?x=1" });
      f.request("web", { target: "/status/500", status: 500, reason: "Internal Server Error" });
    });
    await eventually(() => rows(page).count(), (n) => n === 2, "two rows");
    await rows(page).first().click();

    await page.getByTestId("http-copy-curl").click();
    await eventually(() => page.evaluate(() => navigator.clipboard.readText()), (t) => t.startsWith("curl 'http://127.0.0.1:18081/hello?x=1'"), "the curl line");
    await textOf(page, "notice", "Copied the curl command.");

    await page.getByTestId("http-replay").click();
    await page.getByTestId("http-replayed").waitFor();
    expect(await textOf(page, "http-response-status")).toBe("200");
    expect(await textOf(page, "http-replayed-status")).toBe("200");
    // The replay went through the forward: recorded too.
    await eventually(() => rows(page).count(), (n) => n === 3, "the replay recorded");

    // Export: all kept, as a HAR 1.2 download.
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("http-export").click()]);
    expect(download.suggestedFilename()).toMatch(/^ferry-web-.*\.har$/);
    const har = JSON.parse(await readFile(await download.path(), "utf8"));
    expect(har.log.version).toBe("1.2");
    expect(har.log.entries.map((e: { request: { url: string } }) => e.request.url)).toEqual([
      "http://127.0.0.1:18081/hello?x=1",
      "http://127.0.0.1:18081/status/500",
      "http://127.0.0.1:18081/hello?x=1",
    ]);
    // Filtered: only what is shown.
    await page.getByTestId("http-class-5xx").click();
    const [one] = await Promise.all([page.waitForEvent("download"), page.getByTestId("http-export").click()]);
    expect(JSON.parse(await readFile(await one.path(), "utf8")).log.entries).toHaveLength(1);
    const exported = await a.fake((f) => f.calls.filter((c) => c.cmd === "export_har").map((c) => c.args));
    expect(exported).toEqual([{ forward: "web" }, { forward: "web", ids: [2] }]);
    await page.getByTestId("http-class-5xx").click();

    await page.getByTestId("http-clear").click();
    await page.getByTestId("http-empty").waitFor();
    expect(await a.fake((f) => f.exchanges.get("web")?.length)).toBe(0);
  });

  it("says when a body was not kept for a replay, and when traffic is not HTTP", async () => {
    const a = await openTab();
    const { page } = a;
    await turnOn(a);
    await a.fake((f) =>
      f.request("web", {
        method: "PUT",
        target: "/upload",
        request: { version: "HTTP/1.1", headers: [], trailers: [], headSize: 60, bodySize: 2048, contentSize: 2048, bodyBase64: "", truncated: true, complete: true },
      }),
    );
    await eventually(() => rows(page).count(), (n) => n === 1, "one row");
    await rows(page).first().click();
    await page.getByTestId("http-replay").click();
    await textOf(page, "http-replay-error", /not captured in full.*raise the body capture limit/);

    await a.fake((f) => f.notHttp("web"));
    await textOf(page, "http-passthrough", "not HTTP: traffic passed through unparsed (TLS handshake)");
  });

  it("the switch turns inspection on and off; the tab follows and stops following", async () => {
    const a = await openTab();
    const { page } = a;
    await page.getByTestId("details-tab").click();
    const sw = page.getByTestId("inspect-switch");
    expect(await sw.isChecked()).toBe(false);
    await sw.check();
    await eventually(() => a.fake((f) => f.config.forwards.find((x) => x.name === "web")!.inspect ?? null), (v) => v === "http", "saved on");
    await textOf(page, "notice", /Inspecting web's HTTP traffic/);
    await page.getByTestId("show-http").click();
    await page.getByTestId("http-empty").waitFor();
    await eventually(() => a.fake((f) => f.followed), (v) => v === "web", "followed");
    await a.fake((f) => f.request("web", { target: "/a" }));
    await eventually(() => rows(page).count(), (n) => n === 1, "a row");

    // Off from the Details tab: the HTTP tab's follower ends, the tab says it is off.
    await page.getByTestId("details-tab").click();
    await eventually(() => a.fake((f) => f.followed), (v) => v === null, "unfollowed when the tab closed");
    await page.getByTestId("inspect-switch").uncheck();
    await eventually(() => a.fake((f) => f.config.forwards.find((x) => x.name === "web")!.inspect ?? null), (v) => v === null, "saved off");
    await page.getByTestId("http-tab-button").click();
    await page.getByTestId("http-off").waitFor();

    // Closing the panel stops following too.
    await turnOn(a);
    await page.getByTestId("close-details").click();
    await eventually(() => a.fake((f) => f.followed), (v) => v === null, "unfollowed when the panel closed");
  });

  it("the edit form keeps bodies and redacts headers, checked as typed", async () => {
    const a = await suite.open();
    const { page } = a;
    await page.getByTestId("forward-row-web").first().getByRole("button", { name: "Details of web" }).click();
    await page.getByTestId("edit-forward").click();
    await page.getByTestId("forward-dialog").waitFor();
    const advanced = page.locator("summary", { hasText: "Advanced" });
    if (!(await page.getByTestId("field-inspect").isVisible())) await advanced.click();
    await page.getByTestId("field-inspect").check();
    await page.getByTestId("field-body-kib").fill("5000");
    await textOf(page, "error-inspect.body_kib", /5000 KiB is more than an inspector keeps/);
    await page.getByTestId("field-body-kib").fill("lots");
    await textOf(page, "error-inspect.body_kib", /whole number of KiB/);
    await page.getByTestId("field-body-kib").fill("16");
    await page.getByTestId("field-redact").fill("x-api-key, x:session");
    await textOf(page, "error-inspect.redact", /"x:session" is not a header name/);
    await page.getByTestId("field-redact").fill("x-api-key, x-session");
    await page.getByTestId("save-forward").click();
    await page.getByTestId("forward-dialog").waitFor({ state: "detached" });
    const saved = await a.fake((f) => f.config.forwards.find((x) => x.name === "web")!.inspect);
    expect(saved).toEqual({ body_kib: 16, redact: ["x-api-key", "x-session"] });
    expect(await page.getByTestId("inspect-switch").isChecked()).toBe(true);
  });
});
