// confab Control Panel pages (plain JavaScript, no build step). Every change is a
// POST carrying the session's CSRF token; errors are shown in words.
"use strict";

let session = null;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

function showError(text) {
  const e = $("error");
  e.textContent = text || "";
  e.hidden = !text;
}

function notice(text) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

async function api(path, body) {
  const opts = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-CSRF-Token"] = session ? session.csrf : "";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new Error("The server cannot be reached: connection lost. Retry in a moment.");
  }
  if (r.status === 401) {
    location.assign("/admin/signin");
    throw new Error("Your session ended: sign in again.");
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `The server answered HTTP ${r.status}.`);
  return data;
}

// ---- users ----

async function loadUsers() {
  const q = $("q").value.trim();
  const data = await api("/admin/api/users?q=" + encodeURIComponent(q));
  const body = $("users").tBodies[0];
  body.replaceChildren();
  $("count").textContent = `${data.matching} of ${data.total} users` + (data.matching > data.users.length ? ` (first ${data.users.length} shown)` : "");
  for (const u of data.users) {
    const actions = el("td", { "data-label": "Actions" });
    actions.append(el("button", { type: "button", class: "secondary", "aria-label": `Contacts of ${u.address}`, onclick: () => showContacts(u.address) }, "Contacts"));
    if (session.may.change_users) {
      const label = u.enabled ? "Disable" : "Enable";
      actions.append(el("button", {
        type: "button", class: "secondary", "data-action": label.toLowerCase(), "aria-label": `${label} ${u.address}`,
        onclick: () => change(u.enabled ? "/admin/api/users/disable" : "/admin/api/users/enable", { address: u.address }, `${u.address} ${u.enabled ? "disabled" : "enabled"}.`),
      }, label));
      actions.append(el("button", { type: "button", class: "secondary", "aria-label": `Reset the password of ${u.address}`, onclick: (ev) => resetForm(ev.target, u.address) }, "Reset password"));
    }
    body.append(el("tr", { "data-address": u.address },
      el("td", { "data-label": "Address", class: "key" }, u.address),
      el("td", { "data-label": "Display name" }, u.display_name || "—"),
      el("td", { "data-label": "Status" }, el("span", { class: "badge " + (u.enabled ? "on" : "off") }, u.enabled ? "enabled" : "disabled")),
      el("td", { "data-label": "Role" }, u.role || "—"),
      actions));
  }
}

function resetForm(button, address) {
  const cell = button.parentElement;
  if (cell.querySelector("form")) return;
  const id = "pw-" + Math.random().toString(36).slice(2);
  const input = el("input", { id, type: "password", autocomplete: "new-password", required: "" });
  const form = el("form", { class: "row" },
    el("label", { for: id }, `New password for ${address}`), input,
    el("button", { type: "submit" }, "Save"),
    el("button", { type: "button", class: "secondary", onclick: () => form.remove() }, "Cancel"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!input.value) { showError("Enter the new password."); input.focus(); return; }
    await change("/admin/api/users/password", { address, password: input.value }, `Password of ${address} changed.`);
  });
  cell.append(form);
  input.focus();
}

async function change(path, body, done) {
  showError(""); notice("");
  try {
    await api(path, body);
    notice(done);
    await loadUsers();
  } catch (e) {
    showError(e.message);
  }
}

async function showContacts(address) {
  showError("");
  try {
    const data = await api("/admin/api/contacts?address=" + encodeURIComponent(address));
    const list = $("contacts-list");
    list.replaceChildren();
    $("contacts-title").textContent = `Contacts of ${address}`;
    if (data.contacts.length === 0) list.append(el("li", {}, "No contacts."));
    for (const c of data.contacts) {
      list.append(el("li", {}, c.uri + (c.name ? ` (${c.name})` : "") + (c.groups.length ? ` — ${c.groups.join(", ")}` : "")));
    }
    $("contacts").hidden = false;
    $("contacts-title").setAttribute("tabindex", "-1");
    $("contacts-title").focus();
  } catch (e) {
    showError(e.message);
  }
}

function initUsers() {
  $("search").addEventListener("submit", (ev) => { ev.preventDefault(); loadUsers().catch((e) => showError(e.message)); });
  if (session.may.change_users) {
    $("add-box").hidden = false;
    $("add").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = ev.target;
      const address = f.address.value.trim();
      if (!address || !f.password.value) { showError("Enter the new user's SIP address and a password."); return; }
      showError(""); notice("");
      try {
        await api("/admin/api/users", { address, password: f.password.value, display_name: f.display_name.value });
        notice(`${address} added.`);
        f.reset();
        await loadUsers();
      } catch (e) {
        showError(e.message);
      }
    });
  }
  return loadUsers();
}

// ---- topology ----

async function initTopology() {
  const t = await api("/admin/api/topology");
  const box = $("topology");
  box.replaceChildren();
  if (!t.published) {
    box.append(el("p", {}, t.message));
    return;
  }
  const p = t.published;
  box.append(el("p", {}, `Version ${p.version}, published ${p.published_at} by ${p.published_by}${p.comment ? ": " + p.comment : ""}.`));
  box.append(el("p", {}, `SIP domains: ${t.sip_domains.join(", ") || "—"}`));
  const v = t.validation;
  box.append(el("p", { class: v.errors ? "error" : "notice" }, v.errors ? `Validation: ${v.errors} error(s), ${v.warnings} warning(s).` : `Validation: no errors, ${v.warnings} warning(s).`));
  if (v.text) box.append(el("pre", {}, v.text));
  for (const pool of t.pools) {
    box.append(el("h2", {}, `Pool ${pool.fqdn} (${pool.edition}, site ${pool.site})`));
    box.append(el("p", {}, "Roles: " + pool.roles.join(", ")));
    const ul = el("ul", {});
    for (const m of pool.machines) ul.append(el("li", {}, `${m.fqdn}: ${m.roles.join(", ")}`));
    box.append(ul);
  }
  box.append(el("h2", {}, "Bootstrapped machines"));
  if (t.machines.length === 0) box.append(el("p", {}, "None yet (run confab bootstrap on each machine)."));
  const ul = el("ul", {});
  for (const m of t.machines) ul.append(el("li", {}, `${m.fqdn} (pool ${m.pool}, ${m.roles}): version ${m.version}${m.current ? "" : " — out of date, run confab bootstrap there"}, ${m.bootstrapped_at}`));
  box.append(ul);
}

// ---- status ----

const FIGURES = [
  ["confab_registered_users", "Registered users"],
  ["confab_registrations", "Registrations"],
  ["confab_connections", "Connections"],
  ["confab_presence_subscriptions", "Presence subscriptions"],
  ["confab_server_transactions", "Server transactions"],
  ["confab_auth_failures_total", "Failed sign-ins (total)"],
];
const samples = [];

async function sampleStatus() {
  let s;
  try {
    s = await api("/admin/api/status");
    showError("");
  } catch (e) {
    showError(e.message + " Retrying.");
    return;
  }
  const m = s.metrics;
  const figs = $("figures");
  figs.replaceChildren();
  figs.append(el("div", {}, el("dt", {}, "Users"), el("dd", {}, s.users)));
  for (const [k, label] of FIGURES) figs.append(el("div", {}, el("dt", {}, label), el("dd", { "data-metric": k }, m[k] ?? "—")));
  const now = Date.now();
  const total = m["confab_sip_requests_received_total"] ?? 0;
  samples.push([now, total]);
  while (samples.length > 151) samples.shift();
  drawChart();
}

function drawChart() {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  for (const c of [...svg.childNodes]) if (c.nodeName !== "title") c.remove();
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i][0] - samples[i - 1][0]) / 1000;
    rates.push(dt > 0 ? Math.max(0, (samples[i][1] - samples[i - 1][1]) / dt) : 0);
  }
  const max = Math.max(1, ...rates);
  const mk = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  mk("line", { x1: 40, y1: 140, x2: 600, y2: 140 });
  mk("line", { x1: 40, y1: 10, x2: 40, y2: 140 });
  mk("text", { x: 2, y: 16 }, max.toFixed(max < 10 ? 1 : 0));
  mk("text", { x: 2, y: 140 }, "0");
  mk("text", { x: 40, y: 156 }, "5 min ago");
  mk("text", { x: 560, y: 156 }, "now");
  if (rates.length > 0) {
    const pts = rates.map((r, i) => `${600 - (rates.length - 1 - i) * (560 / 149)},${140 - (r / max) * 130}`).join(" ");
    mk("polyline", { points: pts });
  }
  const last = rates.length ? rates[rates.length - 1] : 0;
  $("chart-caption").textContent = `Now ${last.toFixed(1)} requests/s; highest shown ${max.toFixed(1)}. Sampled every 2 seconds from the numbers /metrics serves.`;
}

async function initStatus() {
  await sampleStatus();
  setInterval(sampleStatus, 2000);
}

// ---- audit ----

async function initAudit() {
  const data = await api("/admin/api/audit");
  const body = $("audit").tBodies[0];
  body.replaceChildren();
  for (const e of data.entries.slice().reverse()) {
    body.append(el("tr", {}, el("td", { "data-label": "When", class: "key" }, e.time), el("td", { "data-label": "Who" }, e.actor), el("td", { "data-label": "From" }, e.source), el("td", { "data-label": "What" }, e.action), el("td", { "data-label": "Target" }, e.target || "—"), el("td", { "data-label": "Detail" }, e.detail || "")));
  }
}

// ---- start ----

document.addEventListener("DOMContentLoaded", async () => {
  const page = document.body.dataset.page;
  for (const a of document.querySelectorAll("nav a")) if (a.dataset.nav === page) a.setAttribute("aria-current", "page");
  for (const s of document.querySelectorAll("[data-show]")) s.hidden = s.dataset.show !== page;
  try {
    session = await api("/admin/api/session");
  } catch (e) {
    showError(e.message);
    return;
  }
  $("who").textContent = `${session.address} (${session.role})`;
  $("nav-audit").hidden = !session.may.view_audit;
  $("signout").addEventListener("click", async () => {
    try { await api("/admin/api/signout", {}); } catch (e) { /* signed out anyway */ }
    location.assign("/admin/signin");
  });
  try {
    if (page === "users") await initUsers();
    else if (page === "topology") await initTopology();
    else if (page === "status") await initStatus();
    else if (page === "audit") await initAudit();
  } catch (e) {
    showError(e.message);
  }
});
