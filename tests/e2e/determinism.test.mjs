// Determinism of the whole server: the same world seed and the same players' code give the
// same world, tick after tick — also across a kill -9 and a restart from the last commit.
// The server prints the world's state hash in its tick summary (--stats-every).
//
// The demo players of a new data directory (alice logs, bob runs the starter bot of
// server/demo/) are the code: it uses only Memory and the world, never the clock.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { bin, tempDir, removeDir } from './lib/server.mjs';

const TICKS = 400;

// Runs a server on dir (ticking as fast as it can) until it reports game time `until`,
// kills it, and returns the world hash printed for that tick. A data directory that was
// killed earlier goes on from its last commit.
function runUntil(dir, until, seed) {
  return new Promise((resolve, reject) => {
    const args = ['--data-dir', dir, '--bind', '127.0.0.1', '--port', '0', '--no-admin', '--quiet', '--tick-ms', '0',
      '--world-seed', String(seed), '--stats-every', '1'];
    const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    let done = false;
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      err += d;
      const m = new RegExp(`tick ${until}: .*world hash ([0-9a-f]{16})`).exec(err);
      if (m && !done) {
        done = true;
        proc.kill('SIGKILL');
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      if (!done) reject(new Error(`isoworld exited with ${code} before tick ${until}:\n${err.slice(-2000)}`));
    });
  });
}

test('two servers from the same seed and code reach the same world hash; another seed does not', async () => {
  const dirs = [tempDir(), tempDir(), tempDir()];
  try {
    const [a, b, c] = await Promise.all([runUntil(dirs[0], TICKS, 11), runUntil(dirs[1], TICKS, 11),
      runUntil(dirs[2], TICKS, 12)]);
    assert.equal(a, b);
    assert.notEqual(a, c);
  } finally {
    for (const d of dirs) removeDir(d);
  }
});

test('a server killed with SIGKILL goes on from its last commit to the same world', async () => {
  const ref = tempDir(), dir = tempDir();
  try {
    const want = await runUntil(ref, TICKS, 11);
    // the same start, killed with SIGKILL somewhere after tick 150 (the hash line of a tick
    // is printed after its commit, so the kill lands mid-tick or between ticks)
    await runUntil(dir, 150, 11);
    // the restart goes on from what was committed, to the same world
    const got = await runUntil(dir, TICKS, 11);
    assert.equal(got, want);
  } finally {
    removeDir(ref);
    removeDir(dir);
  }
});
