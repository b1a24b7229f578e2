// isoworld:lib/game — Game (time, cpu) and the tick itself: evaluate the entry module
// on a new global, call its exported loop every tick.
//
// A new Game every tick, as on Screeps, built cheaply: methods live on prototypes, and
// the collections (creeps, rooms, ...) are made on first access and then become
// ordinary own properties. A game built on the framework replaces them with its world.
const defineProperty = Object.defineProperty;
const apply = Reflect.apply;
const promiseThen = Promise.prototype.then;
const g = globalThis;
let host = null; // { cpu(), heap(), halt() }
let io = null;
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

let mainExports = null;
const report = (e) => core.report(e);

// The body of a tick. Errors of the player's code are reported to the console here, so
// Memory is still saved (as on Screeps); the error's text is returned so the host knows
// the run failed.
function tick() {
  cpuLimit = io[1]; tickLimit = io[2]; bucket = io[3];
  const game = new GameObject(io[0], new Cpu(cpuLimit, tickLimit, bucket));
  g.Game = game;
  const hooks = core.gameHooks;
  try {
    for (let i = 0; i < hooks.length; i++) hooks[i](game);
    if (mainExports === null) {
      mainExports = core.require(core.entry);
      core.exports = mainExports;
    }
    const loop = mainExports !== null && typeof mainExports === 'object' || typeof mainExports === 'function'
      ? mainExports.loop : undefined;
    if (typeof loop === 'function') {
      const r = loop();
      if (r !== null && typeof r === 'object' && typeof r.then === 'function') apply(promiseThen, r, [undefined, report]);
    } else {
      // No exported loop: the main module itself runs every tick (legacy Screeps).
      core.forget(core.entry);
      mainExports = null;
    }
  } catch (e) {
    if (mainExports === null) core.forget(core.entry);
    const text = core.cleanStack(e);
    core.log(3, text);
    return text;
  }
  return undefined;
}
core.tickBody = tick;
lib.onAttach((h, config, buffer) => { host = h; io = buffer; });
