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
  if (t.gateways && t.gateways.length) {
    box.append(el("h2", {}, "PSTN gateways (trunks made by publishing)"));
    const gw = el("ul", {});
    for (const g of t.gateways) gw.append(el("li", {}, `${g.trunk}: ${g.address}:${g.port}/${g.transport} via ${g.mediation_pool}${g.site ? ", site " + g.site : ""}`));
    box.append(gw);
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

// ---- voice and Persistent Chat settings ----
// Changes are the CLI's commands: the page sends the words of `confab voice ...`
// or `confab chat ...` and the server runs the CLI's own code.

const join = (v) => (v && v.length ? v.join(", ") : "—");
const csv = (s) => s.split(",").map((x) => x.trim()).filter(Boolean).join(",");

// A table of `rows` with `cols` = [[heading, row => text or Node]].
function table(caption, cols, rows) {
  const head = el("tr", {});
  for (const [h] of cols) head.append(el("th", { scope: "col" }, h));
  const body = el("tbody", {});
  if (rows.length === 0) body.append(el("tr", {}, el("td", { colspan: cols.length }, "None.")));
  for (const r of rows) {
    const tr = el("tr", { "data-name": r.name || r.scope || r.address || r.server || "" });
    cols.forEach(([h, f], i) => tr.append(el("td", { "data-label": h, class: i === 0 ? "key" : "" }, f(r) ?? "—")));
    body.append(tr);
  }
  return el("div", { class: "scroll" }, el("table", { class: "cards" }, el("caption", { class: "sr-only" }, caption), el("thead", {}, head), body));
}

// A form in a <details> box: fields = [{name, label, required, placeholder, options, list, hint, type}];
// run(values, form) returns true when it worked (the form is then cleared).
function form(id, title, fields, submit, run) {
  const f = el("form", { id, class: "grid", novalidate: "" });
  for (const x of fields) {
    const fid = `${id}-${x.name}`;
    f.append(el("label", { for: fid }, x.label + (x.required ? "" : " (optional)")));
    let input;
    if (x.options) {
      input = el("select", { id: fid, name: x.name });
      for (const o of x.options) input.append(el("option", { value: o }, o));
    } else {
      const attrs = { id: fid, name: x.name, type: x.type || "text", autocomplete: "off" };
      if (x.placeholder) attrs.placeholder = x.placeholder;
      if (x.required) attrs.required = "";
      if (x.list) attrs.list = x.list;
      input = el("input", attrs);
    }
    f.append(input);
    if (x.hint) {
      input.setAttribute("aria-describedby", fid + "-hint");
      f.append(el("p", { class: "hint", id: fid + "-hint" }, x.hint));
    }
  }
  f.append(el("button", { type: "submit", id: id + "-submit" }, submit));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = {};
    for (const x of fields) v[x.name] = f.elements[x.name].value.trim();
    const missing = fields.find((x) => x.required && !v[x.name]);
    if (missing) {
      showError(`Enter the ${missing.label.toLowerCase()}.`);
      f.elements[missing.name].focus();
      return;
    }
    if (await run(v, f)) {
      f.reset();
      f.elements[fields[0].name].focus();
    }
  });
  return el("details", { id: id + "-box" }, el("summary", {}, title), f);
}

// Runs one CLI command on the server (`area`: voice or chat); shows the CLI's answer.
async function command(area, args) {
  showError(""); notice("");
  try {
    const r = await api(`/admin/api/${area}`, { args });
    notice(r.message || "Done.");
    await settingsReload();
    return true;
  } catch (e) {
    showError(e.message);
    return false;
  }
}

// Adds an --option=value word when the value is given.
function opt(args, name, value) {
  if (value !== undefined && value !== "") args.push(`--${name}=${value}`);
  return args;
}

function removeButton(area, args, what) {
  if (!session.may.change_voice_chat) return "";
  return el("button", { type: "button", class: "secondary", "aria-label": `Remove ${what}`, onclick: () => command(area, args) }, "Remove");
}

function datalist(id, values) {
  let d = $(id);
  if (!d) { d = el("datalist", { id }); document.body.append(d); }
  d.replaceChildren(...values.map((v) => el("option", { value: v })));
}

let settingsReload = async () => {};

// A block of a settings page: heading, a table box, and forms when the role may change.
function block(box, key, title, forms) {
  const tableBox = el("div", { id: `${key}-table` });
  box.append(el("section", { "aria-labelledby": `${key}-title` }, el("h2", { id: `${key}-title` }, title), tableBox, ...(session.may.change_voice_chat ? forms : [])));
  return tableBox;
}

async function initVoice() {
  const box = $("voice");
  $("voice-readonly").hidden = session.may.change_voice_chat;
  const V = (args) => command("voice", args);
  const testOut = el("pre", { id: "test-result", "aria-live": "polite", hidden: "" });
  const testForm = form("test", "Test a number (confab voice test-number)", [
    { name: "user", label: "Caller (SIP address)", required: true, placeholder: "bob@example.com", type: "email" },
    { name: "dialed", label: "Dialed number", required: true, placeholder: "5550100" },
  ], "Test", async (v) => {
    showError("");
    try {
      const r = await api(`/admin/api/voice/test?user=${encodeURIComponent(v.user)}&dialed=${encodeURIComponent(v.dialed)}`);
      testOut.textContent = r.explanation;
      testOut.hidden = false;
    } catch (e) {
      showError(e.message);
    }
    return false;
  });
  testForm.open = true;
  box.append(el("section", { "aria-labelledby": "test-title" }, el("h2", { id: "test-title" }, "Test a number"), testForm, testOut));

  const t = {};
  t.users = block(box, "lines", "Users' lines", [form("line", "Set a user's line URI, dial plan or voice policy", [
    { name: "address", label: "User (SIP address)", required: true, type: "email", list: "dl-users" },
    { name: "line_uri", label: "Line URI", placeholder: "tel:+14255550100", hint: "none clears it; empty keeps it" },
    { name: "dial_plan", label: "User dial plan", list: "dl-user-plans", hint: "none clears it; empty keeps it" },
    { name: "voice_policy", label: "User voice policy", list: "dl-user-policies", hint: "none clears it; empty keeps it" },
  ], "Save", async (v) => {
    const body = { address: v.address };
    for (const k of ["line_uri", "dial_plan", "voice_policy"]) if (v[k]) body[k] = v[k];
    showError(""); notice("");
    try {
      const r = await api("/admin/api/voice/user", body);
      notice(r.message);
      await settingsReload();
      return true;
    } catch (e) {
      showError(e.message);
      return false;
    }
  })]);
  t.plans = block(box, "plans", "Dial plans", [form("plan", "Add a dial plan", [
    { name: "scope", label: "Scope", required: true, placeholder: "global, site:NAME, pool:FQDN or a name" },
    { name: "description", label: "Description" },
  ], "Add dial plan", (v) => V(opt(["dialplan", "add", v.scope], "description", v.description)))]);
  t.rules = block(box, "rules", "Normalization and translation rules", [form("rule", "Add a rule", [
    { name: "owner", label: "Dial plan or trunk", required: true, list: "dl-owners", placeholder: "global or trunk:NAME" },
    { name: "name", label: "Rule name", required: true },
    { name: "pattern", label: "Pattern (regular expression, whole number)", required: true, placeholder: "(\\d{4})" },
    { name: "translation", label: "Translation ($1..$9: the pattern's groups)", required: true, placeholder: "+1425555$1" },
    { name: "position", label: "Position (1 = first)", type: "number" },
  ], "Add rule", (v) => V(opt(["rule", "add", v.owner, v.name, `--pattern=${v.pattern}`, `--translation=${v.translation}`], "position", v.position)))]);
  t.policies = block(box, "policies", "Voice policies", [form("policy", "Add a voice policy", [
    { name: "scope", label: "Scope", required: true, placeholder: "global, site:NAME or a name" },
    { name: "usages", label: "PSTN usages, in order (comma-separated)", list: "dl-usages" },
  ], "Add voice policy", (v) => V(["policy", "add", v.scope, `--usages=${csv(v.usages)}`]))]);
  t.usages = block(box, "usages", "PSTN usages", [form("usage", "Add a PSTN usage", [
    { name: "name", label: "Name", required: true },
  ], "Add PSTN usage", (v) => V(["usage", "add", v.name]))]);
  t.routes = block(box, "routes", "Routes", [form("route", "Add a route", [
    { name: "name", label: "Route name", required: true },
    { name: "pattern", label: "Number pattern (regular expression, whole E.164 number)", required: true, placeholder: "\\+1425\\d{7}" },
    { name: "usages", label: "PSTN usages (comma-separated)", required: true, list: "dl-usages" },
    { name: "trunks", label: "Trunks, tried in order (comma-separated)", required: true, list: "dl-trunks" },
    { name: "position", label: "Position (1 = first)", type: "number" },
  ], "Add route", (v) => V(opt(["route", "add", v.name, `--pattern=${v.pattern}`, `--usages=${csv(v.usages)}`, `--trunks=${csv(v.trunks)}`], "position", v.position)))]);
  t.trunks = block(box, "trunks", "Trunks", [form("trunk", "Add a trunk", [
    { name: "name", label: "Trunk name", required: true },
    { name: "gateway", label: "Gateway IP:PORT", required: true, placeholder: "192.0.2.10:5060" },
    { name: "transport", label: "Transport", options: ["udp", "tcp", "tls"] },
  ], "Add trunk", (v) => V(["trunk", "add", v.name, `--gateway=${v.gateway}`, `--transport=${v.transport}`]))]);
  t.announcements = block(box, "announcements", "Announcements", [form("announcement", "Add a tone announcement", [
    { name: "name", label: "Name", required: true },
    { name: "tones", label: "Tones FREQ[+FREQ]:MS,...", required: true, placeholder: "440:1000,0:200,350+440:500", hint: "Audio files are added on the server: confab voice announcement add NAME --audio-file FILE" },
    { name: "target", label: "Then transfer to (sip: or tel:)", hint: "empty: hang up" },
  ], "Add announcement", (v) => V(opt(["announcement", "add", v.name, `--tones=${v.tones}`], "target", v.target)))]);
  t.unassigned = block(box, "unassigned", "Unassigned numbers", [form("unassigned", "Add an unassigned-number range", [
    { name: "name", label: "Name", required: true },
    { name: "start", label: "First number (E.164)", required: true, placeholder: "+14255550000" },
    { name: "end", label: "Last number (E.164)", required: true, placeholder: "+14255550999" },
    { name: "announcement", label: "Announcement", required: true, list: "dl-announcements" },
    { name: "priority", label: "Priority (lower wins)", type: "number" },
  ], "Add range", (v) => V(opt(["unassigned", "add", v.name, `--start=${v.start}`, `--end=${v.end}`, `--announcement=${v.announcement}`], "priority", v.priority)))]);

  settingsReload = async () => {
    const d = await api("/admin/api/voice");
    const users = (await api("/admin/api/users")).users.map((u) => u.address);
    datalist("dl-users", users);
    datalist("dl-usages", d.usages);
    datalist("dl-trunks", d.trunks.map((x) => x.name));
    datalist("dl-owners", [...d.dial_plans.map((p) => p.scope), ...d.trunks.map((x) => "trunk:" + x.name)]);
    datalist("dl-user-plans", d.dial_plans.map((p) => p.scope).filter((s) => !s.includes(":") && s !== "global"));
    datalist("dl-user-policies", d.policies.map((p) => p.scope).filter((s) => !s.includes(":") && s !== "global"));
    datalist("dl-announcements", d.announcements.map((a) => a.name));
    t.users.replaceChildren(table("Users' lines", [
      ["User", (u) => u.address], ["Line URI", (u) => u.line_uri], ["Dial plan", (u) => u.dial_plan], ["Voice policy", (u) => u.voice_policy],
    ], d.users));
    t.plans.replaceChildren(table("Dial plans", [
      ["Scope", (p) => p.scope], ["Description", (p) => p.description], ["Rules", (p) => p.rules.length],
      ["Actions", (p) => removeButton("voice", ["dialplan", "remove", p.scope], `dial plan ${p.scope}`)],
    ], d.dial_plans));
    const rules = [];
    for (const p of d.dial_plans) for (const r of p.rules) rules.push({ owner: p.scope, ...r });
    for (const x of d.trunks) for (const r of x.rules) rules.push({ owner: "trunk:" + x.name, ...r });
    t.rules.replaceChildren(table("Rules", [
      ["Name", (r) => r.name], ["Owner", (r) => r.owner], ["Pattern", (r) => r.pattern], ["Translation", (r) => r.translation],
      ["Actions", (r) => removeButton("voice", ["rule", "remove", r.owner, r.name], `rule ${r.name} of ${r.owner}`)],
    ], rules));
    t.policies.replaceChildren(table("Voice policies", [
      ["Scope", (p) => p.scope], ["PSTN usages", (p) => join(p.usages)],
      ["Actions", (p) => removeButton("voice", ["policy", "remove", p.scope], `voice policy ${p.scope}`)],
    ], d.policies));
    t.usages.replaceChildren(table("PSTN usages", [
      ["Name", (u) => u.name], ["Actions", (u) => removeButton("voice", ["usage", "remove", u.name], `PSTN usage ${u.name}`)],
    ], d.usages.map((name) => ({ name }))));
    t.routes.replaceChildren(table("Routes", [
      ["Name", (r) => r.name], ["Pattern", (r) => r.pattern], ["PSTN usages", (r) => join(r.usages)], ["Trunks", (r) => join(r.trunks)],
      ["Actions", (r) => removeButton("voice", ["route", "remove", r.name], `route ${r.name}`)],
    ], d.routes));
    t.trunks.replaceChildren(table("Trunks", [
      ["Name", (x) => x.name], ["Gateway", (x) => x.gateway], ["Transport", (x) => x.transport], ["Rules", (x) => x.rules.length],
      ["Made by", (x) => (x.from_topology ? "the topology's gateway" : "confab voice trunk add")],
      ["Actions", (x) => (x.from_topology ? "change it in the topology" : removeButton("voice", ["trunk", "remove", x.name], `trunk ${x.name}`))],
    ], d.trunks));
    t.announcements.replaceChildren(table("Announcements", [
      ["Name", (a) => a.name], ["Audio", (a) => (a.audio_file ? "file " + a.audio_file : a.tones ? "tones " + a.tones : "silence")],
      ["Then", (a) => (a.target ? "transfer to " + a.target : "hang up")],
      ["Actions", (a) => removeButton("voice", ["announcement", "remove", a.name], `announcement ${a.name}`)],
    ], d.announcements));
    t.unassigned.replaceChildren(table("Unassigned numbers", [
      ["Name", (r) => r.name], ["Numbers", (r) => `${r.start} – ${r.end}`], ["Announcement", (r) => r.announcement], ["Priority", (r) => r.priority],
      ["Actions", (r) => removeButton("voice", ["unassigned", "remove", r.name], `unassigned range ${r.name}`)],
    ], d.unassigned));
  };
  await settingsReload();
}

async function initChat() {
  const box = $("chat");
  $("chat-readonly").hidden = session.may.change_voice_chat;
  const C = (args) => command("chat", args);
  const t = {};
  t.servers = block(box, "servers", "Chat servers (confab chat status)", []);
  t.policy = block(box, "chatpolicy", "Chat policy", [
    form("chatpolicy-global", "Set the global policy", [
      { name: "value", label: "Persistent Chat for everyone", options: ["enable", "disable"] },
    ], "Save", (v) => C(["policy", "set", "--global", `--${v.value}`])),
    form("chatpolicy-user", "Set a user's policy", [
      { name: "user", label: "User (SIP address)", required: true, type: "email", list: "dl-users" },
      { name: "value", label: "Persistent Chat for this user", options: ["enable", "disable", "clear"] },
    ], "Save", (v) => C(["policy", "set", v.user, `--${v.value}`])),
  ]);
  t.categories = block(box, "categories", "Categories", [form("category", "Add a category", [
    { name: "name", label: "Name", required: true },
    { name: "description", label: "Description" },
    { name: "allowed", label: "Allowed members (addresses and @domains, comma-separated)", placeholder: "@example.com" },
    { name: "denied", label: "Denied members" },
    { name: "creators", label: "Creators (may create rooms)", list: "dl-users" },
  ], "Add category", (v) => C(opt(opt(opt(opt(["category", "add", v.name], "description", v.description), "allowed-members", csv(v.allowed)), "denied-members", csv(v.denied)), "creators", csv(v.creators))))]);
  t.rooms = block(box, "rooms", "Rooms", [form("room", "Add a room", [
    { name: "name", label: "Room name", required: true },
    { name: "category", label: "Category", required: true, list: "dl-categories" },
    { name: "description", label: "Description" },
    { name: "privacy", label: "Privacy", options: ["closed", "open", "secret"] },
    { name: "type", label: "Type", options: ["normal", "auditorium"] },
    { name: "members", label: "Members (addresses and @domains, comma-separated)" },
    { name: "managers", label: "Managers", list: "dl-users" },
  ], "Add room", (v) => C(opt(opt(opt(["room", "add", v.name, `--category=${v.category}`, `--privacy=${v.privacy}`, `--type=${v.type}`], "description", v.description), "members", csv(v.members)), "managers", csv(v.managers))))]);
  t.config = block(box, "chatconfig", "Chat settings", [form("chatconfig", "Change chat settings", [
    { name: "default_history", label: "Posts sent as backfill on join (1-500)", type: "number" },
    { name: "max_message_bytes", label: "Largest post (bytes)", type: "number" },
    { name: "participant_update_limit", label: "Live participant lists up to (participants)", type: "number" },
    { name: "max_file_size_kb", label: "Largest file post (KB)", type: "number" },
  ], "Save", (v) => {
    const args = ["config", "set"];
    for (const k of Object.keys(v)) opt(args, k.replaceAll("_", "-"), v[k]);
    return C(args);
  })]);

  settingsReload = async () => {
    const d = await api("/admin/api/chat");
    const users = (await api("/admin/api/users")).users.map((u) => u.address);
    datalist("dl-users", users);
    datalist("dl-categories", d.categories.map((c) => c.name));
    t.servers.replaceChildren(d.servers.length === 0 ? el("p", {}, "No chat server has run on this store.") : table("Chat servers", [
      ["Server", (s) => s.server], ["Pool", (s) => s.pool], ["State", (s) => s.state],
      ["Live", (s) => (s.live ? "yes" : `no (heartbeat ${Math.round(s.heartbeat_age_ms / 1000)} s ago)`)],
      ["Joined", (s) => s.joined], ["Rooms", (s) => s.rooms], ["Posts/s", (s) => s.posts_per_s.toFixed(2)], ["Deliveries/s", (s) => s.deliveries_per_s.toFixed(2)],
    ], d.servers));
    t.policy.replaceChildren(
      el("p", { id: "chat-global" }, `Global: Persistent Chat is ${d.policy.global ? "enabled" : "disabled"} for users without their own setting.`),
      table("Users' chat policy", [["User", (u) => u.user], ["Persistent Chat", (u) => (u.enabled ? "enabled" : "disabled")]], d.policy.users.map((u) => ({ ...u, name: u.user }))));
    t.categories.replaceChildren(table("Categories", [
      ["Name", (c) => c.name], ["Description", (c) => c.description], ["Allowed", (c) => join(c.allowed_members)], ["Denied", (c) => join(c.denied_members)], ["Creators", (c) => join(c.creators)],
      ["Actions", (c) => removeButton("chat", ["category", "remove", c.name], `category ${c.name}`)],
    ], d.categories));
    t.rooms.replaceChildren(table("Rooms", [
      ["Name", (r) => r.name], ["Category", (r) => r.category], ["Privacy", (r) => r.privacy], ["Type", (r) => r.type],
      ["Status", (r) => el("span", { class: "badge " + (r.disabled ? "off" : "on") }, r.disabled ? "disabled" : "enabled")],
      ["Managers", (r) => join(r.managers)], ["Members", (r) => join(r.members)],
      ["Actions", (r) => (session.may.change_voice_chat
        ? el("button", { type: "button", class: "secondary", "aria-label": `${r.disabled ? "Enable" : "Disable"} room ${r.name}`, onclick: () => C(["room", r.disabled ? "enable" : "disable", r.name]) }, r.disabled ? "Enable" : "Disable")
        : "")],
    ], d.rooms));
    const c = d.config;
    t.config.replaceChildren(el("dl", { class: "figures" },
      el("div", {}, el("dt", {}, "Backfill posts"), el("dd", {}, c.default_history)),
      el("div", {}, el("dt", {}, "Largest post (bytes)"), el("dd", {}, c.max_message_bytes)),
      el("div", {}, el("dt", {}, "Participant list limit"), el("dd", {}, c.participant_update_limit)),
      el("div", {}, el("dt", {}, "Largest file (KB)"), el("dd", {}, c.max_file_size_kb))));
  };
  await settingsReload();
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
    else if (page === "voice") await initVoice();
    else if (page === "chat") await initChat();
  } catch (e) {
    showError(e.message);
  }
});
