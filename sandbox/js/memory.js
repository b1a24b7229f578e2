// isoworld:lib/memory — Memory (parsed lazily from RawMemory, serialised at the end of a
// tick only when touched), RawMemory and its segments, as on Screeps.
//
// RawMemory is fetched from the host on first use in a tick: a player who never touches
// Memory costs no copy of it, and no end-of-tick call (io[4] stays 0). The per-tick
// state resets lazily, on first use in a tick (io[6] changed), so a tick costs nothing
// here either.
const defineProperty = Object.defineProperty;
const apply = Reflect.apply;
const push = Array.prototype.push;
const JSONparse = JSON.parse;
const JSONstringify = JSON.stringify;
const MapCtor = Map;
const mapGet = Map.prototype.get;
const mapSet = Map.prototype.set;
const ErrorCtor = Error;
const ArrayIsArray = Array.isArray;
const ObjectKeys = Object.keys;
const str = core.str;
const g = globalThis;
let host = null; // { memory(), segments(), out(memory, segments, active) }
let io = null;

let seq = -1; // io[6] of the tick the state below belongs to
let rawMemory = '';
let rawFetched = false;
let rawSet = false;
let memParsed = false;
let memObj;
let segs = null;       // this tick's RawMemory.segments, made on first access
let segOrig = null;    // id -> string as given at tick start
let activeReq = null;  // setActiveSegments(ids) of this tick
function fresh() {
  if (seq === io[6]) return;
  seq = io[6];
  rawMemory = ''; rawFetched = false;
  rawSet = false; memParsed = false; memObj = undefined;
  segs = null; segOrig = null; activeReq = null;
}
function raw() {
  fresh();
  if (!rawFetched) {
    rawFetched = true;
    const m = host.memory();
    rawMemory = typeof m === 'string' ? m : '';
  }
  return rawMemory;
}
function parseMemory() {
  memParsed = true;
  io[4] = 1;
  try {
    const r = raw();
    memObj = r.length ? JSONparse(r) : {};
    if (memObj === null || typeof memObj !== 'object') memObj = {};
  } catch (e) {
    core.log(3, 'Memory could not be parsed, starting from {}: ' + str(e && e.message));
    memObj = {};
  }
  return memObj;
}
defineProperty(g, 'Memory', {
  configurable: true,
  enumerable: false,
  get() { fresh(); return memParsed ? memObj : parseMemory(); },
  set(v) { fresh(); memParsed = true; io[4] = 1; memObj = v; },
});
// Segments: ids 0..99; those made active last tick are readable now; any may be
// written (at most 10 a tick, 100 KB each) and are saved at tick end if changed.
function segments() {
  fresh();
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
    fresh();
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
    fresh();
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
    if (!(id === (id | 0) && id >= 0 && id <= 99)) { core.log(3, 'RawMemory.segments: "' + keys[i] + '" is not a valid segment ID'); continue; }
    if (v === apply(mapGet, segOrig, [id])) continue;
    if (typeof v !== 'string') { core.log(3, 'RawMemory.segments[' + id + ']: a segment must be a string'); continue; }
    if (v.length > 100 * 1024) { core.log(3, 'RawMemory.segments[' + id + '] is over 100 KB (' + v.length + ' characters): not saved'); continue; }
    if (++n > 10) { core.log(3, 'RawMemory.segments: only 10 segments can be saved per tick; segment ' + id + ' not saved'); continue; }
    apply(push, out, [id, v]);
  }
  return out;
}
defineProperty(g, 'RawMemory', { value: RawMemory, writable: true, configurable: true, enumerable: false });

lib.onAttach((h, config, buffer) => { host = h; io = buffer; });
// The end of a tick in which Memory or segments were touched: hands the host the new
// RawMemory (or undefined if unchanged), the segments written, and the ids asked for
// next tick. A Memory that cannot be serialised (a cycle, a BigInt, a throwing toJSON)
// is the player's error: said in the console, without our frames, and the previous
// Memory is kept, as for a Memory over the size limit.
lib.onRunEnd(() => {
  fresh();
  let mem;
  if (memParsed) {
    try {
      const s = JSONstringify(memObj);
      mem = typeof s === 'string' ? s : '{}';
    } catch (e) {
      core.log(3, "Memory could not be serialised, this tick's changes are not saved: " + core.cleanStack(e));
    }
  } else if (rawSet) {
    mem = rawMemory;
  }
  host.out(mem, segmentsOut(), activeReq === null ? undefined : activeReq);
});
