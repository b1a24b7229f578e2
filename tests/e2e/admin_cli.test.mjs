// World management end to end: the real server binary, driven through the real
// isoworld-admin binary (never the admin API directly, except to check what the API
// itself must refuse), with every effect checked through the player API as a player
// would see it (screeps-api): a banned user cannot sign in, set-cpu changes
// Game.cpu.limit, pause stops game time and step 3 advances it by exactly 3, a backup
// taken under load restores to a world whose state hash equals the one at backup time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { statSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { ScreepsAPI } from 'screeps-api';
import { startServer, tempDir, removeDir, apiOptions, eventually, sleep, binDir } from './lib/server.mjs';
import { openSocket } from './lib/ws.mjs';

const ADMIN = path.join(binDir, 'isoworld-admin');
let server, dir;
const dirs = [];

// Runs isoworld-admin with --data-dir of `d` (default: the main server's); returns
// { code, out, err, json } (json: stdout parsed when it is JSON).
function adm(args, { d = dir, input, env = {} } = {}) {
  const r = spawnSync(ADMIN, ['--data-dir', path.join(d, 'data'), ...args], {
    encoding: 'utf8', input, timeout: 150000, env: { ...process.env, NO_COLOR: '1', USER: 'e2e', ...env },
  });
  let json;
  try { json = JSON.parse(r.stdout); } catch { /* text */ }
  return { code: r.status, out: r.stdout, err: r.stderr, json };
}

function ok(args, opts) {
  const r = adm(args, opts);
  assert.equal(r.code, 0, `isoworld-admin ${args.join(' ')} exited ${r.code}: ${r.err}${r.out}`);
  return r;
}

async function start(d, args = []) {
  return startServer(path.join(d, 'data'), args);
}

function adminInfo(d = dir) {
  return JSON.parse(readFileSync(path.join(d, 'data', 'admin.json'), 'utf8'));
}

function adminToken(d = dir) {
  return readFileSync(path.join(d, 'data', 'admin.token'), 'utf8').trim();
}

async function gameTime(s = server) {
  const r = await fetch(`${s.url}/api/game/time`);
  return (await r.json()).time;
}

async function signin(s, login, password) {
  const r = await fetch(`${s.url}/api/auth/signin`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: login, password }),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function player(s, login, password) {
  const api = new ScreepsAPI(apiOptions(s));
  await api.auth(login, password);
  return api;
}

// Code that reports what the player sees: its CPU limit, its global's age, a log line.
const PROBE = `
module.exports.loop = function () {
  global.runs = (global.runs || 0) + 1;
  Memory.limit = Game.cpu.limit;
  Memory.runs = global.runs;
  Memory.time = Game.time;
  console.log('probe at ' + Game.time + ' run ' + global.runs);
};`;

before(async () => {
  dir = tempDir('isoworld-admin-e2e-');
  dirs.push(dir);
  server = await start(dir);
});

after(async () => {
  if (server) await server.stop();
  for (const d of dirs) removeDir(d);
});

test('the server writes its token (mode 0600) and address; the API wants the token', async () => {
  const tok = statSync(path.join(dir, 'data', 'admin.token'));
  assert.equal(tok.mode & 0o777, 0o600);
  assert.match(adminToken(), /^[A-Za-z0-9_-]{43}$/);
  const info = adminInfo();
  assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(info.pid, server.proc.pid);
  // The admin API is not on the player port.
  assert.equal((await fetch(`${server.url}/admin/status`)).status, 404);
  const none = await fetch(`${info.url}/admin/status`);
  assert.equal(none.status, 401);
  assert.equal((await none.json()).code, 'unauthorized');
  const wrong = await fetch(`${info.url}/admin/status`, { headers: { 'X-Admin-Token': 'x'.repeat(43) } });
  assert.equal(wrong.status, 401);
  const bearer = await fetch(`${info.url}/admin/status?hash=0`, { headers: { Authorization: `Bearer ${adminToken()}` } });
  assert.equal(bearer.status, 200);
  // The tool refuses with a wrong token too, and says so (exit 1).
  const r = adm(['world', 'status', '--token', 'nope']);
  assert.equal(r.code, 1);
  assert.match(r.err, /token/);
});

test('the admin API refuses clients that are not on loopback (unless --admin-remote)', async (t) => {
  const ip = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (!ip) return t.skip('no non-loopback IPv4 address on this machine');
  const d = tempDir('isoworld-admin-remote-');
  dirs.push(d);
  const s = await start(d, ['--admin-bind', '0.0.0.0']);
  try {
    const { port } = adminInfo(d);
    const h = { 'X-Admin-Token': adminToken(d) };
    const far = await fetch(`http://${ip}:${port}/admin/status?hash=0`, { headers: h });
    assert.equal(far.status, 403);
    assert.equal((await far.json()).code, 'forbidden');
    assert.equal((await fetch(`http://127.0.0.1:${port}/admin/status?hash=0`, { headers: h })).status, 200);
  } finally {
    await s.stop();
  }
  const s2 = await start(d, ['--admin-bind', '0.0.0.0', '--admin-remote']);
  try {
    const { port } = adminInfo(d);
    const far = await fetch(`http://${ip}:${port}/admin/status?hash=0`, { headers: { 'X-Admin-Token': adminToken(d) } });
    assert.equal(far.status, 200);
    // A token that travels does not let its holder write files anywhere: backups go
    // under <data-dir>/backups.
    const out = adm(['backup', path.join(d, 'outside.backup')], { d });
    assert.equal(out.code, 1);
    assert.match(out.err, /backups go under/);
    ok(['backup', path.join(d, 'data', 'backups', 'inside.backup')], { d });
  } finally {
    await s2.stop();
  }
});

test('a second server on the same data directory is refused', async () => {
  const r = spawnSync(path.join(binDir, 'isoworld'), ['--data-dir', path.join(dir, 'data'), '--port', '0'],
    { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /in use by another isoworld server \(pid \d+\)/);
});

test('users create, list, show; the new user signs in through the player API', async () => {
  ok(['users', 'create', 'alice', '--email', 'alice@example.org', '--password-stdin', '--cpu', '100'],
    { input: 'alice-secret-1\n' });
  ok(['users', 'create', 'bob', '--password', 'bob-secret-22']);
  const dup = adm(['users', 'create', 'ALICE', '--password', 'whatever-123']);
  assert.equal(dup.code, 1);
  assert.match(dup.err, /already exists/);
  assert.equal(adm(['users', 'create', 'x!']).code, 2);
  assert.equal(adm(['users', 'create', 'carol', '--cpu', 'lots']).code, 2);

  const list = ok(['users', 'list', '--json']).json;
  const names = list.users.map((u) => u.username);
  assert.deepEqual(names, ['alice', 'bob']);
  assert.equal(list.users[0].cpu, 100);
  assert.equal(list.users[0].status, 'active');
  const table = ok(['users', 'list']).out.split('\n');
  assert.match(table[0], /^ID\s+USERNAME\s+EMAIL\s+CPU\s+STATUS/);
  // Aligned: every row has its USERNAME where the header has it.
  const col = table[0].indexOf('USERNAME');
  assert.equal(table[1].slice(col, col + 5), 'alice');
  assert.equal(table[2].slice(col, col + 3), 'bob');

  const show = ok(['users', 'show', 'alice', '--json']).json.user;
  assert.equal(show.email, 'alice@example.org');
  assert.equal(show.password, true);
  assert.equal(show.branches[0].name, 'default');
  assert.equal(show.password_hash, undefined);
  assert.equal(adm(['users', 'show', 'nobody']).code, 1);

  assert.equal((await signin(server, 'alice', 'alice-secret-1')).status, 200);
  assert.equal((await signin(server, 'alice@example.org', 'alice-secret-1')).status, 200);
});

test('set-cpu changes Game.cpu.limit as the player code sees it', async () => {
  const alice = await player(server, 'alice', 'alice-secret-1');
  await alice.code.set('default', { main: PROBE });
  await eventually(async () => (await alice.memory.get('limit')).data === 100, 10000, 'limit 100');
  const r = ok(['users', 'set-cpu', 'alice', '37', '--json']).json;
  assert.deepEqual([r.cpu, r.previous], [37, 100]);
  await eventually(async () => (await alice.memory.get('limit')).data === 37, 10000, 'limit 37');
  assert.equal((await alice.me()).cpu, 37);
  assert.equal(adm(['users', 'set-cpu', 'alice', '0']).code, 2);
  assert.equal(adm(['users', 'set-cpu', 'nobody', '5']).code, 1);
});

test('a banned user cannot sign in, their tokens stop working and their code stops; unban restores', async () => {
  const bob = await player(server, 'bob', 'bob-secret-22');
  await bob.code.set('default', { main: PROBE });
  await eventually(async () => (await bob.memory.get('runs')).data >= 1, 10000, "bob's code to run");
  const token = bob.token;
  const noYes = adm(['users', 'ban', 'bob']);
  assert.equal(noYes.code, 2, 'ban needs --yes off a terminal');
  assert.match(noYes.err, /--yes/);
  const r = ok(['users', 'ban', 'bob', '--yes', '--json']).json;
  assert.equal(r.banned, true);
  assert.equal((await signin(server, 'bob', 'bob-secret-22')).status, 401);
  const me = await fetch(`${server.url}/api/auth/me`, { headers: { 'X-Token': token } });
  assert.equal(me.status, 401);
  // The code does not run while banned: its CPU account stops at one tick.
  const stats1 = ok(['player', 'stats', 'bob', '--json']).json.player;
  await sleep(400);
  const stats2 = ok(['player', 'stats', 'bob', '--json']).json.player;
  assert.equal(stats2.cpu.last_tick, stats1.cpu.last_tick);
  assert.equal(stats2.banned, true);
  assert.equal(ok(['users', 'list', '--json']).json.users[1].status, 'banned');
  ok(['users', 'unban', 'bob']);
  assert.equal((await signin(server, 'bob', 'bob-secret-22')).status, 200);
  await eventually(() => ok(['player', 'stats', 'bob', '--json']).json.player.cpu.last_tick > stats2.cpu.last_tick,
    10000, "bob's code to run again");
});

test('reset-password, issue-token and revoke-token, seen through the player API', async () => {
  const gen = ok(['users', 'reset-password', 'bob', '--yes']);
  const pw = gen.out.trim();
  assert.match(pw, /^[A-Za-z0-9_-]{24}$/);
  assert.equal((await signin(server, 'bob', 'bob-secret-22')).status, 401);
  assert.equal((await signin(server, 'bob', pw)).status, 200);
  ok(['users', 'reset-password', 'bob', '--password-stdin', '--yes'], { input: 'bob-secret-33\n' });
  assert.equal((await signin(server, 'bob', 'bob-secret-33')).status, 200);
  assert.equal(adm(['users', 'reset-password', 'bob', '--password', 'short', '--yes']).code, 2);

  const issued = ok(['users', 'issue-token', 'bob', '--label', 'ci', '--days', '30']);
  const token = issued.out.trim();
  assert.match(issued.err, /shown once/);
  const me = await fetch(`${server.url}/api/auth/me`, { headers: { 'X-Token': token } });
  assert.equal(me.status, 200);
  assert.equal((await me.json()).username, 'bob');
  const shown = ok(['users', 'show', 'bob', '--json']).json.user.tokens;
  assert.equal(shown.length, 1);
  assert.equal(shown[0].label, 'ci');
  assert.ok(shown[0].expires_ms > Date.now() + 29 * 86400000);
  assert.equal(adm(['users', 'revoke-token', 'bob', '0000000000000000', '--yes']).code, 1);
  const rv = ok(['users', 'revoke-token', 'bob', shown[0].id, '--yes', '--json']).json;
  assert.equal(rv.revoked, 1);
  assert.equal((await fetch(`${server.url}/api/auth/me`, { headers: { 'X-Token': token } })).status, 401);
  // --all
  ok(['users', 'issue-token', 'bob']);
  ok(['users', 'issue-token', 'bob']);
  assert.equal(ok(['users', 'revoke-token', 'bob', '--all', '--yes', '--json']).json.revoked, 2);
});

test('pause stops game time; step 3 advances it by exactly 3; resume starts it again', async () => {
  const p = ok(['world', 'pause', '--json']).json;
  assert.equal(p.paused, true);
  const t0 = await gameTime();
  assert.equal(t0, p.game_time);
  const h0 = ok(['world', 'status', '--json']).json;
  assert.equal(h0.paused, true);
  await sleep(500);
  assert.equal(await gameTime(), t0);
  const h1 = ok(['world', 'status', '--json']).json;
  assert.equal(h1.game_time, t0);
  assert.equal(h1.state_hash, h0.state_hash, 'nothing changes while paused');
  // Admin actions still work while paused.
  ok(['users', 'set-cpu', 'alice', '38']);
  const s = ok(['world', 'step', '3', '--json']).json;
  assert.equal(s.done, true);
  assert.equal(s.game_time, t0 + 3);
  assert.equal(await gameTime(), t0 + 3);
  await sleep(400);
  assert.equal(await gameTime(), t0 + 3);
  const alice = await player(server, 'alice', 'alice-secret-1');
  assert.equal((await alice.memory.get('time')).data, t0 + 3, 'the player ran the stepped ticks');
  assert.equal((await alice.memory.get('limit')).data, 38);
  assert.equal(ok(['world', 'step', '--json']).json.game_time, t0 + 4);
  assert.equal(ok(['log', '--json']).json.entries[0].what, 'world step 1');
  const r = ok(['world', 'resume', '--json']).json;
  assert.equal(r.paused, false);
  await eventually(async () => (await gameTime()) > t0 + 6, 5000, 'time to run again');
  const running = adm(['world', 'step', '2']);
  assert.equal(running.code, 1);
  assert.match(running.err, /pause it first/);
});

test('a pause survives a restart; --paused starts paused', async () => {
  const d = tempDir('isoworld-admin-pause-');
  dirs.push(d);
  let s = await start(d);
  ok(['world', 'pause'], { d });
  const t = await gameTime(s);
  await s.stop();
  s = await start(d);
  try {
    await sleep(300);
    assert.equal(await gameTime(s), t);
    assert.equal(ok(['world', 'status', '--json'], { d }).json.paused, true);
    assert.match(s.stderr(), /time is paused/);
    ok(['world', 'resume'], { d });
    await eventually(async () => (await gameTime(s)) > t, 5000, 'time after resume');
  } finally {
    await s.stop();
  }
  s = await start(d, ['--paused']);
  try {
    const t2 = await gameTime(s);
    await sleep(300);
    assert.equal(await gameTime(s), t2);
  } finally {
    await s.stop();
  }
});

test('tick-rate changes the tick interval, and world status measures it', async () => {
  const r = ok(['world', 'tick-rate', '200', '--json']).json;
  assert.equal(r.tick_ms, 200);
  assert.equal((await (await fetch(`${server.url}/api/game/tick`)).json()).tick, 200);
  await sleep(300);
  const t0 = await gameTime();
  await sleep(2000);
  const n = (await gameTime()) - t0;
  assert.ok(n >= 7 && n <= 13, `about 10 ticks in 2 s at 200 ms, got ${n}`);
  const st = ok(['world', 'status', '--json']).json;
  assert.equal(st.tick_ms, 200);
  assert.equal(st.tick.configured_ms, 200);
  // The measured figures start over when the rate changes.
  assert.ok(st.tick.interval_ms > 150 && st.tick.interval_ms < 300, `measured interval ${st.tick.interval_ms}`);
  assert.ok(st.tick.mean_ms >= 0 && st.tick.max_ms >= st.tick.mean_ms);
  ok(['world', 'tick-rate', '50']);
  assert.equal(adm(['world', 'tick-rate', '-5']).code, 2);
});

test('world status: game time, tick rate and durations, players, rooms, paused, state hash', async () => {
  const st = ok(['world', 'status', '--json']).json;
  for (const k of ['game_time', 'tick_ms', 'paused', 'players', 'rooms', 'state_hash', 'tick', 'uptime_s'])
    assert.ok(k in st, `status has ${k}`);
  assert.equal(st.players.total, 2);
  assert.equal(st.rooms, 9, 'the default world: 3x3 rooms');
  assert.equal(st.world_size, 3);
  assert.deepEqual([st.world.width, st.world.height, st.world.seed], [3, 3, 1]);
  assert.match(st.state_hash, /^[0-9a-f]{64}$/);
  const text = ok(['world', 'status']).out;
  assert.match(text, /^game time\s+\d+\s+running$/m);
  assert.match(text, /^players\s+2 /m);
  assert.match(text, /^rooms\s+9 \(3x3, seed 1\)$/m);
  assert.match(text, /^state hash\s+[0-9a-f]{64}$/m);
});

test('player stats, console (one tick and --follow), reset-global', async () => {
  const st = ok(['player', 'stats', 'alice', '--json']).json.player;
  assert.equal(st.username, 'alice');
  assert.equal(st.cpu.limit, 38);
  assert.ok(st.memory.bytes > 0);
  assert.equal(st.code.modules, 1);

  const one = ok(['player', 'console', 'alice']);
  assert.match(one.out, /^\[\d+\] probe at \d+ run \d+$/m);

  const follow = spawn(ADMIN, ['--data-dir', path.join(dir, 'data'), 'player', 'console', 'alice', '--follow'],
    { env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  follow.stdout.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => follow.on('exit', (code) => resolve(code)));
  await eventually(() => (out.match(/probe at/g) || []).length >= 3, 10000, 'three followed lines');
  follow.kill('SIGINT');
  assert.equal(await exited, 0);
  const ticks = [...out.matchAll(/^\[(\d+)\]/gm)].map((m) => Number(m[1]));
  for (let i = 1; i < ticks.length; i++) assert.equal(ticks[i], ticks[i - 1] + 1, 'consecutive ticks, none lost');

  const alice = await player(server, 'alice', 'alice-secret-1');
  await eventually(async () => (await alice.memory.get('runs')).data > 5, 10000, 'a few runs');
  assert.equal(adm(['player', 'reset-global', 'alice']).code, 2);
  ok(['world', 'pause']);
  const before = (await alice.memory.get('runs')).data;
  ok(['player', 'reset-global', 'alice', '--yes']);
  ok(['world', 'step', '2']);
  assert.ok(before > 5);
  assert.equal((await alice.memory.get('runs')).data, 2, 'a fresh global ran twice');
  ok(['world', 'resume']);
  assert.equal(adm(['player', 'stats', 'nobody']).code, 1);
});

test('a backup taken under load restores to a world whose state hash equals the one at backup time', async () => {
  // Load: many players writing Memory every tick, ticks as fast as they go.
  const d = tempDir('isoworld-admin-backup-');
  dirs.push(d);
  const s = await start(d, ['--tick-ms', '5']);
  let backup;
  try {
    for (let i = 0; i < 8; i++) ok(['users', 'create', `load${i}`, '--password', 'load-password'], { d });
    for (let i = 0; i < 8; i++) {
      const p = await player(s, `load${i}`, 'load-password');
      await p.code.set('default', { main: `module.exports.loop = () => {
        Memory.t = Game.time; Memory.blob = 'x'.repeat(2000 + (Game.time % 100));
        RawMemory.segments[1] = String(Game.time); };` });
    }
    await eventually(async () => (await gameTime(s)) > 50, 10000, 'ticks under load');
    const file = path.join(d, 'world.backup');
    const t0 = await gameTime(s);
    const r = ok(['backup', file, '--json'], { d }).json.backup;
    assert.equal(r.phase, 'done');
    assert.match(r.state_hash, /^[0-9a-f]{64}$/);
    assert.ok(r.game_time >= t0, 'the backup is of a tick at or after the request');
    assert.ok((await gameTime(s)) > r.game_time, 'ticks went on during the backup');
    backup = { file, ...r };
    // A second backup onto the same file is refused, unless --force.
    assert.equal(adm(['backup', file], { d }).code, 1);
    // verify reads the backup: same game time, same hash, every record decodes.
    const v = ok(['verify', file, '--json'], { d }).json;
    assert.equal(v.valid, true);
    assert.equal(v.schema_version, 2);
    assert.equal(v.game_time, backup.game_time);
    assert.equal(v.state_hash, backup.state_hash);
    assert.equal(v.counts.users, 8);
    assert.equal(v.counts.segments, 8);
    // verify works on the live data directory too.
    assert.equal(ok(['verify', '--json'], { d }).json.valid, true);
    // restore is refused while the server holds the directory.
    const busy = adm(['restore', file, '--yes'], { d });
    assert.equal(busy.code, 1);
    assert.match(busy.err, /a server \(pid \d+\) is using/);
  } finally {
    await s.stop();
  }
  // Into a new data directory.
  const d2 = tempDir('isoworld-admin-restored-');
  dirs.push(d2);
  const res = ok(['restore', backup.file, '--json'], { d: d2 }).json;
  assert.equal(res.state_hash, backup.state_hash);
  const s2 = await start(d2, ['--paused']);
  try {
    const st = ok(['world', 'status', '--json'], { d: d2 }).json;
    assert.equal(st.state_hash, backup.state_hash);
    assert.equal(st.game_time, backup.game_time);
    assert.equal(await gameTime(s2), backup.game_time);
    const p = await player(s2, 'load3', 'load-password');
    assert.equal((await p.memory.get('t')).data, backup.game_time);
  } finally {
    await s2.stop();
  }
  // Over the original directory: the world it replaces is kept beside it.
  const back = ok(['restore', backup.file, '--yes'], { d });
  assert.match(back.out, /previous world is kept as .*data\.mdb\.before-restore-/);
  assert.ok(readdirSync(path.join(d, 'data')).some((f) => f.startsWith('data.mdb.before-restore-')));
  assert.equal(ok(['verify', '--json'], { d }).json.state_hash, backup.state_hash);
});

test('backup --force replaces a backup, never another file; --backup-dir confines backups', async () => {
  const d = tempDir('isoworld-admin-force-');
  dirs.push(d);
  const { writeFileSync } = await import('node:fs');
  const precious = path.join(d, 'notes.txt');
  writeFileSync(precious, 'do not overwrite me\n');
  const r = adm(['backup', precious, '--force']);
  assert.equal(r.code, 1);
  assert.match(r.err, /not an isoworld backup/);
  assert.equal(readFileSync(precious, 'utf8'), 'do not overwrite me\n');
  const b = path.join(d, 'b.backup');
  ok(['backup', b]);
  assert.equal(adm(['backup', b]).code, 1);
  const again = ok(['backup', b, '--force', '--json']).json.backup;
  assert.equal(ok(['verify', b, '--json']).json.state_hash, again.state_hash);

  const s = await start(d, ['--backup-dir', path.join(d, 'bk')]);
  try {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(path.join(d, 'bk'));
    assert.equal(adm(['backup', path.join(d, 'x.backup')], { d }).code, 1);
    ok(['backup', path.join(d, 'bk', 'x.backup')], { d });
  } finally {
    await s.stop();
  }
});

test('verify finds damage, and restore refuses a damaged backup', async () => {
  const d = tempDir('isoworld-admin-damage-');
  dirs.push(d);
  const bad = path.join(d, 'bad.backup');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(bad, Buffer.alloc(8192, 7));
  const v = adm(['verify', bad]);
  assert.equal(v.code, 1);
  assert.match(v.err, /cannot be read/);
  assert.equal(adm(['restore', bad, '--yes'], { d }).code, 1);
  assert.ok(!existsSync(path.join(d, 'data', 'data.mdb')), 'nothing was written');
  // A truncated copy of a good backup.
  const good = path.join(d, 'good.backup');
  ok(['backup', good]);
  const bytes = readFileSync(good);
  const cut = path.join(d, 'cut.backup');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 4096));
  const c = adm(['verify', cut]);
  assert.equal(c.code, 1);
  assert.match(c.err, /truncated/);
});

// The world commands in depth: admin_world.test.mjs. Here: they work on a server whose
// users got their rooms automatically (the default), and check their arguments first.
test('the world commands work with automatically placed players', async () => {
  const id = ok(['users', 'list', '--json']).json.users.find((u) => u.username === 'alice').id;
  const rooms = async () => (await (await fetch(`${server.url}/api/user/rooms?id=${id}`)).json()).rooms;
  const [room] = await rooms();
  assert.match(room, /^W\dN\d$/, 'alice got a room when she was created');
  const again = adm(['player', 'place-spawn', 'alice', room, '25', '25']);
  assert.equal(again.code, 1);
  assert.match(again.err, /already playing/);
  assert.equal(adm(['player', 'place-spawn', 'alice', 'W1N1', '99', '25']).code, 2);
  assert.equal(adm(['player', 'place-spawn', 'alice', 'nowhere', '25', '25']).code, 2);
  assert.equal(adm(['world', 'generate', '0', '--yes']).code, 2);
  assert.equal(adm(['world', 'generate', '100000', '--yes']).code, 2);
  assert.equal(adm(['world', 'reset']).code, 2, 'reset needs --yes off a terminal');
  assert.equal(adm(['player', 'respawn', 'alice']).code, 2, 'respawn needs --yes off a terminal');
  const r = ok(['player', 'respawn', 'alice', '--yes', '--json']).json;
  assert.deepEqual(r.previous_rooms, [room]);
  assert.deepEqual(await rooms(), [r.room]);
  assert.equal(ok(['world', 'status', '--json', '--no-hash']).json.rooms, 9);
});

test('broadcast reaches every websocket client on server-message', async () => {
  const a = await openSocket(server.port), b = await openSocket(server.port);
  try {
    await a.next((m) => m === 'protocol 14');
    await b.next((m) => m === 'protocol 14');
    const r = ok(['broadcast', 'maintenance at noon: "back soon" <b>']);
    assert.match(r.out, /sent/);
    for (const s of [a, b]) {
      const m = await s.next((x) => x.startsWith('["server-message"'));
      assert.deepEqual(JSON.parse(m), ['server-message', 'maintenance at noon: "back soon" <b>']);
    }
    assert.equal(adm(['broadcast', '']).code, 2);
    assert.equal(adm(['broadcast', 'x'.repeat(2000)]).code, 2);
  } finally {
    a.close();
    b.close();
  }
});

test('the admin log records who did what, in the same transaction as the change', async () => {
  const log = ok(['log', '--limit', '100', '--json']).json.entries;
  const whats = log.map((e) => e.what);
  assert.ok(whats.includes('users ban bob'));
  assert.ok(whats.includes('users set-cpu alice 37'));
  assert.ok(whats.includes('world pause'));
  assert.ok(log.every((e) => e.who.startsWith('e2e@127.0.0.1')));
  assert.ok(!whats.some((w) => /secret/.test(w)), 'no password in the log');
  assert.match(server.stderr(), /admin e2e@127\.0\.0\.1: users ban bob: done/);
});

test('usage, help and exit codes', async () => {
  const help = adm(['--help']);
  assert.equal(help.code, 0);
  for (const c of ['users list', 'users show', 'users create', 'users ban', 'users unban', 'users set-cpu',
    'users reset-password', 'users issue-token', 'users revoke-token', 'world status', 'world pause', 'world resume',
    'world step', 'world tick-rate', 'world generate', 'world reset', 'player stats', 'player reset-global',
    'player console', 'player respawn', 'player place-spawn', 'backup', 'restore', 'verify', 'broadcast', 'log']) {
    assert.ok(help.out.includes(`  ${c}`), `overview lists ${c}`);
    const h = adm([...c.split(' '), '--help']);
    assert.equal(h.code, 0, `${c} --help`);
    assert.match(h.out, new RegExp(`^Usage: isoworld-admin ${c}`));
    assert.equal(adm(['help', ...c.split(' ')]).out, h.out);
  }
  assert.equal(adm([]).code, 2);
  assert.equal(adm(['frobnicate']).code, 2);
  assert.equal(adm(['users', 'frobnicate']).code, 2);
  assert.equal(adm(['users', 'list', '--bogus']).code, 2);
  assert.equal(adm(['users', 'list', '--email', 'x']).code, 2, 'an option of another command');
  assert.equal(adm(['users', 'ban']).code, 2, 'missing NAME');
  assert.equal(adm(['world', 'step', 'many']).code, 2);
  const json = adm(['users', 'set-cpu', 'alice', 'abc', '--json']);
  assert.equal(json.code, 2);
  assert.deepEqual(Object.keys(json.json).sort(), ['error', 'exit', 'ok']);
  const refused = adm(['users', 'show', 'nobody', '--json']);
  assert.equal(refused.code, 1);
  assert.equal(refused.json.code, 'not_found');
  assert.equal(refused.json.http_status, 404);
  // Unreachable: no server there, or no server on the data directory.
  const gone = adm(['world', 'status', '--url', 'http://127.0.0.1:1', '--token', 'x']);
  assert.equal(gone.code, 3);
  assert.match(gone.err, /cannot reach the server/);
  const empty = tempDir('isoworld-admin-empty-');
  dirs.push(empty);
  assert.equal(adm(['world', 'status'], { d: empty }).code, 3);
  // No colour when not on a terminal, even without NO_COLOR.
  const plain = adm(['users', 'list'], { env: { NO_COLOR: '' } });
  assert.ok(!plain.out.includes('\u001b['));
  assert.ok(adm(['users', 'list', '--color', 'always']).out.includes('\u001b[1m'));
});

test('bad arguments to the admin API never hurt the server', async () => {
  const { url } = adminInfo();
  const h = { 'X-Admin-Token': adminToken(), 'content-type': 'application/json' };
  const routes = ['/admin/users/create', '/admin/users/ban', '/admin/users/unban', '/admin/users/set-cpu',
    '/admin/users/reset-password', '/admin/users/issue-token', '/admin/users/revoke-token', '/admin/world/step',
    '/admin/world/tick-rate', '/admin/world/generate', '/admin/player/reset-global', '/admin/player/place-spawn',
    '/admin/backup', '/admin/broadcast'];
  const bodies = ['', '[', '[]', 'null', '"x"', '{"user":5}', '{"user":"' + 'a'.repeat(5000) + '"}',
    '{"user":"a\\u0000b"}', '{"user":"nobody","cpu":1e300}', '{"user":"nobody","cpu":"7"}', '{"ticks":-1}',
    '{"ticks":99999999999999999999}', '{"ms":"fast"}', '{"path":"relative"}', '{"path":"/nonexistent/dir/x"}',
    '{"user":"nobody","id":"zz","all":true}', '{"text":""}', '{"rooms":0}', '{"user":"nobody","room":"W1N1","x":-1,"y":0}',
    '{"username":"ok_name","password":"' + 'p'.repeat(300) + '"}', '{"user":"nobody","days":-3}'];
  for (const route of routes) {
    for (const body of bodies) {
      const r = await fetch(url + route, { method: 'POST', headers: h, body });
      assert.ok(r.status >= 400 && r.status < 600 && r.status !== 500, `${route} ${body.slice(0, 40)}: ${r.status}`);
      const j = await r.json();
      assert.equal(j.ok, 0);
      assert.equal(typeof j.error, 'string');
    }
  }
  const q = await fetch(`${url}/admin/player/console?user=alice&after=abc`, { headers: h });
  assert.equal(q.status, 400);
  assert.equal((await fetch(`${url}/admin/log?limit=0`, { headers: h })).status, 400);
  // Still serving, still ticking, nothing changed that should not have.
  assert.equal(ok(['world', 'status', '--json']).json.players.total, 2);
  const t = await gameTime();
  await eventually(async () => (await gameTime()) > t, 5000, 'ticks after the bad requests');
});
