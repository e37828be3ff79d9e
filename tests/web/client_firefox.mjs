// The confab browser client (/client/) in headless Firefox: Debian's firefox-esr
// driven by puppeteer-core over WebDriver BiDi (no browser download). Run by
// crates/acceptance/tests/web_client.rs on its server after the Chromium run.
// Two users sign in over WSS, see each other online and exchange IMs both ways.
//
// Environment: CONFAB_URL (https://127.0.0.1:PORT), ALICE, ALICE_PW, BOB, BOB_PW,
// SHOT_DIR, FIREFOX (optional, default /usr/bin/firefox-esr).
// Prints one line per step; exits non-zero on the first failed expectation.

import puppeteer from "puppeteer-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
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
mkdirSync(shots, { recursive: true });
const t0 = Date.now();
const step = (text) => console.log(`step (${((Date.now() - t0) / 1000).toFixed(1)} s): ${text}`);
const expect = (cond, what) => {
  if (!cond) throw new Error(`expectation failed: ${what}`);
};

const profile = mkdtempSync(join(tmpdir(), "confab-firefox-"));
let browser = null;
let failed = false;
const errors = [];
try {
  browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
    headless: true,
    userDataDir: profile,
    acceptInsecureCerts: true,
    defaultViewport: { width: 1280, height: 800 },
    timeout: 60_000,
    extraPrefsFirefox: { "media.navigator.streams.fake": true, "media.navigator.permission.disabled": true },
  });
  step(`firefox ${await browser.version()}`);

  const open = async () => {
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    return page;
  };
  const signIn = async (page, address, password) => {
    await page.goto(`${base}/client/`);
    await page.waitForSelector("#signin-view:not([hidden])");
    await page.focus("#address");
    await page.keyboard.type(address);
    await page.keyboard.press("Tab");
    await page.keyboard.type(password);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#app-view:not([hidden])");
    const status = await page.$eval("#status", (e) => e.textContent);
    expect(status.includes(`Signed in as ${address}`), `status after sign-in: ${status}`);
  };
  const contact = (aor) => `#contacts button[data-aor="${aor}"]`;
  const lastMessage = (page, text) => page.waitForFunction((t) => [...document.querySelectorAll("#messages li .text")]
    .some((li) => li.textContent === t), {}, text);
  const say = async (page, text) => {
    await page.focus("#message");
    await page.keyboard.type(text);
    await page.keyboard.press("Enter");
    await lastMessage(page, text);
  };

  step("a wrong password is refused in words");
  const a = await open();
  await a.goto(`${base}/client/`);
  await a.waitForSelector("#signin-view:not([hidden])");
  await a.type("#address", ALICE);
  await a.type("#password", "not-the-password");
  await a.keyboard.press("Enter");
  await a.waitForFunction(() => /Wrong sign-in address or password/.test(document.getElementById("signin-error").textContent));

  step("alice and bob sign in over WSS in Firefox and see each other online");
  await signIn(a, ALICE, env("ALICE_PW"));
  const b = await open();
  await signIn(b, BOB, env("BOB_PW"));
  // Online in any state: when this runs after the Chromium part, alice's
  // publication from that (closed) browser may still stand and aggregate to busy.
  const seesOnline = (page, aor) => page.waitForSelector(`${contact(aor)}:not([data-state="offline"])`);
  await seesOnline(a, BOB);
  await seesOnline(b, ALICE);

  step("alice IMs bob; bob reads it and answers; alice reads the answer");
  await a.click(contact(BOB));
  await say(a, "Hello Bob, from Firefox");
  await b.waitForSelector(`${contact(ALICE)} .badge`);
  await b.click(contact(ALICE));
  await lastMessage(b, "Hello Bob, from Firefox");
  await say(b, "Hi Alice, Firefox works");
  await lastMessage(a, "Hi Alice, Firefox works");
  await a.screenshot({ path: join(shots, "client-firefox.png") });

  step("both sign out");
  for (const p of [a, b]) {
    await p.click("#signout");
    await p.waitForSelector("#signin-view:not([hidden])");
  }
  expect(errors.length === 0, `no script errors: ${errors.join(" | ")}`);
  console.log("RESULT: ok");
} catch (e) {
  failed = true;
  console.log(`RESULT: FAILED: ${e.message}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
