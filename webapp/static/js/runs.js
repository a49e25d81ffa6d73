// Validation runs: the project's runs, the form that starts one, a run watched live from its room
// (snapshot on every (re)join), its aggregate metrics with intervals and gates, and two runs compared.
import { $, ApiError, api, download, el, emit, errorText, fmt, listAll, on, option, shortTime, state, toast } from "./api.js";

const TERMINAL = new Set(["completed", "partial", "failed", "cancelled"]);
const WITH_METRICS = new Set(["completed", "partial"]);
const COUNT_STATES = ["pending", "running", "done", "failed", "cancelled"];
const HEADLINE = [["ap", "AP (0.50:0.95)"], ["ap50", "AP50"], ["precision", "precision"], ["recall", "recall"],
                  ["f1", "F1"], ["mota", "MOTA"], ["idf1", "IDF1"], ["hota", "HOTA"],
                  ["latency_median", "median detection latency (s)"], ["latency_p90", "p90 detection latency (s)"]];
const LABELS = Object.fromEntries(HEADLINE);
const COUNT_NAMES = [["videos", "videos"], ["frames", "frames"], ["ground_truth_boxes", "ground-truth boxes"],
                     ["objects", "objects"], ["detections", "detections"]];

let getSocket = () => null;
let watched = null;      // run id shown in the run panel
let subscribed = null;   // run id whose room this page joined
const runs = state.runs = { list: [], watching: null, seq: -1, events: 0, snapshots: 0, progress: null,
                            metricsLoaded: null, compared: null, reportDownloaded: null, formErrors: [] };

export function init(socketGetter) {
  getSocket = socketGetter;
  $("runs-refresh").addEventListener("click", () => loadRuns());
  $("runs-compare-button").addEventListener("click", compareSelected);
  $("run-form").addEventListener("submit", submitRun);
  $("run-all-videos").addEventListener("change", () => { $("run-video-list").hidden = $("run-all-videos").checked; });
  $("run-close").addEventListener("click", closeRun);
  $("run-cancel").addEventListener("click", cancelRun);
  $("run-report-link").addEventListener("click", downloadReport);
  $("run-against-baseline").addEventListener("click", () => {
    if (runs.run && runs.run.baseline_run_id) compareRuns([runs.run.baseline_run_id, runs.run.id]);
  });
  on("project-changed", () => {
    closeRun();
    $("run-compare-panel").hidden = true;
    showFormErrors([]);
    runs.list = [];
    renderRuns();
    if (!state.project) return;
    loadRuns();
    if (!$("tab-runs").hidden) fillForm();  // the form's videos are the project's
  });
  on("tab-shown", (name) => { if (name === "runs" && state.project) { loadRuns(); fillForm(); } });
  on("socket-connected", () => { subscribed = null; if (watched) subscribe(watched); });
}

export function bindSocket(socket) {
  socket.on("validation_run_snapshot", (p) => { runs.snapshots += 1; applyProgress(p); });
  socket.on("validation_run_progress", (p) => { runs.events += 1; applyProgress(p); });
}

// ---------------------------------------------------------------------------------------- list

async function loadRuns() {
  if (!state.project) return;
  const projectId = state.project.id;
  let items;
  try {
    items = await listAll(`/api/validation-runs?project_id=${projectId}`, 2);
  } catch (err) {
    toast(errorText(err), true);
    return;
  }
  if (!state.project || state.project.id !== projectId) return;
  runs.list = items;
  renderRuns();
  fillBaselines();
}

function gateCell(run) {
  if (!run.gates || !run.gates.length) return el("td", { className: "muted", text: "none" });
  const status = run.gate_status || (TERMINAL.has(run.status) ? "not evaluated" : "waiting");
  return el("td", { className: `gate gate-${run.gate_status || "none"}`, text: `${status} (${run.gates.length})` });
}

function renderRuns() {
  const tbody = $("runs-table").querySelector("tbody");
  const checked = new Set([...tbody.querySelectorAll("input:checked")].map((i) => i.value));
  tbody.replaceChildren();
  for (const r of runs.list) {
    const box = el("input", { type: "checkbox", value: r.id, title: "select for comparison",
                              disabled: !WITH_METRICS.has(r.status) });
    box.checked = checked.has(r.id);
    const failed = r.videos_failed ? `, ${r.videos_failed} failed` : "";
    tbody.append(el("tr", { dataset: { runId: r.id, status: r.status } },
      el("td", {}, box),
      el("td", { text: r.name, title: r.id }),
      el("td", { text: (r.model && r.model.name) || "" }),
      el("td", { className: `status status-${r.status}`, text: r.status }),
      gateCell(r),
      el("td", { text: `${r.videos_done} / ${r.videos_total}${failed}` }),
      el("td", { text: shortTime(r.created_at), title: r.created_at }),
      el("td", { className: "actions" },
        el("button", { type: "button", className: "open-run", text: "Open", onclick: () => openRun(r.id) }))));
  }
  $("runs-empty").hidden = runs.list.length > 0;
}

function fillBaselines() {
  const select = $("run-baseline");
  const keep = select.value;
  select.replaceChildren(option("", "none"),
    ...runs.list.filter((r) => WITH_METRICS.has(r.status))
      .map((r) => option(r.id, `${r.name} (${shortTime(r.created_at)})`, r.id === keep)));
}

// ---------------------------------------------------------------------------------------- form

async function fillForm() {
  try {
    state.models = (await api("GET", "/api/models")).items;  // weights may have been added meanwhile
    const models = $("run-model");
    const keepModel = models.value;
    models.replaceChildren(...state.models.map((m) => {
      const o = option(m.name, m.weights_present ? m.name : `${m.name} (weights missing)`, m.name === keepModel);
      o.disabled = !m.weights_present;
      return o;
    }));
    state.videos = await listAll(`/api/videos?project_id=${state.project.id}`);
  } catch (err) {
    toast(errorText(err), true);
    return;
  }
  const list = $("run-video-list");
  const picked = new Set([...list.querySelectorAll("input:checked")].map((i) => i.value));
  list.replaceChildren(...state.videos.map((v) => {
    const box = el("input", { type: "checkbox", value: v.id });
    box.checked = picked.has(v.id);
    return el("label", { className: "inline", title: v.id }, box, `${v.filename} (${v.frame_count ?? "?"} frames)`);
  }));
}

// The form's input behind each top-level field of the request, outlined when the server refuses it.
const FIELD_INPUTS = { name: "run-name", model: "run-model", ground_truth: "run-gt", evaluation: "run-iou",
                       baseline_run_id: "run-baseline", videos: "run-video-list", gates: "run-gates" };

function showFormErrors(errors) {
  runs.formErrors = errors;
  const bad = new Set(errors.map(([field]) => {
    if (field.startsWith("evaluation.score_threshold")) return "run-score";
    return FIELD_INPUTS[field.split(".")[0]];
  }));
  for (const id of [...Object.values(FIELD_INPUTS), "run-score"]) $(id).classList.toggle("invalid", bad.has(id));
  const list = $("run-form-errors");
  list.replaceChildren(...errors.map(([field, message]) =>
    el("li", { dataset: { field } }, el("b", { text: field }), `: ${message}`)));
  list.hidden = errors.length === 0;
}

/** Field errors of a 422 as [field path, message] pairs (nested schemas flattened with dots). */
function fieldErrors(err) {
  const out = [];
  const walk = (prefix, value) => {
    if (Array.isArray(value)) { for (const m of value) out.push([prefix, typeof m === "string" ? m : JSON.stringify(m)]); }
    else if (value && typeof value === "object") { for (const [k, v] of Object.entries(value)) walk(prefix ? `${prefix}.${k}` : k, v); }
    else out.push([prefix, String(value)]);
  };
  const fields = err.details && err.details.fields;
  if (fields) walk("", fields.json || fields);
  return out.length ? out : [["request", err.message]];
}

async function submitRun(event) {
  event.preventDefault();
  if (!state.project) return;
  showFormErrors([]);
  let gates = [];
  const gatesText = $("run-gates").value.trim();
  if (gatesText) {
    try { gates = JSON.parse(gatesText); } catch (err) { showFormErrors([["gates", `not JSON: ${err.message}`]]); return; }
  }
  const body = { project_id: state.project.id, model: { name: $("run-model").value },
                 ground_truth: $("run-gt").value, gates, evaluation: { iou_threshold: Number($("run-iou").value) } };
  const name = $("run-name").value.trim();
  if (name) body.name = name;
  if ($("run-score").value !== "") body.evaluation.score_threshold = Number($("run-score").value);
  if ($("run-baseline").value) body.baseline_run_id = $("run-baseline").value;
  if (!$("run-all-videos").checked) {
    body.videos = [...$("run-video-list").querySelectorAll("input:checked")].map((i) => i.value);
    if (!body.videos.length) { showFormErrors([["videos", "pick at least one video"]]); return; }
  }
  $("run-submit").disabled = true;
  try {
    const run = await api("POST", "/api/validation-runs", { json: body });
    toast(`Run ${run.name} started over ${run.videos_total} videos`);
    await loadRuns();
    openRun(run.id, run);
  } catch (err) {
    if (err instanceof ApiError && err.status === 422) showFormErrors(fieldErrors(err));
    else toast(errorText(err), true);
  } finally {
    $("run-submit").disabled = false;
  }
}

// ---------------------------------------------------------------------------------------- live

function subscribe(runId) {
  const socket = getSocket();
  if (!socket || !socket.connected || subscribed === runId) return;
  if (subscribed) socket.emit("validation_run_unsubscribe", { run_id: subscribed });
  subscribed = runId;
  socket.emit("validation_run_subscribe", { run_id: runId }, (ack) => {
    if (ack && ack.error) toast(`live updates unavailable: ${ack.error.message}`, true);
  });
}

async function openRun(runId, known) {
  if (watched !== runId) {
    watched = runId;
    runs.watching = runId;
    runs.seq = -1;
    runs.progress = null;
    runs.metricsLoaded = null;
    $("run-videos-table").querySelector("tbody").replaceChildren();
    $("run-results").hidden = true;
    delete $("run-panel").dataset.metrics;
  }
  $("run-panel").hidden = false;
  let run = known;
  try {
    if (!run) run = await api("GET", `/api/validation-runs/${runId}`);
  } catch (err) {
    toast(errorText(err), true);
    return;
  }
  if (watched !== runId) return;
  runs.run = run;
  $("run-title").textContent = `Run: ${run.name} (${(run.model && run.model.name) || ""})`;
  $("run-panel").dataset.runId = runId;
  applyProgress(run.progress);
  subscribe(runId);
  $("run-panel").scrollIntoView({ behavior: "smooth", block: "start" });
}

function closeRun() {
  const socket = getSocket();
  if (socket && socket.connected && subscribed) socket.emit("validation_run_unsubscribe", { run_id: subscribed });
  subscribed = null;
  watched = null;
  runs.watching = null;
  $("run-panel").hidden = true;
}

async function cancelRun() {
  if (!watched) return;
  try {
    applyProgress((await api("POST", `/api/validation-runs/${watched}/cancel`)).progress);
    loadRuns();
  } catch (err) {
    toast(errorText(err), true);
  }
}

function names() {
  return new Map(state.videos.map((v) => [v.id, v.filename]));
}

function bar(pct, status) {
  const p = Math.max(0, Math.min(100, Number(pct) || 0));
  const fill = el("div", { className: "fill" });
  fill.style.width = `${p}%`;  // CSSOM, not a style attribute: the CSP allows no inline styles
  return el("div", { className: `bar ${status}`, role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
                     "aria-valuenow": p.toFixed(1) }, fill, el("span", { className: "label", text: `${p.toFixed(0)}%` }));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

/** A snapshot or progress event of the watched run: kept only when its seq is the highest seen. */
function applyProgress(p) {
  if (!p || p.run_id !== watched) return;
  if (typeof p.seq === "number" && p.seq <= runs.seq) return;
  if (typeof p.seq === "number") runs.seq = p.seq;
  runs.progress = p;
  const status = $("run-status");
  status.textContent = p.status;
  status.className = `status status-${p.status}`;
  $("run-panel").dataset.status = p.status;
  const overall = $("run-bar");
  const pct = Math.max(0, Math.min(100, Number(p.progress_percent) || 0));
  overall.className = `bar wide-bar ${p.status}`;
  overall.setAttribute("aria-valuenow", pct.toFixed(1));
  overall.querySelector(".fill").style.width = `${pct}%`;
  const done = (p.videos && p.videos.done) || 0;
  overall.querySelector(".label").textContent = ["cancelled", "failed"].includes(p.status)
    ? `${p.status}: ${done} of ${p.videos_total} videos done` : `${pct.toFixed(0)}% of ${p.videos_total} videos`;
  for (const k of COUNT_STATES) $(`run-count-${k}`).textContent = String((p.videos && p.videos[k]) || 0);
  $("run-fps").textContent = p.fps ? fmt(p.fps, 1) : "–";
  $("run-eta").textContent = TERMINAL.has(p.status) ? "–" : duration(p.eta_seconds);
  $("run-cancel").hidden = TERMINAL.has(p.status);
  const filenames = names();
  $("run-videos-table").querySelector("tbody").replaceChildren(...(p.per_video || []).map((v) =>
    el("tr", { dataset: { videoId: v.video_id, status: v.status } },
      el("td", { text: filenames.get(v.video_id) || v.video_id, title: v.video_id }),
      el("td", { className: `status status-${v.status}`, text: v.status }),
      el("td", {}, bar(v.progress_percent, v.status === "done" ? "completed" : v.status)),
      el("td", { className: "stage", text: v.error && !v.stage.includes(v.error) ? `${v.stage} — ${v.error}` : v.stage }),
      el("td", { className: "num", text: fmt(v.frames) }),
      el("td", { className: "num", text: v.fps ? fmt(v.fps, 1) : "–" }),
      el("td", { className: "actions" }, el("button", { type: "button", text: "Viewer", title: "its test session",
                                                         onclick: () => emit("open-viewer", v.test_session_id) })))));
  const row = runs.list.find((r) => r.id === p.run_id);
  if (row) {  // the list follows the watched run too; its gates' verdict comes with the reload at the end
    const ended = row.status !== p.status && TERMINAL.has(p.status);
    Object.assign(row, { status: p.status, videos_done: (p.videos && p.videos.done) || 0,
                         videos_failed: (p.videos && p.videos.failed) || 0 });
    if (ended) loadRuns(); else renderRuns();
  }
  if (WITH_METRICS.has(p.status) && runs.metricsLoaded !== p.run_id) loadMetrics(p.run_id);
}

// ---------------------------------------------------------------------------------------- results

/** A metric's value with fixed digits (1 reads 1.000 beside 0.750); counts keep `fmt`. */
const num = (v, digits = 3) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–");
const interval = (iv, digits = 3) => (iv ? `${num(iv.low, digits)} – ${num(iv.high, digits)}` : "–");
const numCell = (v, digits) => el("td", { className: "num", text: num(v, digits) });
const cocoCell = (v) => (v === -1 ? el("td", { className: "num muted", text: "n/a", title: "no ground truth" }) : numCell(v));
const countCell = (v) => el("td", { className: "num", text: fmt(v) });

function countsText(c) {
  if (!c) return "";
  return COUNT_NAMES.filter(([k]) => c[k] !== undefined)
    .map(([k, label]) => `${c[k]} ${c[k] === 1 ? label.replace(/s$/, "") : label}`).join(", ");
}

/** A table's header; the columns of `numeric` (indexes) are right-aligned over their numbers. */
function head(table, cols = [], numeric = []) {
  table.querySelector("thead").replaceChildren(el("tr", {}, ...cols.map((c, i) =>
    el("th", { text: c, className: numeric.includes(i) ? "num" : null }))));
}

const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);

function body(table, rows) {
  table.querySelector("tbody").replaceChildren(...rows);
}

async function loadMetrics(runId) {
  runs.metricsLoaded = runId;
  let data;
  try {
    data = await api("GET", `/api/validation-runs/${runId}/metrics`);
  } catch (err) {
    runs.metricsLoaded = null;
    toast(errorText(err), true);
    return;
  }
  if (watched !== runId || !data.metrics) return;
  const m = data.metrics;
  const o = m.overall || {};
  const params = m.parameters || {};
  const conf = params.confidence ? Math.round(100 * params.confidence) : 95;
  $("run-rests-on").textContent = `Rests on ${countsText(o.counts)}. IoU ${fmt(params.iou_threshold, 2)}, ` +
    `score threshold ${num(params.score_threshold, 2)}; ${conf} % bootstrap intervals over videos ` +
    `(${fmt(params.resamples)} resamples, seed ${fmt(params.seed)}).`;

  head($("run-headline"), ["metric", "value", `${conf} % interval`, "rests on"], [1, 2]);
  const rests = countsText(o.counts);
  body($("run-headline"), HEADLINE.filter(([k]) => o.headline && o.headline[k] !== null && o.headline[k] !== undefined)
    .map(([k, label]) => el("tr", { dataset: { metric: k } }, el("th", { text: label }), numCell(o.headline[k]),
      el("td", { className: "num interval", text: interval(o.intervals && o.intervals[k]) }),
      el("td", { className: "muted", text: rests }))));

  $("run-against-baseline").hidden = !(runs.run && runs.run.id === runId && runs.run.baseline_run_id);
  renderGates(data);
  renderClasses(o);
  renderSlices(m.slices || {});
  renderPerVideo(m.per_video || []);
  $("run-results").hidden = false;
  $("run-panel").dataset.metrics = "loaded";
}

function renderGates(data) {
  const pill = $("run-gate-status");
  pill.textContent = data.gate_status || "no gates";
  pill.className = `pill gate-${data.gate_status || "none"}`;
  head($("run-gates-table"), ["gate", "status", "value", "interval", "baseline / difference", "reason"], [2, 3, 4]);
  body($("run-gates-table"), (data.gates || []).map((g) => el("tr", { dataset: { status: g.status } },
    el("td", { className: "code", text: JSON.stringify(g.gate) }),
    el("td", { className: `gate gate-${g.status}`, text: g.status }),
    numCell(g.value),
    el("td", { className: "num", text: interval(g.interval) }),
    el("td", { className: "num", text: g.difference !== undefined
      ? `${num(g.baseline)} / ${signed(g.difference)} (${interval(g.difference_interval)})` : "–" }),
    el("td", { text: g.reason || "" }))));
}

function scopeRows(label, scope, keys) {
  if (!scope || scope.insufficient) {
    return [el("tr", { className: "insufficient" }, el("td", { text: label }),
      el("td", { colSpan: keys.length, className: "muted", text: `too little data: ${(scope && scope.reason) || ""}` }),
      el("td", { className: "muted", text: countsText(scope && scope.counts) }))];
  }
  return [el("tr", {}, el("td", { text: label }),
    ...keys.map((k) => {
      const v = scope.headline && scope.headline[k];
      const iv = scope.intervals && scope.intervals[k];
      return el("td", { className: "num", text: v === null || v === undefined ? "–" : `${num(v)} [${interval(iv)}]` });
    }),
    el("td", { className: "muted", text: countsText(scope.counts) }))];
}

const SCOPE_KEYS = ["ap50", "precision", "recall", "f1", "latency_median"];

function renderClasses(o) {
  head($("run-classes"), ["class", ...SCOPE_KEYS.map((k) => `${LABELS[k]} [interval]`), "rests on"],
       range(1, SCOPE_KEYS.length + 1));
  body($("run-classes"), Object.entries(o.per_class || {}).flatMap(([name, scope]) => scopeRows(name, scope, SCOPE_KEYS)));
}

function renderSlices(slices) {
  head($("run-slices"), ["slice", ...SCOPE_KEYS.map((k) => `${LABELS[k]} [interval]`), "rests on"],
       range(1, SCOPE_KEYS.length + 1));
  const rows = [];
  for (const [key, values] of Object.entries(slices)) {
    for (const [value, scope] of Object.entries(values)) {
      const r = scopeRows(`${key} = ${value}`, scope, SCOPE_KEYS);
      r[0].dataset.slice = `${key}=${value}`;
      rows.push(...r);
    }
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { className: "muted", colSpan: SCOPE_KEYS.length + 2, text: "no slices" })));
  body($("run-slices"), rows);
}

function renderPerVideo(rows) {
  const filenames = names();
  head($("run-per-video"), ["video", "AP", "AP50", "precision", "recall", "F1", "TP", "FP", "FN", "frames",
                            "ground-truth boxes"], range(1, 11));
  body($("run-per-video"), rows.map((v) => {
    const op = v.operating_point || {};
    const coco = v.coco || {};
    const c = v.counts || {};
    return el("tr", { dataset: { videoId: v.video_id } },
      el("td", { text: filenames.get(v.video_id) || v.video_id, title: v.video_id }),
      cocoCell(coco.AP), cocoCell(coco.AP50), numCell(op.precision), numCell(op.recall), numCell(op.f1),
      countCell(op.tp), countCell(op.fp), countCell(op.fn), countCell(c.frames), countCell(c.ground_truth_boxes));
  }));
}

async function downloadReport(event) {
  event.preventDefault();
  if (!watched) return;
  try {
    await download(`/api/validation-runs/${watched}/report.html`, `validation-run-${watched}.html`);
    runs.reportDownloaded = watched;
  } catch (err) {
    toast(errorText(err), true);
  }
}

// ---------------------------------------------------------------------------------------- compare

function signed(v) {
  if (v === null || v === undefined) return "–";
  return `${v >= 0 ? "+" : ""}${num(v)}`;
}

function compareSelected() {
  return compareRuns([...$("runs-table").querySelectorAll("tbody input:checked")].map((i) => i.value));
}

/** The runs of `ids` compared, the older one as the baseline. */
async function compareRuns(ids) {
  const panel = $("run-compare-panel");
  panel.hidden = false;
  for (const t of ["run-compare-table", "run-compare-videos"]) { head($(t)); body($(t), []); }
  if (ids.length !== 2) {
    $("run-compare-state").textContent = "Select exactly two finished runs over the same videos and ground truth.";
    return;
  }
  // The older run is the baseline.
  const byId = new Map(runs.list.map((r) => [r.id, r]));
  if (!ids.every((id) => byId.has(id))) {
    $("run-compare-state").textContent = "A run to compare is not in this project's list.";
    return;
  }
  ids.sort((a, b) => String(byId.get(a).created_at).localeCompare(String(byId.get(b).created_at)));
  let data;
  try {
    data = await api("GET", `/api/validation-runs/compare?ids=${ids.join(",")}`);
  } catch (err) {
    $("run-compare-state").textContent = errorText(err);
    return;
  }
  const c = data.comparison || {};
  const base = byId.get(data.baseline) || {};
  const cand = byId.get(data.candidate) || {};
  $("run-compare-title").textContent = `Comparison: ${cand.name} against ${base.name}`;
  $("run-compare-state").textContent = `Paired over ${fmt(c.videos)} videos (the same draws for both runs; ` +
    `${fmt(c.resamples)} resamples, ${Math.round(100 * (c.confidence || 0.95))} % intervals); ` +
    "difference = candidate − baseline.";
  head($("run-compare-table"), ["metric", `baseline (${base.name || ""})`, `candidate (${cand.name || ""})`,
                                 "difference", "interval of the difference", "verdict"], [1, 2, 3, 4]);
  body($("run-compare-table"), Object.entries(c.metrics || {}).filter(([, r]) => r.baseline !== null || r.candidate !== null)
    .map(([k, r]) => el("tr", { dataset: { metric: k, verdict: r.verdict } },
      el("td", { text: LABELS[k] || k }), numCell(r.baseline), numCell(r.candidate),
      el("td", { className: "num", text: signed(r.difference) }),
      el("td", { className: "num", text: interval(r.interval) }),
      el("td", { className: `verdict verdict-${(r.verdict || "").replace(/ /g, "-")}`, text: r.verdict || "–" }))));
  const filenames = names();
  const keys = ["ap", "ap50", "precision", "recall", "f1"];
  head($("run-compare-videos"), ["video", ...keys.map((k) => `Δ ${LABELS[k]}`)], range(1, keys.length + 1));
  body($("run-compare-videos"), (c.per_video || []).map((v) => el("tr", { dataset: { videoId: v.video_id } },
    el("td", { text: filenames.get(v.video_id) || v.video_id, title: v.video_id }),
    ...keys.map((k) => el("td", { className: "num", text: signed(v.differences && v.differences[k]) })))));
  runs.compared = data.ids;
  panel.scrollIntoView({ behavior: "smooth", block: "start" });
}
