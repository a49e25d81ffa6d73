// The dashboard's shell: log in, pick a project, tabs, and the one Socket.IO connection.
import { $, api, auth, emit, errorText, listAll, on, onUnauthorized, option, state, toast } from "./api.js";
import * as jobs from "./jobs.js";
import * as submit from "./submit.js";
import * as viewer from "./viewer.js";
import * as report from "./report.js";
import * as annotations from "./annotations.js";
import * as runs from "./runs.js";
import * as review from "./review.js";
import * as editor from "./editor.js";

const PROJECT_KEY = "vru.project";
let socket = null;

function showLogin(message) {
  $("login-view").hidden = false;
  $("app-view").hidden = true;
  $("session-info").hidden = true;
  if (message) {
    $("login-error").textContent = message;
    $("login-error").hidden = false;
  }
  if (socket) { socket.disconnect(); socket = null; }
}

async function login(event) {
  event.preventDefault();
  $("login-error").hidden = true;
  try {
    const data = await api("POST", "/api/auth/token", {
      json: { username: $("login-username").value, password: $("login-password").value },
    });
    auth.set(data.access_token);
    await start();
  } catch (err) {
    showLogin(err.status === 401 ? "Wrong user name or password." : errorText(err));
  }
}

async function logout() {
  try { await api("POST", "/api/auth/logout"); } catch { /* the token is dropped anyway */ }
  auth.clear();
  state.user = null;
  showLogin();
}

const TOKEN_REFUSED = ["unauthorized", "invalid_token", "token_expired"];

function connectSocket() {
  if (socket) socket.disconnect();
  // The token is read at every (re)connection, so a refreshed token is used after a drop.
  socket = window.io({ auth: (cb) => cb({ token: auth.token }), transports: ["websocket"] });
  const pill = $("socket-status");
  socket.on("connect", () => {
    state.socketConnected = true;
    state.socketConnects += 1;
    pill.textContent = "live";
    pill.className = "pill pill-on";
    emit("socket-connected", socket);  // every view re-joins its rooms: snapshots follow
  });
  socket.on("disconnect", () => {
    state.socketConnected = false;
    pill.textContent = "offline";
    pill.className = "pill pill-off";
  });
  socket.on("connect_error", (err) => {
    pill.textContent = "offline";
    pill.className = "pill pill-off";
    const data = err && err.data;
    if (data && data.error && TOKEN_REFUSED.includes(data.error.code)) showLogin("Your session expired; log in again.");
  });
  socket.on("connection_status", (status) => {  // the token was revoked while connected
    if (status && status.status === "revoked") showLogin("Your session ended; log in again.");
  });
  for (const view of [jobs, viewer, annotations, runs, review]) view.bindSocket(socket);
}

async function loadProjects(selectId) {
  state.projects = await listAll("/api/projects");
  const select = $("project-select");
  select.replaceChildren();
  const wanted = selectId || sessionStorage.getItem(PROJECT_KEY);
  for (const p of state.projects) select.append(option(p.id, p.name, p.id === wanted));
  if (!state.projects.length) select.append(option("", "(no project yet: create one)"));
  await selectProject(select.value);
}

async function selectProject(projectId) {
  const previous = state.project;
  state.project = state.projects.find((p) => p.id === projectId) || null;
  if (state.project) sessionStorage.setItem(PROJECT_KEY, state.project.id);
  emit("project-changed", state.project, previous);
}

async function createProject(event) {
  event.preventDefault();
  const name = $("new-project-name").value.trim();
  if (!name) return;
  try {
    const project = await api("POST", "/api/projects", { json: { name } });
    $("new-project-name").value = "";
    toast(`Project ${project.name} created`);
    await loadProjects(project.id);
  } catch (err) {
    toast(errorText(err), true);
  }
}

function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${name}`;
  emit("tab-shown", name);
}

async function start() {
  try {
    state.user = await api("GET", "/api/users/me");
  } catch {
    auth.clear();
    showLogin();
    return;
  }
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("session-info").hidden = false;
  $("user-name").textContent = `${state.user.username} (${state.user.role})`;
  try {
    const config = await api("GET", "/api/config");
    $("flower-link").href = `${location.protocol}//${location.hostname}:${config.flower_port}/`;
  } catch { /* keep the default */ }
  connectSocket();
  await loadProjects();
}

function init() {
  $("flower-link").href = `${location.protocol}//${location.hostname}:5555/`;
  $("login-form").addEventListener("submit", login);
  $("logout-button").addEventListener("click", logout);
  $("new-project-form").addEventListener("submit", createProject);
  $("project-select").addEventListener("change", (e) => selectProject(e.target.value));
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  onUnauthorized(() => { auth.clear(); showLogin("Your session expired; log in again."); });
  on("show-tab", showTab);
  on("socket-needed", () => socket);
  jobs.init(() => socket);
  submit.init();
  viewer.init(() => socket);
  report.init();
  annotations.init(() => socket);
  runs.init(() => socket);
  review.init();
  editor.init();
  if (auth.token) start(); else showLogin();
}

init();
