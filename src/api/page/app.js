// capminer's live page: polls the node's read-only endpoints every 2 s and draws what they say.
// One page for both profiles: the status's "profile" ("fluence": `capminer ccp`, drawn by
// app-fluence.js) picks the sections shown (body[data-profile], see app.css).
// No inline code (the Content-Security-Policy forbids it); data only ever goes into the page
// through textContent, never as HTML. The API token lives in this tab's sessionStorage and is
// sent only in the Authorization header of pause/resume requests.
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "capminer.api.token";
const COLORS = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#56ccf2", "#bdbdbd", "#219653"];

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function rate(v) {
  if (v === undefined || v === null) return "–";
  if (v >= 1e9) return (v / 1e9).toFixed(2) + " G";
  if (v >= 1e6) return (v / 1e6).toFixed(2) + " M";
  if (v >= 1e3) return (v / 1e3).toFixed(2) + " k";
  return v.toFixed(1);
}

function bytes(v) {
  if (!v) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(1) + " " + units[i];
}

function duration(s) {
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return h + " h " + m + " min";
  if (m > 0) return m + " min " + sec + " s";
  return sec + " s";
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

// ---- state ----
let last = { status: null, live: null };
let lastOk = null;
let builds = {}; // unit -> {done, t}: the previous poll's dataset progress, for time left
let series = { t: [], units: {} }; // the chart's data: time, and per unit the 10 s rate

// ---- rendering ----
function setConn(ok, detail) {
  const c = $("conn");
  document.body.classList.toggle("down", !ok);
  $("unreachable").classList.toggle("hidden", ok);
  if (ok) {
    c.textContent = "live";
    c.className = "conn ok";
  } else {
    c.textContent = "node unreachable";
    c.className = "conn bad";
    const since = lastOk ? " Last data at " + lastOk.toLocaleTimeString() + " (shown greyed)." : "";
    $("unreachable-detail").textContent = "The page cannot reach the node: it stopped, or the tunnel closed." + since + " Retrying every 2 s. (" + detail + ")";
  }
}

function renderEpoch(status, live) {
  const n = live.epoch.number ?? status.epoch;
  $("epoch-number").textContent = n ?? "–";
  const bar = $("epoch-bar");
  const left = $("epoch-left");
  const { ends_at, duration_seconds } = live.epoch;
  if (ends_at && duration_seconds) {
    const remaining = Math.max(0, ends_at - live.now);
    bar.value = Math.min(1, Math.max(0, 1 - remaining / duration_seconds));
    bar.removeAttribute("data-unknown");
    // A chain whose clock runs ahead of this host's (a devnet that warps time) ends the epoch
    // later than one epoch from now by this host's clock: say so rather than show nonsense.
    const skew = remaining > duration_seconds
      ? "; the chain's clock is at least " + duration(remaining - duration_seconds) + " ahead of this host's"
      : "";
    left.textContent = Math.round(bar.value * 100) + " % done, ends in " + duration(Math.min(remaining, duration_seconds)) +
      " (at " + new Date(ends_at * 1000).toLocaleTimeString() + ", chain clock" + skew + ")";
  } else {
    bar.value = 0;
    bar.setAttribute("data-unknown", "");
    left.textContent = n ? "No chain client: the epoch is set by the configuration and has no end here." : "No epoch yet.";
  }
}

function renderAlerts(live) {
  const ul = $("alerts");
  ul.replaceChildren();
  for (const a of live.alerts) {
    const li = el("li", null, "alert " + a.severity);
    li.dataset.name = a.name;
    li.dataset.subject = a.subject;
    li.append(el("span", a.severity, "sev"), el("strong", a.summary), el("div", "Fix: " + a.fix, "fix"));
    ul.append(li);
  }
  $("alert-count").textContent = live.alerts.length;
  $("alert-count").className = "badge" + (live.alerts.some((a) => a.severity === "critical") ? " critical" : live.alerts.length ? " warning" : "");
  $("no-alerts").classList.toggle("hidden", live.alerts.length > 0);
}

function stateCell(u, lu, now) {
  const td = el("td", null, "state " + u.state);
  td.dataset.field = "state";
  td.append(el("span", u.state, "pill " + u.state));
  if (lu && lu.build) {
    const [done, total] = lu.build;
    const p = el("progress");
    p.max = total || 1;
    p.value = done;
    td.append(p);
    const prev = builds[u.unit];
    let eta = "";
    if (prev && done > prev.done && now > prev.t) {
      eta = ", " + duration((total - done) / ((done - prev.done) / (now - prev.t))) + " left";
    }
    builds[u.unit] = { done, t: now };
    td.append(el("div", "dataset " + Math.round((100 * done) / (total || 1)) + " %" + eta, "muted small"));
  } else {
    delete builds[u.unit];
    if (u.reason) td.append(el("div", u.reason, "muted small"));
  }
  return td;
}

function proofsCell(lu) {
  const td = el("td");
  td.dataset.field = "proofs";
  if (!lu) return td;
  const min = lu.min_proofs, max = lu.max_proofs;
  td.append(el("span", lu.epoch_proofs, "strong"));
  td.append(el("span", " / " + (min ?? "–") + " / " + (max ?? "–"), "muted"));
  if (max) {
    const p = el("progress");
    p.max = max;
    p.value = Math.min(lu.epoch_proofs, max);
    if (min && lu.epoch_proofs < min) p.className = "below";
    td.append(p);
  }
  return td;
}

function button(label, action, unit) {
  const b = el("button", label, "small");
  b.type = "button";
  b.dataset.action = action;
  if (unit) b.dataset.unit = unit;
  return b;
}

function renderUnits(status, live) {
  const tbody = $("units").tBodies[0];
  tbody.replaceChildren();
  const byUnit = Object.fromEntries(live.units.map((u) => [u.unit, u]));
  const now = Date.now() / 1000;
  for (const u of status.units) {
    const lu = byUnit[u.unit];
    const tr = el("tr");
    tr.id = "unit-" + u.unit;
    tr.dataset.state = u.state;
    const cell = (text, field, cls) => {
      const td = el("td", text, cls);
      td.dataset.field = field;
      tr.append(td);
      return td;
    };
    cell(u.unit, "unit", "strong");
    cell(u.kind, "kind");
    cell(u.place + (u.threads > 1 ? " · " + u.threads + " threads" : ""), "place", "small");
    tr.append(stateCell(u, lu, now));
    for (const w of ["10s", "60s", "15m"]) {
      const td = cell(rate(u.hashrate[w]), "rate-" + w, "num");
      td.dataset.value = u.hashrate[w];
    }
    tr.append(proofsCell(lu));
    const proj = lu && lu.projected != null ? Math.round(lu.projected) : null;
    const pc = cell(proj ?? "–", "projected", "num");
    if (proj != null && lu.min_proofs && proj < lu.min_proofs) pc.classList.add("bad");
    cell(lu && lu.last_build ? "epoch " + lu.last_build[0] + ", " + lu.last_build[1].toFixed(1) + " s" : "–", "rekey", "small");
    const actions = el("td");
    actions.append(u.state === "paused" ? button("Resume", "resume", u.unit) : button("Pause", "pause", u.unit));
    tr.append(actions);
    tbody.append(tr);
  }
}

function renderPipeline(status, live) {
  const inflight = status.proofs_in_flight || {};
  $("pipe-found").textContent = status.proofs.found ?? 0;
  $("pipe-stored").textContent = status.proofs.stored ?? 0;
  $("pipe-waiting").textContent = inflight.found ?? 0;
  $("pipe-submitted").textContent = inflight.submitted ?? 0;
  $("pipe-included").textContent = inflight.included ?? 0;
  const c = live.chain;
  $("pipe-final").textContent = c ? c.proofs_accepted : "–";
  $("pipe-attested").textContent = c && c.attested != null ? c.attested : "–";
  $("pipe-claimed").textContent = c ? c.rewards_claimed_gwei : "–";
  $("pipe-gas").textContent = c ? c.gas_used : "–";
  $("chain-note").textContent = c
    ? "Head block " + c.head_block + ", signer balance " + c.balance_ether.toFixed(4) + " ether."
    : "No chain client runs in this node: proofs stay found in the store.";
  const tbody = $("pipeline").tBodies[0];
  tbody.replaceChildren();
  for (const e of live.pipeline) {
    const tr = el("tr");
    tr.dataset.epoch = e.epoch;
    tr.append(el("td", e.epoch), el("td", e.found, "num"), el("td", e.moving, "num"),
      el("td", e["final"], "num"), el("td", e.skipped, "num"));
    tbody.append(tr);
  }
}

function renderGpus(live) {
  const tbody = $("gpus").tBodies[0];
  tbody.replaceChildren();
  for (const g of live.gpus) {
    const tr = el("tr");
    tr.append(el("td", g.device), el("td", g.units.join(", ")), el("td", rate(g.hashrate), "num"),
      el("td", g.bytes_per_second ? bytes(g.bytes_per_second) + "/s" : "–", "num"),
      el("td", bytes(g.memory_bytes), "num"));
    tbody.append(tr);
  }
  $("no-gpus").classList.toggle("hidden", live.gpus.length > 0);
}

// ---- the charts: one per unit kind (a GPU's rate would flatten a CPU's) ----
let kinds = {}; // unit -> "cpu" | "gpu", from the status (labels say it before the first poll)
const charts = { cpu: null, gpu: null };

function kindOf(unit) {
  return kinds[unit] || (unit.startsWith("gpu") ? "gpu" : "cpu");
}

function chartSize(kind) {
  const w = $("chart-" + kind).clientWidth || 600;
  return { width: w, height: Math.max(160, Math.min(240, Math.round(w / 3.5))) };
}

function drawChart() {
  if (typeof uPlot === "undefined") return;
  for (const kind of ["cpu", "gpu"]) {
    const names = Object.keys(series.units).filter((n) => kindOf(n) === kind).sort();
    $("chart-" + kind + "-box").classList.toggle("hidden", names.length === 0);
    let chart = charts[kind];
    if (chart && (chart.series.length !== names.length + 1 || names.some((n, i) => chart.series[i + 1].label !== n))) {
      chart.destroy();
      chart = charts[kind] = null;
    }
    if (names.length === 0) continue;
    const data = [series.t, ...names.map((n) => series.units[n])];
    if (!chart) {
      const opts = {
        ...chartSize(kind),
        series: [{}, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 2,
          value: (u, v) => (v == null ? "–" : rate(v)) }))],
        axes: [{}, { values: (u, vals) => vals.map((v) => rate(v)), size: 60 }],
        scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      };
      charts[kind] = new uPlot(opts, data, $("chart-" + kind));
    } else {
      chart.setData(data);
    }
  }
}

function trimSeries() {
  const cutoff = Date.now() / 1000 - 3600;
  while (series.t.length && series.t[0] < cutoff) {
    series.t.shift();
    for (const n in series.units) series.units[n].shift();
  }
}

function addPoint(t, rates) {
  const lastT = series.t[series.t.length - 1];
  if (lastT !== undefined && t < lastT) return; // older than what the chart has
  if (t === lastT) { // the same second again (a poll right after an action): replace it
    series.t.pop();
    for (const n in series.units) series.units[n].pop();
  }
  series.t.push(t);
  const len = series.t.length;
  for (const n of Object.keys(rates)) {
    if (!series.units[n]) series.units[n] = new Array(len - 1).fill(null);
  }
  for (const n in series.units) series.units[n].push(rates[n] ?? null);
  trimSeries();
}

async function loadHistory() {
  const h = await getJson("/api/v1/history");
  series = { t: [], units: {} };
  for (const s of h.history.fine) {
    addPoint(s.t, Object.fromEntries(s.units.map((u) => [u.unit, u.hashrate])));
  }
  drawChart();
}

// ---- polling ----
async function poll() {
  try {
    const [status, live] = await Promise.all([getJson("/api/v1/status"), getJson("/api/v1/live")]);
    last = { status, live };
    lastOk = new Date();
    setConn(true);
    const fluence = status.profile === "fluence";
    document.body.dataset.profile = fluence ? "fluence" : "capminer";
    $("version").textContent = "v" + status.version;
    $("uptime").textContent = "up " + duration(status.uptime_seconds);
    renderAlerts(live);
    if (fluence) {
      renderFluence(status, live);
      addPoint(live.now, Object.fromEntries(live.units.map((u) => [u.unit, u.hashrate["10s"]])));
    } else {
      renderEpoch(status, live);
      renderUnits(status, live);
      renderPipeline(status, live);
      renderGpus(live);
      kinds = Object.fromEntries(status.units.map((u) => [u.unit, u.kind]));
      addPoint(live.now, Object.fromEntries(status.units.map((u) => [u.unit, u.hashrate["10s"]])));
    }
    drawChart();
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    setConn(false, e.message);
  }
}

// ---- control ----
function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// Pauses or resumes `unit` (every unit when none): a label in `capminer run` (?unit=), a CU id
// in the Fluence profile (?cu=); `name` is what the message calls it.
async function act(action, unit, name) {
  const msg = $("action-msg");
  const fluence = document.body.dataset.profile === "fluence";
  const t = token();
  if (!t) {
    msg.textContent = "Enter the API token first: pause and resume need it.";
    msg.className = "bad";
    return;
  }
  const path = "/api/v1/" + action + (unit ? (fluence ? "?cu=" : "?unit=") + encodeURIComponent(unit) : "");
  try {
    const r = await fetch(path, { method: "POST", headers: { Authorization: "Bearer " + t } });
    const body = await r.json().catch(() => ({}));
    if (r.ok) {
      msg.textContent = action + " " + (name || unit || (fluence ? "all CUs" : "all units")) + ": done";
      msg.className = "ok";
    } else {
      msg.textContent = action + " refused (HTTP " + r.status + "): " + (body.error || r.statusText);
      msg.className = "bad";
    }
  } catch (e) {
    msg.textContent = action + " failed: " + e.message;
    msg.className = "bad";
  }
  poll();
}

function setup() {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("token").value.trim();
    $("token").value = "";
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $("action-msg").textContent = v ? "Token kept for this tab." : "";
    $("action-msg").className = "muted";
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("action-msg").textContent = "Token forgotten.";
    $("action-msg").className = "muted";
  });
  $("pause-all").addEventListener("click", () => act("pause"));
  $("resume-all").addEventListener("click", () => act("resume"));
  for (const table of ["units", "cus"]) {
    $(table).addEventListener("click", (e) => {
      const b = e.target.closest("button[data-action]");
      if (b) act(b.dataset.action, b.dataset.unit, b.dataset.name);
    });
  }
  window.addEventListener("resize", () => {
    for (const kind in charts) if (charts[kind]) charts[kind].setSize(chartSize(kind));
  });
  // The node's samples once (the last hour survives a reload); each poll adds its own point.
  loadHistory().catch(() => {}).finally(() => {
    poll();
    setInterval(poll, POLL_MS);
  });
}

document.addEventListener("DOMContentLoaded", setup);
