// Not a check: `npm run screenshots` saves pictures of the main screens in both themes to
// test-results/ for looking at by eye. Skipped in `npm test`.

import { describe, it } from "vitest";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { launch, openApp, serveDist } from "./harness";

const OUT = fileURLToPath(new URL("../../test-results/", import.meta.url));

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
});
