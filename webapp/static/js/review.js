// Review of the annotation session chosen in the Annotations tab: progress (pending / validated /
// rejected), each track with the consistency findings validation would report, and decisions one
// by one or in bulk (the whole session, a class, a frame range).
import { $, api, el, emit, errorText, on, option, state, toast } from "./api.js";

let sessionId = null;
let openWhenListed = null;   // a session to select once the session list has it (after pre-annotating)
let reloadTimer = null;
let loading = 0;

export function init() {
  state.review = { sessionId: null, progress: null, rows: 0, loads: 0, lastBulk: null };
  $("ann-session").addEventListener("change", (e) => select(e.target.value));
  $("review-refresh").addEventListener("click", () => load());
  $("review-bulk").addEventListener("submit", bulk);
  on("project-changed", () => select(""));
  on("annotation-sessions-loaded", () => {
    if (!openWhenListed) return;
    const wanted = openWhenListed;
    const selectEl = $("ann-session");
    if (![...selectEl.options].some((o) => o.value === wanted)) return;
    openWhenListed = null;
    selectEl.value = wanted;
    selectEl.dispatchEvent(new Event("change"));
  });
  on("open-review", (id) => {     // from a report's remedy or a new pre-annotation session
    openWhenListed = id;
    // showing the tab reloads the session list, which then selects the wanted session
    emit("show-tab", "annotations");
  });
}

export function bindSocket(socket) {
  const later = (m) => { if (m && m.session_id === sessionId) schedule(); };
  socket.on("annotation_validated", later);
  socket.on("annotation_update", later);
}

function schedule() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, 300);
}

function select(id) {
  sessionId = id || null;
  state.review.sessionId = sessionId;
  state.review.progress = null;
  $("review-panel").hidden = !sessionId;
  $("review-bulk-result").textContent = "";
  $("review-table").querySelector("tbody").replaceChildren();
  if (sessionId) load();
}

async function load() {
  if (!sessionId) return;
  const id = sessionId;
  const ticket = ++loading;
  let data;
  try {
    data = await api("GET", `/api/annotations/sessions/${id}/review`);
  } catch (err) {
    toast(errorText(err), true);
    return;
  }
  if (id !== sessionId || ticket !== loading) return;   // another session was chosen meanwhile
  renderProgress(data.progress);
  renderClasses(data);
  renderRows(data.annotations, data.status === "completed");
  state.review.rows = data.annotations.length;
  state.review.loads += 1;
}

function renderProgress(p) {
  state.review.progress = p;
  for (const k of ["pending", "validated", "rejected"]) $(`review-${k}`).textContent = String(p[k]);
  $("review-percent").textContent = String(p.reviewed_percent);
  const total = p.total || 1;
  const bar = $("review-bar");
  bar.querySelector(".seg-validated").style.width = `${(100 * p.validated) / total}%`;
  bar.querySelector(".seg-rejected").style.width = `${(100 * p.rejected) / total}%`;
  bar.title = `${p.validated} validated, ${p.rejected} rejected, ${p.pending} pending of ${p.total}`;
}

function renderClasses(data) {
  const selectEl = $("review-bulk-class");
  const keep = selectEl.value;
  const labels = [...new Set([...Object.keys(data.progress.per_class || {}),
                              ...((state.project && state.project.labels) || [])])];
  selectEl.replaceChildren(option("", "every class"), ...labels.map((l) => {
    const c = data.progress.per_class[l];
    return option(l, c ? `${l} (${c.pending} pending)` : l, l === keep);
  }));
}

function findingsList(findings) {
  if (!findings.length) return el("span", { className: "muted", text: "none" });
  return el("ul", { className: "findings" }, findings.map((f) => el("li", {
    className: `finding-${f.severity}`,
    text: `${f.severity === "error" ? "error" : "warning"}: ${f.message}` +
          (f.frame_number !== undefined ? ` (frame ${f.frame_number})` : ""),
  })));
}

function renderRows(rows, readOnly) {
  const tbody = $("review-table").querySelector("tbody");
  tbody.replaceChildren(...rows.map((a) => el("tr", {
    className: `st-row-${a.validation_status}`,
    dataset: { annotationId: a.id, status: a.validation_status, errors: String(a.errors) },
  },
    el("td", { text: a.class_label, title: a.id }),
    el("td", { text: a.frame_from === null ? "–" : `${a.frame_from}–${a.frame_to}` }),
    el("td", { className: "num", text: String(a.keyframes) }),
    el("td", { className: `status st-${a.validation_status}`, text: a.validation_status,
               title: a.validation_reason || "" }),
    el("td", {}, findingsList(a.findings)),
    el("td", { className: "actions" },
      readOnly ? null : el("button", { type: "button", className: "validate-one", text: "Validate",
                                      disabled: a.validation_status === "validated",
                                      onclick: () => decide(a.id, "validated", false) }),
      readOnly ? null : el("button", { type: "button", className: "reject-one", text: "Reject",
                                      disabled: a.validation_status === "rejected",
                                      onclick: () => decide(a.id, "rejected", false) })))));
}

async function decide(annotationId, status, force) {
  try {
    await api("POST", `/api/annotations/${annotationId}/validate`, { json: { status, force } });
    toast(status === "validated" ? "Validated" : "Rejected");
    load();
  } catch (err) {
    if (err.code === "consistency_failed" && !force) {
      const findings = (err.details && err.details.findings) || [];
      const text = findings.map((f) => f.message).join("; ");
      // the person decides: the checks found an error; validate anyway?
      if (window.confirm(`The checks found problems: ${text}\n\nValidate anyway?`)) decide(annotationId, status, true);
      return;
    }
    toast(errorText(err), true);
  }
}

function intOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : parseInt(v, 10);
}

async function bulk(event) {
  event.preventDefault();
  if (!sessionId) return;
  const body = { status: $("review-bulk-status").value, only_pending: !$("review-bulk-decided").checked,
                 force: $("review-bulk-force").checked };
  if ($("review-bulk-class").value) body.class_label = $("review-bulk-class").value;
  if (intOrNull("review-bulk-from") !== null) body.frame_from = intOrNull("review-bulk-from");
  if (intOrNull("review-bulk-to") !== null) body.frame_to = intOrNull("review-bulk-to");
  if ($("review-bulk-reason").value.trim()) body.reason = $("review-bulk-reason").value.trim();
  $("review-bulk-submit").disabled = true;
  try {
    const out = await api("POST", `/api/annotations/sessions/${sessionId}/validate`, { json: body });
    state.review.lastBulk = out;
    const verb = out.status === "validated" ? "validated" : "rejected";
    let text = `${out.decided} annotation(s) ${verb}`;
    if (out.with_warnings) text += ` (${out.with_warnings} with warnings)`;
    if (out.skipped.length) {
      text += `; ${out.skipped.length} left pending because their checks found errors: ` +
        out.skipped.map((s) => `${s.class_label} (${s.findings.filter((f) => f.severity === "error")
          .map((f) => f.message).join("; ")})`).join(", ") + " — fix them, or tick “despite errors”.";
    }
    $("review-bulk-result").textContent = text;
    renderProgress(out.progress);
    load();
  } catch (err) {
    $("review-bulk-result").textContent = errorText(err);
  } finally {
    $("review-bulk-submit").disabled = false;
  }
}
