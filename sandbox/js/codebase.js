// isoworld:lib/codebase — require() over the VM's virtual file tree (sbx_fs), Node style:
// relative ('./x', '../x') and absolute ('/x') paths, '.js', '.json', 'index.js', cycles
// (a module required while it loads gets its partial exports) and a cache per global.
// Bare names ('role.harvester', 'lib/util') are looked up from the root of the tree first,
// as Screeps players use them (so a player's module 'util' shadows Node's built-in); then
// come the built-in modules this library implements (fs, fs/promises, path), the mocked
// names (config.mocks: an empty object each), other Node built-in names (refused with a
// clear error), and last the host's resolver hook.
//
// The file operations are host functions over the tree (C, sandbox/lib_codebase.c): no
// path ever leaves the tree, whatever '..' it holds; the tree's byte and file-count
// limits are enforced there.
const defineProperty = Object.defineProperty;
const apply = Reflect.apply;
const push = Array.prototype.push;
const join = Array.prototype.join;
const slice = String.prototype.slice;
const lastIndexOf = String.prototype.lastIndexOf;
const indexOf = String.prototype.indexOf;
const MapCtor = Map;
const mapGet = Map.prototype.get;
const mapSet = Map.prototype.set;
const mapDelete = Map.prototype.delete;
const ErrorCtor = Error;
const TypeErrorCtor = TypeError;
const JSONparse = JSON.parse;
const ObjectFreeze = Object.freeze;
const Uint8ArrayCtor = Uint8Array;
const ArrayBufferCtor = ArrayBuffer;
const isView = ArrayBuffer.isView;
const DateCtor = Date;
const reTest = RegExp.prototype.test;
const ERRCODE = /^E[A-Z]+$/;
const str = core.str;
const g = globalThis;

let host = null; // resolve, read, write, mkdir, readdir, stat, unlink, rmdir, load, external
let mocks = [];
let cache = new MapCtor(); // resolved path (or "external:" + name) -> module

const NODE_BUILTINS = ['assert', 'async_hooks', 'buffer', 'child_process', 'cluster', 'console', 'constants',
  'crypto', 'dgram', 'diagnostics_channel', 'dns', 'domain', 'events', 'http', 'http2', 'https', 'inspector',
  'module', 'net', 'os', 'perf_hooks', 'process', 'punycode', 'querystring', 'readline', 'repl', 'stream',
  'string_decoder', 'sys', 'timers', 'tls', 'trace_events', 'tty', 'url', 'util', 'v8', 'vm', 'wasi',
  'worker_threads', 'zlib'];
function listHas(list, name) {
  for (let i = 0; i < list.length; i++) if (list[i] === name) return true;
  return false;
}

// ------------------------------------------------------------ path (posix)
function normalizeParts(p) {
  const parts = [];
  let cur = '';
  for (let i = 0; i <= p.length; i++) {
    const c = i < p.length ? p[i] : '/';
    if (c !== '/') { cur += c; continue; }
    if (cur === '..') { if (parts.length) parts.length--; } else if (cur !== '' && cur !== '.') apply(push, parts, [cur]);
    cur = '';
  }
  return parts;
}
const path = {
  sep: '/',
  delimiter: ':',
  isAbsolute(p) { return str(p)[0] === '/'; },
  normalize(p) {
    p = str(p);
    const abs = p[0] === '/';
    const out = apply(join, normalizeParts(p), ['/']);
    return abs ? '/' + out : out === '' ? '.' : out;
  },
  join() {
    const parts = [];
    for (let i = 0; i < arguments.length; i++) if (str(arguments[i]) !== '') apply(push, parts, [str(arguments[i])]);
    return parts.length ? path.normalize(apply(join, parts, ['/'])) : '.';
  },
  resolve() {
    let p = '';
    for (let i = arguments.length - 1; i >= 0 && p[0] !== '/'; i--) {
      const a = str(arguments[i]);
      if (a !== '') p = p === '' ? a : a + '/' + p;
    }
    return '/' + apply(join, normalizeParts(p), ['/']);
  },
  dirname(p) {
    p = str(p);
    const i = apply(lastIndexOf, p, ['/']);
    if (i < 0) return '.';
    if (i === 0) return '/';
    return apply(slice, p, [0, i]);
  },
  basename(p, ext) {
    p = str(p);
    let b = apply(slice, p, [apply(lastIndexOf, p, ['/']) + 1]);
    if (typeof ext === 'string' && ext !== '' && b.length > ext.length && apply(slice, b, [-ext.length]) === ext)
      b = apply(slice, b, [0, -ext.length]);
    return b;
  },
  extname(p) {
    const b = path.basename(p);
    const i = apply(lastIndexOf, b, ['.']);
    return i <= 0 ? '' : apply(slice, b, [i]);
  },
  relative(from, to) {
    const a = normalizeParts(path.resolve(from)), b = normalizeParts(path.resolve(to));
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    const out = [];
    for (let k = i; k < a.length; k++) apply(push, out, ['..']);
    for (let k = i; k < b.length; k++) apply(push, out, [b[k]]);
    return apply(join, out, ['/']);
  },
};
path.posix = path;
ObjectFreeze(path);

// ------------------------------------------------------------ fs
// Host errors arrive as Error('ENOENT: no such file or directory, open \'/x\''): the code
// is the text before the first colon, as in Node.
function withCode(e) {
  if (e !== null && typeof e === 'object' && typeof e.message === 'string') {
    const i = apply(indexOf, e.message, [':']);
    if (i > 0) {
      const code = apply(slice, e.message, [0, i]);
      if (apply(reTest, ERRCODE, [code])) e.code = code;
    }
  }
  return e;
}
function hostCall(fn, args) {
  try { return apply(fn, undefined, args); } catch (e) { throw withCode(e); }
}
function encodingOf(opts) {
  if (typeof opts === 'string') return opts;
  if (opts !== null && typeof opts === 'object' && typeof opts.encoding === 'string') return opts.encoding;
  return null;
}
function toData(data) {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBufferCtor || isView(data)) return data;
  return str(data);
}
function Stats(s) {
  this.size = s.size;
  this.mtimeMs = s.mtimeMs;
  this.mtime = new DateCtor(s.mtimeMs);
  this.ctime = this.mtime;
  this.birthtime = this.mtime;
  this.mode = s.dir ? 0o40755 : 0o100644;
  defineProperty(this, '_dir', { value: s.dir === true });
}
Stats.prototype.isFile = function isFile() { return !this._dir; };
Stats.prototype.isDirectory = function isDirectory() { return this._dir; };
Stats.prototype.isSymbolicLink = function isSymbolicLink() { return false; };
const sync = {
  readFileSync(p, opts) {
    const enc = encodingOf(opts);
    const r = hostCall(host.read, [str(p), enc !== null]);
    return typeof r === 'string' ? r : new Uint8ArrayCtor(r);
  },
  writeFileSync(p, data) { hostCall(host.write, [str(p), toData(data), false]); },
  appendFileSync(p, data) { hostCall(host.write, [str(p), toData(data), true]); },
  mkdirSync(p, opts) { hostCall(host.mkdir, [str(p), opts !== null && typeof opts === 'object' && opts.recursive === true]); },
  readdirSync(p) { return hostCall(host.readdir, [str(p)]); },
  statSync(p) { return new Stats(hostCall(host.stat, [str(p)])); },
  lstatSync(p) { return new Stats(hostCall(host.stat, [str(p)])); },
  existsSync(p) { try { host.stat(str(p)); return true; } catch (e) { return false; } },
  unlinkSync(p) { hostCall(host.unlink, [str(p)]); },
  rmdirSync(p, opts) { hostCall(host.rmdir, [str(p), opts !== null && typeof opts === 'object' && opts.recursive === true]); },
  rmSync(p, opts) {
    const rec = opts !== null && typeof opts === 'object' && opts.recursive === true;
    let st;
    try { st = host.stat(str(p)); } catch (e) {
      if (opts !== null && typeof opts === 'object' && opts.force === true) return;
      throw withCode(e);
    }
    if (st.dir) hostCall(host.rmdir, [str(p), rec]); else hostCall(host.unlink, [str(p)]);
  },
};
const promises = {
  readFile: async function readFile(p, opts) { return sync.readFileSync(p, opts); },
  writeFile: async function writeFile(p, data) { sync.writeFileSync(p, data); },
  appendFile: async function appendFile(p, data) { sync.appendFileSync(p, data); },
  mkdir: async function mkdir(p, opts) { sync.mkdirSync(p, opts); },
  readdir: async function readdir(p) { return sync.readdirSync(p); },
  stat: async function stat(p) { return sync.statSync(p); },
  lstat: async function lstat(p) { return sync.statSync(p); },
  unlink: async function unlink(p) { sync.unlinkSync(p); },
  rmdir: async function rmdir(p, opts) { sync.rmdirSync(p, opts); },
  rm: async function rm(p, opts) { sync.rmSync(p, opts); },
  access: async function access(p) { sync.statSync(p); },
};
ObjectFreeze(promises);
const fs = { promises };
for (const k of Object.keys(sync)) fs[k] = sync[k];
ObjectFreeze(fs);

// ------------------------------------------------------------ require
function dirOf(p) {
  const i = apply(lastIndexOf, p, ['/']);
  return i <= 0 ? '/' : apply(slice, p, [0, i]);
}
function builtin(name) {
  if (name === 'fs') return fs;
  if (name === 'fs/promises') return promises;
  if (name === 'path' || name === 'path/posix') return path;
  return undefined;
}
function loadModule(key, filename, compiled) {
  if (typeof compiled === 'string') { // JSON
    const m = { id: key, filename, exports: undefined, loaded: false };
    m.exports = JSONparse(compiled);
    m.loaded = true;
    apply(mapSet, cache, [key, m]);
    return m.exports;
  }
  if (typeof compiled !== 'function') { // binary: an ArrayBuffer of its bytes
    const m = { id: key, filename, exports: compiled, loaded: true };
    apply(mapSet, cache, [key, m]);
    return compiled;
  }
  const m = { id: key, filename, exports: {}, loaded: false, children: [] };
  apply(mapSet, cache, [key, m]);
  const dir = filename === null ? '/' : dirOf(filename);
  try {
    apply(compiled, m.exports, [m, m.exports, makeRequire(dir), filename === null ? key : filename, dir]);
  } catch (e) {
    apply(mapDelete, cache, [key]);
    throw e;
  }
  m.loaded = true;
  return m.exports;
}
function requireFrom(name, dir) {
  if (typeof name !== 'string' || name === '') throw new TypeErrorCtor('The "id" argument must be a non-empty string');
  let n = name;
  if (n.length > 5 && apply(slice, n, [0, 5]) === 'node:') n = apply(slice, n, [5]);
  const bare = !(n[0] === '/' || n[0] === '.');
  const resolved = host.resolve(n, dir);
  if (resolved !== undefined) {
    const m = apply(mapGet, cache, [resolved]);
    if (m !== undefined) return m.exports;
    return loadModule(resolved, resolved, host.load(resolved));
  }
  if (bare) {
    const b = builtin(n);
    if (b !== undefined) return b;
    if (listHas(mocks, n)) {
      const key = 'mock:' + n;
      let m = apply(mapGet, cache, [key]);
      if (m === undefined) { m = { id: key, exports: {}, loaded: true }; apply(mapSet, cache, [key, m]); }
      return m.exports;
    }
    const key = 'external:' + n;
    const m = apply(mapGet, cache, [key]);
    if (m !== undefined) return m.exports;
    if (listHas(NODE_BUILTINS, n) || listHas(NODE_BUILTINS, apply(slice, n, [0, apply(indexOf, n + '/', ['/'])])))
      throw new ErrorCtor("Cannot require '" + name + "': Node's built-in modules are not available in the sandbox" +
        ' (fs, fs/promises and path are; others can be mocked by the host)');
    const fn = host.external(n, dir);
    if (fn !== undefined) return loadModule(key, null, fn);
  }
  const e = new ErrorCtor("Cannot find module '" + name + "' from '" + dir + "'");
  e.code = 'MODULE_NOT_FOUND';
  throw e;
}
function makeRequire(dir) {
  const require = function require(name) { return requireFrom(name, dir); };
  require.resolve = function resolve(name) {
    const r = host.resolve(str(name), dir);
    if (r === undefined) {
      if (builtin(str(name)) !== undefined) return str(name);
      throw new ErrorCtor("Cannot find module '" + str(name) + "' from '" + dir + "'");
    }
    return r;
  };
  return require;
}
const rootRequire = makeRequire('/');
defineProperty(g, 'require', { value: rootRequire, writable: true, configurable: true, enumerable: false });
core.require = rootRequire;
core.forget = (n) => {
  const r = host.resolve(str(n), '/');
  if (r !== undefined) apply(mapDelete, cache, [r]);
};
lib.onAttach((h, config) => {
  host = h;
  if (config !== null && typeof config === 'object') {
    if (typeof config.entry === 'string') core.entry = config.entry;
    if (config.mocks !== null && typeof config.mocks === 'object') mocks = config.mocks;
  }
});
