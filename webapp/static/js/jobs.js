// Jobs view: every job of the project, live from the project room (snapshot on every (re)join).
import { $, api, dateTime, download, el, emit, errorText, fieldList, listAll, on, state, toast } from "./api.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const rows = new Map(); // job id -> row elements
let getSocket = () => null;
let joinedProject = null;
let refetchTimer = null;

export function init(socketGetter) {
  getSocket = socketGetter;
  $("jobs-refresh").addEventListener("click", () => reload());
  $("jobs-hide-finished").addEventListener("change", renderVisibility);
  $("job-details-close").addEventListener("click", () => { $("job-details").hidden = true; });
  on("project-changed", async (project, previous) => {
    const socket = getSocket();
    if (socket && previous && socket.connected) socket.emit("leave_project", { project_id: previous.id });
    joinedProject = null;
    await reload();
    join();
  });
  on("socket-connected", () => { joinedProject = null; join(); reload(); });
  on("test-sessions-loaded", () => { for (const job of state.jobs.values()) render(job); });
  on("job-submitted", (job) => {
    upsert(job);
    // A job outside this project's room (a projects import) is followed through its own room.
    const socket = getSocket();
    if (socket && socket.connected && (!state.project || job.project_id !== state.project.id)) {
      socket.emit("subscribe_job", { job_id: job.id });
    }
    emit("show-tab", "jobs");
  });
}

export function bindSocket(socket) {
  socket.on("project_snapshot", (snap) => {
    if (!state.project || snap.project_id !== state.project.id) return;
    for (const p of snap.jobs) applyProgress(p);
  });
  socket.on("project_progress_update", (msg) => {
    if (!state.project || msg.project_id !== state.project.id) return;
    applyProgress(msg.progress);
  });
  socket.on("job_progress", (p) => applyProgress(p));
  socket.on("job_snapshot", (p) => applyProgress(p));
}

function join() {
  const socket = getSocket();
  if (!socket || !socket.connected || !state.project || joinedProject === state.project.id) return;
  joinedProject = state.project.id;
  socket.emit("join_project", { project_id: state.project.id }, (ack) => {
    if (ack && ack.error) toast(`live updates unavailable: ${ack.error.message}`, true);
  });
}

async function reload() {
  $("jobs-table").querySelector("tbody").replaceChildren();
  rows.clear();
  state.jobs.clear();
  if (!state.project) { renderVisibility(); return; }
  try {
    const items = await listAll(`/api/jobs?project_id=${state.project.id}`, 2);
    for (const job of items.reverse()) upsert(job);
  } catch (err) {
    toast(errorText(err), true);
  }
  renderVisibility();
}

/** A live event or snapshot entry: applied only when newer than what the row shows. */
function applyProgress(p) {
  if (!p || !p.job_id) return;
  const job = state.jobs.get(p.job_id);
  if (!job) {
    // A job this page has not listed yet (submitted elsewhere): fetch it once.
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(() => fetchJob(p.job_id), 150);
    return;
  }
  if (typeof p.seq === "number" && typeof job.seq === "number" && p.seq <= job.seq) return;
  const wasTerminal = TERMINAL.has(job.status);
  Object.assign(job, { status: p.status, progress_percent: p.progress_percent, stage: p.stage, seq: p.seq });
  state.progressEvents += 1;
  render(job);
  if (TERMINAL.has(job.status) && !wasTerminal) {
    fetchJob(job.id); // the result or the error
    emit("job-finished", job);
  }
}

async function fetchJob(jobId) {
  try {
    const job = await api("GET", `/api/jobs/${jobId}`);
    if ((state.project && job.project_id === state.project.id) || state.jobs.has(job.id)) upsert(job);
  } catch { /* gone or not visible */ }
}

function upsert(job) {
  const known = state.jobs.get(job.id);
  if (known && typeof known.seq === "number" && typeof job.seq === "number" && job.seq < known.seq) {
    // The REST answer is older than live events already shown: keep the live progress fields.
    Object.assign(known, { ...job, status: known.status, progress_percent: known.progress_percent,
                           stage: known.stage, seq: known.seq });
  } else {
    state.jobs.set(job.id, known ? Object.assign(known, job) : job);
  }
  render(state.jobs.get(job.id));
  renderVisibility();
}

function render(job) {
  let r = rows.get(job.id);
  if (!r) {
    const fill = el("div", { className: "fill" });
    const label = el("span", { className: "label" });
    r = {
      tr: el("tr", { dataset: { jobId: job.id, kind: job.kind } }),
      kind: el("td", { className: "job-name" }), status: el("td", { className: "status" }),
      bar: el("div", { className: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, fill, label),
      fill, label, stage: el("td", { className: "stage" }), created: el("td", { className: "created" }),
      finished: el("td", { className: "finished" }), actions: el("td", { className: "actions" }),
    };
    r.tr.append(r.kind, r.status, el("td", {}, r.bar), r.stage, r.created, r.finished, r.actions);
    $("jobs-table").querySelector("tbody").prepend(r.tr);
    rows.set(job.id, r);
  }
  const pct = Math.max(0, Math.min(100, Number(job.progress_percent) || 0));
  renderName(job, r.kind);
  r.status.textContent = job.status;
  r.status.className = `status status-${job.status}`;
  r.tr.dataset.status = job.status;
  r.fill.style.width = `${pct}%`;
  r.label.textContent = `${pct.toFixed(0)}%`;
  r.bar.className = `bar ${job.status}`;
  r.bar.setAttribute("aria-valuenow", pct.toFixed(1));
  r.stage.textContent = job.error ? `${job.stage || ""} — ${job.error}` : (job.stage || "");
  r.created.textContent = dateTime(job.created_at);
  r.finished.textContent = dateTime(job.finished_at);
  renderActions(job, r.actions);
}

function renderActions(job, cell) {
  const buttons = [];
  const terminal = TERMINAL.has(job.status);
  if (!terminal) buttons.push(el("button", { type: "button", className: "cancel", text: "Cancel", onclick: () => cancel(job) }));
  if (job.status === "failed" || job.status === "cancelled") {
    const how = retryRequest(job);
    buttons.push(el("button", { type: "button", className: "retry", text: "Retry", disabled: !how,
                                title: how ? "submit the same job again" : "cannot be resubmitted from here (upload the file again)",
                                onclick: () => retry(job) }));
  }
  const p = job.params || {};
  if (job.kind === "detection" && p.test_session_id) {
    buttons.push(el("button", { type: "button", className: "view", text: "Viewer",
                                onclick: () => emit("open-viewer", p.test_session_id) }));
    if (job.status === "completed") {
      buttons.push(el("button", { type: "button", text: "Report", onclick: () => emit("open-report", p.test_session_id) }));
    }
  }
  if (job.kind === "evaluation" && p.test_session_id && job.status === "completed") {
    buttons.push(el("button", { type: "button", className: "report", text: "Report",
                                onclick: () => emit("open-report", p.test_session_id) }));
  }
  if (job.kind === "export" && p.export_id && job.status === "completed") {
    buttons.push(el("button", { type: "button", className: "download", text: "Download",
                                onclick: () => downloadExport(p.export_id) }));
  }
  if (job.kind === "compatibility" && p.video_id && job.status === "completed") {
    buttons.push(el("button", { type: "button", text: "Features", onclick: () => showCompatibility(p.video_id) }));
  }
  buttons.push(el("button", { type: "button", className: "details", text: "Details", onclick: () => showDetails(job) }));
  cell.replaceChildren(...buttons);
}

function renderVisibility() {
  const hide = $("jobs-hide-finished").checked;
  for (const [id, r] of rows) r.tr.hidden = hide && TERMINAL.has(state.jobs.get(id).status);
  $("jobs-empty").hidden = rows.size > 0;
}

async function cancel(job) {
  try {
    upsert(await api("POST", `/api/jobs/${job.id}/cancel`));
    toast(`Cancel requested for ${job.kind} job`);
  } catch (err) {
    toast(errorText(err), true);
  }
}

/** How to submit the same job again: [method, path, body] built from the job's parameters. */
function retryRequest(job) {
  const p = job.params || {};
  switch (job.kind) {
    case "compatibility":
      return p.video_id ? ["POST", `/api/videos/${p.video_id}/compatibility/analyze`, undefined] : null;
    case "assignment": {
      const body = { threshold: p.threshold };
      if (p.candidate_videos && p.candidate_videos.length) body.candidate_videos = p.candidate_videos;
      const others = (p.project_ids || []).filter((id) => id !== job.project_id);
      if (others.length) body.project_ids = others;
      return ["POST", `/api/projects/${job.project_id}/assignments/intelligent`, body];
    }
    case "evaluation": {
      if (!p.test_session_id) return null;
      const body = { iou_threshold: p.iou_threshold, include_pending: p.include_pending };
      if (p.classes) body.classes = p.classes;
      if (p.score_threshold_source === "request") body.score_threshold = p.score_threshold;
      return ["POST", `/api/test-sessions/${p.test_session_id}/evaluate`, body];
    }
    case "probe":
      return ["POST", "/api/jobs/probe", { ...p, project_id: job.project_id || undefined }];
    case "detection":
      return p.test_session_id ? ["DETECTION", p.test_session_id] : null;
    case "export":
      return p.export_id ? ["EXPORT", p.export_id] : null;
    default:
      return null;
  }
}

async function retry(job) {
  const how = retryRequest(job);
  if (!how) return;
  try {
    let created;
    if (how[0] === "DETECTION") {
      const ts = await api("GET", `/api/test-sessions/${how[1]}`);
      const body = { project_id: ts.project_id, video_id: ts.video_id, model: ts.model, name: ts.name, ...ts.config };
      if (ts.ground_truth_session_id) body.ground_truth_session_id = ts.ground_truth_session_id;
      const created_ts = await api("POST", "/api/test-sessions", { json: body });
      emit("test-sessions-changed");
      created = created_ts.job;
    } else if (how[0] === "EXPORT") {
      const exp = await api("GET", `/api/export/jobs/${how[1]}`);
      const body = { job_name: exp.job_name, export_type: exp.export_type, format: exp.format,
                     scope_filter: exp.scope_filter || {} };
      const made = await api("POST", "/api/export/jobs", { json: body });
      if (made.job_id) created = await api("GET", `/api/jobs/${made.job_id}`);
    } else {
      created = await api(how[0], how[1], { json: how[2] });
    }
    if (created && created.id) upsert(created);
    toast(`${job.kind} job submitted again`);
  } catch (err) {
    toast(errorText(err), true);
  }
}

async function downloadExport(exportId) {
  try {
    await download(`/api/export/jobs/${exportId}/download`, `export-${exportId}`);
  } catch (err) {
    toast(errorText(err), true);
  }
}

function showPanel(title, value) {
  $("job-details-title").textContent = title;
  $("job-details-body").replaceChildren(fieldList(value));
  $("job-details").hidden = false;
}

async function showDetails(job) {
  const name = await jobName(job);
  const { params, result, ...rest } = job;
  const fields = { name, ...rest, created_at: dateTime(job.created_at), started_at: dateTime(job.started_at),
                   finished_at: dateTime(job.finished_at), parameters: params, result };
  showPanel(`${KIND_LABELS[job.kind] || job.kind} job: ${name}`, fields);
}

async function showCompatibility(videoId) {
  try {
    showPanel(`Compatibility features of video ${videoId}`, await api("GET", `/api/videos/${videoId}/compatibility`));
  } catch (err) {
    toast(errorText(err), true);
  }
}

// ---------------------------------------------------------------------------------- job names

const KIND_LABELS = {
  detection: "Detection", evaluation: "Evaluation", export: "Export", import: "Import",
  compatibility: "Compatibility analysis", assignment: "Intelligent assignment", probe: "Probe",
  model_check: "Model check", validation_aggregate: "Validation run summary",
};
const lookups = new Map(); // API path -> Promise of its answer (null when it cannot be read)

function lookup(path) {
  if (!lookups.has(path)) lookups.set(path, api("GET", path).catch(() => null));
  return lookups.get(path);
}

async function videoName(videoId) {
  if (!videoId) return null;
  const known = state.videos.find((v) => v.id === videoId);
  const v = known || await lookup(`/api/videos/${videoId}`);
  return v ? v.filename : null;
}

async function testSessionName(testSessionId) {
  if (!testSessionId) return [null, null];
  const known = state.testSessions.find((t) => t.id === testSessionId);
  const ts = known || await lookup(`/api/test-sessions/${testSessionId}`);
  return ts ? [ts.name, ts.video_id] : [null, null];
}

/** What the job works on, in words: its run, video, export or import name. */
async function jobName(job) {
  const p = job.params || {};
  const parts = [];
  switch (job.kind) {
    case "detection":
    case "evaluation": {
      const [name, videoId] = await testSessionName(p.test_session_id);
      parts.push(name || (p.model && p.model.name), await videoName(p.video_id || videoId));
      if (p.validation_run_id) {
        const run = await lookup(`/api/validation-runs/${p.validation_run_id}`);
        if (run && run.name) parts.push(`run ${run.name}`);
      }
      break;
    }
    case "export": {
      const exp = p.export_id ? await lookup(`/api/export/jobs/${p.export_id}`) : null;
      parts.push(exp ? `${exp.job_name} (${exp.export_type}, ${exp.format})` : null);
      break;
    }
    case "import": {
      const imp = p.import_id ? await lookup(`/api/import/jobs/${p.import_id}`) : null;
      parts.push(imp ? `${imp.job_name} (${imp.import_type}, ${imp.source_format})` : null);
      break;
    }
    case "compatibility":
      parts.push(await videoName(p.video_id));
      break;
    case "assignment":
      parts.push(`${(p.candidate_videos || []).length || "all"} unassigned videos, threshold ${p.threshold}`);
      break;
    case "validation_aggregate": {
      const run = p.validation_run_id ? await lookup(`/api/validation-runs/${p.validation_run_id}`) : null;
      parts.push(run ? run.name : null);
      break;
    }
    case "model_check":
      parts.push(p.model && (p.model.name || p.model.ref || String(p.model)));
      break;
    case "probe":
      parts.push(p.queue ? `${p.queue} queue` : null);
      break;
    default:
      break;
  }
  return parts.filter(Boolean).join(" · ") || job.id;
}

function renderName(job, cell) {
  const kind = KIND_LABELS[job.kind] || job.kind;
  if (!cell.firstChild) cell.append(el("b", { className: "job-kind" }), el("span", { className: "job-subject" }));
  cell.firstChild.textContent = kind;
  cell.title = `job ${job.id}`;
  jobName(job).then((name) => {
    cell.lastChild.textContent = name === job.id ? "" : ` ${name}`;
  });
}
