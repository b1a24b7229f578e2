/*
 * apply.c — one tick of the default world: intents, movement, per-tick updates.
 *
 * Order (a function of the world and the intents only, never of the order the server
 * passes batches in, nor of memory addresses):
 *   0. reset what lasts one tick (creeps' say, controllers' upgrade counters);
 *   1. parse every batch, players in increasing id; within an object and kind, the last
 *      call wins; Screeps' action priorities drop harvest under build/repair and build
 *      under repair;
 *   2. room intents (construction sites, destroy) by (player, position in batch);
 *   3. object intents by (object id, Screeps' action order: drop, transfer, withdraw,
 *      pickup, harvest, move, repair, build, say, suicide, upgradeController; for spawns
 *      spawnCreep, cancel), each validated against the state as it is at that moment —
 *      so when two creeps fill the same spawn, the one with the smaller id goes first;
 *   4. movement, room by room, with Screeps' collision rules (movement.js);
 *   5. per-tick updates, room by room, objects by id (sources, controllers, spawns,
 *      extensions, roads, containers, creeps, dropped energy);
 *   6. creeps on exit tiles move to the next room; dead objects are freed; time = T.
 *
 * Every intent is validated here whatever the JS side said; a bad one gets the Screeps
 * return code the JS API would have returned and changes nothing. Validation follows the
 * Screeps runtime (src/game) where it has a check and the processor where the runtime
 * does not. Where this world differs from Screeps it says so.
 */
#include "world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(x, y) ((y)*DW_SIZE + (x))

typedef struct move_req {
  dw_obj *c;
  int tx, ty;
} move_req;

typedef struct tickctx {
  dw_world *w;
  uint64_t time;
  sim_intents *batches;
  dw_intent_list list;
  move_req *moves;
  size_t n_moves, cap_moves;
  dw_obj **edge; /* creeps to move to the next room at the end */
  size_t n_edge, cap_edge;
  int32_t *sites; /* construction sites per player (parallel to w->players) */
  bool oom;
} tickctx;

/* ------------------------------------------------------------------ small helpers */

static int grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return SIM_OK;
  size_t c = *cap ? *cap * 2 : 64;
  while (c < need) c *= 2;
  void *n = realloc(*p, c * size);
  if (!n) return SIM_NOMEM;
  *p = n;
  *cap = c;
  return SIM_OK;
}

static dw_obj *site_at(const dw_world *w, uint32_t room, int x, int y) {
  const dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++)
    if (!r->objs[i]->dead && r->objs[i]->type == DW_T_SITE && r->objs[i]->x == x && r->objs[i]->y == y)
      return r->objs[i];
  return NULL;
}

static dw_obj *of_type_at(const dw_world *w, uint32_t room, int type, int x, int y) {
  const dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++)
    if (!r->objs[i]->dead && r->objs[i]->type == type && r->objs[i]->x == x && r->objs[i]->y == y) return r->objs[i];
  return NULL;
}

static dw_obj *creep_at(const dw_world *w, uint32_t room, int x, int y) {
  const dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++) {
    dw_obj *o = r->objs[i];
    if (!o->dead && o->type == DW_T_CREEP && !o->u.creep.spawning && o->x == x && o->y == y) return o;
  }
  return NULL;
}

static bool near(const dw_obj *a, const dw_obj *b, int range) {
  return a->room == b->room && dw_cheb(a->x, a->y, b->x, b->y) <= range;
}

static bool on_edge(int x, int y) {
  return x == 0 || y == 0 || x == DW_SIZE - 1 || y == DW_SIZE - 1;
}

/* Energy on the ground at (x, y): into a container there first, then onto a pile (merged
 * with one already there), as Screeps' _create-energy. */
static void drop_energy(tickctx *t, uint32_t room, int x, int y, int32_t amount) {
  if (amount <= 0) return;
  dw_obj *box = of_type_at(t->w, room, DW_T_CONTAINER, x, y);
  if (box) {
    int32_t put = box->energy_cap - box->energy;
    if (put > amount) put = amount;
    box->energy += put;
    amount -= put;
    dw_touch(t->w, box);
  }
  if (amount <= 0) return;
  dw_obj *pile = of_type_at(t->w, room, DW_T_ENERGY, x, y);
  if (pile) {
    pile->energy = pile->energy > 1000000000 - amount ? 1000000000 : pile->energy + amount;
    dw_touch(t->w, pile);
    return;
  }
  pile = dw_spawn_object(t->w, room, DW_T_ENERGY, x, y);
  if (!pile) {
    t->oom = true;
    return;
  }
  pile->energy = amount;
}

/* A creep dies: Screeps leaves a tombstone holding its store; this world drops the
 * store on the ground instead (no tombstones yet). */
static void creep_die(tickctx *t, dw_obj *c) {
  if (c->dead) return;
  if (!c->u.creep.spawning) drop_energy(t, c->room, c->x, c->y, c->energy);
  dw_kill(t->w, c);
}

/* ------------------------------------------------------------------ subjects */

static int own_creep(tickctx *t, const dw_intent *it, dw_obj **out) {
  dw_obj *c = dw_find(t->w, it->subject);
  if (!c) return DW_ERR_NOT_FOUND;
  if (c->type != DW_T_CREEP) return DW_ERR_INVALID_TARGET;
  if (c->user != it->player) return DW_ERR_NOT_OWNER;
  if (c->u.creep.spawning) return DW_ERR_BUSY;
  *out = c;
  return DW_OK;
}

/* ------------------------------------------------------------------ creep intents */

static int do_move(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  if (c->u.creep.fatigue > 0) return DW_ERR_TIRED;
  if (!dw_active_parts(c, DW_MOVE)) return DW_ERR_NO_BODYPART;
  int tx = c->x + DW_DIR_DX[it->a], ty = c->y + DW_DIR_DY[it->a];
  /* Off the map, or into a structure that blocks: accepted, and nothing happens (the
   * processor drops it), as on Screeps. */
  if (tx < 0 || ty < 0 || tx >= DW_SIZE || ty >= DW_SIZE) return DW_OK;
  const dw_room *r = &t->w->rooms[c->room];
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *o = r->objs[i];
    if (!o->dead && o->x == tx && o->y == ty && o->type != DW_T_CREEP && dw_is_obstacle_type(o->type)) return DW_OK;
  }
  if (grow((void **)&t->moves, &t->cap_moves, t->n_moves + 1, sizeof *t->moves)) return t->oom = true, DW_OK;
  t->moves[t->n_moves++] = (move_req){c, tx, ty};
  return DW_OK;
}

static int do_harvest(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  if (!dw_active_parts(c, DW_WORK)) return DW_ERR_NO_BODYPART;
  dw_obj *s = dw_find(t->w, it->target);
  if (!s || s->type != DW_T_SOURCE) return DW_ERR_INVALID_TARGET;
  if (s->energy <= 0) return DW_ERR_NOT_ENOUGH_RESOURCES;
  if (!near(c, s, 1)) return DW_ERR_NOT_IN_RANGE;
  const dw_obj *ctl = dw_controller(t->w, s->room);
  if (ctl && ctl->user && ctl->user != c->user) return DW_ERR_NOT_OWNER;
  int32_t amount = dw_active_parts(c, DW_WORK) * DW_HARVEST_POWER;
  if (amount > s->energy) amount = s->energy;
  s->energy -= amount;
  c->energy += amount;
  /* What does not fit is dropped (Screeps: harvest.js -> drop). */
  if (c->energy > c->energy_cap) {
    int32_t over = c->energy - c->energy_cap;
    c->energy = c->energy_cap;
    drop_energy(t, c->room, c->x, c->y, over);
  }
  dw_touch(t->w, s);
  dw_touch(t->w, c);
  return DW_OK;
}

static bool has_store(const dw_obj *o) {
  switch (o->type) {
    case DW_T_SPAWN:
    case DW_T_EXTENSION:
    case DW_T_CONTAINER:
    case DW_T_TOWER:
    case DW_T_CREEP: return true;
    default: return false;
  }
}

static int do_upgrade_with(tickctx *t, dw_obj *c, dw_obj *ctl);

static int do_transfer(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  dw_obj *to = dw_find(t->w, it->target);
  if (!to || to == c) return DW_ERR_INVALID_TARGET;
  /* transfer(controller, energy) upgrades it, as on Screeps. */
  if (to->type == DW_T_CONTROLLER && it->rtype == 0) return do_upgrade_with(t, c, to);
  if (!has_store(to) || (to->type == DW_T_CREEP && to->u.creep.spawning) || to->energy_cap <= 0)
    return DW_ERR_INVALID_TARGET;
  if (!near(c, to, 1)) return DW_ERR_NOT_IN_RANGE;
  if (it->rtype != 0 || c->energy <= 0) return DW_ERR_NOT_ENOUGH_RESOURCES;
  int32_t space = to->energy_cap - to->energy;
  if (space <= 0) return DW_ERR_FULL;
  /* null or 0: as much as fits (the runtime's default). */
  int32_t amount = it->a > 0 ? it->a : (c->energy < space ? c->energy : space);
  if (amount > c->energy) return DW_ERR_NOT_ENOUGH_RESOURCES;
  /* The runtime refuses more than fits with ERR_FULL, from the state it saw; when another
   * creep filled the target earlier this tick the processor moves what still fits. */
  if (amount > space) amount = space;
  c->energy -= amount;
  to->energy += amount;
  dw_touch(t->w, c);
  dw_touch(t->w, to);
  return DW_OK;
}

static int do_withdraw(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  dw_obj *from = dw_find(t->w, it->target);
  if (!from || from->type == DW_T_CREEP || !has_store(from)) return DW_ERR_INVALID_TARGET;
  /* Screeps forbids it in a hostile room under safe mode (no safe mode here); anyone's
   * structures otherwise. */
  if (!near(c, from, 1)) return DW_ERR_NOT_IN_RANGE;
  if (it->rtype != 0 || from->energy <= 0) return DW_ERR_NOT_ENOUGH_RESOURCES;
  int32_t space = c->energy_cap - c->energy;
  if (space <= 0) return DW_ERR_FULL;
  /* As the processor: never more than there is, nor more than fits. */
  int32_t amount = it->a > 0 ? it->a : space;
  if (amount > space) amount = space;
  if (amount > from->energy) amount = from->energy;
  from->energy -= amount;
  c->energy += amount;
  dw_touch(t->w, c);
  dw_touch(t->w, from);
  return DW_OK;
}

static int do_pickup(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  int32_t free_space = c->energy_cap - c->energy;
  if (free_space <= 0) return DW_ERR_FULL;
  dw_obj *pile = dw_find(t->w, it->target);
  if (!pile || pile->type != DW_T_ENERGY) return DW_ERR_INVALID_TARGET;
  if (!near(c, pile, 1)) return DW_ERR_NOT_IN_RANGE;
  int32_t amount = pile->energy < free_space ? pile->energy : free_space;
  pile->energy -= amount;
  c->energy += amount;
  if (pile->energy <= 0) dw_kill(t->w, pile);
  dw_touch(t->w, c);
  dw_touch(t->w, pile);
  return DW_OK;
}

static int do_drop(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  if (it->rtype != 0 || c->energy <= 0) return DW_ERR_NOT_ENOUGH_RESOURCES;
  int32_t amount = it->a < 0 || it->a == 0 ? c->energy : it->a;
  if (amount > c->energy) return DW_ERR_NOT_ENOUGH_RESOURCES;
  c->energy -= amount;
  dw_touch(t->w, c);
  drop_energy(t, c->room, c->x, c->y, amount);
  return DW_OK;
}

static int do_build(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  if (!dw_active_parts(c, DW_WORK)) return DW_ERR_NO_BODYPART;
  if (c->energy <= 0) return DW_ERR_NOT_ENOUGH_RESOURCES;
  dw_obj *site = dw_find(t->w, it->target);
  if (!site || site->type != DW_T_SITE) return DW_ERR_INVALID_TARGET;
  if (!near(c, site, 3)) return DW_ERR_NOT_IN_RANGE;
  int stype = site->u.site.stype;
  const dw_world *w = t->w;
  if (dw_is_obstacle_type(stype)) {
    if (creep_at(w, site->room, site->x, site->y)) return DW_ERR_INVALID_TARGET;
    const dw_room *r = &w->rooms[site->room];
    for (uint32_t i = 0; i < r->n; i++) {
      const dw_obj *o = r->objs[i];
      if (!o->dead && o != site && o->x == site->x && o->y == site->y && o->type != DW_T_CREEP &&
          dw_is_obstacle_type(o->type))
        return DW_ERR_INVALID_TARGET;
    }
  }
  if (of_type_at(w, site->room, stype, site->x, site->y)) return DW_ERR_INVALID_TARGET;
  int32_t effect = dw_active_parts(c, DW_WORK) * DW_BUILD_POWER;
  int32_t remaining = site->u.site.total - site->u.site.progress;
  if (effect > remaining) effect = remaining;
  if (effect > c->energy) effect = c->energy;
  site->u.site.progress += effect;
  c->energy -= effect;
  dw_touch(t->w, c);
  dw_touch(t->w, site);
  if (site->u.site.progress < site->u.site.total) return DW_OK;
  /* Complete: the site becomes the structure. */
  dw_obj *s = dw_spawn_object(t->w, site->room, (uint8_t)stype, site->x, site->y);
  if (!s) return t->oom = true, DW_OK;
  uint8_t terrain = w->rooms[site->room].terrain[T(site->x, site->y)];
  switch (stype) {
    case DW_T_SPAWN:
      s->user = site->user;
      memcpy(s->name, site->name, sizeof s->name);
      s->energy_cap = DW_SPAWN_ENERGY_CAPACITY;
      s->hits = s->hits_max = DW_SPAWN_HITS;
      break;
    case DW_T_EXTENSION: {
      s->user = site->user;
      const dw_obj *ctl = dw_controller(w, site->room);
      s->energy_cap = DW_EXTENSION_ENERGY_CAPACITY[ctl && ctl->user == site->user ? ctl->u.ctl.level : 0];
      s->hits = s->hits_max = DW_EXTENSION_HITS;
      break;
    }
    case DW_T_ROAD:
      s->hits_max = DW_ROAD_HITS * (terrain == DW_SWAMP  ? DW_CONSTRUCTION_COST_ROAD_SWAMP_RATIO
                                    : terrain == DW_WALL ? DW_CONSTRUCTION_COST_ROAD_WALL_RATIO
                                                         : 1);
      s->hits = s->hits_max;
      s->u.decay.next_decay = t->time + DW_ROAD_DECAY_TIME;
      break;
    case DW_T_WALL:
      s->hits = DW_WALL_HITS;
      s->hits_max = DW_WALL_HITS_MAX;
      break;
    case DW_T_CONTAINER:
      s->energy_cap = DW_CONTAINER_CAPACITY;
      s->hits = s->hits_max = DW_CONTAINER_HITS;
      s->u.decay.next_decay = t->time + DW_CONTAINER_DECAY_TIME;
      break;
    case DW_T_TOWER:
      s->user = site->user;
      s->energy_cap = DW_TOWER_CAPACITY;
      s->hits = s->hits_max = DW_TOWER_HITS;
      break;
    default: break;
  }
  dw_kill(t->w, site);
  return DW_OK;
}

static int do_repair(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  if (!dw_active_parts(c, DW_WORK)) return DW_ERR_NO_BODYPART;
  if (c->energy <= 0) return DW_ERR_NOT_ENOUGH_RESOURCES;
  dw_obj *s = dw_find(t->w, it->target);
  if (!s || !dw_is_structure_type(s->type)) return DW_ERR_INVALID_TARGET;
  if (!near(c, s, 3)) return DW_ERR_NOT_IN_RANGE;
  if (s->hits >= s->hits_max) return DW_OK; /* the runtime says OK; nothing to do */
  int64_t effect = (int64_t)dw_active_parts(c, DW_WORK) * DW_REPAIR_POWER;
  if (effect > (int64_t)c->energy * DW_REPAIR_COST_DIV) effect = (int64_t)c->energy * DW_REPAIR_COST_DIV;
  if (effect > s->hits_max - s->hits) effect = s->hits_max - s->hits;
  int32_t cost = (int32_t)((effect + DW_REPAIR_COST_DIV - 1) / DW_REPAIR_COST_DIV);
  if (cost > c->energy) cost = c->energy;
  s->hits += (int32_t)effect;
  c->energy -= cost;
  dw_touch(t->w, c);
  dw_touch(t->w, s);
  return DW_OK;
}

static int do_upgrade_with(tickctx *t, dw_obj *c, dw_obj *ctl) {
  if (!dw_active_parts(c, DW_WORK)) return DW_ERR_NO_BODYPART;
  if (c->energy <= 0) return DW_ERR_NOT_ENOUGH_RESOURCES;
  if (ctl->type != DW_T_CONTROLLER) return DW_ERR_INVALID_TARGET;
  if (ctl->u.ctl.level == 0 || ctl->user != c->user) return DW_ERR_NOT_OWNER;
  if (!near(c, ctl, 3)) return DW_ERR_NOT_IN_RANGE;
  int32_t effect = dw_active_parts(c, DW_WORK) * DW_UPGRADE_CONTROLLER_POWER;
  if (effect > c->energy) effect = c->energy;
  int level = ctl->u.ctl.level;
  if (level == 8) {
    int32_t left = DW_CONTROLLER_MAX_UPGRADE_PER_TICK - ctl->u.ctl.upgraded;
    if (left <= 0) return DW_OK; /* the processor ignores it */
    if (effect > left) effect = left;
  } else {
    long long next = DW_CONTROLLER_LEVELS[level];
    /* Screeps levels up only with a nearly full downgrade timer (upgradeController.js);
     * until then progress keeps growing past the total. */
    if (ctl->u.ctl.progress + effect >= next && ctl->u.ctl.downgrade_time + DW_CONTROLLER_DOWNGRADE_RESTORE >=
                                                    t->time + (uint64_t)DW_CONTROLLER_DOWNGRADE[level]) {
      ctl->u.ctl.progress = ctl->u.ctl.progress + effect - next;
      ctl->u.ctl.level = (uint8_t)(level + 1);
      ctl->u.ctl.downgrade_time = t->time + (uint64_t)DW_CONTROLLER_DOWNGRADE[level + 1] / 2;
      if (ctl->u.ctl.level == 8) ctl->u.ctl.progress = 0;
    } else {
      ctl->u.ctl.progress += effect;
    }
  }
  ctl->u.ctl.upgraded += effect;
  c->energy -= effect;
  dw_touch(t->w, c);
  dw_touch(t->w, ctl);
  return DW_OK;
}

static int do_upgrade(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  if (!dw_active_parts(c, DW_WORK)) return DW_ERR_NO_BODYPART;
  if (c->energy <= 0) return DW_ERR_NOT_ENOUGH_RESOURCES;
  dw_obj *ctl = dw_find(t->w, it->target);
  if (!ctl || ctl->type != DW_T_CONTROLLER) return DW_ERR_INVALID_TARGET;
  return do_upgrade_with(t, c, ctl);
}

static int do_say(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  memcpy(c->u.creep.say, it->str, it->str_len);
  c->u.creep.say[it->str_len] = 0;
  c->u.creep.say_len = (uint8_t)it->str_len;
  c->u.creep.say_public = it->flag;
  dw_touch(t->w, c);
  return DW_OK;
}

static int do_suicide(tickctx *t, const dw_intent *it) {
  dw_obj *c;
  int rc = own_creep(t, it, &c);
  if (rc) return rc;
  creep_die(t, c);
  return DW_OK;
}

/* ------------------------------------------------------------------ spawns */

static bool structure_active(const dw_world *w, const dw_obj *s) {
  /* Screeps switches off the structures beyond what the controller level allows (the
   * ones farthest from the controller first); here: counting in id order. */
  const dw_obj *ctl = dw_controller(w, s->room);
  if (!ctl || ctl->user != s->user) return false;
  int allowed = dw_controller_structures(s->type, ctl->u.ctl.level), before = 0;
  const dw_room *r = &w->rooms[s->room];
  for (uint32_t i = 0; i < r->n && r->objs[i] != s; i++)
    before += !r->objs[i]->dead && r->objs[i]->type == s->type && r->objs[i]->user == s->user;
  return before < allowed;
}

static bool name_taken(const dw_world *w, uint64_t user, const char *name) {
  for (size_t i = 0; i < w->n_rooms; i++) {
    const dw_room *r = &w->rooms[i];
    for (uint32_t k = 0; k < r->n; k++) {
      const dw_obj *o = r->objs[k];
      if (!o->dead && o->type == DW_T_CREEP && o->user == user && strcmp(o->name, name) == 0) return true;
    }
  }
  return false;
}

typedef struct by_dist {
  dw_obj *o;
  int d;
} by_dist;

static int cmp_dist(const void *a, const void *b) {
  const by_dist *x = a, *y = b;
  if (x->d != y->d) return x->d - y->d;
  return x->o->id < y->o->id ? -1 : x->o->id > y->o->id;
}

static int do_spawn(tickctx *t, const dw_intent *it) {
  dw_world *w = t->w;
  dw_obj *s = dw_find(w, it->subject);
  if (!s) return DW_ERR_NOT_FOUND;
  if (s->type != DW_T_SPAWN) return DW_ERR_INVALID_TARGET;
  if (name_taken(w, it->player, it->str)) return DW_ERR_NAME_EXISTS;
  if (s->user != it->player) return DW_ERR_NOT_OWNER;
  if (s->u.spawn.creep) return DW_ERR_BUSY;
  if (!structure_active(w, s)) return DW_ERR_RCL_NOT_ENOUGH;
  int cost = 0;
  for (int i = 0; i < it->n_body; i++) cost += DW_BODYPART_COST[it->body[i]];
  /* The energy structures to draw from: the given ones (own spawns and extensions, each
   * once, in the given order), or all of them, spawns then extensions, nearest first. */
  dw_room *r = &w->rooms[s->room];
  by_dist *src = malloc((r->n + 1) * sizeof *src);
  if (!src) return t->oom = true, DW_ERR_NOT_ENOUGH_ENERGY;
  size_t n = 0;
  long long avail = 0;
  if (it->has_energy) {
    for (int k = 0; k < it->n_energy; k++) {
      dw_obj *e = dw_find(w, t->list.ids[it->energy_off + (size_t)k]);
      if (!e || e->user != s->user || (e->type != DW_T_SPAWN && e->type != DW_T_EXTENSION) || e->room != s->room)
        continue;
      bool dup = false;
      for (size_t j = 0; j < n; j++) dup |= src[j].o == e;
      if (dup) continue;
      src[n++] = (by_dist){e, 0};
      avail += e->energy;
    }
  } else {
    for (int pass = 0; pass < 2; pass++) {
      size_t first = n;
      for (uint32_t i = 0; i < r->n; i++) {
        dw_obj *e = r->objs[i];
        if (e->dead || e->user != s->user || e->type != (pass == 0 ? DW_T_SPAWN : DW_T_EXTENSION)) continue;
        src[n++] = (by_dist){e, dw_cheb(s->x, s->y, e->x, e->y)};
        avail += e->energy;
      }
      qsort(src + first, n - first, sizeof *src, cmp_dist);
    }
  }
  if (avail < cost) {
    free(src);
    return DW_ERR_NOT_ENOUGH_ENERGY;
  }
  dw_obj *c = dw_spawn_object(w, s->room, DW_T_CREEP, s->x, s->y);
  if (!c) {
    free(src);
    return t->oom = true, DW_ERR_NOT_ENOUGH_ENERGY;
  }
  int left = cost;
  for (size_t j = 0; j < n && left > 0; j++) {
    int take = src[j].o->energy < left ? src[j].o->energy : left;
    src[j].o->energy -= take;
    left -= take;
    dw_touch(w, src[j].o);
  }
  free(src);
  c->user = s->user;
  memcpy(c->name, it->str, it->str_len);
  c->name[it->str_len] = 0;
  c->u.creep.n = it->n_body;
  memcpy(c->u.creep.part, it->body, it->n_body);
  memset(c->u.creep.part_hits, DW_BODYPART_HITS, it->n_body);
  c->u.creep.spawning = true;
  c->hits = c->hits_max = it->n_body * DW_BODYPART_HITS;
  c->energy_cap = dw_creep_capacity(c);
  s->u.spawn.creep = c->id;
  s->u.spawn.need_time = (uint32_t)(it->n_body * DW_CREEP_SPAWN_TIME);
  s->u.spawn.spawn_time = t->time + s->u.spawn.need_time;
  dw_touch(w, s);
  return DW_OK;
}

static int do_cancel_spawn(tickctx *t, const dw_intent *it) {
  dw_obj *s = dw_find(t->w, it->subject);
  if (!s) return DW_ERR_NOT_FOUND;
  if (s->type != DW_T_SPAWN) return DW_ERR_INVALID_TARGET;
  if (s->user != it->player) return DW_ERR_NOT_OWNER;
  if (!s->u.spawn.creep) return DW_ERR_INVALID_TARGET;
  dw_obj *c = dw_find(t->w, s->u.spawn.creep);
  if (c) dw_kill(t->w, c);
  s->u.spawn.creep = 0;
  s->u.spawn.need_time = 0;
  s->u.spawn.spawn_time = 0;
  dw_touch(t->w, s);
  return DW_OK;
}

/* ------------------------------------------------------------------ room intents */

static int32_t *site_count(tickctx *t, uint64_t player) {
  const dw_player *p = dw_player_get(t->w, player);
  return p ? &t->sites[p - t->w->players] : NULL;
}

/* utils.checkConstructionSite plus the processor's checks. */
static bool site_allowed(const dw_world *w, uint32_t room, int stype, int x, int y) {
  if (x <= 0 || y <= 0 || x >= DW_SIZE - 1 || y >= DW_SIZE - 1) return false;
  const uint8_t *ter = w->rooms[room].terrain;
  if (stype != DW_T_ROAD && stype != DW_T_CONTAINER && (x == 1 || x == 48 || y == 1 || y == 48)) {
    /* Next to an exit: only where the border tiles in front are walls (the border in
     * front is chosen as utils.checkConstructionSite does: y's rule wins in a corner). */
    bool vertical = y != 1 && y != 48;
    for (int d = -1; d <= 1; d++) {
      int bx = vertical ? (x == 1 ? 0 : 49) : x + d, by = vertical ? y + d : (y == 1 ? 0 : 49);
      if (ter[T(bx, by)] != DW_WALL) return false;
    }
  }
  if (stype != DW_T_ROAD && ter[T(x, y)] == DW_WALL) return false;
  const dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *o = r->objs[i];
    if (o->dead || o->x != x || o->y != y) continue;
    if (o->type == stype || o->type == DW_T_SITE) return false;
    /* Not on a source or a controller (this world), nor a second non-road structure. */
    if (o->type == DW_T_SOURCE || o->type == DW_T_CONTROLLER) return false;
    if (stype != DW_T_ROAD && o->type != DW_T_ROAD && dw_is_structure_type(o->type)) return false;
  }
  return true;
}

static int do_create_site(tickctx *t, const dw_intent *it) {
  dw_world *w = t->w;
  int32_t *count = site_count(t, it->player);
  if (!count) return DW_ERR_NOT_OWNER;
  uint32_t room = it->room;
  const dw_obj *ctl = dw_controller(w, room);
  if (ctl && ctl->u.ctl.level > 0 && ctl->user != it->player) return DW_ERR_NOT_OWNER;
  int level = ctl && ctl->user ? ctl->u.ctl.level : 0;
  int have = 0;
  const dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *o = r->objs[i];
    if (!o->dead && (o->type == it->stype || (o->type == DW_T_SITE && o->u.site.stype == it->stype))) have++;
  }
  if (have >= dw_controller_structures(it->stype, level)) return DW_ERR_RCL_NOT_ENOUGH;
  if (!site_allowed(w, room, it->stype, it->a, it->b)) return DW_ERR_INVALID_TARGET;
  if (*count >= DW_MAX_CONSTRUCTION_SITES) return DW_ERR_FULL;
  char name[DW_NAME_MAX + 1] = "";
  if (it->stype == DW_T_SPAWN) {
    /* A spawn's name: given (unique among the player's spawns and spawn sites), or the
     * first free SpawnN. */
    for (int k = 1; k < 100000; k++) {
      if (it->str_len)
        memcpy(name, it->str, (size_t)it->str_len + 1);
      else
        snprintf(name, sizeof name, "Spawn%d", k);
      bool clash = false;
      for (size_t ri = 0; ri < w->n_rooms && !clash; ri++)
        for (uint32_t i = 0; i < w->rooms[ri].n; i++) {
          const dw_obj *o = w->rooms[ri].objs[i];
          if (!o->dead && o->user == it->player &&
              (o->type == DW_T_SPAWN || (o->type == DW_T_SITE && o->u.site.stype == DW_T_SPAWN)) &&
              strcmp(o->name, name) == 0)
            clash = true;
        }
      if (!clash) break;
      if (it->str_len) return DW_ERR_INVALID_ARGS;
    }
  }
  dw_obj *s = dw_spawn_object(w, room, DW_T_SITE, it->a, it->b);
  if (!s) return t->oom = true, DW_ERR_FULL;
  s->user = it->player;
  s->u.site.stype = it->stype;
  int total = dw_construction_cost(it->stype);
  if (it->stype == DW_T_ROAD) {
    uint8_t ter = w->rooms[room].terrain[T(it->a, it->b)];
    if (ter == DW_SWAMP) total *= DW_CONSTRUCTION_COST_ROAD_SWAMP_RATIO;
    if (ter == DW_WALL) total *= DW_CONSTRUCTION_COST_ROAD_WALL_RATIO;
  }
  s->u.site.total = total;
  memcpy(s->name, name, sizeof s->name);
  (*count)++;
  return DW_OK;
}

static int do_remove_site(tickctx *t, const dw_intent *it) {
  dw_obj *s = dw_find(t->w, it->subject);
  if (!s || s->type != DW_T_SITE) return DW_ERR_INVALID_TARGET;
  const dw_obj *ctl = dw_controller(t->w, s->room);
  if (s->user != it->player && !(ctl && ctl->user == it->player)) return DW_ERR_NOT_OWNER;
  if (s->u.site.progress > 1) drop_energy(t, s->room, s->x, s->y, s->u.site.progress / 2);
  int32_t *count = site_count(t, s->user);
  if (count && *count > 0) (*count)--;
  dw_kill(t->w, s);
  return DW_OK;
}

static int do_destroy(tickctx *t, const dw_intent *it) {
  dw_obj *s = dw_find(t->w, it->subject);
  if (!s || !dw_is_structure_type(s->type)) return DW_ERR_INVALID_TARGET;
  const dw_obj *ctl = dw_controller(t->w, s->room);
  if (!ctl || ctl->user != it->player) return DW_ERR_NOT_OWNER;
  const dw_room *r = &t->w->rooms[s->room];
  for (uint32_t i = 0; i < r->n; i++)
    if (!r->objs[i]->dead && r->objs[i]->type == DW_T_CREEP && r->objs[i]->user != it->player) return DW_ERR_BUSY;
  if (s->type == DW_T_SPAWN && s->u.spawn.creep) {
    dw_obj *c = dw_find(t->w, s->u.spawn.creep);
    if (c) dw_kill(t->w, c);
  }
  dw_kill(t->w, s);
  return DW_OK;
}

/* ------------------------------------------------------------------ ordering */

/* Screeps' creep action order (processor/intents/creeps/intents.js), then spawn intents. */
static int action_order(int code) {
  switch (code) {
    case SIM_DW_DROP: return 0;
    case SIM_DW_TRANSFER: return 1;
    case SIM_DW_WITHDRAW: return 2;
    case SIM_DW_PICKUP: return 3;
    case SIM_DW_HARVEST: return 4;
    case SIM_DW_MOVE: return 5;
    case SIM_DW_REPAIR: return 6;
    case SIM_DW_BUILD: return 7;
    case SIM_DW_SAY: return 8;
    case SIM_DW_SUICIDE: return 9;
    case SIM_DW_UPGRADE: return 10;
    case SIM_DW_SPAWN: return 11;
    case SIM_DW_CANCEL_SPAWN: return 12;
    default: return 13;
  }
}

static bool is_room_intent(int code) {
  return code == SIM_DW_CREATE_SITE || code == SIM_DW_REMOVE_SITE || code == SIM_DW_DESTROY;
}

static int cmp_intents(const void *a, const void *b) {
  const dw_intent *x = *(const dw_intent *const *)a, *y = *(const dw_intent *const *)b;
  bool rx = is_room_intent(x->code), ry = is_room_intent(y->code);
  if (rx != ry) return rx ? -1 : 1;
  if (!rx) {
    if (x->subject != y->subject) return x->subject < y->subject ? -1 : 1;
    int ox = action_order(x->code), oy = action_order(y->code);
    if (ox != oy) return ox - oy;
  }
  if (x->player != y->player) return x->player < y->player ? -1 : 1;
  if (x->batch != y->batch) return x->batch < y->batch ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Same object, same kind, same player: the last call wins. Then the priorities of
 * processor/intents/creeps/intents.js: repair drops build and harvest, build drops
 * harvest. `order` holds the valid intents sorted by cmp_intents. */
static void supersede(dw_intent **order, size_t n) {
  for (size_t i = 0; i < n; i++) {
    dw_intent *a = order[i];
    if (is_room_intent(a->code)) continue; /* not sorted by subject; a repeat just fails */
    for (size_t j = i + 1; j < n; j++) {
      dw_intent *b = order[j];
      if (b->subject != a->subject) break;
      if (b->player != a->player) continue;
      if (b->code == a->code) a->rc = SIM_INTENT_SUPERSEDED;
      if (a->code == SIM_DW_HARVEST && (b->code == SIM_DW_BUILD || b->code == SIM_DW_REPAIR))
        a->rc = SIM_INTENT_SUPERSEDED;
      if (a->code == SIM_DW_BUILD && b->code == SIM_DW_REPAIR) a->rc = SIM_INTENT_SUPERSEDED;
    }
  }
}

static int apply_one(tickctx *t, dw_intent *it) {
  if (!dw_player_get(t->w, it->player)) return DW_ERR_NOT_OWNER;
  switch (it->code) {
    case SIM_DW_MOVE: return do_move(t, it);
    case SIM_DW_HARVEST: return do_harvest(t, it);
    case SIM_DW_TRANSFER: return do_transfer(t, it);
    case SIM_DW_WITHDRAW: return do_withdraw(t, it);
    case SIM_DW_PICKUP: return do_pickup(t, it);
    case SIM_DW_DROP: return do_drop(t, it);
    case SIM_DW_BUILD: return do_build(t, it);
    case SIM_DW_REPAIR: return do_repair(t, it);
    case SIM_DW_UPGRADE: return do_upgrade(t, it);
    case SIM_DW_SAY: return do_say(t, it);
    case SIM_DW_SUICIDE: return do_suicide(t, it);
    case SIM_DW_SPAWN: return do_spawn(t, it);
    case SIM_DW_CREATE_SITE: return do_create_site(t, it);
    case SIM_DW_REMOVE_SITE: return do_remove_site(t, it);
    case SIM_DW_DESTROY: return do_destroy(t, it);
    case SIM_DW_CANCEL_SPAWN: return do_cancel_spawn(t, it);
    default: return DW_ERR_INVALID_ARGS;
  }
}

/* ------------------------------------------------------------------ movement */

static int carry_weight(const dw_obj *c) {
  int total = c->energy, w = 0;
  for (int i = c->u.creep.n - 1; i >= 0 && total > 0; i--) {
    if (c->u.creep.part[i] != DW_CARRY || !c->u.creep.part_hits[i]) continue;
    total -= total < DW_CARRY_CAPACITY ? total : DW_CARRY_CAPACITY;
    w++;
  }
  return w;
}

static int fatigue_weight(const dw_obj *c) {
  int w = 0;
  for (int i = 0; i < c->u.creep.n; i++) w += c->u.creep.part[i] != DW_MOVE && c->u.creep.part[i] != DW_CARRY;
  return w + carry_weight(c);
}

typedef struct room_moves {
  int16_t winner[DW_TILES]; /* mover index per target tile, -1 */
  uint8_t wanted[DW_TILES]; /* movers aiming at the tile (Screeps' affectedCnt), capped */
  dw_obj *occupant[DW_TILES];
  int16_t mover_of[DW_TILES]; /* per origin tile: index of the mover standing there */
  bool static_block[DW_TILES];
  bool road[DW_TILES];
} room_moves;

/* Does mover a beat mover b for a tile? Screeps: movement.js check(): first those whose own
 * tile is wanted (a swap wins outright), then the better MOVE-to-weight ratio; here ties
 * go to the smaller id. */
static bool beats(const room_moves *m, const move_req *a, const move_req *b) {
  int ra = m->wanted[T(a->c->x, a->c->y)], rb = m->wanted[T(b->c->x, b->c->y)];
  if (ra != rb) return ra > rb;
  int ma = dw_active_parts(a->c, DW_MOVE), mb = dw_active_parts(b->c, DW_MOVE);
  int wa = fatigue_weight(a->c), wb = fatigue_weight(b->c);
  if (!wa) wa = 1;
  if (!wb) wb = 1;
  long long l = (long long)ma * wb, r = (long long)mb * wa;
  if (l != r) return l > r;
  return a->c->id < b->c->id;
}

static void unwin(room_moves *m, move_req *mv, int tile, bool *moving) {
  /* The mover into `tile` stays where it is; whoever aimed at its tile cannot go either. */
  while (tile >= 0 && m->winner[tile] >= 0) {
    int k = m->winner[tile];
    m->winner[tile] = -1;
    moving[k] = false;
    tile = T(mv[k].c->x, mv[k].c->y);
  }
}

static void resolve_room(tickctx *t, uint32_t room, move_req *mv, size_t n, room_moves *m, bool *moving) {
  dw_world *w = t->w;
  const dw_room *r = &w->rooms[room];
  for (int i = 0; i < DW_TILES; i++) {
    m->winner[i] = -1;
    m->mover_of[i] = -1;
    m->wanted[i] = 0;
    m->occupant[i] = NULL;
    m->road[i] = false;
    m->static_block[i] = r->terrain[i] == DW_WALL;
  }
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *o = r->objs[i];
    if (!o->dead && o->type == DW_T_ROAD) m->road[T(o->x, o->y)] = true;
  }
  for (int i = 0; i < DW_TILES; i++)
    if (m->road[i]) m->static_block[i] = false;
  for (uint32_t i = 0; i < r->n; i++) {
    dw_obj *o = r->objs[i];
    if (o->dead) continue;
    int k = T(o->x, o->y);
    if (o->type == DW_T_CREEP) {
      if (!o->u.creep.spawning) m->occupant[k] = o;
    } else if (dw_is_obstacle_type(o->type)) {
      m->static_block[k] = true;
    }
  }
  for (size_t i = 0; i < n; i++) {
    moving[i] = false;
    if (mv[i].c->dead) continue;
    int to = T(mv[i].tx, mv[i].ty);
    if (m->wanted[to] < 255) m->wanted[to]++;
    m->mover_of[T(mv[i].c->x, mv[i].c->y)] = (int16_t)i;
  }
  /* Swaps: a mover whose target holds a mover aiming back at it ranks first. */
  for (size_t i = 0; i < n; i++) {
    if (mv[i].c->dead) continue;
    int to = T(mv[i].tx, mv[i].ty), k = m->mover_of[to];
    if (k >= 0 && T(mv[k].tx, mv[k].ty) == T(mv[i].c->x, mv[i].c->y)) m->wanted[T(mv[i].c->x, mv[i].c->y)] = 100;
  }
  for (size_t i = 0; i < n; i++) {
    if (mv[i].c->dead) continue;
    int to = T(mv[i].tx, mv[i].ty), cur = m->winner[to];
    if (cur < 0 || beats(m, &mv[i], &mv[cur])) m->winner[to] = (int16_t)i;
  }
  for (int i = 0; i < DW_TILES; i++)
    if (m->winner[i] >= 0) moving[m->winner[i]] = true;
  /* Blocked targets: walls without road, obstacles, own obstacle sites, creeps that stay. */
  for (int tile = 0; tile < DW_TILES; tile++) {
    int k = m->winner[tile];
    if (k < 0) continue;
    bool blocked = m->static_block[tile];
    dw_obj *occ = m->occupant[tile];
    if (occ && occ != mv[k].c) {
      int om = m->mover_of[tile];
      if (om < 0 || !moving[om]) blocked = true;
    }
    if (!blocked) {
      for (uint32_t i = 0; i < r->n; i++) {
        const dw_obj *o = r->objs[i];
        if (!o->dead && o->type == DW_T_SITE && T(o->x, o->y) == tile && o->user == mv[k].c->user &&
            dw_is_obstacle_type(o->u.site.stype))
          blocked = true;
      }
    }
    if (blocked) unwin(m, mv, tile, moving);
  }
  /* unwin follows each chain back, so this finds nothing new; it stays as a guard that
   * the result is the fixed point whatever order the tiles were checked in. */
  for (bool again = true; again;) {
    again = false;
    for (int tile = 0; tile < DW_TILES; tile++) {
      int k = m->winner[tile];
      if (k < 0) continue;
      dw_obj *occ = m->occupant[tile];
      if (!occ || occ == mv[k].c) continue;
      int om = m->mover_of[tile];
      if (om < 0 || !moving[om]) {
        unwin(m, mv, tile, moving);
        again = true;
      }
    }
  }
  /* Execute. */
  for (size_t i = 0; i < n; i++) {
    if (!moving[i]) continue;
    dw_obj *c = mv[i].c;
    int to = T(mv[i].tx, mv[i].ty);
    int rate = m->road[to] ? 1 : r->terrain[to] == DW_SWAMP ? 10 : 2;
    if (m->road[to]) {
      dw_obj *road = of_type_at(w, room, DW_T_ROAD, mv[i].tx, mv[i].ty);
      if (road) {
        road->u.decay.next_decay -= (uint64_t)DW_ROAD_WEAROUT * c->u.creep.n;
        dw_touch(w, road);
      }
    }
    /* Stepping on someone else's construction site tramples it (half its progress drops
     * as energy). */
    dw_obj *site = site_at(w, room, mv[i].tx, mv[i].ty);
    if (site && site->user != c->user) {
      if (site->u.site.progress > 1) drop_energy(t, room, site->x, site->y, site->u.site.progress / 2);
      dw_kill(w, site);
    }
    bool to_edge = on_edge(mv[i].tx, mv[i].ty) && !on_edge(c->x, c->y);
    c->x = (uint8_t)mv[i].tx;
    c->y = (uint8_t)mv[i].ty;
    if (to_edge)
      c->u.creep.fatigue = 0;
    else
      c->u.creep.fatigue += fatigue_weight(c) * rate;
    dw_touch(w, c);
  }
}

static int cmp_moves(const void *a, const void *b) {
  const move_req *x = a, *y = b;
  if (x->c->room != y->c->room) return x->c->room < y->c->room ? -1 : 1;
  return x->c->id < y->c->id ? -1 : x->c->id > y->c->id;
}

static int resolve_moves(tickctx *t) {
  if (!t->n_moves) return SIM_OK;
  qsort(t->moves, t->n_moves, sizeof *t->moves, cmp_moves);
  room_moves *m = malloc(sizeof *m);
  bool *moving = malloc(t->n_moves * sizeof *moving);
  if (!m || !moving) {
    free(m);
    free(moving);
    return SIM_NOMEM;
  }
  for (size_t i = 0; i < t->n_moves;) {
    size_t j = i;
    while (j < t->n_moves && t->moves[j].c->room == t->moves[i].c->room) j++;
    resolve_room(t, t->moves[i].c->room, t->moves + i, j - i, m, moving);
    i = j;
  }
  free(m);
  free(moving);
  return SIM_OK;
}

/* ------------------------------------------------------------------ per-tick updates */

static void tick_source(tickctx *t, dw_obj *s, const dw_obj *ctl) {
  uint64_t now = t->time;
  if (s->energy < s->energy_cap) {
    if (!s->u.src.next_regen) {
      s->u.src.next_regen = now + DW_ENERGY_REGEN_TIME;
      dw_touch(t->w, s);
    }
    if (now >= s->u.src.next_regen - 1) {
      s->u.src.next_regen = 0;
      s->energy = s->energy_cap;
      dw_touch(t->w, s);
    }
  }
  int32_t cap = ctl && ctl->user ? DW_SOURCE_ENERGY_CAPACITY : DW_SOURCE_ENERGY_NEUTRAL_CAPACITY;
  if (s->energy_cap != cap) {
    s->energy_cap = cap;
    if (s->energy > cap) s->energy = cap;
    dw_touch(t->w, s);
  }
}

static void tick_controller(tickctx *t, dw_obj *c) {
  uint64_t now = t->time;
  if (!c->user) return;
  if (!c->u.ctl.downgrade_time) {
    c->u.ctl.downgrade_time = now + (uint64_t)DW_CONTROLLER_DOWNGRADE[c->u.ctl.level] + 1;
    dw_touch(t->w, c);
    return;
  }
  if (c->u.ctl.upgraded) {
    uint64_t a = c->u.ctl.downgrade_time + DW_CONTROLLER_DOWNGRADE_RESTORE + 1,
             b = now + (uint64_t)DW_CONTROLLER_DOWNGRADE[c->u.ctl.level] + 1;
    c->u.ctl.downgrade_time = a < b ? a : b;
    dw_touch(t->w, c);
    return;
  }
  while (c->u.ctl.level > 0 && now + 1 >= c->u.ctl.downgrade_time) {
    c->u.ctl.level--;
    if (c->u.ctl.level == 0) {
      c->user = 0;
      c->u.ctl.progress = 0;
      c->u.ctl.downgrade_time = 0;
    } else {
      c->u.ctl.downgrade_time += (uint64_t)DW_CONTROLLER_DOWNGRADE[c->u.ctl.level] / 2 + 1;
      c->u.ctl.progress += DW_CONTROLLER_LEVELS[c->u.ctl.level] * 9 / 10;
    }
    dw_touch(t->w, c);
  }
}

/* A spawning creep steps out: the first free neighbour tile in direction order. */
static bool born(tickctx *t, dw_obj *s, dw_obj *c) {
  dw_world *w = t->w;
  for (int d = 1; d <= 8; d++) {
    int x = s->x + DW_DIR_DX[d], y = s->y + DW_DIR_DY[d];
    if (x < 0 || y < 0 || x >= DW_SIZE || y >= DW_SIZE) continue;
    if (dw_tile_blocked(w, s->room, x, y) || creep_at(w, s->room, x, y)) continue;
    dw_obj *site = site_at(w, s->room, x, y);
    if (site && dw_is_obstacle_type(site->u.site.stype)) continue;
    c->x = (uint8_t)x;
    c->y = (uint8_t)y;
    c->u.creep.spawning = false;
    c->u.creep.age_time = t->time + DW_CREEP_LIFE_TIME;
    dw_touch(w, c);
    return true;
  }
  return false;
}

static void tick_spawn(tickctx *t, dw_obj *s, const dw_obj *ctl, long long room_energy) {
  if (s->u.spawn.creep && t->time + 1 >= s->u.spawn.spawn_time) {
    dw_obj *c = dw_find(t->w, s->u.spawn.creep);
    if (!c) {
      s->u.spawn.creep = 0, s->u.spawn.need_time = 0, s->u.spawn.spawn_time = 0;
    } else if (born(t, s, c)) {
      s->u.spawn.creep = 0, s->u.spawn.need_time = 0, s->u.spawn.spawn_time = 0;
    } else {
      s->u.spawn.spawn_time = t->time + 1; /* blocked in: try again next tick */
    }
    dw_touch(t->w, s);
  }
  if (!ctl || ctl->u.ctl.level < 1 || ctl->user != s->user || !structure_active(t->w, s)) return;
  if (room_energy < DW_SPAWN_ENERGY_CAPACITY && s->energy < DW_SPAWN_ENERGY_CAPACITY) {
    s->energy++;
    dw_touch(t->w, s);
  }
}

static void tick_creep(tickctx *t, dw_obj *c) {
  dw_creep *k = &c->u.creep;
  if (k->spawning) {
    /* Its spawn is gone (destroyed): so is the creep. */
    const dw_room *r = &t->w->rooms[c->room];
    bool inside = false;
    for (uint32_t i = 0; i < r->n; i++)
      if (!r->objs[i]->dead && r->objs[i]->type == DW_T_SPAWN && r->objs[i]->u.spawn.creep == c->id) inside = true;
    if (!inside) dw_kill(t->w, c);
    return;
  }
  if (t->time + 1 >= k->age_time) {
    creep_die(t, c);
    return;
  }
  int moves = dw_active_parts(c, DW_MOVE);
  if (moves > 0 && k->fatigue > 0) {
    k->fatigue -= 2 * moves;
    if (k->fatigue < 0) k->fatigue = 0;
    dw_touch(t->w, c);
  }
  if (on_edge(c->x, c->y)) {
    if (grow((void **)&t->edge, &t->cap_edge, t->n_edge + 1, sizeof *t->edge))
      t->oom = true;
    else
      t->edge[t->n_edge++] = c;
  }
}

static void tick_room(tickctx *t, uint32_t room, dw_obj **snap, uint32_t n) {
  dw_world *w = t->w;
  const dw_obj *ctl = dw_controller(w, room);
  long long energy = 0;
  for (uint32_t i = 0; i < n; i++)
    if (!snap[i]->dead && (snap[i]->type == DW_T_SPAWN || snap[i]->type == DW_T_EXTENSION)) energy += snap[i]->energy;
  for (uint32_t i = 0; i < n; i++) {
    dw_obj *o = snap[i];
    if (o->dead) continue;
    switch (o->type) {
      case DW_T_SOURCE: tick_source(t, o, ctl); break;
      case DW_T_CONTROLLER: tick_controller(t, o); break;
      case DW_T_SPAWN: tick_spawn(t, o, ctl, energy); break;
      case DW_T_EXTENSION: {
        int32_t cap = DW_EXTENSION_ENERGY_CAPACITY[ctl && ctl->user == o->user ? ctl->u.ctl.level : 0];
        if (o->energy_cap != cap) {
          o->energy_cap = cap;
          if (o->energy > cap) o->energy = cap;
          dw_touch(w, o);
        }
        break;
      }
      case DW_T_ROAD:
        if (!o->u.decay.next_decay || t->time + 1 >= o->u.decay.next_decay) {
          uint8_t ter = w->rooms[room].terrain[T(o->x, o->y)];
          int amount = DW_ROAD_DECAY_AMOUNT * (ter == DW_SWAMP  ? DW_CONSTRUCTION_COST_ROAD_SWAMP_RATIO
                                               : ter == DW_WALL ? DW_CONSTRUCTION_COST_ROAD_WALL_RATIO
                                                                : 1);
          o->hits -= amount;
          o->u.decay.next_decay = t->time + DW_ROAD_DECAY_TIME;
          if (o->hits <= 0) dw_kill(w, o);
          dw_touch(w, o);
        }
        break;
      case DW_T_CONTAINER:
        if (!o->u.decay.next_decay || t->time + 1 >= o->u.decay.next_decay) {
          o->hits -= DW_CONTAINER_DECAY;
          o->u.decay.next_decay =
              t->time + (ctl && ctl->user ? DW_CONTAINER_DECAY_TIME_OWNED : DW_CONTAINER_DECAY_TIME);
          if (o->hits <= 0) {
            int32_t e = o->energy;
            dw_kill(w, o);
            drop_energy(t, room, o->x, o->y, e);
          }
          dw_touch(w, o);
        }
        break;
      case DW_T_CREEP: tick_creep(t, o); break;
      case DW_T_ENERGY:
        o->energy -= (o->energy + DW_ENERGY_DECAY - 1) / DW_ENERGY_DECAY;
        if (o->energy <= 0) dw_kill(w, o);
        dw_touch(w, o);
        break;
      default: break;
    }
  }
}

/* Creeps on an exit tile cross to the neighbouring room's opposite edge (Screeps
 * creeps/tick.js: interRoom), if that tile is free; otherwise they wait. */
static void cross_rooms(tickctx *t) {
  dw_world *w = t->w;
  for (size_t i = 0; i < t->n_edge; i++) {
    dw_obj *c = t->edge[i];
    if (c->dead) continue;
    dw_room *r = &w->rooms[c->room];
    int x = c->x, y = c->y;
    long ix = r->ix, iy = r->iy;
    if (c->x == 0)
      ix--, x = DW_SIZE - 1;
    else if (c->x == DW_SIZE - 1)
      ix++, x = 0;
    else if (c->y == 0)
      iy--, y = DW_SIZE - 1;
    else
      iy++, y = 0;
    if (ix < 0 || iy < 0 || ix >= (long)w->width || iy >= (long)w->height) continue;
    uint32_t to = (uint32_t)(iy * (long)w->width + ix);
    if (dw_tile_blocked(w, to, x, y) || creep_at(w, to, x, y)) continue;
    if (dw_move_room(w, c, to, x, y) != SIM_OK) t->oom = true;
  }
}

/* ------------------------------------------------------------------ the tick */

int dw_tick(sim_world *sw, uint64_t time, sim_intents *batches, size_t nb) {
  dw_world *w = dw_of(sw);
  if (time != w->time + 1) return SIM_INVALID;
  tickctx t;
  memset(&t, 0, sizeof t);
  t.w = w;
  t.time = time;
  t.batches = batches;
  int rc = SIM_OK;
  dw_intent **order = NULL;

  /* 0. What lasts one tick. */
  for (size_t i = 0; i < w->n_rooms; i++) {
    dw_room *r = &w->rooms[i];
    for (uint32_t k = 0; k < r->n; k++) {
      dw_obj *o = r->objs[k];
      if (o->type == DW_T_CREEP && o->u.creep.say_len) {
        o->u.creep.say_len = 0;
        o->u.creep.say[0] = 0;
        o->u.creep.say_public = false;
        r->touched = true;
      }
      if (o->type == DW_T_CONTROLLER) o->u.ctl.upgraded = 0;
    }
  }

  /* 1. Parse, players in increasing id (the batch order does not matter). */
  size_t *bi = malloc((nb ? nb : 1) * sizeof *bi);
  t.sites = calloc(w->n_players ? w->n_players : 1, sizeof *t.sites);
  if (!bi || !t.sites) {
    rc = SIM_NOMEM;
    goto out;
  }
  for (size_t i = 0; i < nb; i++) bi[i] = i;
  for (size_t i = 1; i < nb; i++) /* insertion sort: few players per call, stable */
    for (size_t j = i; j > 0 && batches[bi[j - 1]].player > batches[bi[j]].player; j--) {
      size_t tmp = bi[j];
      bi[j] = bi[j - 1];
      bi[j - 1] = tmp;
    }
  for (size_t k = 0; k < nb; k++) {
    sim_intents *b = &batches[bi[k]];
    b->n_intents = b->accepted = b->rejected = 0;
    size_t before = t.list.n;
    b->status =
        b->data || !b->len ? dw_parse_intents(w, b->data, b->len, b->player, (uint32_t)bi[k], &t.list) : SIM_CORRUPT;
    if (b->status == SIM_NOMEM) {
      rc = SIM_NOMEM;
      goto out;
    }
    b->n_intents = t.list.n - before;
  }
  /* Construction sites each player has. */
  for (size_t i = 0; i < w->n_rooms; i++)
    for (uint32_t k = 0; k < w->rooms[i].n; k++) {
      const dw_obj *o = w->rooms[i].objs[k];
      if (o->type != DW_T_SITE) continue;
      const dw_player *p = dw_player_get(w, o->user);
      if (p) t.sites[p - w->players]++;
    }

  /* 2-3. Intents in their defined order. */
  order = malloc((t.list.n ? t.list.n : 1) * sizeof *order);
  if (!order) {
    rc = SIM_NOMEM;
    goto out;
  }
  size_t n_valid = 0;
  for (size_t i = 0; i < t.list.n; i++)
    if (t.list.v[i].rc == DW_OK) order[n_valid++] = &t.list.v[i];
  qsort(order, n_valid, sizeof *order, cmp_intents);
  supersede(order, n_valid);
  for (size_t i = 0; i < n_valid; i++) {
    dw_intent *it = order[i];
    if (it->rc != DW_OK) continue;
    it->rc = apply_one(&t, it);
    if (t.oom) {
      rc = SIM_NOMEM;
      goto out;
    }
  }
  dw_sweep(w);

  /* 4. Movement. */
  if ((rc = resolve_moves(&t)) != SIM_OK || t.oom) {
    rc = SIM_NOMEM;
    goto out;
  }

  /* 5. Per-tick updates, over a snapshot of each room (objects made now wait a tick). */
  {
    dw_obj **snap = NULL;
    size_t cap = 0;
    for (uint32_t i = 0; i < w->n_rooms; i++) {
      dw_room *r = &w->rooms[i];
      if (grow((void **)&snap, &cap, r->n + 1, sizeof *snap)) {
        free(snap);
        rc = SIM_NOMEM;
        goto out;
      }
      memcpy(snap, r->objs, r->n * sizeof *snap);
      tick_room(&t, i, snap, r->n);
      if (t.oom) break;
    }
    free(snap);
    if (t.oom) {
      rc = SIM_NOMEM;
      goto out;
    }
  }
  dw_sweep(w);

  /* 6. Room crossings, the clock, the hashes. */
  cross_rooms(&t);
  if (t.oom) {
    rc = SIM_NOMEM;
    goto out;
  }
  w->time = time;
  rc = dw_rehash(w);

  /* Results per batch, in input order. */
  for (size_t i = 0; i < t.list.n; i++) {
    const dw_intent *it = &t.list.v[i];
    sim_intents *b = &batches[it->batch];
    if (it->rc == DW_OK)
      b->accepted++;
    else
      b->rejected++;
    if (b->codes && it->seq < b->codes_cap) b->codes[it->seq] = it->rc;
  }
out:
  free(bi);
  free(order);
  free(t.sites);
  free(t.moves);
  free(t.edge);
  dw_intent_list_release(&t.list);
  return rc;
}
