// The browser page, driven by playwright-core with Debian's chromium (headless): sign in,
// upload code from the editor, see its log line appear in the live console, type a console
// command and see its result, watch the CPU plot fill, watch the room view: the player's
// room (given at registration) drawn from its terrain and the room:<NAME> channel, then the
// starter bot of server/demo/ uploaded elsewhere, loaded into the editor from the page's
// notice, and its creeps appearing in the view tick by tick. The page must load nothing from
// anywhere but the server. A screenshot is saved as a test artefact
// ($ISOWORLD_ARTIFACTS/page.png, ctest sets it to <build>/artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, existsSync, readFileSync } from 'node:fs';
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

test('the room view draws the player\'s room: terrain, Spawn1, then the bot\'s creeps, live', async () => {
  const start = await page.evaluate(async () => {
    const res = await fetch('/api/user/world-start-room', { headers: { 'X-Token': window.isoworld.state.token } });
    return res.json();
  });
  assert.equal(start.ok, 1);
  const room = start.room[0];
  await page.waitForSelector(`#room-canvas[data-room="${room}"][data-terrain="yes"]`, { timeout: 10000 });
  await page.waitForFunction(() => Number(document.getElementById('room-canvas').dataset.spawns) >= 1, null, { timeout: 10000 });
  // the live feed: a snapshot, then diffs that move gameTime on
  await page.waitForFunction(() => window.isoworld.state.room.live, null, { timeout: 10000 });
  const t1 = await page.evaluate(() => window.isoworld.state.room.gameTime);
  await page.waitForFunction((t) => window.isoworld.state.room.gameTime > t + 3, t1, { timeout: 10000 });
  assert.equal(await page.inputValue('#room-pick'), room);
  assert.match(await page.textContent('#room-readout'), new RegExp(`^${room} · tick \\d+ · controller level 1 \\(\\d+/200\\) of ada`));
  const drawn = await page.evaluate(() => window.isoworld.state.room.drawn);
  assert.equal(drawn.spawn, 1);
  assert.equal(drawn.controller, 1);
  assert.ok(drawn.source >= 1);
  // the canvas really shows something where the spawn is: not the terrain's colour
  const spawnPixel = await page.evaluate(() => {
    const c = document.getElementById('room-canvas');
    const s = Object.values(window.isoworld.state.room.objects).find((o) => o.type === 'spawn');
    const k = c.width / 50;
    return Array.from(c.getContext('2d').getImageData(Math.floor((s.x + 0.5) * k), Math.floor((s.y + 0.5) * k), 1, 1).data);
  });
  assert.notDeepEqual(spawnPixel.slice(0, 3), [44, 48, 57], 'the spawn is drawn over the plain');

  // The starter bot, uploaded with the API (as another tool would): the page offers to
  // load it; loaded, the editor shows it. Its creeps then appear in the room view.
  const demo = path.resolve(here, '../../server/demo');
  const modules = {};
  for (const m of ['main', 'role.harvester', 'role.upgrader', 'role.builder']) modules[m] = readFileSync(path.join(demo, `${m}.js`), 'utf8');
  const up = await page.evaluate(async (modules) => {
    const res = await fetch('/api/user/code', {
      method: 'POST',
      headers: { 'X-Token': window.isoworld.state.token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ branch: 'default', modules, _hash: 1 }),
    });
    return res.json();
  }, modules);
  assert.equal(up.ok, 1);
  await page.click('#code-notice button:has-text("load it")');
  await page.waitForSelector('#tabs button:has-text("role.harvester")');
  assert.match(await page.evaluate(() => window.isoworld.editor.getValue()), /roleHarvester\.run\(creep\)/);
  await page.waitForFunction(() => Number(document.getElementById('room-canvas').dataset.creeps) >= 2, null, { timeout: 40000 });
  // what the page merged is what the server says (give or take a tick or two of motion)
  const { merged, served } = await page.evaluate(async (room) => {
    const r = await fetch(`/api/game/room-objects?room=${room}`).then((x) => x.json());
    const count = (objs) => objs.reduce((m, o) => ({ ...m, [o.type]: (m[o.type] || 0) + 1 }), {});
    return { merged: count(Object.values(window.isoworld.state.room.objects)), served: count(r.objects) };
  }, room);
  assert.equal(merged.spawn, served.spawn);
  assert.equal(merged.source, served.source);
  assert.ok(Math.abs(merged.creep - served.creep) <= 1, `creeps: ${merged.creep} merged, ${served.creep} served`);
  // hovering a tile names it and what is on it
  const box = await page.$eval('#room-canvas', (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width }; });
  const spawn = await page.evaluate(() => Object.values(window.isoworld.state.room.objects).find((o) => o.type === 'spawn'));
  await page.mouse.move(box.x + (spawn.x + 0.5) * box.w / 50, box.y + (spawn.y + 0.5) * box.w / 50);
  await page.waitForSelector('#room-hover:has-text("spawn Spawn1")');
  // another room from the picker: its own terrain and feed; then back to ada's
  const other = await page.$$eval('#room-pick option', (os, room) => os.map((o) => o.value).find((v) => v !== room), room);
  await page.selectOption('#room-pick', other);
  await page.waitForSelector(`#room-canvas[data-room="${other}"][data-terrain="yes"]`, { timeout: 10000 });
  await page.waitForFunction((o) => window.isoworld.state.room.live && window.isoworld.state.room.name === o, other, { timeout: 10000 });
  assert.equal(await page.evaluate(() => window.isoworld.state.room.drawn.creep || 0), 0, `no creeps of ada in ${other}`);
  await page.selectOption('#room-pick', room);
  await page.waitForFunction((r) => window.isoworld.state.room.live && window.isoworld.state.room.name === r &&
    window.isoworld.state.room.drawn.spawn === 1, room, { timeout: 10000 });
  await sleep(3000); // a few more ticks of the bot, for the screenshot
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
