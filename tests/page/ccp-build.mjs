// Drives Debian's chromium (headless, through playwright-core) against `capminer ccp`'s live page
// while a CU builds its full dataset (Fluence's 4 GiB); run by the integration test
// `page::the_live_page_shows_a_cus_full_dataset_build_in_a_real_browser` (tests/it/page.rs),
// which starts `capminer ccp` with full datasets and no commitment. Environment:
//   PAGE_PORT     ccp.listen's port        CU      the CU id (allocated to core 0)
//   GLOBAL_NONCE  the commitment (hex)     ITEMS   the fork's dataset item count
//   SHOTS         where the screenshot goes CHROMIUM the browser (default /usr/bin/chromium)
// Checks that the CU's row shows "building" with a progress bar of ITEMS that moves forward, its
// percentage and, from the second poll on, the time left; writes page-ccp-building.png. Exits
// non-zero with the failed check's message.
import path from "node:path";
import assert from "node:assert/strict";
import { base, shots, step, rpc, until, withPage } from "./lib.mjs";

const cu = process.env.CU;
const items = Number(process.env.ITEMS);

await withPage(async (page) => {
  await page.goto(base + "/");
  await page.waitForFunction(() => document.body.dataset.profile === "fluence", null, { timeout: 30000 });

  step("a commitment: the CU keys its cache, then builds its dataset");
  const allocation = { 0: cu };
  const commitment = { global_nonce: process.env.GLOBAL_NONCE, difficulty: "00".repeat(32), cu_allocation: allocation };
  assert.equal(await rpc("ccp_on_active_commitment", commitment), null);
  const state = page.locator(`#cu-${cu} td[data-field=state]`);
  const bar = state.locator("progress");
  const first = await until("a progress bar in the CU's row", async () => {
    if ((await bar.count()) === 0) return null;
    const v = Number(await bar.getAttribute("value"));
    return v > 0 ? v : null;
  });
  assert.equal(await state.locator(".pill").textContent(), "building");
  assert.equal(Number(await bar.getAttribute("max")), items, "the bar counts the fork's dataset items");
  assert.ok(first < items, `${first} of ${items} items: still building`);

  step("the bar moves forward, with the percentage and the time left");
  const later = await until("the bar moving forward", async () => {
    const v = Number(await bar.getAttribute("value"));
    return v > first ? v : null;
  });
  assert.ok(later < items, `${first} -> ${later} of ${items}: still building`);
  const text = await until("the time left under the bar", async () => {
    const t = (await state.textContent()).trim();
    return /dataset \d+ %, .+ left/.test(t) ? t : null;
  });
  const percent = Number(/dataset (\d+) %/.exec(text)[1]);
  assert.ok(percent >= 0 && percent < 100, text);
  await page.screenshot({ path: path.join(shots, "page-ccp-building.png"), fullPage: true });
});
