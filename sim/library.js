// isoworld:lib/world — binds a game's player API to the tick (sim/library.c).
//
// The game's scripts (sim_game.js_sources) ran before this and left the hidden factory
// __isoworld_world(host). It is taken here, at snapshot time, before any player code
// exists, and deleted; `host` (views in, intents out, the game's host functions) stays in
// this closure. Every tick: after Game is made and before the loop, world.begin() with the
// views of the rooms the player sees; after the loop and the console commands — also when
// the loop ran out of CPU (salvage) — world.end() gives the intents, handed to the host.
const factory = globalThis.__isoworld_world;
delete globalThis.__isoworld_world;
if (typeof globalThis._ === 'function') core.modules.lodash = globalThis._;
// Intrinsics taken before player code exists: a player who plants setters on
// Array.prototype or replaces Object.defineProperty cannot bend what the glue builds.
const defineProperty = Object.defineProperty;
const ArrayCtor = Array;
let host = null;
let world = null;

lib.onAttach((h) => {
  host = h;
  world = typeof factory === 'function' ? factory(h) : null;
});

core.gameHooks.push(function worldBegin(game) {
  if (world === null) return;
  const info = host.begin(); // [user id, username, world size, view count] or undefined
  if (info === undefined) return;
  const n = info[3];
  const views = new ArrayCtor(n);
  for (let i = 0; i < n; i++)
    defineProperty(views, i, { value: host.view(i), writable: true, enumerable: true, configurable: true });
  world.begin(game, game.time, { id: info[0], username: info[1] }, views, { worldSize: info[2] });
  lib.requestEnd();
});

function handOver() {
  if (world === null) return;
  const text = world.end();
  if (typeof text === 'string' && text.length > 0) host.intents(text);
}
lib.onRunEnd(handOver);
lib.onRunSalvage(handOver);
