// The websocket protocol at the byte level, against the real binary: the greeting, gzip
// (zlib deflate, "gz:" + base64, only when shorter), pings, the 50-path limit on Memory
// channels, and the SockJS-framed endpoint driven by the real sockjs-client, as browser
// clients built on SockJS (the Screeps game client) use it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { ScreepsAPI } from 'screeps-api';
import { startServer, tempDir, removeDir, apiOptions, eventually, sleep } from './lib/server.mjs';
import { openSocket, onChannel, authSocket } from './lib/ws.mjs';

const require = createRequire(import.meta.url);
const SockJS = require('sockjs-client');

let server, dir, api, id;

before(async () => {
  dir = tempDir();
  server = await startServer(dir);
  api = new ScreepsAPI(apiOptions(server));
  assert.deepEqual(await api.registerUser('gzip', 'gzip@example.org', 'gz-password-1'), { ok: 1 });
  await api.auth('gzip', 'gz-password-1');
  id = (await api.me())._id;
  await api.code.set('default', { main: `module.exports.loop = function () {
    for (let i = 0; i < 20; i++) console.log('a rather repetitive line of console output, number ' + i);
    Memory.p = {}; for (let i = 0; i < 60; i++) Memory.p['k' + i] = i;
  };` });
});

after(async () => {
  if (server) await server.stop();
  if (dir) removeDir(dir);
});

test('greeting: time and protocol', async () => {
  const s = await openSocket(server.port);
  await s.next((m) => m === 'protocol 14');
  const t = Number(/^time (\d+)$/.exec(s.messages[0])[1]);
  assert.ok(Math.abs(t - Date.now()) < 60000);
  assert.equal(s.messages[1], 'protocol 14');
  // pings are answered
  const pong = new Promise((resolve) => s.ws.once('pong', (d) => resolve(d.toString())));
  s.ws.ping('x1');
  assert.equal(await pong, 'x1');
  s.close();
});

test('gzip on: long frames come deflated (zlib) and base64, short ones as they are', async () => {
  const s = await openSocket(server.port);
  await authSocket(s, api.token);
  s.send('gzip on');
  s.send(`subscribe user:${id}/console`);
  s.send(`subscribe user:${id}/cpu`);
  await s.next(onChannel(`user:${id}/console`, (p) => p.messages && p.messages.log.length === 20));
  const gz = s.raw.filter((m) => m.startsWith('gz:'));
  assert.ok(gz.length > 0, 'some frames compressed');
  for (const m of gz) {
    const text = zlib.inflateSync(Buffer.from(m.slice(3), 'base64')).toString(); // RFC 1950, not gzip
    assert.ok(m.length < text.length, 'sent compressed only when shorter');
    assert.equal(JSON.parse(text)[0], `user:${id}/console`);
  }
  const cpu = s.raw.filter((m) => m.startsWith(`["user:${id}/cpu"`));
  assert.ok(cpu.length > 0, 'small cpu frames stay plain');
  s.send('gzip off');
  s.send(`unsubscribe user:${id}/cpu`);
  await sleep(200);
  const from = s.raw.length;
  await s.next(onChannel(`user:${id}/console`), 10000, s.messages.length);
  assert.ok(s.raw.slice(from).every((m) => !m.startsWith('gz:')));
  s.close();
});

test('Memory paths: at most 50 watched per user', async () => {
  const a = await openSocket(server.port);
  const b = await openSocket(server.port);
  await authSocket(a, api.token);
  await authSocket(b, api.token);
  for (let i = 0; i < 30; i++) a.send(`subscribe user:${id}/memory/p.k${i}`);
  for (let i = 20; i < 60; i++) b.send(`subscribe user:${id}/memory/p.k${i}`); // 20..29 shared, 30..49 new, 50.. over
  await sleep(1000);
  const seen = new Set([...a.messages, ...b.messages].filter((m) => m.startsWith('['))
    .map((m) => JSON.parse(m)[0]).filter((c) => c.includes('/memory/')));
  assert.equal(seen.size, 50);
  assert.ok(seen.has(`user:${id}/memory/p.k49`));
  assert.ok(!seen.has(`user:${id}/memory/p.k50`));
  const v = JSON.parse(a.messages.find((m) => m.startsWith(`["user:${id}/memory/p.k7"`)))[1];
  assert.equal(v, '7'); // values come as strings, as from the vanilla server
  // once a path is given up, another one may be watched
  a.send(`unsubscribe user:${id}/memory/p.k0`);
  await sleep(100);
  b.send(`subscribe user:${id}/memory/p.k55`);
  await b.next(onChannel(`user:${id}/memory/p.k55`, (p) => p === '55'));
  a.close();
  b.close();
});

test('SockJS: the real sockjs-client connects, signs in and gets its console', async () => {
  const info = await (await fetch(`${server.url}/socket/info?t=${Date.now()}`)).json();
  assert.equal(info.websocket, true);
  const sock = new SockJS(`${server.url}/socket`, null, { transports: ['websocket'] });
  const got = [];
  let waiter = null;
  sock.onmessage = (e) => { got.push(e.data); if (waiter) waiter(); };
  await new Promise((resolve, reject) => { sock.onopen = resolve; sock.onclose = reject; });
  assert.equal(sock.transport, 'websocket');
  const until = async (pred, what) => eventually(() => got.find(pred), 10000, what);
  await until((m) => m === 'protocol 14', 'the greeting');
  sock.send(`auth ${api.token}`);
  const ok = await until((m) => m.startsWith('auth ok '), 'auth');
  assert.ok(ok.length > 10);
  sock.send(`subscribe user:${id}/console`);
  const frame = await until((m) => m.startsWith(`["user:${id}/console"`), 'a console frame');
  assert.equal(JSON.parse(frame)[1].messages.log.length, 20);
  sock.close();
});
