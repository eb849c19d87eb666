// Drives Debian's chromium (headless, through playwright-core) against `capminer ccp`'s live page
// (the Fluence profile) on ccp.listen; run by the integration test
// `page::the_live_page_shows_capminer_ccp_in_a_real_browser` (tests/it/page.rs), which starts
// `capminer ccp` in light mode with no commitment. This script plays Fluence's node over raw
// JSON-RPC (`POST /`). Environment:
//   PAGE_PORT     ccp.listen's port        API_TOKEN   the right token
//   CUS           CU ids, comma-separated (allocated to cores 0, 1, ...)
//   GLOBAL_NONCE, DIFFICULTY   the commitment (hex, no 0x)
//   SHOTS         where the screenshots go CHROMIUM    the browser (default /usr/bin/chromium)
// Checks the page against /api/v1/status value for value (commitment, CU ids, cores, threads,
// proofs, last indices, proofs served), pause and resume by CU with the token, the alerts and
// "no active commitment"; writes page-ccp.png, page-ccp-paused.png, page-ccp-phone.png and
// page-ccp-none.png. Exits non-zero with the failed check's message.
import path from "node:path";
import assert from "node:assert/strict";
import { base, shots, step, api, rpc, status, until, withPage } from "./lib.mjs";

const token = process.env.API_TOKEN;
const cus = process.env.CUS.split(",");
const nonce = process.env.GLOBAL_NONCE;
const difficulty = process.env.DIFFICULTY;

const short = (cu) => cu.slice(0, 8);
const text = async (locator) => (await locator.textContent()).trim();
const alertCount = async (page, name) => page.locator(`#alerts li[data-name=${name}]`).count();

await withPage(async (page, { requests }) => {
  // The same policy as `capminer run`'s page, on the page and its data.
  const first = await page.goto(base + "/");
  const csp = first.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.equal(first.headers()["x-content-type-options"], "nosniff");
  for (const p of ["/page/app-fluence.js", "/api/v1/live", "/api/v1/history"]) {
    const r = await api(p);
    assert.match(r.headers.get("content-security-policy") || "", /default-src 'none'/, p);
    assert.equal(r.headers.get("x-content-type-options"), "nosniff", p);
  }

  step("no commitment yet");
  await page.waitForFunction(() => document.body.dataset.profile === "fluence", null, { timeout: 30000 });
  assert.ok(await page.locator("#cc-none").isVisible(), "'no active commitment' is shown");
  assert.ok(!(await page.locator("#cc-fields").isVisible()), "no commitment fields without one");
  await page.waitForSelector("#alerts li[data-name=CapminerCcpNoCommitment]", { timeout: 10000 });
  assert.equal(await page.locator("#cus tbody tr").count(), 0);
  assert.ok(await page.locator("#no-cus").isVisible());
  // The profile's sections only: no epoch, chain pipeline or GPU card.
  for (const id of ["#commitment-section", "#cus", "#ccp-proofs", "#profile"]) {
    assert.ok(await page.locator(id).isVisible(), `${id} is shown`);
  }
  for (const id of ["#epoch-section", "#units", "#pipeline", "#gpus"]) {
    assert.ok(!(await page.locator(id).isVisible()), `${id} is hidden in the Fluence profile`);
  }
  assert.match(await text(page.locator("#ccp-chain-note")), /^No chain section in the Fluence profile: nox/);
  assert.equal(await text(page.locator("#ccp-served")), "0");

  step("a commitment with two CUs");
  const allocation = Object.fromEntries(cus.map((cu, core) => [String(core), cu]));
  assert.equal(await rpc("ccp_on_active_commitment", { global_nonce: nonce, difficulty, cu_allocation: allocation }), null);
  await until("both CUs hashing, with a 10 s rate and proofs, on the page", async () => {
    for (const cu of cus) {
      const row = page.locator(`#cu-${cu}`);
      if ((await row.getAttribute("data-state")) !== "hashing") return false;
      if (!(Number(await row.locator("[data-field=rate-10s]").getAttribute("data-value")) > 0)) return false;
      if (!(Number(await text(row.locator("[data-field=proofs]"))) > 0)) return false;
    }
    return true;
  }, 120000);
  const s = await status();
  assert.deepEqual(s.commitment, { global_nonce: nonce, difficulty });
  assert.equal(await text(page.locator("#cc-nonce")), s.commitment.global_nonce);
  assert.equal(await text(page.locator("#cc-difficulty")), s.commitment.difficulty);
  assert.ok(!(await page.locator("#cc-none").isVisible()));
  assert.equal(await text(page.locator("#cc-utility")), "any (none set)");
  await until("the no-commitment alert to clear", async () => (await alertCount(page, "CapminerCcpNoCommitment")) === 0, 10000);
  // Every CU as the status has it, in its order (by core).
  assert.deepEqual(s.units.map((u) => [u.cu, u.core, u.threads]), cus.map((cu, core) => [cu, core, 1]));
  assert.deepEqual(await page.locator("#cus tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.cu)), cus);
  for (const u of s.units) {
    const row = page.locator(`#cu-${u.cu}`);
    assert.equal(await row.locator("[data-field=cu]").getAttribute("title"), u.cu);
    assert.equal(await text(row.locator("[data-field=cu]")), short(u.cu) + "…");
    assert.equal(await text(row.locator("[data-field=core]")), String(u.core));
    assert.equal(await text(row.locator("[data-field=threads]")), String(u.threads));
  }
  // The chart, from the samples the node keeps under each CU's label.
  await page.waitForSelector("#chart-cpu canvas", { timeout: 10000 });
  const history = JSON.parse((await api("/api/v1/history")).body);
  const labels = new Set(history.history.fine.flatMap((x) => x.units.map((u) => u.unit)));
  assert.deepEqual([...labels].sort(), cus.map(short).sort());
  assert.equal(await page.locator("#alerts li").count(), 0, "nothing to alert about while both hash");
  await page.screenshot({ path: path.join(shots, "page-ccp.png"), fullPage: true });

  step("pause one CU: without the token, then with it");
  const one = page.locator(`#cu-${cus[0]}`);
  await one.locator("button[data-action=pause]").click();
  await until("the no-token message", async () => /Enter the API token/.test(await text(page.locator("#action-msg"))));
  assert.equal((await status()).units[0].state, "hashing", "a refused pause changes nothing");
  await page.fill("#token", token);
  await page.click("#token-save");
  await page.locator(`#cu-${cus[0]} button[data-action=pause]`).click();
  await until("the first CU paused per the status", async () => (await status()).units[0].state === "paused");
  await page.waitForSelector(`#alerts li[data-name=CapminerCcpUnitPaused][data-subject="${cus[0]}"]`, { timeout: 10000 });
  assert.equal(await text(page.locator("#action-msg")), `pause CU ${short(cus[0])}: done`);
  await until("the page's row paused, the other hashing", async () =>
    (await one.getAttribute("data-state")) === "paused" &&
    (await page.locator(`#cu-${cus[1]}`).getAttribute("data-state")) === "hashing", 10000);
  assert.equal((await status()).units[1].state, "hashing", "only the CU named is paused");
  assert.equal(await text(page.locator("#alert-count")), "1");
  // The token stays in the tab.
  assert.equal(await page.evaluate(() => sessionStorage.getItem("capminer.api.token")), token);
  assert.ok(!requests.some((u) => u.includes(token)), "the token is in no requested address");
  for (const u of requests) assert.ok(u.startsWith(base + "/"), `a request to another origin: ${u}`);

  step("every CU paused: the page's proofs are the status's");
  await page.click("#pause-all");
  await until("every CU paused", async () => (await status()).units.every((u) => u.state === "paused"));
  // The node fetches every proof: what it gets is what the status counts. A CU's batch under
  // way when it was paused still stores what it finds (seconds on a loaded machine), so the
  // status is read before and after the fetch, and the fetch repeated until they agree.
  const { before, settled, batches } = await until("the status unchanged across a fetch of every proof", async () => {
    const before = await status();
    const batches = await rpc("ccp_get_proofs_after", { last_known_proofs: {}, limit: 10000 });
    const settled = await status();
    return JSON.stringify(before.units) === JSON.stringify(settled.units) ? { before, settled, batches } : null;
  });
  const served = batches.reduce((n, b) => n + b.proof_batches.length, 0);
  for (const u of settled.units) {
    assert.ok(u.proofs_found > 0, `CU ${u.cu} found proofs`);
    assert.equal(u.last_proof_index, u.proofs_found, "one epoch: indices 1..=found");
    const mine = batches.find((b) => b.cu_id === u.cu);
    assert.equal(mine.proof_batches.length, u.proofs_found, `the proofs served of CU ${u.cu}`);
  }
  // The status counts every proof a fetch serves.
  assert.equal(settled.proofs_served, before.proofs_served + served);
  // The page shows the status's counts (read afresh at each look: nothing runs backwards).
  await until("the page to show the status's proofs", async () => {
    const now = await status();
    const shown = [], want = [];
    for (const u of now.units) {
      const row = page.locator(`#cu-${u.cu}`);
      shown.push([await text(row.locator("[data-field=proofs]")), await text(row.locator("[data-field=last-index]"))]);
      want.push([String(u.proofs_found), String(u.last_proof_index)]);
    }
    shown.push(await text(page.locator("#ccp-found")), await text(page.locator("#ccp-served")));
    want.push(String(now.units.reduce((n, u) => n + u.proofs_found, 0)), String(now.proofs_served));
    if (JSON.stringify(shown) !== JSON.stringify(want)) {
      throw new Error(`the page shows ${JSON.stringify(shown)}, /api/v1/status says ${JSON.stringify(want)}`);
    }
    return true;
  }, 10000);
  await until("a paused alert for each CU", async () => (await alertCount(page, "CapminerCcpUnitPaused")) === 2, 10000);
  await page.screenshot({ path: path.join(shots, "page-ccp-paused.png"), fullPage: true });

  step("resume all");
  await page.click("#resume-all");
  await until("every CU hashing again", async () => (await status()).units.every((u) => u.state === "hashing"));
  await until("the alerts to clear", async () => (await page.locator("#alerts li").count()) === 0, 10000);
  assert.equal(await text(page.locator("#action-msg")), "resume all CUs: done");

  // A phone's width: nothing overflows sideways; each CU's state, rate and button fit.
  step("phone width");
  await page.setViewportSize({ width: 390, height: 844 });
  await new Promise((r) => setTimeout(r, 2500));
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width} px wide at a phone's 390`);
  for (const field of ["[data-field=state]", "[data-field=rate-10s]", "button"]) {
    let box;
    await until(`the first CU's ${field} within a phone's screen`, async () => {
      box = await page.locator(`#cu-${cus[0]} ${field}`).boundingBox();
      return box && box.x + box.width <= 390;
    }, 10000).catch((e) => assert.fail(`${e.message}; its last box: ${JSON.stringify(box)}`));
  }
  await page.screenshot({ path: path.join(shots, "page-ccp-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 1000 });

  step("no active commitment");
  assert.equal(await rpc("ccp_on_no_active_commitment", null), null);
  await until("the page to say so", async () =>
    (await page.locator("#cc-none").isVisible()) && (await page.locator("#cus tbody tr").count()) === 0 &&
    (await alertCount(page, "CapminerCcpNoCommitment")) === 1, 10000);
  assert.ok(!(await page.locator("#cc-fields").isVisible()));
  assert.equal((await status()).commitment, null);
  assert.equal(await text(page.locator("#ccp-served")), String(served), "proofs served since start stay");
  await page.screenshot({ path: path.join(shots, "page-ccp-none.png"), fullPage: true });
});
