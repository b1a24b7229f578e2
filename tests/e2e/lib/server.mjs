// Starts the real isoworld binary on loopback for an end-to-end test and stops it.
//
// The binary comes from $ISOWORLD_BIN_DIR (ctest sets it to the build's bin/), else
// ../../build/bin. The server is asked for an ephemeral port (--port 0); its start-up
// line on stderr names the address it listens on.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const binDir = process.env.ISOWORLD_BIN_DIR || path.resolve(here, '../../../build/bin');
export const bin = path.join(binDir, 'isoworld');

export function tempDir(prefix = 'isoworld-e2e-') {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

// Starts a server on `dataDir` and resolves once it listens: { url, port, proc, stdout(),
// stderr(), stop(), kill9() }. `args` are extra command-line flags.
export async function startServer(dataDir, args = []) {
  const argv = ['--data-dir', dataDir, '--bind', '127.0.0.1', '--port', '0', '--tick-ms', '50',
    '--stats-every', '0', '--no-demo', ...args];
  const proc = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`isoworld did not start in 20 s:\n${err}`)), 20000);
    proc.stderr.on('data', (d) => {
      err += d;
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`isoworld exited with ${code}:\n${err}`)); });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    exited,
    stdout: () => out,
    stderr: () => err,
    // SIGTERM: the tick in progress is committed, then the server exits 0.
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      return exited;
    },
    // SIGKILL: no chance to flush anything; LMDB keeps what was committed.
    async kill9() {
      proc.kill('SIGKILL');
      return exited;
    },
  };
}

// Options for screeps-api's ScreepsAPI constructor that point it at a server.
export function apiOptions(server, extra = {}) {
  return { protocol: 'http', hostname: '127.0.0.1', port: server.port, path: '/', ...extra };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() (async) until it returns a truthy value; throws after `ms`.
export async function eventually(fn, ms = 10000, what = 'condition') {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what} (last: ${last && last.stack || last})`);
    await sleep(50);
  }
}

// Runs curl with arguments; returns { status, body } (body parsed as JSON when it is).
// `input` (optional) is given on curl's standard input (use '--data-binary', '@-').
export function curl(args, input) {
  const out = execFileSync('curl', ['-s', '-w', '\n%{http_code}', ...args],
    { encoding: 'utf8', maxBuffer: 64 << 20, input });
  const nl = out.lastIndexOf('\n');
  const text = out.slice(0, nl);
  let body = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: Number(out.slice(nl + 1)), body };
}
