// Not a check: `npm run screenshots` saves pictures of the main screens in both themes to
// test-results/ for looking at by eye. Skipped in `npm test`.

import { describe, it } from "vitest";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { launch, openApp, serveDist } from "./harness";

const OUT = fileURLToPath(new URL("../../test-results/", import.meta.url));
/** The README's pictures of what only the window shows (docs/screenshots). */
const DOCS = fileURLToPath(new URL("../../../docs/screenshots/", import.meta.url));

describe.skipIf(!process.env.SCREENSHOTS)("screenshots", () => {
  it("saves pictures", async () => {
    mkdirSync(OUT, { recursive: true });
    const server = await serveDist();
    const browser = await launch();
    try {
      for (const scheme of ["light", "dark"] as const) {
        for (const [name, width] of [["wide", 1000], ["narrow", 520]] as const) {
          const a = await openApp(browser, server.url, { scenario: "banner", colorScheme: scheme, width, height: 640 });
          const { page } = a;
          await page.getByTestId("forward-row-echo").first().waitFor();
          await a.fake((f) => f.setForwardState("web", "error", { error: "local port 18081 is in use by another program" }));
          await page.waitForTimeout(300);
          await page.screenshot({ path: `${OUT}main-${name}-${scheme}.png` });
          await page.getByTestId("forward-row-db").first().getByRole("button", { name: "Details of db" }).click();
          await page.waitForTimeout(300);
          await page.screenshot({ path: `${OUT}details-${name}-${scheme}.png` });
          await page.getByTestId("edit-forward").click();
          await page.locator("summary", { hasText: "Advanced" }).click();
          await page.getByTestId("field-local-port").fill("70000");
          await page.waitForTimeout(600);
          await page.screenshot({ path: `${OUT}edit-${name}-${scheme}.png` });
          await page.keyboard.press("Escape");
          await page.getByTestId("confirm-ok").click(); // discard the change
          await page.getByTestId("open-settings").click();
          await page.waitForTimeout(200);
          await page.screenshot({ path: `${OUT}settings-${name}-${scheme}.png` });
          await page.keyboard.press("Escape");
          await page.getByTestId("new-profile").click();
          await page.waitForTimeout(200);
          await page.screenshot({ path: `${OUT}profile-${name}-${scheme}.png` });
          await page.keyboard.press("Escape");
          await page.getByTestId("open-import").click();
          await page.getByTestId("import-text").fill("kubectl port-forward svc/echo 18090:80 -n demo\nkubectl port-forward svc/web 8081:80 -n demo\nkubectl port-forward deploy/web 8082:8080 -n demo --context ferry-fake");
          await page.getByTestId("import-preview-button").click();
          await page.waitForTimeout(200);
          await page.screenshot({ path: `${OUT}import-${name}-${scheme}.png` });
          await page.keyboard.press("Escape");
          await page.getByTestId("confirm-ok").click(); // discard the pasted text
          await page.getByTestId("open-export").click();
          await page.getByTestId("export-format").selectOption("kftray");
          await page.getByTestId("export-notes").waitFor();
          await page.screenshot({ path: `${OUT}export-${name}-${scheme}.png` });
          await a.close();
        }
        const e = await openApp(browser, server.url, { scenario: "empty", colorScheme: scheme });
        await e.page.getByTestId("empty-state").waitFor();
        await e.page.screenshot({ path: `${OUT}empty-${scheme}.png` });
        await e.close();
      }
    } finally {
      await browser.close();
      await server.close();
    }
  }, 90_000);

  it("saves the HTTP tab for the README", async () => {
    const server = await serveDist();
    const browser = await launch();
    try {
      const a = await openApp(browser, server.url, { scenario: "demo", colorScheme: "light", width: 1200, height: 760 });
      const { page } = a;
      await page.getByTestId("forward-row-web").first().getByRole("button", { name: "Details of web" }).click();
      await page.getByTestId("http-tab-button").click();
      await page.getByTestId("http-turn-on").click();
      await page.getByTestId("http-empty").waitFor();
      await page.waitForTimeout(300);
      await a.fake((f) => {
        const json = (text: string) => ({
          version: "HTTP/1.1" as const,
          headers: [{ name: "Content-Type", value: "application/json" }],
          trailers: [],
          headSize: 96,
          bodySize: text.length,
          contentSize: text.length,
          bodyBase64: btoa(text),
          truncated: false,
          complete: true,
        });
        f.request("web", { target: "/" });
        f.request("web", { target: "/api/orders?status=open", response: json('[{"id":"o-17","item":"tea","count":2},{"id":"o-18","item":"cake","count":1}]') });
        f.request("web", {
          method: "POST",
          target: "/api/orders",
          status: 201,
          reason: "Created",
          durationMs: 14.2,
          request: {
            ...json('{"item":"tea","count":2}'),
            headers: [
              { name: "Host", value: "127.0.0.1:18081" },
              { name: "Authorization", value: "[redacted]", redacted: true },
              { name: "Content-Type", value: "application/json" },
            ],
          },
          response: json('{"id":"o-19","status":"open"}'),
        });
        f.request("web", { target: "/api/orders/o-99", status: 404, reason: "Not Found", durationMs: 1.9 });
        f.request("web", { target: "/healthz", durationMs: 0.8 });
        f.request("web", { target: "/api/report", status: 503, reason: "Service Unavailable", durationMs: 30.5 });
      });
      await page.getByTestId("http-row").nth(5).waitFor();
      await page.getByTestId("http-row").nth(2).click();
      await page.getByTestId("http-replay").click();
      await page.getByTestId("http-replayed").waitFor();
      // The notices say what the clicks did; the picture is of the tab.
      for (const dismiss of await page.getByTestId("notice").getByRole("button", { name: "Dismiss" }).all()) await dismiss.click();
      await page.waitForTimeout(300);
      mkdirSync(DOCS, { recursive: true });
      await page.screenshot({ path: `${DOCS}http-tab.png` });
      await a.close();
    } finally {
      await browser.close();
      await server.close();
    }
  }, 30_000);
});
