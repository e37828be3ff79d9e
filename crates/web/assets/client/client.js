// The confab browser client (Lync Web App's analog): sign-in, contacts with
// presence, IM, audio/video calls. Everything goes over SIP over secure
// WebSocket to the server that served this page, through the vendored JsSIP
// library (static/jssip.min.js, MIT). The password lives only in this page's
// memory (JsSIP needs it to answer digest challenges): never in storage, a
// cookie or the URL.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const STATES = {
    available: "Available", busy: "Busy", dnd: "Do not disturb",
    brb: "Be right back", away: "Away", offline: "Offline",
  };
  // The RPID activity each state of our own is published as (RFC 4480); confab
  // maps them back (crates/presence/src/model.rs, activity_availability).
  const ACTIVITY = { busy: "busy", dnd: "do-not-disturb", brb: "be-right-back", away: "away" };
  const PUBLISH_EXPIRES = 600;

  let ua = null;
  let me = "";            // user@domain
  let signedIn = false;   // registered at least once since signing in
  let lostConnection = false;
  let contactsSub = null;
  const contacts = new Map();   // aor -> {name, state, note, sub, inList, unread, el}
  const conversations = new Map(); // aor -> [{from, text, mine, system, at}]
  let current = "";       // aor of the open conversation
  let session = null;     // the one call at a time
  let myState = "available";
  let myNote = "";
  let etag = null;
  let publishTimer = null;

  const aorOf = (uri) => `${uri.user}@${uri.host}`.toLowerCase();
  const plainAor = (s) => s.trim().replace(/^sips?:/i, "").toLowerCase();

  function setStatus(text, problem) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("problem", !!problem);
  }

  // ----- sign-in and connection -----

  function signInError(text) {
    $("signin-error").textContent = text;
    $("signin-button").disabled = false;
  }

  $("signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const address = plainAor($("address").value);
    const password = $("password").value;
    if (!/^[^@\s]+@[^@\s]+$/.test(address)) {
      signInError("Enter your sign-in address, like you@example.com.");
      $("address").focus();
      return;
    }
    if (!password) {
      signInError("Enter your password.");
      $("password").focus();
      return;
    }
    if (typeof JsSIP === "undefined") {
      signInError("The SIP library did not load; reload the page.");
      return;
    }
    $("signin-error").textContent = "";
    $("signin-button").disabled = true;
    setStatus("Signing in…");
    start(address, password);
  });

  function start(address, password) {
    me = address;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new JsSIP.WebSocketInterface(`${scheme}://${location.host}/`);
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: `sip:${address}`,
      password,
      register: true,
      register_expires: 300,
      session_timers: false,
      user_agent: "confab-web-client (JsSIP)",
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    });
    ua.on("connected", () => {
      if (signedIn) setStatus("Connected again; signing in…");
    });
    ua.on("disconnected", () => {
      if (!ua) return;
      if (signedIn) {
        lostConnection = true;
        setStatus("Connection lost; retrying…", true);
      } else {
        setStatus("Cannot reach the server; retrying…", true);
      }
    });
    ua.on("registered", onRegistered);
    ua.on("registrationFailed", (e) => {
      const code = e.response ? e.response.status_code : 0;
      const C = JsSIP.C.causes;
      let text;
      if (e.cause === C.AUTHENTICATION_ERROR || e.cause === C.REJECTED || e.cause === C.NOT_FOUND) {
        text = "Wrong sign-in address or password (or the account is disabled).";
      } else if (code === 429 || code === 503) {
        text = "Too many attempts; wait a minute and try again.";
      } else if (e.cause === C.CONNECTION_ERROR || e.cause === C.REQUEST_TIMEOUT) {
        text = "Cannot reach the server.";
      } else {
        text = `Sign-in refused: ${e.response ? `${code} ${e.response.reason_phrase}` : e.cause}.`;
      }
      if (signedIn) {
        setStatus(`Signed out by the server: ${text}`, true);
      }
      stop();
      showSignIn(text);
    });
    ua.on("newMessage", onNewMessage);
    ua.on("newRTCSession", onNewSession);
    ua.start();
  }

  function onRegistered() {
    if (!signedIn) {
      signedIn = true;
      $("password").value = "";
      $("signin-view").hidden = true;
      $("app-view").hidden = false;
      $("signout").hidden = false;
      $("me-name").textContent = me;
      document.title = `confab: ${me}`;
      subscribeContacts();
      publish();
      $("my-state").focus();
    } else if (lostConnection) {
      // Subscriptions were bound to the old connection: make them again.
      lostConnection = false;
      resubscribeAll();
      publish();
    }
    setStatus(`Signed in as ${me}`);
  }

  function stop() {
    const old = ua;
    ua = null;
    if (publishTimer) clearTimeout(publishTimer);
    publishTimer = null;
    etag = null;
    publishing = false;
    publishAgain = false;
    const subs = [contactsSub, ...[...contacts.values()].map((c) => c.sub)];
    contactsSub = null;
    for (const c of contacts.values()) c.sub = null;
    for (const sub of subs) {
      if (sub) { try { sub.terminate(); } catch (_) { /* gone */ } }
    }
    contacts.clear();
    conversations.clear();
    if (session) { try { session.terminate(); } catch (_) { /* gone */ } }
    session = null;
    if (old) old.stop();
  }

  function showSignIn(error) {
    signedIn = false;
    current = "";
    $("app-view").hidden = true;
    $("signout").hidden = true;
    $("signin-view").hidden = false;
    $("contacts").replaceChildren();
    $("messages").replaceChildren();
    $("notices").replaceChildren();
    $("call").hidden = true;
    $("password").value = "";
    document.title = "confab";
    signInError(error || "");
    $(error ? "password" : "address").focus();
  }

  $("signout").addEventListener("click", () => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      stop();
      setStatus("Signed out");
      showSignIn("");
    };
    // Withdraw our published state first, so others see us offline at once.
    if (etag && ua) {
      sendPublish(null, 0, finish);
      setTimeout(finish, 2000);
    } else {
      finish();
    }
  });

  // ----- our own presence (PUBLISH, RFC 3903) -----

  function pidf(state, note) {
    const esc = (s) => s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]);
    const act = ACTIVITY[state];
    return '<?xml version="1.0" encoding="UTF-8"?>\n'
      + '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
      + ` xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:${esc(me)}">`
      + `<tuple id="web"><status><basic>open</basic></status>${note ? `<note>${esc(note)}</note>` : ""}</tuple>`
      + (act ? `<dm:person id="pweb"><rpid:activities>${act === "busy" || act === "away" ? `<rpid:${act}/>` : `<rpid:other>${act}</rpid:other>`}</rpid:activities></dm:person>` : "")
      + "</presence>";
  }

  // JsSIP has no PUBLISH of its own: its MESSAGE sender (digest, transactions,
  // responses) sends one when the method name it reads is PUBLISH for the call.
  function sendPublish(body, expires, done) {
    if (!ua) return;
    const headers = ["Event: presence", `Expires: ${expires}`];
    if (etag) headers.push(`SIP-If-Match: ${etag}`);
    const C = JsSIP.C;
    const method = C.MESSAGE;
    C.MESSAGE = "PUBLISH";
    try {
      ua.sendMessage(`sip:${me}`, body || "", {
        contentType: "application/pidf+xml",
        extraHeaders: headers,
        eventHandlers: {
          succeeded: (e) => {
            etag = expires > 0 ? e.response.getHeader("SIP-ETag") || null : null;
            if (done) done(true);
          },
          failed: (e) => {
            const code = e.response ? e.response.status_code : 0;
            if (code === 412 && etag) {
              etag = null; // the server forgot it: publish afresh
              if (expires > 0) sendPublish(body, expires, done);
              else if (done) done(true);
              return;
            }
            if (expires > 0) notice(`Could not set your status (${e.cause}).`);
            if (done) done(false);
          },
        },
      });
    } finally {
      C.MESSAGE = method;
    }
  }

  // One PUBLISH at a time (each needs the entity tag the previous one got);
  // a change made meanwhile is published when the one in flight is answered.
  let publishing = false;
  let publishAgain = false;
  function publish() {
    if (publishTimer) clearTimeout(publishTimer);
    publishTimer = null;
    $("me-dot").className = `dot ${myState}`;
    if (publishing) {
      publishAgain = true;
      return;
    }
    const settled = () => {
      publishing = false;
      if (publishAgain) {
        publishAgain = false;
        publish();
      }
    };
    if (myState === "available" && !myNote) {
      // Nothing to say beyond being signed in (the registration says that).
      if (etag) {
        publishing = true;
        sendPublish(null, 0, settled);
      }
      return;
    }
    publishing = true;
    sendPublish(pidf(myState, myNote), PUBLISH_EXPIRES, (ok) => {
      if (ok && !publishAgain) publishTimer = setTimeout(publish, PUBLISH_EXPIRES * 800);
      settled();
    });
  }

  $("my-state").addEventListener("change", () => {
    myState = $("my-state").value;
    publish();
  });
  const setNote = () => {
    myNote = $("my-note").value.trim();
    publish();
  };
  $("set-note").addEventListener("click", setNote);
  $("my-note").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); setNote(); } });

  // ----- contacts (the roaming contact list confab stores) and their presence -----

  function subscribeContacts() {
    const sub = ua.subscribe(`sip:${me}`, "vnd-microsoft-roaming-contacts",
      "application/vnd-microsoft-roaming-contacts+xml",
      { expires: 3600, contentType: "application/vnd-microsoft-roaming-contacts+xml" });
    contactsSub = sub;
    sub.on("notify", (_final, _req, body) => { if (body) onContactList(body); });
    sub.on("terminated", () => {
      // Ended by the server or a failure (not replaced by us): try again later.
      setTimeout(() => {
        if (ua && signedIn && !lostConnection && contactsSub === sub) subscribeContacts();
      }, 5000);
    });
    sub.subscribe();
  }

  function onContactList(xml) {
    const doc = new DOMParser().parseFromString(xml, "application/xml");
    const listed = new Set();
    for (const el of doc.getElementsByTagName("contact")) {
      const aor = plainAor(el.getAttribute("uri") || "");
      if (!aor.includes("@") || aor === me) continue;
      listed.add(aor);
      const c = ensureContact(aor, el.getAttribute("name") || "");
      c.inList = true;
    }
    for (const [aor, c] of contacts) {
      if (c.inList && !listed.has(aor) && !conversations.has(aor)) {
        const old = c.sub;
        c.sub = null;
        contacts.delete(aor);
        if (old) { try { old.terminate(); } catch (_) { /* gone */ } }
      }
    }
    renderContacts();
  }

  function ensureContact(aor, name) {
    let c = contacts.get(aor);
    if (!c) {
      c = { name, state: "offline", note: "", sub: null, inList: false, unread: 0 };
      contacts.set(aor, c);
      watch(aor, c);
    } else if (name) {
      c.name = name;
    }
    return c;
  }

  function watch(aor, c) {
    if (!ua) return;
    const sub = ua.subscribe(`sip:${aor}`, "presence", "application/pidf+xml",
      { expires: 600, contentType: "application/pidf+xml" });
    c.sub = sub;
    sub.on("notify", (_final, _req, body) => {
      if (!body || c.sub !== sub) return;
      const p = parsePidf(body);
      c.state = p.state;
      c.note = p.note;
      renderContacts();
    });
    sub.on("terminated", () => {
      if (c.sub !== sub) return;
      c.state = "offline";
      renderContacts();
      // Ended by the server or a failure: watch again later while still listed.
      setTimeout(() => {
        if (ua && signedIn && !lostConnection && c.sub === sub && contacts.get(aor) === c) watch(aor, c);
      }, 10000);
    });
    sub.subscribe();
  }

  function resubscribeAll() {
    const old = contactsSub;
    contactsSub = null;
    if (old) { try { old.terminate(); } catch (_) { /* gone */ } }
    subscribeContacts();
    for (const [aor, c] of contacts) {
      const old = c.sub;
      c.sub = null;
      if (old) { try { old.terminate(); } catch (_) { /* gone */ } }
      watch(aor, c);
    }
  }

  function parsePidf(xml) {
    const doc = new DOMParser().parseFromString(xml, "application/xml");
    const basic = [...doc.getElementsByTagName("basic")].map((b) => b.textContent.trim());
    const note = [...doc.getElementsByTagName("note")].map((n) => n.textContent.trim()).find((n) => n) || "";
    if (!basic.includes("open")) return { state: "offline", note };
    const tokens = [];
    for (const acts of doc.getElementsByTagNameNS("urn:ietf:params:xml:ns:pidf:rpid", "activities")) {
      for (const a of acts.children) tokens.push((a.localName === "other" ? a.textContent : a.localName).trim().toLowerCase());
    }
    const has = (...names) => tokens.some((t) => names.includes(t));
    let state = "available";
    if (has("do-not-disturb", "dnd", "presentation")) state = "dnd";
    else if (has("busy", "on-the-phone", "in-a-call", "meeting", "in-a-meeting", "in-a-conference", "appointment")) state = "busy";
    else if (has("be-right-back", "brb", "meal", "lunch", "out-to-lunch")) state = "brb";
    else if (has("away", "vacation", "holiday", "permanent-absence", "sleeping", "travel", "out-of-office", "off-work")) state = "away";
    else if ([...doc.getElementsByTagNameNS("urn:ietf:params:xml:ns:pidf:rpid", "user-input")].some((u) => u.textContent.trim() === "idle")) state = "away";
    return { state, note };
  }

  function renderContacts() {
    const ul = $("contacts");
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.aor : null;
    const rank = { available: 0, busy: 1, dnd: 1, brb: 2, away: 2, offline: 3 };
    const list = [...contacts.entries()].sort((a, b) =>
      rank[a[1].state] - rank[b[1].state] || (a[1].name || a[0]).localeCompare(b[1].name || b[0]));
    ul.replaceChildren(...list.map(([aor, c]) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.aor = aor;
      b.dataset.state = c.state;
      b.className = "contact";
      if (aor === current) b.setAttribute("aria-current", "true");
      const dot = document.createElement("span");
      dot.className = `dot ${c.state}`;
      dot.setAttribute("aria-hidden", "true");
      const who = document.createElement("span");
      who.className = "who";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = c.name || aor;
      const st = document.createElement("span");
      st.className = "state";
      st.textContent = STATES[c.state] + (c.name ? ` · ${aor}` : "");
      who.append(name, st);
      if (c.note) {
        const n = document.createElement("span");
        n.className = "note";
        n.textContent = c.note;
        who.append(n);
      }
      b.append(dot, who);
      if (c.unread) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = String(c.unread);
        badge.setAttribute("aria-label", `${c.unread} unread`);
        b.append(badge);
      }
      b.setAttribute("aria-label", `${c.name || aor}, ${STATES[c.state]}${c.note ? `, ${c.note}` : ""}${c.unread ? `, ${c.unread} unread` : ""}`);
      b.addEventListener("click", () => openConversation(aor));
      li.append(b);
      return li;
    }));
    $("no-contacts").hidden = contacts.size > 0;
    if (focused) {
      const again = ul.querySelector(`button[data-aor="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    const unread = [...contacts.values()].reduce((n, c) => n + c.unread, 0);
    document.title = unread ? `(${unread}) confab: ${me}` : `confab: ${me}`;
  }

  // ----- conversations (SIP MESSAGE) -----

  function openConversation(aor) {
    current = aor;
    const c = ensureContact(aor, "");
    c.unread = 0;
    $("conv-title").textContent = c.name ? `${c.name} (${aor})` : aor;
    for (const id of ["message", "send", "call-audio", "call-video"]) $(id).disabled = false;
    renderMessages();
    renderContacts();
    $("message").focus();
  }

  $("open-chat").addEventListener("submit", (e) => {
    e.preventDefault();
    const aor = plainAor($("other-address").value);
    if (!/^[^@\s]+@[^@\s]+$/.test(aor)) { notice("Enter an address like someone@example.com."); return; }
    $("other-address").value = "";
    openConversation(aor);
  });

  function addLine(aor, line) {
    if (!conversations.has(aor)) conversations.set(aor, []);
    const lines = conversations.get(aor);
    lines.push({ at: new Date(), ...line });
    if (lines.length > 500) lines.shift();
    if (aor === current) renderMessages();
  }

  function renderMessages() {
    const ol = $("messages");
    const lines = conversations.get(current) || [];
    ol.replaceChildren(...lines.map((l) => {
      const li = document.createElement("li");
      li.className = l.system ? "system" : l.mine ? "mine" : "theirs";
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `${l.system ? "" : l.mine ? "You" : (contacts.get(current)?.name || current)} ${l.at.toLocaleTimeString()}`;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = l.text;
      li.append(meta, text);
      return li;
    }));
    ol.scrollTop = ol.scrollHeight;
  }

  $("compose").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("message").value;
    if (!text.trim() || !current || !ua) return;
    const to = current;
    $("message").value = "";
    addLine(to, { mine: true, text });
    ua.sendMessage(`sip:${to}`, text, {
      contentType: "text/plain",
      eventHandlers: {
        failed: (ev) => {
          const C = JsSIP.C.causes;
          const why = ev.cause === C.UNAVAILABLE || ev.cause === C.NOT_FOUND
            ? `${to} is offline; the message was not delivered.`
            : ev.cause === C.REJECTED ? "The message was refused."
              : ev.cause === C.CONNECTION_ERROR || ev.cause === C.REQUEST_TIMEOUT ? "Connection problem; the message was not delivered."
                : `The message was not delivered (${ev.cause}).`;
          addLine(to, { system: true, text: why });
        },
      },
    });
  });

  function onNewMessage(e) {
    if (e.originator !== "remote") return;
    const req = e.request;
    const ct = (req.getHeader("Content-Type") || "text/plain").toLowerCase();
    if (!ct.startsWith("text/plain") || !req.body) return; // typing notices and the like
    const from = aorOf(req.from.uri);
    const c = ensureContact(from, req.from.display_name || "");
    addLine(from, { mine: false, text: req.body });
    if (from !== current || document.hidden) {
      c.unread += 1;
      notice(`New message from ${c.name || from}`, [["Open", () => openConversation(from)]]);
    }
    renderContacts();
  }

  // ----- notices -----

  function notice(text, actions = [], id = "") {
    const div = document.createElement("div");
    div.className = "notice";
    div.setAttribute("role", "alert");
    if (id) div.id = id;
    const span = document.createElement("span");
    span.textContent = text;
    div.append(span);
    const close = () => div.remove();
    for (const [label, fn] of actions) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.addEventListener("click", () => { close(); fn(); });
      div.append(b);
    }
    const x = document.createElement("button");
    x.type = "button";
    x.textContent = "Dismiss";
    x.addEventListener("click", close);
    div.append(x);
    $("notices").append(div);
    while ($("notices").children.length > 5) $("notices").firstChild.remove();
    return div;
  }

  // ----- calls (WebRTC through JsSIP; confab relays the signalling) -----

  function callState(text) {
    $("call").hidden = false;
    $("call-state").textContent = text;
  }

  function startCall(video) {
    if (!ua || !current) return;
    if (session) { notice("Hang up the current call first."); return; }
    const to = current;
    callState(`Calling ${to}…`);
    try {
      const s = ua.call(`sip:${to}`, {
        mediaConstraints: { audio: true, video },
        pcConfig: { iceServers: [] },
      });
      track(s, to);
    } catch (err) {
      callState(`The call could not start: ${err.message}`);
    }
  }
  $("call-audio").addEventListener("click", () => startCall(false));
  $("call-video").addEventListener("click", () => startCall(true));

  function onNewSession(e) {
    const s = e.session;
    if (e.originator !== "remote") return;
    const from = aorOf(s.remote_identity.uri);
    if (session) { s.terminate({ status_code: 486, reason_phrase: "Busy Here" }); return; }
    const c = ensureContact(from, s.remote_identity.display_name || "");
    renderContacts();
    const video = !!(e.request.body && /m=video/.test(e.request.body));
    track(s, from);
    openConversation(from);
    callState(`Incoming ${video ? "video " : ""}call from ${c.name || from}`);
    $("answer").hidden = false;
    $("answer-video").hidden = !video;
    const n = notice(`Incoming ${video ? "video " : ""}call from ${c.name || from}`,
      [["Answer", () => answer(false)]], "incoming-call");
    s.on("ended", () => n.remove());
    s.on("failed", () => n.remove());
    $("answer").focus();
  }

  function answer(video) {
    if (!session) return;
    $("answer").hidden = true;
    $("answer-video").hidden = true;
    const n = $("incoming-call");
    if (n) n.remove();
    session.answer({ mediaConstraints: { audio: true, video }, pcConfig: { iceServers: [] } });
  }
  $("answer").addEventListener("click", () => answer(false));
  $("answer-video").addEventListener("click", () => answer(true));
  $("hangup").addEventListener("click", () => {
    if (session) session.terminate();
    else $("call").hidden = true;
  });

  function attachMedia(s) {
    const pc = s.connection;
    if (!pc) return;
    const remote = new MediaStream(pc.getReceivers().map((r) => r.track).filter((t) => t && t.readyState === "live"));
    $("remote-video").srcObject = remote;
    $("remote-audio").srcObject = remote;
    const local = new MediaStream(pc.getSenders().map((r) => r.track).filter((t) => t && t.kind === "video"));
    $("local-video").srcObject = local.getTracks().length ? local : null;
  }

  function track(s, who) {
    session = s;
    const done = (text) => {
      if (session !== s) return;
      session = null;
      $("answer").hidden = true;
      $("answer-video").hidden = true;
      $("remote-video").srcObject = null;
      $("remote-audio").srcObject = null;
      $("local-video").srcObject = null;
      callState(text);
      addLine(who, { system: true, text });
    };
    s.on("progress", () => { if (s.direction === "outgoing") callState(`Ringing ${who}…`); });
    s.on("confirmed", () => {
      callState(`In a call with ${who}`);
      attachMedia(s);
      $("hangup").focus();
    });
    s.on("peerconnection", (ev) => {
      ev.peerconnection.addEventListener("track", () => attachMedia(s));
    });
    s.on("ended", (ev) => done(ev.originator === "local" ? "Call ended." : `Call ended by ${who}.`));
    s.on("failed", (ev) => {
      const C = JsSIP.C.causes;
      const why = {
        [C.BUSY]: `${who} is busy.`,
        [C.REJECTED]: `${who} declined the call.`,
        [C.UNAVAILABLE]: `${who} is offline.`,
        [C.NOT_FOUND]: `${who} is offline or unknown.`,
        [C.CANCELED]: ev.originator === "local" ? "Call cancelled." : `Missed call from ${who}.`,
        [C.NO_ANSWER]: `${who} did not answer.`,
        [C.USER_DENIED_MEDIA_ACCESS]: "The browser refused the microphone or camera.",
        [C.CONNECTION_ERROR]: "Connection problem; the call ended.",
      }[ev.cause] || `The call failed (${ev.cause}).`;
      done(why);
    });
  }

  window.addEventListener("beforeunload", () => { if (ua) ua.stop(); });
})();
