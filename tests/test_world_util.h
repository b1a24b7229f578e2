/*
 * test_world_util.h — helpers shared by the default world's tests (tests/test_world_*.c):
 * blank rooms with hand-placed objects, one-call ticks, and the world's invariants.
 * White-box: it reaches into sim/world/world.h.
 */
#ifndef ISOWORLD_TEST_WORLD_UTIL_H
#define ISOWORLD_TEST_WORLD_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "world/world.h"

#define TW_ALICE 1
#define TW_BOB 2

/* A w x h world from seed, with every room blanked: walls on the border, plain inside,
 * no objects; players alice (1) and bob (2) known. */
static inline dw_world *tw_blank(uint64_t seed, uint32_t wd, uint32_t ht) {
  sim_world *sw;
  sim_world_options o = {.seed = seed, .width = wd, .height = ht};
  assert_int_equal(sim_world_create(sim_default_game(), &o, &sw, NULL), SIM_OK);
  dw_world *w = dw_of(sw);
  for (uint32_t i = 0; i < w->n_rooms; i++) {
    dw_room *r = &w->rooms[i];
    for (int y = 0; y < DW_SIZE; y++)
      for (int x = 0; x < DW_SIZE; x++)
        r->terrain[y * DW_SIZE + x] = (x == 0 || y == 0 || x == DW_SIZE - 1 || y == DW_SIZE - 1) ? DW_WALL : DW_PLAIN;
    for (uint32_t k = 0; k < r->n; k++) dw_kill(w, r->objs[k]);
    r->touched = true;
  }
  dw_sweep(w);
  assert_int_equal(dw_player_put(w, TW_ALICE, "alice"), SIM_OK);
  assert_int_equal(dw_player_put(w, TW_BOB, "bob"), SIM_OK);
  assert_int_equal(dw_rehash(w), SIM_OK);
  return w;
}

static inline void tw_free(dw_world *w) {
  sim_world_free(&w->base);
}

static inline dw_obj *tw_obj(dw_world *w, uint32_t room, int type, int x, int y, uint64_t user) {
  dw_obj *o = dw_spawn_object(w, room, (uint8_t)type, x, y);
  assert_non_null(o);
  o->user = user;
  switch (type) {
    case DW_T_SOURCE: o->energy = o->energy_cap = DW_SOURCE_ENERGY_CAPACITY; break;
    case DW_T_SPAWN:
      snprintf(o->name, sizeof o->name, "Spawn%u", (unsigned)(o->id & 0xff));
      o->energy = o->energy_cap = DW_SPAWN_ENERGY_CAPACITY;
      o->hits = o->hits_max = DW_SPAWN_HITS;
      break;
    case DW_T_EXTENSION:
      o->energy_cap = 50;
      o->hits = o->hits_max = DW_EXTENSION_HITS;
      break;
    case DW_T_ROAD:
      o->hits = o->hits_max = DW_ROAD_HITS;
      o->u.decay.next_decay = w->time + DW_ROAD_DECAY_TIME;
      break;
    case DW_T_WALL:
      o->hits = 1;
      o->hits_max = DW_WALL_HITS_MAX;
      break;
    case DW_T_CONTAINER:
      o->energy_cap = DW_CONTAINER_CAPACITY;
      o->hits = o->hits_max = DW_CONTAINER_HITS;
      o->u.decay.next_decay = w->time + 100;
      break;
    case DW_T_TOWER:
      o->energy_cap = DW_TOWER_CAPACITY;
      o->hits = o->hits_max = DW_TOWER_HITS;
      break;
    default: break;
  }
  return o;
}

/* A controller owned by user (0: neutral) at level. */
static inline dw_obj *tw_controller(dw_world *w, uint32_t room, int x, int y, uint64_t user, int level) {
  dw_obj *c = tw_obj(w, room, DW_T_CONTROLLER, x, y, user);
  c->u.ctl.level = (uint8_t)(user ? level : 0);
  c->u.ctl.downgrade_time = user ? w->time + (uint64_t)DW_CONTROLLER_DOWNGRADE[level] + 1 : 0;
  return c;
}

/* A creep with a body given as letters: M move, W work, C carry, A attack, R ranged, T
 * tough, H heal, L claim. */
static inline dw_obj *tw_creep(dw_world *w, uint32_t room, uint64_t user, const char *name, int x, int y,
                               const char *body) {
  dw_obj *c = tw_obj(w, room, DW_T_CREEP, x, y, user);
  snprintf(c->name, sizeof c->name, "%s", name);
  static const char letters[] = "MWCARTHL";
  for (const char *b = body; *b; b++) {
    const char *p = strchr(letters, *b);
    assert_non_null(p);
    c->u.creep.part[c->u.creep.n] = (uint8_t)(p - letters);
    c->u.creep.part_hits[c->u.creep.n] = DW_BODYPART_HITS;
    c->u.creep.n++;
  }
  c->hits = c->hits_max = c->u.creep.n * DW_BODYPART_HITS;
  c->energy_cap = dw_creep_capacity(c);
  c->u.creep.age_time = w->time + DW_CREEP_LIFE_TIME;
  return c;
}

static inline void tw_id(const dw_obj *o, char *buf) {
  dw_id_format(o->id, buf);
}

/* Runs one tick with up to two players' intent texts (NULL: none); codes of the first
 * batch go to codes1 (may be NULL). Returns the tick's status. */
static inline int tw_tick2(dw_world *w, const char *alice, const char *bob, int32_t *codes1, size_t cap1) {
  sim_intents b[2];
  size_t n = 0;
  memset(b, 0, sizeof b);
  /* Tests edit objects directly: let the tick rehash every room. */
  for (uint32_t i = 0; i < w->n_rooms; i++) w->rooms[i].touched = true;
  if (alice)
    b[n++] = (sim_intents){.player = TW_ALICE, .data = alice, .len = strlen(alice), .codes = codes1, .codes_cap = cap1};
  if (bob) b[n++] = (sim_intents){.player = TW_BOB, .data = bob, .len = strlen(bob)};
  return sim_world_tick(&w->base, w->time + 1, b, n);
}

/* One alice intent; returns its result code. */
static inline int32_t tw_do(dw_world *w, const char *fmt, ...) {
  char text[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  int32_t code = 12345;
  assert_int_equal(tw_tick2(w, text, NULL, &code, 1), SIM_OK);
  return code;
}

static inline void tw_idle(dw_world *w, int ticks) {
  for (int i = 0; i < ticks; i++) assert_int_equal(tw_tick2(w, NULL, NULL, NULL, 0), SIM_OK);
}

/* Checks what must hold after every tick; returns a description of the first violation
 * or NULL. */
static inline const char *tw_invariants(const dw_world *w) {
  static char why[256];
  size_t counted = 0;
  for (uint32_t i = 0; i < w->n_rooms; i++) {
    const dw_room *r = &w->rooms[i];
    uint8_t creeps[DW_TILES] = {0};
    for (uint32_t k = 0; k < r->n; k++) {
      const dw_obj *o = r->objs[k];
      counted++;
      if (o->dead) return "a dead object survived the tick";
      if (k && r->objs[k - 1]->id >= o->id) return "objects out of id order";
      if (dw_find(w, o->id) != o) return "index does not find an object";
      if (o->room != i) return "object in the wrong room";
      if (o->x >= DW_SIZE || o->y >= DW_SIZE) return "object off the map";
      if (o->energy < 0) return "negative energy";
      if ((o->type == DW_T_SPAWN || o->type == DW_T_EXTENSION || o->type == DW_T_CREEP || o->type == DW_T_CONTAINER ||
           o->type == DW_T_TOWER || o->type == DW_T_SOURCE) &&
          o->energy > o->energy_cap) {
        snprintf(why, sizeof why, "energy %d over capacity %d (%s)", o->energy, o->energy_cap, dw_type_name(o->type));
        return why;
      }
      if (o->type == DW_T_CREEP && !o->u.creep.spawning) {
        if (creeps[o->y * DW_SIZE + o->x]++) return "two creeps on one tile";
        if (dw_tile_blocked(w, i, o->x, o->y)) return "a creep inside a wall or obstacle";
        if (o->u.creep.fatigue < 0) return "negative fatigue";
      }
      if (o->type == DW_T_SITE && (o->u.site.progress < 0 || o->u.site.progress >= o->u.site.total))
        return "construction site progress out of range";
      if (o->type == DW_T_CONTROLLER && (o->u.ctl.level > 8 || o->u.ctl.progress < 0)) return "bad controller";
    }
  }
  if (counted != w->index_n) return "index and rooms disagree";
  return NULL;
}

/* Every room's cached hash is the hash of its current encoding: no change escaped the
 * "touched" bookkeeping (which decides what a save rewrites). */
static inline const char *tw_hashes_fresh(const dw_world *w) {
  sim_buf b;
  sim_buf_init(&b);
  const char *why = NULL;
  for (uint32_t i = 0; i < w->n_rooms && !why; i++) {
    sim_buf_clear(&b);
    if (dw_encode_room(w, i, &b) != SIM_OK)
      why = "encode failed";
    else if (sim_hash_bytes(b.data, b.len, 0x69736f776f726c64ull) != w->rooms[i].hash)
      why = "a room changed without being marked";
  }
  sim_buf_release(&b);
  return why;
}

#define tw_assert_invariants(w)                             \
  do {                                                      \
    const char *tw_why_ = tw_invariants(w);                 \
    if (!tw_why_) tw_why_ = tw_hashes_fresh(w);             \
    if (tw_why_) fail_msg("invariant broken: %s", tw_why_); \
  } while (0)

/* ------------------------------------------------------------------ a scripted player */

/* A deterministic C player for long runs: spawns [work, carry, move] creeps, harvests,
 * fills spawns and extensions, upgrades the controller, places and builds roads and
 * extensions, says things, and adds a few intents that are wrong on purpose. It reads
 * the world directly (white-box) and writes the intent wire format. */
typedef struct tw_text {
  char *p;
  size_t len, cap;
  int n;
} tw_text;

static inline void tw_put(tw_text *t, const char *fmt, ...) {
  char one[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(one, sizeof one, fmt, ap);
  va_end(ap);
  if (t->len + (size_t)n + 4 > t->cap) {
    t->cap = (t->cap + (size_t)n + 4) * 2;
    t->p = realloc(t->p, t->cap);
    assert_non_null(t->p);
  }
  if (t->n++) t->p[t->len++] = ',';
  memcpy(t->p + t->len, one, (size_t)n);
  t->len += (size_t)n;
  t->p[t->len] = 0;
}

static inline uint64_t tw_mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  return x ^ (x >> 33);
}

static inline int tw_step_toward(const dw_world *w, const dw_obj *c, const dw_obj *t, int range) {
  sim_dw_goal g = {t->x, t->y, range};
  sim_dw_path_opts o = {.player = c->user};
  static _Thread_local sim_dw_path p;
  if (sim_dw_find_path(&w->base, c->room, c->x, c->y, &g, 1, &o, &p) != SIM_OK || p.n == 0) return 0;
  return p.dir[0];
}

/* The intents of `player` for the coming tick, as JSON text (malloc'd). */
static inline char *tw_bot(const dw_world *w, uint64_t player, uint64_t salt) {
  tw_text t = {0};
  tw_put(&t, "[0]"); /* a harmless broken entry to start: code 0 */
  uint64_t r = tw_mix(salt ^ (w->time * 0x9e3779b97f4a7c15ull) ^ player);
  int creeps = 0;
  for (uint32_t ri = 0; ri < w->n_rooms; ri++)
    for (uint32_t i = 0; i < w->rooms[ri].n; i++)
      creeps += w->rooms[ri].objs[i]->type == DW_T_CREEP && w->rooms[ri].objs[i]->user == player;
  for (uint32_t ri = 0; ri < w->n_rooms; ri++) {
    const dw_room *room = &w->rooms[ri];
    const dw_obj *ctl = dw_controller(w, ri), *spawn = NULL, *site = NULL, *sources[4] = {0}, *sink = NULL;
    int n_sources = 0;
    for (uint32_t i = 0; i < room->n; i++) {
      const dw_obj *o = room->objs[i];
      if (o->type == DW_T_SPAWN && o->user == player) spawn = o;
      if (o->type == DW_T_SITE && o->user == player && !site) site = o;
      if (o->type == DW_T_SOURCE && n_sources < 4) sources[n_sources++] = o;
      if ((o->type == DW_T_SPAWN || o->type == DW_T_EXTENSION) && o->user == player && o->energy < o->energy_cap &&
          !sink)
        sink = o;
    }
    char id[16], id2[16];
    if (spawn && !spawn->u.spawn.creep && creeps < 8 && spawn->energy >= 200) {
      dw_id_format(spawn->id, id);
      tw_put(&t, "[12,\"%s\",\"c%llu_%u\",[\"work\",\"carry\",\"move\"],null]", id, (unsigned long long)w->time, ri);
    }
    if (ctl && ctl->user == player && (r >> 7) % 17 == 0) {
      int x = 2 + (int)((r >> 12) % 46), y = 2 + (int)((r >> 20) % 46);
      if (room->terrain[y * DW_SIZE + x] != DW_WALL)
        tw_put(&t, "[13,\"%s\",%d,%d,\"%s\"]", room->name, x, y, (r >> 30) % 3 ? "road" : "extension");
    }
    for (uint32_t i = 0; i < room->n; i++) {
      const dw_obj *c = room->objs[i];
      if (c->type != DW_T_CREEP || c->user != player || c->u.creep.spawning) continue;
      dw_id_format(c->id, id);
      uint64_t cr = tw_mix(r ^ c->id);
      const dw_obj *src = n_sources ? sources[c->id % (uint64_t)n_sources] : NULL;
      bool harvesting =
          c->energy == 0 || (c->energy < c->energy_cap && src && dw_cheb(c->x, c->y, src->x, src->y) <= 1);
      if (harvesting && src) {
        dw_id_format(src->id, id2);
        if (dw_cheb(c->x, c->y, src->x, src->y) <= 1)
          tw_put(&t, "[2,\"%s\",\"%s\"]", id, id2);
        else {
          int d = tw_step_toward(w, c, src, 1);
          if (d) tw_put(&t, "[1,\"%s\",%d]", id, d);
        }
      } else if (!harvesting) {
        const dw_obj *to = sink ? sink : site && c->id % 4 == 1 ? site : ctl && ctl->user == player ? ctl : NULL;
        if (to) {
          int range = to->type == DW_T_CONTROLLER || to->type == DW_T_SITE ? 3 : 1;
          dw_id_format(to->id, id2);
          if (dw_cheb(c->x, c->y, to->x, to->y) <= range)
            tw_put(&t,
                   to->type == DW_T_CONTROLLER ? "[9,\"%s\",\"%s\"]"
                   : to->type == DW_T_SITE     ? "[7,\"%s\",\"%s\"]"
                                               : "[3,\"%s\",\"%s\",\"energy\",null]",
                   id, id2);
          else {
            int d = tw_step_toward(w, c, to, range);
            if (d) tw_put(&t, "[1,\"%s\",%d]", id, d);
          }
        }
      }
      if (cr % 11 == 0)
        tw_put(&t, "[10,\"%s\",\"t%llu \\ud83d\\ude00\",%s]", id, (unsigned long long)w->time,
               cr % 2 ? "true" : "false");
      if (cr % 23 == 0) tw_put(&t, "[1,\"%s\",%d]", id, 1 + (int)(cr % 8));   /* a random step */
      if (cr % 97 == 0) tw_put(&t, "[6,\"%s\",\"energy\",null]", id);         /* drop all */
      if (cr % 89 == 0) tw_put(&t, "[3,\"%s\",\"%s\",\"energy\",5]", id, id); /* to itself */
    }
  }
  size_t need = t.len + 3;
  char *out = malloc(need);
  assert_non_null(out);
  snprintf(out, need, "[%s]", t.p ? t.p : "");
  free(t.p);
  return out;
}

/* Runs one tick where every known player plays tw_bot. */
static inline void tw_bot_tick(dw_world *w, uint64_t salt) {
  sim_intents b[8];
  char *texts[8];
  size_t n = w->n_players < 8 ? w->n_players : 8;
  memset(b, 0, sizeof b);
  for (size_t i = 0; i < n; i++) {
    texts[i] = tw_bot(w, w->players[i].id, salt);
    b[i] = (sim_intents){.player = w->players[i].id, .data = texts[i], .len = strlen(texts[i])};
  }
  assert_int_equal(sim_world_tick(&w->base, w->time + 1, b, n), SIM_OK);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(b[i].status, SIM_OK);
    free(texts[i]);
  }
}

/* A generated world with two players in their own rooms. */
static inline dw_world *tw_world(uint64_t seed, uint32_t wd, uint32_t ht) {
  sim_world *sw;
  sim_world_options o = {.seed = seed, .width = wd, .height = ht};
  assert_int_equal(sim_world_create(sim_default_game(), &o, &sw, NULL), SIM_OK);
  sim_player_spec a = {.id = TW_ALICE, .username = "alice", .x = -1};
  sim_player_spec b = {.id = TW_BOB, .username = "bob", .x = -1};
  assert_int_equal(sim_world_add_player(sw, &a, NULL), SIM_OK);
  if (wd * ht > 1) assert_int_equal(sim_world_add_player(sw, &b, NULL), SIM_OK);
  return dw_of(sw);
}

/* Saving into memory and loading back. */
typedef struct tw_records {
  sim_record r[8192];
  size_t n;
} tw_records;

static inline int tw_put_record(const char *key, const void *data, size_t len, void *ud) {
  tw_records *rs = ud;
  for (size_t i = 0; i < rs->n; i++)
    if (strcmp(rs->r[i].key, key) == 0) {
      free((void *)rs->r[i].data);
      void *d = malloc(len ? len : 1);
      memcpy(d, data, len);
      rs->r[i].data = d;
      rs->r[i].len = len;
      return 0;
    }
  if (rs->n == 8192) return -1;
  char *k = strdup(key);
  void *d = malloc(len ? len : 1);
  memcpy(d, data, len);
  rs->r[rs->n++] = (sim_record){k, d, len};
  return 0;
}

static inline void tw_records_free(tw_records *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    free((void *)rs->r[i].key);
    free((void *)rs->r[i].data);
  }
  rs->n = 0;
}

#endif
