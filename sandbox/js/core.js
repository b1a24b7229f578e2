// isoworld:core — the library loader. Runs first, once, while a runtime's startup
// snapshot is built; every VM's global is a copy of what the snapshot holds.
//
// Each library's JS is the body of `function (lib, core)`, evaluated right after this
// file, in the runtime's order (sandbox.h, "Writing a library"). The shim hands each
// compiled body to __isoworld_define, which gives it its `lib` (registration of hooks)
// and the shared `core` (console line output, error reporting, the module loader, the
// VM's exports). After the last library the shim calls __isoworld_define() with no
// arguments, which removes it.
//
// Host functions are not in the snapshot (a V8 external reference missing from a
// snapshot aborts the process): the shim calls `__isoworld_attach(hosts, io, configs)`
// once per new global. It hands each library its own host object and config, keeps the
// core's host functions in this closure, deletes itself, and returns the entry points
// the shim calls (tick, end, run, entry, call, timers). No host object, no `lib` and no
// `core` is ever reachable from player code. Intrinsics used after player code has run
// are captured here first, so a player who replaces Array.prototype.push or
// Promise.prototype.then cannot intercept them.
'use strict';
(function () {
  const g = globalThis;
  const defineProperty = Object.defineProperty;
  const apply = Reflect.apply;
  const StringCtor = String;
  const split = String.prototype.split;
  const join = Array.prototype.join;
  const push = Array.prototype.push;
  const indexOf = String.prototype.indexOf;
  const promiseThen = Promise.prototype.then;
  const promiseResolve = Promise.resolve;
  const PromiseCtor = Promise;
  const ObjectKeys = Object.keys;
  const ArrayIsArray = Array.isArray;
  const Float64ArrayCtor = Float64Array;

  // ------------------------------------------------------------ shared helpers
  function str(a) {
    if (typeof a === 'string') return a;
    try { return StringCtor(a); } catch (e) { return '[object]'; }
  }
  // The stack of an error without the sandbox's own frames (scripts named isoworld:*).
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
  function isThenable(r) {
    return r !== null && typeof r === 'object' && typeof r.then === 'function';
  }

  let host = null; // the core's host functions: log, callDone, error
  let io = null;   // Float64Array shared with the host (see sandbox/internal.h, SBX__IO_*)

  // What libraries share. Plain own properties: prototype tampering cannot reach them.
  const core = {
    str,
    cleanStack,
    // A console line of the run in progress (level 0 log .. 4 debug, 5 result).
    log(level, text, unsafe) { host.log(level, text, unsafe === true); },
    // An error: a console line with its cleaned stack, and the VM's on_error callback.
    report(e) { const t = cleanStack(e); host.log(3, t, false); host.error(t); },
    // Module loader, set by a module library: require(name) and forget(name) (drop from
    // the cache, so a failed main is evaluated again next tick).
    require: null,
    forget: null,
    entry: 'main',
    // What a tick runs after the begin hooks (set by the game library).
    tickBody: null,
    // Called with each tick's new Game before the player's loop (a game library fills in
    // its world: Game.creeps, Game.rooms...).
    gameHooks: [],
    // Modules other libraries provide (name -> exports), for require() names the
    // player's own modules do not have (e.g. 'lodash').
    modules: { __proto__: null },
    // Fires due timers (set by the timers library).
    fireTimers: null,
    // What the host can call (sbx_vm_call): `return {...}` of run code, module.exports of
    // the entry, or exposeCallables({...}).
    exports: undefined,
    setExports(o) { core.exports = o; },
    // exposeCallables({...}) for the libraries that offer it as a global (ipc, threads'
    // workers): adds the object's functions to what the host may call.
    exposeCallables: function exposeCallables(obj) {
      if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function'))
        throw new TypeError('exposeCallables expects an object of functions');
      if (exposed === null || core.exports !== exposed) exposed = { __proto__: null };
      const keys = ObjectKeys(obj);
      for (let i = 0; i < keys.length; i++) {
        const v = obj[keys[i]];
        if (typeof v === 'function') exposed[keys[i]] = v;
      }
      core.exports = exposed;
    },
    io: null,
  };
  let exposed = null;

  const libs = []; // { name, attach: [fn], begin: [fn], end: [fn] }
  let begins = [];
  let ends = [];
  let salvages = [];

  function define(name, body) {
    if (arguments.length === 0) { delete g.__isoworld_define; return; }
    const rec = { name, attach: [], begin: [], end: [], salvage: [] };
    apply(push, libs, [rec]);
    if (typeof body !== 'function') return;
    const lib = {
      name,
      onAttach(fn) { apply(push, rec.attach, [fn]); },
      onRunBegin(fn) { apply(push, rec.begin, [fn]); },
      onRunEnd(fn) { apply(push, rec.end, [fn]); },
      // After a tick whose loop ran out of CPU or wall time (and that called requestEnd):
      // a short budget of its own to pass on what the run produced so far (a game's
      // intents). Memory is not saved after a timeout; these hooks are for the rest.
      onRunSalvage(fn) { apply(push, rec.salvage, [fn]); },
      // Ask for the end hooks to run at the end of this tick.
      requestEnd() { io[4] = 1; },
      // Per-tick state: compare with this (io[6], +1 per tick) to reset it lazily.
      tickSeq() { return io[6]; },
    };
    body(lib, core);
  }
  defineProperty(g, '__isoworld_define', { configurable: true, enumerable: false, writable: false, value: define });
  defineProperty(g, 'global', { value: g, writable: true, configurable: true, enumerable: false });

  // ------------------------------------------------------------ entry points (shim)

  // A tick (sbx_vm_tick): begin hooks, then the game's body. Returns the error text of
  // the player's code if it threw (already reported to the console), else undefined.
  // The host clears io[4] and bumps io[6] before each tick. Without begin hooks (the
  // player API has none: Memory resets lazily on io[6]) the host calls the body directly.
  function tick() {
    for (let i = 0; i < begins.length; i++) begins[i]();
    const body = core.tickBody;
    return body === null ? undefined : body();
  }
  function noTick() { return undefined; }
  // End of a tick, only when io[4] was set: the end hooks.
  function end() {
    for (let i = 0; i < ends.length; i++) ends[i]();
  }
  // After a timed-out tick (the host gives it a budget of its own): the salvage hooks.
  function salvage() {
    for (let i = 0; i < salvages.length; i++) salvages[i]();
  }
  // Keys of the exports that are functions: what the host may call.
  function callables() {
    const ex = core.exports;
    const out = [];
    if (ex === null || (typeof ex !== 'object' && typeof ex !== 'function')) return out;
    const keys = ObjectKeys(ex);
    for (let i = 0; i < keys.length; i++) if (typeof ex[keys[i]] === 'function') apply(push, out, [keys[i]]);
    return out;
  }
  function adopt(r) {
    if (r !== null && (typeof r === 'object' || typeof r === 'function')) {
      if (isThenable(r)) {
        apply(promiseThen, apply(promiseResolve, PromiseCtor, [r]), [
          (v) => { if (v !== null && (typeof v === 'object' || typeof v === 'function')) core.exports = v; },
          (e) => core.report(e),
        ]);
      } else {
        core.exports = r;
      }
    }
  }
  // sbx_vm_run: fn is the code compiled as a function body. [error text] or [undefined, callables].
  function run(fn) {
    try {
      adopt(fn());
    } catch (e) {
      return [cleanStack(e)];
    }
    return [undefined, callables()];
  }
  // sbx_vm_run_entry: require the entry module; its exports become the VM's.
  function entry(path) {
    if (core.require === null) return ['Error: this VM has no module library'];
    try {
      const ex = core.require(path);
      if (core.exports === undefined || ex !== null && typeof ex === 'object' && ObjectKeys(ex).length > 0 ||
          typeof ex === 'function') core.exports = ex;
    } catch (e) {
      return [cleanStack(e)];
    }
    return [undefined, callables()];
  }
  // A host -> isolate call (sbx_vm_call): the result reaches the host through
  // host.callDone(id, ok, value), now or when the returned promise settles.
  function call(id, name, args) {
    const ex = core.exports;
    let f;
    if (ex !== null && (typeof ex === 'object' || typeof ex === 'function')) {
      try { f = ex[name]; } catch (e) { host.callDone(id, false, cleanStack(e)); return; }
    }
    if (typeof f !== 'function') {
      host.callDone(id, false, "TypeError: '" + str(name) + "' is not a function the VM exports");
      return;
    }
    let r;
    try {
      r = apply(f, ex, ArrayIsArray(args) ? args : []);
    } catch (e) {
      host.callDone(id, false, cleanStack(e));
      return;
    }
    if (isThenable(r)) {
      apply(promiseThen, apply(promiseResolve, PromiseCtor, [r]), [
        (v) => host.callDone(id, true, v),
        (e) => host.callDone(id, false, cleanStack(e)),
      ]);
    } else {
      host.callDone(id, true, r);
    }
  }
  function timers() {
    const f = core.fireTimers;
    if (f !== null) f();
  }

  defineProperty(g, '__isoworld_attach', {
    configurable: true,
    enumerable: false,
    writable: false,
    value: function (hosts, buffer, configs) {
      delete g.__isoworld_attach;
      host = hosts[0];
      io = new Float64ArrayCtor(buffer);
      core.io = io;
      const b = [], e = [], sv = [];
      for (let i = 0; i < libs.length; i++) {
        const rec = libs[i];
        for (let k = 0; k < rec.attach.length; k++) rec.attach[k](hosts[i + 1], configs[i + 1], io);
        for (let k = 0; k < rec.begin.length; k++) apply(push, b, [rec.begin[k]]);
        for (let k = 0; k < rec.end.length; k++) apply(push, e, [rec.end[k]]);
        for (let k = 0; k < rec.salvage.length; k++) apply(push, sv, [rec.salvage[k]]);
      }
      begins = b;
      ends = e;
      salvages = sv;
      const t = b.length ? tick : core.tickBody !== null ? core.tickBody : noTick;
      return { tick: t, end, salvage, run, entry, call, timers, report: core.report };
    },
  });
})();
