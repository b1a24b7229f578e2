// isoworld:lib/timers — setTimeout, setInterval, clearTimeout, clearInterval, with a
// maximum number of live timers (config.max).
//
// Timers live here, in the VM; the host only learns the earliest due time through io[5]
// (Date.now() milliseconds, 0 when no timer is live), so a VM with no timer costs the host
// one comparison per run. Due timers fire at the run's drain points (after loop() and its
// microtasks, after a host call returns, while sbx_vm_call waits, and in
// sbx_vm_run_pending), inside the run's CPU budget like everything else. One firing round
// fires the timers that were due when it started, in due order, and not the timers their
// callbacks create: a setTimeout(f, 0) in a callback fires in the next round.
const defineProperty = Object.defineProperty;
const apply = Reflect.apply;
const push = Array.prototype.push;
const sort = Array.prototype.sort;
const MapCtor = Map;
const mapGet = Map.prototype.get;
const mapSet = Map.prototype.set;
const mapDelete = Map.prototype.delete;
const mapForEach = Map.prototype.forEach;
const mapSize = Object.getOwnPropertyDescriptor(Map.prototype, 'size').get;
const DateNow = Date.now;
const TypeErrorCtor = TypeError;
const RangeErrorCtor = RangeError;
const g = globalThis;
let io = null;
let max = 100;
let nextId = 1;
const timers = new MapCtor(); // id -> { id, fn, args, due, interval }

function size() { return apply(mapSize, timers, []); }
function recompute() {
  let best = 0;
  apply(mapForEach, timers, [(t) => { if (best === 0 || t.due < best) best = t.due; }]);
  io[5] = best;
}
// setTimeout(f, 0) is due at once: it fires at the next drain point (in a tick, before
// the tick ends). An interval waits at least 1 ms between runs.
function delayOf(ms, repeat) {
  ms = +ms;
  const min = repeat ? 1 : 0;
  if (!(ms >= min) || ms > 2147483647) ms = min;
  return ms;
}
function add(fn, ms, args, repeat) {
  if (typeof fn !== 'function') throw new TypeErrorCtor('The "callback" argument must be a function');
  if (size() >= max) throw new RangeErrorCtor('Too many timers: at most ' + max + ' may be live at once');
  const delay = delayOf(ms, repeat);
  const t = { id: nextId++, fn, args, due: DateNow() + delay, interval: repeat ? delay : 0 };
  apply(mapSet, timers, [t.id, t]);
  if (io[5] === 0 || t.due < io[5]) io[5] = t.due;
  return t.id;
}
function restArgs(a) {
  const out = [];
  for (let i = 2; i < a.length; i++) apply(push, out, [a[i]]);
  return out;
}
function clear(id) {
  if (typeof id !== 'number') return;
  const t = apply(mapGet, timers, [id]);
  if (t === undefined) return;
  apply(mapDelete, timers, [id]);
  if (t.due <= io[5]) recompute();
}
const api = {
  setTimeout: function setTimeout(fn, ms) { return add(fn, ms, restArgs(arguments), false); },
  setInterval: function setInterval(fn, ms) { return add(fn, ms, restArgs(arguments), true); },
  clearTimeout: function clearTimeout(id) { clear(id); },
  clearInterval: function clearInterval(id) { clear(id); },
};
for (const k of Object.keys(api)) defineProperty(g, k, { value: api[k], writable: true, configurable: true, enumerable: false });

function byDue(a, b) { return a.due - b.due || a.id - b.id; }
core.fireTimers = function fireTimers() {
  const now = DateNow();
  const cutoff = nextId;
  const due = [];
  apply(mapForEach, timers, [(t) => { if (t.due <= now && t.id < cutoff) apply(push, due, [t]); }]);
  apply(sort, due, [byDue]);
  for (let i = 0; i < due.length; i++) {
    const t = due[i];
    if (apply(mapGet, timers, [t.id]) !== t) continue; // cleared by an earlier callback
    if (t.interval) t.due = DateNow() + t.interval;
    else apply(mapDelete, timers, [t.id]);
    try {
      apply(t.fn, undefined, t.args);
    } catch (e) {
      core.report(e);
    }
  }
  recompute();
};
lib.onAttach((h, config, buffer) => {
  io = buffer;
  io[5] = 0;
  if (config !== null && typeof config === 'object' && config.max >= 0) max = config.max;
});
