// The confab browser client (/client/) in headless Chromium, driven by
// playwright-core (Debian's /usr/bin/chromium, fake camera and microphone). Run
// by crates/acceptance/tests/web_client.rs, which starts confab (HTTPS), the users
// and their contact lists with the CLI, and (when baresip is installed) a baresip
// user driven by tests/clients/baresip/web_peer.py at the same time.
//
// Environment: CONFAB_URL (https://127.0.0.1:PORT), ALICE, ALICE_PW, BOB, BOB_PW,
// SHOT_DIR, CHROMIUM (optional); with a baresip peer: CAROL (its address),
// CAROL_TEXT (what it sends), ALICE_TEXT (alice's answer); with desktop users
// watching alice's presence: PEER_DONE (comma-separated files each of them
// creates when done; alice is busy until then).
// Prints one line per step; exits non-zero on the first failed expectation.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env("CONFAB_URL");
const shots = env("SHOT_DIR");
const ALICE = env("ALICE");
const BOB = env("BOB");
const CAROL = process.env.CAROL || "";
mkdirSync(shots, { recursive: true });
const t0 = Date.now();
const step = (text) => console.log(`step (${((Date.now() - t0) / 1000).toFixed(1)} s): ${text}`);
const expect = (cond, what) => {
  if (!cond) throw new Error(`expectation failed: ${what}`);
};

const profile = mkdtempSync(join(tmpdir(), "confab-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
  ],
  ignoreHTTPSErrors: true,
  viewport: { width: 1280, height: 800 },
  timeout: 30_000,
});
let failed = false;
const consoleErrors = [];

// One signed-in user: a page of the shared browser.
async function open() {
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
  return page;
}

async function signIn(page, address, password) {
  await page.goto(`${base}/client/`);
  await page.waitForSelector("#signin-view:not([hidden])");
  // With the keyboard alone: the address field has the focus.
  await page.keyboard.type(address);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#app-view:not([hidden])");
  const status = await page.textContent("#status");
  expect(status.includes(`Signed in as ${address}`), `status after sign-in: ${status}`);
}

const contact = (aor) => `#contacts button[data-aor="${aor}"]`;
async function seesState(page, aor, state, timeout = 15_000) {
  await page.waitForSelector(`${contact(aor)}[data-state="${state}"]`, { timeout });
}
async function lastMessage(page, text, timeout = 15_000) {
  await page.waitForFunction((t) => [...document.querySelectorAll("#messages li .text")]
    .some((li) => li.textContent === t), text, { timeout });
}
async function say(page, text) {
  await page.focus("#message");
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
  await lastMessage(page, text, 5_000);
}
async function callState(page, re, timeout = 20_000) {
  await page.waitForFunction((src) => new RegExp(src).test(document.getElementById("call-state").textContent),
    re.source, { timeout });
}

try {
  context.setDefaultTimeout(15_000);
  const a = await open();

  step("the sign-in page answers without a session; its files are served");
  const first = await a.goto(`${base}/client/`);
  expect(first.ok(), "the sign-in page answered 200");
  expect((first.headers()["content-security-policy"] || "").includes("default-src 'self'"), "a Content-Security-Policy");
  expect((first.headers()["strict-transport-security"] || "").includes("max-age="), "HSTS");
  await a.waitForFunction(() => typeof JsSIP !== "undefined" && JsSIP.UA);
  await a.screenshot({ path: join(shots, "client-signin.png") });
  const answers = await a.evaluate(async () => {
    const st = async (path) => (await fetch(path)).status;
    return {
      js: await st("/client/static/client.js"),
      lib: await st("/client/static/jssip.min.js"),
      licence: await st("/client/static/JSSIP-LICENSE"),
      unknown: await st("/client/static/..%2F..%2FCargo.toml"),
      admin: await st("/admin/api/users"),
    };
  });
  expect(answers.js === 200 && answers.lib === 200 && answers.licence === 200, `static files: ${JSON.stringify(answers)}`);
  expect(answers.unknown === 404, `unknown file refused: ${JSON.stringify(answers)}`);
  expect(answers.admin === 401, `no data without signing in: ${JSON.stringify(answers)}`);

  step("a wrong password is refused in words, and the password field is cleared");
  await a.fill("#address", ALICE);
  await a.fill("#password", "not-the-password");
  await a.press("#password", "Enter");
  await a.waitForFunction(() => /Wrong sign-in address or password/.test(document.getElementById("signin-error").textContent));
  expect(await a.inputValue("#password") === "", "password field emptied");
  expect(await a.isVisible("#signin-view"), "still on the sign-in form");

  step("alice and bob sign in over WSS and see each other online");
  await signIn(a, ALICE, env("ALICE_PW"));
  const b = await open();
  await signIn(b, BOB, env("BOB_PW"));
  await seesState(a, BOB, "available");
  await seesState(b, ALICE, "available");
  const cookies = await context.cookies();
  expect(cookies.length === 0, `no cookie holds anything (${cookies.map((c) => c.name)})`);
  const stored = await a.evaluate(() => localStorage.length + sessionStorage.length);
  expect(stored === 0, "nothing in the browser's storage");

  step("alice sets herself away with a note; bob sees both");
  await a.selectOption("#my-state", "away");
  await a.fill("#my-note", "In the lab until 3");
  await a.press("#my-note", "Enter");
  await seesState(b, ALICE, "away");
  await b.waitForFunction((s) => (document.querySelector(s)?.textContent || "").includes("In the lab until 3"), contact(ALICE));
  step("alice is available again");
  await a.selectOption("#my-state", "available");
  await a.fill("#my-note", "");
  await a.press("#my-note", "Enter");
  await seesState(b, ALICE, "available");
  await b.waitForFunction((s) => !(document.querySelector(s)?.textContent || "").includes("In the lab"), contact(ALICE));

  step("alice IMs bob; bob is notified and reads it");
  await a.click(contact(BOB));
  await say(a, "Hello Bob, from the browser");
  await b.waitForSelector(".notice >> text=New message from");
  await b.waitForSelector(`${contact(ALICE)} .badge`);
  await b.click(contact(ALICE));
  await lastMessage(b, "Hello Bob, from the browser");

  step("bob answers; alice reads it");
  await say(b, "Hi Alice, got it");
  await lastMessage(a, "Hi Alice, got it");
  await a.screenshot({ path: join(shots, "client-contacts.png") });

  step("alice video-calls bob; bob is notified and answers; media flows both ways");
  await a.click("#call-video");
  await b.waitForSelector("#incoming-call");
  await callState(b, /Incoming video call from/);
  await b.click("#answer-video");
  await callState(a, /In a call with/);
  await callState(b, /In a call with/);
  const playing = (page) => page.waitForFunction(() => {
    const v = document.getElementById("remote-video");
    return v.srcObject && v.videoWidth > 0 && v.currentTime > 0;
  }, null, { timeout: 20_000 });
  await playing(a);
  await playing(b);
  await a.screenshot({ path: join(shots, "client-call.png") });

  step("alice hangs up; both pages show it");
  await a.click("#hangup");
  await callState(a, /Call ended\./);
  await callState(b, /Call ended by/);

  if (CAROL) {
    step("alice sees the baresip user online, reads its IM and answers");
    await seesState(a, CAROL, "available", 30_000);
    await a.click(contact(CAROL));
    await lastMessage(a, env("CAROL_TEXT"), 30_000);
    await say(a, env("ALICE_TEXT"));
  }
  const peersDone = (process.env.PEER_DONE || "").split(",").filter((f) => f);
  if (peersDone.length) {
    step("alice becomes busy (for the desktop users watching her)");
    await a.selectOption("#my-state", "busy");
    await a.waitForTimeout(300);
  }

  step("the client is readable on a phone");
  const phone = await open();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/client/`);
  await phone.waitForSelector("#signin-view:not([hidden])");
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, `no sideways scrolling on a phone (overflow ${overflow}px)`);
  await phone.screenshot({ path: join(shots, "client-phone.png"), fullPage: true });
  await phone.close();

  step("bob signs out; alice sees him offline");
  await b.click("#signout");
  await b.waitForSelector("#signin-view:not([hidden])");
  await seesState(a, BOB, "offline");

  if (peersDone.length) {
    step("alice stays signed in until the desktop users are done");
    const until = Date.now() + 90_000;
    while (!peersDone.every((f) => existsSync(f)) && Date.now() < until) await a.waitForTimeout(200);
    expect(peersDone.every((f) => existsSync(f)), `the desktop users finished (${peersDone})`);
  }

  expect(consoleErrors.filter((e) => !/Failed to load resource|WebSocket/.test(e)).length === 0,
    `no script errors: ${consoleErrors.join(" | ")}`);
  console.log("RESULT: ok");
} catch (e) {
  failed = true;
  console.log(`RESULT: FAILED: ${e.message}`);
  if (consoleErrors.length) console.log(`browser console errors: ${consoleErrors.join(" | ")}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
