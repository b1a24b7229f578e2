// The browser page, driven by playwright-core with Debian's chromium (headless): sign in,
// upload code from the editor, see its log line appear in the live console, type a console
// command and see its result, watch the CPU plot fill. The page must load nothing from
// anywhere but the server. A screenshot is saved as a test artefact
// ($ISOWORLD_ARTIFACTS/page.png, ctest sets it to <build>/artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer, tempDir, removeDir, sleep } from './lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.ISOWORLD_ARTIFACTS || path.resolve(here, 'artifacts');
const CHROMIUM = process.env.ISOWORLD_CHROMIUM || '/usr/bin/chromium';

let server, dir, profile, context, page;
const foreign = []; // requests to anywhere but the server

const CODE = [
  '// a small bot: counts ticks in Memory, logs, and does some work',
  'module.exports.loop = function () {',
  'Memory.ticks = (Memory.ticks || 0) + 1;',
  'let x = 0;',
  'for (let i = 0; i < 150000 * (1 + Game.time % 4); i++) x += Math.sqrt(i);',
  "console.log('hello from the page, tick', Game.time, '<b>not bold</b>');",
  "if (Game.time % 5 === 0) console.log('Memory.ticks is', Memory.ticks);",
  '};',
];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: tools/bootstrap.sh --browser installs it`);
  dir = tempDir();
  profile = tempDir('isoworld-chromium-');
  server = await startServer(dir, ['--tick-ms', '100']);
  const r = await fetch(`${server.url}/api/register/submit`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'ada', email: 'ada@example.org', password: 'ada-lovelace-1815' }),
  }).then((x) => x.json());
  assert.deepEqual(r, { ok: 1 });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
  });
  page = context.pages()[0] || await context.newPage();
  page.on('request', (req) => { if (!req.url().startsWith(server.url)) foreign.push(req.url()); });
  page.on('pageerror', (err) => { throw err; });
});

after(async () => {
  if (context) await context.close();
  if (server) await server.stop();
  if (dir) removeDir(dir);
  if (profile) removeDir(profile);
});

test('the page is served at / and signs in', async () => {
  await page.goto(`${server.url}/`);
  await page.waitForSelector('#login-form');
  await page.fill('#login-user', 'ada');
  await page.fill('#login-pass', 'ada-lovelace-1815');
  await page.click('#login-submit');
  await page.waitForSelector('#app:not([hidden])');
  assert.equal(await page.textContent('#who'), 'ada');
  await page.waitForSelector('#ws-state.on', { timeout: 10000 });
  assert.equal(await page.evaluate(() => typeof window.CodeMirror), 'function', 'the editor component was built in');
});

test('code typed in the editor is uploaded, and its log line appears', async () => {
  await page.click('.CodeMirror');
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  for (const l of CODE) {
    await page.keyboard.type(l);
    await page.keyboard.press('Enter');
  }
  await page.click('#upload');
  await page.waitForSelector('#code-status:has-text("uploaded")');
  const line = await page.waitForSelector('#console-output div:has-text("hello from the page, tick")', { timeout: 10000 });
  // escaped by the server, shown as text
  assert.match(await line.textContent(), /hello from the page, tick \d+ <b>not bold<\/b>/);
  assert.equal(await line.$('b'), null);
  // what was uploaded is what was typed
  const r = await page.evaluate(async () => {
    const res = await fetch('/api/user/code', { headers: { 'X-Token': window.isoworld.state.token } });
    return res.json();
  });
  assert.match(r.modules.main, /hello from the page, tick/);
  // CPU and Memory of every run are plotted
  await page.waitForFunction(() => window.isoworld.state.points.length >= 50, null, { timeout: 20000 });
  const last = await page.evaluate(() => window.isoworld.state.points.at(-1));
  assert.ok(last.memory > 2, 'Memory grew');
  assert.match(await page.textContent('#plot-readout'), /CPU \d+ ms of 100/);
});

test('a console command typed in the page shows its result', async () => {
  await page.fill('#console-input', "Memory.ticks > 0 ? 'ticks counted: ' + (6 * 7) : 'none'");
  await page.press('#console-input', 'Enter');
  await page.waitForSelector('#console-output .result:has-text("ticks counted: 42")', { timeout: 10000 });
  await page.fill('#console-input', 'nosuch.thing');
  await page.press('#console-input', 'Enter');
  await page.waitForSelector('#console-output .result:has-text("ReferenceError")', { timeout: 10000 });
});

test('a screenshot of the page is saved', async () => {
  await sleep(150);
  mkdirSync(artifacts, { recursive: true });
  const file = path.join(artifacts, 'page.png');
  await page.screenshot({ path: file });
  assert.ok(existsSync(file));
});

test('the page loaded nothing from outside the server', () => {
  assert.deepEqual(foreign, []);
});
