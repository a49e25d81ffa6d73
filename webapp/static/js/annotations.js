// Annotation view: a session's annotations on a timeline with their validation status, and who
// else is in the session right now (presence from the annotation room).
import { $, el, on, option, state, toast } from "./api.js";

let getSocket = () => null;
let joined = null;                // annotation session id this page joined
const annotations = new Map();    // id -> annotation
let presence = [];

export function init(socketGetter) {
  getSocket = socketGetter;
  $("ann-session").addEventListener("change", (e) => select(e.target.value));
  on("annotation-sessions-loaded", fill);
  on("project-changed", () => { leave(); annotations.clear(); render(); });
  on("socket-connected", () => { const id = joined; joined = null; if (id) join(id); });
}

export function bindSocket(socket) {
  socket.on("user_joined", (m) => { if (m.session_id === joined) setPresence(m.presence); });
  socket.on("user_left", (m) => { if (m.session_id === joined) setPresence(m.presence); });
  socket.on("annotation_update", (m) => {
    if (m.session_id !== joined) return;
    if (m.op === "delete") annotations.delete(m.annotation.id);
    else annotations.set(m.annotation.id, m.annotation);
    render(m.annotation.id);
  });
  socket.on("annotation_validated", (m) => {
    if (m.session_id !== joined) return;
    const a = annotations.get(m.annotation_id);
    if (a) { a.validation_status = m.validation.status; render(a.id); }
  });
}

function fill(sessions) {
  const selectEl = $("ann-session");
  const keep = joined || selectEl.value;
  selectEl.replaceChildren(option("", "— choose an annotation session —"),
    ...sessions.map((s) => option(s.id, `${s.session_name} (${s.annotation_count}, ${s.status})`, s.id === keep)));
}

function leave() {
  const socket = getSocket();
  if (joined && socket && socket.connected) socket.emit("leave_annotation_session", { session_id: joined });
  joined = null;
  setPresence([]);
}

function select(sessionId) {
  leave();
  annotations.clear();
  render();
  if (sessionId) join(sessionId);
}

function join(sessionId) {
  const socket = getSocket();
  if (!socket || !socket.connected) { toast("not connected: live updates unavailable", true); return; }
  joined = sessionId;
  state.annotations.sessionId = sessionId;
  socket.emit("join_annotation_session", { session_id: sessionId }, (ack) => {
    if (!ack || ack.error) { toast(ack ? ack.error.message : "no answer", true); return; }
    annotations.clear();
    for (const a of ack.annotations) annotations.set(a.id, a);
    setPresence(ack.presence);
    render();
  });
}

function setPresence(list) {
  presence = list || [];
  state.annotations.presence = presence.map((p) => p.username);
  $("ann-presence").replaceChildren(...presence.map((p) =>
    el("span", { className: "pill pill-on", text: `${p.username}${p.role ? ` (${p.role})` : ""}` })));
}

function render(flashId) {
  const list = [...annotations.values()].sort((a, b) => a.start_timestamp - b.start_timestamp);
  state.annotations.count = list.length;
  const session = state.annotationSessions.find((s) => s.id === joined);
  const video = session && state.videos.find((v) => v.id === session.video_id);
  const end = Math.max(video && video.duration ? video.duration : 0, ...list.map((a) => a.end_timestamp), 1);
  const axis = $("ann-axis");
  axis.replaceChildren();
  if (list.length) {
    for (let i = 0; i <= 10; i++) {
      const label = el("span", { text: `${(end * i / 10).toFixed(1)}s` });
      label.style.left = `${i * 10}%`;
      axis.append(label);
    }
  }
  const rows = list.map((a) => {
    const seg = el("div", { className: `seg st-${a.validation_status}`,
                            title: `${a.class_label} ${a.start_timestamp.toFixed(2)}–${a.end_timestamp.toFixed(2)} s, ` +
                                   `${a.validation_status}, version ${a.version}` });
    seg.style.left = `${(100 * a.start_timestamp) / end}%`;
    seg.style.width = `${(100 * (a.end_timestamp - a.start_timestamp)) / end}%`;
    return el("div", { className: `tl-row${a.id === flashId ? " flash" : ""}`, dataset: { annotationId: a.id,
                                                                                          status: a.validation_status } },
      el("div", { className: "tl-label", text: `${a.class_label} · ${a.validation_status}` }),
      el("div", { className: "tl-track" }, seg));
  });
  $("ann-timeline").replaceChildren(...rows);
  $("ann-note").textContent = joined ? `${list.length} annotations` : "";
}
