// bench_world.mjs — the world's tick with N players running the starter bot.
//
//   node tools/bench_world.mjs [--players 100] [--seconds 60] [--bin build/bin/isoworld]
//
// Starts the real server on a temporary data directory (no demo players, a world with a
// room for each player, ticks as fast as they go), registers N users over HTTP, uploads
// the four files of server/demo/ for each, lets it run, and prints the tick times the
// server reports (its tick summary every 100 ticks: tick, players, commit), once the bots
// have had a few hundred ticks to grow. Needs Node 18+ (fetch).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const opt = { players: 100, seconds: 60, bin: path.join(root, 'build/bin/isoworld') };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, ''), v = process.argv[i + 1];
  if (k === 'help' || k === 'h' || !(k in opt) || v === undefined) {
    console.log('usage: node tools/bench_world.mjs [--players N] [--seconds S] [--bin PATH]');
    process.exit(k === 'help' || k === 'h' ? 0 : 2);
  }
  opt[k] = k === 'bin' ? v : Number(v);
}
const side = Math.ceil(Math.sqrt(opt.players));
const dir = mkdtempSync(path.join(tmpdir(), 'isoworld-bench-world-'));
const proc = spawn(opt.bin, ['--data-dir', dir, '--bind', '127.0.0.1', '--port', '0', '--no-admin', '--no-demo',
  '--quiet', '--tick-ms', '0', '--world-size', String(side), '--stats-every', '100'], { stdio: ['ignore', 'ignore', 'pipe'] });
let err = '';
proc.stderr.setEncoding('utf8');
const port = await new Promise((resolve, reject) => {
  proc.stderr.on('data', (d) => {
    err += d;
    const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
    if (m) resolve(Number(m[1]));
  });
  proc.on('exit', (c) => reject(new Error(`isoworld exited with ${c}:\n${err}`)));
});
const url = `http://127.0.0.1:${port}`;
async function post(p, body, token) {
  const r = await fetch(url + p, { method: 'POST', body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(token ? { 'x-token': token, 'x-username': 'bench' } : {}) } });
  return r.json();
}
const modules = {};
for (const m of ['main', 'role.harvester', 'role.upgrader', 'role.builder'])
  modules[m] = readFileSync(path.join(root, 'server/demo', m + '.js'), 'utf8');
const t0 = Date.now();
await Promise.all(Array.from({ length: opt.players }, async (_, i) => {
  const u = 'bot' + i;
  await post('/api/register/submit', { username: u, password: 'password' + i, email: `${u}@bench.invalid` });
  const s = await post('/api/auth/signin', { email: u, password: 'password' + i });
  const r = await post('/api/user/code', { branch: 'default', modules }, s.token);
  if (!r.ok) throw new Error(`${u}: ${JSON.stringify(r)}`);
}));
const startTime = (await (await fetch(url + '/api/game/time')).json()).time;
console.log(`${opt.players} players registered with the starter bot in ${((Date.now() - t0) / 1000).toFixed(1)} s ` +
  `(world ${side}x${side}); running ${opt.seconds} s from tick ${startTime}`);
await new Promise((r) => setTimeout(r, opt.seconds * 1000));
proc.kill('SIGTERM');
await new Promise((r) => proc.on('exit', r));
rmSync(dir, { recursive: true, force: true });
// "tick N: P players ran (...); tick T ms (players A, commit C); last 100: mean M ms, max X ms; ..."
const rows = [...err.matchAll(/tick (\d+): (\d+) players ran.*?tick ([\d.]+) ms \(players ([\d.]+), commit ([\d.]+)\); last 100: mean ([\d.]+) ms, max ([\d.]+) ms/g)]
  .map((m) => m.slice(1).map(Number)).filter((r) => r[0] > startTime + 300 && r[1] === opt.players);
if (!rows.length) {
  console.log('not enough ticks with every player running; run longer (--seconds)');
  process.exit(1);
}
console.log('mean tick ms per 100 ticks: ' + rows.map((r) => r[5].toFixed(1)).join(' '));
const means = rows.map((r) => r[5]).sort((a, b) => a - b);
const med = means[Math.floor(means.length / 2)];
const last = rows[rows.length - 1];
console.log(`ticks ${rows[0][0] - 99}..${last[0]}: mean tick per 100 ticks median ${med.toFixed(2)} ms ` +
  `(range ${means[0].toFixed(2)}-${means[means.length - 1].toFixed(2)}), worst tick ${Math.max(...rows.map((r) => r[6])).toFixed(2)} ms; ` +
  `last sample: players ${last[3]} ms, commit ${last[4]} ms; ${(1000 / med).toFixed(0)} ticks/s`);
