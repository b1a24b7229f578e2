#!/usr/bin/env node
'use strict';
/*
 * bench_ipc_ivm.js — the Node + isolated-vm side of isoworld-bench-ipc: the same four IPC
 * round trips, measured the same way, printed as one JSON object.
 *
 *   node --no-node-snapshot tools/bench_ipc_ivm.js --n 20000 --runs 5 [--ivm PATH]
 *
 * PATH is where isolated-vm is installed: the package directory, or a directory whose
 * node_modules holds it (default: $ISOWORLD_IVM_PATH, then a plain require). Nothing is
 * installed here; see the shared bench README for `npm install` into a temporary
 * directory. The scenarios (each value copied across, as the sandbox copies):
 *   call_sync    host -> isolate: call a function the isolate exports, sync result
 *                (reference.applySync with a timeout, copied arguments and result)
 *   call_async   host -> isolate: call an async function and await its promise
 *                (reference.apply with result.promise, on isolated-vm's thread pool)
 *   host_async   isolate -> host: `await echo(i)` in a loop, echo an async Callback
 *   host_sync    isolate -> host: `add(i, 1)` in a loop, add a sync Callback
 * Figures: microseconds per round trip, the median of `runs` batches of n after a
 * warm-up batch.
 */
const path = require('path');

if (!process.execArgv.includes('--no-node-snapshot')) {
  const { spawnSync } = require('child_process');
  const r = spawnSync(process.execPath, ['--no-node-snapshot', __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status === null ? 1 : r.status);
}

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: node tools/bench_ipc_ivm.js [--n N] [--runs R] [--ivm PATH]');
  process.exit(0);
}
const N = +opt('n', 20000);
const RUNS = +opt('runs', 5);
const where = opt('ivm', process.env.ISOWORLD_IVM_PATH || '');

function loadIvm() {
  const tries = [];
  if (where) tries.push(where, path.join(where, 'node_modules', 'isolated-vm'));
  tries.push('isolated-vm');
  for (const t of tries) {
    try { return require(t); } catch (e) { /* next */ }
  }
  console.error('bench_ipc_ivm: isolated-vm not found (give --ivm PATH or ISOWORLD_IVM_PATH)');
  process.exit(3);
}
const ivm = loadIvm();
let ivmVersion = '?';
try { ivmVersion = require(path.join(path.dirname(require.resolve(where ? (where.endsWith('isolated-vm') ? where : path.join(where, 'node_modules', 'isolated-vm')) : 'isolated-vm')), 'package.json')).version; } catch (e) { /* unknown */ }

function median(xs) {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function batches(fn) {
  await fn(Math.max(100, N >> 2)); // warm-up
  const us = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    await fn(N);
    us.push(Number(process.hrtime.bigint() - t0) / 1e3 / N);
  }
  return median(us);
}

async function main() {
  const isolate = new ivm.Isolate({ memoryLimit: 64 });
  const context = await isolate.createContext();
  const jail = context.global;
  await jail.set('echo', new ivm.Callback((x) => x, { async: true }));
  await jail.set('add', new ivm.Callback((a, b) => a + b));
  await context.eval(`
    globalThis.inc = (x) => x + 1;
    globalThis.incAsync = async (x) => { await null; return x + 1; };
    globalThis.loopAsync = async (n) => { let s = 0; for (let i = 0; i < n; i++) s += await echo(i); return s; };
    globalThis.loopSync = (n) => { let s = 0; for (let i = 0; i < n; i++) s += add(i, 1); return s; };
  `);
  const inc = await jail.get('inc', { reference: true });
  const incAsync = await jail.get('incAsync', { reference: true });
  const loopAsync = await jail.get('loopAsync', { reference: true });
  const loopSync = await jail.get('loopSync', { reference: true });
  const copy = { arguments: { copy: true }, result: { copy: true }, timeout: 1000 };
  const out = { node: process.version, isolated_vm: ivmVersion, n: N, runs: RUNS };
  out.call_sync_us = await batches(async (n) => {
    for (let i = 0; i < n; i++) if (inc.applySync(undefined, [i], copy) !== i + 1) throw new Error('wrong');
  });
  out.call_async_us = await batches(async (n) => {
    for (let i = 0; i < n; i++)
      if ((await incAsync.apply(undefined, [i], { arguments: { copy: true }, result: { copy: true, promise: true }, timeout: 1000 })) !== i + 1)
        throw new Error('wrong');
  });
  out.host_async_us = await batches(async (n) => {
    await loopAsync.apply(undefined, [n], { result: { copy: true, promise: true } });
  });
  out.host_sync_us = await batches(async (n) => {
    loopSync.applySync(undefined, [n], { result: { copy: true } });
  });
  isolate.dispose();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
