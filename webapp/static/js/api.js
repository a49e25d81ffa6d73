// HTTP API access, the session's token, and small DOM helpers shared by the views.

const TOKEN_KEY = "vru.token";

// Shared, observable state of the page; also readable from the browser console (and by tests).
export const state = {
  user: null,
  project: null,            // the selected project object
  projects: [],
  videos: [],
  unassignedVideos: [],     // videos in no project that the user may see
  testSessions: [],
  annotationSessions: [],
  models: [],
  socketConnected: false,
  socketConnects: 0,
  jobs: new Map(),          // job id -> job (REST fields merged with live progress)
  progressEvents: 0,        // job_progress / project_progress_update events applied
  viewer: { boxesDrawn: 0, framesDrawn: 0, liveFramesDrawn: 0, events: 0, frame: null, mode: "idle",
            lastBoxes: 0, gtBoxesDrawn: 0, testSessionId: null },
  report: { loaded: null, plots: 0 },
  annotations: { sessionId: null, count: 0, presence: [] },
};
window.dashboard = { state };

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code;
    this.details = err.details;
  }
}

let unauthorizedHandler = () => {};
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

/** Call the API; JSON in and out unless `form` (multipart) or `raw` (the Response) is asked for. */
export async function api(method, path, { json, form, raw } = {}) {
  const headers = {};
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const response = await fetch(path, { method, headers, body });
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    if (response.status === 401 && path !== "/api/auth/token") unauthorizedHandler();
    throw new ApiError(response.status, data);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response;
}

/** Every item of a paginated list (bounded, the dashboard never needs more). */
export async function listAll(path, maxPages = 20) {
  const items = [];
  const sep = path.includes("?") ? "&" : "?";
  for (let page = 1; page <= maxPages; page++) {
    const data = await api("GET", `${path}${sep}page=${page}&per_page=500`);
    items.push(...data.items);
    if (items.length >= data.total || data.items.length === 0) break;
  }
  return items;
}

/** Multipart upload with progress (fetch cannot report upload progress). */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Authorization", `Bearer ${auth.token}`);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(100 * e.loaded / e.total); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else {
        if (xhr.status === 401) unauthorizedHandler();
        reject(new ApiError(xhr.status, data));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { error: { message: "network error" } }));
    xhr.send(form);
  });
}

/** Download a file that needs the bearer token: fetch it as a blob, then save it. */
export async function download(path, fallbackName) {
  const response = await api("GET", path, { raw: true });
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------------------------------- DOM

export const $ = (id) => document.getElementById(id);

/** Create an element; `attrs` keys starting with "on" are listeners, `dataset` and `text` are special. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "className") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function option(value, label, selected = false) {
  const o = el("option", { value, text: label });
  o.selected = selected;
  return o;
}

let toastTimer = null;
export function toast(message, bad = false) {
  const t = $("toast");
  t.textContent = message;
  t.classList.toggle("bad", bad);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 4000);
}

export function errorText(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  let text = err.message;
  const fields = err.details && err.details.fields;
  if (fields) text += ": " + JSON.stringify(fields);
  return text;
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    if (value === -1) return "n/a";
    return Number.isInteger(value) ? String(value) : value.toFixed(digits);
  }
  return String(value);
}

export function shortTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** A date and time a person reads ("2026-12-04 19:52:07", local time); "" for none. */
export function dateTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Readable "label: value" fields of an object (nested objects as nested lists), never JSON. */
export function fieldList(value) {
  const labelOf = (key) => String(key).replace(/_/g, " ");
  const dl = el("dl", { className: "fields" });
  if (value === null || typeof value !== "object") {
    dl.append(el("dd", { text: fmt(value) }));
    return dl;
  }
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined || v === null || v === "" || (typeof v === "object" && !Object.keys(v).length)) continue;
    const dd = el("dd");
    if (Array.isArray(v) && v.every((x) => x === null || typeof x !== "object")) dd.textContent = v.join(", ");
    else if (typeof v === "object") dd.append(fieldList(v));
    else dd.textContent = typeof v === "boolean" ? (v ? "yes" : "no") : fmt(v);
    dl.append(el("dt", { text: labelOf(key) }), dd);
  }
  return dl;
}

// A tiny event bus between the views.
const listeners = new Map();
export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, []);
  listeners.get(name).push(fn);
}
export function emit(name, ...args) {
  for (const fn of listeners.get(name) || []) {
    try { fn(...args); } catch (err) { console.error(name, err); }
  }
}
