// Detection viewer: the current frame with its boxes as detection events arrive, then scrubbing
// through the stored detections (and the ground truth, in another colour, when there is one).
import { $, api, emit, errorText, listAll, on, option, state, toast } from "./api.js";

const CHUNK = 50;            // frames of stored detections fetched at a time
const GT_COLOUR = "#22c55e";
// Detection colours: none in the ground truth's green (hues about 75-175 degrees are left out).
const PALETTE = ["#f97316", "#3b82f6", "#e11d48", "#a855f7", "#eab308", "#0ea5e9", "#ec4899", "#6366f1",
                 "#dc2626", "#f59e0b", "#c026d3", "#1d4ed8"];

let getSocket = () => null;
let session = null;          // the test session shown
let video = null;            // its video
let streamJoined = null;     // test session id whose detection stream this page joined
let live = null;             // newest live frame not drawn yet
let drawing = false;
let playTimer = null;
let scrubTimer = null;
let requestSerial = 0;
const chunks = new Map();    // chunk start -> Promise<Map<frame, detections[]>>
const gtChunks = new Map();  // chunk start -> Promise<Map<frame, ground-truth boxes[]>>
const ctx = () => $("viewer-canvas").getContext("2d");

export function init(socketGetter) {
  getSocket = socketGetter;
  $("viewer-session").addEventListener("change", (e) => open(e.target.value));
  $("viewer-slider").addEventListener("input", (e) => scrubTo(parseInt(e.target.value, 10)));
  $("viewer-prev").addEventListener("click", () => step(-1));
  $("viewer-next").addEventListener("click", () => step(1));
  $("viewer-play").addEventListener("click", togglePlay);
  on("open-viewer", (id) => { emit("show-tab", "viewer"); open(id); });
  on("open-video", (videoId) => openVideoOnly(videoId));
  on("test-sessions-loaded", fillSessions);
  on("project-changed", () => { leaveStream(); session = null; video = null; resetCounters(); });
  on("socket-connected", () => { streamJoined = null; if (session) joinStream(); });
  on("job-finished", (job) => {
    if (session && job.kind === "detection" && job.params && job.params.test_session_id === session.id) finishLive();
  });
}

export function bindSocket(socket) {
  socket.on("detection_event", onDetectionEvent);
  socket.on("detection_stream_snapshot", (snap) => {
    if (!session || snap.test_session_id !== session.id) return;
    if (snap.job && ["completed", "failed", "cancelled"].includes(snap.job.status)) finishLive();
  });
}

function resetCounters() {
  Object.assign(state.viewer, { frame: null, mode: "idle", lastBoxes: 0, testSessionId: null });
  setMode("idle");
}

function fillSessions(sessions) {
  const select = $("viewer-session");
  const keep = session ? session.id : select.value;
  select.replaceChildren(option("", "— choose a test session —"),
    ...sessions.map((t) => option(t.id, `${t.name} · ${t.status} · ${t.created_at.slice(0, 19).replace("T", " ")}`,
                                  t.id === keep)));
}

function setMode(mode) {
  state.viewer.mode = mode;
  const pill = $("viewer-mode");
  pill.textContent = mode;
  pill.className = `pill ${mode === "live" ? "pill-live" : mode === "stored" ? "pill-stored" : ""}`;
}

function leaveStream() {
  const socket = getSocket();
  if (streamJoined && socket && socket.connected) {
    socket.emit("detection_stream_unsubscribe", { test_session_id: streamJoined });
  }
  streamJoined = null;
  stopPlay();
}

function joinStream() {
  const socket = getSocket();
  if (!session || !socket || !socket.connected || streamJoined === session.id) return;
  streamJoined = session.id;
  socket.emit("detection_stream_subscribe", { test_session_id: session.id }, (ack) => {
    if (ack && ack.error) toast(`live detections unavailable: ${ack.error.message}`, true);
  });
}

async function open(testSessionId) {
  if (!testSessionId) return;
  leaveStream();
  chunks.clear();
  gtChunks.clear();
  live = null;
  try {
    session = await api("GET", `/api/test-sessions/${testSessionId}`);
    video = await api("GET", `/api/videos/${session.video_id}`);
  } catch (err) {
    toast(errorText(err), true);
    return;
  }
  state.viewer.testSessionId = session.id;
  const select = $("viewer-session");
  if (![...select.options].some((o) => o.value === session.id)) select.append(option(session.id, session.name));
  select.value = session.id;
  const canvas = $("viewer-canvas");
  canvas.width = video.width;
  canvas.height = video.height;
  const slider = $("viewer-slider");
  slider.max = String(Math.max(0, video.frame_count - 1));
  const cfg = session.config || {};
  const from = cfg.frame_from || 0;
  const to = cfg.frame_to !== undefined && cfg.frame_to !== null ? Math.min(cfg.frame_to, video.frame_count - 1)
    : video.frame_count - 1;
  $("viewer-note").textContent = `${session.name}: model ${session.model && session.model.name} ran on frames ` +
    `${from}–${to}${(cfg.frame_stride || 1) > 1 ? ` every ${cfg.frame_stride}` : ""} of ${video.filename}` +
    (session.ground_truth_session_id ? "; ground truth in green" : "") + ".";
  markRange(session);
  joinStream();
  if (["pending", "processing"].includes(session.status)) {
    setMode("live");
    await showFrame(from, []);
  } else {
    setMode("stored");
    await scrubTo(from);
  }
}

async function openVideoOnly(videoId) {
  // Frames of a video without a test session: scrub the video itself.
  leaveStream();
  session = null;
  chunks.clear();
  try { video = await api("GET", `/api/videos/${videoId}`); } catch (err) { toast(errorText(err), true); return; }
  emit("show-tab", "viewer");
  $("viewer-session").value = "";
  const canvas = $("viewer-canvas");
  canvas.width = video.width;
  canvas.height = video.height;
  $("viewer-slider").max = String(Math.max(0, video.frame_count - 1));
  markRange(null);
  $("viewer-note").textContent = `${video.filename}: frames only (no test session chosen).`;
  setMode("stored");
  await scrubTo(0);
}

// ------------------------------------------------------------------------------------------- live

function onDetectionEvent(msg) {
  if (!session || msg.test_session_id !== session.id) return;
  state.viewer.events += 1;
  $("viewer-events").textContent = String(state.viewer.events);
  const frames = msg.frames || [];
  const newest = frames.length ? frames[frames.length - 1] : msg.detection;
  for (const f of frames) {          // keep them for scrubbing later without a round trip
    const start = Math.floor(f.frame_number / CHUNK) * CHUNK;
    if (!chunks.has(`live-${start}`)) chunks.set(`live-${start}`, new Map());
    chunks.get(`live-${start}`).set(f.frame_number, f.detections || []);
  }
  if (state.viewer.mode !== "live") setMode("live");
  if (newest && $("viewer-follow").checked) {
    live = newest;
    pumpLive();
  }
  if (msg.final) finishLive();
}

async function pumpLive() {
  if (drawing || !live) return;
  drawing = true;
  try {
    while (live) {
      const frame = live;
      live = null;
      $("viewer-slider").value = String(frame.frame_number);
      await showFrame(frame.frame_number, frame.detections || [], frame.timestamp);
      state.viewer.liveFramesDrawn += 1;
    }
  } finally {
    drawing = false;
  }
}

async function finishLive() {
  if (!session || state.viewer.mode === "stored") return;
  try { session = await api("GET", `/api/test-sessions/${session.id}`); } catch { /* keep what we have */ }
  // Stored detections replace the live ones from now on (they are the source of truth).
  for (const key of [...chunks.keys()]) if (String(key).startsWith("live-")) chunks.delete(key);
  setMode("stored");
  emit("test-sessions-changed");
}

// ------------------------------------------------------------------------------------------ stored

function detectionsChunk(frame) {
  const start = Math.floor(frame / CHUNK) * CHUNK;
  if (!chunks.has(start)) {
    const promise = (async () => {
      const items = await listAll(`/api/test-sessions/${session.id}/detections?frame_from=${start}` +
                                  `&frame_to=${start + CHUNK - 1}`, 10);
      const byFrame = new Map();
      for (const d of items) {
        if (!byFrame.has(d.frame_number)) byFrame.set(d.frame_number, []);
        byFrame.get(d.frame_number).push(d);
      }
      return byFrame;
    })();
    promise.catch(() => chunks.delete(start));
    chunks.set(start, promise);
  }
  return chunks.get(start);
}

/** Ground-truth boxes on a frame: the annotations overlapping its chunk, each one's box per frame. */
function groundTruth(frame) {
  if (!session || !session.ground_truth_session_id) return Promise.resolve([]);
  const start = Math.floor(frame / CHUNK) * CHUNK;
  if (!gtChunks.has(start)) {
    const promise = (async () => {
      const gtId = session.ground_truth_session_id;
      const annotations = await listAll(`/api/annotations/temporal?session_id=${gtId}` +
                                        `&frame_from=${start}&frame_to=${start + CHUNK - 1}`, 10);
      const byFrame = new Map();
      for (const a of annotations) {
        if (a.validation_status === "rejected") continue;
        const data = await api("GET", `/api/annotations/${a.id}/boxes?frame_from=${start}&frame_to=${start + CHUNK - 1}`);
        for (const b of data.boxes) {
          if (!byFrame.has(b.frame_number)) byFrame.set(b.frame_number, []);
          const box = b.bounding_box;
          byFrame.get(b.frame_number).push({ class_label: a.class_label, bbox: [box.x1, box.y1, box.x2, box.y2] });
        }
      }
      return byFrame;
    })();
    promise.catch(() => gtChunks.delete(start));
    gtChunks.set(start, promise);
  }
  return gtChunks.get(start).then((m) => m.get(frame) || [], () => []);
}

async function scrubTo(frame) {
  if (!video) return;
  frame = Math.max(0, Math.min(video.frame_count - 1, frame));
  $("viewer-slider").value = String(frame);
  clearTimeout(scrubTimer);
  const serial = ++requestSerial;
  let detections = [];
  if (session) {
    const liveChunk = chunks.get(`live-${Math.floor(frame / CHUNK) * CHUNK}`);
    try {
      detections = (liveChunk && liveChunk.get(frame)) || (await detectionsChunk(frame)).get(frame) || [];
    } catch (err) {
      toast(errorText(err), true);
    }
  }
  if (serial !== requestSerial) return; // a newer request superseded this one
  await showFrame(frame, detections);
}

function step(delta) {
  stopPlay();
  const current = state.viewer.frame === null ? 0 : state.viewer.frame;
  const stride = (session && session.config && session.config.frame_stride) || 1;
  scrubTo(current + delta * stride);
}

function togglePlay() {
  if (playTimer) { stopPlay(); return; }
  $("viewer-play").textContent = "Pause";
  const tick = async () => {
    const stride = (session && session.config && session.config.frame_stride) || 1;
    const next = (state.viewer.frame || 0) + stride;
    if (!video || next >= video.frame_count) { stopPlay(); return; }
    await scrubTo(next);
    if (playTimer) playTimer = setTimeout(tick, 100);
  };
  playTimer = setTimeout(tick, 0);
}

function stopPlay() {
  clearTimeout(playTimer);
  playTimer = null;
  $("viewer-play").textContent = "Play";
}

// ------------------------------------------------------------------------------------------ drawing

async function loadFrameImage(frame) {
  const response = await api("GET", `/api/videos/${video.id}/frames/${frame}.jpg`, { raw: true });
  const timestamp = response.headers.get("X-Frame-Timestamp");
  const blob = await response.blob();
  const image = await createImageBitmap(blob);
  return { image, timestamp: timestamp === null ? null : parseFloat(timestamp) };
}

function colourFor(det) {
  const key = det.track_id !== null && det.track_id !== undefined ? det.track_id : det.class_label;
  let h = 0;
  for (const ch of String(key)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

/** Black or white, whichever reads on a ``#rrggbb`` background. */
function readableOn(colour) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000" : "#fff";
}

function drawBox(c, bbox, colour, text, dashed) {
  const [x1, y1, x2, y2] = bbox;
  const lw = Math.max(2, Math.round(c.canvas.width / 400));
  c.lineWidth = lw;
  c.strokeStyle = colour;
  c.setLineDash(dashed ? [6 * lw, 4 * lw] : []);
  c.strokeRect(x1, y1, x2 - x1, y2 - y1);
  c.setLineDash([]);
  const size = Math.max(12, Math.round(c.canvas.width / 60));
  c.font = `${size}px system-ui, sans-serif`;
  const w = c.measureText(text).width + 6;
  const ty = y1 - size - 4 >= 0 ? y1 - size - 4 : y2;
  c.fillStyle = colour;
  c.fillRect(x1, ty, w, size + 4);
  c.fillStyle = readableOn(colour);
  c.fillText(text, x1 + 3, ty + size);
}

/** The frames the model ran on: frame_from..frame_to every frame_stride (all of them without a session). */
function runFrames(ts) {
  const cfg = (ts && ts.config) || {};
  const last = video ? video.frame_count - 1 : 0;
  const to = cfg.frame_to !== undefined && cfg.frame_to !== null ? Math.min(cfg.frame_to, last) : last;
  return { from: cfg.frame_from || 0, to, stride: Math.max(1, cfg.frame_stride || 1) };
}

/** Why the model has no result on this frame (outside the range or between strides), or null. */
function skippedReason(frame) {
  if (!session) return null;
  const { from, to, stride } = runFrames(session);
  if (frame < from || frame > to) return `outside the frames the model ran on (${from}–${to})`;
  if ((frame - from) % stride) return `between the model's frames (every ${stride} from ${from})`;
  return null;
}

/** The slider's track shows the frames the model ran on; the rest is greyed. */
function markRange(ts) {
  const slider = $("viewer-slider");
  if (!ts || !video || video.frame_count < 2) {
    slider.style.background = "";
    slider.title = "";
    slider.classList.remove("ran-range");
    return;
  }
  const { from, to, stride } = runFrames(ts);
  const pct = (f) => `${(100 * f / (video.frame_count - 1)).toFixed(2)}%`;
  const ran = stride > 1 ? "#93c5fd" : "#3b82f6";
  slider.classList.add("ran-range");
  slider.style.background = `linear-gradient(to right, #d1d5db ${pct(from)}, ${ran} ${pct(from)}, ` +
    `${ran} ${pct(to)}, #d1d5db ${pct(to)})`;
  slider.title = `the model ran on frames ${from}–${to}${stride > 1 ? ` every ${stride}` : ""}; ` +
    "grey: frames it did not run on";
}

async function showFrame(frame, detections, timestamp) {
  const canvas = $("viewer-canvas");
  const c = ctx();
  let image = null;
  let ts = timestamp ?? null;
  try {
    const loaded = await loadFrameImage(frame);
    image = loaded.image;
    if (ts === null) ts = loaded.timestamp;
  } catch { /* draw the boxes on black */ }
  const gt = await groundTruth(frame);
  c.clearRect(0, 0, canvas.width, canvas.height);
  if (image) c.drawImage(image, 0, 0, canvas.width, canvas.height);
  else { c.fillStyle = "#111"; c.fillRect(0, 0, canvas.width, canvas.height); }
  for (const g of gt) drawBox(c, g.bbox, GT_COLOUR, `GT ${g.class_label}`, true);
  const colours = new Set();
  for (const d of detections) {
    const track = d.track_id !== null && d.track_id !== undefined ? ` #${d.track_id}` : "";
    const colour = colourFor(d);
    colours.add(colour);
    drawBox(c, d.bbox, colour, `${d.class_label} ${Number(d.confidence).toFixed(2)}${track}`, false);
  }
  const skipped = state.viewer.mode === "live" ? null : skippedReason(frame);
  if (skipped) {
    const size = Math.max(14, Math.round(canvas.width / 45));
    c.font = `${size}px system-ui, sans-serif`;
    const text = "model did not run on this frame";
    c.fillStyle = "rgba(17, 24, 39, .75)";
    c.fillRect(0, canvas.height - size - 12, c.measureText(text).width + 16, size + 12);
    c.fillStyle = "#fbbf24";
    c.fillText(text, 8, canvas.height - 8);
  }
  const v = state.viewer;
  v.frame = frame;
  v.lastBoxes = detections.length;
  v.boxesDrawn += detections.length;
  v.gtBoxesDrawn += gt.length;
  v.framesDrawn += 1;
  canvas.dataset.frame = String(frame);
  canvas.dataset.boxes = String(detections.length);
  canvas.dataset.boxesDrawn = String(v.boxesDrawn);
  canvas.dataset.gtBoxes = String(gt.length);
  canvas.dataset.colours = [...colours].join(" ");
  canvas.dataset.skipped = skipped ? "true" : "false";
  $("viewer-frame").textContent = String(frame) + (skipped ? " (not run by the model)" : "");
  $("viewer-frame").title = skipped || "";
  $("viewer-frame").classList.toggle("skipped", Boolean(skipped));
  $("viewer-time").textContent = ts === null || Number.isNaN(ts) ? "–" : `${ts.toFixed(3)} s`;
  $("viewer-box-count").textContent = String(detections.length) + (gt.length ? ` (+${gt.length} GT)` : "");
  $("viewer-boxes-drawn").textContent = String(v.boxesDrawn);
}
