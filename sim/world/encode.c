/*
 * encode.c — the default world's stored form (version 1), and its strict decoder.
 *
 * Records (keys as given to store_world_put):
 *   "meta"            magic "IWDW", u8 version, u64 seed, u32 width, u32 height,
 *                     u64 time, u64 next_id, u32 players, per player: u64 id, u8 len, name
 *   "terrain:<room>"  u8 version, 625 bytes: 2 bits per tile (tile i at bits 2*(i%4) of
 *                     byte i/4), 0 plain, 1 wall, 2 swamp — written once
 *   "room:<room>"     u8 version, u32 objects, the objects in increasing id order:
 *                     u8 type, u64 id, u8 x, u8 y, u64 user, then per type (below)
 * Integers little-endian; strings u8 length + bytes. Only state is stored: what follows
 * from it (hitsMax of most structures, a creep's hits and capacity) is recomputed.
 *
 * The decoder trusts nothing: every read is bounds-checked, every value range-checked,
 * and the cross-object invariants the rules rely on (unique ids, owners that exist, one
 * controller per room, no two creeps on one tile, spawning creeps inside their spawn) are
 * verified, so a damaged database is refused with SIM_CORRUPT instead of crashing a tick.
 */
#include "world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DW_DATA_VERSION 1
#define T(x, y) ((y)*DW_SIZE + (x))

/* ------------------------------------------------------------------ writing */

typedef struct wr {
  sim_buf *b;
  int rc;
} wr;

static void put(wr *w, const void *p, size_t n) {
  if (w->rc == SIM_OK) w->rc = sim_buf_append(w->b, p, n);
}
static void u8(wr *w, uint64_t v) {
  uint8_t c = (uint8_t)v;
  put(w, &c, 1);
}
static void uN(wr *w, uint64_t v, int bytes) {
  uint8_t c[8];
  for (int i = 0; i < bytes; i++) c[i] = (uint8_t)(v >> (8 * i));
  put(w, c, (size_t)bytes);
}
static void u32(wr *w, uint64_t v) {
  uN(w, v, 4);
}
static void u64(wr *w, uint64_t v) {
  uN(w, v, 8);
}
static void i32(wr *w, int32_t v) {
  uN(w, (uint32_t)v, 4);
}
static void i64(wr *w, int64_t v) {
  uN(w, (uint64_t)v, 8);
}
static void str(wr *w, const char *s) {
  size_t n = strlen(s);
  u8(w, n);
  put(w, s, n);
}

int dw_encode_meta(const dw_world *d, sim_buf *b) {
  wr w = {b, SIM_OK};
  put(&w, "IWDW", 4);
  u8(&w, DW_DATA_VERSION);
  u64(&w, d->seed);
  u32(&w, d->width);
  u32(&w, d->height);
  u64(&w, d->time);
  u64(&w, d->next_id);
  u32(&w, d->n_players);
  for (size_t i = 0; i < d->n_players; i++) {
    u64(&w, d->players[i].id);
    str(&w, d->players[i].username);
  }
  return w.rc;
}

int dw_encode_terrain(const dw_world *d, uint32_t room, sim_buf *b) {
  wr w = {b, SIM_OK};
  u8(&w, DW_DATA_VERSION);
  uint8_t packed[DW_TILES / 4] = {0};
  for (int i = 0; i < DW_TILES; i++) packed[i / 4] |= (uint8_t)(d->rooms[room].terrain[i] << (2 * (i % 4)));
  put(&w, packed, sizeof packed);
  return w.rc;
}

static void encode_object(wr *w, const dw_obj *o) {
  u8(w, o->type);
  u64(w, o->id);
  u8(w, o->x);
  u8(w, o->y);
  u64(w, o->user);
  switch (o->type) {
    case DW_T_SOURCE:
      i32(w, o->energy);
      i32(w, o->energy_cap);
      u64(w, o->u.src.next_regen);
      break;
    case DW_T_CONTROLLER:
      u8(w, o->u.ctl.level);
      i64(w, o->u.ctl.progress);
      u64(w, o->u.ctl.downgrade_time);
      break;
    case DW_T_SPAWN:
      str(w, o->name);
      i32(w, o->energy);
      i32(w, o->hits);
      u64(w, o->u.spawn.creep);
      u32(w, o->u.spawn.need_time);
      u64(w, o->u.spawn.spawn_time);
      break;
    case DW_T_EXTENSION:
      i32(w, o->energy);
      i32(w, o->energy_cap);
      i32(w, o->hits);
      break;
    case DW_T_ROAD:
      i32(w, o->hits);
      i32(w, o->hits_max);
      u64(w, o->u.decay.next_decay);
      break;
    case DW_T_WALL: i32(w, o->hits); break;
    case DW_T_CONTAINER:
      i32(w, o->energy);
      i32(w, o->hits);
      u64(w, o->u.decay.next_decay);
      break;
    case DW_T_TOWER:
      i32(w, o->energy);
      i32(w, o->hits);
      break;
    case DW_T_CREEP: {
      const dw_creep *c = &o->u.creep;
      str(w, o->name);
      u8(w, c->n);
      for (int i = 0; i < c->n; i++) {
        u8(w, c->part[i]);
        u8(w, c->part_hits[i]);
      }
      i32(w, o->energy);
      i32(w, c->fatigue);
      u64(w, c->age_time);
      u8(w, c->spawning);
      u8(w, c->say_len);
      put(w, c->say, c->say_len);
      u8(w, c->say_public);
      break;
    }
    case DW_T_SITE:
      u8(w, o->u.site.stype);
      i32(w, o->u.site.progress);
      i32(w, o->u.site.total);
      str(w, o->name);
      break;
    case DW_T_ENERGY: i32(w, o->energy); break;
    default: break;
  }
}

int dw_encode_room(const dw_world *d, uint32_t room, sim_buf *b) {
  wr w = {b, SIM_OK};
  const dw_room *r = &d->rooms[room];
  uint32_t live = 0;
  for (uint32_t i = 0; i < r->n; i++) live += !r->objs[i]->dead;
  u8(&w, DW_DATA_VERSION);
  u32(&w, live);
  for (uint32_t i = 0; i < r->n; i++)
    if (!r->objs[i]->dead) encode_object(&w, r->objs[i]);
  return w.rc;
}

/* ------------------------------------------------------------------ save */

int dw_save(sim_world *sw, bool all, sim_put_fn putf, void *ud) {
  dw_world *d = dw_of(sw);
  sim_buf b;
  sim_buf_init(&b);
  int rc = dw_encode_meta(d, &b);
  uint64_t mh = rc == SIM_OK ? sim_hash_bytes(b.data, b.len, 1) : 0;
  if (rc == SIM_OK && (all || !d->meta_ever_saved || mh != d->meta_saved_hash)) rc = putf("meta", b.data, b.len, ud);
  char key[32];
  for (uint32_t i = 0; rc == SIM_OK && i < d->n_rooms; i++) {
    dw_room *r = &d->rooms[i];
    if (all || !r->ever_saved) {
      sim_buf_clear(&b);
      snprintf(key, sizeof key, "terrain:%s", r->name);
      if ((rc = dw_encode_terrain(d, i, &b)) == SIM_OK) rc = putf(key, b.data, b.len, ud);
      if (rc != SIM_OK) break;
    }
    if (all || !r->ever_saved || r->hash != r->saved_hash) {
      sim_buf_clear(&b);
      snprintf(key, sizeof key, "room:%s", r->name);
      if ((rc = dw_encode_room(d, i, &b)) == SIM_OK) rc = putf(key, b.data, b.len, ud);
    }
  }
  sim_buf_release(&b);
  return rc;
}

void dw_saved(sim_world *sw) {
  dw_world *d = dw_of(sw);
  sim_buf b;
  sim_buf_init(&b);
  if (dw_encode_meta(d, &b) == SIM_OK) {
    d->meta_saved_hash = sim_hash_bytes(b.data, b.len, 1);
    d->meta_ever_saved = true;
  }
  sim_buf_release(&b);
  for (size_t i = 0; i < d->n_rooms; i++) {
    d->rooms[i].saved_hash = d->rooms[i].hash;
    d->rooms[i].ever_saved = true;
  }
}

/* ------------------------------------------------------------------ reading */

typedef struct rd {
  const uint8_t *p;
  size_t len, pos;
  bool bad;
} rd;

static const uint8_t *take(rd *r, size_t n) {
  if (r->bad || n > r->len - r->pos) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->p + r->pos;
  r->pos += n;
  return p;
}
static uint64_t rN(rd *r, int bytes) {
  const uint8_t *p = take(r, (size_t)bytes);
  uint64_t v = 0;
  if (p)
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint8_t r8(rd *r) {
  return (uint8_t)rN(r, 1);
}
static uint32_t r32(rd *r) {
  return (uint32_t)rN(r, 4);
}
static uint64_t r64(rd *r) {
  return rN(r, 8);
}
static int32_t ri32(rd *r) {
  return (int32_t)(uint32_t)rN(r, 4);
}
static int64_t ri64(rd *r) {
  return (int64_t)rN(r, 8);
}

/* A string of at most max bytes, no NUL, valid UTF-8; into out (max + 1 bytes). */
static bool utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    int extra;
    uint32_t cp;
    if (c == 0) return false;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0)
      extra = 1, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
      extra = 2, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
      extra = 3, cp = c & 0x07;
    else
      return false;
    if (n - i <= (size_t)extra) return false;
    for (int k = 1; k <= extra; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += (size_t)extra + 1;
  }
  return true;
}

static bool rstr(rd *r, char *out, size_t max, bool allow_empty) {
  uint8_t n = r8(r);
  const uint8_t *p = take(r, n);
  if (!p || n > max || (!n && !allow_empty) || !utf8_ok(p, n)) return r->bad = true, false;
  memcpy(out, p, n);
  out[n] = 0;
  return true;
}

typedef struct loadctx {
  dw_world *w;
  char *err;
} loadctx;

static int fail(loadctx *c, int rc, const char *what, const char *key) {
  if (c->err) snprintf(c->err, SIM_ERRMSG_MAX, "world record %s: %s", key ? key : "?", what);
  return rc;
}

static int decode_meta(loadctx *c, const uint8_t *p, size_t len, uint32_t *width, uint32_t *height) {
  rd r = {p, len, 0, false};
  const uint8_t *magic = take(&r, 4);
  if (!magic || memcmp(magic, "IWDW", 4) != 0) return fail(c, SIM_CORRUPT, "not a default-world record", "meta");
  uint8_t v = r8(&r);
  if (!r.bad && v != DW_DATA_VERSION) return fail(c, SIM_VERSION, "unsupported version", "meta");
  uint64_t seed = r64(&r);
  uint32_t wd = r32(&r), ht = r32(&r);
  uint64_t time = r64(&r), next_id = r64(&r);
  uint32_t np = r32(&r);
  if (r.bad) return fail(c, SIM_CORRUPT, "truncated", "meta");
  if (wd < 1 || ht < 1 || wd > SIM_DW_MAX_ROOMS_SIDE || ht > SIM_DW_MAX_ROOMS_SIDE)
    return fail(c, SIM_CORRUPT, "bad world size", "meta");
  if (np > len) return fail(c, SIM_CORRUPT, "bad player count", "meta");
  if (next_id >= (1ull << 60)) return fail(c, SIM_CORRUPT, "bad id counter", "meta");
  dw_world *w = dw_world_alloc(wd, ht, seed);
  if (!w) return SIM_NOMEM;
  w->time = time;
  w->next_id = next_id;
  c->w = w;
  uint64_t last = 0;
  for (uint32_t i = 0; i < np; i++) {
    uint64_t id = r64(&r);
    char name[DW_USERNAME_MAX + 1];
    if (!rstr(&r, name, DW_USERNAME_MAX, false)) return fail(c, SIM_CORRUPT, "bad player", "meta");
    if (id <= last) return fail(c, SIM_CORRUPT, "players out of order", "meta");
    last = id;
    int rc = dw_player_put(w, id, name);
    if (rc == SIM_NOMEM) return rc;
    if (rc != SIM_OK) return fail(c, SIM_CORRUPT, "bad player name", "meta");
  }
  if (r.bad || r.pos != r.len) return fail(c, SIM_CORRUPT, r.bad ? "truncated" : "trailing bytes", "meta");
  *width = wd;
  *height = ht;
  return SIM_OK;
}

static int decode_terrain(loadctx *c, uint32_t room, const uint8_t *p, size_t len, const char *key) {
  if (len != 1 + DW_TILES / 4) return fail(c, SIM_CORRUPT, "wrong length", key);
  if (p[0] != DW_DATA_VERSION) return fail(c, SIM_VERSION, "unsupported version", key);
  for (int i = 0; i < DW_TILES; i++) {
    uint8_t v = (p[1 + i / 4] >> (2 * (i % 4))) & 3;
    if (v > DW_SWAMP) return fail(c, SIM_CORRUPT, "bad terrain value", key);
    c->w->rooms[room].terrain[i] = v;
  }
  return SIM_OK;
}

static bool ok_range(int64_t v, int64_t lo, int64_t hi) {
  return v >= lo && v <= hi;
}

static int decode_object(loadctx *c, uint32_t room, rd *r, dw_obj *o, const char *key) {
  o->type = r8(r);
  o->id = r64(r);
  o->x = r8(r);
  o->y = r8(r);
  o->user = r64(r);
  o->room = room;
  if (r->bad) return fail(c, SIM_CORRUPT, "truncated object", key);
  if (o->type <= DW_T_NONE || o->type >= DW_T_COUNT) return fail(c, SIM_CORRUPT, "bad object type", key);
  if (!o->id || o->id >= (1ull << 60)) return fail(c, SIM_CORRUPT, "bad object id", key);
  if (o->x >= DW_SIZE || o->y >= DW_SIZE) return fail(c, SIM_CORRUPT, "bad position", key);
  if (o->user && !dw_player_get(c->w, o->user)) return fail(c, SIM_CORRUPT, "owner is not a player", key);
  bool owned = o->type == DW_T_SPAWN || o->type == DW_T_EXTENSION || o->type == DW_T_TOWER || o->type == DW_T_CREEP ||
               o->type == DW_T_SITE;
  bool unowned = o->type == DW_T_SOURCE || o->type == DW_T_ROAD || o->type == DW_T_WALL || o->type == DW_T_CONTAINER ||
                 o->type == DW_T_ENERGY;
  if ((owned && !o->user) || (unowned && o->user)) return fail(c, SIM_CORRUPT, "bad owner", key);
  const char *bad = NULL;
  switch (o->type) {
    case DW_T_SOURCE:
      o->energy = ri32(r);
      o->energy_cap = ri32(r);
      o->u.src.next_regen = r64(r);
      if (!ok_range(o->energy_cap, 1, 100000) || !ok_range(o->energy, 0, o->energy_cap)) bad = "bad source";
      break;
    case DW_T_CONTROLLER:
      o->u.ctl.level = r8(r);
      o->u.ctl.progress = ri64(r);
      o->u.ctl.downgrade_time = r64(r);
      /* Progress may exceed the level's total: Screeps holds the level-up back until the
       * downgrade timer is nearly full. */
      if (o->u.ctl.level > 8 || (o->u.ctl.level == 0) != (o->user == 0) || o->u.ctl.progress < 0 ||
          o->u.ctl.progress > 1000000000000ll ||
          ((o->u.ctl.level == 0 || o->u.ctl.level == 8) && o->u.ctl.progress != 0))
        bad = "bad controller";
      break;
    case DW_T_SPAWN:
      rstr(r, o->name, DW_NAME_MAX, false);
      o->energy = ri32(r);
      o->hits = ri32(r);
      o->u.spawn.creep = r64(r);
      o->u.spawn.need_time = r32(r);
      o->u.spawn.spawn_time = r64(r);
      o->energy_cap = DW_SPAWN_ENERGY_CAPACITY;
      o->hits_max = DW_SPAWN_HITS;
      if (!ok_range(o->energy, 0, o->energy_cap) || !ok_range(o->hits, 1, o->hits_max) ||
          o->u.spawn.need_time > DW_MAX_CREEP_SIZE * DW_CREEP_SPAWN_TIME ||
          (!o->u.spawn.creep && (o->u.spawn.need_time || o->u.spawn.spawn_time)))
        bad = "bad spawn";
      break;
    case DW_T_EXTENSION:
      o->energy = ri32(r);
      o->energy_cap = ri32(r);
      o->hits = ri32(r);
      o->hits_max = DW_EXTENSION_HITS;
      if (!ok_range(o->energy_cap, 0, 200) || !ok_range(o->energy, 0, o->energy_cap) ||
          !ok_range(o->hits, 1, o->hits_max))
        bad = "bad extension";
      break;
    case DW_T_ROAD:
      o->hits = ri32(r);
      o->hits_max = ri32(r);
      o->u.decay.next_decay = r64(r);
      if (!ok_range(o->hits_max, 1, DW_ROAD_HITS * DW_CONSTRUCTION_COST_ROAD_WALL_RATIO) ||
          !ok_range(o->hits, 1, o->hits_max))
        bad = "bad road";
      break;
    case DW_T_WALL:
      o->hits = ri32(r);
      o->hits_max = DW_WALL_HITS_MAX;
      if (!ok_range(o->hits, 1, o->hits_max)) bad = "bad wall";
      break;
    case DW_T_CONTAINER:
      o->energy = ri32(r);
      o->hits = ri32(r);
      o->u.decay.next_decay = r64(r);
      o->energy_cap = DW_CONTAINER_CAPACITY;
      o->hits_max = DW_CONTAINER_HITS;
      if (!ok_range(o->energy, 0, o->energy_cap) || !ok_range(o->hits, 1, o->hits_max)) bad = "bad container";
      break;
    case DW_T_TOWER:
      o->energy = ri32(r);
      o->hits = ri32(r);
      o->energy_cap = DW_TOWER_CAPACITY;
      o->hits_max = DW_TOWER_HITS;
      if (!ok_range(o->energy, 0, o->energy_cap) || !ok_range(o->hits, 1, o->hits_max)) bad = "bad tower";
      break;
    case DW_T_CREEP: {
      dw_creep *k = &o->u.creep;
      rstr(r, o->name, DW_NAME_MAX, false);
      k->n = r8(r);
      if (k->n < 1 || k->n > DW_MAX_CREEP_SIZE) {
        bad = "bad body";
        break;
      }
      o->hits = 0;
      for (int i = 0; i < k->n; i++) {
        k->part[i] = r8(r);
        k->part_hits[i] = r8(r);
        if (k->part[i] >= DW_PARTS || k->part_hits[i] > DW_BODYPART_HITS) bad = "bad body part";
        o->hits += k->part_hits[i];
      }
      o->hits_max = k->n * DW_BODYPART_HITS;
      o->energy = ri32(r);
      k->fatigue = ri32(r);
      k->age_time = r64(r);
      uint8_t sp = r8(r);
      k->say_len = r8(r);
      const uint8_t *say = take(r, k->say_len);
      uint8_t pub = r8(r);
      if (r->bad) break;
      k->spawning = sp == 1;
      k->say_public = pub == 1;
      o->energy_cap = dw_creep_capacity(o);
      if (k->say_len > DW_SAY_MAX) {
        k->say_len = 0;
        bad = "bad say";
        break;
      }
      if (sp > 1 || pub > 1 || !utf8_ok(say, k->say_len))
        bad = "bad creep";
      else if (!ok_range(o->energy, 0, o->energy_cap) || !ok_range(k->fatigue, 0, 1000000) || o->hits <= 0)
        bad = "bad creep state";
      else if (k->spawning != (k->age_time == 0))
        bad = "bad creep age";
      if (say) memcpy(k->say, say, k->say_len);
      k->say[k->say_len] = 0;
      break;
    }
    case DW_T_SITE: {
      o->u.site.stype = r8(r);
      o->u.site.progress = ri32(r);
      o->u.site.total = ri32(r);
      rstr(r, o->name, DW_NAME_MAX, true);
      int cost = dw_construction_cost(o->u.site.stype);
      int32_t t = o->u.site.total;
      if (!cost || !(t == cost || (o->u.site.stype == DW_T_ROAD && (t == cost * DW_CONSTRUCTION_COST_ROAD_SWAMP_RATIO ||
                                                                    t == cost * DW_CONSTRUCTION_COST_ROAD_WALL_RATIO))))
        bad = "bad construction site";
      else if (!ok_range(o->u.site.progress, 0, t - 1))
        bad = "bad construction progress";
      else if ((o->name[0] != 0) != (o->u.site.stype == DW_T_SPAWN))
        bad = "bad construction site name";
      break;
    }
    case DW_T_ENERGY:
      o->energy = ri32(r);
      if (!ok_range(o->energy, 1, 1000000000)) bad = "bad dropped energy";
      break;
    default: break;
  }
  if (r->bad) return fail(c, SIM_CORRUPT, "truncated object", key);
  if (bad) return fail(c, SIM_CORRUPT, bad, key);
  return SIM_OK;
}

static int decode_room(loadctx *c, uint32_t room, const uint8_t *p, size_t len, const char *key) {
  rd r = {p, len, 0, false};
  uint8_t v = r8(&r);
  uint32_t n = r32(&r);
  if (r.bad) return fail(c, SIM_CORRUPT, "truncated", key);
  if (v != DW_DATA_VERSION) return fail(c, SIM_VERSION, "unsupported version", key);
  if (n > len / 20) return fail(c, SIM_CORRUPT, "bad object count", key);
  uint64_t last = 0;
  for (uint32_t i = 0; i < n; i++) {
    dw_obj *o = calloc(1, sizeof *o);
    if (!o) return SIM_NOMEM;
    int rc = decode_object(c, room, &r, o, key);
    if (rc == SIM_OK && o->id <= last) rc = fail(c, SIM_CORRUPT, "objects out of id order", key);
    if (rc == SIM_OK) {
      last = o->id;
      rc = dw_insert(c->w, o);
      if (rc == SIM_EXISTS) rc = fail(c, SIM_CORRUPT, "duplicate object id", key);
    }
    if (rc != SIM_OK) {
      free(o);
      return rc;
    }
  }
  if (r.pos != r.len) return fail(c, SIM_CORRUPT, "trailing bytes", key);
  return SIM_OK;
}

static int cmp_creep_names(const void *a, const void *b) {
  const dw_obj *x = *(const dw_obj *const *)a, *y = *(const dw_obj *const *)b;
  if (x->user != y->user) return x->user < y->user ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Invariants across objects, once everything is in. */
static int check_world(loadctx *c) {
  dw_world *w = c->w;
  size_t n_creeps = 0;
  for (uint32_t i = 0; i < w->n_rooms; i++) {
    dw_room *r = &w->rooms[i];
    uint8_t creep_at[DW_TILES] = {0};
    int controllers = 0;
    for (uint32_t k = 0; k < r->n; k++) {
      dw_obj *o = r->objs[k];
      if (o->type == DW_T_CONTROLLER) controllers++;
      if (o->type == DW_T_CREEP) n_creeps++;
      if (o->type == DW_T_CREEP && !o->u.creep.spawning) {
        if (creep_at[T(o->x, o->y)]++) return fail(c, SIM_CORRUPT, "two creeps on one tile", r->name);
        if (dw_tile_blocked(w, i, o->x, o->y)) return fail(c, SIM_CORRUPT, "creep inside an obstacle", r->name);
      }
      if (o->type == DW_T_CREEP && o->u.creep.spawning) {
        bool inside = false;
        for (uint32_t j = 0; j < r->n; j++) {
          dw_obj *s = r->objs[j];
          if (s->type == DW_T_SPAWN && s->u.spawn.creep == o->id && s->x == o->x && s->y == o->y && s->user == o->user)
            inside = true;
        }
        if (!inside) return fail(c, SIM_CORRUPT, "spawning creep without its spawn", r->name);
      }
      if (o->type == DW_T_SPAWN && o->u.spawn.creep) {
        dw_obj *sc = dw_find(w, o->u.spawn.creep);
        if (!sc || sc->type != DW_T_CREEP || !sc->u.creep.spawning || sc->room != i)
          return fail(c, SIM_CORRUPT, "spawn spawning a creep that is not there", r->name);
      }
    }
    if (controllers > 1) return fail(c, SIM_CORRUPT, "two controllers", r->name);
  }
  if (n_creeps) {
    dw_obj **all = malloc(n_creeps * sizeof *all);
    if (!all) return SIM_NOMEM;
    size_t k = 0;
    for (uint32_t i = 0; i < w->n_rooms; i++)
      for (uint32_t j = 0; j < w->rooms[i].n; j++)
        if (w->rooms[i].objs[j]->type == DW_T_CREEP) all[k++] = w->rooms[i].objs[j];
    qsort(all, k, sizeof *all, cmp_creep_names);
    for (size_t j = 1; j < k; j++)
      if (cmp_creep_names(&all[j - 1], &all[j]) == 0) {
        free(all);
        return fail(c, SIM_CORRUPT, "two creeps of one player with the same name", NULL);
      }
    free(all);
  }
  /* Every id must have come from the counter, or the counter would hand it out again. */
  for (uint32_t i = 0; i < w->n_rooms; i++)
    for (uint32_t j = 0; j < w->rooms[i].n; j++) {
      uint64_t k = dw_counter_of_id(w->rooms[i].objs[j]->id);
      if (k == 0 || k > w->next_id) return fail(c, SIM_CORRUPT, "object id not yet issued", w->rooms[i].name);
    }
  return SIM_OK;
}

static bool has_prefix(const char *key, const char *prefix, const char **rest) {
  size_t n = strlen(prefix);
  if (strncmp(key, prefix, n) != 0) return false;
  *rest = key + n;
  return true;
}

int dw_load(const sim_record *recs, size_t n, sim_world **out, char *err) {
  loadctx c = {NULL, err};
  const sim_record *meta = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!recs[i].key || (recs[i].len && !recs[i].data)) return SIM_INVALID;
    if (strcmp(recs[i].key, "meta") == 0) {
      if (meta) return fail(&c, SIM_CORRUPT, "duplicate", "meta");
      meta = &recs[i];
    }
  }
  if (!meta) return fail(&c, SIM_CORRUPT, "missing", "meta");
  uint32_t wd, ht;
  int rc = decode_meta(&c, meta->data, meta->len, &wd, &ht);
  if (rc != SIM_OK) goto fail;
  size_t nr = c.w->n_rooms;
  uint8_t *seen_t = calloc(nr, 1), *seen_r = calloc(nr, 1);
  if (!seen_t || !seen_r) {
    free(seen_t);
    free(seen_r);
    rc = SIM_NOMEM;
    goto fail;
  }
  for (size_t i = 0; rc == SIM_OK && i < n; i++) {
    const char *key = recs[i].key, *name;
    if (&recs[i] == meta) continue;
    bool terrain = has_prefix(key, "terrain:", &name);
    if (!terrain && !has_prefix(key, "room:", &name)) {
      rc = fail(&c, SIM_CORRUPT, "unknown key", key);
      break;
    }
    uint32_t room;
    if (dw_room_lookup(c.w, name, strnlen(name, DW_ROOM_NAME_MAX), &room) != SIM_OK) {
      rc = fail(&c, SIM_CORRUPT, "no such room in this world", key);
      break;
    }
    uint8_t *seen = terrain ? seen_t : seen_r;
    if (seen[room]++) {
      rc = fail(&c, SIM_CORRUPT, "duplicate", key);
      break;
    }
    rc = terrain ? decode_terrain(&c, room, recs[i].data, recs[i].len, key)
                 : decode_room(&c, room, recs[i].data, recs[i].len, key);
  }
  for (size_t i = 0; rc == SIM_OK && i < nr; i++)
    if (!seen_t[i] || !seen_r[i]) rc = fail(&c, SIM_CORRUPT, "missing", c.w->rooms[i].name);
  free(seen_t);
  free(seen_r);
  if (rc == SIM_OK) rc = check_world(&c);
  if (rc == SIM_OK) rc = dw_rehash(c.w);
  if (rc != SIM_OK) goto fail;
  /* What was loaded is what is stored. */
  dw_saved(&c.w->base);
  *out = &c.w->base;
  return SIM_OK;
fail:
  dw_world_free(c.w);
  return rc;
}
