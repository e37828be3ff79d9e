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

// ---- files: chunked upload (begin, PUT chunks, commit) and the room's list ----

async function send(path, method, bytes, offset) {
  let r;
  try {
    r = await fetch(`${path}?offset=${offset}`, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": session ? session.csrf : "" },
      body: bytes,
    });
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

function size(n) {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

async function loadFiles() {
  const room = $("upload-room").value;
  if (!room) return;
  const data = await api(`/chat/api/files?room=${encodeURIComponent(room)}`);
  $("files-count").textContent = data.files.length === 0
    ? `No files in ${data.name} yet.` : `${data.files.length} file(s) in ${data.name}:`;
  $("files").replaceChildren(...data.files.map((f) => el("li", { "data-file": f.name },
    el("a", { href: f.url, download: f.name }, f.name), ` (${size(f.size)}, from ${f.author})`)));
}

async function upload(file, room) {
  const begun = await api("/chat/api/files", { room, name: file.name, size: file.size });
  const progress = $("upload-progress");
  progress.hidden = false;
  progress.max = Math.max(file.size, 1);
  progress.value = 0;
  for (let offset = 0; offset < file.size; offset += begun.chunk_size) {
    const chunk = file.slice(offset, Math.min(offset + begun.chunk_size, file.size));
    await send(`/chat/api/files/${encodeURIComponent(begun.upload)}`, "PUT", chunk, offset);
    progress.value = Math.min(offset + begun.chunk_size, file.size);
  }
  const done = await api(`/chat/api/files/${encodeURIComponent(begun.upload)}/commit`, {});
  progress.hidden = true;
  return done;
}

async function load() {
  const data = await api("/chat/api/rooms");
  const rooms = $("upload-room");
  const chosen = rooms.value;
  rooms.replaceChildren(...data.file_rooms.map((r) => el("option", { value: r.uri }, r.name)));
  if (data.file_rooms.some((r) => r.uri === chosen)) rooms.value = chosen;
  $("files-box").hidden = data.file_rooms.length === 0;
  if (data.file_rooms.length > 0) await loadFiles();
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
  $("upload-room").addEventListener("change", () => loadFiles().catch((e) => showError(e.message)));
  $("upload").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) {
      showError("Choose a file to post.");
      $("upload-file").focus();
      return;
    }
    const button = $("upload-submit");
    button.disabled = true;
    const roomName = $("upload-room").selectedOptions[0]?.textContent || "the room";
    try {
      await upload(file, $("upload-room").value);
      $("upload-file").value = "";
      await load();
      notice(`${file.name} posted in ${roomName}.`);
    } catch (e) {
      $("upload-progress").hidden = true;
      showError(e.message);
    } finally {
      button.disabled = false;
    }
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
