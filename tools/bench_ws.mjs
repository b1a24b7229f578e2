#!/usr/bin/env node
// bench_ws.mjs — websocket fan-out under load, against the real server on loopback.
//
// Starts isoworld on a fresh data directory, registers players whose code logs
// "t <Game.time> <Date.now()>" every tick, and opens many websocket clients (spread over a
// few worker processes) that sign in and subscribe to their player's console. One more
// player is "noisy" (tens of KB of console per tick): a few healthy clients watch it, and
// one stalled client subscribes to it (and to a Memory path of hundreds of KB) and then
// stops reading. Over a window of ticks it
// measures, for every client and tick, the delay from the player's console.log (Date.now()
// inside the isolate, before the tick is committed) to the client's receipt, and checks
// that every client got every tick. It also reports the spread between the first and the
// last client to receive a tick, the tick durations the server logged, and what became of
// the stalled client (dropped frames, then closed).
//
// Usage: node tools/bench_ws.mjs [--clients 1000] [--users 10] [--ticks 100] [--tick-ms 100]
//          [--workers 4] [--noisy-kb 32] [--watchers 10] [--no-stall] [--bin build/bin/isoworld]
//          [--json] [--help]
// Needs the npm packages of tests/e2e (ws): tools/bootstrap.sh --e2e installs them.
import { spawn, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(path.join(root, 'tests/e2e/package.json'));
const WebSocket = require('ws');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resident memory of a process in MB (Linux).
function rssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? +(Number(m[1]) / 1024).toFixed(1) : null;
  } catch { return null; }
}

function parseArgs(argv) {
  const o = {
    clients: 1000, users: 10, ticks: 100, tickMs: 100, workers: 4, noisyKb: 32, watchers: 10, stall: true,
    bin: process.env.ISOWORLD_BIN_DIR ? path.join(process.env.ISOWORLD_BIN_DIR, 'isoworld') : path.join(root, 'build/bin/isoworld'),
    json: false, stallS: 5, stallKb: 512,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--clients') o.clients = Number(v());
    else if (a === '--users') o.users = Number(v());
    else if (a === '--ticks') o.ticks = Number(v());
    else if (a === '--tick-ms') o.tickMs = Number(v());
    else if (a === '--workers') o.workers = Number(v());
    else if (a === '--noisy-kb') o.noisyKb = Number(v());
    else if (a === '--watchers') o.watchers = Number(v());
    else if (a === '--stall-s') o.stallS = Number(v());
    else if (a === '--stall-kb') o.stallKb = Number(v());
    else if (a === '--no-stall') o.stall = false;
    else if (a === '--bin') o.bin = v();
    else if (a === '--json') o.json = true;
    else if (a === '--help' || a === '-h') {
      console.log(`Usage: node tools/bench_ws.mjs [options]
Websocket fan-out benchmark against the real server on loopback: N clients subscribed
to their players' consoles, one stalled client; delivery latency and completeness.
  --clients N     websocket clients subscribed to a console (default 1000)
  --users N       players they are spread over (default 10)
  --ticks N       ticks measured (default 100)
  --tick-ms MS    the server's tick (default 100)
  --workers N     client processes (default 4)
  --noisy-kb KB   console output per tick of the noisy player (default 32)
  --watchers N    healthy clients of the noisy player (default 10)
  --stall-s S     the server's --ws-stall-s (default 5)
  --stall-kb KB   the stalled client also watches a Memory path this big (default 512)
  --no-stall      no stalled client
  --bin PATH      the isoworld binary (default build/bin/isoworld)
  --json          print the results as JSON`);
      process.exit(0);
    } else throw new Error(`unknown option ${a} (see --help)`);
  }
  return o;
}

// ------------------------------------------------------------------ a worker process

async function worker() {
  let clients = [];
  process.on('message', async (msg) => {
    if (msg.type === 'open') {
      // open in batches so the accept queue is not flooded
      const out = msg.clients;
      const errors = [];
      for (let i = 0; i < out.length; i += 50) {
        await Promise.all(out.slice(i, i + 50).map((c) => openClient(msg.port, c).catch((e) => errors.push(String(e)))));
      }
      process.send({ type: 'ready', n: clients.length, errors: errors.slice(0, 5), failed: errors.length });
    } else if (msg.type === 'report') {
      // exit only once the (large) report has gone down the IPC channel
      process.send({
        type: 'report',
        clients: clients.map((c) => ({ uid: c.uid, ticks: c.ticks, lat: c.lat, recv: c.recv, closed: c.closed })),
      }, () => {
        for (const c of clients) c.ws.terminate();
        process.exit(0);
      });
    }
  });
  function openClient(port, spec) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/socket/websocket`, { perMessageDeflate: false });
      const c = { uid: spec.uid, ws, ticks: [], lat: [], recv: [], closed: false };
      const channel = `["user:${spec.uid}/console",`;
      ws.on('open', () => ws.send(`auth ${spec.token}`));
      ws.on('message', (data) => {
        const now = Date.now();
        const text = data.toString();
        if (text.startsWith('auth ok')) {
          ws.send(`subscribe user:${spec.uid}/console`);
          clients.push(c);
          resolve();
          return;
        }
        if (!text.startsWith(channel)) return;
        // {"messages":{"log":["t <time> <ms>", ...]}} — the first line carries the stamps
        const m = /"log":\["t (\d+) (\d+)/.exec(text);
        if (!m) return;
        c.ticks.push(Number(m[1]));
        c.lat.push(now - Number(m[2]));
        c.recv.push(now);
      });
      ws.on('close', () => { c.closed = true; reject(new Error('closed before auth')); });
      ws.on('error', (e) => { c.error = String(e); reject(e); });
      setTimeout(() => reject(new Error('no auth answer in 30 s')), 30000);
    });
  }
}

// ------------------------------------------------------------------ the run

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function dist(values) {
  const s = Float64Array.from(values).sort();
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, mean: +mean.toFixed(2), p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), p999: pct(s, 99.9), max: s.length ? s[s.length - 1] : NaN };
}

async function post(url, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers['X-Token'] = token;
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  const data = await res.json();
  if (data.error) throw new Error(`${url}: ${data.error}`);
  return data;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(path.join(tmpdir(), 'isoworld-bench-ws-'));
  const argv = ['--data-dir', dir, '--bind', '127.0.0.1', '--port', '0', '--tick-ms', String(o.tickMs), '--no-demo',
    '--quiet', '--nosync', '--stats-every', '10', '--ws-stall-s', String(o.stallS), '--ws-queue-kb', '256'];
  const server = spawn(o.bin, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  server.stderr.setEncoding('utf8');
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no start in 20 s:\n${err}`)), 20000);
    server.stderr.on('data', (d) => {
      err += d;
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    server.on('exit', (code) => reject(new Error(`isoworld exited with ${code}:\n${err}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const log = (...a) => { if (!o.json) console.error(...a); };
  let workers = [];
  try {
    // players: U normal ones and a noisy one
    const users = [];
    for (let i = 0; i <= o.users; i++) {
      const name = i === o.users ? 'noisy' : `bench${i}`;
      await post(`${url}/api/register/submit`, { username: name, email: `${name}@example.org`, password: 'bench-password' });
      const { token } = await post(`${url}/api/auth/signin`, { email: name, password: 'bench-password' });
      const me = await (await fetch(`${url}/api/auth/me`, { headers: { 'X-Token': token } })).json();
      users.push({ name, token, uid: me._id });
    }
    const line = 'x'.repeat(500);
    const noisyLines = Math.max(1, Math.round((o.noisyKb * 1024) / 520));
    for (const u of users) {
      const noisy = u.name === 'noisy';
      const main = `module.exports.loop = function () {
        console.log('t ' + Game.time + ' ' + Date.now());
        ${noisy ? `for (let i = 0; i < ${noisyLines}; i++) console.log(i + ' ${line}');
        if (!global.big) { Memory.big = 'y'.repeat(${o.stallKb * 1024}); global.big = true; }` : ''}
      };`;
      await post(`${url}/api/user/code`, { branch: 'default', modules: { main } }, u.token);
    }
    log(`server on ${url}; ${o.users} players + 1 noisy (${noisyLines} lines of ~520 bytes per tick)`);

    // clients, spread over workers
    const rssBefore = rssMb(server.pid);
    const specs = [];
    for (let i = 0; i < o.clients; i++) specs.push({ uid: users[i % o.users].uid, token: users[i % o.users].token });
    const noisy = users[o.users];
    for (let i = 0; i < o.watchers; i++) specs.push({ uid: noisy.uid, token: noisy.token });
    workers = Array.from({ length: o.workers }, () => fork(fileURLToPath(import.meta.url), ['--worker'], { stdio: 'inherit' }));
    const t0 = Date.now();
    const ready = await Promise.all(workers.map((w, k) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('a client process did not get its clients connected in 120 s')), 120000);
      w.once('exit', (code) => reject(new Error(`a client process exited with ${code}`)));
      w.once('message', (m) => { clearTimeout(t); resolve(m); });
      w.send({ type: 'open', port, clients: specs.filter((_, i) => i % o.workers === k) });
    })));
    const failed = ready.reduce((a, r) => a + r.failed, 0);
    if (failed) throw new Error(`${failed} clients could not connect: ${ready.flatMap((r) => r.errors).join('; ')}`);
    log(`${specs.length} clients connected and subscribed in ${Date.now() - t0} ms`);
    const rssConnected = rssMb(server.pid);

    // the stalled client: subscribes to the noisy console, then stops reading
    let stalled = null;
    if (o.stall) {
      stalled = await new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/socket/websocket`, { perMessageDeflate: false });
        const st = { ws, received: 0, dropped: 0, closed: false, closedAt: 0 };
        ws.on('open', () => ws.send(`auth ${noisy.token}`));
        ws.on('message', (d) => {
          const text = d.toString();
          st.received++;
          if (text.startsWith('auth ok')) {
            ws.send(`subscribe user:${noisy.uid}/console`);
            ws.send(`subscribe user:${noisy.uid}/memory/big`); // a big frame every tick
            setTimeout(() => { ws._socket.pause(); resolve(st); }, 300);
          }
          const m = /^dropped (\d+)$/.exec(text);
          if (m) st.dropped += Number(m[1]);
        });
        ws.on('close', () => { st.closed = true; st.closedAt = Date.now(); });
        ws.on('error', reject);
      });
      stalled.stalledAt = Date.now();
      log('one client subscribed to the noisy console and stopped reading');
    }

    await sleep(1000);
    const time = async () => (await (await fetch(`${url}/api/game/time`, { signal: AbortSignal.timeout(10000) })).json()).time;
    const g0 = await time();
    const w0 = Date.now();
    const errMark = err.length;
    for (let now = g0; now < g0 + o.ticks; now = await time()) {
      if (Date.now() - w0 > o.ticks * o.tickMs * 3 + 10000) throw new Error(`the server is stuck at tick ${now}`);
      await sleep(20);
    }
    const g1 = g0 + o.ticks;
    const elapsed = Date.now() - w0;
    const rssEnd = rssMb(server.pid);
    await sleep(1500); // let the last ticks arrive
    const reports = await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('a client process sent no report in 60 s')), 60000);
      w.on('message', (m) => { if (m.type === 'report') { clearTimeout(t); resolve(m.clients); } });
      w.once('exit', (code) => reject(new Error(`a client process exited with ${code} before its report`)));
      w.send({ type: 'report' });
    })));
    const clients = reports.flat();

    // completeness and latency over the window (g0, g1]
    let missing = 0, dup = 0;
    const lat = [];
    const firstRecv = new Map(), lastRecv = new Map();
    for (const c of clients) {
      const seen = new Set();
      c.ticks.forEach((t, i) => {
        if (t <= g0 || t > g1) return;
        if (seen.has(t)) dup++;
        seen.add(t);
        lat.push(c.lat[i]);
        const r = c.recv[i];
        if (!firstRecv.has(t) || r < firstRecv.get(t)) firstRecv.set(t, r);
        if (!lastRecv.has(t) || r > lastRecv.get(t)) lastRecv.set(t, r);
      });
      missing += o.ticks - seen.size;
    }
    const spread = [...firstRecv.keys()].map((t) => lastRecv.get(t) - firstRecv.get(t));
    // tick durations the server logged during the window ("...; last 10: mean M ms, max X ms")
    const tickMax = [...err.slice(errMark).matchAll(/last \d+: mean ([\d.]+) ms, max ([\d.]+) ms/g)]
      .map((m) => ({ mean: Number(m[1]), max: Number(m[2]) }));
    if (stalled) {
      stalled.ws._socket.resume();
      await sleep(500);
    }
    const result = {
      clients: clients.length,
      players: o.users,
      ticks: o.ticks,
      tick_ms: o.tickMs,
      measured_tick_ms: +(elapsed / o.ticks).toFixed(2),
      frames_expected: clients.length * o.ticks,
      frames_missing: missing,
      frames_duplicated: dup,
      clients_closed: clients.filter((c) => c.closed).length,
      latency_ms: dist(lat),
      spread_ms: dist(spread),
      server_rss_mb: { before_clients: rssBefore, clients_connected: rssConnected, end: rssEnd },
      server_tick_ms: {
        mean: tickMax.length ? +(tickMax.reduce((a, b) => a + b.mean, 0) / tickMax.length).toFixed(2) : null,
        max: tickMax.length ? Math.max(...tickMax.map((x) => x.max)) : null,
      },
      stalled: stalled ? {
        closed_by_server: stalled.closed || /closed: it stopped reading/.test(err),
        closed_after_s: stalled.closed ? +((stalled.closedAt - stalled.stalledAt) / 1000).toFixed(1) : null,
        dropped_notices: stalled.dropped,
        server_log: (/websocket from [^\n]* closed: [^\n]*/.exec(err) || [''])[0],
      } : null,
    };
    if (o.json) {
      console.log(JSON.stringify(result));
    } else {
      const L = result.latency_ms, S = result.spread_ms;
      console.log(`clients ${result.clients} over ${o.users} players (+${o.watchers} on the noisy one), ${o.ticks} ticks of ${o.tickMs} ms (measured ${result.measured_tick_ms} ms)`);
      console.log(`frames: ${result.frames_expected - missing}/${result.frames_expected} delivered, ${missing} missing, ${dup} duplicated; ${result.clients_closed} healthy clients closed`);
      console.log(`latency console.log -> client (ms): mean ${L.mean}  p50 ${L.p50}  p90 ${L.p90}  p99 ${L.p99}  p99.9 ${L.p999}  max ${L.max}`);
      console.log(`spread first -> last client per tick (ms): mean ${S.mean}  p50 ${S.p50}  p90 ${S.p90}  p99 ${S.p99}  max ${S.max}`);
      console.log(`server tick duration (ms): mean ${result.server_tick_ms.mean}  max ${result.server_tick_ms.max}`);
      console.log(`server RSS (MB): ${rssBefore} before the clients, ${rssConnected} with them, ${rssEnd} at the end`);
      if (result.stalled) console.log(`stalled client: ${result.stalled.closed_by_server ? `closed by the server after ${result.stalled.closed_after_s ?? '?'} s` : 'still open'}; ${result.stalled.server_log}`);
    }
    return result;
  } finally {
    for (const w of workers) if (w.exitCode === null) w.kill();
    server.kill('SIGTERM');
    await new Promise((r) => (server.exitCode !== null ? r() : server.on('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--worker')) {
  worker();
} else {
  main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}
