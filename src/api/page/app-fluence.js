// The live page's sections of the Fluence profile (`capminer ccp`): the commitment, the CUs and
// the proofs served to the node, from /api/v1/status ("profile": "fluence") and /api/v1/live.
// Loaded before app.js, whose helpers ($, el, rate, button, stateCell) it uses when app.js's
// poll calls renderFluence. Data goes into the page through textContent only.
"use strict";

function renderFluence(status, live) {
  const c = status.commitment;
  $("cc-none").classList.toggle("hidden", !!c);
  $("cc-fields").classList.toggle("hidden", !c);
  $("cc-nonce").textContent = c ? c.global_nonce : "–";
  $("cc-difficulty").textContent = c ? c.difficulty : "–";
  $("cc-utility").textContent = status.utility_cpus.length
    ? status.utility_cpus.join(", ")
    : "any (none set)";
  renderCus(status, live);
  $("ccp-found").textContent = status.units.reduce((sum, u) => sum + u.proofs_found, 0);
  $("ccp-served").textContent = status.proofs_served;
}

// One row a CU: the status's fields, the live answer's rates and build progress.
function renderCus(status, live) {
  const tbody = $("cus").tBodies[0];
  tbody.replaceChildren();
  const byCu = Object.fromEntries(live.units.map((u) => [u.cu, u]));
  const now = Date.now() / 1000;
  for (const u of status.units) {
    const lu = byCu[u.cu];
    const label = lu ? lu.unit : u.cu.slice(0, 8);
    const tr = el("tr");
    tr.id = "cu-" + u.cu;
    tr.dataset.cu = u.cu;
    tr.dataset.state = u.state;
    const cell = (text, field, cls) => {
      const td = el("td", text, cls);
      td.dataset.field = field;
      tr.append(td);
      return td;
    };
    cell(label + "…", "cu", "strong mono").title = u.cu;
    cell(u.core, "core", "num");
    cell(u.threads, "threads", "num");
    tr.append(stateCell({ unit: label, state: u.state, reason: u.reason }, lu, now));
    for (const w of ["10s", "60s", "15m"]) {
      const v = lu ? lu.hashrate[w] : null;
      const td = cell(rate(v), "rate-" + w, "num");
      if (v != null) td.dataset.value = v;
    }
    cell(u.proofs_found, "proofs", "num");
    cell(u.last_proof_index ?? "–", "last-index", "num");
    const actions = el("td");
    const b = u.state === "paused" ? button("Resume", "resume", u.cu) : button("Pause", "pause", u.cu);
    b.dataset.name = "CU " + label;
    actions.append(b);
    tr.append(actions);
    tbody.append(tr);
  }
  $("no-cus").classList.toggle("hidden", status.units.length > 0);
}
