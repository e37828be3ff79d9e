// The Persistent Chat room pages in headless Chromium, driven by playwright-core
// (Debian's /usr/bin/chromium). Run by crates/acceptance/tests/chat_web.rs, which
// starts confab, sets up the category with the CLI and checks the CLI's view of
// the room afterwards (and a member joins it from pidgin-sipe).
//
// Environment: CONFAB_URL (https://127.0.0.1:PORT), CREATOR, CREATOR_PW, OTHER
// (a user who is no creator), OTHER_PW, CATEGORY, ROOM, MEMBERS (comma-separated),
// MEMBER and MEMBER_PW (a member of FILE_ROOM, whose category takes files),
// SHOT_DIR, CHROMIUM (optional).
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
const room = env("ROOM");
const members = env("MEMBERS").split(",");
mkdirSync(shots, { recursive: true });
const step = (text) => console.log(`step: ${text}`);
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
  ],
  ignoreHTTPSErrors: true,
  viewport: { width: 1280, height: 800 },
  timeout: 30_000,
});

async function signIn(page, address, password) {
  await page.goto(`${base}/chat/rooms`);
  expect(page.url().endsWith("/chat/signin"), `an unauthenticated visit lands on the sign-in page, at ${page.url()}`);
  await page.fill("#address", "");
  await page.focus("#address");
  await page.keyboard.type(address);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/chat\/rooms$/);
  await page.waitForFunction((a) => document.getElementById("who").textContent.includes(a), address);
}

let failed = false;
try {
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });

  step("the sign-in page refuses a wrong password in words");
  await page.goto(`${base}/chat/rooms`);
  await page.waitForURL(/\/chat\/signin$/);
  await page.fill("#address", env("CREATOR"));
  await page.fill("#password", "not-the-password");
  await page.click("#submit");
  await page.waitForFunction(() => /wrong address or password/.test(document.getElementById("error").textContent));
  await page.screenshot({ path: join(shots, "chat-signin.png") });

  step("the category creator signs in with the keyboard alone");
  await signIn(page, env("CREATOR"), env("CREATOR_PW"));
  await page.waitForSelector("#create-box:not([hidden])");
  expect(await page.isHidden("#not-creator"), "a creator is not told they cannot create rooms");

  step("the creator creates a Closed room with two members, with the keyboard");
  await page.focus("#create-box summary");
  await page.keyboard.press("Enter");
  await page.focus("#create-name");
  await page.keyboard.type(room);
  await page.selectOption("#create-category", env("CATEGORY"));
  await page.fill("#create-description", "Reviews of the designs");
  await page.selectOption("#create-privacy", "closed");
  await page.fill("#create-members", members.join(", "));
  await page.focus("#create-submit");
  await page.keyboard.press("Enter");
  const card = `article[data-room="${room}"]`;
  await page.waitForSelector(card);
  expect((await page.textContent("#notice")).includes("created"), "a notice confirms the creation");
  const shown = await page.textContent(`${card} .members`);
  for (const m of members) expect(shown.includes(m), `the room lists member ${m}: ${shown}`);
  expect((await page.textContent(`${card} .managers`)).includes(env("CREATOR")), "the creator manages the room");
  expect((await page.textContent(`${card} .privacy`)).trim() === "closed", "the room is Closed");

  step("creating it again is refused in words (names are unique)");
  if (!(await page.isVisible("#create-name"))) await page.click("#create-box summary");
  await page.fill("#create-name", room.toUpperCase());
  await page.click("#create-submit");
  await page.waitForFunction(() => /already exists/.test(document.getElementById("error").textContent));

  step("the manager edits the description");
  await page.click(`${card} details summary`);
  await page.fill(`${card} input[name="description"]`, "Design reviews, Thursdays");
  await page.click(`${card} button[type="submit"]`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.includes("Thursdays"), `${card} p.hint`);
  await page.screenshot({ path: join(shots, "chat-rooms.png"), fullPage: true });

  step("a change without the CSRF token is refused, from inside the signed-in page");
  const noCsrf = await page.evaluate(async (r) => {
    const res = await fetch("/chat/api/rooms/disable", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ room: r }),
    });
    return { status: res.status, body: await res.text() };
  }, room);
  expect(noCsrf.status === 403 && /CSRF/.test(noCsrf.body), `no CSRF token: ${JSON.stringify(noCsrf)}`);

  step("the room page is readable on a phone");
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/chat/rooms`);
  await phone.waitForSelector(card);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, `no sideways scrolling on a phone (overflow ${overflow}px)`);
  await phone.screenshot({ path: join(shots, "chat-rooms-phone.png"), fullPage: true });
  await phone.close();

  step("signing out ends the session");
  await page.click("#signout");
  await page.waitForURL(/\/chat\/signin$/);
  const after = await page.evaluate(async () => (await fetch("/chat/api/session")).status);
  expect(after === 401, `session API after sign-out answers ${after}`);

  step("a member posts a file in a room whose category takes files, and downloads it from the list");
  await signIn(page, env("MEMBER"), env("MEMBER_PW"));
  await page.waitForSelector("#files-box:not([hidden])");
  await page.selectOption("#upload-room", { label: env("FILE_ROOM") });
  const fileText = `notes from the browser ${Date.now()} ü\n`.repeat(40);
  await page.setInputFiles("#upload-file", {
    name: "browser-notes.txt", mimeType: "text/plain", buffer: Buffer.from(fileText, "utf8"),
  });
  await page.click("#upload-submit");
  const item = '#files li[data-file="browser-notes.txt"]';
  await page.waitForSelector(item);
  expect((await page.textContent("#notice")).includes("posted"), "a notice confirms the file post");
  const href = await page.getAttribute(`${item} a`, "href");
  const got = await page.evaluate(async (h) => {
    const res = await fetch(h, { credentials: "same-origin" });
    return { status: res.status, text: await res.text() };
  }, href);
  expect(got.status === 200 && got.text === fileText, `the listed file downloads the same bytes (${got.status}, ${got.text.length} chars)`);
  await page.screenshot({ path: join(shots, "chat-files.png"), fullPage: true });
  await page.click("#signout");
  await page.waitForURL(/\/chat\/signin$/);

  step("a user who is no creator is told so, and the server refuses their room");
  await signIn(page, env("OTHER"), env("OTHER_PW"));
  await page.waitForSelector("#not-creator:not([hidden])");
  expect(await page.isHidden("#create-box"), "no creation form for a non-creator");
  expect(await page.isHidden(card), "the non-creator does not manage the room");
  const refused = await page.evaluate(async ([cat]) => {
    const s = await (await fetch("/chat/api/session")).json();
    const res = await fetch("/chat/api/rooms", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": s.csrf },
      body: JSON.stringify({ name: "Not mine", category: cat, privacy: "open" }),
    });
    return { status: res.status, body: await res.text() };
  }, [env("CATEGORY")]);
  expect(refused.status === 403 && /not a creator/.test(refused.body), `a non-creator's room: ${JSON.stringify(refused)}`);
  await page.screenshot({ path: join(shots, "chat-rooms-not-creator.png"), fullPage: true });

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
