// The console texts players know, as they arrive over the websocket: the heap limit, and
// the empty bucket (a player that spends its whole bucket is skipped and told so).
// Against the real binary, with a small heap and a CPU limit of 1 ms for new players.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ScreepsAPI } from 'screeps-api';
import { startServer, tempDir, removeDir, apiOptions } from './lib/server.mjs';
import { openSocket, onChannel, authSocket } from './lib/ws.mjs';

let server, dir;

before(async () => {
  dir = tempDir();
  server = await startServer(dir, ['--heap-mb', '16', '--cpu-limit', '1']);
});

after(async () => {
  if (server) await server.stop();
  if (dir) removeDir(dir);
});

async function player(name) {
  const api = new ScreepsAPI(apiOptions(server));
  assert.deepEqual(await api.registerUser(name, `${name}@example.org`, `${name}-password`), { ok: 1 });
  await api.auth(name, `${name}-password`);
  const id = (await api.me())._id;
  const s = await openSocket(server.port);
  await authSocket(s, api.token);
  s.send(`subscribe user:${id}/console`);
  return { api, id, s };
}

test('memory allocation limit', async () => {
  const { api, id, s } = await player('hog');
  await api.code.set('default', { main: `module.exports.loop = function () {
    const keep = [];
    for (;;) keep.push(new Array(100000).fill(Game.time));
  };` });
  await s.next(onChannel(`user:${id}/console`,
    (p) => p.error === 'Script execution has been terminated: memory allocation limit reached'), 60000);
  s.close();
});

test('an empty bucket: the player is skipped, and told', async () => {
  // limit 1 ms: every tick burns its whole tickLimit (500 ms while the bucket lasts)
  const { api, id, s } = await player('spender');
  await api.code.set('default', { main: 'module.exports.loop = function () { for (;;) {} };' });
  await s.next(onChannel(`user:${id}/console`,
    (p) => p.error === 'Script execution timed out: CPU time limit reached'), 20000);
  const skipped = await s.next(onChannel(`user:${id}/console`,
    (p) => p.error === 'Script execution has been terminated: CPU bucket is empty'), 120000);
  assert.ok(skipped);
  s.close();
});
