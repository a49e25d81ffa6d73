// Annotation editor: boxes on the real frames, tracks with keyframes (the frames between show the
// box the API interpolates, dashed), outside/inside, split and merge, undo/redo, and live with the
// others in the session: every edit is a `real_time_annotation` with `base_version`, a stale one
// shows the conflict (reload theirs or reapply mine), presence says who is on which frame.
import { $, api, auth, el, errorText, listAll, on, option, state, toast } from "./api.js";

const PALETTE = ["#f97316", "#3b82f6", "#a855f7", "#eab308", "#06b6d4", "#e11d48", "#84cc16", "#f43f5e"];
const HANDLE = 7;            // handle half-size in screen pixels
const MIN_SIZE = 3;          // smallest box side in video pixels
const IMAGE_CACHE = 48;

const ed = {
  session: null, video: null, labels: [], canEdit: false, frame: 0, selected: null, label: null,
  drawn: [], conflict: null, presence: [], undo: 0, redo: 0, edits: 0, mergeFrom: null, playing: false,
};
state.editor = ed;

let socket = null;               // the editor's own connection: its presence is its own
const tracks = new Map();        // id -> {ann, keyframes: [], boxes: Map(frame -> {box, keyframe})}
const images = new Map();        // frame -> {bitmap, timestamp}
const times = new Map();         // frame -> timestamp (from X-Frame-Timestamp)
const editors = new Map();       // id -> who changed it last (from the live updates)
const undoStack = [];
const redoStack = [];
let drag = null;                 // {kind: draw|move|resize, id, handle, start, box, base}
let focusTimer = null;
let playTimer = null;
let frameSerial = 0;
let wanted = 0;                  // the frame asked for last (keys repeat faster than frames load)

const canvas = () => $("ed-canvas");
const track = (id) => tracks.get(id);
const colour = (label) => PALETTE[Math.max(0, ed.labels.indexOf(label)) % PALETTE.length];
const uuid = () => (crypto.randomUUID ? crypto.randomUUID()
  : "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
    (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)));

export function init() {
  $("ed-session").addEventListener("change", (e) => open(e.target.value));
  $("ed-label").addEventListener("change", (e) => setLabel(e.target.value));
  $("ed-prev").addEventListener("click", () => go(wanted - 1));
  $("ed-next").addEventListener("click", () => go(wanted + 1));
  $("ed-play").addEventListener("click", togglePlay);
  $("ed-next-key").addEventListener("click", () => nextKeyframe(1));
  $("ed-slider").addEventListener("input", (e) => go(parseInt(e.target.value, 10)));
  $("ed-outside").addEventListener("click", toggleOutside);
  $("ed-split").addEventListener("click", split);
  $("ed-merge").addEventListener("click", startMerge);
  $("ed-del-key").addEventListener("click", deleteKeyframe);
  $("ed-delete").addEventListener("click", deleteTrack);
  $("ed-undo").addEventListener("click", undo);
  $("ed-redo").addEventListener("click", redo);
  $("ed-theirs").addEventListener("click", reloadTheirs);
  $("ed-mine").addEventListener("click", reapplyMine);
  const c = canvas();
  c.addEventListener("pointerdown", pointerDown);
  c.addEventListener("pointermove", pointerMove);
  c.addEventListener("pointerup", pointerUp);
  document.addEventListener("keydown", keyDown);
  on("tab-shown", (name) => { if (name === "editor") loadSessions(); else stopPlay(); });
  on("project-changed", () => { close(); $("ed-session").replaceChildren(); });
}

// ------------------------------------------------------------------------------ sessions

async function loadSessions() {
  if (!state.project) return;
  const sessions = await listAll(`/api/annotations/sessions?project_id=${state.project.id}`, 2);
  const select = $("ed-session");
  const keep = ed.session ? ed.session.id : select.value;
  select.replaceChildren(option("", "— choose an annotation session —"),
    ...sessions.map((s) => option(s.id, `${s.session_name} (${s.annotation_count}, ${s.status})`, s.id === keep)));
}

function close() {
  stopPlay();
  if (socket) { socket.disconnect(); socket = null; }
  Object.assign(ed, { session: null, video: null, selected: null, conflict: null, presence: [], mergeFrom: null });
  tracks.clear(); images.clear(); times.clear();
  undoStack.length = 0; redoStack.length = 0;
  $("ed-conflict").hidden = true;
  renderAll();
}

async function open(sessionId) {
  close();
  if (!sessionId) return;
  try {
    ed.session = await api("GET", `/api/annotations/sessions/${sessionId}`);
    ed.video = await api("GET", `/api/videos/${ed.session.video_id}`);
    const project = await api("GET", `/api/projects/${ed.session.project_id}`);
    ed.labels = project.labels || [];
  } catch (err) {
    toast(errorText(err), true);
    return;
  }
  ed.label = ed.labels[0] || null;
  $("ed-label").replaceChildren(...ed.labels.map((l, i) => option(l, `${i + 1} ${l}`, l === ed.label)));
  const c = canvas();
  c.width = ed.video.width;
  c.height = ed.video.height;
  $("ed-slider").max = String(Math.max(0, ed.video.frame_count - 1));
  connect(sessionId);
  await go(0);
  canvas().focus();  // the keys act on the frame, not on the session list
}

function connect(sessionId) {
  socket = window.io({ auth: (cb) => cb({ token: auth.token }), transports: ["websocket"], forceNew: true });
  socket.on("connect", () => join(sessionId));
  socket.on("disconnect", () => setMode());
  socket.on("annotation_update", onUpdate);
  socket.on("annotation_conflict", () => { /* the ack carries it, with the edit it answers */ });
  for (const event of ["user_joined", "user_left", "presence_update"]) {
    socket.on(event, (m) => { if (ed.session && m.session_id === ed.session.id) setPresence(m.presence); });
  }
}

function join(sessionId) {
  socket.emit("join_annotation_session", { session_id: sessionId }, async (ack) => {
    if (!ack || ack.error) { toast(ack ? ack.error.message : "no answer", true); return; }
    ed.canEdit = ack.can_edit && ed.session.status !== "completed";
    setMode();
    const seen = new Set(ack.annotations.map((a) => a.id));
    for (const id of [...tracks.keys()]) if (!seen.has(id)) tracks.delete(id);
    await Promise.all(ack.annotations.map((a) => refresh(a)));
    setPresence(ack.presence);
    sendFocus();
    renderAll();
  });
}

function setMode() {
  const pill = $("ed-mode");
  const live = socket && socket.connected;
  pill.textContent = !ed.session ? "no session" : !live ? "offline" : ed.canEdit ? "editing" : "view only";
  pill.className = `pill ${!live ? "pill-off" : ed.canEdit ? "pill-on" : "pill-stored"}`;
  pill.dataset.mode = ed.canEdit ? "edit" : "view";
  $("ed-view-note").hidden = !ed.session || ed.canEdit;
  for (const id of ["ed-outside", "ed-split", "ed-merge", "ed-del-key", "ed-delete", "ed-undo", "ed-redo", "ed-label"]) {
    $(id).disabled = !ed.canEdit;
  }
}

function setPresence(list) {
  ed.presence = (list || []).map((p) => ({ username: p.username, role: p.role, frame: p.frame_number ?? null,
                                           me: socket && p.sid === socket.id }));
  $("ed-presence").replaceChildren(...ed.presence.map((p) => el("span", {
    className: `pill ${p.me ? "pill-stored" : "pill-on"}`, dataset: { user: p.username, frame: p.frame ?? "" },
    text: `${p.username}${p.role ? ` (${p.role})` : ""}${p.frame !== null ? ` · frame ${p.frame}` : ""}${p.me ? " · you" : ""}`,
  })));
}

function sendFocus() {
  clearTimeout(focusTimer);
  focusTimer = setTimeout(() => {
    if (socket && socket.connected && ed.session) {
      socket.emit("annotation_focus", { session_id: ed.session.id, frame_number: ed.frame,
                                        ...(ed.selected ? { annotation_id: ed.selected } : {}) });
    }
  }, ed.playing ? 400 : 60);
}

// ------------------------------------------------------------------------------ tracks

/** Keyframes and the API's own boxes (`/boxes`) of one track: what every frame shows. */
async function refresh(ann) {
  const entry = tracks.get(ann.id) || { ann, keyframes: [], boxes: new Map() };
  entry.ann = ann;
  tracks.set(ann.id, entry);
  const serial = (entry.serial || 0) + 1;
  entry.serial = serial;
  try {
    const [keyframes, boxes] = await Promise.all([
      api("GET", `/api/annotations/${ann.id}/keyframes`), api("GET", `/api/annotations/${ann.id}/boxes`)]);
    if (entry.serial !== serial || tracks.get(ann.id) !== entry) return;  // a newer refresh answers
    entry.keyframes = keyframes;
    entry.boxes = new Map(boxes.boxes.map((b) => [b.frame_number, { box: b.bounding_box, keyframe: b.keyframe }]));
    entry.version = boxes.version;
  } catch (err) {
    if (err.status !== 404) toast(errorText(err), true);
  }
}

function onUpdate(m) {
  if (!ed.session || m.session_id !== ed.session.id) return;
  if (m.from_user) editors.set(m.annotation.id, m.from_user.username);
  if (m.op === "delete") {
    tracks.delete(m.annotation.id);
    if (ed.selected === m.annotation.id) ed.selected = null;
    renderAll();
    return;
  }
  const known = tracks.get(m.annotation.id);
  if (known && known.ann.version >= m.annotation.version) return;  // already have it (or newer)
  refresh(m.annotation).then(renderAll);
  renderAll();
}

function boxOf(entry, frame) { const b = entry.boxes.get(frame); return b ? b.box : null; }
function keyframeAt(entry, frame) { return entry.keyframes.find((k) => k.frame_number === frame) || null; }

function lastBox(entry, frame) {
  const visible = entry.keyframes.filter((k) => !k.frame_data.outside && k.frame_data.bounding_box);
  const before = visible.filter((k) => k.frame_number <= frame);
  const k = before.length ? before[before.length - 1] : visible[0];
  return (k && k.frame_data.bounding_box) || entry.ann.bounding_box;
}

function inSpan(entry, frame) {
  const t = times.get(frame);
  return t !== undefined && t >= entry.ann.start_timestamp - 1e-6 && t <= entry.ann.end_timestamp + 1e-6;
}

// ------------------------------------------------------------------------------ frames

async function loadImage(frame) {
  if (images.has(frame)) return images.get(frame);
  const response = await api("GET", `/api/videos/${ed.video.id}/frames/${frame}.jpg`, { raw: true });
  const timestamp = parseFloat(response.headers.get("X-Frame-Timestamp"));
  const item = { bitmap: await createImageBitmap(await response.blob()), timestamp };
  images.set(frame, item);
  times.set(frame, timestamp);
  while (images.size > IMAGE_CACHE) {
    const oldest = images.keys().next().value;
    images.get(oldest).bitmap.close();
    images.delete(oldest);
  }
  return item;
}

async function go(frame) {
  if (!ed.video) return;
  frame = Math.max(0, Math.min(ed.video.frame_count - 1, frame));
  wanted = frame;
  const serial = ++frameSerial;
  try {
    await loadImage(frame);
  } catch (err) {
    toast(errorText(err), true);
    return;
  }
  if (serial !== frameSerial) return;
  ed.frame = frame;
  $("ed-slider").value = String(frame);
  sendFocus();
  renderAll();
}

function togglePlay() { if (ed.playing) stopPlay(); else startPlay(); }

function startPlay() {
  if (!ed.video) return;
  ed.playing = true;
  $("ed-play").textContent = "Pause";
  const interval = 1000 / Math.min(ed.video.fps || 10, 25);
  const tick = async () => {
    if (!ed.playing) return;
    if (ed.frame >= ed.video.frame_count - 1) { stopPlay(); return; }
    const started = performance.now();
    await go(ed.frame + 1);
    playTimer = setTimeout(tick, Math.max(0, interval - (performance.now() - started)));
  };
  tick();
}

function stopPlay() {
  ed.playing = false;
  clearTimeout(playTimer);
  if ($("ed-play")) $("ed-play").textContent = "Play";
}

function nextKeyframe(direction) {
  const frames = new Set();
  const only = ed.selected ? [track(ed.selected)].filter(Boolean) : [...tracks.values()];
  for (const t of only) for (const k of t.keyframes) frames.add(k.frame_number);
  const sorted = [...frames].sort((a, b) => a - b);
  const target = direction > 0 ? sorted.find((f) => f > ed.frame) : sorted.reverse().find((f) => f < ed.frame);
  if (target !== undefined) go(target);
}

// ------------------------------------------------------------------------------ drawing

function renderAll() {
  render();
  renderList();
  renderKeys();
  renderButtons();
}

function render() {
  const c = canvas();
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  ed.drawn = [];
  if (!ed.video) return;
  const image = images.get(ed.frame);
  if (image) ctx.drawImage(image.bitmap, 0, 0, c.width, c.height);
  const scale = c.width / (c.getBoundingClientRect().width || c.width);
  for (const [id, entry] of tracks) {
    let box = boxOf(entry, ed.frame);
    const keyed = !!(entry.boxes.get(ed.frame) || {}).keyframe;
    if (drag && drag.id === id && drag.box) box = drag.box;
    if (!box) continue;
    const selected = id === ed.selected;
    ctx.save();
    ctx.strokeStyle = colour(entry.ann.class_label);
    ctx.lineWidth = (selected ? 3 : 2) * scale;
    if (!keyed && !(drag && drag.id === id)) ctx.setLineDash([6 * scale, 4 * scale]);
    ctx.strokeRect(box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1);
    ctx.setLineDash([]);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.font = `${12 * scale}px system-ui, sans-serif`;
    const tag = `${entry.ann.class_label}${keyed ? " ◆" : ""}`;
    ctx.fillRect(box.x1, box.y1 - 15 * scale, ctx.measureText(tag).width + 6 * scale, 15 * scale);
    ctx.fillStyle = "#fff";
    ctx.fillText(tag, box.x1 + 3 * scale, box.y1 - 3 * scale);
    if (selected && ed.canEdit) {
      for (const [hx, hy] of Object.values(handles(box))) {
        ctx.fillStyle = "#fff";
        ctx.fillRect(hx - HANDLE * scale / 2, hy - HANDLE * scale / 2, HANDLE * scale, HANDLE * scale);
        ctx.strokeRect(hx - HANDLE * scale / 2, hy - HANDLE * scale / 2, HANDLE * scale, HANDLE * scale);
      }
    }
    ctx.restore();
    ed.drawn.push({ id, frame: ed.frame, keyframe: keyed, dashed: !keyed, box: { ...box } });
  }
  if (drag && drag.kind === "draw" && drag.box) {
    ctx.strokeStyle = colour(ed.label);
    ctx.lineWidth = 2 * scale;
    const b = drag.box;
    ctx.strokeRect(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1);
  }
  c.dataset.frame = String(ed.frame);
  c.dataset.boxes = String(ed.drawn.length);
  const t = times.get(ed.frame);
  $("ed-frame").textContent = `${ed.frame} / ${ed.video.frame_count - 1}`;
  $("ed-time").textContent = t !== undefined ? `${t.toFixed(3)} s` : "–";
}

function renderList() {
  const list = [...tracks.values()].sort((a, b) => a.ann.start_timestamp - b.ann.start_timestamp);
  $("ed-tracks").replaceChildren(...list.map((entry) => {
    const a = entry.ann;
    const here = boxOf(entry, ed.frame) ? "on this frame" : inSpan(entry, ed.frame) ? "outside here" : "";
    const li = el("li", {
      className: `${a.id === ed.selected ? "selected" : ""}${ed.mergeFrom ? " merge-target" : ""}`,
      dataset: { annotationId: a.id, version: a.version },
      onclick: () => pick(a.id),
    }, el("i", { className: "swatch" }), el("b", { text: a.class_label }),
    el("span", { className: "muted", text: ` ${a.start_timestamp.toFixed(2)}–${a.end_timestamp.toFixed(2)} s · ` +
      `${entry.keyframes.length} keyframes · v${a.version} · ${a.validation_status}${here ? ` · ${here}` : ""}` }));
    li.querySelector(".swatch").style.background = colour(a.class_label);
    return li;
  }));
  $("ed-count").textContent = String(list.length);
}

function renderKeys() {
  const bar = $("ed-keys");
  bar.replaceChildren();
  const entry = ed.selected && track(ed.selected);
  if (!ed.video || !ed.video.frame_count) return;
  const last = Math.max(1, ed.video.frame_count - 1);
  const cursor = el("span", { className: "cursor" });
  cursor.style.left = `${(100 * ed.frame) / last}%`;
  bar.append(cursor);
  if (!entry) return;
  const frames = [...entry.boxes.keys()];
  if (frames.length) {
    const span = el("span", { className: "span" });
    span.style.left = `${(100 * Math.min(...frames)) / last}%`;
    span.style.width = `${(100 * (Math.max(...frames) - Math.min(...frames))) / last}%`;
    span.style.background = colour(entry.ann.class_label);
    bar.append(span);
  }
  for (const k of entry.keyframes) {
    const tick = el("span", { className: `tick${k.frame_data.outside ? " outside" : ""}`,
                              title: `frame ${k.frame_number}${k.frame_data.outside ? " (outside from here)" : ""}` });
    tick.style.left = `${(100 * k.frame_number) / last}%`;
    bar.append(tick);
  }
}

function renderButtons() {
  const entry = ed.selected && track(ed.selected);
  const outside = $("ed-outside");
  const hidden = entry && !boxOf(entry, ed.frame) && inSpan(entry, ed.frame);
  outside.textContent = hidden ? "Back in here (O)" : "Outside from here (O)";
  const can = ed.canEdit && !!entry;
  outside.disabled = !can || !(boxOf(entry, ed.frame) || hidden);
  $("ed-split").disabled = !can;
  $("ed-merge").disabled = !can;
  $("ed-delete").disabled = !can;
  $("ed-del-key").disabled = !can || !keyframeAt(entry, ed.frame);
  $("ed-undo").disabled = !ed.canEdit || !undoStack.length;
  $("ed-redo").disabled = !ed.canEdit || !redoStack.length;
  ed.undo = undoStack.length;
  ed.redo = redoStack.length;
  $("ed-merge").textContent = ed.mergeFrom ? "Pick the track to merge… (Esc)" : "Merge with… (M)";
}

// ------------------------------------------------------------------------------ pointer

function point(e) {
  const c = canvas();
  const r = c.getBoundingClientRect();
  return { x: ((e.clientX - r.left) * c.width) / r.width, y: ((e.clientY - r.top) * c.height) / r.height,
           scale: c.width / r.width };
}

function handles(b) {
  const mx = (b.x1 + b.x2) / 2;
  const my = (b.y1 + b.y2) / 2;
  return { nw: [b.x1, b.y1], n: [mx, b.y1], ne: [b.x2, b.y1], e: [b.x2, my], se: [b.x2, b.y2], s: [mx, b.y2],
           sw: [b.x1, b.y2], w: [b.x1, my] };
}

function hit(p) {
  if (ed.selected && track(ed.selected)) {
    const box = boxOf(track(ed.selected), ed.frame);
    if (box) {
      for (const [name, [hx, hy]] of Object.entries(handles(box))) {
        if (Math.abs(p.x - hx) <= HANDLE * p.scale && Math.abs(p.y - hy) <= HANDLE * p.scale) {
          return { id: ed.selected, handle: name };
        }
      }
    }
  }
  let best = null;
  for (const [id, entry] of tracks) {
    const b = boxOf(entry, ed.frame);
    if (!b || p.x < b.x1 || p.x > b.x2 || p.y < b.y1 || p.y > b.y2) continue;
    const area = (b.x2 - b.x1) * (b.y2 - b.y1);
    if (!best || area < best.area) best = { id, area };
  }
  return best ? { id: best.id, handle: null } : null;
}

function pointerDown(e) {
  if (!ed.video || e.button !== 0) return;
  canvas().focus();
  const p = point(e);
  const found = hit(p);
  if (ed.mergeFrom) {
    if (found && found.id !== ed.mergeFrom) merge(ed.mergeFrom, found.id);
    return;
  }
  if (found) { ed.selected = found.id; sendFocus(); }
  if (!ed.canEdit) { renderAll(); return; }
  canvas().setPointerCapture(e.pointerId);
  if (found) {
    const entry = track(found.id);
    drag = { kind: found.handle ? "resize" : "move", id: found.id, handle: found.handle, start: p,
             from: { ...boxOf(entry, ed.frame) }, box: null, base: entry.ann.version };
  } else {
    if (!ed.label) { toast("this project has no labels to give a box", true); return; }
    ed.selected = null;
    drag = { kind: "draw", start: p, box: null };
  }
  renderAll();
}

function clampBox(b) {
  const w = ed.video.width;
  const h = ed.video.height;
  const x1 = Math.max(0, Math.min(b.x1, b.x2));
  const x2 = Math.min(w, Math.max(b.x1, b.x2));
  const y1 = Math.max(0, Math.min(b.y1, b.y2));
  const y2 = Math.min(h, Math.max(b.y1, b.y2));
  const r = (v) => Math.round(v * 10) / 10;
  return { x1: r(x1), y1: r(y1), x2: r(x2), y2: r(y2) };
}

function pointerMove(e) {
  const p = point(e);
  if (!drag) {
    const found = ed.video && hit(p);
    canvas().style.cursor = !ed.canEdit ? "default" : found && found.handle ? `${found.handle}-resize`
      : found ? "move" : "crosshair";
    return;
  }
  const dx = p.x - drag.start.x;
  const dy = p.y - drag.start.y;
  if (drag.kind === "draw") {
    drag.box = { x1: drag.start.x, y1: drag.start.y, x2: p.x, y2: p.y };
  } else if (drag.kind === "move") {
    const f = drag.from;
    const w = f.x2 - f.x1;
    const h = f.y2 - f.y1;
    const x1 = Math.max(0, Math.min(ed.video.width - w, f.x1 + dx));
    const y1 = Math.max(0, Math.min(ed.video.height - h, f.y1 + dy));
    drag.box = { x1, y1, x2: x1 + w, y2: y1 + h };
  } else {
    const b = { ...drag.from };
    if (drag.handle.includes("w")) b.x1 += dx;
    if (drag.handle.includes("e")) b.x2 += dx;
    if (drag.handle.includes("n")) b.y1 += dy;
    if (drag.handle.includes("s")) b.y2 += dy;
    drag.box = b;
  }
  render();
}

function pointerUp() {
  if (!drag) return;
  const done = drag;
  drag = null;
  if (!done.box) { renderAll(); return; }
  const box = clampBox(done.box);
  if (box.x2 - box.x1 < MIN_SIZE || box.y2 - box.y1 < MIN_SIZE) { renderAll(); return; }
  if (done.kind === "draw") createTrack(box);
  else setBox(done.id, ed.frame, box, done.base);
}

// ------------------------------------------------------------------------------ edits

/** One edit over the socket; its ack's annotations replace ours (and their boxes are refetched). */
function send(edit) {
  return new Promise((resolve) => {
    if (!socket || !socket.connected) { toast("not connected: the edit was not sent", true); resolve(null); return; }
    socket.emit("real_time_annotation", { session_id: ed.session.id, ...edit }, async (ack) => {
      if (!ack || ack.ok === false || ack.error) {
        const error = (ack && ack.error) || { message: "no answer" };
        if (error.code === "annotation_conflict") showConflict(edit, error.details.current);
        else toast(error.message + (error.details && error.details.fields
          ? `: ${JSON.stringify(error.details.fields)}` : ""), true);
        resolve(null);
        return;
      }
      ed.edits += 1;
      const changed = [{ op: ack.op === "delete" ? "delete" : "update", annotation: ack.annotation },
                       ...(ack.also || [])];
      const refreshed = Promise.all(changed.map((c) => {
        if (c.op === "delete") { tracks.delete(c.annotation.id); return null; }
        return refresh(c.annotation);
      }));
      if (ed.selected && !tracks.has(ed.selected)) ed.selected = null;
      resolve(ack);  // the caller records the step now, before the next key can ask to undo it
      await refreshed;
      renderAll();
    });
  });
}

function remember(undoEdit, redoEdit) {
  undoStack.push({ undo: undoEdit, redo: redoEdit });
  if (undoStack.length > 200) undoStack.shift();
  redoStack.length = 0;
  renderButtons();
}

const versionOf = (id) => (track(id) ? track(id).ann.version : undefined);
/** An edit recorded for undo/redo names no version: it applies over the version current then. */
const withBase = (edit) => (edit.op === "create" ? edit : { ...edit, base_version: versionOf(edit.annotation.id) });

function keyframeEdit(id, keyframe, frame) {
  return keyframe
    ? { op: "update", annotation: { id, keyframes: [{ frame_number: frame, frame_data: keyframe.frame_data }] } }
    : { op: "update", annotation: { id, delete_keyframes: [frame] } };
}

async function setBox(id, frame, box, base, frameData = {}) {
  const entry = track(id);
  if (!entry) return;
  const before = keyframeAt(entry, frame);
  const data = { bounding_box: box, ...frameData };
  if (data.outside) entry.boxes.delete(frame);  // shown at once; the API's boxes follow
  else entry.boxes.set(frame, { box, keyframe: true });
  render();
  const edit = { op: "update", annotation: { id, keyframes: [{ frame_number: frame, frame_data: data }] } };
  const ack = await send({ ...edit, base_version: base });
  if (ack) remember(keyframeEdit(id, before, frame), edit);
  else if (!ed.conflict) await refresh(entry.ann).then(renderAll);
}

async function createTrack(box) {
  const t = times.get(ed.frame);
  const annotation = {
    id: uuid(), start_timestamp: t, end_timestamp: ed.video.duration, annotation_type: "spatial",
    class_label: ed.label, bounding_box: box, keyframes: [{ frame_number: ed.frame, frame_data: { bounding_box: box } }],
  };
  const edit = { op: "create", annotation };
  const ack = await send(edit);
  if (ack) {
    ed.selected = ack.annotation.id;
    remember({ op: "delete", annotation: { id: annotation.id } }, edit);
    renderAll();
  }
}

async function deleteTrack() {
  const entry = ed.selected && track(ed.selected);
  if (!entry || !ed.canEdit) return;
  const a = entry.ann;
  const recreate = { op: "create", annotation: {
    id: a.id, start_timestamp: a.start_timestamp, end_timestamp: a.end_timestamp, annotation_type: a.annotation_type,
    class_label: a.class_label, bounding_box: a.bounding_box, confidence: a.confidence,
    annotator_notes: a.annotator_notes, keyframe_data: a.keyframe_data,
    keyframes: entry.keyframes.map((k) => ({ frame_number: k.frame_number, frame_data: k.frame_data })) } };
  const edit = { op: "delete", annotation: { id: a.id } };
  if (await send({ ...edit, base_version: a.version })) remember(recreate, edit);
}

async function deleteKeyframe() {
  const entry = ed.selected && track(ed.selected);
  const k = entry && keyframeAt(entry, ed.frame);
  if (!k || !ed.canEdit) return;
  const edit = { op: "update", annotation: { id: entry.ann.id, delete_keyframes: [ed.frame] } };
  if (await send({ ...edit, base_version: entry.ann.version })) remember(keyframeEdit(entry.ann.id, k, ed.frame), edit);
}

async function setLabel(label) {
  if (!ed.labels.includes(label)) return;
  ed.label = label;
  $("ed-label").value = label;
  const entry = ed.selected && track(ed.selected);
  if (!entry || !ed.canEdit || entry.ann.class_label === label) return;
  const old = entry.ann.class_label;
  const edit = { op: "update", annotation: { id: entry.ann.id, class_label: label } };
  if (await send({ ...edit, base_version: entry.ann.version })) {
    remember({ op: "update", annotation: { id: entry.ann.id, class_label: old } }, edit);
  }
}

async function toggleOutside() {
  const entry = ed.selected && track(ed.selected);
  if (!entry || !ed.canEdit) return;
  const box = boxOf(entry, ed.frame);
  if (box) await setBox(entry.ann.id, ed.frame, box, entry.ann.version, { outside: true });
  else if (inSpan(entry, ed.frame)) await setBox(entry.ann.id, ed.frame, lastBox(entry, ed.frame), entry.ann.version);
}

async function split() {
  const entry = ed.selected && track(ed.selected);
  if (!entry || !ed.canEdit) return;
  const newId = uuid();
  const edit = { op: "split", annotation: { id: entry.ann.id, frame_number: ed.frame, new_id: newId } };
  const ack = await send({ ...edit, base_version: entry.ann.version });
  if (ack) {
    remember({ op: "merge", annotation: { id: entry.ann.id, other_id: newId } }, edit);
    ed.selected = newId;
    toast(`split: a new track from frame ${ed.frame} on`);
    renderAll();
  }
}

function startMerge() {
  if (!ed.selected || !ed.canEdit) return;
  ed.mergeFrom = ed.mergeFrom ? null : ed.selected;
  renderAll();
}

async function merge(keepId, otherId) {
  ed.mergeFrom = null;
  const keep = track(keepId);
  const other = track(otherId);
  if (!keep || !other) { renderAll(); return; }
  const firstFrame = Math.min(...other.boxes.keys(), ...other.keyframes.map((k) => k.frame_number));
  const edit = { op: "merge", annotation: { id: keepId, other_id: otherId, other_base_version: other.ann.version } };
  const ack = await send({ ...edit, base_version: keep.ann.version });
  if (ack) {
    const laterStarts = other.ann.start_timestamp > keep.ann.start_timestamp;
    // Undone by a split where the other began, giving it back its id (only when it came after).
    remember(laterStarts && Number.isFinite(firstFrame)
      ? { op: "split", annotation: { id: keepId, frame_number: firstFrame, new_id: otherId } } : null, edit);
    toast("tracks merged");
  }
  renderAll();
}

async function replay(edit) {
  if (!edit) { toast("this step cannot be undone", true); return null; }
  const full = withBase(edit);
  if (full.op === "merge") full.annotation = { ...full.annotation, other_base_version: versionOf(edit.annotation.other_id) };
  return send(full);
}

async function undo() {
  const step = undoStack.pop();
  if (!step || !ed.canEdit) return;
  if (await replay(step.undo)) redoStack.push(step); else undoStack.push(step);
  renderButtons();
}

async function redo() {
  const step = redoStack.pop();
  if (!step || !ed.canEdit) return;
  if (await replay(step.redo)) undoStack.push(step); else redoStack.push(step);
  renderButtons();
}

// ------------------------------------------------------------------------------ conflicts

function showConflict(edit, current) {
  ed.conflict = { edit, current };
  const entry = current && track(current.id);
  $("ed-conflict-text").textContent = current
    ? `${editors.get(current.id) || "Someone else"} changed this ${current.class_label} track (now version ${current.version}) after you started ` +
      `your edit (on version ${edit.base_version}); your ${edit.op} was not applied.`
    : "The track was deleted by someone else; your edit was not applied.";
  $("ed-conflict").hidden = false;
  $("ed-mine").disabled = !current;
  if (entry) refresh(current).then(renderAll);  // theirs is what the canvas shows meanwhile
}

async function reloadTheirs() {
  const c = ed.conflict;
  ed.conflict = null;
  $("ed-conflict").hidden = true;
  if (c && c.current) await refresh(c.current);
  else if (c) tracks.delete(c.edit.annotation.id);
  renderAll();
}

async function reapplyMine() {
  const c = ed.conflict;
  if (!c || !c.current) return;
  ed.conflict = null;
  $("ed-conflict").hidden = true;
  const edit = { ...c.edit, base_version: c.current.version };
  const k = edit.op === "update" && edit.annotation.keyframes && edit.annotation.keyframes[0];
  const before = k && keyframeAt(track(edit.annotation.id) || { keyframes: [] }, k.frame_number);
  const ack = await send(edit);
  if (ack && k) remember(keyframeEdit(edit.annotation.id, before, k.frame_number), { op: edit.op, annotation: edit.annotation });
}

// ------------------------------------------------------------------------------ keys

function keyDown(e) {
  if ($("tab-editor").hidden || !ed.video) return;
  const tag = (e.target && e.target.tagName) || "";
  if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) && e.target.id !== "ed-slider") return;
  const key = e.key;
  const ctrl = e.ctrlKey || e.metaKey;
  let handled = true;
  if (ctrl && (key === "z" || key === "Z")) { if (e.shiftKey) redo(); else undo(); }
  else if (ctrl && (key === "y" || key === "Y")) redo();
  else if (ctrl) handled = false;
  else if (key === "ArrowRight" || key === "f") go(wanted + 1);
  else if (key === "ArrowLeft" || key === "d") go(wanted - 1);
  else if (key === "]" || key === "k") nextKeyframe(1);
  else if (key === "[" || key === "j") nextKeyframe(-1);
  else if (key === " ") togglePlay();
  else if (key === "Delete" || key === "Backspace") deleteTrack();
  else if (key === "o" || key === "O") toggleOutside();
  else if (key === "s" || key === "S") split();
  else if (key === "m" || key === "M") startMerge();
  else if (key === "Escape") { ed.mergeFrom = null; ed.selected = null; drag = null; renderAll(); }
  else if (/^[1-9]$/.test(key) && ed.labels[Number(key) - 1]) setLabel(ed.labels[Number(key) - 1]);
  else handled = false;
  if (handled) e.preventDefault();
}

function pick(id) {
  if (ed.mergeFrom && id !== ed.mergeFrom) { merge(ed.mergeFrom, id); return; }
  ed.selected = id;
  const entry = track(id);
  if (entry && !entry.boxes.has(ed.frame) && !inSpan(entry, ed.frame) && entry.boxes.size) {
    go(Math.min(...entry.boxes.keys()));  // jump to where the track is
  }
  sendFocus();
  renderAll();
}
