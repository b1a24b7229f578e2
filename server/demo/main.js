// A starter bot in the style of the Screeps tutorial: harvesters fill the spawn and the
// extensions, upgraders feed the controller, builders build what the room plans.
var roleHarvester = require('role.harvester');
var roleUpgrader = require('role.upgrader');
var roleBuilder = require('role.builder');

var WANT = { harvester: 2, upgrader: 2, builder: 1 };

module.exports.loop = function () {
    for (var name in Memory.creeps) {
        if (!Game.creeps[name]) {
            delete Memory.creeps[name];
        }
    }

    var spawn = Game.spawns['Spawn1'];
    if (spawn && !spawn.spawning) {
        for (var role in WANT) {
            var have = _.filter(Game.creeps, (creep) => creep.memory.role == role);
            if (have.length < WANT[role]) {
                var newName = role[0].toUpperCase() + role.slice(1) + Game.time;
                if (spawn.spawnCreep([WORK, CARRY, MOVE], newName, { memory: { role: role } }) == OK) {
                    console.log('Spawning new ' + role + ': ' + newName);
                }
                break;
            }
        }
    }

    for (var name in Game.creeps) {
        var creep = Game.creeps[name];
        if (creep.memory.role == 'harvester') {
            roleHarvester.run(creep);
        }
        if (creep.memory.role == 'upgrader') {
            roleUpgrader.run(creep);
        }
        if (creep.memory.role == 'builder') {
            roleBuilder.run(creep);
        }
    }

    if (Game.time % 20 == 0 && spawn) {
        var c = spawn.room.controller;
        console.log('creeps: ' + _.size(Game.creeps) + ', energy ' + spawn.room.energyAvailable + '/' +
                    spawn.room.energyCapacityAvailable + ', controller level ' + c.level + ' (' + c.progress +
                    '/' + c.progressTotal + ')');
    }
};
