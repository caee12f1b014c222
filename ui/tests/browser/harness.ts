// Browser test harness: a tiny static server for dist/ (with the strict Content Security
// Policy the app ships under), Debian's Chromium driven by playwright-core, and the fake
// shell (dist-fake/fake.js) injected before the app's own scripts.

import { createServer, type Server } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import type { FakeShell, Scenario } from "../fake/fake";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DIST = join(ROOT, "dist");
const FAKE = join(ROOT, "dist-fake", "fake.js");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
};

export async function serveDist(): Promise<{ url: string; close: () => Promise<void> }> {
  if (!existsSync(join(DIST, "index.html"))) throw new Error("ui/dist is missing: run `npm run build` first");
  const server: Server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
      const rel = normalize(path === "/" ? "/index.html" : path).replace(/^(\.\.[/\\])+/, "");
      const file = join(DIST, rel);
      if (!file.startsWith(DIST) || !(await stat(file)).isFile()) throw new Error("not found");
      const body = await readFile(file);
      res.writeHead(200, {
        "content-type": TYPES[extname(file)] ?? "application/octet-stream",
        "content-security-policy": CSP,
        "cache-control": "no-store",
      });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
  });
}

export type AppPage = {
  page: Page;
  context: BrowserContext;
  /** Console errors, page errors and CSP violations seen so far. */
  problems: string[];
  /** Runs a function on the page's fake shell and returns its result. */
  fake<T>(fn: (f: FakeShell) => T): Promise<Awaited<T>>;
  close: () => Promise<void>;
};

export async function openApp(
  browser: Browser,
  url: string,
  opts: {
    scenario?: Scenario;
    settleMs?: number;
    colorScheme?: "light" | "dark";
    width?: number;
    height?: number;
    /** Script run after the fake is installed, before the app starts. */
    init?: string;
  } = {},
): Promise<AppPage> {
  const context = await browser.newContext({
    viewport: { width: opts.width ?? 1000, height: opts.height ?? 700 },
    colorScheme: opts.colorScheme ?? "light",
  });
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  await page.addInitScript(
    `window.__FERRY_FAKE_OPTIONS__ = ${JSON.stringify({ scenario: opts.scenario ?? "demo", settleMs: opts.settleMs ?? 300 })};
     document.addEventListener("securitypolicyviolation", (e) => console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI));`,
  );
  await page.addInitScript({ path: FAKE });
  if (opts.init) await page.addInitScript(opts.init);
  await page.goto(url);
  await page.locator(".toolbar").waitFor();
  return {
    page,
    context,
    problems,
    fake: <T>(fn: (f: FakeShell) => T) =>
      page.evaluate(`(${fn.toString()})(window.__ferryFake)`) as Promise<Awaited<T>>,
    close: () => context.close(),
  };
}

/** Waits until `read()` gives a value `ok` accepts; fails with the last value seen. */
export async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, what = "condition", ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    try {
      last = await read();
      if (ok(last)) return last;
    } catch (e) {
      if (Date.now() > end) throw e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The text of the element with this data-testid, once it is there. */
export async function textOf(page: Page, testid: string, expected?: string | RegExp): Promise<string> {
  const loc = page.getByTestId(testid).first();
  if (expected === undefined) {
    await loc.waitFor();
    return (await loc.innerText()).trim();
  }
  return eventually(
    async () => (await loc.innerText({ timeout: 1000 })).trim(),
    (t) => (typeof expected === "string" ? t === expected : expected.test(t)),
    `${testid} to read ${expected}`,
  );
}

/** A test file's browser: one static server and one Chromium for the file; after each test
 * its page is closed, and it must have run without console errors or Content Security
 * Policy violations. `open` opens the app (then runs `afterOpen`, when given). */
export function browserSuite(afterOpen?: (a: AppPage) => Promise<unknown>) {
  let browser: Browser | undefined;
  let server: { url: string; close: () => Promise<void> } | undefined;
  let app: AppPage | null = null;
  beforeAll(async () => {
    server = await serveDist();
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  afterEach(async () => {
    const problems = app?.problems ?? [];
    await app?.close();
    app = null;
    expect(problems).toEqual([]);
  });
  return {
    async open(opts: Parameters<typeof openApp>[2] = {}): Promise<AppPage> {
      if (!browser || !server) throw new Error("the browser did not start");
      app = await openApp(browser, server.url, opts);
      if (afterOpen) await afterOpen(app);
      return app;
    },
    /** The address the app is served at. */
    get url(): string {
      if (!server) throw new Error("the server did not start");
      return server.url;
    },
  };
}
