// isoworld default world: the player API (Screeps' Game, Room, RoomPosition, Creep,
// structures, PathFinder, ...) over the per-room views the host builds, recording intents
// in the wire format the host validates (sim/sim.h, "The intent wire format").
//
// Evaluated once in the startup snapshot after constants.js (and lodash 3.10.1 as the
// global `_`, from the npm package, for player code; this file does not use it). It
// defines the classes as globals — players extend their prototypes, as on Screeps, and
// that survives between ticks in the persistent global — and leaves one hidden factory,
// globalThis.__isoworld_world(host), which the prelude calls once per new global with the
// bound host functions and then deletes. See sim/js/README.md for the contract.
//
// Return codes are computed here, synchronously, from the view of the tick (as Screeps'
// runtime does); the host validates everything again and is the only authority.
'use strict';
(function (g) {
  const C = g; // constants.js installed the constants as globals
  // Intrinsics the API relies on, taken before player code can replace them (a player who
  // replaces JSON.parse breaks only their own code, never the API's reading of the view).
  const JSONparse = JSON.parse, JSONstringify = JSON.stringify;
  const defineOwn = Object.defineProperty;

  // ------------------------------------------------------------------ tick state
  const REC = Symbol('record'); // an object's view record, hidden from for-in and JSON
  const S = {
    host: null,
    game: null,
    time: 0,
    me: '',
    myName: '',
    views: [],
    parsed: false,
    rooms: Object.create(null),
    byId: new Map(),
    creeps: {},
    spawns: {},
    structures: {},
    sites: {},
    users: Object.create(null),
    owners: Object.create(null),
    intents: [],
    createdNames: [],
    createdSpawnNames: [],
    createdSites: 0,
    worldSize: 0,
    terrain: new Map(), // room name -> 2500-digit string; static, kept for the global's life
  };
  const MAX_INTENTS = 20000;

  function intent(a) {
    // An own property, whatever setters player code planted on Array.prototype.
    const n = S.intents.length;
    if (n < MAX_INTENTS) defineOwn(S.intents, n, { value: a, writable: true, enumerable: true, configurable: true });
  }

  const isObject = (v) => v !== null && (typeof v === 'object' || typeof v === 'function');
  const DX = [0, 0, 1, 1, 1, 0, -1, -1, -1];
  const DY = [0, -1, -1, 0, 1, 1, 1, 0, -1];

  function utf8Length(s) {
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) { n += 4; i++; }
      else n += 3;
    }
    return n;
  }

  // ------------------------------------------------------------------ room names
  function roomXY(name) {
    const m = /^([WE])(\d+)([NS])(\d+)$/.exec(name);
    if (!m) return null;
    const x = m[1] === 'W' ? -Number(m[2]) - 1 : Number(m[2]);
    const y = m[3] === 'N' ? -Number(m[4]) - 1 : Number(m[4]);
    return [x, y];
  }
  function roomName(x, y) {
    return (x < 0 ? 'W' + (-x - 1) : 'E' + x) + (y < 0 ? 'N' + (-y - 1) : 'S' + y);
  }

  // ------------------------------------------------------------------ terrain
  function terrainOf(name) {
    let t = S.terrain.get(name);
    if (t === undefined) {
      const r = S.host && typeof S.host.terrain === 'function' ? S.host.terrain(name) : undefined;
      t = typeof r === 'string' && r.length === 2500 ? r : null;
      if (t !== null) S.terrain.set(name, t);
    }
    return t;
  }

  function Terrain(name) {
    if (!(this instanceof Terrain)) throw new Error('Room.Terrain is a constructor');
    const t = terrainOf(String(name));
    if (t === null) throw new Error(`Could not access room ${name}`);
    this.roomName = String(name);
    this[REC] = t;
  }
  Terrain.prototype.get = function (x, y) {
    if (!(x >= 0 && x <= 49 && y >= 0 && y <= 49)) return C.TERRAIN_MASK_WALL;
    return this[REC].charCodeAt((y | 0) * 50 + (x | 0)) - 48;
  };
  Terrain.prototype.getRawBuffer = function (dest) {
    const out = dest instanceof Uint8Array ? dest : new Uint8Array(2500);
    for (let i = 0; i < 2500; i++) out[i] = this[REC].charCodeAt(i) - 48;
    return out;
  };

  // ------------------------------------------------------------------ RoomPosition
  function RoomPosition(x, y, roomName) {
    x = +x;
    y = +y;
    if (!(x >= 0 && x <= 49 && y >= 0 && y <= 49) || x !== Math.floor(x) || y !== Math.floor(y) || !roomName)
      throw new Error('Invalid arguments in RoomPosition constructor');
    this.x = x;
    this.y = y;
    this.roomName = String(roomName);
  }
  // (x, y) or (target): a target is a RoomPosition or anything with .pos.
  function xyArgs(a, b) {
    if (typeof a === 'number' || (typeof a === 'string' && a !== '' && !isNaN(+a))) return [+a, +b, undefined];
    if (isObject(a)) {
      const p = a.pos instanceof RoomPosition ? a.pos : a;
      if (p && typeof p.x === 'number' && typeof p.y === 'number') return [p.x, p.y, p.roomName];
    }
    return [undefined, undefined, undefined];
  }
  function posOf(t) {
    if (t instanceof RoomPosition) return t;
    if (isObject(t) && t.pos instanceof RoomPosition) return t.pos;
    if (isObject(t) && typeof t.x === 'number' && typeof t.y === 'number' && t.roomName) return new RoomPosition(t.x, t.y, t.roomName);
    return null;
  }
  function direction(dx, dy) {
    const adx = Math.abs(dx), ady = Math.abs(dy);
    if (adx > ady * 2) return dx > 0 ? C.RIGHT : C.LEFT;
    if (ady > adx * 2) return dy > 0 ? C.BOTTOM : C.TOP;
    if (dx > 0 && dy > 0) return C.BOTTOM_RIGHT;
    if (dx > 0 && dy < 0) return C.TOP_RIGHT;
    if (dx < 0 && dy > 0) return C.BOTTOM_LEFT;
    if (dx < 0 && dy < 0) return C.TOP_LEFT;
    return undefined;
  }
  const RP = RoomPosition.prototype;
  RP.toString = function () { return `[room ${this.roomName} pos ${this.x},${this.y}]`; };
  RP.isEqualTo = function (a, b) {
    const [x, y, r] = xyArgs(a, b);
    return x === this.x && y === this.y && (r === undefined || r === this.roomName);
  };
  RP.getRangeTo = function (a, b) {
    const [x, y, r] = xyArgs(a, b);
    if (x === undefined || (r !== undefined && r !== this.roomName)) return Infinity;
    return Math.max(Math.abs(x - this.x), Math.abs(y - this.y));
  };
  RP.inRangeTo = function (a, b, range) {
    if (isObject(a)) { range = b; }
    return this.getRangeTo(a, isObject(a) ? undefined : b) <= range;
  };
  RP.isNearTo = function (a, b) { return this.getRangeTo(a, b) <= 1; };
  RP.getDirectionTo = function (a, b) {
    const [x, y, r] = xyArgs(a, b);
    if (x === undefined) return undefined;
    if (r !== undefined && r !== this.roomName) {
      const from = roomXY(this.roomName), to = roomXY(r);
      if (!from || !to) return undefined;
      return direction((to[0] - from[0]) * 50 + x - this.x, (to[1] - from[1]) * 50 + y - this.y);
    }
    return direction(x - this.x, y - this.y);
  };
  function listFor(pos, type, opts) {
    if (Array.isArray(type)) return filterBy(type, opts && opts.filter);
    const room = S.rooms[pos.roomName];
    return room ? room.find(type, opts) : [];
  }
  RP.findClosestByRange = function (type, opts) {
    let best = null, bestRange = Infinity;
    for (const o of listFor(this, type, opts)) {
      const p = posOf(o);
      if (!p) continue;
      const r = this.getRangeTo(p);
      if (r < bestRange) { best = o; bestRange = r; }
    }
    return best;
  };
  RP.findInRange = function (type, range, opts) {
    return listFor(this, type, opts).filter((o) => { const p = posOf(o); return p && this.getRangeTo(p) <= range; });
  };
  RP.findClosestByPath = function (type, opts) {
    opts = opts || {};
    let objects = listFor(this, type, opts);
    if (!objects.length) return null;
    const here = objects.find((o) => { const p = posOf(o); return p && this.isEqualTo(p); });
    if (here) return here;
    objects = objects.filter((o) => { const p = posOf(o); return p && p.roomName === this.roomName; });
    if (!objects.length) return null;
    if (objects.length > 256) {
      objects = objects.slice().sort((a, b) => this.getRangeTo(posOf(a)) - this.getRangeTo(posOf(b))).slice(0, 256);
    }
    const goals = objects.map((o) => { const p = posOf(o); return `${p.x},${p.y},1`; }).join(';');
    const res = search(this.roomName, this.x, this.y, goals, pathFlags(opts), opts.maxOps, opts.ignoreRoads ? 0 : 2,
      opts.ignoreRoads ? 0 : 10, costsFor(this.roomName, opts));
    if (!res) return null;
    const last = res.path.length ? res.path[res.path.length - 1] : this;
    let result = null;
    for (const o of objects) if (last.isNearTo(posOf(o))) result = o;
    return result;
  };
  RP.findPathTo = function (a, b, opts) {
    const [x, y, r] = xyArgs(a, b);
    if (isObject(a)) opts = b;
    if (x === undefined) return [];
    const room = S.rooms[this.roomName];
    if (!room) return opts && opts.serialize ? '' : [];
    return room.findPath(this, new RoomPosition(x, y, r || this.roomName), opts);
  };
  RP.lookFor = function (type) {
    const room = S.rooms[this.roomName];
    if (type === C.LOOK_TERRAIN) return [terrainName(this.roomName, this.x, this.y)];
    return room ? room.lookForAt(type, this.x, this.y) : [];
  };
  RP.look = function () {
    const room = S.rooms[this.roomName];
    return room ? room.lookAt(this.x, this.y) : [{ type: 'terrain', terrain: terrainName(this.roomName, this.x, this.y) }];
  };
  RP.createConstructionSite = function (structureType, name) {
    const room = S.rooms[this.roomName];
    if (!room) return C.ERR_INVALID_TARGET;
    return room.createConstructionSite(this.x, this.y, structureType, name);
  };
  RP.createFlag = function () { return C.ERR_INVALID_ARGS; };

  function terrainName(room, x, y) {
    const t = terrainOf(room);
    const v = t === null ? 1 : t.charCodeAt(y * 50 + x) - 48;
    return v & 1 ? 'wall' : v & 2 ? 'swamp' : 'plain';
  }

  // ------------------------------------------------------------------ paths
  function serializePath(path) {
    if (!Array.isArray(path)) throw new Error('path is not an array');
    if (!path.length) return '';
    if (path[0].x < 0 || path[0].y < 0) throw new Error('path coordinates cannot be negative');
    let s = (path[0].x > 9 ? '' : '0') + path[0].x + (path[0].y > 9 ? '' : '0') + path[0].y;
    for (const p of path) s += p.direction;
    return s;
  }
  function deserializePath(s) {
    if (typeof s !== 'string') throw new Error('`path` is not a string');
    const out = [];
    if (!s.length) return out;
    let x = parseInt(s.substring(0, 2), 10), y = parseInt(s.substring(2, 4), 10);
    if (isNaN(x) || isNaN(y)) throw new Error('`path` is not a valid serialized path string');
    for (let i = 4; i < s.length; i++) {
      const d = parseInt(s.charAt(i), 10);
      if (!(d >= 1 && d <= 8)) throw new Error('`path` is not a valid serialized path string');
      if (i > 4) { x += DX[d]; y += DY[d]; }
      out.push({ x, y, dx: DX[d], dy: DY[d], direction: d });
    }
    return out;
  }

  function pathFlags(opts) {
    return (opts.ignoreCreeps ? 1 : 0) | (opts.ignoreRoads ? 2 : 0) | (opts.ignoreDestructibleStructures ? 4 : 0);
  }

  // A CostMatrix for the host: 2500 code points 0..255 (undefined when none).
  function costsFor(room, opts) {
    if (typeof opts.costCallback !== 'function') return undefined;
    let m = new CostMatrix();
    const r = opts.costCallback(room, m);
    if (r instanceof CostMatrix) m = r;
    return m._forHost();
  }

  // The host's path search: {path: [RoomPosition], ops, cost, incomplete} or null.
  function search(room, x, y, goals, flags, maxOps, plain, swamp, costs) {
    if (!S.host || typeof S.host.findPath !== 'function') return null;
    const r = S.host.findPath(room, x, y, goals, flags, maxOps > 0 ? Math.min(Math.floor(maxOps), 100000) : 0,
      plain || 0, swamp || 0, costs);
    if (typeof r !== 'string') return null;
    const a = r.indexOf(','), b = r.indexOf(',', a + 1), c = r.indexOf(',', b + 1);
    const steps = deserializePath(r.substring(c + 1));
    return {
      path: steps.map((p) => new RoomPosition(p.x, p.y, room)),
      steps,
      incomplete: r.charAt(0) === '1',
      ops: +r.substring(a + 1, b),
      cost: +r.substring(b + 1, c),
    };
  }

  // Goals on the exit of `from` toward room `to` (this world finds paths within a room;
  // a creep bound elsewhere walks to the exit facing its target room).
  function exitGoals(from, to) {
    const a = roomXY(from), b = roomXY(to), t = terrainOf(from);
    if (!a || !b || t === null) return '';
    const dx = b[0] - a[0], dy = b[1] - a[1];
    let side;
    if (Math.abs(dx) >= Math.abs(dy)) side = dx > 0 ? C.FIND_EXIT_RIGHT : C.FIND_EXIT_LEFT;
    else side = dy > 0 ? C.FIND_EXIT_BOTTOM : C.FIND_EXIT_TOP;
    const goals = [];
    for (const p of exitTiles(t, side)) goals.push(`${p[0]},${p[1]},0`);
    return goals.join(';');
  }
  function exitTiles(t, side) {
    const out = [];
    for (let k = 0; k < 50; k++) {
      let x, y;
      if (side === C.FIND_EXIT_TOP) { x = k; y = 0; } else if (side === C.FIND_EXIT_BOTTOM) { x = k; y = 49; }
      else if (side === C.FIND_EXIT_LEFT) { x = 0; y = k; } else { x = 49; y = k; }
      if (!(t.charCodeAt(y * 50 + x) - 48 & 1)) out.push([x, y]);
    }
    return out;
  }

  // ------------------------------------------------------------------ PathFinder
  function CostMatrix() { this._bits = new Uint8Array(2500); }
  CostMatrix.prototype.set = function (x, y, v) { this._bits[x * 50 + y] = v; };
  CostMatrix.prototype.get = function (x, y) { return this._bits[x * 50 + y]; };
  CostMatrix.prototype.clone = function () { const m = new CostMatrix(); m._bits.set(this._bits); return m; };
  CostMatrix.prototype.serialize = function () { return Array.from(new Uint32Array(this._bits.slice().buffer)); };
  CostMatrix.deserialize = function (data) {
    const m = new CostMatrix();
    m._bits = new Uint8Array(new Uint32Array(data).buffer);
    return m;
  };
  // Screeps stores x*50+y; the host reads y*50+x.
  CostMatrix.prototype._forHost = function () {
    let s = '';
    for (let y = 0; y < 50; y++) {
      const row = new Array(50);
      for (let x = 0; x < 50; x++) row[x] = this._bits[x * 50 + y];
      s += String.fromCharCode.apply(null, row);
    }
    return s;
  };

  const PathFinder = {
    CostMatrix,
    use() {},
    search(origin, goal, opts) {
      opts = opts || {};
      const from = posOf(origin);
      const none = { path: [], ops: 0, cost: 0, incomplete: true };
      if (!from) return none;
      const list = (Array.isArray(goal) ? goal : [goal]).map((x) => (x instanceof RoomPosition ? { pos: x, range: 0 } : x && { pos: posOf(x.pos || x), range: x.range || 0 }));
      const goals = list.filter((x) => x && x.pos && x.pos.roomName === from.roomName).slice(0, 256)
        .map((x) => `${x.pos.x},${x.pos.y},${Math.max(0, Math.min(50, x.range | 0))}`).join(';');
      if (!goals || opts.flee) return none;
      let costs;
      if (typeof opts.roomCallback === 'function') {
        const m = opts.roomCallback(from.roomName);
        if (m === false) return none;
        if (m instanceof CostMatrix) costs = m._forHost();
      }
      const res = search(from.roomName, from.x, from.y, goals, 8, opts.maxOps, opts.plainCost || 1, opts.swampCost || 5, costs);
      return res ? { path: res.path, ops: res.ops, cost: res.cost, incomplete: res.incomplete } : none;
    },
  };

  // ------------------------------------------------------------------ filters
  function matches(obj, pattern) {
    for (const k of Object.keys(pattern)) {
      const p = pattern[k], v = obj == null ? undefined : obj[k];
      if (isObject(p) && !Array.isArray(p)) { if (!isObject(v) || !matches(v, p)) return false; }
      else if (v !== p) return false;
    }
    return true;
  }
  function filterBy(list, f) {
    if (f === undefined || f === null) return list;
    if (typeof f === 'function') return list.filter(f);
    if (isObject(f)) return list.filter((o) => matches(o, f));
    if (typeof f === 'string') return list.filter((o) => !!(o && o[f]));
    return list;
  }

  // ------------------------------------------------------------------ objects
  function RoomObject(x, y, roomName) {
    this.pos = new RoomPosition(x, y, roomName);
    this.room = S.rooms[roomName];
    this.effects = [];
  }
  // Objects of the view are made by internal constructors that share the public
  // classes' prototypes (instanceof holds), assigning every field in one place so V8
  // gives each kind one stable shape.
  const NO_EFFECTS = Object.freeze([]);
  function Pos(x, y, roomName) {
    this.x = x;
    this.y = y;
    this.roomName = roomName;
  }
  Pos.prototype = RoomPosition.prototype;
  // One owner object per player per tick, shared by that player's objects.
  function owner(rec) {
    if (!rec.user) return undefined;
    let o = S.owners[rec.user];
    if (o === undefined) o = S.owners[rec.user] = { username: S.users[rec.user] || '' };
    return o;
  }

  // Store: amounts as own properties (only non-zero ones, as Screeps), 0 for any other
  // known resource, and the capacity methods.
  const CAPS = Symbol('caps');
  function Store(rec) {
    const st = rec.store;
    if (st) for (const k in st) if (st[k]) this[k] = st[k];
    this[CAPS] = rec;
  }
  for (const r of C.RESOURCES_ALL) Object.defineProperty(Store.prototype, r, { value: 0, writable: true, enumerable: false, configurable: true });
  function capacityFor(rec, r) {
    let reserved = 0;
    if (rec.storeCapacityResource) for (const k in rec.storeCapacityResource) reserved += rec.storeCapacityResource[k];
    return (rec.storeCapacityResource && rec.storeCapacityResource[r]) || Math.max(0, (rec.storeCapacity || 0) - reserved);
  }
  function sumStore(rec) {
    let s = 0;
    if (rec.store) for (const k in rec.store) s += rec.store[k];
    return s;
  }
  Object.defineProperties(Store.prototype, {
    getCapacity: { value: function getCapacity(resource) {
      const rec = this[CAPS];
      if (!resource) return rec.storeCapacityResource ? null : rec.storeCapacity || null;
      return capacityFor(rec, resource) || null;
    } },
    getUsedCapacity: { value: function getUsedCapacity(resource) {
      const rec = this[CAPS];
      if (!resource) {
        if (rec.storeCapacityResource && capacityFor(rec, resource) === 0) return null;
        return sumStore(rec);
      }
      return (rec.store && rec.store[resource]) || (rec.storeCapacityResource && capacityFor(rec, resource) === 0 ? null : 0);
    } },
    getFreeCapacity: { value: function getFreeCapacity(resource) {
      const rec = this[CAPS];
      if (capacityFor(rec, resource) === 0) return null;
      if (!rec.storeCapacity) return this.getCapacity(resource) - this.getUsedCapacity(resource);
      const cap = this.getCapacity(resource);
      if (!cap) return null;
      if (rec.storeCapacityResource) return cap - this.getUsedCapacity(resource);
      return cap - sumStore(rec);
    } },
    toString: { value: function () { return '[store]'; } },
  });

  function Creep(id) {
    const rec = id ? S.byId.get(id) : undefined;
    if (!rec) throw new Error('Could not find an object with ID ' + id);
    return rec;
  }
  Creep.prototype = Object.create(RoomObject.prototype);
  Creep.prototype.constructor = Creep;

  function Structure(id) { return Creep.call(this, id); }
  Structure.prototype = Object.create(RoomObject.prototype);
  Structure.prototype.constructor = Structure;
  function OwnedStructure(id) { return Creep.call(this, id); }
  OwnedStructure.prototype = Object.create(Structure.prototype);
  OwnedStructure.prototype.constructor = OwnedStructure;
  function sub(parent) {
    const f = function (id) { return Creep.call(this, id); };
    f.prototype = Object.create(parent.prototype);
    f.prototype.constructor = f;
    return f;
  }
  const StructureSpawn = sub(OwnedStructure), StructureExtension = sub(OwnedStructure),
    StructureController = sub(OwnedStructure), StructureTower = sub(OwnedStructure),
    StructureRoad = sub(Structure), StructureWall = sub(Structure), StructureContainer = sub(Structure),
    Source = sub(RoomObject), ConstructionSite = sub(RoomObject), Resource = sub(RoomObject);

  function CreepObj(rec, room) {
    this.pos = new Pos(rec.x, rec.y, room.name);
    this.room = room;
    this.effects = NO_EFFECTS;
    this.id = rec._id;
    this.name = rec.name;
    this.my = rec.user === S.me;
    this.owner = owner(rec);
    this.spawning = !!rec.spawning;
    this.ticksToLive = rec.ageTime ? rec.ageTime - S.time : undefined;
    this.fatigue = rec.fatigue;
    this.hits = rec.hits;
    this.hitsMax = rec.hitsMax;
    this.store = new Store(rec);
    const say = rec.actionLog && rec.actionLog.say;
    this.saying = say ? (this.my || say.isPublic ? say.message : undefined) : undefined;
    this[REC] = rec;
  }
  CreepObj.prototype = Creep.prototype;

  // Structures: the common fields, then the kind's own.
  function StructObj(rec, room, owned) {
    this.pos = new Pos(rec.x, rec.y, room.name);
    this.room = room;
    this.effects = NO_EFFECTS;
    this.id = rec._id;
    this.structureType = rec.type;
    this.hits = rec.hits;
    this.hitsMax = rec.hitsMax;
    if (owned) {
      this.my = rec.user ? rec.user === S.me : undefined;
      this.owner = owner(rec);
    }
    this[REC] = rec;
  }
  function kind(proto, owned, extra) {
    const f = function (rec, room) {
      StructObj.call(this, rec, room, owned);
      if (extra) extra(this, rec);
    };
    f.prototype = proto;
    return (rec, room) => new f(rec, room);
  }
  function withStore(s, rec) {
    s.store = new Store(rec);
    s.energy = (rec.store && rec.store.energy) || 0;
    s.energyCapacity = rec.storeCapacityResource ? rec.storeCapacityResource.energy : 0;
  }
  function SourceObj(rec, room) {
    this.pos = new Pos(rec.x, rec.y, room.name);
    this.room = room;
    this.effects = NO_EFFECTS;
    this.id = rec._id;
    this.energy = rec.energy;
    this.energyCapacity = rec.energyCapacity;
    this.ticksToRegeneration = rec.nextRegenerationTime ? rec.nextRegenerationTime - S.time : undefined;
    this[REC] = rec;
  }
  SourceObj.prototype = Source.prototype;
  function SiteObj(rec, room) {
    this.pos = new Pos(rec.x, rec.y, room.name);
    this.room = room;
    this.effects = NO_EFFECTS;
    this.id = rec._id;
    this.structureType = rec.structureType;
    this.progress = rec.progress;
    this.progressTotal = rec.progressTotal;
    this.my = rec.user === S.me;
    this.owner = owner(rec);
    this[REC] = rec;
  }
  SiteObj.prototype = ConstructionSite.prototype;
  function ResourceObj(rec, room) {
    this.pos = new Pos(rec.x, rec.y, room.name);
    this.room = room;
    this.effects = NO_EFFECTS;
    this.id = rec._id;
    this.amount = rec.energy;
    this.resourceType = rec.resourceType || C.RESOURCE_ENERGY;
    this[REC] = rec;
  }
  ResourceObj.prototype = Resource.prototype;

  const FACTORY = {
    creep: (rec, room) => new CreepObj(rec, room),
    source: (rec, room) => new SourceObj(rec, room),
    controller: kind(StructureController.prototype, true, (s, rec) => {
      s.level = rec.level;
      s.progress = rec.level > 0 && rec.level < 8 ? rec.progress : undefined;
      s.progressTotal = rec.level > 0 && rec.level < 8 ? rec.progressTotal : undefined;
      s.ticksToDowngrade = rec.downgradeTime ? rec.downgradeTime - S.time : undefined;
      s.reservation = undefined;
      s.safeMode = undefined;
      s.safeModeAvailable = 0;
      s.safeModeCooldown = undefined;
      s.upgradeBlocked = undefined;
      s.sign = undefined;
      s.isPowerEnabled = false;
      s.hits = undefined;
      s.hitsMax = undefined;
    }),
    spawn: kind(StructureSpawn.prototype, true, (s, rec) => {
      s.name = rec.name;
      withStore(s, rec);
      s.spawning = rec.spawning ? new Spawning(s, rec.spawning) : null;
    }),
    extension: kind(StructureExtension.prototype, true, withStore),
    tower: kind(StructureTower.prototype, true, withStore),
    road: kind(StructureRoad.prototype, false, (s, rec) => { s.ticksToDecay = rec.nextDecayTime - S.time; }),
    constructedWall: kind(StructureWall.prototype, false, null),
    container: kind(StructureContainer.prototype, false, (s, rec) => {
      s.store = new Store(rec);
      s.storeCapacity = rec.storeCapacity;
      s.ticksToDecay = rec.nextDecayTime - S.time;
    }),
    constructionSite: (rec, room) => new SiteObj(rec, room),
    energy: (rec, room) => new ResourceObj(rec, room),
  };

  function Spawning(spawn, rec) {
    this.name = rec.name;
    this.needTime = rec.needTime;
    this.remainingTime = rec.spawnTime - S.time;
    this.directions = undefined;
    this.spawn = spawn;
  }
  Spawning.prototype.cancel = function () {
    if (!this.spawn.my) return C.ERR_NOT_OWNER;
    intent([16, this.spawn.id]);
    return C.OK;
  };
  Spawning.prototype.setDirections = function (d) {
    if (!Array.isArray(d) || !d.length || !d.every((x) => x >= 1 && x <= 8)) return C.ERR_INVALID_ARGS;
    return this.spawn.my ? C.OK : C.ERR_NOT_OWNER; // accepted; this world spawns in direction order
  };

  // ------------------------------------------------------------------ Room
  function RoomVisual(roomName) { this.roomName = roomName; }
  for (const m of ['line', 'circle', 'rect', 'poly', 'text', 'clear', 'import'])
    RoomVisual.prototype[m] = function () { return this; };
  RoomVisual.prototype.getSize = function () { return 0; };
  RoomVisual.prototype.export = function () { return ''; };

  function Room(name) {
    const r = S.rooms[name];
    if (!r) throw new Error(`Could not access room ${name}`);
    return r;
  }
  function makeRoom(view) {
    const r = Object.create(Room.prototype);
    r.name = view.room;
    r.energyAvailable = view.energyAvailable;
    r.energyCapacityAvailable = view.energyCapacityAvailable;
    r.visual = new RoomVisual(view.room);
    r.controller = undefined;
    r.storage = undefined;
    r.terminal = undefined;
    r.mode = 'world';
    r[REC] = { objects: [], creeps: [], structures: [], sources: [], sites: [], resources: [], spawns: [], find: Object.create(null) };
    return r;
  }
  Object.defineProperty(Room.prototype, 'memory', {
    get() {
      const M = g.Memory;
      if (!isObject(M.rooms)) M.rooms = {};
      return (M.rooms[this.name] = M.rooms[this.name] || {});
    },
    set(v) {
      const M = g.Memory;
      if (!isObject(M.rooms)) M.rooms = {};
      M.rooms[this.name] = v;
    },
    configurable: true,
  });
  Room.prototype.toString = function () { return `[room ${this.name}]`; };
  Room.prototype.getTerrain = function () { return new Terrain(this.name); };
  Room.prototype.getPositionAt = function (x, y) {
    return x >= 0 && x <= 49 && y >= 0 && y <= 49 ? new RoomPosition(x, y, this.name) : null;
  };
  Room.prototype.getEventLog = function (raw) { return raw ? '[]' : []; };
  Room.prototype.find = function (type, opts) {
    const d = this[REC];
    let list = d.find[type];
    if (list === undefined) {
      list = findUncached(this, type);
      d.find[type] = list;
    }
    return filterBy(list.slice(), opts && opts.filter);
  };
  function findUncached(room, type) {
    const d = room[REC];
    const mine = (o) => o.my === true, hostile = (o) => o.my === false;
    switch (type) {
      case C.FIND_CREEPS: return d.creeps;
      case C.FIND_MY_CREEPS: return d.creeps.filter(mine);
      case C.FIND_HOSTILE_CREEPS: return d.creeps.filter(hostile);
      case C.FIND_SOURCES: return d.sources;
      case C.FIND_SOURCES_ACTIVE: return d.sources.filter((s) => s.energy > 0);
      case C.FIND_DROPPED_RESOURCES: return d.resources;
      case C.FIND_STRUCTURES: return d.structures;
      case C.FIND_MY_STRUCTURES: return d.structures.filter(mine);
      case C.FIND_HOSTILE_STRUCTURES: return d.structures.filter((s) => s.my === false && s.owner !== undefined);
      case C.FIND_CONSTRUCTION_SITES: return d.sites;
      case C.FIND_MY_CONSTRUCTION_SITES: return d.sites.filter(mine);
      case C.FIND_HOSTILE_CONSTRUCTION_SITES: return d.sites.filter(hostile);
      case C.FIND_MY_SPAWNS: return d.spawns.filter(mine);
      case C.FIND_HOSTILE_SPAWNS: return d.spawns.filter(hostile);
      case C.FIND_EXIT_TOP: case C.FIND_EXIT_RIGHT: case C.FIND_EXIT_BOTTOM: case C.FIND_EXIT_LEFT: {
        const t = terrainOf(room.name);
        return t === null ? [] : exitTiles(t, type).map((p) => new RoomPosition(p[0], p[1], room.name));
      }
      case C.FIND_EXIT:
        return [C.FIND_EXIT_TOP, C.FIND_EXIT_RIGHT, C.FIND_EXIT_BOTTOM, C.FIND_EXIT_LEFT].reduce((a, s) => a.concat(findUncached(room, s)), []);
      case C.FIND_FLAGS: case C.FIND_MINERALS: case C.FIND_NUKES: case C.FIND_TOMBSTONES: case C.FIND_POWER_CREEPS:
      case C.FIND_MY_POWER_CREEPS: case C.FIND_HOSTILE_POWER_CREEPS: case C.FIND_DEPOSITS: case C.FIND_RUINS:
        return [];
      default:
        throw new Error(`Invalid find type ${type}`);
    }
  }
  const LOOK = {
    creep: (d) => d.creeps, source: (d) => d.sources, structure: (d) => d.structures,
    constructionSite: (d) => d.sites, energy: (d) => d.resources, resource: (d) => d.resources,
  };
  Room.prototype.lookForAt = function (type, a, b) {
    const [x, y] = xyArgs(a, b);
    if (type === C.LOOK_TERRAIN) return [terrainName(this.name, x, y)];
    const get = LOOK[type];
    if (!get) return [];
    return get(this[REC]).filter((o) => o.pos.x === x && o.pos.y === y);
  };
  Room.prototype.lookAt = function (a, b) {
    const [x, y] = xyArgs(a, b);
    const out = [];
    for (const type of ['creep', 'source', 'structure', 'constructionSite', 'energy'])
      for (const o of this.lookForAt(type, x, y)) out.push({ type, [type]: o });
    out.push({ type: 'terrain', terrain: terrainName(this.name, x, y) });
    return out;
  };
  Room.prototype.lookForAtArea = function (type, top, left, bottom, right, asArray) {
    const out = asArray ? [] : {};
    for (let y = top; y <= bottom; y++) {
      for (let x = left; x <= right; x++) {
        const found = this.lookForAt(type, x, y);
        if (asArray) for (const o of found) out.push({ x, y, type, [type]: o });
        else if (found.length) (out[y] = out[y] || {})[x] = found;
      }
    }
    return out;
  };
  Room.prototype.findPath = function (fromPos, toPos, opts) {
    opts = opts || {};
    const empty = () => (opts.serialize ? '' : []);
    fromPos = posOf(fromPos);
    toPos = posOf(toPos);
    if (!fromPos || !toPos || fromPos.isEqualTo(toPos) || fromPos.roomName !== this.name) return empty();
    const same = toPos.roomName === this.name;
    const goals = same ? `${toPos.x},${toPos.y},${Math.max(1, Math.min(50, opts.range | 0))}` : exitGoals(this.name, toPos.roomName);
    if (!goals) return empty();
    const res = search(this.name, fromPos.x, fromPos.y, goals, pathFlags(opts), opts.maxOps, opts.plainCost, opts.swampCost,
      costsFor(this.name, opts));
    const path = res ? res.steps : [];
    if (same && !opts.range) {
      const last = path.length ? path[path.length - 1] : fromPos;
      const near = Math.max(Math.abs(last.x - toPos.x), Math.abs(last.y - toPos.y)) <= 1;
      if (near && !(last.x === toPos.x && last.y === toPos.y)) {
        const d = direction(toPos.x - last.x, toPos.y - last.y);
        path.push({ x: toPos.x, y: toPos.y, dx: toPos.x - last.x, dy: toPos.y - last.y, direction: d });
      }
    }
    return opts.serialize ? serializePath(path) : path;
  };
  Room.prototype.findExitTo = function (room) {
    const name = room instanceof Room ? room.name : String(room);
    const a = roomXY(this.name), b = roomXY(name);
    if (!a || !b) return C.ERR_INVALID_ARGS;
    if (a[0] === b[0] && a[1] === b[1]) return C.ERR_INVALID_ARGS;
    const dx = b[0] - a[0], dy = b[1] - a[1];
    if (Math.abs(dx) >= Math.abs(dy)) return dx > 0 ? C.FIND_EXIT_RIGHT : C.FIND_EXIT_LEFT;
    return dy > 0 ? C.FIND_EXIT_BOTTOM : C.FIND_EXIT_TOP;
  };
  Room.prototype.createFlag = function () { return C.ERR_INVALID_ARGS; };
  Room.prototype.createConstructionSite = function (a, b, structureType, name) {
    const [x, y] = xyArgs(a, b);
    if (x === undefined || y === undefined || !(x >= 0 && x <= 49 && y >= 0 && y <= 49)) return C.ERR_INVALID_ARGS;
    if (isObject(a)) { name = structureType; structureType = b; }
    if (!C.CONSTRUCTION_COST[structureType] || !BUILDABLE[structureType]) return C.ERR_INVALID_ARGS;
    if (structureType === 'spawn' && typeof name === 'string') {
      if (!name.length || name.length > 100 || utf8Length(name) > 100) return C.ERR_INVALID_ARGS;
      if (S.createdSpawnNames.indexOf(name) !== -1 || spawnNameTaken(name)) return C.ERR_INVALID_ARGS;
    }
    const ctl = this.controller;
    if (ctl && ctl.level > 0 && !ctl.my) return C.ERR_NOT_OWNER;
    const rcl = ctl && ctl.level && ctl.owner ? ctl.level : 0;
    const have = this[REC].structures.filter((s) => s.structureType === structureType).length +
      this[REC].sites.filter((s) => s.structureType === structureType).length;
    if (have >= (C.CONTROLLER_STRUCTURES[structureType][rcl] || 0)) return C.ERR_RCL_NOT_ENOUGH;
    if (!siteAllowed(this, structureType, x, y)) return C.ERR_INVALID_TARGET;
    let mine = 0;
    for (const k in S.sites) if (S.sites[k].my) mine++;
    if (mine + S.createdSites >= C.MAX_CONSTRUCTION_SITES) return C.ERR_FULL;
    const intentArgs = [13, this.name, x, y, structureType];
    if (structureType === 'spawn') {
      if (typeof name !== 'string') {
        let n = 1;
        do name = 'Spawn' + n++; while (spawnNameTaken(name) || S.createdSpawnNames.indexOf(name) !== -1);
      }
      S.createdSpawnNames.push(name);
      intentArgs.push(name);
    }
    S.createdSites++;
    intent(intentArgs);
    return C.OK;
  };
  // The structure types this world builds (the host refuses the others).
  const BUILDABLE = { spawn: 1, extension: 1, road: 1, constructedWall: 1, container: 1, tower: 1 };
  function spawnNameTaken(name) {
    if (S.spawns[name]) return true;
    for (const k in S.sites) if (S.sites[k].my && S.sites[k].structureType === 'spawn' && S.sites[k][REC].name === name) return true;
    return false;
  }
  function siteAllowed(room, type, x, y) {
    if (x <= 0 || y <= 0 || x >= 49 || y >= 49) return false;
    const t = terrainOf(room.name);
    if (t === null) return false;
    const wall = (xx, yy) => (t.charCodeAt(yy * 50 + xx) - 48) & 1;
    if (type !== 'road' && type !== 'container' && (x === 1 || x === 48 || y === 1 || y === 48)) {
      const vertical = y !== 1 && y !== 48; // as utils.checkConstructionSite: y's rule wins in a corner
      for (let d = -1; d <= 1; d++) {
        const bx = vertical ? (x === 1 ? 0 : 49) : x + d, by = vertical ? y + d : (y === 1 ? 0 : 49);
        if (!wall(bx, by)) return false;
      }
    }
    if (type !== 'road' && wall(x, y)) return false;
    const d = room[REC];
    for (const o of d.objects) {
      if (o.pos.x !== x || o.pos.y !== y) continue;
      const kind = o instanceof ConstructionSite ? 'constructionSite' : o.structureType || (o instanceof Source ? 'source' : '');
      if (kind === type || kind === 'constructionSite' || kind === 'source' || kind === 'controller') return false;
      if (type !== 'road' && kind !== 'road' && C.CONSTRUCTION_COST[kind]) return false;
    }
    return true;
  }
  Room.serializePath = serializePath;
  Room.deserializePath = deserializePath;
  Room.Terrain = Terrain;

  // ------------------------------------------------------------------ Creep methods
  const CP = Creep.prototype;
  // Active parts, straight from the view's packed body (no creep.body objects needed).
  const PART_LETTER = { move: 'm', work: 'w', carry: 'c', attack: 'a', ranged_attack: 'r', tough: 't', heal: 'h', claim: 'k' };
  function active(creep, type) {
    const rec = creep[REC], letter = PART_LETTER[type];
    if (!rec || typeof rec.body !== 'string' || !letter) return 0;
    let n = 0;
    const b = rec.body, hits = rec.bodyHits;
    for (let i = 0; i < b.length; i++) if (b.charCodeAt(i) === letter.charCodeAt(0) && (!hits || hits[i] > 0)) n++;
    return n;
  }
  function real(target, proto) {
    return isObject(target) && typeof target.id === 'string' && S.byId.get(target.id) === target && (!proto || proto.isPrototypeOf(target));
  }
  function energyOf(o) { return (o[REC] && o[REC].store && o[REC].store.energy) || 0; }
  function checkCreep(c) {
    if (!c.my) return C.ERR_NOT_OWNER;
    if (c.spawning) return C.ERR_BUSY;
    return C.OK;
  }
  Object.defineProperty(CP, 'memory', {
    get() {
      if (this.id && !this.my) return undefined;
      const M = g.Memory;
      if (M.creeps === undefined || M.creeps === 'undefined') M.creeps = {};
      if (!isObject(M.creeps)) return undefined;
      return (M.creeps[this.name] = M.creeps[this.name] || {});
    },
    set(v) {
      if (this.id && !this.my) throw new Error("Could not set other player's creep memory");
      const M = g.Memory;
      if (M.creeps === undefined || M.creeps === 'undefined') M.creeps = {};
      if (!isObject(M.creeps)) throw new Error('Could not set creep memory');
      M.creeps[this.name] = v;
    },
    configurable: true,
  });
  Object.defineProperty(CP, 'carry', { get() { return this.store; }, configurable: true });
  // creep.body: [{type, hits}], built from the packed view string on first read.
  const BODY = Symbol('body');
  const LETTER_PART = { m: 'move', w: 'work', c: 'carry', a: 'attack', r: 'ranged_attack', t: 'tough', h: 'heal', k: 'claim' };
  Object.defineProperty(CP, 'body', {
    get() {
      let b = this[BODY];
      if (b === undefined) {
        const rec = this[REC];
        b = [];
        if (rec && typeof rec.body === 'string')
          for (let i = 0; i < rec.body.length; i++)
            b.push({ type: LETTER_PART[rec.body[i]], hits: rec.bodyHits ? rec.bodyHits[i] : 100 });
        this[BODY] = b;
      }
      return b;
    },
    configurable: true,
    enumerable: true,
  });
  Object.defineProperty(CP, 'carryCapacity', { get() { return this[REC] ? this[REC].storeCapacity : 0; }, configurable: true });
  CP.toString = function () { return `[creep ${this.name}]`; };
  CP.getActiveBodyparts = function (type) { return active(this, type); };
  CP.notifyWhenAttacked = function (enabled) { return typeof enabled === 'boolean' ? C.OK : C.ERR_INVALID_ARGS; };
  CP.cancelOrder = function () { return C.ERR_NOT_FOUND; };

  CP.move = function (target) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (target instanceof Creep) {
      if (!target.pos.isNearTo(this.pos)) return C.ERR_NOT_IN_RANGE;
      target = this.pos.getDirectionTo(target);
    }
    if (this.fatigue > 0) return C.ERR_TIRED;
    if (!active(this, C.MOVE)) return C.ERR_NO_BODYPART;
    const d = +target;
    if (!d || d < 1 || d > 8 || d !== Math.floor(d)) return C.ERR_INVALID_ARGS;
    intent([1, this.id, d]);
    return C.OK;
  };

  CP.moveByPath = function (path) {
    if (Array.isArray(path) && path.length > 0 && path[0] instanceof RoomPosition) {
      let idx = path.findIndex((p) => p.isEqualTo(this.pos));
      if (idx === -1 && !path[0].isNearTo(this.pos)) return C.ERR_NOT_FOUND;
      idx++;
      if (idx >= path.length) return C.ERR_NOT_FOUND;
      return this.move(this.pos.getDirectionTo(path[idx]));
    }
    if (typeof path === 'string') path = deserializePath(path);
    if (!Array.isArray(path)) return C.ERR_INVALID_ARGS;
    const cur = path.find((p) => p.x - p.dx === this.pos.x && p.y - p.dy === this.pos.y);
    if (!cur) return C.ERR_NOT_FOUND;
    return this.move(cur.direction);
  };

  // moveTo as Screeps: a path in creep.memory._move, reused for `reusePath` ticks.
  CP.moveTo = function (firstArg, secondArg, opts) {
    const rc = checkCreep(this);
    if (rc) return rc;
    if (isObject(firstArg)) opts = secondArg;
    opts = Object.assign({}, opts || {});
    if (this.fatigue > 0 && !opts.visualizePathStyle) return C.ERR_TIRED;
    if (!active(this, C.MOVE)) return C.ERR_NO_BODYPART;
    let [x, y, roomName] = xyArgs(firstArg, secondArg);
    roomName = roomName || this.pos.roomName;
    if (x === undefined || y === undefined) return C.ERR_INVALID_TARGET;
    const targetPos = new RoomPosition(x, y, roomName);
    if (opts.reusePath === undefined) opts.reusePath = 5;
    if (opts.serializeMemory === undefined) opts.serializeMemory = true;
    if (x === this.pos.x && y === this.pos.y && roomName === this.pos.roomName) return C.OK;
    const mem = this.memory;
    if (opts.reusePath && isObject(mem) && mem._move) {
      const m = mem._move;
      if (S.time > m.time + parseInt(opts.reusePath, 10) || m.room !== this.pos.roomName) {
        delete mem._move;
      } else if (m.dest && m.dest.room === roomName && m.dest.x === x && m.dest.y === y) {
        let path = typeof m.path === 'string' ? deserializePath(m.path) : m.path;
        const idx = path.findIndex((p) => p.x === this.pos.x && p.y === this.pos.y);
        if (idx !== -1) {
          path.splice(0, idx + 1);
          m.path = opts.serializeMemory ? serializePath(path) : path;
        }
        if (path.length === 0) return this.pos.isNearTo(targetPos) ? C.OK : C.ERR_NO_PATH;
        if (this.moveByPath(path) === C.OK) return C.OK;
      }
    }
    if (opts.noPathFinding) return C.ERR_NOT_FOUND;
    const path = this.pos.findPathTo(targetPos, opts);
    if (opts.reusePath && isObject(mem)) {
      mem._move = {
        dest: { x, y, room: roomName },
        time: S.time,
        path: opts.serializeMemory ? serializePath(path) : path.slice(),
        room: this.pos.roomName,
      };
    }
    if (path.length === 0) return C.ERR_NO_PATH;
    return this.move(path[0].direction);
  };

  CP.harvest = function (target) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (!active(this, C.WORK)) return C.ERR_NO_BODYPART;
    if (!real(target, Source.prototype)) return C.ERR_INVALID_TARGET;
    if (!target.energy) return C.ERR_NOT_ENOUGH_RESOURCES;
    if (!target.pos.isNearTo(this.pos)) return C.ERR_NOT_IN_RANGE;
    const ctl = this.room && this.room.controller;
    if (ctl && ctl.owner && !ctl.my) return C.ERR_NOT_OWNER;
    intent([2, this.id, target.id]);
    return C.OK;
  };

  function hasStore(o) { return !!(o[REC] && o[REC].store); }

  CP.transfer = function (target, resourceType, amount) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (amount < 0) return C.ERR_INVALID_ARGS;
    if (C.RESOURCES_ALL.indexOf(resourceType) === -1) return C.ERR_INVALID_ARGS;
    if (real(target, StructureController.prototype) && resourceType === C.RESOURCE_ENERGY) return this.upgradeController(target);
    if (!real(target) || !hasStore(target) || (target instanceof Creep && target.spawning)) return C.ERR_INVALID_TARGET;
    const rec = target[REC];
    const cap = capacityFor(rec, resourceType);
    if (!cap) return C.ERR_INVALID_TARGET;
    if (!target.pos.isNearTo(this.pos)) return C.ERR_NOT_IN_RANGE;
    const have = (this[REC].store && this[REC].store[resourceType]) || 0;
    if (!have) return C.ERR_NOT_ENOUGH_RESOURCES;
    const stored = rec.storeCapacityResource ? (rec.store[resourceType] || 0) : sumStore(rec);
    if (stored >= cap) return C.ERR_FULL;
    if (!amount) amount = Math.min(have, cap - stored);
    if (have < amount) return C.ERR_NOT_ENOUGH_RESOURCES;
    if (amount + stored > cap) return C.ERR_FULL;
    if (amount !== Math.floor(amount)) return C.ERR_INVALID_ARGS;
    intent([3, this.id, target.id, resourceType, amount]);
    return C.OK;
  };

  CP.withdraw = function (target, resourceType, amount) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (amount < 0) return C.ERR_INVALID_ARGS;
    if (C.RESOURCES_ALL.indexOf(resourceType) === -1) return C.ERR_INVALID_ARGS;
    if (!real(target, Structure.prototype) || !hasStore(target)) return C.ERR_INVALID_TARGET;
    if (!target.pos.isNearTo(this.pos)) return C.ERR_NOT_IN_RANGE;
    const there = (target[REC].store && target[REC].store[resourceType]) || 0;
    if (!there) return C.ERR_NOT_ENOUGH_RESOURCES;
    const free = this.store.getFreeCapacity();
    if (!free) return C.ERR_FULL;
    if (!amount) amount = Math.min(there, free);
    if (there < amount) return C.ERR_NOT_ENOUGH_RESOURCES;
    if (amount > free) return C.ERR_FULL;
    if (amount !== Math.floor(amount)) return C.ERR_INVALID_ARGS;
    intent([4, this.id, target.id, resourceType, amount]);
    return C.OK;
  };

  CP.pickup = function (target) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (!real(target, Resource.prototype)) return C.ERR_INVALID_TARGET;
    if (!this.store.getFreeCapacity()) return C.ERR_FULL;
    if (!target.pos.isNearTo(this.pos)) return C.ERR_NOT_IN_RANGE;
    intent([5, this.id, target.id]);
    return C.OK;
  };

  CP.drop = function (resourceType, amount) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (C.RESOURCES_ALL.indexOf(resourceType) === -1) return C.ERR_INVALID_ARGS;
    const have = (this[REC].store && this[REC].store[resourceType]) || 0;
    if (!have) return C.ERR_NOT_ENOUGH_RESOURCES;
    if (!amount) amount = have;
    if (have < amount) return C.ERR_NOT_ENOUGH_RESOURCES;
    if (!(amount > 0) || amount !== Math.floor(amount)) return C.ERR_INVALID_ARGS;
    intent([6, this.id, resourceType, amount]);
    return C.OK;
  };

  CP.build = function (target) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (!active(this, C.WORK)) return C.ERR_NO_BODYPART;
    if (!energyOf(this)) return C.ERR_NOT_ENOUGH_RESOURCES;
    if (!real(target, ConstructionSite.prototype)) return C.ERR_INVALID_TARGET;
    if (!target.pos.inRangeTo(this.pos, 3)) return C.ERR_NOT_IN_RANGE;
    if (C.OBSTACLE_OBJECT_TYPES.indexOf(target.structureType) !== -1 && target.room &&
      target.room.lookForAt(C.LOOK_CREEPS, target.pos.x, target.pos.y).length) return C.ERR_INVALID_TARGET;
    intent([7, this.id, target.id]);
    return C.OK;
  };

  CP.repair = function (target) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (!active(this, C.WORK)) return C.ERR_NO_BODYPART;
    if (!energyOf(this)) return C.ERR_NOT_ENOUGH_RESOURCES;
    if (!real(target, Structure.prototype) || target instanceof StructureController) return C.ERR_INVALID_TARGET;
    if (!target.pos.inRangeTo(this.pos, 3)) return C.ERR_NOT_IN_RANGE;
    intent([8, this.id, target.id]);
    return C.OK;
  };

  CP.upgradeController = function (target) {
    let rc = checkCreep(this);
    if (rc) return rc;
    if (!active(this, C.WORK)) return C.ERR_NO_BODYPART;
    if (!energyOf(this)) return C.ERR_NOT_ENOUGH_RESOURCES;
    if (!real(target, StructureController.prototype)) return C.ERR_INVALID_TARGET;
    if (!target.level || !target.my) return C.ERR_NOT_OWNER;
    if (!target.pos.inRangeTo(this.pos, 3)) return C.ERR_NOT_IN_RANGE;
    intent([9, this.id, target.id]);
    return C.OK;
  };

  CP.say = function (message, isPublic) {
    let rc = checkCreep(this);
    if (rc) return rc;
    intent([10, this.id, String(message).substring(0, 10), !!isPublic]);
    return C.OK;
  };

  CP.suicide = function () {
    let rc = checkCreep(this);
    if (rc) return rc;
    intent([11, this.id]);
    return C.OK;
  };

  // Combat, claiming, boosts: not in this world (no part does anything yet).
  for (const [name, part] of [['attack', C.ATTACK], ['rangedAttack', C.RANGED_ATTACK], ['rangedMassAttack', C.RANGED_ATTACK],
    ['heal', C.HEAL], ['rangedHeal', C.HEAL], ['dismantle', C.WORK], ['claimController', C.CLAIM],
    ['reserveController', C.CLAIM], ['attackController', C.CLAIM], ['signController', null], ['generateSafeMode', null],
    ['pull', null]]) {
    CP[name] = function () {
      let rc = checkCreep(this);
      if (rc) return rc;
      if (part && !active(this, part)) return C.ERR_NO_BODYPART;
      return C.ERR_INVALID_TARGET;
    };
  }

  // ------------------------------------------------------------------ structures
  const SP = Structure.prototype;
  SP.toString = function () { return `[structure (${this.structureType}) #${this.id}]`; };
  SP.notifyWhenAttacked = function (enabled) { return typeof enabled === 'boolean' ? C.OK : C.ERR_INVALID_ARGS; };
  SP.isActive = function () {
    if (!this.owner || !C.CONTROLLER_STRUCTURES[this.structureType]) return true;
    const ctl = this.room && this.room.controller;
    if (!ctl || !ctl.owner || ctl.owner.username !== this.owner.username) return false;
    const allowed = C.CONTROLLER_STRUCTURES[this.structureType][ctl.level] || 0;
    let before = 0;
    for (const s of this.room[REC].structures) {
      if (s === this) break;
      if (s.structureType === this.structureType && s.owner && s.owner.username === this.owner.username) before++;
    }
    return before < allowed;
  };
  SP.destroy = function () {
    const ctl = this.room && this.room.controller;
    if (!ctl || !ctl.my) return C.ERR_NOT_OWNER;
    if (this.room.find(C.FIND_HOSTILE_CREEPS).length) return C.ERR_BUSY;
    intent([15, this.id]);
    return C.OK;
  };

  const SSP = StructureSpawn.prototype;
  SSP.toString = function () { return `[spawn ${this.name}]`; };
  Object.defineProperty(SSP, 'memory', {
    get() {
      const M = g.Memory;
      if (!isObject(M.spawns)) M.spawns = {};
      return (M.spawns[this.name] = M.spawns[this.name] || {});
    },
    set(v) {
      const M = g.Memory;
      if (!isObject(M.spawns)) M.spawns = {};
      M.spawns[this.name] = v;
    },
    configurable: true,
  });
  function bodyCost(body) {
    let c = 0;
    for (const p of body) c += C.BODYPART_COST[p];
    return c;
  }
  SSP.spawnCreep = function spawnCreep(body, name, options = {}) {
    if (!name || !isObject(options)) return C.ERR_INVALID_ARGS;
    name = name.toString();
    if (name.length > 100 || utf8Length(name) > 100) return C.ERR_INVALID_ARGS;
    if (S.game.creeps[name] || S.createdNames.indexOf(name) !== -1) return C.ERR_NAME_EXISTS;
    let energyStructures = null;
    if (options.energyStructures) {
      if (!Array.isArray(options.energyStructures)) return C.ERR_INVALID_ARGS;
      energyStructures = [...new Set(options.energyStructures.map((s) => s && s.id).filter((id) => typeof id === 'string'))].slice(0, 100);
    }
    if (options.directions !== undefined) {
      if (!Array.isArray(options.directions)) return C.ERR_INVALID_ARGS;
      const ds = [...new Set(options.directions.map((d) => +d))];
      if (!ds.length || !ds.every((d) => d >= 1 && d <= 8 && d === (d | 0))) return C.ERR_INVALID_ARGS;
    }
    if (!this.my) return C.ERR_NOT_OWNER;
    if (this.spawning) return C.ERR_BUSY;
    if (!this.isActive()) return C.ERR_RCL_NOT_ENOUGH;
    if (!Array.isArray(body) || body.length === 0 || body.length > C.MAX_CREEP_SIZE) return C.ERR_INVALID_ARGS;
    for (const p of body) if (C.BODYPARTS_ALL.indexOf(p) === -1) return C.ERR_INVALID_ARGS;
    const avail = energyStructures
      ? energyStructures.reduce((s, id) => { const o = S.byId.get(id); return s + (o && (o instanceof StructureSpawn || o instanceof StructureExtension) ? energyOf(o) : 0); }, 0)
      : this.room.energyAvailable;
    if (avail < bodyCost(body)) return C.ERR_NOT_ENOUGH_ENERGY;
    if (options.dryRun) return C.OK;
    S.createdNames.push(name);
    const M = g.Memory;
    if (M.creeps === undefined) M.creeps = {};
    if (isObject(M.creeps)) M.creeps[name] = options.memory || M.creeps[name] || {};
    // The creep exists for the rest of the tick, spawning, as on Screeps.
    const c = Object.create(Creep.prototype);
    RoomObject.call(c, this.pos.x, this.pos.y, this.pos.roomName);
    c.name = name;
    c.spawning = true;
    c.my = true;
    c.owner = { username: S.myName };
    c.ticksToLive = C.CREEP_LIFE_TIME;
    c.fatigue = 0;
    c.hits = c.hitsMax = body.length * 100;
    c[REC] = { body: body.map((p) => PART_LETTER[p]).join(''), store: {},
      storeCapacity: body.filter((p) => p === C.CARRY).length * C.CARRY_CAPACITY };
    c.store = new Store(c[REC]);
    S.game.creeps[name] = c;
    intent([12, this.id, name, body.slice(), energyStructures]);
    return C.OK;
  };
  SSP.createCreep = function (body, name, memory) {
    if (!name) {
      let n = 1;
      do name = 'Creep' + S.time + '_' + n++; while (S.game.creeps[name]);
    }
    const rc = this.spawnCreep(body, name, { memory });
    return rc === C.OK ? name : rc;
  };
  SSP.canCreateCreep = function (body, name) {
    return this.spawnCreep(body, name || 'Creep' + S.time + '_dry', { dryRun: true });
  };
  SSP.renewCreep = function () { return this.my ? C.ERR_INVALID_TARGET : C.ERR_NOT_OWNER; };
  SSP.recycleCreep = function () { return this.my ? C.ERR_INVALID_TARGET : C.ERR_NOT_OWNER; };

  const CtlP = StructureController.prototype;
  CtlP.activateSafeMode = function () { return this.my ? C.ERR_NOT_ENOUGH_RESOURCES : C.ERR_NOT_OWNER; };
  CtlP.unclaim = function () { return this.my ? C.ERR_INVALID_TARGET : C.ERR_NOT_OWNER; };

  // Towers are built and hold energy; they do not act yet in this world.
  const TP = StructureTower.prototype;
  for (const m of ['attack', 'heal', 'repair']) TP[m] = function () { return this.my ? C.ERR_INVALID_TARGET : C.ERR_NOT_OWNER; };

  ConstructionSite.prototype.remove = function () {
    const ctl = this.room && this.room.controller;
    if (!this.my && !(ctl && ctl.my)) return C.ERR_NOT_OWNER;
    intent([14, this.id]);
    return C.OK;
  };
  ConstructionSite.prototype.toString = function () { return `[construction site (${this.structureType}) #${this.id}]`; };
  Source.prototype.toString = function () { return `[source #${this.id}]`; };
  Resource.prototype.toString = function () { return `[resource (${this.resourceType}) #${this.id}]`; };

  // ------------------------------------------------------------------ the tick's Game
  // The players' Game properties the world provides, made on first use.
  const GAME_PROPS = {
    creeps: () => S.creeps,
    spawns: () => S.spawns,
    rooms: () => S.rooms,
    structures: () => S.structures,
    constructionSites: () => S.sites,
    flags: () => ({}),
    powerCreeps: () => ({}),
  };

  function begin(game, time, user, views, info) {
    S.game = game;
    S.time = time;
    S.me = String(user && user.id !== undefined ? user.id : '');
    S.myName = String(user && user.username !== undefined ? user.username : '');
    S.views = Array.isArray(views) ? views : [];
    S.worldSize = info && info.worldSize > 0 ? info.worldSize : 0;
    S.parsed = false;
    S.rooms = Object.create(null);
    S.viewObjects = Object.create(null);
    S.byId = new Map();
    S.creeps = {};
    S.spawns = {};
    S.structures = {};
    S.sites = {};
    S.users = Object.create(null);
    S.owners = Object.create(null);
    S.intents = [];
    S.createdNames = [];
    S.createdSpawnNames = [];
    S.createdSites = 0;
    // Parse the views' text now (one JSON.parse per visible room); build the objects on
    // first use of the Game collections.
    for (const text of S.views) {
      let v;
      try { v = JSONparse(text); } catch (e) { continue; }
      if (!v || typeof v.room !== 'string' || !Array.isArray(v.objects)) continue;
      S.viewObjects[v.room] = v.objects;
      if (v.users) for (const id in v.users) S.users[id] = v.users[id].username;
      S.rooms[v.room] = makeRoom(v);
    }
    S.parsed = false;
    for (const key of Object.keys(GAME_PROPS)) {
      Object.defineProperty(game, key, {
        configurable: true,
        enumerable: true,
        get() { build(); return GAME_PROPS[key](); },
        set(v) { Object.defineProperty(game, key, { value: v, writable: true, enumerable: true, configurable: true }); },
      });
    }
    Object.defineProperty(game, 'getObjectById', {
      configurable: true, enumerable: false, writable: true,
      value: function getObjectById(id) { build(); return S.byId.get(id) || null; },
    });
    Object.defineProperty(game, 'map', { configurable: true, enumerable: true, writable: true, value: MAP });
    if (!('gcl' in game)) game.gcl = { level: 1, progress: 0, progressTotal: 1000000 };
  }

  function build() {
    if (S.parsed) return;
    S.parsed = true;
    for (const name in S.rooms) {
      const room = S.rooms[name];
      const d = room[REC];
      for (const rec of S.viewObjects[name]) {
        const make = FACTORY[rec && rec.type];
        if (!make) continue;
        const o = make(rec, room);
        S.byId.set(o.id, o);
        d.objects.push(o);
        switch (rec.type) {
          case 'creep':
            d.creeps.push(o);
            if (o.my) S.creeps[o.name] = o;
            break;
          case 'source': d.sources.push(o); break;
          case 'constructionSite':
            d.sites.push(o);
            if (o.my) S.sites[o.id] = o;
            break;
          case 'energy': d.resources.push(o); break;
          default:
            d.structures.push(o);
            if (rec.type === 'controller') room.controller = o;
            if (rec.type === 'spawn') {
              d.spawns.push(o);
              if (o.my) S.spawns[o.name] = o;
            }
            if (o.my) S.structures[o.id] = o;
        }
      }
    }
    // Plain values from now on (cheaper to read, and the player may replace them).
    for (const key of Object.keys(GAME_PROPS))
      Object.defineProperty(S.game, key, { value: GAME_PROPS[key](), writable: true, enumerable: true, configurable: true });
  }

  // Game.map: what one room's terrain and the room names tell.
  const MAP = {
    getRoomTerrain(name) { return new Terrain(name); },
    describeExits(name) {
      const xy = roomXY(String(name)), t = terrainOf(String(name));
      if (!xy || t === null) return null;
      const out = {};
      const sides = [[C.FIND_EXIT_TOP, 0, -1], [C.FIND_EXIT_RIGHT, 1, 0], [C.FIND_EXIT_BOTTOM, 0, 1], [C.FIND_EXIT_LEFT, -1, 0]];
      for (const [side, dx, dy] of sides) if (exitTiles(t, side).length) out[side] = roomName(xy[0] + dx, xy[1] + dy);
      return out;
    },
    getRoomLinearDistance(a, b) {
      const p = roomXY(String(a)), q = roomXY(String(b));
      return p && q ? Math.max(Math.abs(p[0] - q[0]), Math.abs(p[1] - q[1])) : Infinity;
    },
    findExit(from, to) {
      const name = from instanceof Room ? from.name : String(from);
      const r = S.rooms[name];
      if (r) return r.findExitTo(to);
      return Room.prototype.findExitTo.call({ name }, to);
    },
    findRoute() { return C.ERR_NO_PATH; },
    getWorldSize() { return S.worldSize || C.WORLD_WIDTH; },
    getRoomStatus() { return { status: 'normal', timestamp: null }; },
    isRoomAvailable(name) { return terrainOf(String(name)) !== null; },
    visual: new RoomVisual(undefined),
  };

  function end() {
    const out = S.intents.length ? JSONstringify(S.intents) : '';
    S.intents = [];
    return out;
  }

  // ------------------------------------------------------------------ globals
  const globals = {
    RoomPosition, RoomObject, Room, RoomVisual, Creep, Structure, OwnedStructure, StructureSpawn, StructureExtension,
    StructureController, StructureRoad, StructureWall, StructureContainer, StructureTower, Source, ConstructionSite,
    Resource, Store, PathFinder,
  };
  for (const k of Object.keys(globals))
    Object.defineProperty(g, k, { value: globals[k], writable: true, enumerable: false, configurable: true });
  StructureSpawn.Spawning = Spawning;

  // The prelude calls this once per new global with the bound host functions
  // { findPath, terrain }, then deletes it; player code never sees `host`.
  Object.defineProperty(g, '__isoworld_world', {
    configurable: true,
    enumerable: false,
    writable: false,
    value: function (host) {
      S.host = host;
      return { begin, end };
    },
  });
})(globalThis);
