// What the page scripts share: the browser (Debian's chromium through playwright-core, pinned in
// tools/package.json), the node's API, waiting, and console errors collected as failures.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const { chromium } = createRequire(path.join(root, "tools/package.json"))("playwright-core");

export const base = `http://127.0.0.1:${process.env.PAGE_PORT}`;
export const shots = process.env.SHOTS;
mkdirSync(shots, { recursive: true });

export const step = (s) => console.log(`page: ${s}`);

/** One request to the node: status, body, headers. */
export async function api(p, init) {
  const r = await fetch(base + p, init);
  return { status: r.status, body: await r.text(), headers: r.headers };
}

export const status = async () => JSON.parse((await api("/api/v1/status")).body);

/** One JSON-RPC call to `capminer ccp`, as Fluence's node makes it; its result. */
export async function rpc(method, params) {
  const r = await api("/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  if (r.status !== 200) throw new Error(`${method}: HTTP ${r.status}: ${r.body}`);
  const v = JSON.parse(r.body);
  if ("error" in v) throw new Error(`${method}: ${r.body}`);
  return v.result;
}

/** Polls `f` until it returns something truthy; a throw or falsy value is kept as the last word. */
export async function until(what, f, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** Runs `body(page, ctx)` in a fresh headless chromium; fails on console or page errors. */
export async function withPage(body) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const failures = [];
  const requests = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    page.on("request", (r) => requests.push(r.url()));
    page.on("console", (m) => {
      // A refused token (401) and a stopped node are expected; anything else (a 404, a CSP
      // violation, an exception) fails the test.
      if (m.type() === "error" && !/status of 401|ERR_CONNECTION_REFUSED|Failed to fetch/.test(m.text())) {
        failures.push(`console error: ${m.text()}`);
      }
    });
    page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
    await body(page, { requests });
    if (failures.length) throw new Error(failures.join("\n"));
    step("all checks passed");
  } finally {
    await browser.close();
  }
}
