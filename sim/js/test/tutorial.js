// Runs the official Screeps tutorial's code (harvester, upgrader and builder roles, as
// the tutorial leaves them) through sim/js against the real C world, with Node standing
// in for a player's isolate. Driven by tests/test_world_js.c over stdin/stdout, one JSON
// message per line:
//   host -> here   {"t":"tick","time":N,"user":{"id","username"},"views":["<view>",...],
//                   "commands":["<console expression>",...]}
//   here -> host   {"t":"call","fn":"findPath"|"terrain","args":[...]}   (a host function)
//   host -> here   {"r": <string|number|null>}
//   here -> host   {"t":"done","intents":"<wire text>","log":[...],"errors":[...]}
// Usage: node tutorial.js [api]   ("api": API checks instead of the tutorial's code)
// lodash 3.10.1 comes from the npm registry (NODE_PATH points at it): the global `_`.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');

global._ = require('lodash');
require(path.join(__dirname, '..', 'constants.js'));
require(path.join(__dirname, '..', 'world.js'));

// ------------------------------------------------------------------ the line protocol
let pending = Buffer.alloc(0);
function readLine() {
  for (;;) {
    const nl = pending.indexOf(10);
    if (nl >= 0) {
      const line = pending.subarray(0, nl).toString('utf8');
      pending = pending.subarray(nl + 1);
      return line;
    }
    const chunk = Buffer.alloc(1 << 16);
    let n;
    try {
      n = fs.readSync(0, chunk, 0, chunk.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (n === 0) return null;
    pending = Buffer.concat([pending, chunk.subarray(0, n)]);
  }
}
function send(o) { fs.writeSync(1, JSON.stringify(o) + '\n'); }
function call(fn, args) {
  // undefined travels as null; the host side maps null back to undefined.
  send({ t: 'call', fn, args: args.map((a) => (a === undefined ? null : a)) });
  const r = JSON.parse(readLine()).r;
  return r === null ? undefined : r;
}

const host = {
  findPath: (...args) => call('findPath', args),
  terrain: (room) => call('terrain', [room]),
};
const world = global.__isoworld_world(host);
delete global.__isoworld_world;

// ------------------------------------------------------------------ the player's code
const modules = {
  'role.harvester': `
var roleHarvester = {

    /** @param {Creep} creep **/
    run: function(creep) {
	    if(creep.store.getFreeCapacity() > 0) {
            var sources = creep.room.find(FIND_SOURCES);
            if(creep.harvest(sources[0]) == ERR_NOT_IN_RANGE) {
                creep.moveTo(sources[0], {visualizePathStyle: {stroke: '#ffaa00'}});
            }
        }
        else {
            var targets = creep.room.find(FIND_STRUCTURES, {
                    filter: (structure) => {
                        return (structure.structureType == STRUCTURE_EXTENSION || structure.structureType == STRUCTURE_SPAWN) &&
                            structure.store.getFreeCapacity(RESOURCE_ENERGY) > 0;
                    }
            });
            if(targets.length > 0) {
                if(creep.transfer(targets[0], RESOURCE_ENERGY) == ERR_NOT_IN_RANGE) {
                    creep.moveTo(targets[0], {visualizePathStyle: {stroke: '#ffffff'}});
                }
            }
        }
	}
};

module.exports = roleHarvester;`,
  'role.upgrader': `
var roleUpgrader = {

    /** @param {Creep} creep **/
    run: function(creep) {

        if(creep.memory.upgrading && creep.store[RESOURCE_ENERGY] == 0) {
            creep.memory.upgrading = false;
            creep.say('🔄 harvest');
	    }
	    if(!creep.memory.upgrading && creep.store.getFreeCapacity() == 0) {
	        creep.memory.upgrading = true;
	        creep.say('⚡ upgrade');
	    }

	    if(creep.memory.upgrading) {
            if(creep.upgradeController(creep.room.controller) == ERR_NOT_IN_RANGE) {
                creep.moveTo(creep.room.controller, {visualizePathStyle: {stroke: '#ffffff'}});
            }
        }
        else {
            var sources = creep.room.find(FIND_SOURCES);
            if(creep.harvest(sources[0]) == ERR_NOT_IN_RANGE) {
                creep.moveTo(sources[0], {visualizePathStyle: {stroke: '#ffaa00'}});
            }
        }
	}
};

module.exports = roleUpgrader;`,
  'role.builder': `
var roleBuilder = {

    /** @param {Creep} creep **/
    run: function(creep) {

	    if(creep.memory.building && creep.store[RESOURCE_ENERGY] == 0) {
            creep.memory.building = false;
            creep.say('🔄 harvest');
	    }
	    if(!creep.memory.building && creep.store.getFreeCapacity() == 0) {
	        creep.memory.building = true;
	        creep.say('🚧 build');
	    }

	    if(creep.memory.building) {
	        var targets = creep.room.find(FIND_CONSTRUCTION_SITES);
            if(targets.length) {
                if(creep.build(targets[0]) == ERR_NOT_IN_RANGE) {
                    creep.moveTo(targets[0], {visualizePathStyle: {stroke: '#ffffff'}});
                }
            }
	    }
	    else {
	        var sources = creep.room.find(FIND_SOURCES);
            if(creep.harvest(sources[0]) == ERR_NOT_IN_RANGE) {
                creep.moveTo(sources[0], {visualizePathStyle: {stroke: '#ffaa00'}});
            }
	    }
	}
};

module.exports = roleBuilder;`,
  main: `
var roleHarvester = require('role.harvester');
var roleUpgrader = require('role.upgrader');
var roleBuilder = require('role.builder');

module.exports.loop = function () {

    for(var name in Memory.creeps) {
        if(!Game.creeps[name]) {
            delete Memory.creeps[name];
            console.log('Clearing non-existing creep memory:', name);
        }
    }

    var harvesters = _.filter(Game.creeps, (creep) => creep.memory.role == 'harvester');
    console.log('Harvesters: ' + harvesters.length);

    if(harvesters.length < 2) {
        var newName = 'Harvester' + Game.time;
        console.log('Spawning new harvester: ' + newName);
        Game.spawns['Spawn1'].spawnCreep([WORK,CARRY,MOVE], newName,
            {memory: {role: 'harvester'}});
    }

    if(Game.spawns['Spawn1'].spawning) {
        var spawningCreep = Game.creeps[Game.spawns['Spawn1'].spawning.name];
        Game.spawns['Spawn1'].room.visual.text(
            '🛠️' + spawningCreep.memory.role,
            Game.spawns['Spawn1'].pos.x + 1,
            Game.spawns['Spawn1'].pos.y,
            {align: 'left', opacity: 0.8});
    }

    for(var name in Game.creeps) {
        var creep = Game.creeps[name];
        if(creep.memory.role == 'harvester') {
            roleHarvester.run(creep);
        }
        if(creep.memory.role == 'upgrader') {
            roleUpgrader.run(creep);
        }
        if(creep.memory.role == 'builder') {
            roleBuilder.run(creep);
        }
    }
}`,
};

// Scenario "api" (argv[2]): checks of the API's answers against what the world holds,
// run every tick; a failed check throws, which the host reports.
if (process.argv[2] === 'api') {
  modules.main = fs.readFileSync(path.join(__dirname, 'api_main.js'), 'utf8');
}

// A small stand-in for the prelude: require over the modules, console, Memory, Game.
let log = [];
global.console = { log: (...a) => log.push(a.map(String).join(' ')) };
const cache = new Map();
function requireModule(name) {
  if (cache.has(name)) return cache.get(name).exports;
  const src = modules[name];
  if (src === undefined) throw new Error(`Unknown module '${name}'`);
  const m = { exports: {} };
  cache.set(name, m);
  vm.runInThisContext(`(function (module, exports, require) {${src}\n})`, { filename: name })(m, m.exports, requireModule);
  return m.exports;
}
let rawMemory = '{}';

for (;;) {
  const line = readLine();
  if (line === null) break;
  const msg = JSON.parse(line);
  if (msg.t !== 'tick') continue;
  log = [];
  const errors = [];
  global.Memory = JSON.parse(rawMemory);
  global.Game = { time: msg.time, cpu: { limit: 100, tickLimit: 500, bucket: 10000, getUsed: () => 0 } };
  world.begin(global.Game, msg.time, msg.user, msg.views, { worldSize: 1 });
  try {
    requireModule('main').loop();
  } catch (e) {
    errors.push(String(e && e.stack || e));
  }
  for (const cmd of msg.commands || []) {
    try {
      log.push(String(vm.runInThisContext(cmd)));
    } catch (e) {
      errors.push(String(e && e.stack || e));
    }
  }
  rawMemory = JSON.stringify(global.Memory);
  send({ t: 'done', intents: world.end(), log, errors });
}
