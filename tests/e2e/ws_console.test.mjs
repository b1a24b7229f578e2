// Live consoles over websockets, with the screeps-api client players use, unmodified:
// sign in, subscribe to console and cpu, upload code that logs, and receive its lines on
// the next ticks; a console command's result arrives in `results`; an error arrives as a
// frame of its own; code uploads and Memory paths have channels too. Another user's socket
// and an unauthenticated one receive nothing from user:<id>/*. Against the real binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ScreepsAPI } from 'screeps-api';
import { startServer, tempDir, removeDir, apiOptions, eventually, sleep } from './lib/server.mjs';
import { openSocket, onChannel, authSocket } from './lib/ws.mjs';

let server, dir;
let alice, bob, aliceId, bobId;
const events = []; // everything alice's screeps-api socket emitted, in order

const CODE = `
module.exports.loop = function () {
  console.log('hello from', Game.time, '<b>bold</b>', {a: 1});
  console.logUnsafe('<i>raw ' + Game.time + '</i>');
  Memory.stats = { time: Game.time, nested: { deep: 'yes' } };
  if (Game.time % 4 === 0) require('lib').explode(Game.time);
};`;
const LIB = `module.exports.explode = function (t) { throw new Error('boom at ' + t + ' <x>'); };`;

before(async () => {
  dir = tempDir();
  server = await startServer(dir);
  alice = new ScreepsAPI(apiOptions(server));
  bob = new ScreepsAPI(apiOptions(server));
  assert.deepEqual(await alice.registerUser('alice', 'alice@example.org', 'alice-secret-1'), { ok: 1 });
  assert.deepEqual(await bob.registerUser('bob', 'bob@example.org', 'bob-secret-22'), { ok: 1 });
  await alice.auth('alice', 'alice-secret-1');
  await bob.auth('bob', 'bob-secret-22');
  aliceId = (await alice.me())._id;
  bobId = (await bob.me())._id;
});

after(async () => {
  for (const api of [alice, bob]) if (api && api.socket.ws) api.socket.disconnect();
  if (server) await server.stop();
  if (dir) removeDir(dir);
});

test('screeps-api signs in on the socket and subscribes to console and cpu', async () => {
  await alice.socket.connect(); // sends auth <token>; rejects on "auth failed"
  assert.equal(alice.socket.authed, true);
  alice.socket.on('message', (ev) => { if (ev.type === 'user') events.push(ev); });
  await alice.socket.subscribe('console');
  await alice.socket.subscribe('cpu');
  await alice.socket.subscribe('code');
  await alice.socket.subscribe('memory/stats.nested.deep');
  await alice.socket.subscribe('memory/stats.nope.deeper');
  // an immediate cpu frame on subscribe, from the committed state
  const first = await eventually(() => events.find((e) => e.channel === 'cpu'), 10000, 'the first cpu frame');
  assert.equal(first.id, aliceId);
  assert.equal(typeof first.data.cpu, 'number'); // a new player runs an empty main
  assert.equal(first.data.memory, 2); // "{}"
});

test('uploaded code logs: its lines arrive on the next ticks, escaped unless logUnsafe', async () => {
  const up = await alice.code.set('default', { main: CODE, lib: LIB });
  assert.equal(up.ok, 1);
  const msg = await eventually(() => events.find((e) => e.channel === 'console' && e.data.messages &&
    e.data.messages.log.length), 10000, 'a console message');
  const [line, raw] = msg.data.messages.log;
  assert.match(line, /^hello from \d+ &lt;b&gt;bold&lt;\/b&gt; \[object Object\]$/);
  assert.match(raw, /^<i>raw \d+<\/i>$/);
  assert.deepEqual(msg.data.messages.results, []);
  // one console message per tick the player ran, ticks in order
  const logged = () => events.filter((e) => e.channel === 'console' && e.data.messages && e.data.messages.log.length);
  await eventually(() => logged().length >= 5, 10000);
  const times = logged()
    .map((e) => Number(/hello from (\d+)/.exec(e.data.messages.log[0])[1]));
  for (let i = 1; i < times.length; i++) assert.equal(times[i], times[i - 1] + 1);
});

test('an error arrives as a frame of its own, with a stack in the player\'s modules', async () => {
  const err = await eventually(() => events.find((e) => e.channel === 'console' && e.data.error), 10000, 'an error');
  assert.deepEqual(Object.keys(err.data), ['error']);
  assert.match(err.data.error, /^Error: boom at \d+ &lt;x&gt;/);
  assert.match(err.data.error, /at module\.exports\.explode \(lib:1:\d+\)/);
  assert.match(err.data.error, /at module\.exports\.loop \(main:\d+:\d+\)/);
  assert.doesNotMatch(err.data.error, /isoworld:|prelude/);
  // the tick's log lines came first, in their own frame
  const i = events.indexOf(err);
  assert.ok(events[i - 1].data.messages);
});

test('cpu after each run; code on upload; Memory paths after each tick', async () => {
  const cpu = await eventually(() => events.find((e) => e.channel === 'cpu' && e.data.memory > 2), 10000, 'cpu');
  assert.equal(typeof cpu.data.cpu, 'number');
  // Memory's length: {"stats":{"time":T,"nested":{"deep":"yes"}}}
  const want = (t) => JSON.stringify({ stats: { time: t, nested: { deep: 'yes' } } }).length;
  assert.ok([want(1), want(10), want(100), want(1000)].includes(cpu.data.memory), `memory ${cpu.data.memory}`);
  const code = events.find((e) => e.channel === 'code');
  assert.ok(code, 'user:<id>/code on upload');
  assert.equal(code.data.branch, 'default');
  assert.deepEqual(code.data.modules, { main: CODE, lib: LIB });
  assert.equal(typeof code.data.timestamp, 'number');
  // before the upload Memory was {}: the path went through undefined
  assert.equal(events.find((e) => e.channel === 'memory/stats.nested.deep').data, 'Incorrect memory path');
  await eventually(() => events.find((e) => e.channel === 'memory/stats.nested.deep' && e.data === 'yes'), 10000);
  const bad = events.filter((e) => e.channel === 'memory/stats.nope.deeper').at(-1);
  assert.equal(bad.data, 'Incorrect memory path');
});

test('a console command\'s result arrives in results', async () => {
  const from = events.length;
  assert.equal((await alice.console('Memory.stats.nested.deep + " and " + (6 * 7)')).ok, 1);
  const r = await eventually(() => events.slice(from).find((e) => e.channel === 'console' && e.data.messages &&
    e.data.messages.results.length), 10000, 'a result');
  assert.deepEqual(r.data.messages.results, ['yes and 42']);
  // a command that throws: its error is the result
  const from2 = events.length;
  await alice.console('nosuchthing.x');
  const r2 = await eventually(() => events.slice(from2).find((e) => e.channel === 'console' && e.data.messages &&
    e.data.messages.results.length), 10000, 'a failing result');
  assert.match(r2.data.messages.results[0], /ReferenceError: nosuchthing is not defined/);
});

test('the token given back by "auth ok" is a fresh one that works', async () => {
  const s = await openSocket(server.port);
  const fresh = await authSocket(s, alice.token);
  assert.notEqual(fresh, alice.token);
  const other = new ScreepsAPI(apiOptions(server, { token: fresh }));
  assert.equal((await other.me())._id, aliceId);
  s.send('auth not-a-token');
  await s.next((m) => m === 'auth failed');
  s.close();
});

test('another user\'s socket and an unauthenticated one receive nothing from user:<id>/*', async () => {
  const anon = await openSocket(server.port);
  const mallory = await openSocket(server.port);
  await authSocket(mallory, bob.token);
  for (const s of [anon, mallory]) {
    for (const c of ['console', 'cpu', 'code', 'memory/stats']) s.send(`subscribe user:${aliceId}/${c}`);
    s.send('subscribe room:W1N1'); // public: accepted
  }
  // bob's own console works on his socket (bob has no code: an upload starts it)
  mallory.send(`subscribe user:${bobId}/console`);
  await bob.code.set('default', { main: 'module.exports.loop = () => console.log("bob here");' });
  await mallory.next(onChannel(`user:${bobId}/console`, (p) => p.messages && p.messages.log[0] === 'bob here'));
  // alice keeps running and logging meanwhile, and uploads once more
  const n = events.length;
  await alice.code.set('default', { main: CODE, lib: LIB });
  await eventually(() => events.length > n + 10, 10000);
  for (const s of [anon, mallory]) {
    const leaked = s.messages.filter((m) => m.includes(`user:${aliceId}/`));
    assert.deepEqual(leaked, [], 'nothing of alice');
  }
  // the only events an unauthenticated socket gets are those of the public room channel
  assert.ok(anon.messages.every((m) => !m.startsWith('[') || m.startsWith('["room:W1N1",')),
    'anon got no event but the room\'s');
  anon.close();
  mallory.close();
});

test('console rules: the per-tick cap keeps first and last lines; repeats are collapsed', async () => {
  const from = events.length;
  await alice.code.set('default', { main: `module.exports.loop = function () {
    for (let i = 0; i < 300; i++) console.log('line', i);
    for (let i = 0; i < 5; i++) console.log('same again');
  };` });
  const m = await eventually(() => events.slice(from).find((e) => e.channel === 'console' && e.data.messages &&
    e.data.messages.log.length), 10000, 'a capped tick');
  const log = m.data.messages.log;
  assert.ok(log.length <= 101, `${log.length} lines`);
  assert.equal(log[0], 'line 0');
  assert.ok(log.some((l) => /^\[Omitted \d+ lines\]$/.test(l)), 'an omission marker');
  assert.ok(log.includes('[Previous message repeated 4 times]') || log.at(-1) === 'same again');
});

test('the fixed texts: CPU time limit and halt', async () => {
  let from = events.length;
  await alice.code.set('default', { main: 'module.exports.loop = function () { for (;;) {} };' });
  await eventually(() => events.slice(from).find((e) => e.channel === 'console' &&
    e.data.error === 'Script execution timed out: CPU time limit reached'), 20000, 'the CPU limit text');
  from = events.length;
  await alice.code.set('default', { main: 'module.exports.loop = function () { Game.cpu.halt(); };' });
  await eventually(() => events.slice(from).find((e) => e.channel === 'console' && e.data.error === 'CPU halted'),
    20000, 'the halt text');
});

test('unsubscribe stops the frames', async () => {
  await alice.code.set('default', { main: 'module.exports.loop = () => console.log("still");' });
  await alice.socket.unsubscribe('console');
  await sleep(300);
  const n = events.filter((e) => e.channel === 'console').length;
  await sleep(600);
  assert.equal(events.filter((e) => e.channel === 'console').length, n);
  assert.ok(events.filter((e) => e.channel === 'cpu').length > 3, 'cpu still flows');
});
