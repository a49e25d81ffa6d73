// Videos of the project, and the forms that submit jobs: detection, export, import, compatibility.
import { $, api, el, emit, errorText, fmt, listAll, on, option, state, toast, upload } from "./api.js";

export function init() {
  $("upload-form").addEventListener("submit", uploadVideo);
  $("detect-form").addEventListener("submit", submitDetection);
  $("detect-video").addEventListener("change", fillGroundTruth);
  $("export-form").addEventListener("submit", submitExport);
  $("import-form").addEventListener("submit", submitImport);
  $("import-map-add").addEventListener("click", () => {
    const name = $("import-map-from").value.trim();
    if (name) addMapRow(name);
    $("import-map-from").value = "";
  });
  on("project-changed", () => { fillImportLabels(); $("import-map-rows").replaceChildren(); $("import-outcome").hidden = true; });
  $("assign-form").addEventListener("submit", submitAssignment);
  on("project-changed", () => refresh());
  on("test-sessions-changed", () => loadTestSessions());
  on("tab-shown", (name) => {   // lists other people (or scripts) may have changed meanwhile
    if (!state.project) return;
    if (name === "submit") loadAnnotationSessions();
    if (name === "report") loadTestSessions();
    if (name === "annotations") loadAnnotationSessions();
  });
  on("job-finished", (job) => {
    if (["detection", "evaluation", "import"].includes(job.kind)) loadTestSessions();
    if (job.kind === "import") loadAnnotationSessions();
  });
}

async function refresh() {
  if (!state.project) return;
  await Promise.all([loadVideos(), loadModels(), loadTestSessions(), loadAnnotationSessions()]);
}

async function loadModels() {
  if (state.models.length) return;
  try {
    const data = await api("GET", "/api/models");
    state.models = data.items;
    const select = $("detect-model");
    select.replaceChildren();
    for (const m of data.items) {
      const o = option(m.name, m.weights_present ? m.name : `${m.name} (weights missing: ${m.weights_file})`,
                       m.name === data.default);
      o.disabled = !m.weights_present;
      select.append(o);
    }
  } catch (err) {
    toast(errorText(err), true);
  }
}

/** A row of a videos table; a video in no project cannot be run here, only looked at and analysed. */
function videoRow(v, inProject) {
  return el("tr", { dataset: { videoId: v.id } },
    el("td", { text: v.filename, title: v.id }),
    el("td", { text: fmt(v.frame_count) }),
    el("td", { text: fmt(v.fps, 2) + (v.variable_frame_rate ? " (VFR)" : "") }),
    el("td", { text: `${v.width}×${v.height}` }),
    el("td", { text: `${fmt(v.duration, 1)} s` }),
    el("td", { text: v.codec || "" }),
    el("td", { className: "actions" },
      inProject ? el("button", { type: "button", text: "Detect", onclick: () => pickForDetection(v.id) }) : null,
      el("button", { type: "button", text: "Analyze compatibility", onclick: () => analyze(v.id) }),
      el("button", { type: "button", text: "Frames", onclick: () => emit("open-video", v.id) })));
}

export async function loadVideos() {
  const project = state.project;
  const [videos, unassigned] = await Promise.all([listAll(`/api/videos?project_id=${project.id}`),
                                                  listAll("/api/videos?unassigned=true", 2)]);
  state.videos = videos;
  state.unassignedVideos = unassigned;
  $("videos-table").querySelector("tbody").replaceChildren(...videos.map((v) => videoRow(v, true)));
  $("unassigned-videos-table").querySelector("tbody").replaceChildren(...unassigned.map((v) => videoRow(v, false)));
  $("unassigned-videos").hidden = unassigned.length === 0;
  for (const id of ["detect-video", "import-video"]) {
    const select = $(id);
    const keep = select.value;
    select.replaceChildren(...state.videos.map((v) => option(v.id, v.filename, v.id === keep)));
  }
  await fillGroundTruth();
}

export async function loadTestSessions() {
  if (!state.project) return;
  state.testSessions = await listAll(`/api/test-sessions?project_id=${state.project.id}`, 2);
  const select = $("import-test-session");
  const keep = select.value;
  select.replaceChildren(option("", "—"), ...state.testSessions.map((t) => option(t.id, `${t.name} (${t.status})`,
                                                                                   t.id === keep)));
  emit("test-sessions-loaded", state.testSessions);
}

export async function loadAnnotationSessions() {
  if (!state.project) return;
  state.annotationSessions = await listAll(`/api/annotations/sessions?project_id=${state.project.id}`, 2);
  await fillGroundTruth();
  emit("annotation-sessions-loaded", state.annotationSessions);
}

async function fillGroundTruth() {
  const videoId = $("detect-video").value;
  const select = $("detect-gt");
  const keep = select.value;
  select.replaceChildren(option("", "none"), ...state.annotationSessions
    .filter((s) => s.video_id === videoId)
    .map((s) => option(s.id, `${s.session_name} (${s.annotation_count} annotations, ${s.status})`, s.id === keep)));
}

function pickForDetection(videoId) {
  $("detect-video").value = videoId;
  fillGroundTruth();
  $("detect-form").scrollIntoView({ behavior: "smooth" });
}

async function uploadVideo(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file || !state.project) return;
  const form = new FormData();
  form.append("file", file);
  if (!$("upload-unassigned").checked) form.append("project_id", state.project.id);
  const bar = $("upload-progress");
  bar.hidden = false;
  bar.value = 0;
  $("upload-button").disabled = true;
  $("upload-status").textContent = `uploading ${file.name}…`;
  try {
    const video = await upload("/api/videos", form, (pct) => { bar.value = pct; });
    $("upload-status").textContent = `${video.filename}: ${video.frame_count} frames, ${video.width}×${video.height}`;
    $("upload-form").reset();
    await loadVideos();
    if (video.project_id) $("detect-video").value = video.id;
    await fillGroundTruth();
    emit("video-uploaded", video);
  } catch (err) {
    $("upload-status").textContent = "";
    toast(`Upload failed: ${errorText(err)}`, true);
  } finally {
    bar.hidden = true;
    $("upload-button").disabled = false;
  }
}

function intOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : parseInt(v, 10);
}

async function submitDetection(event) {
  event.preventDefault();
  const body = {
    project_id: state.project.id, video_id: $("detect-video").value, model: $("detect-model").value,
    batch_size: intOrNull("detect-batch") || 4, frame_stride: intOrNull("detect-stride") || 1,
    enable_tracking: $("detect-tracking").checked,
  };
  const name = $("detect-name").value.trim();
  if (name) body.name = name;
  if (intOrNull("detect-from") !== null) body.frame_from = intOrNull("detect-from");
  if (intOrNull("detect-to") !== null) body.frame_to = intOrNull("detect-to");
  if ($("detect-gt").value) body.ground_truth_session_id = $("detect-gt").value;
  $("detect-submit").disabled = true;
  try {
    const ts = await api("POST", "/api/test-sessions", { json: body });
    toast(`Detection started: ${ts.name}`);
    await loadTestSessions();
    if (ts.job) emit("job-submitted", ts.job);
    emit("open-viewer", ts.id);
  } catch (err) {
    toast(errorText(err), true);
  } finally {
    $("detect-submit").disabled = false;
  }
}

async function jobOf(made) {
  return made && made.job_id ? api("GET", `/api/jobs/${made.job_id}`) : null;
}

async function submitExport(event) {
  event.preventDefault();
  const body = { job_name: $("export-name").value.trim() || "export", export_type: $("export-type").value,
                 format: $("export-format").value, scope_filter: { project_ids: [state.project.id] } };
  try {
    const job = await jobOf(await api("POST", "/api/export/jobs", { json: body }));
    toast("Export started");
    if (job) emit("job-submitted", job);
  } catch (err) {
    toast(errorText(err), true);
  }
}

// ------------------------------------------------------------------------------ imports

const TERMINAL_IMPORT = new Set(["completed", "failed", "cancelled"]);
let followed = null;   // the import this form follows

function projectLabels() { return (state.project && state.project.labels) || []; }

function fillImportLabels() {
  const select = $("import-default-label");
  const keep = select.value;
  select.replaceChildren(option("", "(none)"), ...projectLabels().map((l) => option(l, l, l === keep)));
}

/** A row of the label map: a class of the file and the project class it becomes. */
function addMapRow(fileLabel, target = "") {
  const rows = $("import-map-rows");
  if ([...rows.children].some((r) => r.dataset.from === fileLabel)) return;
  const select = el("select", { className: "map-to", title: `what '${fileLabel}' becomes` },
    option("", "— choose a project class —"), ...projectLabels().map((l) => option(l, l, l === target)));
  rows.append(el("div", { className: "map-row", dataset: { from: fileLabel } },
    el("code", { text: fileLabel }), el("span", { text: "→" }), select,
    el("button", { type: "button", text: "Remove", onclick: (e) => e.target.closest(".map-row").remove() })));
}

function labelMap() {
  const out = {};
  for (const row of $("import-map-rows").children) {
    const to = row.querySelector("select").value;
    if (to) out[row.dataset.from] = to;
  }
  return out;
}

async function submitImport(event) {
  event.preventDefault();
  const file = $("import-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  form.append("job_name", file.name.slice(0, 100));
  form.append("import_type", $("import-type").value);
  const kind = $("import-type").value;
  if (kind === "project") {        // creates its own projects: no target in this one
    form.append("source_format", "json");
  } else {
    form.append("source_format", $("import-format").value);
    form.append("project_id", state.project.id);
    form.append("on_error", $("import-on-error").value);
    const map = labelMap();
    if (Object.keys(map).length) form.append("label_map", JSON.stringify(map));
    if ($("import-add-labels").checked) form.append("add_missing_labels", "true");
    if ($("import-default-label").value) form.append("default_label", $("import-default-label").value);
  }
  if (kind === "results") {
    if ($("import-test-session").value) form.append("test_session_id", $("import-test-session").value);
    else if ($("import-video").value) form.append("video_id", $("import-video").value);
  } else if (kind === "annotations" && $("import-video").value) {
    form.append("video_id", $("import-video").value);
  }
  $("import-outcome").hidden = false;
  $("import-issues").replaceChildren();
  $("import-links").replaceChildren();
  $("import-status").textContent = `uploading ${file.name}…`;
  try {
    const made = await upload("/api/import/jobs", form);
    toast("Import started");
    // the form keeps its choices (format, type, label map): a failed import is fixed and sent again
    follow(made.id);
  } catch (err) {
    $("import-status").textContent = `Refused: ${errorText(err)}`;
    $("import-status").className = "status status-failed";
  }
}

function where(issue) {
  const parts = [issue.file, issue.line !== undefined ? `line ${issue.line}` : null,
                 issue.pointer !== undefined ? issue.pointer || "/" : null,
                 issue.field !== undefined ? `field ${issue.field}` : null].filter(Boolean);
  return parts.length ? parts.join(", ") : "the file";
}

const UNKNOWN_CLASS = /class (['"])(.+?)\1 is not one of/;

function renderImport(imp) {
  state.imports = { last: imp };
  const status = $("import-status");
  const issues = [...(imp.validation_errors || []), ...(imp.import_errors || [])];
  const errors = issues.filter((i) => i.severity === "error").length;
  const warnings = issues.length - errors;
  let text = `${imp.job_name}: ${imp.status}`;
  if (!TERMINAL_IMPORT.has(imp.status)) text += ` (${Math.round(imp.progress_percent || 0)} %${imp.stage ? `, ${imp.stage}` : ""})`;
  if (imp.status === "completed") text += `: ${imp.records_processed} record(s) imported`;
  if (imp.status === "failed") text += `${imp.error_message ? `: ${imp.error_message}` : ""}`;
  if ((errors || warnings) && !(imp.status === "failed" && imp.error_message)) {
    text += `; ${errors} error(s), ${warnings} warning(s)`;
  }
  status.textContent = text;
  status.className = `status status-${imp.status}`;
  $("import-issues").replaceChildren(...issues.slice(0, 100).map((i) => el("li", {
    className: i.severity, dataset: { code: i.code }, text: `${i.severity} [${i.code}] ${where(i)}: ${i.message}`,
  })));
  const unknown = new Set();
  for (const i of issues) {
    const m = i.code === "unknown_class" && UNKNOWN_CLASS.exec(i.message);
    if (m) unknown.add(m[2]);
  }
  for (const name of unknown) addMapRow(name);   // the form offers what the errors ask for
  if (unknown.size) $("import-label-map").scrollIntoView({ behavior: "smooth", block: "center" });
  const links = $("import-links");
  links.replaceChildren();
  if (imp.status === "completed" && imp.annotation_session_id) {
    links.append(el("button", { type: "button", id: "import-open-session", text: "Open the annotation session",
                                onclick: () => emit("open-review", imp.annotation_session_id) }));
    loadAnnotationSessions();
  }
  if (imp.status === "completed" && imp.test_session_id && imp.import_type === "results") {
    links.append(el("button", { type: "button", id: "import-open-results", text: "Open the test session",
                                onclick: () => emit("open-viewer", imp.test_session_id) }));
    loadTestSessions();
  }
}

async function follow(importId) {
  followed = importId;
  for (let i = 0; i < 600 && followed === importId; i++) {
    let imp;
    try {
      imp = await api("GET", `/api/import/jobs/${importId}`);
    } catch (err) {
      $("import-status").textContent = errorText(err);
      return;
    }
    if (followed !== importId) return;
    renderImport(imp);
    if (TERMINAL_IMPORT.has(imp.status)) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function analyze(videoId) {
  try {
    emit("job-submitted", await api("POST", `/api/videos/${videoId}/compatibility/analyze`));
    toast("Compatibility analysis started");
  } catch (err) {
    toast(errorText(err), true);
  }
}

async function submitAssignment(event) {
  event.preventDefault();
  try {
    const job = await api("POST", `/api/projects/${state.project.id}/assignments/intelligent`,
                          { json: { threshold: parseFloat($("assign-threshold").value) } });
    toast("Assignment proposal started");
    emit("job-submitted", job);
  } catch (err) {
    toast(errorText(err), true);
  }
}
