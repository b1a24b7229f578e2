// `isoworld-admin verify` decodes the world's records as the game does, and a damaged
// world record is refused — by verify (a problem naming the record) and by the server at
// start (a clear message, nothing overwritten). The damage is made with LMDB's own tools
// (mdb_dump / mdb_load, Debian's lmdb-utils, installed by tools/bootstrap.sh).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, cpSync } from 'node:fs';
import path from 'node:path';
import { bin, binDir, tempDir, removeDir } from './lib/server.mjs';

const ADMIN = path.join(binDir, 'isoworld-admin');

function run(cmd, args, input) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 60000 });
  return { code: r.status, out: r.stdout || '', err: r.stderr || '' };
}

test('verify loads the world; a damaged room record is a problem, and the server refuses the directory', () => {
  const dir = tempDir('isoworld-verify-world-');
  const bad = tempDir('isoworld-verify-world-bad-');
  try {
    // a world with the demo players, 30 committed ticks
    let r = run(bin, ['--data-dir', dir, '--port', '0', '--bind', '127.0.0.1', '--no-admin', '--tick-ms', '0',
      '--max-ticks', '30', '--quiet', '--stats-every', '0']);
    assert.equal(r.code, 0, r.err);
    r = run(ADMIN, ['verify', dir, '--json']);
    assert.equal(r.code, 0, r.err + r.out);
    const ok = JSON.parse(r.out);
    assert.equal(ok.valid, true);
    assert.ok(ok.counts.world >= 10, `world records: ${ok.counts.world}`);

    // damage room W1N1's record: its object count becomes absurd
    const dump = run('mdb_dump', ['-s', 'world', dir]);
    assert.equal(dump.code, 0, dump.err);
    const lines = dump.out.split('\n');
    const key = ' ' + Buffer.from('room:W1N1').toString('hex');
    const i = lines.indexOf(key);
    assert.ok(i > 0, 'room:W1N1 is in the dump');
    lines[i + 1] = ' 01ffffff7f' + lines[i + 1].slice(11);
    cpSync(dir, bad, { recursive: true });
    const load = run('mdb_load', ['-s', 'world', bad], lines.join('\n'));
    assert.equal(load.code, 0, load.err);
    const before = readFileSync(path.join(bad, 'data.mdb'));

    r = run(ADMIN, ['verify', bad, '--json']);
    assert.equal(r.code, 1, r.err + r.out);
    const rep = JSON.parse(r.out);
    assert.equal(rep.valid, false);
    assert.ok(rep.problems.some((p) => /world record room:W1N1/.test(p)), JSON.stringify(rep.problems));

    r = run(bin, ['--data-dir', bad, '--port', '0', '--bind', '127.0.0.1', '--no-admin', '--tick-ms', '0',
      '--max-ticks', '5']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /the stored world cannot be loaded: .*room:W1N1/);
    assert.ok(readFileSync(path.join(bad, 'data.mdb')).equals(before), 'nothing was written');
  } finally {
    removeDir(dir);
    removeDir(bad);
  }
});
