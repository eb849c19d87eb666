// The live page of a devnet's node (a chain client, a verifier, short epochs): run by the
// integration test `page::the_live_page_follows_a_devnets_chain` (tests/it/page.rs), which
// starts `capminer devnet`. Checks the epoch's progress bar, each unit's proofs against the
// epoch's min_proofs / max_proofs (MIN_PROOFS, MAX_PROOFS), and the chain pipeline's final
// proofs and gas against /api/v1/status and /api/v1/live; writes page-chain.png.
import path from "node:path";
import assert from "node:assert/strict";
import { base, shots, step, api, status, until, withPage } from "./lib.mjs";

const min = Number(process.env.MIN_PROOFS);
const max = Number(process.env.MAX_PROOFS);
const live = async () => JSON.parse((await api("/api/v1/live")).body);

await withPage(async (page) => {
  await page.goto(base + "/");
  step("waiting for the chain's epoch");
  await until("an epoch with an end", async () => (await live()).epoch.ends_at > 0, 60000);
  await page.waitForFunction(() => !document.getElementById("epoch-bar").hasAttribute("data-unknown"), null, { timeout: 10000 });
  await until("the page's epoch to be the node's", async () => {
    const n = (await live()).epoch.number;
    const shown = await page.locator("#epoch-number").textContent();
    if (shown !== String(n)) throw new Error(`the page shows epoch ${shown}, the node ${n}`);
    return true;
  }, 10000);
  assert.match(await page.locator("#epoch-left").textContent(), /% done, ends in .*chain clock/);

  step("proofs against the epoch's minimum and maximum");
  await until("cpu0's proofs against min and max", async () => {
    const text = await page.locator("#unit-cpu0 [data-field=proofs]").textContent();
    if (!text.endsWith(` / ${min} / ${max}`)) throw new Error(`cpu0's proofs cell: ${text}`);
    return true;
  }, 30000);
  assert.equal(await page.locator("#unit-cpu0 [data-field=proofs] progress").getAttribute("max"), String(max));

  step("final proofs and gas");
  await until("proofs final on the chain", async () => (await status()).chain?.proofs_accepted > 0, 120000);
  // The node moves on between two reads: compare each poll's page with the answers around it.
  await until("the page's final proofs and gas to be the node's", async () => {
    const before = await live();
    const shown = {
      final: Number(await page.locator("#pipe-final").textContent()),
      gas: Number(await page.locator("#pipe-gas").textContent()),
    };
    const after = await live();
    const want = { final: after.chain.proofs_accepted, gas: after.chain.gas_used };
    const same = (a, b) => a.final === b.final && a.gas === b.gas;
    const then = { final: before.chain.proofs_accepted, gas: before.chain.gas_used };
    if (!same(shown, want) && !same(shown, then)) {
      throw new Error(`the page shows ${JSON.stringify(shown)}, the node ${JSON.stringify(want)}`);
    }
    return shown.final > 0 && shown.gas > 0;
  }, 20000);
  assert.match(await page.locator("#chain-note").textContent(), /^Head block \d+, signer balance [\d.]+ ether\.$/);
  assert.ok((await page.locator("#pipeline tbody tr").count()) >= 1, "the pipeline lists the open epochs");
  await page.screenshot({ path: path.join(shots, "page-chain.png"), fullPage: true });
});
