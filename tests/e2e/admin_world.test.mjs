// The world as admins manage it, end to end: the real server binary driven through the
// real isoworld-admin binary (world status, world generate, world reset, player respawn,
// player place-spawn), every effect checked through the player API as a client sees it:
// /api/user/rooms, /api/game/room-objects, /api/game/world-size, /api/user/world-status.
//
// One server, started with --no-auto-spawn so players join only when an admin places
// them; the tests run in order and build on each other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ScreepsAPI } from 'screeps-api';
import { startServer, tempDir, removeDir, apiOptions, eventually, binDir } from './lib/server.mjs';

const ADMIN = path.join(binDir, 'isoworld-admin');
let server, dir;
const ids = {}; // username -> user id (string)
const tokens = {}; // username -> session token

function adm(args) {
  const r = spawnSync(ADMIN, ['--data-dir', path.join(dir, 'data'), ...args], {
    encoding: 'utf8', timeout: 150000, env: { ...process.env, NO_COLOR: '1', USER: 'e2e' },
  });
  let json;
  try { json = JSON.parse(r.stdout); } catch { /* text */ }
  return { code: r.status, out: r.stdout, err: r.stderr, json };
}

function ok(args) {
  const r = adm(args);
  assert.equal(r.code, 0, `isoworld-admin ${args.join(' ')} exited ${r.code}: ${r.err}${r.out}`);
  return r;
}

// A refusal: exit code `code`, stderr matching `re`, and the server still serving.
function refused(args, code, re) {
  const r = adm(args);
  assert.equal(r.code, code, `isoworld-admin ${args.join(' ')}: exit ${r.code}, wanted ${code}: ${r.err}${r.out}`);
  if (re) assert.match(r.err, re, args.join(' '));
  return r;
}

async function get(p, headers = {}) {
  const r = await fetch(`${server.url}${p}`, { headers });
  assert.equal(r.status, 200, `GET ${p}`);
  return r.json();
}

const userRooms = async (name) => (await get(`/api/user/rooms?id=${ids[name]}`)).rooms;
const objects = async (room) => (await get(`/api/game/room-objects?room=${room}`)).objects;
const worldStatus = async (name) =>
  (await get('/api/user/world-status', { 'X-Token': tokens[name], 'X-Username': name })).status;
const gameTime = async () => (await get('/api/game/time')).time;

async function roomNames() {
  const { width, height } = await get('/api/game/world-size');
  const names = [];
  for (let x = 1; x <= width; x++) for (let y = 1; y <= height; y++) names.push(`W${x}N${y}`);
  return names;
}

// Every room's objects, without what only says when (they depend on the game time).
async function snapshot() {
  const out = {};
  for (const r of await roomNames()) {
    out[r] = (await objects(r)).map((o) => {
      const { downgradeTime, nextRegenerationTime, ticksToRegeneration, ...rest } = o;
      return rest;
    }).sort((a, b) => (a._id < b._id ? -1 : 1));
  }
  return out;
}

async function allObjectsOf(name) {
  const all = [];
  for (const r of await roomNames()) all.push(...(await objects(r)).filter((o) => o.user === ids[name]));
  return all;
}

// A plain tile of `room`, not on the edge, with nothing on it (nearest to the centre).
async function freeTile(room) {
  const t = (await get(`/api/game/room-terrain?room=${room}&encoded=1`)).terrain[0].terrain;
  const taken = new Set((await objects(room)).map((o) => `${o.x},${o.y}`));
  for (let d = 0; d < 24; d++) {
    for (let y = 25 - d; y <= 25 + d; y++) {
      for (let x = 25 - d; x <= 25 + d; x++) {
        if (x < 2 || x > 47 || y < 2 || y > 47) continue;
        if (t[y * 50 + x] === '0' && !taken.has(`${x},${y}`)) return { x, y };
      }
    }
  }
  throw new Error(`no free tile in ${room}`);
}

async function signin(name, password) {
  const r = await fetch(`${server.url}/api/auth/signin`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: name, password }),
  });
  assert.equal(r.status, 200, `${name} signs in`);
  tokens[name] = (await r.json()).token;
}

async function player(name, password) {
  const api = new ScreepsAPI(apiOptions(server));
  await api.auth(name, password);
  return api;
}

// Keeps one creep alive, counts the runs of its global and marks Memory.
const SPAWNER = `
module.exports.loop = function () {
  global.runs = (global.runs || 0) + 1;
  Memory.runs = global.runs;
  Memory.marker = 'kept';
  for (const name in Game.spawns) {
    const s = Game.spawns[name];
    if (!s.spawning && Object.keys(Game.creeps).length < 1) s.spawnCreep([MOVE], 'c' + Game.time);
  }
};`;

before(async () => {
  dir = tempDir('isoworld-admin-world-');
  server = await startServer(path.join(dir, 'data'), ['--no-auto-spawn', '--tick-ms', '50']);
  for (const [name, pw] of [['alice', 'alice-secret-1'], ['bob', 'bob-secret-22'], ['carol', 'carol-secret-3']]) {
    ok(['users', 'create', name, '--password', pw]);
    await signin(name, pw);
  }
  for (const u of ok(['users', 'list', '--json']).json.users) ids[u.username] = String(u.id);
});

after(async () => {
  if (server) await server.stop();
  if (dir) removeDir(dir);
});

test('world status counts the rooms of the world', async () => {
  const st = ok(['world', 'status', '--json', '--no-hash']).json;
  assert.equal(st.rooms, 9);
  assert.equal(st.world_size, 3);
  assert.deepEqual(st.world, { rooms: 9, width: 3, height: 3, seed: 1 });
  assert.match(ok(['world', 'status', '--no-hash']).out, /^rooms\s+9 \(3x3, seed 1\)$/m);
  assert.deepEqual(await get('/api/game/world-size'), { ok: 1, width: 3, height: 3 });
});

test('place-spawn puts a player without a room at ROOM X Y', async () => {
  assert.deepEqual(await userRooms('alice'), [], '--no-auto-spawn: nobody has a room yet');
  assert.equal(await worldStatus('alice'), 'empty');
  const { x, y } = await freeTile('W2N2');
  const r = ok(['player', 'place-spawn', 'alice', 'W2N2', String(x), String(y), '--name', 'Home', '--json']).json;
  assert.deepEqual([r.username, r.room, r.x, r.y, r.spawn, r.id], ['alice', 'W2N2', x, y, 'Home', ids.alice]);
  assert.deepEqual(await userRooms('alice'), ['W2N2']);
  assert.equal(await worldStatus('alice'), 'normal');
  const spawns = (await objects('W2N2')).filter((o) => o.type === 'spawn');
  assert.equal(spawns.length, 1);
  assert.deepEqual([spawns[0].user, spawns[0].name, spawns[0].x, spawns[0].y], [ids.alice, 'Home', x, y]);
  const ctl = (await objects('W2N2')).find((o) => o.type === 'controller');
  assert.equal(ctl.user, ids.alice);
  assert.equal(ok(['log', '--json']).json.entries[0].what, `player place-spawn alice W2N2 ${x} ${y} --name Home`);

  // Text output.
  const b = await freeTile('W1N1');
  assert.match(ok(['player', 'place-spawn', 'bob', 'W1N1', String(b.x), String(b.y)]).out,
    new RegExp(`^bob placed: Spawn1 at W1N1 ${b.x},${b.y}$`, 'm'));
  assert.deepEqual(await userRooms('bob'), ['W1N1']);
});

test('place-spawn refuses clearly, with exit codes, and changes nothing', async () => {
  ok(['world', 'pause']); // so that only the refusals could change anything
  const before = await snapshot();
  const again = refused(['player', 'place-spawn', 'alice', 'W3N3', '25', '25', '--json'], 1, /already playing/);
  assert.equal(again.json.code, 'already_playing');
  refused(['player', 'place-spawn', 'carol', 'nowhere', '25', '25'], 2, /not a room name/);
  refused(['player', 'place-spawn', 'carol', 'W3N3', '99', '25'], 2, /X must be a whole number from 1 to 48/);
  refused(['player', 'place-spawn', 'carol', 'W3N3', '0', '25'], 2, /X must be/);
  refused(['player', 'place-spawn', 'carol', 'W3N3', '25'], 2, /usage/);
  refused(['player', 'place-spawn', 'carol', 'W9N9', '25', '25'], 1, /no room W9N9 in this world/);
  refused(['player', 'place-spawn', 'carol', 'W2N2', '25', '25'], 1, /W2N2 25,25 is not free/);
  refused(['player', 'place-spawn', 'nobody', 'W3N3', '25', '25'], 1, /no user named 'nobody'/);
  // A wall.
  const t = (await get('/api/game/room-terrain?room=W3N3&encoded=1')).terrain[0].terrain;
  let wall = -1;
  for (let i = 0; i < 2500 && wall < 0; i++) {
    const x = i % 50, y = Math.floor(i / 50);
    if (x >= 1 && x <= 48 && y >= 1 && y <= 48 && t[i] === '1') wall = i;
  }
  if (wall >= 0)
    refused(['player', 'place-spawn', 'carol', 'W3N3', String(wall % 50), String(Math.floor(wall / 50))], 1, /not free/);
  // The admin API itself checks what the tool checks.
  const { readFileSync } = await import('node:fs');
  const info = JSON.parse(readFileSync(path.join(dir, 'data', 'admin.json'), 'utf8'));
  const h = { 'X-Admin-Token': readFileSync(path.join(dir, 'data', 'admin.token'), 'utf8').trim() };
  for (const body of [{ user: 'carol', room: 'nowhere', x: 25, y: 25 }, { user: 'carol', room: 'W3N3', x: 49, y: 25 },
    { user: 'carol', room: 'W3N3', x: 25, y: 25, name: 'a"b' }, { user: 'carol', room: 'W3N3', x: 25, y: 25, name: 'x'.repeat(200) },
    { user: 'carol', room: 'W1N1W1N1W1N1W1N1', x: 25, y: 25 }]) {
    const r = await fetch(`${info.url}/admin/player/place-spawn`, { method: 'POST', headers: h, body: JSON.stringify(body) });
    assert.equal(r.status, 400, JSON.stringify(body));
  }
  for (const body of [{ rooms: 0 }, { rooms: 4097 }, { rooms: 4, seed: -1 }, { rooms: 4, seed: 'x' }]) {
    const r = await fetch(`${info.url}/admin/world/generate`, { method: 'POST', headers: h, body: JSON.stringify(body) });
    assert.equal(r.status, 400, JSON.stringify(body));
  }
  assert.deepEqual(await userRooms('carol'), []);
  assert.deepEqual(await snapshot(), before);
  ok(['world', 'resume']);
  const t0 = await gameTime();
  await eventually(async () => (await gameTime()) > t0, 5000, 'ticks after the refusals');
});

test('respawn removes every object of the player and places it again; its global starts over', async () => {
  const alice = await player('alice', 'alice-secret-1');
  await alice.code.set('default', { main: SPAWNER });
  await eventually(async () => (await allObjectsOf('alice')).some((o) => o.type === 'creep'), 20000, "alice's creep");
  await eventually(async () => (await alice.memory.get('runs')).data > 3, 10000, 'a few runs');
  refused(['player', 'respawn', 'alice'], 2, /--yes/);
  ok(['world', 'pause']);
  const r = ok(['player', 'respawn', 'alice', '--yes', '--json']).json;
  assert.equal(r.username, 'alice');
  assert.equal(r.removed, true);
  assert.deepEqual(r.previous_rooms, ['W2N2']);
  assert.equal(r.global_reset, true);
  // The old spawn (Home) and the creep are gone; a new Spawn1 stands in the new room.
  const mine = await allObjectsOf('alice');
  assert.deepEqual(mine.map((o) => o.type).sort(), ['controller', 'spawn']);
  const spawn = mine.find((o) => o.type === 'spawn');
  assert.equal(spawn.name, 'Spawn1');
  assert.equal(spawn.room, r.room);
  assert.deepEqual(await userRooms('alice'), [r.room]);
  if (r.room !== 'W2N2') assert.ok(!(await objects('W2N2')).some((o) => o.user === ids.alice));
  ok(['world', 'step', '2']);
  assert.equal((await alice.memory.get('runs')).data, 2, 'a fresh global ran twice');
  assert.equal((await alice.memory.get('marker')).data, 'kept', 'Memory is kept');
  ok(['world', 'resume']);
  // A player with nothing in the world is simply placed.
  const c = ok(['player', 'respawn', 'carol', '--yes', '--json']).json;
  assert.equal(c.removed, false);
  assert.deepEqual(c.previous_rooms, []);
  assert.deepEqual(await userRooms('carol'), [c.room]);
  assert.match(ok(['player', 'respawn', 'carol', '--yes']).out, new RegExp(`^carol respawned in W\\d+N\\d+ \\(had ${c.room}\\)`, 'm'));
  refused(['player', 'respawn', 'nobody', '--yes'], 1, /no user named/);
});

test('generate 16: a 4x4 world; every player who had a room is placed again; accounts, code and Memory kept', async () => {
  refused(['world', 'generate', '16'], 2, /--yes/);
  refused(['world', 'generate', '0', '--yes'], 2, /from 1 to 4096/);
  refused(['world', 'generate', '100000', '--yes'], 2, /from 1 to 4096/);
  refused(['world', 'generate', 'many', '--yes'], 2);
  refused(['world', 'generate', '16', '--seed', 'x', '--yes'], 2);
  assert.equal(ok(['world', 'status', '--json', '--no-hash']).json.rooms, 9, 'nothing changed');

  const r = ok(['world', 'generate', '16', '--yes', '--json']).json;
  assert.deepEqual([r.rooms, r.width, r.height, r.seed, r.previous_rooms], [16, 4, 4, 1, 9]);
  assert.deepEqual(r.placed.map((p) => p.username), ['alice', 'bob', 'carol'], 'in id order');
  assert.deepEqual(r.unplaced, []);
  assert.deepEqual(await get('/api/game/world-size'), { ok: 1, width: 4, height: 4 });
  const st = ok(['world', 'status', '--json', '--no-hash']).json;
  assert.deepEqual([st.rooms, st.world_size], [16, 4]);
  for (const p of r.placed) {
    assert.deepEqual(await userRooms(p.username), [p.room]);
    const spawn = (await objects(p.room)).find((o) => o.type === 'spawn');
    assert.equal(spawn.user, ids[p.username]);
    assert.equal(spawn.name, 'Spawn1');
  }
  // The account, its code and its Memory survive.
  const alice = await player('alice', 'alice-secret-1');
  assert.match((await alice.code.get('default')).modules.main, /spawnCreep/);
  assert.equal((await alice.memory.get('marker')).data, 'kept');
  assert.equal(ok(['log', '--json']).json.entries[0].what, 'world generate 16 (4x4)');

  // Text output: one line per player.
  const text = ok(['world', 'generate', '4', '--seed', '3', '--yes']).out;
  assert.match(text, /^world generated: 4 rooms \(2x2, seed 3\)/m);
  assert.match(text, /^\s*\d+\s+alice\s+W\d+N\d+\s+W\d+N\d+$/m);
  // Fewer rooms than players: the last ones wait, and are told so.
  const small = ok(['world', 'generate', '1', '--yes', '--json']).json;
  assert.deepEqual(small.placed.map((p) => p.username), ['alice']);
  assert.deepEqual(small.unplaced.map((p) => [p.username, p.reason]), [['bob', 'no free room'], ['carol', 'no free room']]);
  assert.deepEqual(await userRooms('bob'), []);
  assert.equal(await worldStatus('bob'), 'empty');
  // Back to 4x4 and seed 1 (bob and carol have no room now, so they are not placed:
  // place-spawn).
  const back = ok(['world', 'generate', '16', '--seed', '1', '--yes', '--json']).json;
  assert.deepEqual(back.placed.map((p) => p.username), ['alice']);
  const free = (await roomNames()).filter((n) => n !== back.placed[0].room);
  for (const [i, name] of ['bob', 'carol'].entries()) {
    const { x, y } = await freeTile(free[i]);
    ok(['player', 'place-spawn', name, free[i], String(x), String(y)]);
  }
});

test('reset: the world goes back to its generated state, every player placed again', async () => {
  refused(['world', 'reset'], 2, /--yes/);
  // A reference: a reset while paused gives the generated world with the players placed.
  ok(['world', 'pause']);
  const ref = ok(['world', 'reset', '--yes', '--json']).json;
  assert.deepEqual([ref.rooms, ref.width, ref.seed], [16, 4, 1]);
  assert.deepEqual(ref.placed.map((p) => p.username), ['alice', 'bob', 'carol']);
  const generated = await snapshot();
  ok(['world', 'resume']);
  // Play a little: alice's code spawns creeps.
  await eventually(async () => (await allObjectsOf('alice')).some((o) => o.type === 'creep'), 20000, "alice's creep");
  assert.notDeepEqual(await snapshot(), generated);
  ok(['world', 'pause']);
  const r = ok(['world', 'reset', '--yes', '--json']).json;
  assert.deepEqual([r.rooms, r.width, r.height, r.seed], [16, 4, 4, 1], 'same size, same seed');
  assert.deepEqual(r.placed.map((p) => [p.username, p.room]), ref.placed.map((p) => [p.username, p.room]));
  const now = await snapshot();
  for (const room of Object.keys(now)) assert.ok(!now[room].some((o) => o.type === 'creep'), `no creep in ${room}`);
  assert.deepEqual(now, generated, 'objects as generated, players placed as before');
  assert.match(ok(['log', '--json']).json.entries[0].what, /^world reset \(4x4, seed 1\)$/);
  ok(['world', 'resume']);
  // Another seed: a different world of the same size.
  const other = ok(['world', 'reset', '--seed', '9', '--yes', '--json']).json;
  assert.deepEqual([other.rooms, other.seed], [16, 9]);
  assert.equal(ok(['world', 'status', '--json', '--no-hash']).json.world.seed, 9);
  // And reset keeps to it from now on.
  assert.equal(ok(['world', 'reset', '--yes', '--json']).json.seed, 9);
  const t = await gameTime();
  await eventually(async () => (await gameTime()) > t + 2, 5000, 'ticks after the resets');
});

test('the world survives a restart as the admin left it', async () => {
  const before = ok(['world', 'status', '--json', '--no-hash']).json;
  const rooms = await userRooms('alice');
  await server.stop();
  server = await startServer(path.join(dir, 'data'), ['--no-auto-spawn', '--tick-ms', '50']);
  const st = ok(['world', 'status', '--json', '--no-hash']).json;
  assert.deepEqual(st.world, before.world);
  assert.deepEqual(await userRooms('alice'), rooms);
  assert.equal(ok(['verify', '--json']).json.valid, true);
});
