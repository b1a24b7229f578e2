// Players end to end, with the tools Screeps players use, unmodified: the screeps-api
// client registers, signs in, uploads two modules where main requires the other, reads
// them back, sets and reads Memory and a segment, queues a console command and sees its
// effect on a later tick; a grunt-screeps-style upload with HTTP Basic through curl; a
// second user sees none of the first one's data. Against the real server binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ScreepsAPI } from 'screeps-api';
import { startServer, tempDir, removeDir, apiOptions, eventually, curl, sleep } from './lib/server.mjs';

let server, dir;
const ALICE = { username: 'alice', email: 'alice@example.org', password: 'alice-secret-1' };
const BOB = { username: 'bob', email: 'bob@example.org', password: 'bob-secret-22' };
let alice, bob, aliceId;

// main requires util; it counts ticks, reads and writes segments, and reports the
// module it found, so Memory shows that require among modules works at run time.
const MAIN = `
const util = require('util');
module.exports.loop = function () {
  Memory.ticks = (Memory.ticks || 0) + 1;
  Memory.fromUtil = util.answer();
  Memory.branch = 'default';
  RawMemory.setActiveSegments([3]);
  if (RawMemory.segments[3] !== undefined) Memory.seg3 = RawMemory.segments[3];
  RawMemory.segments[4] = 'written by code at ' + Game.time;
  Memory.cpu = { limit: Game.cpu.limit, bucket: Game.cpu.bucket, tickLimit: Game.cpu.tickLimit,
                 used: typeof Game.cpu.getUsed(), heap: typeof Game.cpu.getHeapStatistics().used_heap_size };
};`;
const UTIL = `module.exports.answer = function () { return 42; };`;

before(async () => {
  dir = tempDir();
  server = await startServer(dir);
  alice = new ScreepsAPI(apiOptions(server));
  bob = new ScreepsAPI(apiOptions(server));
});

after(async () => {
  if (server) await server.stop();
  if (dir) removeDir(dir);
});

test('authmod says registration is open on a fresh server', async () => {
  const mod = await alice.raw.authmod();
  assert.equal(mod.ok, 1);
  assert.equal(mod.allowRegistration, true);
});

test('register, check names, sign in', async () => {
  assert.deepEqual(await alice.raw.register.checkUsername('alice'), { ok: 1 });
  const r = await alice.registerUser(ALICE.username, ALICE.email, ALICE.password);
  assert.deepEqual(r, { ok: 1 });
  assert.equal((await alice.raw.register.checkUsername('ALICE')).error, 'exists');
  assert.equal((await alice.raw.register.checkEmail('alice@example.org')).error, 'exists');
  const again = await alice.registerUser('Alice', 'other@example.org', 'whatever-123');
  assert.match(again.error, /already exists/);
  assert.deepEqual(await bob.registerUser(BOB.username, BOB.email, BOB.password), { ok: 1 });

  const res = await alice.auth(ALICE.email, ALICE.password);
  assert.equal(res.ok, 1);
  assert.equal(typeof res.token, 'string');
  await bob.auth(BOB.username, BOB.password); // a username works where the email goes
  const me = await alice.me();
  assert.equal(me.username, 'alice');
  assert.equal(me.email, 'alice@example.org');
  assert.equal(me.password, true);
  assert.equal(me.cpu, 100);
  aliceId = me._id;
  assert.equal(typeof aliceId, 'string');
  assert.deepEqual(await alice.raw.user.name(), { ok: 1, username: 'alice' });
});

test('wrong credentials and missing tokens get 401', async () => {
  const stranger = new ScreepsAPI(apiOptions(server));
  await assert.rejects(stranger.auth(ALICE.email, 'wrong-password'), /Not Authorized/);
  await assert.rejects(stranger.auth('nobody', 'wrong-password'), /Not Authorized/);
  await assert.rejects(stranger.raw.auth.me(), /Not Authorized/);
  const bad = curl(['-H', 'X-Token: AQAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', `${server.url}/api/auth/me`]);
  assert.equal(bad.status, 401);
  assert.deepEqual(bad.body, { error: 'unauthorized' });
  // Basic sign-in works too (screepsmod-auth accepts it).
  const basic = curl(['-u', `${ALICE.username}:${ALICE.password}`, '-X', 'POST', `${server.url}/api/auth/signin`]);
  assert.equal(basic.status, 200);
  assert.equal(basic.body.ok, 1);
});

test('every authenticated response rotates the token; old tokens stay valid; ?_token= works', async () => {
  const t0 = alice.token;
  await alice.raw.user.name();
  const t1 = alice.token;
  assert.notEqual(t0, t1);
  await alice.raw.auth.me();
  assert.notEqual(alice.token, t1);
  // The previous token still works until its own expiry, with or without X-Username.
  const r = curl(['-H', `X-Token: ${t0}`, '-H', 'X-Username: somebody-else', '-i', `${server.url}/api/user/name`]);
  assert.equal(r.status, 200);
  assert.match(r.body, /"username":"alice"/);
  assert.match(r.body, /X-Token: \S+/i);
  const q = curl([`${server.url}/api/user/name?_token=${encodeURIComponent(t1)}`]);
  assert.deepEqual(q.body, { ok: 1, username: 'alice' });
  const info = await alice.raw.auth.queryToken(t1);
  assert.deepEqual(info.token, { full: true, token: t1 });
});

test('new users have a default branch, active for world and sim, with an empty main', async () => {
  const { list } = await alice.raw.user.branches();
  assert.equal(list.length, 1);
  assert.equal(list[0].branch, 'default');
  assert.equal(list[0].activeWorld, true);
  assert.equal(list[0].activeSim, true);
  assert.deepEqual(list[0].modules, { main: '' });
});

test('upload two modules, read them back, see them run from the next tick', async () => {
  const up = await alice.code.set('default', { main: MAIN, util: UTIL });
  assert.equal(up.ok, 1);
  assert.equal(typeof up.timestamp, 'number');
  const got = await alice.code.get('default');
  assert.equal(got.branch, 'default');
  assert.deepEqual(got.modules, { main: MAIN, util: UTIL });
  // The active branch by flag, and the default selector.
  assert.deepEqual((await alice.code.get('$activeWorld')).modules, { main: MAIN, util: UTIL });
  const mem = await eventually(async () => {
    const m = await alice.memory.get('');
    return m.data && m.data.fromUtil === 42 && m.data.ticks >= 2 && m.data;
  }, 10000, 'the uploaded code to run');
  assert.equal(mem.branch, 'default');
  assert.deepEqual(mem.cpu, { limit: 100, bucket: mem.cpu.bucket, tickLimit: Math.min(500, mem.cpu.bucket + 100),
                              used: 'number', heap: 'number' });
});

test('module names with dots and slashes, binary modules, missing branch', async () => {
  const wasm = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).toString('base64');
  const main = `
const helper = require('lib/helper.v2');
module.exports.loop = function () {
  const bytes = require('empty.wasm');
  Memory.bin = { size: new Uint8Array(bytes).length,
                 exports: WebAssembly.Module.exports(new WebAssembly.Module(bytes)).length,
                 helper: helper.name };
};`;
  const up = await alice.code.set('default', { main, 'lib/helper.v2': 'module.exports.name = "h2";',
                                               'empty.wasm': { binary: wasm } });
  assert.equal(up.ok, 1);
  const got = await alice.code.get('default');
  assert.deepEqual(Object.keys(got.modules).sort(), ['empty.wasm', 'lib/helper.v2', 'main']);
  assert.deepEqual(got.modules['empty.wasm'], { binary: wasm });
  const bin = await eventually(async () => (await alice.memory.get('bin')).data, 10000, 'the binary module');
  assert.deepEqual(bin, { size: 8, exports: 0, helper: 'h2' });
  assert.equal((await alice.code.set('no-such-branch', { main: '' })).error, 'branch does not exist');
  assert.match((await alice.code.set('default', { 'a$DOT$b': '' })).error, /invalid module name/);
  // Back to the two modules of the main test.
  assert.equal((await alice.code.set('default', { main: MAIN, util: UTIL })).ok, 1);
});

test('upload without main gets an empty main', async () => {
  await alice.raw.user.cloneBranch('', 'nomain', { util: UTIL });
  assert.deepEqual((await alice.code.get('nomain')).modules, { main: '', util: UTIL });
  assert.equal((await alice.code.set('nomain', { util: UTIL })).ok, 1);
  assert.deepEqual((await alice.code.get('nomain')).modules, { main: '', util: UTIL });
  assert.equal((await alice.raw.user.deleteBranch('nomain')).ok, 1);
});

test('Memory: read by path, write by path, delete, gzip on the wire', async () => {
  assert.deepEqual(await alice.memory.set('plans.base', { x: 1, tags: ['a'] }), { ok: 1 });
  assert.deepEqual((await alice.memory.get('plans.base')).data, { x: 1, tags: ['a'] });
  assert.deepEqual((await alice.memory.get('plans.base.tags.0')).data, 'a');
  // The raw answer is gz: + base64 of a gzip stream.
  const raw = curl(['-H', `X-Token: ${alice.token}`, `${server.url}/api/user/memory?path=plans.base.x`]);
  assert.match(raw.body.data, /^gz:H4sI/);
  // Nothing there: {ok:1}; through nothing: Screeps' text.
  assert.deepEqual(await alice.memory.get('plans.none'), { ok: 1 });
  assert.equal((await alice.memory.get('nothing.at.all')).data, 'Incorrect memory path');
  assert.deepEqual(await alice.memory.set('plans.base', undefined), { ok: 1 });
  assert.deepEqual(await alice.memory.get('plans.base'), { ok: 1 });
  // The code keeps running and keeps what was set.
  const t = (await alice.memory.get('ticks')).data;
  await eventually(async () => (await alice.memory.get('ticks')).data > t + 1, 5000, 'more ticks');
  assert.deepEqual((await alice.memory.get('plans')).data, {});
  // Limits: a value over 1 MB is refused.
  const big = await alice.memory.set('big', 'x'.repeat(1024 * 1024 + 1));
  assert.equal(big.error, 'memory size is too large');
});

test('segments: set and get over HTTP, read and written by the code', async () => {
  assert.deepEqual(await alice.segment.set(3, 'hello segment'), { ok: 1 });
  assert.deepEqual(await alice.segment.get(3), { ok: 1, data: 'hello segment' });
  assert.deepEqual(await alice.segment.get(7), { ok: 1, data: null });
  // The code asked for segment 3 and copies it into Memory; it writes segment 4.
  await eventually(async () => (await alice.memory.get('seg3')).data === 'hello segment', 10000, 'segment 3 in Memory');
  const s4 = await eventually(async () => (await alice.segment.get(4)).data, 10000, 'segment 4 written by code');
  assert.match(s4, /^written by code at \d+$/);
  const list = await alice.raw.user.memory.segment.get('3,7');
  assert.deepEqual(list.data, ['hello segment', null]);
  assert.equal((await alice.segment.set(100, 'x')).error, 'invalid segment ID');
  assert.equal((await alice.segment.set(1, 'x'.repeat(100 * 1024 + 1))).error, 'length limit exceeded');
});

test('a console command runs after loop() on a later tick; its result is in the log', async () => {
  assert.deepEqual(await alice.console("Memory.fromConsole = 'yes:' + Game.time; 6 * 7"), { ok: 1 });
  const v = await eventually(async () => (await alice.memory.get('fromConsole')).data, 10000, 'the console command');
  assert.match(v, /^yes:\d+$/);
  await eventually(() => /alice: =>\s+42/.test(server.stdout()), 5000, 'the result in the server log');
  const tooLong = await alice.console('1+'.repeat(600) + '1');
  assert.equal(tooLong.error, 'expression size is too large');
});

test('console commands run even when loop() throws', async () => {
  const throwing = `module.exports.loop = function () { Memory.threw = Game.time; throw new Error('on purpose'); };`;
  await alice.code.set('default', { main: throwing });
  await eventually(async () => (await alice.memory.get('threw')).data, 10000, 'the throwing loop');
  await alice.console("Memory.afterThrow = 'ran'");
  await eventually(async () => (await alice.memory.get('afterThrow')).data === 'ran', 10000, 'a command after a throw');
  await alice.code.set('default', { main: MAIN, util: UTIL });
});

test('branches: clone, upload, set active, delete, limits', async () => {
  const v2main = MAIN.replace("Memory.branch = 'default'", "Memory.branch = 'v2'");
  const c = await alice.raw.user.cloneBranch('default', 'v2');
  assert.equal(c.ok, 1);
  assert.deepEqual((await alice.code.get('v2')).modules, { main: MAIN, util: UTIL });
  await alice.code.set('v2', { main: v2main, util: UTIL });
  // v2 is not running yet.
  await sleep(300);
  assert.equal((await alice.memory.get('branch')).data, 'default');
  assert.equal((await alice.raw.user.setActiveBranch('v2', 'activeWorld')).ok, 1);
  await eventually(async () => (await alice.memory.get('branch')).data === 'v2', 10000, 'branch v2 to run');
  const { list } = await alice.raw.user.branches();
  const byName = Object.fromEntries(list.map((b) => [b.branch, b]));
  assert.equal(byName.v2.activeWorld, true);
  assert.equal(byName.default.activeWorld, false);
  assert.equal(byName.default.activeSim, true);
  assert.deepEqual((await alice.code.get()).modules.main, v2main); // no branch: the active one
  assert.match((await alice.raw.user.deleteBranch('v2')).error, /active/);
  assert.equal((await alice.raw.user.setActiveBranch('nope', 'activeWorld')).error, 'no branch');
  assert.equal((await alice.raw.user.setActiveBranch('default', 'activeNope')).error, 'invalid params');
  assert.equal((await alice.raw.user.setActiveBranch('default', 'activeWorld')).ok, 1);
  await eventually(async () => (await alice.memory.get('branch')).data === 'default', 10000, 'default to run again');
  assert.equal((await alice.raw.user.deleteBranch('v2')).ok, 1);
  assert.equal((await alice.code.get('v2')).error, 'branch does not exist');
  // rollup-plugin-screeps creates a missing branch with cloneBranch('', name, modules).
  await alice.raw.user.cloneBranch('', 'rollup', { main: 'module.exports.loop = () => {};' });
  assert.deepEqual((await alice.code.get('rollup')).modules, { main: 'module.exports.loop = () => {};' });
  assert.equal((await alice.raw.user.cloneBranch('', 'x'.repeat(31))).error, 'invalid branch name');
  // At most 30 branches.
  const have = (await alice.raw.user.branches()).list.length;
  for (let i = have; i < 30; i++) assert.equal((await alice.raw.user.cloneBranch('', `b${i}`)).ok, 1);
  assert.equal((await alice.raw.user.cloneBranch('', 'one-too-many')).error, 'too many branches');
  for (let i = have; i < 30; i++) assert.equal((await alice.raw.user.deleteBranch(`b${i}`)).ok, 1);
});

test('grunt-screeps style upload: HTTP Basic on POST /api/user/code (curl)', async () => {
  const body = JSON.stringify({ branch: 'default', modules: { main: MAIN, util: UTIL, extra: '// uploaded by curl' } });
  const ok = curl(['-u', `${ALICE.email}:${ALICE.password}`, '-H', 'Content-Type: application/json; charset=utf-8',
    '-X', 'POST', '--data-binary', body, `${server.url}/api/user/code`]);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.ok, 1);
  assert.equal((await alice.code.get('default')).modules.extra, '// uploaded by curl');
  const bad = curl(['-u', `${ALICE.email}:nope`, '-H', 'Content-Type: application/json', '-X', 'POST',
    '--data-binary', body, `${server.url}/api/user/code`]);
  assert.equal(bad.status, 401);
  const none = curl(['-H', 'Content-Type: application/json', '-X', 'POST', '--data-binary', body,
    `${server.url}/api/user/code`]);
  assert.equal(none.status, 401);
});

test("a second user cannot see or change the first user's code, Memory or segments", async () => {
  const code = await bob.code.get('default');
  assert.deepEqual(code.modules, { main: '' });
  assert.deepEqual(await bob.memory.get('fromUtil'), { ok: 1 });
  assert.deepEqual(await bob.segment.get(3), { ok: 1, data: null });
  assert.equal((await bob.code.get('rollup')).error, 'branch does not exist');
  await bob.memory.set('fromUtil', 'bob was here');
  await bob.segment.set(3, 'bob segment');
  assert.equal((await alice.memory.get('fromUtil')).data, 42);
  assert.equal((await alice.segment.get(3)).data, 'hello segment');
  // Alice's token with Bob's name in X-Username is still Alice.
  const r = curl(['-H', `X-Token: ${alice.token}`, '-H', 'X-Username: bob', `${server.url}/api/user/name`]);
  assert.equal(r.body.username, 'alice');
  // Bob's console commands run in Bob's isolate.
  await bob.console("Memory.mine = 'bob'");
  await eventually(async () => (await bob.memory.get('mine')).data === 'bob', 10000, "bob's command");
  assert.deepEqual(await alice.memory.get('mine'), { ok: 1 });
});

test('long-lived tokens for tools: create, use, revoke', async () => {
  const made = await alice.req('POST', '/api/user/auth-tokens', { password: ALICE.password, label: 'ci' });
  assert.equal(made.ok, 1);
  const tool = new ScreepsAPI(apiOptions(server, { token: made.token }));
  assert.deepEqual(await tool.raw.user.name(), { ok: 1, username: 'alice' });
  assert.equal(tool.token, made.token); // echoed back, so the tool keeps it
  assert.equal((await tool.me()).username, 'alice'); // query-token says full, then /auth/me
  const wrong = await alice.req('POST', '/api/user/auth-tokens', { password: 'nope' });
  assert.equal(wrong.error, 'wrong password');
  const { list } = await alice.req('GET', '/api/user/auth-tokens');
  assert.equal(list.length, 1);
  assert.equal(list[0].label, 'ci');
  assert.equal(list[0]._id, made._id);
  assert.deepEqual(await alice.req('POST', '/api/user/auth-tokens/revoke', { _id: made._id }), { ok: 1 });
  await assert.rejects(tool.raw.user.name(), /Not Authorized/);
});

test('HTTP hygiene: 413, malformed JSON, unknown paths', async () => {
  const huge = curl(['-H', `X-Token: ${alice.token}`, '-H', 'Content-Type: application/json', '-X', 'POST',
    '--data-binary', '@-', `${server.url}/api/user/code`], `{"modules":{"main":"${'x'.repeat(9 * 1024 * 1024)}"}}`);
  assert.equal(huge.status, 413);
  const code6 = curl(['-H', `X-Token: ${alice.token}`, '-H', 'Content-Type: application/json', '-X', 'POST',
    '--data-binary', '@-', `${server.url}/api/user/code`], `{"modules":{"main":"${'x'.repeat(6 * 1024 * 1024)}"}}`);
  assert.equal(code6.body.error, 'code length exceeds 5 MB limit');
  const bad = curl(['-H', `X-Token: ${alice.token}`, '-H', 'Content-Type: application/json', '-X', 'POST',
    '--data-binary', '{"expression": ', `${server.url}/api/user/console`]);
  assert.equal(bad.status, 200);
  assert.match(bad.body.error, /^malformed JSON body/);
  const missing = curl([`${server.url}/api/user/nothing-here`]);
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, { error: 'not found' });
});
