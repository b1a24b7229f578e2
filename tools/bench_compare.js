#!/usr/bin/env node
'use strict';
/*
 * bench_compare.js — isoworld against the Node + isolated-vm baseline, side by side, in
 * one run on one machine, and the ratio. Prints a markdown table (the README's).
 *
 *   node tools/bench_compare.js            # N = 10,100,500,1000; 3 runs each; ~15 min
 *   node tools/bench_compare.js --quick    # N = 10,100; 1 run; ~3 min
 *   node tools/bench_compare.js --n 1000 --runs 5
 *   node tools/bench_compare.js --bench build-perf/bin/isoworld-bench --baseline /path/to/bench
 *
 * The baseline (../shared/bench/ivm-tick-bench.js) is copied to build/bench-baseline
 * and its npm packages installed there the first time (isolated-vm builds from source,
 * ~70 s). isoworld's side is build/bin/isoworld-bench (build it first: make).
 *
 * Scenarios (the same loop bodies, 1 KB Memory, N players):
 *   empty  isoworld: `noop` (an empty loop; Memory carried but, as on Screeps, parsed
 *          only when touched — so never) and `empty` (the loop touches Memory: parsed and
 *          serialised every tick, which the baseline's prelude always does);
 *   log    Memory.ticks++ and one console line;   work  ~1 ms of computation.
 * The baseline runs "seq" (one call after another) and "async" (isolated-vm's thread
 * pool, all cores); isoworld runs on its worker pool (all cores). Ratios are against the
 * faster of the two baseline modes.
 */
const { spawnSync, execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const opt = { n: [10, 100, 500, 1000], runs: 3, quick: false };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--quick') Object.assign(opt, { n: [10, 100], runs: 1, quick: true });
  else if (a === '--n') opt.n = args[++i].split(',').map(Number);
  else if (a === '--runs') opt.runs = Number(args[++i]);
  else if (a === '--baseline') opt.baseline = path.resolve(args[++i]);
  else if (a === '--bench') opt.bench = path.resolve(args[++i]);
  else if (a === '-h' || a === '--help') {
    console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(2, 24).join('\n'));
    process.exit(0);
  } else {
    console.error(`bench_compare: unknown argument ${a} (see --help)`);
    process.exit(2);
  }
}

const bench = opt.bench || path.join(root, 'build', 'bin', 'isoworld-bench');
if (!fs.existsSync(bench)) {
  console.error(`bench_compare: ${bench} is missing: run make first`);
  process.exit(1);
}

function baselineDir() {
  if (opt.baseline) return opt.baseline;
  const src = path.resolve(root, '..', 'shared', 'bench');
  const dst = path.join(root, 'build', 'bench-baseline');
  fs.mkdirSync(dst, { recursive: true });
  for (const f of ['ivm-tick-bench.js', 'package.json']) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  if (!fs.existsSync(path.join(dst, 'node_modules', 'isolated-vm'))) {
    console.error('bench_compare: installing the baseline\'s npm packages (isolated-vm builds from source)...');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dst, stdio: 'inherit' });
  }
  return dst;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const f = (x, d = 2) => (x === undefined || x === null || Number.isNaN(x) ? '-' : Number(x).toFixed(d));

function ours(scenario, n) {
  const runs = [];
  for (let r = 0; r < opt.runs; r++) {
    const ticks = scenario === 'work' ? 5 : 20;
    const out = execFileSync(bench, ['--scenario', scenario, '--players', String(n), '--ticks', String(ticks),
      '--kill-reps', r === 0 && n === opt.n[0] && scenario === 'noop' ? '10' : '0', '--json'], { encoding: 'utf8' });
    runs.push(JSON.parse(out.trim().split('\n').pop()));
  }
  const pick = (k) => median(runs.map((x) => x[k]).filter((x) => x !== null && !Number.isNaN(x)));
  return { tick: pick('tick_ms_p50'), p99: pick('tick_ms_p99'), perPlayer: pick('per_player_us'), create: pick('create_ms_p50'),
    rss: pick('rss_per_player_mb'), kill: runs[0].kill_overshoot_ms_p50, killWall: runs[0].kill_overshoot_wall_ms_p50, v8: runs[0].v8, workers: runs[0].workers };
}

// ---------------------------------------------------------------- run
const started = new Date().toISOString();
const dir = baselineDir();
const ourResults = {};
for (const n of opt.n) {
  for (const sc of ['noop', 'empty', 'log', 'work']) {
    process.stderr.write(`isoworld: ${sc} N=${n}\n`);
    ourResults[`${sc}:${n}`] = ours(sc, n);
  }
}
process.stderr.write('baseline: node ivm-tick-bench.js (this takes a while)\n');
const jsonOut = path.join(dir, 'data', `compare-${Date.now()}.json`);
const r = spawnSync(process.execPath, ['ivm-tick-bench.js', '--n', opt.n.join(','), '--runs', String(opt.runs),
  '--json', jsonOut, ...(opt.quick ? ['--ticks', '5', '--work-ticks', '3', '--warmup', '2', '--kill-reps', '3'] : [])],
{ cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
if (r.status !== 0) { console.error('bench_compare: the baseline failed'); process.exit(1); }
const base = JSON.parse(fs.readFileSync(jsonOut, 'utf8'));

function theirs(sc, mode, n) {
  const runs = (base.byN[String(n)] || []).map((c) => c.results.find((x) => x.scenario === sc && x.mode === mode)).filter(Boolean);
  return runs.length ? median(runs.map((x) => x.tick_ms_med)) : NaN;
}
function theirCreate(n) { return median((base.byN[String(n)] || []).map((c) => c.create.total_ms_med)); }
function theirRss(n) { return median((base.byN[String(n)] || []).map((c) => c.mem.perPlayer_rss_MB)); }

const any = ourResults[`noop:${opt.n[0]}`];
const lines = [];
lines.push(`Measured ${started} on ${base.env.cpus} x ${base.env.cpu_model}, ${Math.round(base.env.mem_GB)} GB; isoworld: V8 ${any.v8}, ${any.workers} workers; baseline: Node ${base.env.node}, isolated-vm ${base.env.isolated_vm}, V8 ${base.env.v8}. Median of ${opt.runs} run(s) per cell; tick time is the median tick.`);
lines.push('');
lines.push('| N | scenario | isoworld tick ms (p99) | µs/player | baseline seq ms | baseline async ms | ratio |');
lines.push('| --- | --- | --- | --- | --- | --- | --- |');
for (const n of opt.n) {
  for (const [sc, theirSc, label] of [['noop', 'empty', 'empty loop (Memory untouched, lazy)'], ['empty', 'empty', 'empty loop, 1 KB Memory parsed + serialised'],
    ['log', 'log', 'log + Memory write'], ['work', 'work', '~1 ms work']]) {
    const o = ourResults[`${sc}:${n}`];
    const s = theirs(theirSc, 'seq', n), a = theirs(theirSc, 'async', n);
    const best = Math.min(...[s, a].filter((x) => !Number.isNaN(x)));
    lines.push(`| ${n} | ${label} | ${f(o.tick)} (${f(o.p99)}) | ${f(o.perPlayer, 1)} | ${f(s)} | ${f(a)} | ${f(best / o.tick, 1)}x |`);
  }
}
lines.push('');
lines.push('| N | isolate + global, median ms: isoworld / baseline | RSS per idle player MB: isoworld / baseline |');
lines.push('| --- | --- | --- |');
for (const n of opt.n) {
  const o = ourResults[`noop:${n}`];
  lines.push(`| ${n} | ${f(o.create)} / ${f(theirCreate(n))} | ${f(o.rss)} / ${f(theirRss(n))} |`);
}
const k = base.kills && base.kills[0] && base.kills[0].timeout_50ms;
lines.push('');
lines.push(`Infinite loop past a 50 ms budget, stopped late by (median): isoworld ${f(any.kill, 3)} ms of CPU (${f(any.killWall, 3)} ms wall); baseline (wall) ${k ? f(k.seq_overshoot_ms_med, 3) : '-'} ms (seq), ${k ? f(k.async_overshoot_ms_med, 3) : '-'} ms (async).`);
console.log(lines.join('\n'));
