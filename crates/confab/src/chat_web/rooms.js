// Persistent Chat room management (plain JavaScript, no build step). Every change
// is a POST carrying the session's CSRF token; the server checks Lync's rules and
// its refusals are shown in words.
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
  $("error").textContent = text || "";
  $("error").hidden = !text;
  if (text) $("notice").hidden = true;
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
  if (text) $("error").hidden = true;
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
    location.assign("/chat/signin");
    throw new Error("Your session ended: sign in again.");
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `The server answered HTTP ${r.status}.`);
  return data;
}

const split = (s) => s.split(/[,\s]+/).map((x) => x.trim()).filter((x) => x);
const minus = (a, b) => a.filter((x) => !b.includes(x.toLowerCase()));

function listEditor(id, label, values) {
  return [
    el("label", { for: id }, label),
    el("textarea", { id, name: id }, values.join(", ")),
  ];
}

function roomCard(r) {
  const slug = encodeURIComponent(r.name).replace(/%/g, "_");
  const privacy = el("select", { id: `privacy-${slug}`, name: "privacy" },
    ...["open", "closed", "secret"].map((p) => {
      const o = el("option", { value: p }, p[0].toUpperCase() + p.slice(1));
      if (p === r.privacy) o.selected = true;
      return o;
    }));
  const form = el("form", { class: "grid edit", "data-room": r.name },
    el("label", { for: `description-${slug}` }, "Description"),
    el("input", { id: `description-${slug}`, name: "description", type: "text", value: r.description }),
    el("label", { for: `privacy-${slug}` }, "Privacy"), privacy,
    ...listEditor(`members-${slug}`, "Members", r.members),
    ...listEditor(`managers-${slug}`, "Managers", r.managers),
    ...listEditor(`presenters-${slug}`, "Presenters", r.presenters),
    el("button", { type: "submit", "aria-label": `Save ${r.name}` }, "Save changes"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const lists = {};
    for (const kind of ["members", "managers", "presenters"]) {
      const now = split($(`${kind}-${slug}`).value).map((x) => x.toLowerCase());
      lists[`add_${kind}`] = minus(now, r[kind]);
      lists[`remove_${kind}`] = minus(r[kind], now);
    }
    await change("/chat/api/rooms/update", {
      room: r.name,
      description: $(`description-${slug}`).value,
      privacy: privacy.value,
      ...lists,
    }, `Room ${r.name} saved.`);
  });
  const toggle = el("button", {
    type: "button", class: r.disabled ? "secondary" : "danger", "aria-label": `${r.disabled ? "Enable" : "Disable"} ${r.name}`,
    onclick: () => change(r.disabled ? "/chat/api/rooms/enable" : "/chat/api/rooms/disable", { room: r.name },
      `Room ${r.name} ${r.disabled ? "enabled" : "disabled"}.`),
  }, r.disabled ? "Enable room" : "Disable room");
  return el("article", { class: "room", "data-room": r.name, "aria-labelledby": `title-${slug}` },
    el("h3", { id: `title-${slug}` }, r.name, " ",
      el("span", { class: "badge privacy" }, r.privacy), " ",
      el("span", { class: "badge state " + (r.disabled ? "off" : "on") }, r.disabled ? "disabled" : "enabled")),
    el("p", { class: "hint" }, r.description || "No description."),
    el("dl", {},
      el("dt", {}, "Category"), el("dd", {}, r.category || "—"),
      el("dt", {}, "Members"), el("dd", { class: "members" }, r.members.join(", ") || "—"),
      el("dt", {}, "Managers"), el("dd", { class: "managers" }, r.managers.join(", ") || "—"),
      el("dt", {}, "Presenters"), el("dd", { class: "presenters" }, r.presenters.join(", ") || "—"),
      el("dt", {}, "Address"), el("dd", {}, el("code", {}, r.uri))),
    el("div", { class: "actions" }, toggle),
    el("details", {}, el("summary", {}, `Edit ${r.name}`), form));
}

async function load() {
  const data = await api("/chat/api/rooms");
  const select = $("create-category");
  select.replaceChildren(...data.categories.map((c) => el("option", { value: c.name }, c.name)));
  $("create-box").hidden = data.categories.length === 0;
  $("not-creator").hidden = data.categories.length !== 0;
  $("count").textContent = data.rooms.length === 0 ? "You manage no rooms yet." : `${data.rooms.length} room(s).`;
  $("rooms").replaceChildren(...data.rooms.map(roomCard));
}

async function change(path, body, done) {
  try {
    await api(path, body);
    await load();
    notice(done);
  } catch (e) {
    showError(e.message);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  try {
    session = await api("/chat/api/session");
    $("who").textContent = session.address;
    await load();
  } catch (e) {
    showError(e.message);
  }
  $("signout").addEventListener("click", async () => {
    try { await api("/chat/api/signout", {}); } catch (e) { /* signed out either way */ }
    location.assign("/chat/signin");
  });
  $("create").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const name = $("create-name").value.trim();
    if (!name) {
      showError("Give the room a name.");
      $("create-name").focus();
      return;
    }
    const button = $("create-submit");
    button.disabled = true;
    try {
      await api("/chat/api/rooms", {
        name,
        category: $("create-category").value,
        description: $("create-description").value,
        privacy: $("create-privacy").value,
        members: split($("create-members").value),
        presenters: split($("create-presenters").value),
      });
      f.reset();
      await load();
      notice(`Room ${name} created: you manage it.`);
    } catch (e) {
      showError(e.message);
    } finally {
      button.disabled = false;
    }
  });
});
