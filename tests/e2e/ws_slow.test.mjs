// Many websocket clients and one that stops reading, against the real binary: every
// healthy client gets every tick's console frame, the stalled client does not slow the
// others or the tick, and the server closes it. The same run as tools/bench_ws.mjs (which
// README's figures come from, with 1000 clients), smaller so that it fits in CI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bin } from './lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const bench = path.resolve(here, '../../tools/bench_ws.mjs');

test('200 clients get every tick while one client stalls; the stalled one is closed', async () => {
  const args = [bench, '--bin', bin, '--clients', '200', '--users', '4', '--ticks', '120', '--tick-ms', '100',
    '--workers', '2', '--watchers', '5', '--stall-s', '3', '--json'];
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 16 << 20, timeout: 240000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
  const r = JSON.parse(out.trim().split('\n').at(-1));
  console.log(JSON.stringify(r, null, 1));
  assert.equal(r.clients, 205);
  assert.equal(r.frames_missing, 0, 'every healthy client got every tick');
  assert.equal(r.frames_duplicated, 0);
  assert.equal(r.clients_closed, 0);
  // the tick kept its pace, and the server's tick work stayed small
  assert.ok(r.measured_tick_ms < 120, `ticks took ${r.measured_tick_ms} ms`);
  assert.ok(r.server_tick_ms.max < 100, `a tick took ${r.server_tick_ms.max} ms`);
  // delivery stayed quick for everyone (generous bounds: CI machines are busy)
  assert.ok(r.latency_ms.p99 < 500, `p99 latency ${r.latency_ms.p99} ms`);
  // the stalled client was dropped by the server
  assert.equal(r.stalled.closed_by_server, true, 'the stalled client was closed');
});
