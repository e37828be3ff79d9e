// Sign-in page of the Persistent Chat rooms (no framework, no build step).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("signin");
  const error = document.getElementById("error");
  const button = document.getElementById("submit");
  const show = (text) => {
    error.textContent = text;
    error.hidden = !text;
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const address = form.address.value.trim();
    const password = form.password.value;
    if (!address || !password) {
      show("Enter your SIP address and your password.");
      (address ? form.password : form.address).focus();
      return;
    }
    button.disabled = true;
    show("");
    try {
      const r = await fetch("/chat/api/signin", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ address, password }),
      });
      const body = await r.json().catch(() => ({}));
      if (r.ok) {
        location.assign("/chat/rooms");
        return;
      }
      show(body.error || `Sign-in failed (HTTP ${r.status}).`);
      form.password.select();
      form.password.focus();
    } catch (e) {
      show("The server cannot be reached: check your connection and try again.");
    } finally {
      button.disabled = false;
    }
  });
});
