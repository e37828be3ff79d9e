// The confab Control Panel in headless Chromium, driven by playwright-core (no
// browser download: Debian's /usr/bin/chromium). Run by
// crates/acceptance/tests/web_admin.rs, which starts confab, provisions the users
// with the CLI and checks the CLI's view of the changes afterwards.
//
// Environment: CONFAB_URL (https://127.0.0.1:PORT), ADMIN, ADMIN_PW, PLAIN_USER,
// PLAIN_PW, ADD_USER, ADD_PW, DISABLE_USER, VOICE_USER, ROOM, SHOT_DIR, CHROMIUM (optional).
// Prints one line per step; exits non-zero on the first failed expectation.

import { chromium } from "playwright-core";
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
mkdirSync(shots, { recursive: true });
const step = (text) => console.log(`step: ${text}`);
const expect = (cond, what) => {
  if (!cond) throw new Error(`expectation failed: ${what}`);
};

// A fresh profile directory (Chromium's --user-data-dir), removed at the end.
const profile = mkdtempSync(join(tmpdir(), "confab-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  ignoreHTTPSErrors: true,
  viewport: { width: 1280, height: 800 },
  timeout: 30_000,
});
let failed = false;
try {
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });

  step("an unauthenticated visit to the users page lands on the sign-in page");
  const first = await page.goto(`${base}/admin/users`);
  expect(page.url().endsWith("/admin/signin"), `redirected to sign-in, at ${page.url()}`);
  expect(first.ok(), "sign-in page answered 200");
  const hsts = (await first.request().redirectedFrom()?.response())?.headers()["strict-transport-security"]
    ?? first.headers()["strict-transport-security"];
  expect(hsts && hsts.includes("max-age="), `HSTS header present (${hsts})`);
  await page.screenshot({ path: join(shots, "signin.png") });

  step("a user without a role is refused, with the reason in words");
  await page.fill("#address", env("PLAIN_USER"));
  await page.fill("#password", env("PLAIN_PW"));
  await page.keyboard.press("Enter");
  await page.waitForSelector("#error:not([hidden])");
  const refusal = await page.textContent("#error");
  expect(/no Control Panel role/.test(refusal), `refusal names the reason: ${refusal}`);
  expect(page.url().endsWith("/admin/signin"), "still on the sign-in page");

  step("a wrong password is refused in words");
  await page.fill("#address", env("ADMIN"));
  await page.fill("#password", "not-the-password");
  await page.click("#submit");
  await page.waitForFunction(() => /wrong address or password/.test(document.getElementById("error").textContent));

  step("the administrator signs in with the keyboard alone");
  await page.fill("#address", "");
  await page.focus("#address");
  await page.keyboard.type(env("ADMIN"));
  await page.keyboard.press("Tab");
  await page.keyboard.type(env("ADMIN_PW"));
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/admin\/users$/);
  await page.waitForSelector(`tr[data-address="${env("DISABLE_USER")}"]`);
  expect((await page.textContent("#who")).includes(env("ADMIN")), "the page names who is signed in");

  step("the administrator adds a user");
  await page.click("#add-box summary");
  await page.fill("#add-address", env("ADD_USER"));
  await page.fill("#add-name", "Added In Browser");
  await page.fill("#add-password", env("ADD_PW"));
  await page.click("#add-submit");
  await page.waitForSelector(`tr[data-address="${env("ADD_USER")}"]`);
  expect((await page.textContent("#notice")).includes("added"), "a notice confirms the addition");

  step("adding the same user again shows the error in words");
  await page.click("#add-box summary").catch(() => {});
  if (!(await page.isVisible("#add-address"))) await page.click("#add-box summary");
  await page.fill("#add-address", env("ADD_USER"));
  await page.fill("#add-password", "x");
  await page.click("#add-submit");
  await page.waitForFunction(() => /already exists/.test(document.getElementById("error").textContent));

  step("the administrator disables another user");
  await page.click(`button[aria-label="Disable ${env("DISABLE_USER")}"]`);
  await page.waitForSelector(`tr[data-address="${env("DISABLE_USER")}"] .badge.off`);

  step("the administrator opens a user's contacts");
  await page.click(`button[aria-label="Contacts of ${env("ADMIN")}"]`);
  await page.waitForSelector("#contacts:not([hidden])");
  await page.screenshot({ path: join(shots, "users.png"), fullPage: true });

  step("a request without the CSRF token is refused, from inside the signed-in page");
  const noCsrf = await page.evaluate(async (addr) => {
    const r = await fetch("/admin/api/users/enable", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ address: addr }),
    });
    return { status: r.status, body: await r.text() };
  }, env("DISABLE_USER"));
  expect(noCsrf.status === 403 && /CSRF/.test(noCsrf.body), `no CSRF token: ${JSON.stringify(noCsrf)}`);

  step("the status page shows the live numbers and a chart");
  await page.goto(`${base}/admin/status`);
  await page.waitForSelector('dd[data-metric="confab_registrations"]');
  await page.waitForFunction(() => document.querySelectorAll("#chart polyline").length === 1, null, { timeout: 10_000 });
  await page.screenshot({ path: join(shots, "status.png"), fullPage: true });

  step("the topology page answers");
  await page.goto(`${base}/admin/topology`);
  await page.waitForFunction(() => document.getElementById("topology").textContent.length > 0);
  await page.screenshot({ path: join(shots, "topology.png"), fullPage: true });

  step("the voice page: the administrator adds a normalization rule and a route");
  await page.goto(`${base}/admin/voice`);
  await page.waitForSelector("#plans-table tr[data-name=global]");
  await page.click("#rule-box summary");
  await page.fill("#rule-owner", "global");
  await page.fill("#rule-name", "four-digit");
  await page.fill("#rule-pattern", "(\\d{4})");
  await page.fill("#rule-translation", "+1425555$1");
  await page.click("#rule-submit");
  await page.waitForSelector("#rules-table tr[data-name=four-digit]");
  expect((await page.textContent("#notice")).includes("added rule four-digit"), "the CLI's answer is shown");
  await page.click("#route-box summary");
  await page.fill("#route-name", "redmond");
  await page.fill("#route-pattern", "\\+1425\\d{7}");
  await page.fill("#route-usages", "local");
  await page.fill("#route-trunks", "gw1");
  await page.click("#route-submit");
  await page.waitForSelector("#routes-table tr[data-name=redmond]");

  step("a bad route is refused with the CLI's reason and changes nothing");
  await page.fill("#route-name", "broken");
  await page.fill("#route-pattern", "(");
  await page.fill("#route-usages", "local");
  await page.fill("#route-trunks", "gw1");
  await page.click("#route-submit");
  await page.waitForFunction(() => /nothing was changed/.test(document.getElementById("error").textContent));
  expect(!(await page.isVisible("#routes-table tr[data-name=broken]")), "the bad route is not listed");

  step("the test-number form explains a call");
  await page.fill("#test-user", env("VOICE_USER"));
  await page.fill("#test-dialed", "1234");
  await page.click("#test-submit");
  await page.waitForFunction(() => /\+14255551234/.test(document.getElementById("test-result").textContent));
  expect((await page.textContent("#test-result")).includes("redmond"), "the explanation names the route");

  step("keyboard only: open a form, fill it, submit it");
  await page.focus("#usage-box summary");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Tab");
  expect(await page.evaluate(() => document.activeElement.id === "usage-name"), "Tab moves from the summary to its first field");
  await page.keyboard.type("keyboard-usage");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#usages-table tr[data-name=keyboard-usage]");
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("main input, main select")]
    .filter((i) => i.type !== "hidden" && i.labels.length === 0).map((i) => i.id || i.name));
  expect(unlabelled.length === 0, `every field has a label (unlabelled: ${unlabelled.join(", ")})`);
  const unnamed = await page.evaluate(() => [...document.querySelectorAll("main button")]
    .filter((b) => !(b.getAttribute("aria-label") || b.textContent.trim())).length);
  expect(unnamed === 0, `every button has a name (${unnamed} without)`);
  for (const box of await page.$$("details")) await box.evaluate((d) => { d.open = true; });
  await page.screenshot({ path: join(shots, "voice.png"), fullPage: true });

  step("the chat page: the administrator adds a room and disables it");
  await page.goto(`${base}/admin/chat`);
  await page.waitForSelector("#categories-table tr[data-name=General]");
  expect(await page.isVisible('a[href="/chat/rooms"]'), "the page links to the chat rooms site");
  await page.click("#room-box summary");
  await page.fill("#room-name", env("ROOM"));
  await page.fill("#room-category", "General");
  await page.selectOption("#room-privacy", "open");
  await page.fill("#room-managers", env("VOICE_USER"));
  await page.click("#room-submit");
  await page.waitForSelector(`#rooms-table tr[data-name="${env("ROOM")}"]`);
  await page.click(`button[aria-label="Disable room ${env("ROOM")}"]`);
  await page.waitForSelector(`#rooms-table tr[data-name="${env("ROOM")}"] .badge.off`);
  await page.click("#chatpolicy-global-box summary");
  await page.selectOption("#chatpolicy-global-value", "enable");
  await page.click("#chatpolicy-global-submit");
  await page.waitForFunction(() => /is enabled/.test(document.getElementById("chat-global").textContent));
  await page.screenshot({ path: join(shots, "chat.png"), fullPage: true });

  step("the voice page is readable on a phone");
  const phoneVoice = await context.newPage();
  await phoneVoice.setViewportSize({ width: 390, height: 844 });
  await phoneVoice.goto(`${base}/admin/voice`);
  await phoneVoice.waitForSelector("#routes-table tr[data-name=redmond]");
  const voiceOverflow = await phoneVoice.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(voiceOverflow <= 1, `no sideways scrolling of the voice page on a phone (overflow ${voiceOverflow}px)`);
  await phoneVoice.screenshot({ path: join(shots, "voice-phone.png"), fullPage: true });
  await phoneVoice.close();

  step("the users page is readable on a phone");
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/admin/users`);
  await phone.waitForSelector(`tr[data-address="${env("ADD_USER")}"]`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, `no sideways scrolling of the page on a phone (overflow ${overflow}px)`);
  await phone.screenshot({ path: join(shots, "users-phone.png"), fullPage: true });

  step("signing out ends the session");
  await page.goto(`${base}/admin/users`);
  await page.waitForSelector("#signout");
  await page.click("#signout");
  await page.waitForURL(/\/admin\/signin$/);
  const after = await page.evaluate(async () => (await fetch("/admin/api/session")).status);
  expect(after === 401, `session API after sign-out answers ${after}`);

  expect(consoleErrors.filter((e) => !/401|403|409|Failed to load resource/.test(e)).length === 0,
    `no script errors: ${consoleErrors.join(" | ")}`);
  console.log("RESULT: ok");
} catch (e) {
  failed = true;
  console.log(`RESULT: FAILED: ${e.message}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
