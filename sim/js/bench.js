// The player-side cost of the view format, measured in Node (V8, as in the isolates):
// JSON.parse of a room's view, building the Game objects from it, and a typical first
// use (Game.creeps, room.find). Usage:
//   ISOWORLD_DUMP_VIEW=/tmp/view.json build/bin/test_world_bench   # a busy room's view
//   node sim/js/bench.js /tmp/view.json
'use strict';
const fs = require('fs');
const path = require('path');
require(path.join(__dirname, 'constants.js'));
require(path.join(__dirname, 'world.js'));

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench.js <view.json>');
  process.exit(2);
}
const view = fs.readFileSync(file, 'utf8');
const world = global.__isoworld_world({ findPath: () => '0,0,0,', terrain: () => '0'.repeat(2500) });
global.Memory = { creeps: {} };

function time(label, n, fn) {
  for (let i = 0; i < Math.min(200, n); i++) fn(i); // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / n;
  console.log(`${label}: ${us.toFixed(1)} us`);
  return us;
}

const N = 2000;
const objects = JSON.parse(view).objects.length;
console.log(`view: ${view.length} bytes, ${objects} objects`);
time('JSON.parse of the view', N, () => JSON.parse(view));
time('begin() (parse, rooms)', N, (i) => {
  world.begin({ time: 1000 + i }, 1000 + i, { id: '1', username: 'alice' }, [view]);
  world.end();
});
time('begin() + Game.creeps (all objects built)', N, (i) => {
  const game = { time: 1000 + i };
  world.begin(game, 1000 + i, { id: '1', username: 'alice' }, [view]);
  void game.creeps;
  world.end();
});
time('... + every creep: room.find(FIND_SOURCES), store.getFreeCapacity(), memory', N, (i) => {
  const game = { time: 1000 + i };
  world.begin(game, 1000 + i, { id: '1', username: 'alice' }, [view]);
  global.Game = game;
  for (const name in game.creeps) {
    const c = game.creeps[name];
    c.room.find(FIND_SOURCES);
    c.store.getFreeCapacity();
    void c.memory.role;
  }
  world.end();
});
time('... + every creep says something (intents serialized)', N, (i) => {
  const game = { time: 1000 + i };
  world.begin(game, 1000 + i, { id: '1', username: 'alice' }, [view]);
  for (const name in game.creeps) game.creeps[name].say('hi');
  world.end();
});
