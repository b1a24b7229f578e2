// API checks against what the world holds, run every tick as a player's main module; a
// failed check throws, which the host reports. Run by tests/test_world_js.c (through
// tutorial.js, with Node standing in for the isolate) and tests/test_world_sandbox.c (in a
// real isolate).
function check(cond, what) { if (!cond) throw new Error('check failed: ' + what); }
module.exports.loop = function () {
  const spawn = Game.spawns.Spawn1;
  check(spawn instanceof StructureSpawn && spawn instanceof OwnedStructure && spawn instanceof Structure, 'classes');
  check(spawn.my && spawn.owner.username === 'alice', 'ownership');
  const room = spawn.room;
  check(room === Game.rooms[room.name] && room.controller && room.controller.my, 'room and controller');
  check(Game.getObjectById(spawn.id) === spawn && Game.getObjectById('nope') === null, 'getObjectById');
  check(room.lookForAt(LOOK_STRUCTURES, spawn.pos).indexOf(spawn) >= 0, 'lookForAt');
  const sources = room.find(FIND_SOURCES);
  check(sources.length >= 1 && sources[0] instanceof Source, 'find sources');
  const byRange = spawn.pos.findClosestByRange(FIND_SOURCES), byPath = spawn.pos.findClosestByPath(FIND_SOURCES);
  check(byRange instanceof Source && byPath instanceof Source, 'findClosestBy*');
  const ret = PathFinder.search(spawn.pos, { pos: byPath.pos, range: 1 });
  check(!ret.incomplete && ret.path.length > 0 && ret.path[ret.path.length - 1].getRangeTo(byPath) === 1, 'PathFinder.search');
  const path = room.findPath(spawn.pos, byPath.pos);
  check(path.length > 0 && path[path.length - 1].x === byPath.pos.x, 'findPath ends on the target');
  check(Room.serializePath(Room.deserializePath(Room.serializePath(path))) === Room.serializePath(path), 'serializePath');
  const m = new PathFinder.CostMatrix();
  m.set(1, 2, 255);
  check(PathFinder.CostMatrix.deserialize(m.serialize()).get(1, 2) === 255, 'CostMatrix');
  check(room.getTerrain().get(0, 0) === TERRAIN_MASK_WALL, 'terrain');
  check(spawn.pos.getDirectionTo(spawn.pos.x + 1, spawn.pos.y) === RIGHT, 'getDirectionTo');
  check(typeof Game.map.describeExits(room.name) === 'object', 'describeExits');
  if (Game.time === 2) {
    check(spawn.spawnCreep([WORK, CARRY, MOVE], 'x', { dryRun: true }) === OK, 'dryRun');
    check(spawn.spawnCreep([WORK, WORK, WORK, MOVE], 'big') === ERR_NOT_ENOUGH_ENERGY, 'energy');
    check(spawn.spawnCreep(['wings'], 'w') === ERR_INVALID_ARGS, 'body');
    check(spawn.spawnCreep([WORK, CARRY, MOVE], 'Worker', { memory: { role: 'w' } }) === OK, 'spawn');
    check(Game.creeps.Worker && Game.creeps.Worker.spawning && Memory.creeps.Worker.role === 'w', 'spawning creep');
    check(spawn.spawnCreep([MOVE], 'Worker') === ERR_NAME_EXISTS, 'name exists');
    check(room.createConstructionSite(spawn.pos, STRUCTURE_EXTENSION) === ERR_RCL_NOT_ENOUGH, 'rcl');
    check(room.createConstructionSite(0, 0, STRUCTURE_ROAD) === ERR_INVALID_TARGET, 'border');
  }
  if (Game.time === 3) check(spawn.spawnCreep([MOVE], 'other') === ERR_BUSY, 'busy');
  const w = Game.creeps.Worker;
  if (w && !w.spawning) {
    check(w.memory.role === 'w' && w.getActiveBodyparts(WORK) === 1 && w.body.length === 3, 'creep');
    check(w.store.getFreeCapacity() === 50 - w.store[RESOURCE_ENERGY], 'store');
    check(w.transfer(spawn, 'unobtainium') === ERR_INVALID_ARGS, 'resource type');
    check(w.upgradeController(spawn) === ERR_INVALID_TARGET || w.store[RESOURCE_ENERGY] === 0, 'upgrade target');
    const src = w.pos.findClosestByPath(FIND_SOURCES_ACTIVE);
    if (w.store.getFreeCapacity() > 0) { if (w.harvest(src) === ERR_NOT_IN_RANGE) w.moveTo(src); }
    else if (w.upgradeController(room.controller) === ERR_NOT_IN_RANGE) w.moveTo(room.controller);
    w.say('\u{1F600} ok', true);
  }
};
