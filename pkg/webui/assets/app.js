// Homeroom's teacher pages. Plain JavaScript with no build step and nothing
// fetched from elsewhere: the apiserver embeds these files and they talk
// only to its API, with the token the teacher signs in with.
//
// Pages are hash routes (#/classes, #/new, #/classes/<id>, #/classes/<id>/edit,
// #/classes/<id>/sheet for the printable link sheet, and for admins #/school)
// so that the server serves one document. Every piece of text from the API
// goes into the page as text, never as HTML.

import qrcode from "./vendor/qrcode.mjs";

const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TOKEN_KEY = "homeroom.token";
const WAIT = "25s"; // one long poll; the server cuts it to its maximum

const main = document.getElementById("main");
const notice = document.getElementById("notice");

const session = { token: null, me: null, templates: null };
let view = null; // AbortController of the page shown: navigation ends its polls

// The students' sign-in links made on this page. The API shows a link's
// secret only in the answer that made it, so they are kept here, in this
// tab's memory and nowhere else (never in storage): a reload or signing out
// forgets them. By class id: { items: Map(student → link and the sitting
// it was made for, "since": see sinceOf) }.
const issuedLinks = new Map();
// Whose own links still sign in, as the API lists them: when and by whom
// each was issued and until when it is valid, never the link itself. By
// class id: { items: Map(student → link, with its "since") }; a class missing here
// is not known (not loaded, or the API could not say).
const liveLinks = new Map();
// printSheet asks the link sheet to open the print dialog once drawn.
let printSheet = false;

// ---------- the API ----------

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the Homeroom API and returns the decoded JSON body. It throws an
// APIError whose message is meant for a teacher to read.
async function api(method, path, { body, csv, signal, blob, accept } = {}) {
  const headers = { Accept: accept || "application/json" };
  if (session.token) headers.Authorization = "Bearer " + session.token;
  let payload;
  if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  if (csv !== undefined) { headers["Content-Type"] = "text/csv"; payload = csv; }
  let resp;
  try {
    resp = await fetch(path, { method, headers, signal, body: payload });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new APIError(0, "unreachable", "Homeroom's server could not be reached. Check the connection and try again; nothing was changed.");
  }
  if (resp.ok) {
    if (blob) return resp.blob();
    return resp.status === 204 ? null : resp.json();
  }
  let code = "", message = "", details = [];
  try {
    const e = (await resp.json()).error || {};
    code = e.code || "";
    message = e.message || "";
    details = e.details || [];
  } catch { /* not JSON: a proxy's page, say */ }
  if (resp.status === 401 && session.token && path !== "/api/v1/whoami") {
    signOut("Your sign-in is no longer valid (the token was revoked or has expired). Sign in again.");
  }
  const err = new APIError(resp.status, code, plainWords(resp.status, message, code));
  err.details = details;
  throw err;
}

// plainWords turns an error answer into a sentence a teacher can act on. The
// API's own messages already name the limit, the students or the field.
function plainWords(status, message, code) {
  const m = message ? message.charAt(0).toUpperCase() + message.slice(1) : "";
  const end = m && !/[.!?]$/.test(m) ? "." : "";
  switch (true) {
    case status === 401: return "That token was not accepted. Check that it was copied whole, or ask an administrator for a new one.";
    case status === 403: return "You are not allowed to do that. " + m + end;
    case status === 404: return (m || "Not found") + end;
    case status === 409 && code === "in_use": return m + end + " Remove or change those first.";
    case status === 409 && code === "self": return m + end;
    case status === 409 && (code === "no_grader" || code === "not_gradable"): return m + end;
    case status === 409: return m + end + " Reload the page to see the class as it is now.";
    case status === 413: return "That is too large to send.";
    case status === 429: return "Too many requests just now. Wait a moment and try again.";
    case status >= 500: return "Homeroom had a problem on its side" + (m ? " (" + message + ")" : "") + ". Try again; if it keeps happening, tell your administrator.";
    default: return (m || "The request was refused") + end;
  }
}

// ---------- small DOM helpers ----------

// BOOLEAN_ATTRS are present or absent: a falsy value (0 or "" too) leaves
// them out.
const BOOLEAN_ATTRS = new Set(["selected", "disabled", "hidden", "readonly", "required", "checked", "novalidate", "open"]);

// h builds an element: h("a", {href: "#/"}, "text", child…). Attributes
// starting with "on" become listeners; strings become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (BOOLEAN_ATTRS.has(k)) { if (v) el.setAttribute(k, ""); continue; }
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(kind, text) {
  notice.className = "notice " + kind;
  notice.textContent = text;
  notice.hidden = false;
  if (kind === "error") notice.setAttribute("role", "alert");
  else notice.setAttribute("role", "status");
}

function clearNotice() {
  notice.hidden = true;
  notice.textContent = "";
}

// page replaces the main content, names the page and moves the focus to its
// heading so that a screen reader announces it.
function page(title, ...children) {
  const h1 = h("h1", { tabindex: "-1" }, title);
  main.replaceChildren(h1, ...children);
  document.title = title + " · Homeroom";
  h1.focus();
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === location.hash);
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
}

function confirmDialog(title, text, action) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = action;
  dlg.returnValue = "";
  dlg.showModal();
  return new Promise((resolve) => {
    const closed = () => {
      // A dialog's close event is queued, not dispatched at once: the one
      // of an earlier opening can arrive after this opening began. It finds
      // the dialog open again and is not this one's answer.
      if (dlg.open) return;
      dlg.removeEventListener("close", closed);
      resolve(dlg.returnValue === "ok");
    };
    dlg.addEventListener("close", closed);
  });
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

// whenNear is when, without the date for a moment of today: "9:02 PM".
function whenNear(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (d.toDateString() !== new Date().toDateString()) return when(iso);
  return d.toLocaleTimeString([], { timeStyle: "short" });
}

// moment is a time element: the moment in words, exactly in datetime.
function moment(iso) {
  return h("time", { datetime: iso }, whenNear(iso));
}

// andList writes names as "a, b and c".
function andList(names) {
  return names.length < 2 ? names.join("") : names.slice(0, -1).join(", ") + " and " + names[names.length - 1];
}

function bytes(n) {
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return n.toFixed(n < 10 ? 1 : 0) + " " + units[i];
}

function duration(seconds) {
  if (!seconds) return "no time limit";
  if (seconds % 3600 === 0) return seconds / 3600 + (seconds === 3600 ? " hour" : " hours");
  if (seconds % 60 === 0) return seconds / 60 + " minutes";
  return seconds + " seconds";
}

// ---------- what a class's status means to a teacher ----------

const PHASE_WORDS = {
  Pending: "Waiting", Provisioning: "Starting", Up: "Up", Collecting: "Collecting work", Down: "Down", Failed: "Failed",
};

function phaseBadge(cl) {
  const p = cl.status?.phase || "Pending";
  return h("span", { class: "phase phase-" + p, "data-phase": p }, PHASE_WORDS[p] || p);
}

// progress says how far a class is on its way to its desired phase.
function progress(cl) {
  const total = cl.spec.students.length;
  const st = cl.status || {};
  const students = st.students || [];
  if (cl.desiredPhase === "Up") {
    const running = students.filter((s) => s.state === "running").length;
    const done = st.phase === "Up" && st.observedGeneration === cl.generation;
    return { done, n: running, total, text: `${running} of ${total} students ready` };
  }
  const run = st.run;
  const collected = run ? students.filter((s) => s.artifacts && s.artifacts.runId === run.id).length : 0;
  const done = st.phase === "Down" && st.observedGeneration === cl.generation;
  if (!run && done) return { done, n: 0, total, text: "Down" };
  return { done, n: done ? total : collected, total, text: `${done ? total : collected} of ${total} students collected` };
}

// problems lists the conditions a teacher should know about, in words.
function problems(cl) {
  const out = [];
  // Most conditions are good when True; these report a problem when True.
  const badWhenTrue = new Set(["WorkspaceFull", "NetworkLeaked"]);
  for (const c of cl.status?.conditions || []) {
    if (badWhenTrue.has(c.type) ? c.status !== "True" : c.status === "True") continue;
    if (c.type === "Graded") continue; // the Grades section says how grading stands
    if (c.type === "Ready" && cl.desiredPhase !== "Up") continue;
    if (c.type === "Ready" && !c.message) continue;
    const lead = {
      Ready: "Not every sandbox is ready yet",
      RoutingAvailable: "Students' links do not work yet",
      Synced: "Homeroom is retrying",
      TemplateCurrent: "The template changed since the class went up",
      WorkspaceFull: "A student's work is over the template's limit; their sandbox was saved and stopped",
      NetworkLeaked: "Docker will not remove the class's network",
    }[c.type] || c.type;
    out.push({ bad: c.type === "Synced", text: lead + (c.message ? ": " + c.message : ".") });
  }
  if (cl.downReason === "TTLExpired") out.push({ bad: false, text: "The class's time limit ran out, so Homeroom collected the work and took it down." });
  return out;
}

// ---------- sign in ----------

function signOut(message) {
  session.token = null;
  session.me = null;
  issuedLinks.clear();
  liveLinks.clear();
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  if (message) show("error", message); else clearNotice();
  location.hash = "#/signin";
}

async function signIn(token, remember) {
  session.token = token;
  const me = await api("GET", "/api/v1/whoami");
  session.me = me;
  (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
  document.getElementById("who-name").textContent = `Signed in as ${me.name} (${me.role})`;
  document.getElementById("nav").hidden = false;
  document.getElementById("nav-school").hidden = me.role !== "admin";
  document.getElementById("who").hidden = false;
}

function signInPage() {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true, "aria-describedby": "token-hint" });
  const remember = h("input", { id: "remember", type: "checkbox" });
  const err = h("p", { class: "field-error", id: "token-error", role: "alert" });
  const form = h("form", { class: "stack card", onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = "";
    const token = input.value.trim();
    if (!token) { err.textContent = "Paste the token you were given."; input.setAttribute("aria-invalid", "true"); return; }
    const btn = form.querySelector("button");
    btn.disabled = true;
    try {
      await signIn(token, remember.checked);
      clearNotice();
      location.hash = "#/classes";
    } catch (ex) {
      session.token = null;
      err.textContent = ex.message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } finally {
      btn.disabled = false;
    }
  } },
  h("div", {}, h("label", { for: "token" }, "Token"), input,
    h("p", { class: "hint", id: "token-hint" }, "The token an administrator gave you (make run prints the admin token).")),
  h("label", { class: "check" }, remember, "Keep me signed in on this device"),
  err,
  h("div", {}, h("button", { type: "submit" }, "Sign in")));
  page("Sign in", form);
  input.focus();
}

// ---------- the classes ----------

async function classesPage(signal) {
  page("Classes", h("p", { class: "muted" }, "Loading classes…"));
  // The list is small and changes rarely, so it is polled; a class's own
  // page follows that class with long polls.
  let last = null;
  for (let first = true; !signal.aborted; first = false) {
    try {
      const { items } = await api("GET", "/api/v1/classes", { signal });
      // Redraw only on a change, so that the focus stays where it is.
      const now = JSON.stringify(items);
      if (now !== last) renderClasses(items, first);
      last = now;
      await sleep(5000, signal);
    } catch (ex) {
      if (ex.name === "AbortError") return;
      show("error", ex.message);
      await sleep(10000, signal);
    }
  }
}

function renderClasses(items, first) {
  const list = items.length === 0
    ? h("div", { class: "card empty" }, h("p", {}, "No classes yet."), h("a", { class: "button", href: "#/new" }, "Create a class"))
    : h("ul", { class: "cards", id: "class-list" }, items.map((cl) => {
      const p = progress(cl);
      return h("li", {}, h("a", { class: "card", href: "#/classes/" + cl.id, "data-class": cl.id },
        h("h2", {}, cl.id),
        h("p", {}, phaseBadge(cl), " ", cl.desiredPhase !== (cl.status?.phase || "") && !p.done ? h("span", { class: "meta" }, "→ " + cl.desiredPhase) : ""),
        h("p", { class: "meta" }, `${cl.spec.subject} · ${cl.spec.template} · ${cl.spec.students.length} students`),
        h("p", { class: "meta" }, p.text)));
    }));
  const body = [h("div", { class: "actions" }, h("a", { class: "button", href: "#/new" }, "New class")), list];
  if (first) page("Classes", ...body);
  else main.replaceChildren(main.querySelector("h1"), ...body);
}

// ---------- one class ----------

async function classPage(id, signal) {
  page(id, h("p", { class: "muted" }, "Loading…"));
  let cl;
  try {
    cl = await api("GET", "/api/v1/classes/" + encodeURIComponent(id), { signal });
  } catch (ex) {
    if (ex.name === "AbortError") return;
    page(id, h("p", { class: "error-text" }, ex.message), h("a", { href: "#/classes" }, "Back to the classes"));
    return;
  }
  const files = { key: "", runs: [], items: [], run: "" };
  // The gradebook of the class's last Down run, shown while the class's
  // Graded condition says that run is graded or being graded.
  const grades = { key: "", run: "", book: null, error: "", retry: false, seq: 0 };
  // The timetable's next seven days, for the week view.
  const week = { key: "", view: null };
  const render = () => renderClass(cl, files, grades, week, signal, async (next) => { cl = next; await refreshFiles(); await refreshLive(); await refreshGrades(); await refreshWeek(); render(); }, () => render());
  // refreshLive asks whose links still sign in when a student can sign
  // in: on the first look, and when that changed (a new Up ends every
  // link; a late hand-in starts a sitting of its own).
  // Issuing links asks again (issueLinks), and so does each confirmation
  // before it, so that what it says is current.
  let liveKey = "";
  const refreshLive = async () => {
    const key = cl.spec.students.map((sid) => sinceOf(cl, sid) || "").join("|").replace(/^\|*$/, "");
    if (key === liveKey) return;
    liveKey = key;
    if (!key) return;
    try {
      if (await loadLiveLinks(cl, signal) === null) {
        liveKey = "";
        show("error", "Homeroom could not say which students have a sign-in link. Reload the page to try again.");
      }
    } catch (ex) {
      if (ex.name !== "AbortError") throw ex;
    }
  };
  // refreshFiles reloads the collected files when a collection finished
  // since the last look (or on the first): the class's run, or one
  // student's hand-in, early or late.
  const refreshFiles = async () => {
    const one = [cl.status?.handIns, cl.status?.late].flatMap((m) => Object.values(m || {}).map((x) => x.runId)).sort();
    const key = [cl.status?.run?.id || "", cl.status?.run?.completedAt || "", ...one].join("|");
    if (key === files.key) return;
    try {
      const runs = (await api("GET", `/api/v1/classes/${encodeURIComponent(id)}/runs`, { signal })).items || [];
      files.runs = runs;
      // A collection that finished shows its files: the class's own run
      // once listed, not an earlier one (a hand-in) picked meanwhile.
      const current = cl.status?.run?.id;
      if (current && runs.some((r) => r.runId === current)) files.run = current;
      else if (!files.run || !runs.some((r) => r.runId === files.run)) files.run = runs.length ? runs[runs.length - 1].runId : "";
      files.items = files.run ? (await api("GET", `/api/v1/classes/${encodeURIComponent(id)}/artifacts?run=${encodeURIComponent(files.run)}`, { signal })).items : [];
      files.key = key;
    } catch (ex) {
      if (ex.name !== "AbortError") show("error", "Collected files could not be listed: " + ex.message);
    }
  };
  files.select = async (run) => {
    files.run = run;
    try {
      files.items = (await api("GET", `/api/v1/classes/${encodeURIComponent(id)}/artifacts?run=${encodeURIComponent(run)}`, { signal })).items;
    } catch (ex) {
      if (ex.name !== "AbortError") show("error", "Collected files could not be listed: " + ex.message);
    }
    render();
  };
  // refreshWeek loads the timetable's next sessions when the timetable, the
  // class's last Up times or the day changed since the last look.
  const refreshWeek = async () => {
    const key = cl.spec.schedule ? [cl.scheduledSince, (cl.status?.upSeconds || []).join(","), new Date().toDateString()].join("|") : "";
    if (key === week.key) return;
    week.key = key;
    week.view = null;
    if (!key) return;
    try {
      week.view = await api("GET", `/api/v1/classes/${encodeURIComponent(id)}/schedule?days=7`, { signal });
    } catch (ex) {
      if (ex.name !== "AbortError") { week.key = ""; show("error", "The timetable could not be loaded: " + ex.message); }
    }
  };
  // refreshGrades loads the gradebook when the Graded condition changed
  // since the last look (a grade arrived, a new attempt began), or always
  // with force.
  const refreshGrades = async (force) => {
    const cond = gradedCondition(cl);
    const run = cl.status?.run?.id || "";
    const key = cond && run ? [run, cond.reason, cond.message].join("|") : "";
    if (!force && key === grades.key) return;
    grades.key = key;
    const seq = ++grades.seq;
    if (!key) { Object.assign(grades, { run: "", book: null, error: "", retry: false }); return; }
    try {
      const book = await api("GET", `/api/v1/classes/${encodeURIComponent(id)}/runs/${encodeURIComponent(run)}/grades`, { signal });
      if (seq === grades.seq) Object.assign(grades, { run, book, error: "", retry: false });
    } catch (ex) {
      if (ex.name === "AbortError" || seq !== grades.seq) return;
      grades.key = ""; // asked again on the next change
      // A network or server trouble is asked again by the poll too; a
      // refusal is not, until the class changes.
      const retry = ex.status === 0 || ex.status === 429 || ex.status >= 500;
      Object.assign(grades, { run, book: null, error: ex.message, retry });
    }
  };
  await refreshFiles();
  await refreshLive();
  await refreshGrades();
  await refreshWeek();
  page(id);
  render();

  // Grades arrive one student at a time. While some are pending the
  // gradebook is asked for every few seconds besides the class's long
  // poll: after Grade again, the class's condition tells of the new attempt
  // only once its first grade is in.
  (async () => {
    while (!signal.aborted) {
      await sleep(5000, signal);
      if (signal.aborted || !gradingUnderWay(cl, grades)) continue;
      const before = JSON.stringify([grades.book, grades.error]);
      await refreshGrades(true);
      if (!signal.aborted && JSON.stringify([grades.book, grades.error]) !== before) render();
    }
  })();

  // Follow the class: each long poll returns when it changed or timed out.
  let backoff = 1000;
  while (!signal.aborted) {
    try {
      const next = await api("GET", `/api/v1/classes/${encodeURIComponent(id)}?wait=${WAIT}&resourceVersion=${cl.resourceVersion}`, { signal });
      backoff = 1000;
      if (next.resourceVersion !== cl.resourceVersion) {
        cl = next;
        await refreshFiles();
        await refreshLive();
        await refreshGrades();
        await refreshWeek();
        render();
      }
    } catch (ex) {
      if (ex.name === "AbortError") return;
      if (ex.status === 404) { show("info", `Class ${id} no longer exists.`); location.hash = "#/classes"; return; }
      show("error", ex.message + " Retrying…");
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 30000);
      continue;
    }
    if (!notice.hidden && notice.textContent.endsWith("Retrying…")) clearNotice();
  }
}

function renderClass(cl, files, grades, week, signal, update, redraw) {
  const st = cl.status || {};
  const p = progress(cl);
  const busy = !p.done;
  // "Bringing … up" has been said; once there, the page itself shows it.
  if (p.done && notice.classList.contains("info") && !notice.hidden) clearNotice();
  const act = (what) => async (e) => {
    const btn = e.currentTarget;
    if (what === "down") {
      const n = (st.students || []).length || cl.spec.students.length;
      const ok = await confirmDialog(`Take ${cl.id} down?`,
        `Homeroom will collect the work of all ${n} students first, then remove their sandboxes. Students lose access until the class is brought up again.`,
        "Collect and take down");
      if (!ok) { btn.focus(); return; }
    }
    btn.disabled = true;
    try {
      const next = await api("POST", `/api/v1/classes/${encodeURIComponent(cl.id)}/${what}`, { signal });
      show("info", what === "up" ? `Bringing ${cl.id} up…` : `Collecting the work of ${cl.id}, then taking it down…`);
      await update(next);
    } catch (ex) {
      if (ex.name !== "AbortError") show("error", ex.message);
      btn.disabled = false;
    }
  };
  const remove = async (e) => {
    const ok = await confirmDialog(`Delete ${cl.id}?`, "The class is forgotten. Its collected work stays in the artifact store.", "Delete class");
    if (!ok) { e.currentTarget?.focus?.(); return; }
    const path = `/api/v1/classes/${encodeURIComponent(cl.id)}`;
    try {
      try {
        await api("DELETE", path, { signal });
      } catch (ex) {
        if (ex.code !== "work_left_behind") throw ex;
        // Work a lost node still holds is collected once the node is
        // back, and only through the class: deleting it gives that up,
        // which the teacher must choose in words, never by default.
        const fresh = await api("GET", path, { signal });
        const held = Object.entries(fresh.status?.leftBehind || {}).flatMap(([student, lbs]) =>
          lbs.filter((lb) => !lb.collectedAt).map((lb) => `${student} (on node ${lb.on}, since ${when(lb.since)})`));
        const give = await confirmDialog("Give up work left on a lost node?",
          `Work of ${held.length ? held.join(", ") : "some students"} is on a node that was lost and is not collected yet. ` +
          "It is collected when the node is back, and the class can be deleted then. Deleting now gives that work up for good.",
          "Delete and give up that work");
        if (!give) { show("info", `Class ${cl.id} was kept: its work on a lost node is collected when the node is back.`); return; }
        await api("DELETE", path + "?abandonLeftBehind=true", { signal });
      }
      show("ok", `Class ${cl.id} was deleted. Its collected work is kept.`);
      location.hash = "#/classes";
    } catch (ex) {
      if (ex.name !== "AbortError") show("error", ex.message);
    }
  };

  const actions = h("div", { class: "actions" },
    h("button", { type: "button", id: "up", onclick: act("up"), disabled: cl.desiredPhase === "Up" }, "Bring up"),
    h("button", { type: "button", id: "down", class: "danger", onclick: act("down"), disabled: cl.desiredPhase !== "Up" }, "Take down"),
    h("a", { class: "button secondary", href: `#/classes/${cl.id}/edit` }, "Edit"),
    cl.desiredPhase === "Down" && st.phase === "Down" ? h("button", { type: "button", class: "secondary", id: "delete", onclick: remove }, "Delete") : null);

  const expires = st.expiresAt ? "until " + when(st.expiresAt) : duration(cl.spec.ttlSeconds);
  const facts = h("dl", { class: "facts" },
    h("dt", {}, "Status"), h("dd", {}, phaseBadge(cl), busy ? ` on the way ${cl.desiredPhase === "Up" ? "up" : "down"}` : ""),
    h("dt", {}, "Subject"), h("dd", {}, cl.spec.subject),
    h("dt", {}, "Template"), h("dd", {}, cl.spec.template),
    h("dt", {}, "Students"), h("dd", {}, String(cl.spec.students.length)),
    h("dt", {}, "Time limit"), h("dd", {}, expires),
    cl.bell && cl.desiredPhase === "Up" ? [h("dt", {}, "Session"), h("dd", { id: "bell" }, "Up for the session at ", moment(cl.bell))] : null);

  const bar = h("div", { class: "progress", id: "progress" },
    h("progress", { max: p.total || 1, value: p.n, "aria-label": cl.desiredPhase === "Up" ? "Students running" : "Students collected" }),
    h("p", { "aria-live": "polite", id: "progress-text" }, p.text + (p.done ? "" : "…")));

  const probs = problems(cl);
  const probList = probs.length ? h("ul", { class: "problems", "aria-label": "Problems" }, probs.map((x) => h("li", { class: x.bad ? "bad" : "" }, x.text))) : null;

  // Redrawing must not take the keyboard focus away or fold up the file
  // lists someone opened: remember both and put them back.
  const focused = document.activeElement && main.contains(document.activeElement) ? keyOf(document.activeElement) : null;
  const open = [...main.querySelectorAll("tr[data-student] details[open]")].map((d) => d.closest("tr").dataset.student);
  const openTests = [...main.querySelectorAll("tr[data-grade] details[open]")].map((d) => d.closest("tr").dataset.grade);
  // A Down class still signs students in to the sandboxes it keeps for
  // extra time or a late hand-in.
  const links = cl.spec.students.some((sid) => signable(cl, sid)) ? linkControls(cl, signal, redraw) : null;
  main.replaceChildren(main.querySelector("h1"), actions, h("div", { class: "card" }, facts, bar), probList || "",
    weekView(cl, week.view) || "",
    h("h2", {}, "Students"), links && cl.desiredPhase === "Up" ? links.toolbar : "", studentsTable(cl, files, signal, links),
    gradesSection(cl, grades, signal, redraw) || "",
    files.runs.length > 1 ? runPicker(files) : "", files.runs.length ? runsList(cl, files, signal, redraw) : "");
  for (const sid of open) main.querySelector(`tr[data-student="${CSS.escape(sid)}"] details`)?.setAttribute("open", "");
  for (const sid of openTests) main.querySelector(`tr[data-grade="${CSS.escape(sid)}"] details`)?.setAttribute("open", "");
  if (focused) {
    const el = [...main.querySelectorAll("button, a, select, summary, input")].find((e) => keyOf(e) === focused);
    if (el && !el.disabled) el.focus();
  }
}

// ---------- the timetable ----------

// weekView shows the timetable's next seven days in the class's time zone:
// a column a day, each session with its times and when Homeroom starts
// bringing the class up for it.
function weekView(cl, view) {
  const sch = cl.spec.schedule;
  if (!sch || !view) return null;
  const tz = sch.timezone;
  const dayKey = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" });
  const dayName = new Intl.DateTimeFormat([], { timeZone: tz, weekday: "short", day: "numeric", month: "short" });
  // Times as the timetable writes them, 09:00, whatever the browser's locale.
  const clock = new Intl.DateTimeFormat([], { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const days = [];
  for (let i = 0; i < 7; i++) {
    const d = new Date(Date.now() + i * 86400000);
    days.push({ key: dayKey.format(d), name: i === 0 ? "Today" : dayName.format(d), sessions: [] });
  }
  for (const s of view.sessions) {
    const day = days.find((d) => d.key === dayKey.format(new Date(s.start)));
    if (day) day.sessions.push(s);
  }
  const readyMin = Math.round((sch.readyBeforeSeconds ?? 300) / 60);
  const next = view.sessions.find((s) => !s.now);
  return h("section", { id: "timetable", "aria-labelledby": "timetable-title" },
    h("h2", { id: "timetable-title" }, "Timetable"),
    h("p", { class: "muted" }, `${tz}. Homeroom brings the class up to be ready ${readyMin} min before each session, and takes it down at the end, collecting the work first. Bringing it up or taking it down by hand holds until the next session.`),
    h("table", { id: "week" },
      h("thead", {}, h("tr", {}, days.map((d) => h("th", { scope: "col" }, d.name)))),
      h("tbody", {}, h("tr", {}, days.map((d) => h("td", { "data-label": d.name, "data-day": d.key },
        d.sessions.length === 0 ? h("span", { class: "muted" }, "—") :
          d.sessions.map((s) => h("div", { class: "session" + (s.now ? " now" : s === next ? " next" : ""), "data-start": s.start },
            h("strong", {}, `${clock.format(new Date(s.start))}–${clock.format(new Date(s.end))}`),
            h("span", { class: "muted" }, s.now ? " in session" : ` up from ${clock.format(new Date(s.upFrom))}`)))))))),
    view.sessions.length === 0 ? h("p", { class: "muted" }, "No session in the next seven days.") : null);
}

// keyOf names a control so that it can be found again after a redraw.
function keyOf(el) {
  if (el.id) return "#" + el.id;
  const row = el.closest("tr[data-student]");
  return [el.tagName, row?.dataset.student || "", el.dataset.path || "", el.getAttribute("href") || ""].join("|");
}

function runPicker(files) {
  const sel = h("select", { id: "run", onchange: (e) => files.select(e.target.value) },
    files.runs.slice().reverse().map((r) => h("option", { value: r.runId, selected: r.runId === files.run },
      `Collected ${when(r.completedAt) || "(incomplete) " + r.runId}` + (r.complete ? "" : " — incomplete"))));
  return h("div", { class: "stack" }, h("label", { for: "run" }, "Files of the collection"), sel);
}

// downloading holds "<class>/<run>" of the collections being downloaded
// as one archive, so that a redraw keeps their buttons busy.
const downloading = new Set();

// runsList lists the class's collections, newest first, each complete one
// with a button that downloads every student's files of it as one zip.
function runsList(cl, files, signal, redraw) {
  return h("section", { "aria-labelledby": "runs-title" },
    h("h2", { id: "runs-title" }, "Collections"),
    h("ul", { class: "runs", id: "runs" }, files.runs.slice().reverse().map((r) => {
      const what = !r.complete ? `Collection ${r.runId}` :
        r.kind === "autosave" ? `Autosaved ${when(r.completedAt)}` :
        r.kind === "student" ? `Handed in ${when(r.completedAt)}` :
        r.kind === "late" ? `Late hand-in ${when(r.completedAt)}` :
        r.kind === "recovered" ? `Recovered from a lost node ${when(r.completedAt)}` : `Collected ${when(r.completedAt)}`;
      const busy = downloading.has(cl.id + "/" + r.runId);
      return h("li", { "data-run": r.runId },
        h("span", {}, what),
        h("span", { class: "muted" }, `${r.students} student${r.students === 1 ? "" : "s"}`),
        r.complete ?
          h("button", { type: "button", class: "link", id: "download-" + r.runId, disabled: busy,
            "aria-label": `Download all files of the collection of ${when(r.completedAt)} as one zip`,
            onclick: () => downloadRun(cl.id, r.runId, signal, redraw) }, busy ? "Downloading…" : "Download all (zip)") :
          h("span", { class: "muted" }, "not complete yet"));
    })));
}

function studentsTable(cl, files, signal, links) {
  const byId = new Map((cl.status?.students || []).map((s) => [s.id, s]));
  const ids = [...new Set([...cl.spec.students, ...byId.keys()])];
  const fileMap = new Map();
  for (const it of files.items || []) {
    if (!fileMap.has(it.student)) fileMap.set(it.student, []);
    fileMap.get(it.student).push(it);
  }
  const rows = ids.map((sid) => {
    const s = byId.get(sid) || { id: sid, state: cl.desiredPhase === "Up" ? "starting" : "none" };
    const mine = fileMap.get(sid) || [];
    const work = mine.filter((f) => f.path.startsWith("files/"));
    const other = mine.filter((f) => !f.path.startsWith("files/"));
    const fileList = mine.length === 0 ? h("span", { class: "muted" }, files.run ? "nothing collected" : "not collected yet") :
      h("details", {}, h("summary", {}, `${work.length} file${work.length === 1 ? "" : "s"}` + (other.length ? " and logs" : "")),
        h("ul", { class: "files" }, [...work, ...other].map((f) => h("li", {},
          h("code", {}, f.path.replace(/^files\//, "")), h("span", { class: "muted" }, bytes(f.size)),
          h("button", { type: "button", class: "link", "data-path": f.path, "data-student": sid,
            "aria-label": `Download ${f.path.replace(/^files\//, "")} of ${sid}`,
            onclick: () => download(cl.id, f, signal) }, "Download")))));
    const state = s.state || "unknown";
    // What the student's last collection could not take: never silent.
    const a = s.artifacts;
    const warn = a && a.incomplete ? h("span", { class: "warn", "data-collect": "incomplete",
      title: "Some files could not be collected; the manifest's skipped entries say which and why." }, "incomplete") :
      a && a.truncated ? h("span", { class: "warn", "data-collect": "truncated",
        title: "The template's size or file cap left files out; the manifest lists them." }, "truncated") : null;
    const size = s.workspaceBytes != null ? h("span", { class: "muted", "data-workspace": String(s.workspaceBytes) }, " " + bytes(s.workspaceBytes)) : null;
    // A sandbox that never answered its readiness check: what the check got
    // and its last log lines, as text (they are the student's program's).
    const why = s.message ? h("details", { class: "why", "data-why": sid }, h("summary", {}, "why"), h("pre", {}, s.message)) : null;
    // What a teacher does for one student of an Up class: the controller
    // acts on it, as on everything else.
    // After a Down, a student without extra time can be given a late
    // hand-in: their sandbox back with their work, collected at its end.
    const handIn = cl.status?.handIns?.[sid];
    const lateDone = cl.status?.late?.[sid];
    const until = cl.perStudent?.[sid]?.until;
    const extra = extended(cl, sid);
    const late = lateRuns(cl, sid);
    const onRoster = cl.spec.students.includes(sid);
    const up = cl.desiredPhase === "Up" && onRoster;
    const down = cl.desiredPhase !== "Up" && onRoster && !extra;
    const one = up || extra || down ? h("div", { class: "one-student" },
      up ? h("button", { type: "button", class: "link", "data-action": "restart", "aria-label": `Restart ${sid}'s sandbox`,
        onclick: (e) => studentAction(cl, sid, "restart", e.currentTarget, signal) }, "Restart") : null,
      up ? h("button", { type: "button", class: "link", "data-action": "collect", "aria-label": `Collect ${sid}'s work now`,
        onclick: (e) => studentAction(cl, sid, "collect", e.currentTarget, signal) }, "Hand in now") : null,
      up || extra ? h("button", { type: "button", class: "link", "data-action": "extend", "aria-label": `Give ${sid} 30 more minutes`,
        onclick: (e) => studentAction(cl, sid, "extend", e.currentTarget, signal) }, "+30 min") : null,
      down ? h("button", { type: "button", class: "link", "data-action": "late",
        "aria-label": late ? `Give ${sid}'s late hand-in 30 more minutes` : `Give ${sid} a late hand-in of 30 minutes`,
        onclick: (e) => studentAction(cl, sid, "late", e.currentTarget, signal) }, late ? "+30 min" : "Late hand-in") : null,
      extra ? h("span", { class: "muted", "data-until": until }, " extra time until ", moment(until)) : null,
      late ? h("span", { class: "muted", "data-late": cl.perStudent[sid].lateUntil }, " late hand-in until ", moment(cl.perStudent[sid].lateUntil)) : null,
      handIn ? h("span", { class: "muted", "data-handin": handIn.runId }, " handed in ", moment(handIn.collectedAt)) : null,
      lateDone && !late ? h("span", { class: "muted", "data-late-run": lateDone.runId }, " handed in late ", moment(lateDone.collectedAt)) : null) : null;
    return h("tr", { "data-student": sid },
      h("td", { "data-label": "Student" }, sid, one),
      h("td", { "data-label": "Sandbox" }, h("span", { class: "state-" + state, "data-state": state }, state), size, why),
      links ? h("td", { "data-label": "Sign-in link" }, signable(cl, sid) ? links.cell(sid, s.endpoint) :
        h("span", { class: "muted" }, onRoster ? "no sandbox" : "taken off the class")) : null,
      h("td", { "data-label": "Collected" }, fileList, warn ? " " : null, warn));
  });
  return h("table", { id: "students" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Student"), h("th", { scope: "col" }, "Sandbox"),
      links ? h("th", { scope: "col" }, "Sign-in link") : null, h("th", { scope: "col" }, "Collected files"))),
    h("tbody", {}, rows));
}

// extended tells whether sid's extra time runs past the class's Down
// (as api.Class.Extended does).
function extended(cl, sid) {
  const d = cl.perStudent?.[sid];
  return cl.desiredPhase !== "Up" && !!(d?.until && new Date(d.until) > new Date() &&
    d.untilUp && cl.upSince && new Date(d.untilUp).getTime() === new Date(cl.upSince).getTime());
}

// lateRuns tells whether sid's late hand-in runs (as api.Class.Late does):
// asked since the class's Down, not over, not collected yet.
function lateRuns(cl, sid) {
  const d = cl.perStudent?.[sid];
  if (cl.desiredPhase === "Up" || !d?.lateAt || !d.lateUntil || new Date(d.lateUntil) <= new Date()) return false;
  if (cl.desiredAt && new Date(d.lateAt) <= new Date(cl.desiredAt)) return false;
  const done = cl.status?.late?.[sid];
  return !done || new Date(done.requestedAt) < new Date(d.lateAt);
}

// signable tells whether sid has a sandbox to sign in to.
function signable(cl, sid) {
  return cl.spec.students.includes(sid) && (cl.desiredPhase === "Up" || extended(cl, sid) || lateRuns(cl, sid));
}

// studentAction asks for a restart or a hand-in of one student; the class's
// long poll shows what the controller did.
async function studentAction(cl, sid, action, btn, signal) {
  if (action === "restart") {
    const ok = await confirmDialog(`Restart ${sid}'s sandbox?`,
      `Homeroom makes ${sid}'s sandbox again from its template. Their files are kept; programs they were running stop.`, "Restart");
    if (!ok) { btn.focus(); return; }
  }
  btn.disabled = true;
  try {
    // Extra time and a late hand-in count from their current end while
    // they run, else from now.
    const d = cl.perStudent?.[sid] || {};
    const end = action === "extend" ? d.until : action === "late" && lateRuns(cl, sid) ? d.lateUntil : null;
    const from = end && new Date(end) > new Date() ? new Date(end) : new Date();
    const body = action === "extend" || action === "late" ? { until: new Date(from.getTime() + 30 * 60000).toISOString().replace(/\.\d+Z$/, "Z") } : undefined;
    await api("POST", `/api/v1/classes/${encodeURIComponent(cl.id)}/students/${encodeURIComponent(sid)}/${action}`, { body, signal });
    show("info", action === "restart" ? `Restarting ${sid}'s sandbox…` :
      action === "extend" ? `${sid} has 30 more minutes; their work is collected when their time is up.` :
      action === "late" ? `${sid}'s sandbox comes back with their work for 30 more minutes; make them a link. It is collected as a late hand-in at the end.` :
      `Collecting ${sid}'s work…`);
  } catch (ex) {
    if (ex.name !== "AbortError") show("error", ex.message);
  } finally {
    btn.disabled = false;
  }
}

// ---------- grades ----------

// gradedCondition is the class's Graded condition: there once a Down run
// whose template has a grader completed.
function gradedCondition(cl) {
  return (cl.status?.conditions || []).find((c) => c.type === "Graded") || null;
}

// gradingUnderWay says whether grades are still to come for the gradebook
// shown.
function gradingUnderWay(cl, grades) {
  const cond = gradedCondition(cl);
  if (!cond) return false;
  return cond.reason === "Grading" || grades.retry || (grades.book?.items || []).some((it) => it.state === "pending");
}

const GRADE_STATES = { pending: "Pending", graded: "Graded", "grading failed": "Grading failed" };

function points(n) {
  return Number.isInteger(n) ? String(n) : String(Math.round(n * 100) / 100);
}

// textBlock is an element showing text a grader wrote, as text: graders
// run the students' code, so what they write may be anything, markup too.
function textBlock(tag, cls, text) {
  const el = h(tag, { class: cls });
  el.textContent = text;
  return el;
}

// gradeBusy holds "<class>/<run>/<what>" of the grade downloads and
// regrades under way, so that a redraw keeps their buttons busy.
const gradeBusy = new Set();

// gradesSection shows the grades of the class's last Down run: how grading
// stands, each student's state, score, feedback and tests, the gradebook as
// CSV to download, and a button to grade the run again. Nothing without a
// Graded condition.
function gradesSection(cl, grades, signal, redraw) {
  const cond = gradedCondition(cl);
  const run = cl.status?.run;
  if (!cond || !run?.id) return null;
  const book = grades.run === run.id ? grades.book : null;
  const base = `/api/v1/classes/${encodeURIComponent(cl.id)}/runs/${encodeURIComponent(run.id)}`;
  const busyKey = (what) => `${cl.id}/${run.id}/${what}`;
  // A redraw while busy cannot keep the focus on a disabled button: give
  // it back once the button is enabled again.
  const withBusy = (what, id, fn) => async () => {
    gradeBusy.add(busyKey(what));
    redraw();
    try {
      await fn();
    } catch (ex) {
      if (ex.name !== "AbortError") show("error", ex.message);
    } finally {
      gradeBusy.delete(busyKey(what));
      if (!signal.aborted) {
        const lost = !document.activeElement || document.activeElement === document.body;
        redraw();
        if (lost) document.getElementById(id)?.focus();
      }
    }
  };
  const downloadCSV = withBusy("csv", "grades-csv", async () => {
    try {
      const blob = await api("GET", base + "/grades", { signal, blob: true, accept: "text/csv" });
      saveBlob(blob, `${cl.id}-${run.id}-grades.csv`);
    } catch (ex) {
      if (ex instanceof APIError) ex.message = "The grades could not be downloaded: " + ex.message;
      throw ex;
    }
  });
  const regrade = async (e) => {
    const btn = e.currentTarget;
    const ok = await confirmDialog(`Grade ${cl.id} again?`,
      "Every student's collected work is graded again, with the grader as it is now. Until the new grades arrive, " +
      "each student shows as pending; the earlier grades are kept in the artifact store.", "Grade again");
    if (!ok) { btn.focus(); return; }
    await withBusy("regrade", "regrade", async () => {
      const next = await api("POST", base + "/grade", { signal });
      grades.seq++; // an answer to an older question must not replace this one
      Object.assign(grades, { run: run.id, book: next, error: "", retry: false });
      show("ok", `Grading attempt ${next.attempt} of ${cl.id} started. The grades appear here as they arrive.`);
    })();
  };

  // Right after Grade again the condition still tells of the attempt
  // before, until the new attempt's first grade is in: the gradebook says
  // how far the new one is.
  const behind = book && !(cond.message || "").includes(`(attempt ${book.attempt})`);
  const state = behind || cond.reason === "Grading" ? "grading" : cond.reason === "GradingFailed" ? "failed" : "graded";
  const message = behind
    ? `${book.items.filter((it) => it.state !== "pending").length} of ${book.items.length} students graded (attempt ${book.attempt})`
    : cond.message || "";
  const summary = h("p", { id: "grades-status", "data-grading": state, class: state === "failed" ? "warn" : state === "graded" ? "ok-text" : "" },
    (state === "grading" ? "Grading… " : "") + message + (run.completedAt ? ` · collected ${when(run.completedAt)}` : ""));
  const actions = h("div", { class: "actions" },
    h("button", { type: "button", class: "secondary", id: "grades-csv", disabled: !book || gradeBusy.has(busyKey("csv")),
      // Its name starts with the words it shows, as voice control needs;
      // while busy it is those words alone ("Downloading…").
      "aria-label": gradeBusy.has(busyKey("csv")) ? null : "Download CSV of the grades (student, score, max) for a gradebook", onclick: downloadCSV },
    gradeBusy.has(busyKey("csv")) ? "Downloading…" : "Download CSV"),
    h("button", { type: "button", class: "secondary", id: "regrade", disabled: gradeBusy.has(busyKey("regrade")), onclick: regrade },
      gradeBusy.has(busyKey("regrade")) ? "Starting…" : "Grade again"));

  let body;
  if (grades.error && grades.run === run.id) {
    body = h("p", { class: "error-text", id: "grades-error" }, "The grades could not be loaded: " + grades.error);
  } else if (!book) {
    body = h("p", { class: "muted" }, "Loading the grades…");
  } else {
    body = h("table", { id: "grades-table" },
      h("caption", { class: "visually-hidden" }, `Grades of the collection of ${when(run.completedAt)}, attempt ${book.attempt}`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Student"), h("th", { scope: "col" }, "State"),
        h("th", { scope: "col" }, "Score"), h("th", { scope: "col" }, "Feedback"))),
      h("tbody", {}, book.items.map((it) => gradeRow(it))));
  }
  return h("section", { "aria-labelledby": "grades-title", id: "grades", "data-run": run.id, "data-attempt": book ? String(book.attempt) : null },
    h("h2", { id: "grades-title" }, "Grades"), summary, actions, body);
}

// gradeRow is one student's row of the gradebook. The grader's feedback,
// the reason its grading failed and its tests' names and messages go in
// as text.
function gradeRow(it) {
  const graded = it.state === "graded" && it.score != null && it.maxScore != null;
  const text = it.state === "grading failed" ? it.reason : it.feedback;
  const tests = it.tests || [];
  const state = it.state === "grading failed" ? "failed" : it.state;
  return h("tr", { "data-grade": it.student },
    h("td", { "data-label": "Student" }, it.student),
    h("td", { "data-label": "State" }, h("span", { class: "grade-" + state, "data-grade-state": it.state }, GRADE_STATES[it.state] || it.state)),
    h("td", { "data-label": "Score" }, graded ? `${points(it.score)} / ${points(it.maxScore)}` : h("span", { class: "muted" }, "—")),
    h("td", { "data-label": "Feedback" },
      text ? textBlock("div", it.state === "grading failed" ? "feedback error-text" : "feedback", text) : "",
      tests.length ? h("details", { class: "tests" },
        h("summary", { id: "tests-" + it.student }, `${tests.length} test${tests.length === 1 ? "" : "s"}`),
        h("ul", { class: "tests" }, tests.map((t) => h("li", {},
          textBlock("span", "test-name", t.name),
          h("span", { class: t.score >= t.maxScore ? "ok-text" : "warn" }, `${points(t.score)} / ${points(t.maxScore)}`),
          t.message ? textBlock("span", "feedback", t.message) : "")))) : "",
      !text && !tests.length ? h("span", { class: "muted" }, "—") : ""));
}

// ---------- students' sign-in links ----------

// linksOf returns the links of a class made on this page that still sign
// in: made in the class's current Up, not expired, for a student still in
// the class.
function linksOf(cl) {
  return current(cl, issuedLinks.get(cl.id)?.items) || new Map();
}

// current drops from links (by student) those that expired, or that were
// made for another sitting than the student's now (another Up, or another
// late hand-in); nothing when links is.
function current(cl, links) {
  if (!links) return null;
  const now = Date.now();
  for (const [sid, l] of links) {
    if (Date.parse(l.expiresAt) <= now || l.since !== sinceOf(cl, sid)) links.delete(sid);
  }
  return links;
}

// sinceOf is what sid's links are bound to, as api.Class.SignInSince: the
// class's Up, which extra time carries past its Down, or a late hand-in's
// request; null without a sandbox to sign in to.
function sinceOf(cl, sid) {
  if (!cl.spec.students.includes(sid)) return null;
  if (cl.desiredPhase === "Up" || extended(cl, sid)) return cl.upSince || null;
  return lateRuns(cl, sid) ? cl.perStudent[sid].lateAt : null;
}

// loadLiveLinks asks the API whose own links still sign in to the class
// (a teacher's links to help are left out: issuing the students' links
// does not end them), and keeps the answer for the page. It returns the
// students' live links by student, or null when the API could not say.
async function loadLiveLinks(cl, signal) {
  if (!cl.spec.students.some((sid) => signable(cl, sid))) {
    liveLinks.delete(cl.id);
    return new Map();
  }
  try {
    const { items } = await api("GET", `/api/v1/classes/${encodeURIComponent(cl.id)}/links`, { signal });
    const own = new Map(items.filter((l) => l.holder === l.student).map((l) => [l.student, { ...l, since: sinceOf(cl, l.student) }]));
    liveLinks.set(cl.id, { items: own });
    return own;
  } catch (ex) {
    if (ex.name === "AbortError") throw ex;
    liveLinks.delete(cl.id);
    return null;
  }
}

// liveOf returns the students' live links of a class as last loaded, less
// those that expired since or whose student left the class; null when they
// are not known.
function liveOf(cl) {
  return current(cl, liveLinks.get(cl.id)?.items);
}

// issueLinks asks for new sign-in links: the students' own (which ends
// their earlier ones), or with teacher the signed-in user's, to help.
// After the students' own it asks again whose links still sign in.
async function issueLinks(cl, students, teacher, signal) {
  const body = {};
  if (students) body.students = students;
  if (teacher) body.teacher = true;
  const { items } = await api("POST", `/api/v1/classes/${encodeURIComponent(cl.id)}/links`, { body, signal });
  if (!teacher) {
    let kept = issuedLinks.get(cl.id);
    if (!kept) issuedLinks.set(cl.id, kept = { items: new Map() });
    for (const l of items) kept.items.set(l.student, { ...l, since: sinceOf(cl, l.student) });
    await loadLiveLinks(cl, signal);
  }
  return items;
}

// makeAllLinks makes a link for every student of the class without one on
// this page. When that ends links made earlier (on another page, before a
// reload, or with homeroomctl), a confirmation first names whose: those
// students are signed out until they open their new ones. It returns
// whether links were made.
async function makeAllLinks(cl, signal) {
  const have = linksOf(cl);
  const missing = cl.spec.students.filter((sid) => !have.has(sid));
  if (missing.length === 0) return true;
  const n = missing.length, all = n === cl.spec.students.length;
  // Asked now rather than taken from the page: a link may have been made
  // since, elsewhere.
  const live = await loadLiveLinks(cl, signal);
  const ending = live ? missing.filter((sid) => live.has(sid)) : missing;
  if (ending.length > 0) {
    const k = ending.length, who = andList(ending);
    const text = !live
      ? "Each student gets a new personal link to their sandbox. A link made for them earlier (on another page, " +
        "before a reload, or with homeroomctl) stops working, and a student signed in with it is signed out until they " +
        "open the new one."
      : (k === 1
        ? `${who} already has a sign-in link (issued ${whenNear(live.get(who).issuedAt)} by ${live.get(who).issuedBy}). ` +
          `It stops working, and ${who} is signed out of their sandbox until they open the new one.`
        : `${who} already have sign-in links. Theirs stop working, and they are signed out of their sandboxes until they open the new ones.`) +
        (k < n ? ` The other ${n - k} get their first link.` : "") + " Their work in the sandboxes stays.";
    const ok = await confirmDialog(`Make sign-in links for ${all ? "all " : ""}${n} student${n === 1 ? "" : "s"}?`,
      text + " The links are shown only on this page, until you reload it or sign out.",
      k === 1 ? `Make links and sign ${who} out` : "Make links and sign them out");
    if (!ok) return false;
  }
  await issueLinks(cl, all ? undefined : missing, false, signal);
  show("ok", `Sign-in links for ${n} student${n === 1 ? "" : "s"} were made. Copy each one, or print the link sheet.`);
  return true;
}

// linkControls are the sign-in links' buttons above the students table and
// each student's link in it, while the class is Up.
function linkControls(cl, signal, redraw) {
  const have = linksOf(cl);
  const live = liveOf(cl);
  const busy = (fn) => async (e) => {
    const btn = e.currentTarget;
    btn.disabled = true;
    try {
      await fn(btn);
    } catch (ex) {
      if (ex.name !== "AbortError") show("error", ex.message);
    } finally {
      btn.disabled = false;
    }
  };
  const focusLater = (id) => document.getElementById(id)?.focus();

  // cancelled draws the page again after a confirmation was turned down
  // (what it asked may have changed what the page knows) and puts the focus
  // back on the button used.
  const cancelled = (btn) => { redraw(); focusLater(btn.id); };

  const makeAll = busy(async (btn) => {
    if (!await makeAllLinks(cl, signal)) { cancelled(btn); return; }
    redraw();
    focusLater("link-" + cl.spec.students[0]);
  });
  const print = busy(async (btn) => {
    if (linksOf(cl).size === 0 && !await makeAllLinks(cl, signal)) { cancelled(btn); return; }
    printSheet = true;
    location.hash = `#/classes/${cl.id}/sheet`;
  });
  // A student without a live link gets one at once: nobody is signed out.
  const renew = (sid) => busy(async (btn) => {
    const fresh = await loadLiveLinks(cl, signal);
    const cur = fresh?.get(sid);
    if (!fresh || cur) {
      const ok = await confirmDialog(`Make a new link for ${sid}?`,
        (cur ? `${sid}'s current link (issued ${whenNear(cur.issuedAt)} by ${cur.issuedBy})` : `Any earlier link of ${sid}`) +
        ` stops working, and ${sid} is signed out of their sandbox until they open the new one. ` +
        "Their work in the sandbox stays.", `Make a new link and sign ${sid} out`);
      if (!ok) { cancelled(btn); return; }
    }
    await issueLinks(cl, [sid], false, signal);
    show("ok", cur || !fresh
      ? `${sid} has a new sign-in link; the old one no longer works. Give them the new one.`
      : `${sid} has a sign-in link. Give it to them.`);
    redraw();
    focusLater("copy-" + sid);
  });
  const help = (sid) => busy(async () => {
    // The tab is opened now, while the click still counts as one, and
    // sent to the link once it is made. It gets no hold on this page.
    const tab = window.open("", "_blank");
    if (tab) {
      tab.opener = null;
      tab.document.title = `${sid}'s sandbox`;
      if (tab.document.body) tab.document.body.textContent = `Opening ${sid}'s sandbox…`;
    }
    try {
      const [l] = await issueLinks(cl, [sid], true, signal);
      if (tab) {
        tab.location.replace(l.url);
        show("info", `${sid}'s sandbox opened in a new tab, signed in as you. Your visit is recorded.`);
      } else {
        show("error", `Your browser kept the new tab from opening. Open ${sid}'s sandbox with this link: ${l.url}`);
      }
    } catch (ex) {
      tab?.close();
      throw ex;
    }
  });
  const copy = (sid, url) => async () => {
    const field = document.getElementById("link-" + sid);
    field?.select();
    try {
      await navigator.clipboard.writeText(url);
      show("ok", `${sid}'s link was copied.`);
    } catch {
      field?.focus();
      show("info", "Press Ctrl+C (or ⌘C) to copy the selected link.");
    }
  };

  const toolbar = h("div", { id: "link-tools" },
    h("div", { class: "actions" },
      h("button", { type: "button", id: "links", onclick: makeAll, "aria-describedby": "links-hint" }, "Students' links"),
      h("button", { type: "button", id: "print-sheet", class: "secondary", onclick: print, "aria-describedby": "links-hint" }, "Print link sheet")),
    h("p", { class: "hint", id: "links-hint" },
      "Students sign in to their sandboxes with personal links. Homeroom shows a link only when it makes it, on this page " +
      "until you reload it or sign out; the table still says who has a link and until when. Making a new link for a " +
      "student who has one signs them out until they open it. Open (help) signs you in to a student's sandbox in a new tab."));

  // Each student's cell: their link when it was made on this page; else
  // whether they have one that still signs in (issued when, by whom, valid
  // until when), or none, as last asked.
  const cell = (sid, endpoint) => {
    const l = have.get(sid);
    const cur = l ? null : live?.get(sid);
    const host = (endpoint || "").replace(/^https?:\/\//, "").replace(/\/$/, "");
    const state = l ? "shown" : cur ? "live" : live ? "none" : "unknown";
    return h("div", { class: "signin", "data-link": state },
      l ? h("input", { id: "link-" + sid, class: "link-url", readonly: true, value: l.url, spellcheck: "false",
        "aria-label": `${sid}'s sign-in link`, "aria-describedby": "valid-" + sid, onfocus: (e) => e.target.select() })
        : host ? h("span", { class: "muted" }, host) : null,
      h("p", { class: "hint", id: "valid-" + sid },
        l ? ["Valid until ", moment(l.expiresAt)]
          : cur ? ["Link issued ", moment(cur.issuedAt), ` by ${cur.issuedBy}, valid until `, moment(cur.expiresAt)]
            : live ? "No valid link" : "No link on this page"),
      h("div", { class: "row-actions" },
        l ? h("button", { type: "button", class: "secondary small", id: "copy-" + sid, "aria-label": `Copy ${sid}'s link`, onclick: copy(sid, l.url) }, "Copy") : null,
        h("button", { type: "button", class: "link", id: "renew-" + sid, "aria-label": `New link for ${sid}`, "aria-describedby": "valid-" + sid, onclick: renew(sid) }, "New link"),
        h("button", { type: "button", class: "link", id: "help-" + sid, "aria-label": `Open (help) ${sid}'s sandbox in a new tab`, onclick: help(sid) }, "Open (help)")));
  };
  return { toolbar, cell };
}

// qrSVG draws text as a QR code (error correction M, a quiet zone of four
// modules) in SVG, one path of dark squares, which prints sharp at any size.
function qrSVG(text, label) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount(), quiet = 4, size = n + 2 * quiet;
  let d = "";
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
    }
  }
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ viewBox: `0 0 ${size} ${size}`, class: "qr", role: "img", "aria-label": label,
    "shape-rendering": "crispEdges", "data-modules": n })) svg.setAttribute(k, String(v));
  const bg = document.createElementNS(ns, "rect");
  for (const [k, v] of Object.entries({ width: size, height: size, fill: "#fff" })) bg.setAttribute(k, String(v));
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(bg, path);
  return svg;
}

// sheetPage is the link sheet: one card per student with the class, the
// student's id, their link as text and as a QR code, laid out to be printed
// and cut (six to a page). It shows only links made on this page.
async function sheetPage(id, signal) {
  const title = `Link sheet: ${id}`;
  const wantPrint = printSheet;
  printSheet = false;
  page(title, h("p", { class: "muted" }, "Loading…"));
  let cl;
  try {
    cl = await api("GET", "/api/v1/classes/" + encodeURIComponent(id), { signal });
  } catch (ex) {
    if (ex.name === "AbortError") return;
    page(title, h("p", { class: "error-text" }, ex.message), h("a", { href: "#/classes" }, "Back to the classes"));
    return;
  }
  const have = linksOf(cl);
  const back = h("a", { class: "button secondary", href: "#/classes/" + id }, "Back to the class");
  if (have.size === 0) {
    page(title, h("p", {}, cl.desiredPhase === "Up"
      ? "No sign-in links were made on this page. Homeroom shows a link only when it makes it, so make them on the class's page (Students' links), then print."
      : `${id} is not up: links sign students in only while the class is up.`), h("div", { class: "actions" }, back));
    return;
  }
  const students = cl.spec.students.filter((sid) => have.has(sid));
  const without = cl.spec.students.filter((sid) => !have.has(sid));
  const cards = students.map((sid) => {
    const l = have.get(sid);
    return h("article", { class: "link-card", "data-student": sid, "aria-labelledby": "card-" + sid },
      h("p", { class: "card-kicker" }, `Homeroom · class ${cl.id} (${cl.spec.subject})`),
      h("h2", { id: "card-" + sid }, sid),
      qrSVG(l.url, `QR code of ${sid}'s sign-in link`),
      h("p", { class: "card-url" }, l.url),
      h("p", { class: "card-note" }, `Open the link or scan the code to sign in to your sandbox. Valid until ${when(l.expiresAt)}. Keep it to yourself.`));
  });
  const PER_PAGE = 6;
  const pages = [];
  for (let i = 0; i < cards.length; i += PER_PAGE) pages.push(h("div", { class: "sheet-page" }, cards.slice(i, i + PER_PAGE)));
  page(title,
    h("div", { class: "no-print" },
      h("p", { class: "muted" }, `${students.length} card${students.length === 1 ? "" : "s"}, ${PER_PAGE} to a page: print them and cut along the dashed lines.`),
      without.length ? h("p", { class: "error-text", id: "sheet-missing" }, `No link on this page for: ${without.join(", ")}. Make theirs on the class's page first.`) : null,
      h("div", { class: "actions" }, h("button", { type: "button", id: "print", onclick: () => window.print() }, "Print"), back)),
    h("div", { class: "sheet", id: "sheet" }, pages));
  // After this task, so that the page is drawn behind the print dialog.
  if (wantPrint) setTimeout(() => { if (!signal.aborted) window.print(); }, 0);
}

// download fetches a collected file with the token (a plain link could not
// send it) and hands it to the browser as a file.
async function download(classId, f, signal) {
  const path = f.path.split("/").map(encodeURIComponent).join("/");
  try {
    const blob = await api("GET", `/api/v1/classes/${encodeURIComponent(classId)}/artifacts/${encodeURIComponent(f.student)}/${path}?run=${encodeURIComponent(f.runId)}`, { signal, blob: true });
    saveBlob(blob, `${f.student}-${f.path.split("/").pop()}`);
  } catch (ex) {
    if (ex.name !== "AbortError") show("error", "The file could not be downloaded: " + ex.message);
  }
}

// downloadRun fetches a whole collection as one zip, as download does one
// file. The server breaks the download off if a file is not what was
// collected; nothing is saved then.
async function downloadRun(classId, runId, signal, redraw) {
  const key = classId + "/" + runId;
  downloading.add(key);
  redraw();
  try {
    const blob = await api("GET", `/api/v1/classes/${encodeURIComponent(classId)}/runs/${encodeURIComponent(runId)}/archive?format=zip`, { signal, blob: true });
    saveBlob(blob, `${classId}-${runId}.zip`);
  } catch (ex) {
    if (ex.name === "AbortError") return;
    show("error", "The collection could not be downloaded: " +
      (ex instanceof APIError ? ex.message : "the download broke off before the end, and nothing was saved. Try again; if it happens again, tell your administrator."));
  } finally {
    downloading.delete(key);
    if (!signal.aborted) {
      // The busy button could not keep the focus: give it back.
      const lost = !document.activeElement || document.activeElement === document.body;
      redraw();
      if (lost) document.getElementById("download-" + runId)?.focus();
    }
  }
}

// saveBlob hands a blob to the browser as a file named name.
function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// ---------- forms ----------

// removeButton removes one record after a confirmation that says what
// removing it means.
function removeButton(what, name, path, meaning, signal, redraw) {
  return h("button", { type: "button", class: "link", "data-remove": path, "aria-label": `Remove ${what} ${name}`, onclick: async (e) => {
    const btn = e.currentTarget;
    const ok = await confirmDialog(`Remove ${what} ${name}?`, meaning, "Remove");
    if (!ok) { btn.focus(); return; }
    try {
      await api("DELETE", path, { signal });
      show("ok", `${what.charAt(0).toUpperCase() + what.slice(1)} ${name} was removed.`);
      await redraw();
    } catch (ex) {
      if (ex.name !== "AbortError") { show("error", ex.message); btn.focus(); }
    }
  } }, "Remove");
}

// formField is a control labelled for the element of id name, with its
// hint and its error line, which the control is described by.
function formField(name, label, control, hint) {
  const err = h("p", { class: "field-error", id: name + "-error", "aria-live": "polite" });
  control.setAttribute("aria-describedby", [hint ? name + "-hint" : "", name + "-error"].join(" ").trim());
  const el = h("div", {}, h("label", { for: name }, label), control, hint ? h("p", { class: "hint", id: name + "-hint" }, hint) : "", err);
  return { el, err, control };
}

// submitting runs a form's action with its button disabled, and shows a
// refusal under the form.
function submitting(form, errEl, action) {
  return async (e) => {
    e.preventDefault();
    errEl.textContent = "";
    const btn = e.submitter || form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      await action(btn);
    } catch (ex) {
      if (ex.name !== "AbortError") errEl.textContent = ex.message;
    } finally {
      btn.disabled = false;
    }
  };
}

// ---------- create or edit a class ----------

// parseStudents reads a roster pasted one per line. Blank lines and lines
// starting with # are skipped; every bad or repeated id is reported by line.
function parseStudents(text) {
  const students = [], errors = [], seen = new Map();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    if (!ID_PATTERN.test(line)) errors.push(`Line ${i + 1}: "${line}" is not a student id (lowercase letters, digits and "-", starting with a letter or digit).`);
    else if (seen.has(line)) errors.push(`Line ${i + 1}: ${line} is already on line ${seen.get(line)}.`);
    else { seen.set(line, i + 1); students.push(line); }
  });
  return { students, errors };
}

// rosterFromCSV takes the students of a CSV file: the "student" column when
// the header names one (only the rows of this class when it has a "class"
// column, as in the school's roster files), otherwise the first column.
function rosterFromCSV(text, classId) {
  const rows = text.split(/\r?\n/).filter((l) => l.trim() && !l.trim().startsWith("#"))
    .map((l) => l.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1").trim()));
  if (rows.length === 0) return [];
  const header = rows[0].map((c) => c.toLowerCase());
  const si = header.indexOf("student");
  if (si < 0) return rows.map((r) => r[0]);
  const ci = header.indexOf("class");
  return rows.slice(1).filter((r) => ci < 0 || !classId || r[ci] === classId).map((r) => r[si] ?? "");
}

async function templatesList(signal) {
  if (!session.templates) session.templates = (await api("GET", "/api/v1/templates", { signal })).items;
  return session.templates;
}

function templateSummary(t) {
  if (!t) return "";
  const parts = [t.description, `${t.cpus} CPU`, `${t.memoryMiB} MiB memory`, t.internet ? "internet access" : "no internet access"];
  return parts.filter(Boolean).join(" · ");
}

async function classFormPage(id, signal) {
  const editing = !!id;
  page(editing ? `Edit ${id}` : "New class", h("p", { class: "muted" }, "Loading…"));
  let cl = null, templates = [], subjects = [];
  try {
    [templates, subjects, cl] = await Promise.all([
      templatesList(signal),
      api("GET", "/api/v1/subjects", { signal }).then((r) => r.items || []).catch(() => []),
      editing ? api("GET", "/api/v1/classes/" + encodeURIComponent(id), { signal }) : null,
    ]);
  } catch (ex) {
    if (ex.name === "AbortError") return;
    page(editing ? `Edit ${id}` : "New class", h("p", { class: "error-text" }, ex.message));
    return;
  }
  const me = session.me;

  const idInput = h("input", { id: "class-id", name: "id", required: true, value: id || "", readonly: editing, autocomplete: "off", spellcheck: "false", placeholder: "cs101-a" });
  // A teacher picks one of their subjects; an admin may name any.
  const subjectNames = me.role === "teacher" ? me.subjects : subjects.map((s) => s.id);
  const subjectInput = me.role === "teacher"
    ? h("select", { id: "subject", required: true }, subjectNames.map((s) => h("option", { value: s, selected: cl?.spec.subject === s }, s)))
    : h("input", { id: "subject", required: true, list: "subject-list", value: cl?.spec.subject || "", autocomplete: "off" });
  const templateSelect = h("select", { id: "template", required: true },
    templates.map((t) => h("option", { value: t.name, selected: cl ? cl.spec.template === t.name : false }, t.name)));
  const templateHint = h("p", { class: "hint", id: "template-summary" });
  const showTemplate = () => { templateHint.textContent = templateSummary(templates.find((t) => t.name === templateSelect.value)); };
  templateSelect.addEventListener("change", showTemplate);
  showTemplate();

  const studentsArea = h("textarea", { id: "students", name: "students", rows: 10, spellcheck: "false", autocapitalize: "none", placeholder: "alice\nbob\ncarol" });
  studentsArea.value = cl ? cl.spec.students.join("\n") : "";
  const count = h("p", { class: "hint", "aria-live": "polite" });
  const recount = () => { const { students } = parseStudents(studentsArea.value); count.textContent = `${students.length} student${students.length === 1 ? "" : "s"}`; };
  studentsArea.addEventListener("input", recount);
  recount();
  const csvInput = h("input", { id: "csv", type: "file", accept: ".csv,text/csv,text/plain" });
  csvInput.addEventListener("change", async () => {
    const file = csvInput.files[0];
    if (!file) return;
    if (file.size > 1 << 20) { studentsField.err.textContent = "That file is larger than 1 MiB; is it the right one?"; return; }
    const names = rosterFromCSV(await file.text(), idInput.value.trim());
    studentsArea.value = names.join("\n");
    recount();
    studentsField.err.textContent = names.length ? "" : "No students were found in that file.";
  });
  const rosterNote = h("p", { class: "hint", id: "roster-note" });
  const useRoster = h("button", { type: "button", class: "secondary", id: "use-roster", hidden: true }, "Use the official roster");
  let roster = null;
  const lookupRoster = async () => {
    const cid = idInput.value.trim();
    roster = null;
    useRoster.hidden = true;
    rosterNote.textContent = "";
    if (!ID_PATTERN.test(cid)) return;
    try {
      roster = await api("GET", "/api/v1/rosters/" + encodeURIComponent(cid), { signal });
      rosterNote.textContent = `The official roster of ${cid} (${roster.subject}) has ${roster.students.length} students; you may bring up all of them or some.`;
      useRoster.hidden = false;
      if (me.role !== "teacher" && !subjectInput.value) subjectInput.value = roster.subject;
      if (me.role === "teacher" && subjectNames.includes(roster.subject)) subjectInput.value = roster.subject;
    } catch (ex) {
      if (ex.status === 404 && me.role === "teacher") rosterNote.textContent = `No official roster is registered for ${cid}; ask an administrator to register the class.`;
    }
  };
  useRoster.addEventListener("click", () => { if (roster) { studentsArea.value = roster.students.join("\n"); recount(); } });
  idInput.addEventListener("change", lookupRoster);

  const ttl = cl?.spec.ttlSeconds || 0;
  const ttlInput = h("input", { id: "ttl", type: "number", min: "0", step: "any", inputmode: "decimal", value: ttl ? (ttl % 3600 === 0 ? ttl / 3600 : ttl / 60) : "" });
  const ttlUnit = h("select", { id: "ttl-unit", "aria-label": "Unit of the time limit" },
    h("option", { value: "3600", selected: !ttl || ttl % 3600 === 0 }, "hours"),
    h("option", { value: "60", selected: ttl && ttl % 3600 !== 0 }, "minutes"));

  const idField = formField("class-id", "Class id", idInput, editing ? "A class keeps its id." : "Lowercase letters, digits and \"-\", as registered by the school, e.g. cs101-a.");
  const subjectField = formField("subject", "Subject", subjectInput);
  const templateField = formField("template", "Template", templateSelect);
  templateField.el.insertBefore(templateHint, templateField.err);
  const studentsField = formField("students", "Students", studentsArea, "One student id per line. Paste them, or load a CSV file below.");
  studentsField.el.insertBefore(count, studentsField.err);
  const ttlField = formField("ttl", "Time limit", h("div", { class: "row" }, ttlInput, ttlUnit), "Homeroom collects the work and takes the class down when it runs out. Leave empty for none.");
  ttlField.el.querySelector("label").setAttribute("for", "ttl");
  ttlInput.setAttribute("aria-describedby", "ttl-hint ttl-error");

  const tt = timetableEditor(cl?.spec.schedule || null);
  const readTimetable = tt.read;

  const formErr = h("p", { class: "field-error", role: "alert", id: "form-error" });
  const form = h("form", { class: "stack card", novalidate: true },
  idField.el, rosterNote, useRoster, subjectField.el, templateField.el, studentsField.el,
  h("div", {}, h("label", { for: "csv" }, "Roster file (CSV)"), csvInput,
    h("p", { class: "hint" }, "A column named student, or one id per line; with a class column, only this class's rows are taken.")),
  ttlField.el, tt.el, formErr,
  h("div", { class: "actions" }, h("button", { type: "submit" }, editing ? "Save" : "Create class"),
    h("a", { class: "button secondary", href: editing ? "#/classes/" + id : "#/classes" }, "Cancel")));
  form.addEventListener("submit", submitting(form, formErr, async () => {
    for (const f of [idField, subjectField, templateField, studentsField, ttlField]) f.err.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const cid = idInput.value.trim(), subject = subjectInput.value.trim();
    const { students, errors } = parseStudents(studentsArea.value);
    const bad = [];
    if (!ID_PATTERN.test(cid)) bad.push([idField, idInput, "A class id is lowercase letters, digits and \"-\", starting with a letter or digit, at most 63 characters."]);
    if (!ID_PATTERN.test(subject)) bad.push([subjectField, subjectInput, "Choose the class's subject."]);
    if (errors.length) bad.push([studentsField, studentsArea, errors.slice(0, 10).join("\n") + (errors.length > 10 ? `\n…and ${errors.length - 10} more.` : "")]);
    else if (students.length === 0) bad.push([studentsField, studentsArea, "Add at least one student."]);
    const amount = ttlInput.value.trim() === "" ? 0 : Number(ttlInput.value);
    if (!Number.isFinite(amount) || amount < 0) bad.push([ttlField, ttlInput, "The time limit is a number of hours or minutes, or empty for none."]);
    const ttlSeconds = Math.round(amount * Number(ttlUnit.value));
    if (bad.length) {
      for (const [f, el, msg] of bad) { f.err.textContent = msg; el.setAttribute("aria-invalid", "true"); }
      bad[0][1].focus();
      return;
    }
    const spec = { subject, template: templateSelect.value, students };
    if (ttlSeconds > 0) spec.ttlSeconds = ttlSeconds;
    const schedule = readTimetable();
    if (schedule) spec.schedule = schedule;
    if (!editing) await api("PUT", "/api/v1/classes/" + encodeURIComponent(cid), { body: spec, signal });
    else if (!(await saveIfUnchanged(cid, spec, cl.resourceVersion, signal))) {
      // Someone changed the class since this form loaded it: nothing was
      // saved. Reloading shows the class as it is now.
      formErr.replaceChildren(
        "This class was changed since you opened this form (by someone else, or by Homeroom as it updated the class's status), so nothing was saved. Reload to see the class as it is now, then make your change again. ",
        h("button", { type: "button", class: "secondary", id: "reload-class", onclick: () => route() }, "Reload"));
      formErr.querySelector("button").focus();
      return;
    }
    show("ok", editing ? `Class ${cid} was saved.` : `Class ${cid} was created. Bring it up when the lesson starts.`);
    location.hash = "#/classes/" + cid;
  }));
  const datalist = h("datalist", { id: "subject-list" }, subjectNames.map((s) => h("option", { value: s })));
  page(editing ? `Edit ${id}` : "New class", form, datalist);
  if (editing) lookupRoster(); else idInput.focus();
}

const WEEKDAYS = [["mon", "Mon"], ["tue", "Tue"], ["wed", "Wed"], ["thu", "Thu"], ["fri", "Fri"], ["sat", "Sat"], ["sun", "Sun"]];

// timetableEditor edits a class's weekly lessons, time zone and lead. The
// timetable's one-off sessions and dates without lessons, which
// homeroomctl schedule sets, are kept as they are. read gives the
// timetable to save, or null for none; the server checks it.
function timetableEditor(sch) {
  const zone = h("input", { id: "timezone", autocomplete: "off", spellcheck: "false",
    value: sch?.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
  const ready = h("input", { id: "ready-before", type: "number", min: "0", max: "60", step: "1", inputmode: "numeric",
    value: String(Math.round((sch?.readyBeforeSeconds ?? 300) / 60)) });
  const rows = h("div", { class: "stack", id: "lessons" });
  const addRow = (w) => {
    const n = rows.children.length + 1;
    const row = h("fieldset", { class: "grants lesson" },
      h("legend", {}, `Lesson ${n}`),
      WEEKDAYS.map(([d, label]) => h("label", {}, h("input", { type: "checkbox", value: d, checked: !!w?.days.includes(d) }), " " + label)),
      h("label", {}, "from ", h("input", { type: "time", class: "lesson-start", value: w?.start || "09:00", "aria-label": `Lesson ${n} starts` })),
      h("label", {}, "to ", h("input", { type: "time", class: "lesson-end", value: w?.end || "10:30", "aria-label": `Lesson ${n} ends` })),
      h("button", { type: "button", class: "link", onclick: () => row.remove() }, "Remove"));
    rows.append(row);
    return row;
  };
  for (const w of sch?.weekly || []) addRow(w);
  const kept = (sch?.sessions?.length || 0) + (sch?.except?.length || 0);
  const el = h("fieldset", { class: "stack", id: "timetable-editor" },
    h("legend", {}, "Timetable"),
    h("p", { class: "hint" }, "Homeroom brings the class up before each lesson and takes it down at its end, collecting the work first. Leave without lessons for none."),
    rows,
    h("button", { type: "button", class: "secondary", id: "add-lesson", onclick: () => addRow(null).querySelector("input").focus() }, "Add a weekly lesson"),
    formField("timezone", "Time zone", zone, "Lessons keep their time of day across daylight saving changes, e.g. Europe/Berlin.").el,
    formField("ready-before", "Ready before the start (minutes)", ready).el,
    kept ? h("p", { class: "hint" }, `This timetable also has ${sch.sessions?.length || 0} one-off session(s) and ${sch.except?.length || 0} date(s) without lessons; they are kept.`) : null);
  const read = () => {
    const weekly = [...rows.querySelectorAll("fieldset.lesson")].map((r) => ({
      days: [...r.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value),
      start: r.querySelector(".lesson-start").value, end: r.querySelector(".lesson-end").value,
    })).filter((w) => w.days.length);
    if (!weekly.length && !kept) return null;
    const out = { timezone: zone.value.trim(), readyBeforeSeconds: Math.round(Number(ready.value || 0) * 60) };
    if (weekly.length) out.weekly = weekly;
    if (sch?.sessions?.length) out.sessions = sch.sessions;
    if (sch?.except?.length) out.except = sch.except;
    return out;
  };
  return { el, read };
}

// saveIfUnchanged writes an edited class's spec only if the class is still
// at version, the resourceVersion the form was loaded with (If-Match), so
// that nobody's change made since is overwritten. It returns false when the
// server refused because the class changed (412; nothing was written), and
// throws an APIError, as api does, for any other refusal.
async function saveIfUnchanged(id, spec, version, signal) {
  const headers = { Accept: "application/json", "Content-Type": "application/json", "If-Match": `"${version}"` };
  if (session.token) headers.Authorization = "Bearer " + session.token;
  let resp;
  try {
    resp = await fetch("/api/v1/classes/" + encodeURIComponent(id), { method: "PUT", headers, signal, body: JSON.stringify(spec) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new APIError(0, "unreachable", "Homeroom's server could not be reached. Check the connection and try again; nothing was changed.");
  }
  if (resp.ok) return true;
  if (resp.status === 412) return false;
  let e = {};
  try { e = (await resp.json()).error || {}; } catch { /* not JSON */ }
  if (resp.status === 401) signOut("Your sign-in is no longer valid (the token was revoked or has expired). Sign in again.");
  const err = new APIError(resp.status, e.code || "", plainWords(resp.status, e.message || "", e.code || ""));
  err.details = e.details || [];
  throw err;
}

// ---------- the school's records (admins) ----------

// schoolPage keeps what the school decides and teachers only use: subjects,
// teachers and their tokens, and the registered classes with their official
// rosters. Every change goes through the API, which checks it again.
async function schoolPage(signal) {
  page("School records", h("p", { class: "muted" }, "Loading…"));
  let subjects, users, rosters;
  try {
    [subjects, users, rosters] = await Promise.all(["subjects", "users", "rosters"].map((what) =>
      api("GET", "/api/v1/" + what, { signal }).then((r) => r.items)));
  } catch (ex) {
    if (ex.name === "AbortError") return;
    page("School records", h("p", { class: "error-text" }, ex.message));
    return;
  }
  // After a change the page is drawn again from the API; the notice says
  // what happened and the focus goes back to the form that was used.
  const redraw = async (focusId) => {
    await schoolPage(signal);
    const el = document.getElementById(focusId);
    el?.closest("details")?.setAttribute("open", "");
    el?.focus();
  };
  page("School records",
    h("p", { class: "muted" }, "Subjects, teachers and registered classes. Teachers may bring up only the registered classes of their subjects, with students on the official roster."),
    subjectsSection(subjects, signal, redraw),
    teachersSection(users, subjects, signal, redraw),
    rostersSection(rosters, signal, redraw));
}


function subjectsSection(subjects, signal, redraw) {
  const idF = formField("new-subject", "Subject id", h("input", { id: "new-subject", required: true, autocomplete: "off", spellcheck: "false", placeholder: "cs101" }), "Lowercase letters, digits and \"-\".");
  const titleF = formField("new-subject-title", "Title", h("input", { id: "new-subject-title", autocomplete: "off", placeholder: "Introduction to programming" }));
  const err = h("p", { class: "field-error", role: "alert", id: "subject-form-error" });
  const form = h("form", { class: "stack card", novalidate: true }, idF.el, titleF.el, err,
    h("div", {}, h("button", { type: "submit" }, "Add subject")));
  form.addEventListener("submit", submitting(form, err, async () => {
    const id = idF.control.value.trim();
    if (!ID_PATTERN.test(id)) { idF.err.textContent = "A subject id is lowercase letters, digits and \"-\", starting with a letter or digit."; idF.control.focus(); return; }
    idF.err.textContent = "";
    await api("PUT", "/api/v1/subjects/" + encodeURIComponent(id), { body: { title: titleF.control.value.trim() }, signal });
    show("ok", `Subject ${id} was saved.`);
    await redraw("new-subject");
  }));
  const table = subjects.length === 0 ? h("p", { class: "muted" }, "No subjects yet.") :
    h("table", { id: "subjects" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Subject"), h("th", { scope: "col" }, "Title"), h("th", { scope: "col" }, "Teachers"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, subjects.map((s) => h("tr", { "data-subject": s.id },
        h("td", { "data-label": "Subject" }, s.id),
        h("td", { "data-label": "Title" }, s.title || ""),
        h("td", { "data-label": "Teachers" }, (s.teachers || []).join(", ") || h("span", { class: "muted" }, "none")),
        h("td", {}, removeButton("subject", s.id, "/api/v1/subjects/" + encodeURIComponent(s.id),
          "Only a subject without registered classes and teachers can be removed.", signal, redraw))))));
  return h("section", { "aria-labelledby": "subjects-title" }, h("h2", { id: "subjects-title" }, "Subjects"), table,
    h("details", {}, h("summary", {}, "Add a subject"), form));
}

function teachersSection(users, subjects, signal, redraw) {
  const nameF = formField("new-teacher", "Name", h("input", { id: "new-teacher", required: true, autocomplete: "off", spellcheck: "false", placeholder: "ada" }), "Lowercase letters, digits and \"-\". Saving an existing name replaces their subjects.");
  const boxes = subjects.map((s) => h("input", { type: "checkbox", value: s.id, id: "grant-" + s.id }));
  const grants = h("fieldset", { class: "grants" }, h("legend", {}, "Subjects"),
    subjects.length ? boxes.map((b) => h("label", { class: "check", for: b.id }, b, b.value)) : h("p", { class: "hint" }, "Add a subject first."));
  const err = h("p", { class: "field-error", role: "alert", id: "teacher-form-error" });
  const form = h("form", { class: "stack card", novalidate: true }, nameF.el, grants, err,
    h("div", {}, h("button", { type: "submit" }, "Save teacher")));
  form.addEventListener("submit", submitting(form, err, async () => {
    const name = nameF.control.value.trim();
    if (!ID_PATTERN.test(name)) { nameF.err.textContent = "A name is lowercase letters, digits and \"-\", starting with a letter or digit."; nameF.control.focus(); return; }
    nameF.err.textContent = "";
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    await api("PUT", "/api/v1/users/" + encodeURIComponent(name), { body: { role: "teacher", subjects: chosen }, signal });
    show("ok", `Teacher ${name} was saved. Issue them a token to sign in with.`);
    await redraw("new-teacher");
  }));

  const issued = h("div", { id: "issued", class: "card issued", hidden: true });
  const issue = (name) => async (e) => {
    const btn = e.currentTarget;
    btn.disabled = true;
    try {
      const tok = await api("POST", `/api/v1/users/${encodeURIComponent(name)}/tokens`, { body: { description: "from the school records page" }, signal });
      const field = h("input", { id: "issued-token", readonly: true, value: tok.token, spellcheck: "false", onfocus: (ev) => ev.target.select() });
      issued.replaceChildren(
        h("label", { for: "issued-token" }, `${name}'s new token`), field,
        h("p", { class: "hint" }, "Copy it now and give it to them: Homeroom keeps only a fingerprint and cannot show it again."),
        h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: async () => {
          field.select();
          try { await navigator.clipboard.writeText(tok.token); show("ok", "The token was copied."); } catch { show("info", "Press Ctrl+C (or ⌘C) to copy the selected token."); }
        } }, "Copy")));
      issued.hidden = false;
      field.focus();
      tokenLists.get(name)?.reload();
    } catch (ex) {
      if (ex.name !== "AbortError") show("error", ex.message);
    } finally {
      btn.disabled = false;
    }
  };

  const tokenLists = new Map();
  const rows = users.map((u) => {
    const list = tokenList(u.name, signal);
    tokenLists.set(u.name, list);
    return h("tr", { "data-user": u.name },
      h("td", { "data-label": "Name" }, u.name),
      h("td", { "data-label": "Role" }, u.role),
      h("td", { "data-label": "Subjects" }, u.role === "admin" ? h("span", { class: "muted" }, "all") : (u.subjects || []).join(", ") || h("span", { class: "muted" }, "none")),
      h("td", { "data-label": "Tokens" },
        h("button", { type: "button", class: "link", "data-issue": u.name, "aria-label": `Issue a token for ${u.name}`, onclick: issue(u.name) }, "Issue a token"),
        list.el),
      h("td", {}, removeButton("user", u.name, "/api/v1/users/" + encodeURIComponent(u.name),
        "Every token of theirs stops working at once. Classes and the work collected in them stay.", signal, redraw)));
  });
  const table = h("table", { id: "users" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, "Subjects"), h("th", { scope: "col" }, "Tokens"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
    h("tbody", {}, rows));
  return h("section", { "aria-labelledby": "users-title" }, h("h2", { id: "users-title" }, "Teachers and administrators"),
    users.length ? table : h("p", { class: "muted" }, "No users yet: the bootstrap admin token is the only way in."),
    issued, h("details", {}, h("summary", {}, "Add a teacher or change their subjects"), form));
}

// tokenList shows a user's tokens when opened, each revocable.
function tokenList(name, signal) {
  const ul = h("ul", { class: "tokens" });
  const el = h("details", { "data-tokens": name }, h("summary", {}, "Tokens"), ul);
  const reload = async () => {
    if (!el.open) return;
    try {
      const { items } = await api("GET", `/api/v1/users/${encodeURIComponent(name)}/tokens`, { signal });
      const live = items.filter((t) => !t.revokedAt);
      ul.replaceChildren(...(live.length ? live.map((t) => h("li", { "data-token": t.id },
        h("span", {}, (t.description || "token") + ", issued " + when(t.createdAt) + (t.expiresAt ? ", expires " + when(t.expiresAt) : "")),
        h("button", { type: "button", class: "link", "aria-label": `Revoke ${name}'s token issued ${when(t.createdAt)}`, onclick: async (e) => {
          const ok = await confirmDialog(`Revoke this token of ${name}?`, "Whoever signs in with it is signed out at their next step. Issue a new one if they still need access.", "Revoke token");
          if (!ok) { e.currentTarget?.focus?.(); return; }
          try {
            await api("DELETE", "/api/v1/tokens/" + encodeURIComponent(t.id), { signal });
            show("ok", `The token of ${name} was revoked.`);
            await reload();
          } catch (ex) {
            if (ex.name !== "AbortError") show("error", ex.message);
          }
        } }, "Revoke"))) : [h("li", { class: "muted" }, "No valid tokens.")]));
    } catch (ex) {
      if (ex.name !== "AbortError") ul.replaceChildren(h("li", { class: "error-text" }, ex.message));
    }
  };
  el.addEventListener("toggle", reload);
  return { el, reload };
}

function rostersSection(rosters, signal, redraw) {
  const area = h("textarea", { id: "roster-csv", rows: 8, spellcheck: "false", autocapitalize: "none", placeholder: "class,subject,student\ncs101-a,cs101,alice\ncs101-a,cs101,bob" });
  const csvF = formField("roster-csv", "Roster file (CSV)", area, "Columns class, subject and student, in any order. Each class in the file gets exactly the students listed for it.");
  const file = h("input", { id: "roster-file", type: "file", accept: ".csv,text/csv,text/plain" });
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    if (f.size > 1 << 20) { csvF.err.textContent = "That file is larger than 1 MiB; is it the right one?"; return; }
    area.value = await f.text();
  });
  const result = h("div", { id: "import-result", "aria-live": "polite" });
  const err = h("p", { class: "field-error", role: "alert", id: "import-error" });
  const send = async (dryRun) => {
    result.replaceChildren();
    if (!area.value.trim()) { csvF.err.textContent = "Paste the roster file or choose it below."; area.focus(); return; }
    csvF.err.textContent = "";
    area.removeAttribute("aria-invalid");
    try {
      const r = await api("POST", "/api/v1/rosters/import" + (dryRun ? "?dryRun=true" : ""), { csv: area.value, signal });
      const parts = [["new", r.created], ["changed", r.updated], ["unchanged", r.unchanged]]
        .filter(([, ids]) => ids.length).map(([what, ids]) => `${what}: ${ids.join(", ")}`);
      const summary = `${r.classes} class${r.classes === 1 ? "" : "es"}, ${r.students} student${r.students === 1 ? "" : "s"}` + (parts.length ? " (" + parts.join("; ") + ")" : "");
      if (dryRun) { result.replaceChildren(h("p", { class: "ok-text" }, "Every line is good: " + summary + ". Nothing was saved yet.")); return; }
      show("ok", "The rosters were imported: " + summary + ".");
      await redraw("roster-csv");
    } catch (ex) {
      if (ex.name === "AbortError") return;
      area.setAttribute("aria-invalid", "true");
      err.textContent = ex.message;
      if (ex.details?.length) {
        result.replaceChildren(h("ul", { class: "problems", "aria-label": "Bad lines" },
          ex.details.map((d) => h("li", { class: "bad" }, (d.line ? `Line ${d.line}: ` : "") + d.message))));
      }
    }
  };
  const form = h("form", { class: "stack card", novalidate: true }, csvF.el,
    h("div", {}, h("label", { for: "roster-file" }, "Or load it from a file"), file),
    err, result,
    h("div", { class: "actions" },
      h("button", { type: "submit", value: "import" }, "Import"),
      h("button", { type: "submit", value: "check", class: "secondary", id: "check-rosters" }, "Check only")));
  form.addEventListener("submit", submitting(form, err, (btn) => send(btn.value === "check")));
  const table = rosters.length === 0 ? h("p", { class: "muted" }, "No registered classes yet.") :
    h("table", { id: "rosters" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Class"), h("th", { scope: "col" }, "Subject"), h("th", { scope: "col" }, "Official roster"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, rosters.map((r) => h("tr", { "data-roster": r.classId },
        h("td", { "data-label": "Class" }, r.classId),
        h("td", { "data-label": "Subject" }, r.subject),
        h("td", { "data-label": "Official roster" }, `${r.students.length} student${r.students.length === 1 ? "" : "s"}: `, h("span", { class: "muted" }, r.students.join(", "))),
        h("td", {}, removeButton("registered class", r.classId, "/api/v1/rosters/" + encodeURIComponent(r.classId),
          "Its official roster is forgotten, and teachers cannot bring it up until it is registered again. A class already made and its collected work stay.", signal, redraw))))));
  return h("section", { "aria-labelledby": "rosters-title" }, h("h2", { id: "rosters-title" }, "Registered classes"), table,
    h("h3", {}, "Import rosters"), form);
}

// ---------- routing ----------

async function route() {
  view?.abort();
  view = new AbortController();
  const signal = view.signal;
  const hash = location.hash || "#/classes";
  if (!session.token) {
    if (hash !== "#/signin") { location.hash = "#/signin"; return; }
    signInPage();
    return;
  }
  let m;
  if (hash === "#/signin") { location.hash = "#/classes"; return; }
  if (hash === "#/classes" || hash === "#/" || hash === "#") return classesPage(signal);
  if (hash === "#/new") return classFormPage(null, signal);
  if (hash === "#/school") {
    if (session.me?.role === "admin") return schoolPage(signal);
    page("School records", h("p", {}, "Only administrators keep the school's records. Ask one to register a class or a subject."), h("a", { href: "#/classes" }, "Back to the classes"));
    return;
  }
  if ((m = hash.match(/^#\/classes\/([a-z0-9][a-z0-9-]{0,62})\/edit$/))) return classFormPage(m[1], signal);
  if ((m = hash.match(/^#\/classes\/([a-z0-9][a-z0-9-]{0,62})\/sheet$/))) return sheetPage(m[1], signal);
  if ((m = hash.match(/^#\/classes\/([a-z0-9][a-z0-9-]{0,62})$/))) return classPage(m[1], signal);
  page("Not found", h("p", {}, "There is no such page."), h("a", { href: "#/classes" }, "Back to the classes"));
}

async function start() {
  document.getElementById("signout").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  const saved = sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
  if (saved) {
    try {
      await signIn(saved, !!localStorage.getItem(TOKEN_KEY));
    } catch (ex) {
      session.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      localStorage.removeItem(TOKEN_KEY);
      if (ex.status !== 401) show("error", ex.message);
    }
  }
  route();
}

start();
