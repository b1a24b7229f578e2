// isoworld player prelude. Runs once, while the startup snapshot is built; every
// player's global is a copy of what it leaves behind.
//
// It defines the player-facing basics: console, require over the player's modules,
// Game (time, cpu), Memory parsed lazily from RawMemory and serialised at tick end when
// touched. Host functions are not in the snapshot: the shim calls
// `__isoworld_attach(host)` once per new global, which keeps them in this closure and
// deletes itself, so player code can never reach a host object. Intrinsics the prelude
// relies on are captured here, before player code can replace them.
'use strict';
(function () {
  const g = globalThis;
  const defineProperty = Object.defineProperty;
  const JSONparse = JSON.parse;
  const JSONstringify = JSON.stringify;
  const StringCtor = String;
  const apply = Reflect.apply;
  const split = String.prototype.split;
  const join = Array.prototype.join;
  const push = Array.prototype.push;
  const indexOf = String.prototype.indexOf;
  const MapCtor = Map;
  const mapGet = Map.prototype.get;
  const mapSet = Map.prototype.set;
  const mapDelete = Map.prototype.delete;
  const promiseThen = Promise.prototype.then;
  const ErrorCtor = Error;
  const ArrayIsArray = Array.isArray;
  const ObjectKeys = Object.keys;

  // ------------------------------------------------------------ builtin guards
  // Some builtins abort the whole process (a V8 CHECK on an array's length, not a
  // catchable RangeError) when given a huge string, which `'x'.repeat(2 ** 27)` makes
  // cheaply: split, match, matchAll, replace, replaceAll and their RegExp symbol
  // methods. They refuse strings over 16 M characters; no bot needs more.
  const GUARD_MAX = 1 << 24;
  const RangeErrorCtor = RangeError;
  function tooLong(what, len) {
    return new RangeErrorCtor(what + ': string too long (' + len + ' characters; the limit is ' + GUARD_MAX + ')');
  }
  function guardThis(proto, name) {
    const orig = proto[name];
    if (typeof orig !== 'function') return;
    const f = function () {
      if (this === null || this === undefined) return apply(orig, this, arguments);
      const self = typeof this === 'string' ? this : StringCtor(this);
      if (self.length > GUARD_MAX) throw tooLong('String.prototype.' + name, self.length);
      return apply(orig, self, arguments);
    };
    defineProperty(f, 'name', { value: name });
    defineProperty(f, 'length', { value: orig.length });
    defineProperty(proto, name, { value: f, writable: true, configurable: true, enumerable: false });
  }
  function guardArg(proto, sym, label) {
    const orig = proto[sym];
    if (typeof orig !== 'function') return;
    const f = function (str) {
      const a = typeof str === 'string' ? str : StringCtor(str);
      if (a.length > GUARD_MAX) throw tooLong(label, a.length);
      const args = [a];
      for (let i = 1; i < arguments.length; i++) apply(push, args, [arguments[i]]);
      return apply(orig, this, args);
    };
    defineProperty(f, 'name', { value: '[' + label + ']' });
    defineProperty(f, 'length', { value: orig.length });
    defineProperty(proto, sym, { value: f, writable: true, configurable: true, enumerable: false });
  }
  for (const name of ['split', 'match', 'matchAll', 'replace', 'replaceAll']) guardThis(String.prototype, name);
  guardArg(RegExp.prototype, Symbol.split, 'Symbol.split');
  guardArg(RegExp.prototype, Symbol.match, 'Symbol.match');
  guardArg(RegExp.prototype, Symbol.matchAll, 'Symbol.matchAll');
  guardArg(RegExp.prototype, Symbol.replace, 'Symbol.replace');

  let host = null; // { log(level, text, unsafe), compile(name), memory(), cpu(), heap(), halt() }
  // Shared with the host (a Float64Array over memory both sides read directly): the host
  // writes the tick's inputs, the prelude writes whether Memory was touched, so a tick
  // costs no argument objects and no end() call for players who leave Memory alone.
  // [0] time, [1] cpu limit, [2] tick limit, [3] bucket, [4] Memory touched (0/1).
  let io = null;

  // ------------------------------------------------------------ console
  function str(a) {
    if (typeof a === 'string') return a;
    try { return StringCtor(a); } catch (e) { return '[object]'; }
  }
  function format(args) {
    if (args.length === 1) return str(args[0]);
    const parts = [];
    for (let i = 0; i < args.length; i++) apply(push, parts, [str(args[i])]);
    return apply(join, parts, [' ']);
  }
  function cleanStack(e) {
    let s;
    try {
      s = e !== null && typeof e === 'object' && typeof e.stack === 'string' ? e.stack : str(e);
    } catch (x) { s = '[unprintable error]'; }
    const lines = apply(split, s, ['\n']);
    const kept = [];
    for (let i = 0; i < lines.length; i++) {
      if (apply(indexOf, lines[i], ['isoworld:']) >= 0) continue;
      apply(push, kept, [lines[i]]);
    }
    return apply(join, kept, ['\n']);
  }
  function report(e) { host.log(3, cleanStack(e), false); }
  const makeLog = (level, unsafe) => function () { host.log(level, format(arguments), unsafe); };
  const console = {
    log: makeLog(0, false),
    info: makeLog(1, false),
    warn: makeLog(2, false),
    error: makeLog(3, false),
    debug: makeLog(4, false),
    logUnsafe: makeLog(0, true),
  };
  defineProperty(g, 'console', { value: console, writable: true, configurable: true, enumerable: false });
  defineProperty(g, 'global', { value: g, writable: true, configurable: true, enumerable: false });

  // ------------------------------------------------------------ require
  // Module names as Screeps players write them: "role.harvester", "./role.harvester",
  // "lib/util.js". Each module is evaluated once per global; a failed evaluation is
  // retried by the next require.
  let cache = new MapCtor();
  function normalize(name) {
    let n = str(name);
    if (n.length > 2 && n[0] === '.' && n[1] === '/') n = n.slice(2);
    else if (n.length > 1 && n[0] === '/') n = n.slice(1);
    if (n.length > 3 && n.slice(-3) === '.js') n = n.slice(0, -3);
    return n;
  }
  function require(name) {
    const n = normalize(name);
    let m = apply(mapGet, cache, [n]);
    if (m !== undefined) return m.exports;
    const fn = host.compile(n);
    if (fn === undefined) throw new ErrorCtor("Unknown module '" + n + "'");
    if (typeof fn !== 'function') {
      m = { id: n, exports: fn, loaded: true };
      apply(mapSet, cache, [n, m]);
      return fn;
    }
    m = { id: n, exports: {}, loaded: false };
    apply(mapSet, cache, [n, m]);
    try {
      apply(fn, m.exports, [m, m.exports, require]);
    } catch (e) {
      apply(mapDelete, cache, [n]);
      throw e;
    }
    m.loaded = true;
    return m.exports;
  }
  defineProperty(g, 'require', { value: require, writable: true, configurable: true, enumerable: false });

  // ------------------------------------------------------------ Memory
  // RawMemory is fetched from the host on first use in a tick: a player who never
  // touches Memory costs no copy of it.
  let rawMemory = '';
  let rawFetched = false;
  let rawSet = false;
  function raw() {
    if (!rawFetched) {
      rawFetched = true;
      const m = host.memory();
      rawMemory = typeof m === 'string' ? m : '';
    }
    return rawMemory;
  }
  let memParsed = false;
  let memObj;
  function parseMemory() {
    memParsed = true;
    io[4] = 1;
    try {
      const r = raw();
      memObj = r.length ? JSONparse(r) : {};
      if (memObj === null || typeof memObj !== 'object') memObj = {};
    } catch (e) {
      host.log(3, 'Memory could not be parsed, starting from {}: ' + str(e && e.message), false);
      memObj = {};
    }
    return memObj;
  }
  defineProperty(g, 'Memory', {
    configurable: true,
    enumerable: false,
    get() { return memParsed ? memObj : parseMemory(); },
    set(v) { memParsed = true; io[4] = 1; memObj = v; },
  });
  // Segments: ids 0..99; those made active last tick are readable now; any may be
  // written (at most 10 a tick, 100 KB each) and are saved at tick end if changed.
  let segs = null;       // this tick's RawMemory.segments, made on first access
  let segOrig = null;    // id -> string as given at tick start
  let activeReq = null;  // setActiveSegments(ids) of this tick
  function segments() {
    if (segs === null) {
      io[4] = 1;
      segs = {};
      segOrig = new MapCtor();
      const a = host.segments();
      if (a) for (let i = 0; i + 1 < a.length; i += 2) { segs[a[i]] = a[i + 1]; apply(mapSet, segOrig, [a[i], a[i + 1]]); }
    }
    return segs;
  }
  const RawMemory = {
    get() { return raw(); },
    set(v) {
      if (typeof v !== 'string') throw new ErrorCtor('Raw memory value is not a string');
      rawMemory = v;
      rawFetched = true;
      rawSet = true;
      io[4] = 1;
      memParsed = false;
      memObj = undefined;
    },
    get segments() { return segments(); },
    foreignSegment: undefined,
    setActiveSegments(ids) {
      if (!ArrayIsArray(ids)) throw new ErrorCtor('"ids" argument should be an array');
      if (ids.length > 10) throw new ErrorCtor('Only 10 memory segments can be active at the same time');
      const out = [];
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (typeof id !== 'number' || id !== (id | 0) || id < 0 || id > 99) throw new ErrorCtor('"' + str(id) + '" is not a valid segment ID');
        apply(push, out, [id]);
      }
      activeReq = out;
      io[4] = 1;
    },
    setActiveForeignSegment() {},
    setDefaultPublicSegment() {},
    setPublicSegments() {},
  };
  function segmentsOut() {
    if (segs === null) return undefined;
    const out = [];
    let n = 0;
    const keys = ObjectKeys(segs);
    for (let i = 0; i < keys.length; i++) {
      const id = +keys[i];
      const v = segs[keys[i]];
      if (!(id === (id | 0) && id >= 0 && id <= 99)) { host.log(3, 'RawMemory.segments: "' + keys[i] + '" is not a valid segment ID', false); continue; }
      if (v === apply(mapGet, segOrig, [id])) continue;
      if (typeof v !== 'string') { host.log(3, 'RawMemory.segments[' + id + ']: a segment must be a string', false); continue; }
      if (v.length > 100 * 1024) { host.log(3, 'RawMemory.segments[' + id + '] is over 100 KB (' + v.length + ' characters): not saved', false); continue; }
      if (++n > 10) { host.log(3, 'RawMemory.segments: only 10 segments can be saved per tick; segment ' + id + ' not saved', false); continue; }
      apply(push, out, [id, v]);
    }
    return out;
  }
  defineProperty(g, 'RawMemory', { value: RawMemory, writable: true, configurable: true, enumerable: false });

  // ------------------------------------------------------------ Game
  // A new Game every tick, as on Screeps, built cheaply: methods live on prototypes,
  // and the collections (creeps, rooms, ...) are made on first access and then become
  // ordinary own properties. A game built on the framework replaces them with its world.
  let cpuLimit = 0, tickLimit = 0, bucket = 0;
  function Cpu(limit, tlimit, bkt) { this.limit = limit; this.tickLimit = tlimit; this.bucket = bkt; }
  Cpu.prototype.getUsed = function getUsed() { return host.cpu(); };
  Cpu.prototype.getHeapStatistics = function getHeapStatistics() { return host.heap(); };
  Cpu.prototype.halt = function halt() { host.halt(); };
  function GameObject(time, cpu) { this.time = time; this.cpu = cpu; }
  const GameProto = GameObject.prototype;
  GameProto.getObjectById = function getObjectById() { return null; };
  GameProto.notify = function notify() {};
  const lazy = {
    creeps: () => ({}), rooms: () => ({}), spawns: () => ({}), structures: () => ({}), flags: () => ({}),
    constructionSites: () => ({}), powerCreeps: () => ({}), resources: () => ({}),
    shard: () => ({ name: 'shard0', type: 'normal', ptr: false }),
    gcl: () => ({ level: 1, progress: 0, progressTotal: 1000000 }),
    gpl: () => ({ level: 0, progress: 0, progressTotal: 1000 }),
  };
  for (const key of Object.keys(lazy)) {
    const make = lazy[key];
    defineProperty(GameProto, key, {
      configurable: true,
      enumerable: true,
      get() {
        const v = make();
        defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true });
        return v;
      },
      set(v) { defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true }); },
    });
  }
  function makeGame(time) { return new GameObject(time, new Cpu(cpuLimit, tickLimit, bucket)); }

  // ------------------------------------------------------------ the tick
  let mainExports = null;

  // Called by the host at the start of a run. Errors of the player's code are reported
  // to the console here, so Memory is still saved (as on Screeps); the error's text is
  // returned so the host knows the run failed.
  function tick() {
    const time = io[0];
    cpuLimit = io[1]; tickLimit = io[2]; bucket = io[3]; io[4] = 0;
    rawMemory = ''; rawFetched = false;
    rawSet = false; memParsed = false; memObj = undefined;
    segs = null; segOrig = null; activeReq = null;
    g.Game = makeGame(time);
    try {
      if (mainExports === null) mainExports = require('main');
      const loop = mainExports !== null && typeof mainExports === 'object' || typeof mainExports === 'function'
        ? mainExports.loop : undefined;
      if (typeof loop === 'function') {
        const r = loop();
        if (r !== null && typeof r === 'object' && typeof r.then === 'function') apply(promiseThen, r, [undefined, report]);
      } else {
        // No exported loop: the main module itself runs every tick (legacy Screeps).
        apply(mapDelete, cache, ['main']);
        mainExports = null;
      }
    } catch (e) {
      if (mainExports === null) apply(mapDelete, cache, ['main']);
      const text = cleanStack(e);
      host.log(3, text, false);
      return text;
    }
    return undefined;
  }

  // Called by the host at the end of a run (only if Memory or segments were touched):
  // [new RawMemory or undefined if unchanged, [id, text, ...] segments written or
  // undefined, ids asked for next tick or undefined].
  function end() {
    let mem;
    if (memParsed) {
      // A Memory that cannot be serialised (a cycle, a BigInt, a throwing toJSON) is the
      // player's error: say so in the console, without our frames, and keep the previous
      // Memory, as for a Memory over the size limit.
      try {
        const s = JSONstringify(memObj);
        mem = typeof s === 'string' ? s : '{}';
      } catch (e) {
        host.log(3, "Memory could not be serialised, this tick's changes are not saved: " + cleanStack(e), false);
      }
    } else if (rawSet) {
      mem = rawMemory;
    }
    return [mem, segmentsOut(), activeReq === null ? undefined : activeReq];
  }

  defineProperty(g, '__isoworld_attach', {
    configurable: true,
    enumerable: false,
    writable: false,
    value: function (h, buffer) {
      host = h;
      io = new Float64Array(buffer);
      delete g.__isoworld_attach;
      return { tick, end, report };
    },
  });
})();
