import { test } from "vitest";
import { launch, openApp, serveDist } from "./harness";
test("shots", async () => {
  const srv = await serveDist();
  const b = await launch();
  for (const [which, scheme, extra] of JSON.parse(process.env.SHOTS ?? '[["demo","light",""]]')) {
    const app = await openApp(b, srv.url, { scenario: which, colorScheme: scheme });
    await app.page.waitForTimeout(800);
    await app.page.screenshot({ path: `/tmp/shot-${which}-${scheme}.png` });
    if (extra === "add") {
      await app.page.keyboard.press("n");
      await app.page.waitForTimeout(600);
      await app.page.screenshot({ path: `/tmp/shot-add-${scheme}.png` });
    }
    if (extra === "details") {
      await app.page.click("[data-testid=forward-row-db] button.name");
      await app.page.waitForTimeout(400);
      await app.page.screenshot({ path: `/tmp/shot-details-${scheme}.png` });
    }
    console.log(which, app.problems);
    await app.close();
  }
  await b.close(); await srv.close();
}, 60000);
