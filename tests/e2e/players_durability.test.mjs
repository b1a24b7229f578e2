// What a player was told is saved survives a kill -9 the moment after: registration,
// code uploads, Memory, segments and queued console commands, each acknowledged over
// HTTP, then the server is SIGKILLed at once and started again on the same data. Also:
// tokens survive a restart (the signing key is in the store), session tokens expire,
// and registration can be closed by a flag or the config file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ScreepsAPI } from 'screeps-api';
import { startServer, tempDir, removeDir, apiOptions, eventually, sleep } from './lib/server.mjs';

const dir = tempDir();
let server;
const USER = { username: 'durable', email: 'durable@example.org', password: 'durable-pass-1' };

after(async () => {
  if (server) await server.stop();
  removeDir(dir);
});

// Kills the server with SIGKILL and starts it again on the same data directory.
async function crashAndRestart(args = []) {
  const { signal } = await server.kill9();
  assert.equal(signal, 'SIGKILL');
  server = await startServer(dir, args);
}

async function signedIn() {
  const api = new ScreepsAPI(apiOptions(server));
  await api.auth(USER.email, USER.password);
  return api;
}

test('a registration acknowledged just before a kill -9 is there after the restart', async () => {
  server = await startServer(dir);
  const api = new ScreepsAPI(apiOptions(server));
  assert.deepEqual(await api.registerUser(USER.username, USER.email, USER.password), { ok: 1 });
  await crashAndRestart();
  const again = await signedIn();
  assert.equal((await again.me()).username, 'durable');
});

test('an upload acknowledged just before a kill -9 is there after the restart, and runs', async () => {
  let api = await signedIn();
  const main = "module.exports.loop = function () { Memory.version = require('lib.version').v; };";
  const up = await api.code.set('default', { main, 'lib.version': 'module.exports.v = 7;' });
  assert.equal(up.ok, 1);
  const oldToken = api.token;
  await crashAndRestart();
  // A session token from before the crash is still valid: the signing key is persistent.
  const keep = new ScreepsAPI(apiOptions(server, { token: oldToken }));
  assert.equal((await keep.raw.user.name()).username, 'durable');
  api = await signedIn();
  assert.deepEqual((await api.code.get('default')).modules, { main, 'lib.version': 'module.exports.v = 7;' });
  await eventually(async () => (await api.memory.get('version')).data === 7, 10000, 'the code to run');
});

test('Memory and segment writes acknowledged before a kill -9 survive it', async () => {
  let api = await signedIn();
  assert.deepEqual(await api.memory.set('saved.by', 'http'), { ok: 1 });
  assert.deepEqual(await api.segment.set(12, 'segment twelve'), { ok: 1 });
  await crashAndRestart();
  api = await signedIn();
  assert.equal((await api.memory.get('saved.by')).data, 'http');
  assert.equal((await api.segment.get(12)).data, 'segment twelve');
});

test('a console command acknowledged before a kill -9 still runs', async () => {
  let api = await signedIn();
  assert.deepEqual(await api.console("Memory.consoleAfterCrash = 'done'"), { ok: 1 });
  await crashAndRestart();
  api = await signedIn();
  await eventually(async () => (await api.memory.get('consoleAfterCrash')).data === 'done', 10000,
    'the queued command');
});

test('a clean stop (SIGTERM) exits 0 and keeps everything', async () => {
  const { code } = await server.stop();
  assert.equal(code, 0);
  server = await startServer(dir);
  const api = await signedIn();
  assert.equal((await api.memory.get('saved.by')).data, 'http');
});

test('registration closed by flag and by config file; existing users still sign in', async () => {
  await server.stop();
  server = await startServer(dir, ['--registration', 'closed']);
  let api = new ScreepsAPI(apiOptions(server));
  assert.equal((await api.raw.authmod()).allowRegistration, false);
  assert.match((await api.registerUser('newcomer', 'new@example.org', 'newcomer-pass')).error, /closed/);
  await signedIn();
  await server.stop();

  const conf = path.join(dir, 'isoworld.conf');
  writeFileSync(conf, '# test configuration\nregistration = closed\n');
  server = await startServer(dir, ['--config', conf]);
  api = new ScreepsAPI(apiOptions(server));
  assert.equal((await api.raw.authmod()).allowRegistration, false);
  await server.stop();
  server = await startServer(dir, ['--config', conf, '--registration', 'open']); // the flag wins
  api = new ScreepsAPI(apiOptions(server));
  assert.equal((await api.raw.authmod()).allowRegistration, true);
});

test('session tokens expire; clients with a password sign in again by themselves', async () => {
  await server.stop();
  server = await startServer(dir, ['--token-ttl', '5']);
  const api = await signedIn();
  const token = api.token;
  const holder = new ScreepsAPI(apiOptions(server, { token }));
  assert.equal((await holder.raw.user.name()).username, 'durable');
  await sleep(5300);
  const stale = new ScreepsAPI(apiOptions(server, { token }));
  await assert.rejects(stale.raw.user.name(), /Not Authorized/);
  // screeps-api re-signs-in on a 401 when it knows the password.
  const before = api.token;
  assert.equal((await api.raw.user.name()).username, 'durable');
  assert.notEqual(api.token, before);
});
