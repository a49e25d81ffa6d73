// Test-session reports (metrics table and plots) and the side-by-side comparison of sessions.
import { $, api, el, emit, errorText, fmt, on, shortTime, state, toast } from "./api.js";

const PLOTS = ["pr_curves", "confusion_matrix", "latency_histogram"];
let shown = null;   // test session id whose report is open

export function init() {
  $("sessions-refresh").addEventListener("click", () => emit("test-sessions-changed"));
  $("compare-button").addEventListener("click", compareSelected);
  on("test-sessions-loaded", renderSessions);
  on("open-report", (id) => { emit("show-tab", "report"); openReport(id); });
  on("project-changed", () => { $("report-panel").hidden = true; $("compare-panel").hidden = true; shown = null; });
  on("job-finished", (job) => {
    if (job.kind === "evaluation" && job.params && job.params.test_session_id === shown) openReport(shown);
  });
}

function renderSessions(sessions) {
  const tbody = $("sessions-table").querySelector("tbody");
  const checked = new Set([...tbody.querySelectorAll("input:checked")].map((i) => i.value));
  tbody.replaceChildren();
  for (const t of sessions) {
    const gt = t.ground_truth_session_id
      ? (state.annotationSessions.find((s) => s.id === t.ground_truth_session_id) || {}).session_name || "yes" : "—";
    const box = el("input", { type: "checkbox", value: t.id, title: "select for comparison" });
    box.checked = checked.has(t.id);
    tbody.append(el("tr", { dataset: { testSessionId: t.id } },
      el("td", {}, box),
      el("td", { text: t.name, title: t.id }),
      el("td", { text: (t.model && t.model.name) || "" }),
      el("td", { className: `status status-${t.status}`, text: t.status }),
      el("td", { text: gt }),
      el("td", { text: shortTime(t.created_at) }),
      el("td", { className: "actions" },
        el("button", { type: "button", className: "open-report", text: "Report", onclick: () => openReport(t.id) }),
        el("button", { type: "button", text: "Viewer", onclick: () => emit("open-viewer", t.id) }),
        t.ground_truth_session_id
          ? el("button", { type: "button", text: "Evaluate", onclick: () => evaluate(t.id) }) : null)));
  }
}

async function evaluate(id) {
  try {
    const job = await api("POST", `/api/test-sessions/${id}/evaluate`, { json: {} });
    toast("Evaluation started");
    shown = id;
    emit("job-submitted", job);
  } catch (err) {
    toast(errorText(err), true);
  }
}

function row(label, value, digits) {
  return el("tr", {}, el("th", { text: label }), el("td", { className: "num", text: fmt(value, digits) }));
}

async function openReport(id) {
  shown = id;
  const panel = $("report-panel");
  panel.hidden = false;
  $("report-body").hidden = true;
  $("report-state").textContent = "loading…";
  let report;
  try {
    report = await api("GET", `/api/test-sessions/${id}/report`);
  } catch (err) {
    if (err.status === 404) {
      let text = "Not evaluated yet.";
      try {
        const m = await api("GET", `/api/test-sessions/${id}/metrics`);
        const ev = m.evaluation || {};
        text = ev.status === "not_evaluated"
          ? "Not evaluated yet: it needs a ground-truth annotation session (Evaluate runs it)."
          : `Evaluation ${ev.status}${ev.error ? `: ${ev.error}` : ""}.`;
      } catch { /* keep the short text */ }
      $("report-title").textContent = "Report";
      $("report-state").textContent = text;
      return;
    }
    $("report-state").textContent = errorText(err);
    return;
  }
  if (shown !== id) return;
  const m = report.metrics || {};
  const op = m.operating_point || {};
  const coco = (m.coco && m.coco.overall) || {};
  const temporal = (m.temporal && m.temporal.overall) || {};
  const tracking = m.tracking && m.tracking.overall;
  const params = m.parameters || {};
  $("report-title").textContent = `Report: ${report.name} (${(report.model && report.model.name) || ""})`;
  $("report-state").textContent = `IoU ${fmt(params.iou_threshold, 2)}, score threshold ${fmt(params.score_threshold, 2)}` +
    `, protocol ${params.protocol || "default"}` +
    (m.evaluated_at ? `, evaluated ${new Date(m.evaluated_at).toLocaleString()}` : "") +
    ((m.notes || []).length ? `. ${m.notes.join(". ")}` : "");
  const summary = [
    row("true positives", op.tp), row("false positives", op.fp), row("false negatives", op.fn),
    row("precision", op.precision), row("recall", op.recall), row("F1", op.f1),
    row("AP (0.50:0.95)", coco.AP), row("AP50", coco.AP50), row("AP75", coco.AP75), row("AR100", coco.AR100),
    row("VOC mAP (all points)", m.voc && m.voc.all_point && m.voc.all_point.mAP),
    row("VOC mAP (11 points)", m.voc && m.voc["11_point"] && m.voc["11_point"].mAP),
    row("objects", temporal.objects), row("missed objects", temporal.missed_objects),
    row("median detection latency (s)", temporal.median_latency_seconds),
    row("p90 detection latency (s)", temporal.p90_latency_seconds),
  ];
  if (tracking) {
    const names = { mota: "MOTA", motp: "MOTP", idf1: "IDF1", num_switches: "identity switches",
                    mostly_tracked: "mostly tracked", mostly_lost: "mostly lost" };
    for (const [k, label] of Object.entries(names)) {
      if (tracking[k] !== undefined) summary.push(row(label, tracking[k]));
    }
    const hota = (m.hota && m.hota.overall) || {};
    for (const k of ["HOTA", "DetA", "AssA", "LocA"]) {
      if (hota[k] !== undefined) summary.push(row(k, hota[k]));
    }
  }
  $("report-summary").querySelector("tbody").replaceChildren(...summary);
  const classes = new Set([...Object.keys((m.coco && m.coco.per_class) || {}), ...Object.keys(op.per_class || {})]);
  const cols = ["AP", "AP50", "precision", "recall", "F1", "TP", "FP", "FN", "median latency (s)"];
  $("report-classes").querySelector("thead").replaceChildren(
    el("tr", {}, el("th", { text: "class" }), ...cols.map((c) => el("th", { text: c }))));
  const body = [];
  for (const name of classes) {
    const c = (m.coco && m.coco.per_class && m.coco.per_class[name]) || {};
    const o = (op.per_class && op.per_class[name]) || {};
    const t = (m.temporal && m.temporal.per_class && m.temporal.per_class[name]) || {};
    const values = [c.AP, c.AP50, o.precision, o.recall, o.f1, o.tp, o.fp, o.fn, t.median_latency_seconds];
    body.push(el("tr", {}, el("td", { text: name }), ...values.map((v) => el("td", { className: "num", text: fmt(v) }))));
  }
  $("report-classes").querySelector("tbody").replaceChildren(...body);
  let plots = 0;
  for (const name of PLOTS) {
    const img = $(`plot-${name}`);
    const plot = report.plots && report.plots[name];
    if (plot && plot.data) {
      img.src = `data:${plot.content_type};base64,${plot.data}`;
      plots += 1;
    } else {
      img.removeAttribute("src");
    }
  }
  $("report-body").hidden = false;
  state.report.loaded = id;
  state.report.plots = plots;
  panel.dataset.loaded = id;
  panel.scrollIntoView({ behavior: "smooth", block: "start" });
}

async function compareSelected() {
  const ids = [...$("sessions-table").querySelectorAll("tbody input:checked")].map((i) => i.value);
  const panel = $("compare-panel");
  panel.hidden = false;
  const thead = $("compare-table").querySelector("thead");
  const tbody = $("compare-table").querySelector("tbody");
  thead.replaceChildren();
  tbody.replaceChildren();
  if (ids.length < 2) {
    $("compare-state").textContent = "Select at least two evaluated test sessions of the same video and ground truth.";
    return;
  }
  let data;
  try {
    data = await api("GET", `/api/test-sessions/compare?ids=${ids.join(",")}`);
  } catch (err) {
    $("compare-state").textContent = errorText(err);
    return;
  }
  $("compare-state").textContent = `IoU ${fmt(data.parameters.iou_threshold, 2)}; differences are to the first session.`;
  thead.append(el("tr", {}, el("th", { text: "metric" }),
    ...data.sessions.map((s, i) => el("th", { text: `${s.name}${i ? "" : " (reference)"}`, title: s.id }))));
  for (const r of data.metrics) {
    tbody.append(el("tr", {}, el("td", { text: r.metric }),
      ...r.values.map((v, i) => {
        const diff = i && r.differences && r.differences[i] !== null && r.differences[i] !== undefined
          ? ` (${r.differences[i] >= 0 ? "+" : ""}${fmt(r.differences[i])})` : "";
        return el("td", { className: `num${r.best === i ? " best" : ""}`, text: fmt(v) + diff });
      })));
  }
}
