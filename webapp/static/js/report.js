// Test-session reports (metrics table and plots) and the side-by-side comparison of sessions.
import { $, api, el, emit, errorText, fmt, on, option, shortTime, state, toast } from "./api.js";

const PLOTS = ["pr_curves", "confusion_matrix", "latency_histogram"];
let shown = null;   // test session id whose report is open

let evaluating = null;  // test session whose Evaluate form is open
let preannotating = null;
let basisTicket = 0;

export function init() {
  $("sessions-refresh").addEventListener("click", () => emit("test-sessions-changed"));
  $("compare-button").addEventListener("click", () => compareSelected());
  $("compare-reference").addEventListener("change", () => compareSelected($("compare-reference").value));
  $("evaluate-form").addEventListener("submit", submitEvaluation);
  $("evaluate-form").addEventListener("change", (e) => { if (e.target.id !== "evaluate-iou") showBasis(); });
  $("evaluate-close").addEventListener("click", () => { $("evaluate-panel").hidden = true; evaluating = null; });
  $("preannotate-form").addEventListener("submit", submitPreannotation);
  $("preannotate-close").addEventListener("click", () => { $("preannotate-panel").hidden = true; preannotating = null; });
  on("test-sessions-loaded", renderSessions);
  on("open-report", (id) => { emit("show-tab", "report"); openReport(id); });
  on("project-changed", () => {
    for (const id of ["report-panel", "compare-panel", "evaluate-panel", "preannotate-panel"]) $(id).hidden = true;
    shown = null; evaluating = null; preannotating = null;
  });
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
          ? el("button", { type: "button", className: "open-evaluate", text: "Evaluate",
                           onclick: () => openEvaluate(t) }) : null,
        t.status === "completed"
          ? el("button", { type: "button", className: "open-preannotate", text: "Pre-annotate",
                           title: "turn the model's tracks into pending annotations", onclick: () => openPreannotate(t) })
          : null)));
  }
}

// ------------------------------------------------------------------------------ what a number rests on

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function framesText(f) {
  const every = f.frame_stride > 1 ? `every ${f.frame_stride}th frame of ` : "frames ";
  let text = `The model ran on ${plural(f.evaluated, "frame")} of ${f.video_frames} (${every}${f.frame_from}–${f.frame_to})`;
  if (f.skipped) {
    const shown = f.skipped_ranges.slice(0, 4).map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ");
    text += `; it skipped ${plural(f.skipped, "frame")}` +
      (f.frame_stride > 1 ? "" : ` (${shown}${f.skipped_ranges.length > 4 ? ", …" : ""})`);
  }
  return `${text}.`;
}

/** The paragraph every number comes after: the ground truth it is measured against, the frames. */
export function renderBasis(box, basis, refusal, remedyActions = {}) {
  box.replaceChildren();
  box.classList.toggle("refused", Boolean(refusal));
  if (!basis) { box.hidden = true; return; }
  box.hidden = false;
  const a = basis.annotations;
  const counted = basis.include_pending ? "validated and pending" : "validated";
  const lines = [
    `Ground truth: ${plural(basis.ground_truth_objects, "object")}, ${plural(basis.ground_truth_boxes, "box", "boxes")} ` +
    `on ${plural(basis.ground_truth_frames, "frame")} the model ran on, from the ${counted} annotations ` +
    `(${a.validated} validated, ${a.pending} pending${basis.include_pending ? "" : " not counted"}, ` +
    `${a.rejected} rejected not counted)${basis.classes ? `; classes ${basis.classes.join(", ")}` : ""}.`,
    framesText(basis.frames) + (basis.boxes_on_skipped_frames
      ? ` ${plural(basis.boxes_on_skipped_frames, "ground-truth box", "ground-truth boxes")} lie on skipped frames and count nowhere.` : ""),
  ];
  if (refusal) lines.unshift(refusal.message);
  box.append(...lines.map((t, i) => el("p", { className: i === 0 && refusal ? "error" : "", text: t })));
  if (refusal && refusal.remedies.length) {
    box.append(el("ul", {}, refusal.remedies.map((r) => el("li", { dataset: { action: r.action } }, r.message,
      remedyActions[r.action] ? el("button", { type: "button", className: `remedy remedy-${r.action}`,
                                               text: remedyActions[r.action].label,
                                               onclick: remedyActions[r.action].run }) : null))));
  }
}

function remedies(gtId, onIncludePending) {
  const out = {};
  if (gtId) out.validate = { label: "Review the ground truth", run: () => emit("open-review", gtId) };
  if (onIncludePending) out.include_pending = { label: "Include pending", run: onIncludePending };
  return out;
}

// ------------------------------------------------------------------------------ the Evaluate form

function classBoxes(containerId) {
  const labels = (state.project && state.project.labels) || [];
  $(containerId).replaceChildren(...labels.map((l) =>
    el("label", { className: "inline" }, el("input", { type: "checkbox", value: l }), l)));
}

const ticked = (containerId) => [...$(containerId).querySelectorAll("input:checked")].map((i) => i.value);

function openEvaluate(t) {
  evaluating = t;
  $("evaluate-panel").hidden = false;
  $("evaluate-title").textContent = `Evaluate ${t.name}`;
  $("evaluate-errors").hidden = true;
  classBoxes("evaluate-classes");
  $("evaluate-pending").checked = false;
  showBasis();
  $("evaluate-panel").scrollIntoView({ behavior: "smooth", block: "start" });
}

async function showBasis() {
  const t = evaluating;
  if (!t) return;
  const ticket = ++basisTicket;
  const classes = ticked("evaluate-classes");
  const q = new URLSearchParams({ include_pending: $("evaluate-pending").checked ? "true" : "false" });
  if (classes.length) q.set("classes", classes.join(","));
  try {
    const data = await api("GET", `/api/test-sessions/${t.id}/evaluation-basis?${q}`);
    if (ticket !== basisTicket || evaluating !== t) return;
    renderBasis($("evaluate-basis"), data.basis, data.refusal, remedies(t.ground_truth_session_id, () => {
      $("evaluate-pending").checked = true;
      showBasis();
    }));
    $("evaluate-basis").dataset.empty = String(Boolean(data.refusal));
  } catch (err) {
    $("evaluate-basis").textContent = errorText(err);
  }
}

function fieldErrors(listId, err) {
  const list = $(listId);
  const fields = (err.details && err.details.fields && (err.details.fields.json || err.details.fields.query)) || {};
  const items = Object.entries(fields).map(([k, msgs]) => el("li", { text: `${k}: ${[].concat(msgs).join(" ")}` }));
  list.replaceChildren(...(items.length ? items : [el("li", { text: errorText(err) })]));
  list.hidden = false;
}

async function submitEvaluation(event) {
  event.preventDefault();
  const t = evaluating;
  if (!t) return;
  const body = { include_pending: $("evaluate-pending").checked };
  const iou = $("evaluate-iou").value.trim();
  const score = $("evaluate-score").value.trim();
  if (iou) body.iou_threshold = parseFloat(iou);
  if (score) body.score_threshold = parseFloat(score);
  const classes = ticked("evaluate-classes");
  if (classes.length) body.classes = classes;
  $("evaluate-errors").hidden = true;
  try {
    const job = await api("POST", `/api/test-sessions/${t.id}/evaluate`, { json: body });
    toast("Evaluation started");
    shown = t.id;
    $("evaluate-panel").hidden = true;
    evaluating = null;
    emit("job-submitted", job);
  } catch (err) {
    fieldErrors("evaluate-errors", err);
  }
}

// ------------------------------------------------------------------------------ pre-annotations

function openPreannotate(t) {
  preannotating = t;
  $("preannotate-panel").hidden = false;
  $("preannotate-title").textContent = `Pre-annotate from the tracks of ${t.name}`;
  $("preannotate-result").replaceChildren();
  classBoxes("preannotate-classes");
  $("preannotate-panel").scrollIntoView({ behavior: "smooth", block: "start" });
}

async function submitPreannotation(event) {
  event.preventDefault();
  const t = preannotating;
  if (!t) return;
  const body = { score_threshold: parseFloat($("preannotate-score").value || "0"),
                 keyframe_iou: parseFloat($("preannotate-iou").value || "0.9"),
                 min_track_length: parseInt($("preannotate-min").value || "2", 10) };
  const name = $("preannotate-name").value.trim();
  if (name) body.session_name = name;
  const classes = ticked("preannotate-classes");
  if (classes.length) body.classes = classes;
  const out = $("preannotate-result");
  $("preannotate-submit").disabled = true;
  try {
    const s = await api("POST", `/api/test-sessions/${t.id}/pre-annotations`, { json: body });
    const m = s.metadata || {};
    state.report.preannotated = s.id;
    out.replaceChildren(`${s.session_name}: ${plural(s.annotation_count, "pending annotation")} ` +
      `with ${plural(m.keyframes || 0, "keyframe")} from ${plural(m.detections_used || 0, "detection")}` +
      `${m.tracks_left_out ? ` (${plural(m.tracks_left_out, "short track")} left out)` : ""}. `,
      el("button", { type: "button", id: "preannotate-open", text: "Review them",
                     onclick: () => emit("open-review", s.id) }));
  } catch (err) {
    out.textContent = errorText(err);
  } finally {
    $("preannotate-submit").disabled = false;
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
  $("report-basis").hidden = true;
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
      const t = state.testSessions.find((x) => x.id === id);
      if (t && t.ground_truth_session_id) {   // what an evaluation would rest on, before there is one
        try {
          const b = await api("GET", `/api/test-sessions/${id}/evaluation-basis`);
          if (shown === id) {
            renderBasis($("report-basis"), b.basis, b.refusal, remedies(t.ground_truth_session_id, () => {
              openEvaluate(t);
              $("evaluate-pending").checked = true;
              showBasis();
            }));
          }
        } catch { /* the short text stands */ }
      }
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
  const t = state.testSessions.find((x) => x.id === id) || {};
  renderBasis($("report-basis"), report.basis, report.refusal, remedies(t.ground_truth_session_id || params.ground_truth_session_id,
    () => openEvaluate({ ...t, id, name: report.name, ground_truth_session_id: params.ground_truth_session_id })));
  const refused = Boolean(report.refusal);
  state.report.refused = refused;
  panel.dataset.refused = String(refused);
  for (const node of [$("report-classes"), document.querySelector("#report-panel .plots")]) node.hidden = refused;
  for (const h of document.querySelectorAll("#report-body h3")) if (h.textContent === "Per class") h.hidden = refused;
  if (refused) {  // precision and recall against nothing are no numbers: show what can be said
    $("report-summary").querySelector("tbody").replaceChildren(
      row("detections above the score threshold", (m.counts || {}).detections_above_threshold),
      row("false positives (nothing to match)", op.fp));
    $("report-body").hidden = false;
    state.report.loaded = id;
    state.report.plots = 0;
    panel.dataset.loaded = id;
    panel.scrollIntoView({ behavior: "smooth", block: "start" });
    return;
  }
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

async function compareSelected(reference) {
  const ids = [...$("sessions-table").querySelectorAll("tbody input:checked")].map((i) => i.value);
  const panel = $("compare-panel");
  panel.hidden = false;
  const thead = $("compare-table").querySelector("thead");
  const tbody = $("compare-table").querySelector("tbody");
  thead.replaceChildren();
  tbody.replaceChildren();
  $("compare-warnings").hidden = true;
  if (ids.length < 2) {
    $("compare-state").textContent = "Select at least two evaluated test sessions of the same video and ground truth.";
    return;
  }
  const refSelect = $("compare-reference");
  if (!reference || !ids.includes(reference)) reference = ids.includes(refSelect.value) ? refSelect.value : ids[0];
  let data;
  try {
    data = await api("GET", `/api/test-sessions/compare?ids=${ids.join(",")}&reference=${reference}`);
  } catch (err) {
    $("compare-state").textContent = errorText(err);
    return;
  }
  const ref = data.reference || 0;
  refSelect.replaceChildren(...data.sessions.map((s, i) => option(s.id, s.name, i === ref)));
  $("compare-state").textContent = `IoU ${fmt(data.parameters.iou_threshold, 2)}; differences are to the ` +
    `reference, ${data.sessions[ref].name}; the best value is bold, a tie is marked as a tie.`;
  const warnings = data.warnings || [];
  $("compare-warnings").replaceChildren(...warnings.map((w) => el("li", { text: w.message, dataset: { code: w.code } })));
  $("compare-warnings").hidden = !warnings.length;
  thead.append(el("tr", {}, el("th", { text: "metric" }),
    ...data.sessions.map((s, i) => el("th", { className: "num", text: `${s.name}${i === ref ? " (reference)" : ""}`,
                                           title: s.id }))));
  for (const r of data.metrics) {
    const tied = new Set(r.tied || []);
    tbody.append(el("tr", { dataset: { metric: r.metric } },
      el("td", { text: r.label || r.metric, title: `${r.metric} (${r.higher_is_better ? "higher" : "lower"} is better)` }),
      ...r.values.map((v, i) => {
        const d = r.differences && r.differences[i];
        const diff = i !== ref && d !== null && d !== undefined ? ` (${d >= 0 ? "+" : ""}${fmt(d)})` : "";
        const cls = r.best === i ? " best" : tied.has(i) ? " tie" : "";
        return el("td", { className: `num${cls}`, text: fmt(v) + diff + (tied.has(i) ? " (tie)" : "") });
      })));
  }
}
