// The world end to end, against the real server binary, with the clients Screeps players
// use: a player registers through the HTTP API (screeps-api), finds a free room, places
// Spawn1 with POST /api/game/place-spawn (the server runs with --no-auto-spawn so that
// the whole flow, and its refusals, can be checked), uploads the starter bot of
// server/demo/ (main, role.harvester, role.upgrader, role.builder, read from the source
// tree), and queues console commands that place construction sites (two roads at
// controller level 1; an extension once the controller reaches level 2). Time runs as fast
// as it can (--tick-ms 0) for a few thousand ticks; then the room has living creeps of
// each role, the controller has gained progress and a level, and the sites were built.
// All along a websocket follows the room:<NAME> channel: a full snapshot first, then one
// diff per tick, with gameTime rising by one; merged on the client, the diffs give exactly
// what GET /api/game/room-objects answers at the same tick (checked with time paused by
// isoworld-admin).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScreepsAPI } from 'screeps-api';
import { startServer, tempDir, removeDir, apiOptions, eventually, sleep, binDir } from './lib/server.mjs';
import { openSocket } from './lib/ws.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const source = process.env.ISOWORLD_SOURCE_DIR || path.resolve(here, '../..');
const demoDir = path.join(source, 'server', 'demo');
const ADMIN = path.join(binDir, 'isoworld-admin');

const WORLD_SIZE = 2;
const TICKS = 5000; // at least this many ticks of the bot before the final checks
const WALL_LIMIT_MS = 150000; // for the bot to get there (all of it), on a loaded machine

const ANA = { username: 'ana', email: 'ana@example.org', password: 'ana-password-1' };
const BEN = { username: 'ben', email: 'ben@example.org', password: 'ben-password-2' };

let server, dir, ana, ben, anaId, benId;
let room; // ana's room
let terrain; // its 2500 digits
let feed; // the websocket following room:<room>
const started = Date.now();
const figures = {};

// ------------------------------------------------------------------ helpers

async function get(who, p) {
  const headers = who && who.token ? { 'X-Token': who.token } : {};
  const res = await fetch(server.url + p, { headers });
  return res.json();
}

async function post(who, p, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (who && who.token) headers['X-Token'] = who.token;
  const res = await fetch(server.url + p, { method: 'POST', headers, body: JSON.stringify(body) });
  return res.json();
}

async function gameTime() {
  return (await get(null, '/api/game/time')).time;
}

async function objects() {
  const r = await get(null, `/api/game/room-objects?room=${room}`);
  assert.equal(r.ok, 1, JSON.stringify(r));
  return r.objects;
}

function admin(...args) {
  const r = spawnSync(ADMIN, ['--data-dir', dir, ...args], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `isoworld-admin ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const tile = (x, y) => terrain.charCodeAt(y * 50 + x) - 48; // 0 plain, 1 wall, 2 swamp
const range = (a, b) => Math.max(Math.abs(a.x - b.x), Math.abs(a.y - b.y));
const around = (x, y) => {
  const out = [];
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) if (dx || dy) out.push({ x: x + dx, y: y + dy });
  return out;
};
// A plain tile whose eight neighbours are open too (so a structure there closes no corridor).
const roomy = (x, y) => x >= 3 && y >= 3 && x <= 46 && y <= 46 && tile(x, y) === 0 &&
  around(x, y).every((p) => (tile(p.x, p.y) & 1) === 0);

// Runs `expression` as a console command (after loop(), on a later tick) and returns what
// it stored in Memory.e2e[key].
async function consoleResult(key, expression) {
  const r = await ana.console(`Memory.e2e = Memory.e2e || {}; Memory.e2e.${key} = (${expression});`);
  assert.equal(r.ok, 1, JSON.stringify(r));
  return eventually(async () => {
    const m = await ana.memory.get(`e2e.${key}`);
    // before the command ran, the path goes through undefined: "Incorrect memory path"
    const ready = m.data !== undefined && m.data !== null && m.data !== 'Incorrect memory path' && m.data !== 'undefined';
    return ready ? { value: m.data } : null;
  }, 20000, `the console command for ${key}`).then((x) => x.value);
}

// The room:<room> channel, merged as a client would: the snapshot, then every diff.
function followRoom(s, channel) {
  const f = { frames: 0, snapshots: 0, first: null, objects: null, users: null, gameTime: null, gaps: 0, errors: [] };
  const merge = (target, diff) => {
    for (const [k, v] of Object.entries(diff)) {
      if (v === null) delete target[k];
      else if (v && typeof v === 'object' && !Array.isArray(v) && target[k] && typeof target[k] === 'object' &&
        !Array.isArray(target[k])) merge(target[k], v);
      else target[k] = v;
    }
  };
  s.ws.on('message', (data) => {
    const text = data.toString();
    if (text.startsWith('dropped')) f.errors.push(text);
    if (!text.startsWith('[')) return;
    const [c, p] = JSON.parse(text);
    if (c !== channel) return;
    f.frames++;
    if (f.first === null) f.first = p;
    if (f.gameTime !== null && !(p.gameTime > f.gameTime)) f.errors.push(`gameTime ${p.gameTime} after ${f.gameTime}`);
    if (f.gameTime !== null && p.gameTime !== f.gameTime + 1) f.gaps++;
    f.gameTime = p.gameTime;
    if (p.info) {
      f.snapshots++;
      f.objects = structuredClone(p.objects);
      f.users = structuredClone(p.users);
    } else if (f.objects === null) {
      f.errors.push(`a diff before any snapshot: ${text.slice(0, 200)}`);
    } else {
      merge(f.objects, p.objects || {});
      if (p.users) merge(f.users, p.users);
    }
  });
  return f;
}

function withoutNulls(v) {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = withoutNulls(x);
  return out;
}

// ------------------------------------------------------------------ set-up

before(async () => {
  for (const m of ['main', 'role.harvester', 'role.upgrader', 'role.builder'])
    assert.ok(existsSync(path.join(demoDir, `${m}.js`)), `${demoDir}/${m}.js is missing`);
  dir = tempDir('isoworld-world-e2e-');
  server = await startServer(dir, ['--tick-ms', '0', '--world-size', String(WORLD_SIZE), '--no-auto-spawn', '--quiet']);
  ana = new ScreepsAPI(apiOptions(server));
  ben = new ScreepsAPI(apiOptions(server));
});

after(async () => {
  if (feed) feed.close();
  if (server) await server.stop();
  if (dir) removeDir(dir);
  if (Object.keys(figures).length) console.log(`# figures: ${JSON.stringify(figures)}`);
});

// ------------------------------------------------------------------ the tests

test('world-size and the terrain of every room, in both encodings', async () => {
  const size = await get(null, '/api/game/world-size');
  assert.deepEqual(size, { ok: 1, width: WORLD_SIZE, height: WORLD_SIZE });
  for (let x = 1; x <= WORLD_SIZE; x++) {
    for (let y = 1; y <= WORLD_SIZE; y++) {
      const name = `W${x}N${y}`;
      const enc = await get(null, `/api/game/room-terrain?room=${name}&encoded=1`);
      assert.equal(enc.ok, 1, `${name}: ${JSON.stringify(enc).slice(0, 200)}`);
      assert.equal(enc.terrain.length, 1);
      const t = enc.terrain[0];
      assert.equal(t.room, name);
      assert.equal(t.type, 'terrain');
      assert.equal(typeof t._id, 'string');
      assert.match(t.terrain, /^[0-3]{2500}$/, `${name}: 2500 digits`);
      assert.ok(/0/.test(t.terrain) && /1/.test(t.terrain), `${name} has plains and walls`);
      const list = await get(null, `/api/game/room-terrain?room=${name}`);
      assert.equal(list.ok, 1);
      // the list names every wall and swamp tile (plains are left out), as the digits say
      const expect = [];
      for (let i = 0; i < 2500; i++) {
        const v = t.terrain.charCodeAt(i) - 48;
        if (v) expect.push({ room: name, x: i % 50, y: Math.floor(i / 50), type: v & 1 ? 'wall' : 'swamp' });
      }
      const key = (e) => e.y * 50 + e.x;
      assert.deepEqual([...list.terrain].sort((a, b) => key(a) - key(b)), expect, `${name}: the list matches the digits`);
    }
  }
  // a name that is no room of this world
  for (const bad of ['nowhere', 'W9N9', 'E1S1', '']) {
    const r = await get(null, `/api/game/room-terrain?room=${encodeURIComponent(bad)}&encoded=1`);
    assert.equal(typeof r.error, 'string', `room-terrain ${bad}: ${JSON.stringify(r)}`);
  }
});

test('a new player has no room; the world suggests a free one; place-spawn refuses bad input', async () => {
  assert.deepEqual(await ana.registerUser(ANA.username, ANA.email, ANA.password), { ok: 1 });
  assert.deepEqual(await ben.registerUser(BEN.username, BEN.email, BEN.password), { ok: 1 });
  await ana.auth(ANA.username, ANA.password);
  await ben.auth(BEN.username, BEN.password);
  anaId = (await ana.me())._id;
  benId = (await ben.me())._id;

  assert.deepEqual(await get(ana, '/api/user/world-status'), { ok: 1, status: 'empty' });
  assert.deepEqual(await get(null, `/api/user/rooms?id=${anaId}`), { ok: 1, rooms: [] });
  const start = await get(ana, '/api/user/world-start-room');
  assert.equal(start.ok, 1);
  assert.equal(start.room.length, 1);
  room = start.room[0];
  assert.match(room, new RegExp(`^W[1-${WORLD_SIZE}]N[1-${WORLD_SIZE}]$`));
  // the user endpoints need a session
  assert.equal((await fetch(`${server.url}/api/user/world-status`)).status, 401);
  assert.equal((await fetch(`${server.url}/api/user/world-start-room`)).status, 401);

  terrain = (await get(null, `/api/game/room-terrain?room=${room}&encoded=1`)).terrain[0].terrain;
  const objs = await objects();
  const sources = objs.filter((o) => o.type === 'source');
  const controller = objs.find((o) => o.type === 'controller');
  assert.ok(sources.length >= 1, 'the room has a source');
  assert.ok(controller, 'the room has a controller');
  assert.equal(controller.level, 0);
  assert.equal(objs.filter((o) => o.type === 'spawn' || o.type === 'creep').length, 0, 'a free room');

  // Where Spawn1 goes: an open tile 3 to 5 tiles from the first source, away from the
  // others and the controller, closest to the controller.
  let best = null;
  for (let y = 3; y <= 46; y++) {
    for (let x = 3; x <= 46; x++) {
      const p = { x, y };
      if (!roomy(x, y) || range(p, sources[0]) < 3 || range(p, sources[0]) > 5) continue;
      if (sources.some((s) => range(p, s) < 3) || range(p, controller) < 4) continue;
      if (!best || range(p, controller) < range(best, controller)) best = p;
    }
  }
  assert.ok(best, 'an open tile for the spawn');
  const wall = (() => {
    for (let i = 0; i < 2500; i++) if (terrain[i] === '1' && i % 50 > 0 && i % 50 < 49 && i > 50 && i < 2450) return { x: i % 50, y: Math.floor(i / 50) };
  })();

  const bad = [
    [{ room, x: -1, y: 10, name: 'Spawn1' }, 'x < 0'],
    [{ room, x: 50, y: 10, name: 'Spawn1' }, 'x > 49'],
    [{ room, x: 10, y: 99, name: 'Spawn1' }, 'y > 49'],
    [{ room, x: '10', y: 10, name: 'Spawn1' }, 'x a string'],
    [{ room, x: 10.5, y: 10, name: 'Spawn1' }, 'x not an integer'],
    [{ room, y: 10, name: 'Spawn1' }, 'no x'],
    [{ room: 'nowhere', x: 10, y: 10, name: 'Spawn1' }, 'no such room'],
    [{ x: 10, y: 10, name: 'Spawn1' }, 'no room'],
    [{ room, x: wall.x, y: wall.y, name: 'Spawn1' }, 'a wall'],
    [{ room, x: sources[0].x, y: sources[0].y, name: 'Spawn1' }, 'on the source'],
    [{ room, x: 0, y: 20, name: 'Spawn1' }, 'on the border'],
  ];
  for (const [body, what] of bad) {
    const r = await post(ana, '/api/game/place-spawn', body);
    assert.equal(typeof r.error, 'string', `place-spawn with ${what}: ${JSON.stringify(r)}`);
    assert.equal(r.ok, undefined);
  }
  assert.deepEqual(await get(ana, '/api/user/world-status'), { ok: 1, status: 'empty' }, 'nothing was placed');
  const anon = await fetch(`${server.url}/api/game/place-spawn`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ room, ...best, name: 'Spawn1' }),
  });
  assert.equal(anon.status, 401, 'place-spawn needs a session');

  const placed = await post(ana, '/api/game/place-spawn', { room, x: best.x, y: best.y, name: 'Spawn1' });
  assert.deepEqual(placed, { ok: 1 });
  figures.room = room;
  figures.spawn = best;

  assert.deepEqual(await get(ana, '/api/user/world-status'), { ok: 1, status: 'normal' });
  assert.deepEqual(await get(ana, '/api/user/world-start-room'), { ok: 1, room: [room] });
  assert.deepEqual(await get(null, `/api/user/rooms?id=${anaId}`), { ok: 1, rooms: [room] });
  assert.deepEqual(await get(null, `/api/user/rooms?id=${benId}`), { ok: 1, rooms: [] });
  // a second spawn for a player with a room, anywhere, is refused
  const again = await post(ana, '/api/game/place-spawn', { room, x: best.x + 1, y: best.y, name: 'Spawn2' });
  assert.equal(typeof again.error, 'string', JSON.stringify(again));
  // ana's room is taken: ben is pointed elsewhere and cannot settle in it
  const benStart = await get(ben, '/api/user/world-start-room');
  assert.equal(benStart.ok, 1);
  assert.notEqual(benStart.room[0], room, 'the suggested room is a free one');
  const taken = await post(ben, '/api/game/place-spawn', { room, x: best.x + 3, y: best.y, name: 'Spawn1' });
  assert.equal(typeof taken.error, 'string', JSON.stringify(taken));
  assert.deepEqual(await get(ben, '/api/user/world-status'), { ok: 1, status: 'empty' });
  // bad ids and rooms
  for (const id of ['', 'abc', '0', '12x']) {
    const r = await get(null, `/api/user/rooms?id=${encodeURIComponent(id)}`);
    assert.equal(typeof r.error, 'string', `rooms?id=${id}: ${JSON.stringify(r)}`);
  }
  for (const bad of ['nowhere', 'W0N0', '']) {
    const r = await get(null, `/api/game/room-objects?room=${encodeURIComponent(bad)}`);
    assert.equal(typeof r.error, 'string', `room-objects?room=${bad}: ${JSON.stringify(r)}`);
  }
});

test('room-objects: the new spawn, its owner, and the shapes of PROTOCOL.md', async () => {
  const r = await get(null, `/api/game/room-objects?room=${room}`);
  assert.equal(r.ok, 1);
  assert.deepEqual(r.users[anaId], { _id: anaId, username: 'ana', badge: {} });
  for (const o of r.objects) {
    assert.equal(typeof o._id, 'string');
    assert.equal(o.room, room);
    assert.ok(Number.isInteger(o.x) && o.x >= 0 && o.x <= 49 && Number.isInteger(o.y) && o.y >= 0 && o.y <= 49);
    if (o.user !== undefined) assert.ok(r.users[o.user], `the owner of ${o.type} is in users`);
  }
  const spawn = r.objects.find((o) => o.type === 'spawn');
  assert.ok(spawn, 'Spawn1 is in the room');
  assert.equal(spawn.name, 'Spawn1');
  assert.equal(spawn.user, anaId);
  assert.deepEqual({ x: spawn.x, y: spawn.y }, figures.spawn);
  assert.equal(spawn.store.energy, 300);
  assert.equal(spawn.spawning, null);
  const ctl = r.objects.find((o) => o.type === 'controller');
  assert.equal(ctl.user, anaId, 'the controller is ana\'s');
  assert.equal(ctl.level, 1);
  assert.equal(typeof ctl.progress, 'number');
  assert.equal(ctl.progressTotal, 200);
  for (const s of r.objects.filter((o) => o.type === 'source')) {
    assert.equal(typeof s.energy, 'number');
    assert.ok(s.energyCapacity > 0);
    assert.ok('nextRegenerationTime' in s);
  }
});

test('room:<NAME> over a websocket: a full snapshot first, then diffs', async () => {
  feed = await openSocket(server.port);
  const f = followRoom(feed, `room:${room}`);
  feed.roomFeed = f;
  feed.send(`subscribe room:${room}`); // no auth needed for a room
  await eventually(() => f.frames >= 5, 20000, 'five frames of the room channel');
  const snap = f.first;
  assert.deepEqual(snap.info, { mode: 'world' });
  assert.equal(typeof snap.gameTime, 'number');
  assert.ok(snap.users[anaId], 'the snapshot names ana');
  const objs = Object.entries(snap.objects);
  assert.ok(objs.length >= 3);
  for (const [id, o] of objs) assert.equal(o._id, id, 'objects are keyed by their _id');
  assert.ok(objs.some(([, o]) => o.type === 'spawn' && o.name === 'Spawn1'));
  assert.equal(f.snapshots, 1, 'one snapshot, then diffs');
  assert.deepEqual(f.errors, []);
});

test('the starter bot runs for thousands of ticks: creeps of each role, controller levels, sites built', async () => {
  const modules = {};
  for (const m of ['main', 'role.harvester', 'role.upgrader', 'role.builder'])
    modules[m] = readFileSync(path.join(demoDir, `${m}.js`), 'utf8');
  // Two roads on open plain tiles near the spawn, and the tile of an extension for later:
  // tiles the bot's creeps do not stand on for long (off the sources and the controller).
  const objs = await objects();
  const spawn = objs.find((o) => o.type === 'spawn');
  const sources = objs.filter((o) => o.type === 'source');
  const controller = objs.find((o) => o.type === 'controller');
  const taken = new Set(objs.map((o) => o.y * 50 + o.x));
  const free = [];
  for (let y = spawn.y - 5; y <= spawn.y + 5; y++) {
    for (let x = spawn.x - 5; x <= spawn.x + 5; x++) {
      const p = { x, y };
      if (!roomy(x, y) || taken.has(y * 50 + x) || range(p, spawn) < 2) continue;
      if (sources.some((s) => range(p, s) < 2) || range(p, controller) < 4) continue;
      free.push(p);
    }
  }
  free.sort((a, b) => range(a, spawn) - range(b, spawn) || a.y - b.y || a.x - b.x);
  assert.ok(free.length >= 6, `open tiles near the spawn: ${free.length}`);
  const roads = [free[0], free.find((p) => range(p, free[0]) >= 2)];
  const ext = free.find((p) => roads.every((r) => range(p, r) >= 2));
  assert.ok(roads[1] && ext, 'tiles for two roads and an extension');
  figures.roads = roads;
  figures.extension = ext;

  // Sites through the console, as a player would type them. An extension needs level 2.
  const R = `Game.rooms['${room}']`;
  const placed = await consoleResult('roads', `[${roads.map((p) => `${R}.createConstructionSite(${p.x}, ${p.y}, STRUCTURE_ROAD)`).join(', ')}, ` +
    `${R}.createConstructionSite(${ext.x}, ${ext.y}, STRUCTURE_EXTENSION), ${R}.createConstructionSite(0, 0, STRUCTURE_ROAD)]`);
  assert.deepEqual(placed, [0, 0, -14, -7], 'OK, OK, ERR_RCL_NOT_ENOUGH, ERR_INVALID_TARGET');
  await eventually(async () => (await objects()).filter((o) => o.type === 'constructionSite').length === 2, 10000, 'two sites');
  for (const s of (await objects()).filter((o) => o.type === 'constructionSite')) {
    assert.equal(s.structureType, 'road');
    assert.equal(s.user, anaId);
    assert.equal(s.progress, 0);
    assert.equal(s.progressTotal, 300);
    assert.ok(roads.some((p) => p.x === s.x && p.y === s.y), `a site where one was asked for: ${s.x},${s.y}`);
  }

  const upload = await ana.code.set('default', modules);
  assert.equal(upload.ok, 1);
  const t0 = await gameTime();
  const w0 = Date.now();
  figures.uploadedAt = t0;

  // Level 2: then the extension's site.
  const ctl2 = await eventually(async () => {
    const c = (await objects()).find((o) => o.type === 'controller');
    return c.level >= 2 ? c : null;
  }, WALL_LIMIT_MS - (Date.now() - w0), 'controller level 2');
  figures.level2 = { ticks: (await gameTime()) - t0, seconds: (Date.now() - w0) / 1000 };
  assert.ok(ctl2.progressTotal > 200);
  const extPlaced = await consoleResult('ext', `${R}.createConstructionSite(${ext.x}, ${ext.y}, STRUCTURE_EXTENSION)`);
  assert.equal(extPlaced, 0, 'an extension site at level 2');

  // Then until everything holds, and a few thousand ticks at least.
  let last = null;
  const done = async () => {
    const t = await gameTime();
    const os = await objects();
    const mem = (await ana.memory.get('creeps')).data || {};
    const creeps = os.filter((o) => o.type === 'creep' && !o.spawning);
    const roles = {};
    for (const c of creeps) {
      const role = mem[c.name] && mem[c.name].role;
      roles[role] = (roles[role] || 0) + 1;
    }
    const at = (p, type) => os.some((o) => o.type === type && o.x === p.x && o.y === p.y);
    const ctl = os.find((o) => o.type === 'controller');
    last = {
      ticks: t - t0, seconds: (Date.now() - w0) / 1000, roles, creeps: creeps.length,
      level: ctl.level, progress: ctl.progress, progressTotal: ctl.progressTotal,
      roads: roads.map((p) => at(p, 'road')), extension: at(ext, 'extension'),
      sites: os.filter((o) => o.type === 'constructionSite').map((o) => `${o.structureType}@${o.x},${o.y} ${o.progress}/${o.progressTotal}`),
    };
    return last.ticks >= TICKS && roles.harvester >= 1 && roles.upgrader >= 1 && roles.builder >= 1 &&
      last.level >= 2 && last.roads.every(Boolean) && last.extension && last.sites.length === 0;
  };
  const until = w0 + WALL_LIMIT_MS;
  while (!(await done()) && Date.now() < until) await sleep(500);
  figures.end = last;
  assert.ok(last.ticks >= TICKS, `${TICKS} ticks of the bot in ${WALL_LIMIT_MS / 1000} s: ${JSON.stringify(last)}`);
  for (const role of ['harvester', 'upgrader', 'builder'])
    assert.ok(last.roles[role] >= 1, `a living ${role}: ${JSON.stringify(last)}`);
  assert.ok(last.level >= 2, `controller level 2: ${JSON.stringify(last)}`);
  assert.ok(last.level > 2 || last.progress > 0, `the controller gained progress at level 2: ${JSON.stringify(last)}`);
  assert.deepEqual(last.roads, [true, true], `the roads were built: ${JSON.stringify(last)}`);
  assert.ok(last.extension, `the extension was built: ${JSON.stringify(last)}`);
  assert.deepEqual(last.sites, [], 'no site is left');

  // The structures the bot built are ana's and whole.
  const os = await objects();
  const e = os.find((o) => o.type === 'extension');
  assert.equal(e.user, anaId);
  assert.ok(e.hits > 0 && e.hits === e.hitsMax);
  assert.equal(e.storeCapacityResource.energy, 50, 'an extension at level 2 holds 50');
  for (const rd of os.filter((o) => o.type === 'road')) assert.ok(rd.hits > 0);
  // The creeps as PROTOCOL.md describes them.
  for (const c of os.filter((o) => o.type === 'creep')) {
    assert.equal(c.user, anaId);
    assert.equal(typeof c.name, 'string');
    assert.deepEqual(c.body.map((b) => b.type), ['work', 'carry', 'move']);
    for (const b of c.body) assert.equal(b.hits, 100);
    assert.equal(typeof c.store.energy, 'number');
    assert.equal(c.storeCapacity, 50);
    assert.equal(typeof c.fatigue, 'number');
    assert.equal(typeof c.spawning, 'boolean');
    if (!c.spawning) assert.ok(c.ageTime > figures.uploadedAt + 1500, `ageTime is the tick the creep dies: ${c.ageTime}`);
  }
  // Creeps live 1,500 ticks: the first ones died and the bot spawned others (named after
  // the tick they were ordered), forgetting the dead ones' Memory.
  const born = os.filter((o) => o.type === 'creep').map((o) => Number(/\d+$/.exec(o.name)[0]));
  assert.ok(born.some((t) => t > figures.uploadedAt + 1500), `creeps born after the first ones died: ${born}`);
  // What the bot's code sees of its room, through a console command.
  const view = await consoleResult('view', `(function (r) { return { cap: r.energyCapacityAvailable, level: r.controller.level, ` +
    `my: r.controller.my, ext: r.find(FIND_MY_STRUCTURES, { filter: { structureType: STRUCTURE_EXTENSION } }).length, ` +
    `roads: r.find(FIND_STRUCTURES, { filter: (s) => s.structureType == STRUCTURE_ROAD }).length, ` +
    `sites: r.find(FIND_CONSTRUCTION_SITES).length, spawn: Game.spawns.Spawn1.pos.x + ',' + Game.spawns.Spawn1.pos.y, ` +
    `creeps: _.size(Game.creeps), memory: _.size(Memory.creeps) }; })(${R})`);
  assert.equal(view.cap, 350, `spawn and one extension hold 350: ${JSON.stringify(view)}`);
  assert.ok(view.level >= 2 && view.my, JSON.stringify(view));
  assert.equal(view.ext, 1);
  assert.equal(view.roads, 2);
  assert.equal(view.sites, 0);
  assert.equal(view.spawn, `${spawn.x},${spawn.y}`);
  assert.ok(view.creeps >= 3 && view.memory >= view.creeps && view.memory <= view.creeps + 1, `Memory.creeps follows the creeps: ${JSON.stringify(view)}`);
  figures.view = view;
});

test('the channel\'s diffs, merged, are what room-objects says (time paused)', async () => {
  const f = feed.roomFeed;
  assert.deepEqual(f.errors, [], 'no dropped frames, gameTime always rising');
  assert.equal(f.snapshots, 1, 'one snapshot, then only diffs');
  figures.frames = f.frames;
  figures.gaps = f.gaps;
  assert.equal(f.gaps, 0, 'one diff per tick');
  admin('world', 'pause');
  try {
    const t = await gameTime();
    await eventually(() => f.gameTime === t, 10000, `the frame of tick ${t} (last ${f.gameTime})`);
    const r = await get(null, `/api/game/room-objects?room=${room}`);
    assert.equal(await gameTime(), t, 'paused');
    // A diff's null removes a key, so a key whose value became null (a spawn's spawning,
    // a full source's nextRegenerationTime) is absent on the client: compare without them.
    const byId = Object.fromEntries(r.objects.map((o) => [o._id, o]));
    assert.deepEqual(withoutNulls(f.objects), withoutNulls(byId));
    for (const id of Object.keys(r.users)) assert.deepEqual(f.users[id], r.users[id]);
  } finally {
    admin('world', 'resume');
  }
  const t = f.gameTime;
  await eventually(() => f.gameTime > t + 5, 10000, 'time runs again, and the diffs with it');
  assert.deepEqual(f.errors, []);
  figures.wallSeconds = (Date.now() - started) / 1000;
});
