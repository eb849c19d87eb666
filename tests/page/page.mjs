// Drives Debian's chromium (headless, through playwright-core) against a running capminer node's
// live page; run by the integration test `page::the_live_page_shows_the_node_live_in_a_real_browser`
// (tests/it/page.rs), which starts the node. Environment:
//   PAGE_PORT   the control API's port     API_TOKEN  the right token
//   NODE_PID    the node's pid (stopped at the end, to see the "node unreachable" state)
//   BYTES_PER_HASH  dataset bytes a GPU hash reads (accesses x 128)
//   SHOTS       where the screenshots go   CHROMIUM   the browser (default /usr/bin/chromium)
// (lib.mjs reads PAGE_PORT, SHOTS and CHROMIUM.)
// Exits non-zero with the failed check's message.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { root, base, shots, step, api, status, until, withPage } from "./lib.mjs";

const token = process.env.API_TOKEN;
const nodePid = Number(process.env.NODE_PID);
const bytesPerHash = Number(process.env.BYTES_PER_HASH);

// The vendored chart library is the pinned npm release, byte for byte.
const UPLOT_SHA256 = "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f";
const sha = (b) => createHash("sha256").update(b).digest("hex");
const vendored = readFileSync(path.join(root, "src/api/page/vendor/uPlot.iife.min.js"));
assert.equal(sha(vendored), UPLOT_SHA256, "src/api/page/vendor/uPlot.iife.min.js: sha256");
assert.equal(
  sha(readFileSync(path.join(root, "tools/node_modules/uplot/dist/uPlot.iife.min.js"))),
  UPLOT_SHA256,
  "tools/node_modules/uplot (the version pinned in tools/package.json): sha256",
);

const unitState = async (label) => (await status()).units.find((u) => u.unit === label).state;
await withPage(async (page, { requests }) => {
  // Safe by default: the policy, on the page and its files.
  const first = await page.goto(base + "/");
  const csp = first.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.equal(first.headers()["x-content-type-options"], "nosniff");
  const servedUplot = await api("/page/uPlot.iife.min.js");
  assert.equal(sha(Buffer.from(servedUplot.body)), UPLOT_SHA256, "the served uPlot");
  assert.match(servedUplot.headers.get("content-security-policy"), /default-src 'none'/);

  step("waiting for live data");
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 2, null, { timeout: 30000 });
  const row = page.locator("#unit-cpu0");
  await until("cpu0 hashing with a non-zero 10 s rate on the page", async () => {
    const v = Number(await row.locator("[data-field=rate-10s]").getAttribute("data-value"));
    return (await row.getAttribute("data-state")) === "hashing" && v > 0;
  });
  for (const w of ["10s", "60s"]) {
    const v = Number(await row.locator(`[data-field=rate-${w}]`).getAttribute("data-value"));
    assert.ok(v > 0, `cpu0's ${w} rate on the page is ${v}`);
  }
  assert.equal(await row.locator("[data-field=kind]").textContent(), "cpu");
  // The GPU unit (lavapipe): its row hashes, and the devices table lists its adapter.
  const gpuUnit = (await status()).units.find((u) => u.kind === "gpu");
  assert.ok(gpuUnit, "the node runs a GPU unit");
  const gpuRow = page.locator(`#unit-${gpuUnit.unit.replace(".", "\\.")}`);
  await until("the GPU unit hashing on the page", async () =>
    (await gpuRow.getAttribute("data-state")) === "hashing" &&
    Number(await gpuRow.locator("[data-field=rate-10s]").getAttribute("data-value")) > 0);
  assert.equal(await page.locator("#gpus tbody tr").count(), 1);
  assert.equal(await page.locator("#gpus tbody tr td:nth-child(2)").textContent(), gpuUnit.unit);
  assert.equal(await page.locator("#gpus tbody tr td:nth-child(1)").textContent(), gpuUnit.place);
  // The device's dataset read rate: its units' 60 s hashrate times the bytes a hash reads.
  await until("the GPU's dataset read rate on the page", async () => {
    const live = JSON.parse((await api("/api/v1/live")).body);
    const g = live.gpus[0];
    return g.hashrate > 0 && Math.abs(g.bytes_per_second - g.hashrate * bytesPerHash) < 1e-6 * g.bytes_per_second &&
      /\/s$/.test(await page.locator("#gpus tbody tr td:nth-child(4)").textContent());
  });
  assert.equal(await page.locator("#epoch-number").textContent(), "7");
  assert.ok(await page.locator("#epoch-bar").isVisible(), "the epoch bar is shown");
  assert.match(await page.locator("#epoch-left").textContent(), /No chain client/);
  assert.equal(await page.locator("#conn").textContent(), "live");
  await page.waitForSelector("#chart-cpu canvas", { timeout: 10000 });
  await page.waitForSelector("#chart-gpu canvas", { timeout: 10000 });
  // History survives a reload: the chart's first points come from /api/v1/history.
  const history = JSON.parse((await api("/api/v1/history")).body);
  assert.ok(history.history.fine.length >= 1, "the node keeps samples");
  assert.ok(history.bytes <= history.max_bytes, `history ${history.bytes} B > ${history.max_bytes} B`);
  await page.screenshot({ path: path.join(shots, "page-desktop.png"), fullPage: true });
  // A reload starts its chart from the node's samples, not from nothing.
  await page.reload();
  await page.waitForSelector("#chart-cpu canvas", { timeout: 10000 });
  const firstT = await page.evaluate(() => charts.cpu.data[0][0]);
  assert.equal(firstT, history.history.fine[0].t, "the reloaded chart starts at the history's first sample");
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 1, null, { timeout: 10000 });

  // Pause without a token: the page says so, nothing changes.
  step("pause without a token, with a wrong one");
  await row.locator("button[data-action=pause]").click();
  await until("the no-token message", async () => /Enter the API token/.test(await page.locator("#action-msg").textContent()));
  // A wrong token: the same 401 as from curl.
  await page.fill("#token", "not-the-token");
  await page.click("#token-save");
  await row.locator("button[data-action=pause]").click();
  const curl = await api("/api/v1/pause?unit=cpu0", { method: "POST", headers: { Authorization: "Bearer not-the-token" } });
  assert.equal(curl.status, 401);
  const wrongError = JSON.parse(curl.body).error;
  await until("the wrong-token refusal", async () => (await page.locator("#action-msg").textContent()) === `pause refused (HTTP 401): ${wrongError}`);
  assert.equal((await unitState("cpu0")), "hashing", "a refused pause changes nothing");

  // The right token: pause works, the alert appears.
  step("pause with the token");
  await page.fill("#token", token);
  await page.click("#token-save");
  await page.locator("#unit-cpu0 button[data-action=pause]").click();
  await until("cpu0 paused per the API", async () => (await unitState("cpu0")) === "paused");
  await page.waitForSelector('#alerts li[data-name=CapminerUnitPaused][data-subject=cpu0]', { timeout: 10000 });
  assert.match(await page.locator("#alerts").textContent(), /Fix: press Resume/);
  assert.equal(await page.locator("#alert-count").textContent(), "1");

  // The token stays in the tab: session storage, never an address, never local storage.
  assert.equal(await page.evaluate(() => sessionStorage.getItem("capminer.api.token")), token);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.ok(!requests.some((u) => u.includes(token)), "the token is in no requested address");
  assert.ok(!(await page.content()).includes(token), "the token is not in the page");
  for (const u of requests) assert.ok(u.startsWith(base + "/"), `a request to another origin: ${u}`);

  step("resume cpu0");
  await page.locator("#unit-cpu0 button[data-action=resume]").click();
  await until("cpu0 hashing again", async () => (await unitState("cpu0")) === "hashing");
  await until("the alert to clear", async () => (await page.locator("#alerts li").count()) === 0, 10000);

  // The pipeline's counts are those of /api/v1/status, once the paused node's counts settle.
  step("pipeline against /api/v1/status");
  await page.click("#pause-all");
  await until("every unit paused", async () => (await status()).units.every((u) => u.state === "paused"));
  const ids = { found: "#pipe-found", stored: "#pipe-stored" };
  let settled = await status();
  await until("the counters to settle", async () => {
    await new Promise((r) => setTimeout(r, 1000));
    const again = await status();
    const same = JSON.stringify(again.proofs) === JSON.stringify(settled.proofs) &&
      JSON.stringify(again.proofs_in_flight) === JSON.stringify(settled.proofs_in_flight);
    settled = again;
    return same;
  });
  assert.ok(settled.proofs.found > 0, "the node found proofs");
  await until("the page to show the status's counts", async () => {
    const shown = {}, want = {};
    for (const [k, sel] of Object.entries(ids)) {
      shown[k] = Number(await page.locator(sel).textContent());
      want[k] = settled.proofs[k];
    }
    shown.waiting = Number(await page.locator("#pipe-waiting").textContent());
    want.waiting = settled.proofs_in_flight.found ?? 0;
    if (JSON.stringify(shown) !== JSON.stringify(want)) {
      throw new Error(`the page shows ${JSON.stringify(shown)}, /api/v1/status says ${JSON.stringify(want)}`);
    }
    return true;
  }, 10000);
  const live = JSON.parse((await api("/api/v1/live")).body);
  const epoch7 = live.pipeline.find((e) => e.epoch === 7);
  assert.equal(epoch7.found, settled.proofs_in_flight.found ?? 0, "the epoch's waiting proofs are the store's");
  assert.equal(
    await page.locator("#pipeline tr[data-epoch='7'] td:nth-child(2)").textContent(),
    String(epoch7.found),
  );
  const unitLive = live.units.find((u) => u.unit === "cpu0");
  assert.equal(
    await page.locator("#unit-cpu0 [data-field=proofs] .strong").textContent(),
    String(unitLive.epoch_proofs),
  );
  await page.screenshot({ path: path.join(shots, "page-paused.png"), fullPage: true });

  assert.equal(await page.locator("#alerts li[data-name=CapminerUnitPaused]").count(), 2);
  step("resume all");
  await page.click("#resume-all");
  await until("every unit hashing again", async () => (await status()).units.every((u) => u.state === "hashing"));
  await until("the alert to clear", async () => (await page.locator("#alerts li").count()) === 0, 10000);

  // A phone's width: everything fits, nothing overflows the page sideways.
  step("phone width");
  await page.setViewportSize({ width: 390, height: 844 });
  await new Promise((r) => setTimeout(r, 2500));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 390, `the page is ${overflow} px wide at a phone's 390`);
  assert.ok(await page.locator("#unit-cpu0").isVisible());
  // Each unit's state, rate and action fit the screen without scrolling sideways. Measured
  // until it holds: every poll rebuilds the rows, and an element measured while it is swapped
  // has no box (null); one that stays off the screen fails with its last box.
  for (const field of ["[data-field=state]", "[data-field=rate-10s]", "button"]) {
    let box;
    await until(`cpu0's ${field} within a phone's screen`, async () => {
      box = await page.locator(`#unit-cpu0 ${field}`).boundingBox();
      return box && box.x + box.width <= 390;
    }, 10000).catch((e) => assert.fail(`${e.message}; its last box: ${JSON.stringify(box)}`));
  }
  await page.screenshot({ path: path.join(shots, "page-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 1000 });

  // The node stops: the page says so, keeps the last data greyed, and is not blank.
  step("node unreachable");
  process.kill(nodePid, "SIGTERM");
  await page.waitForSelector("#unreachable:not(.hidden)", { timeout: 20000 });
  assert.equal(await page.locator("#conn").textContent(), "node unreachable");
  assert.match(await page.locator("#unreachable").textContent(), /Node unreachable\..*Last data at/);
  assert.ok(await page.locator("#unit-cpu0").isVisible(), "the last data stays on the page");
  await page.screenshot({ path: path.join(shots, "page-unreachable.png"), fullPage: true });
});
