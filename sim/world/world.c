/*
 * world.c — the default world's state: rooms, objects, ids, players, and the sim_game
 * table that exposes it. The rules live in apply.c, generation in terrain.c, bytes in
 * encode.c and view.c, paths in path.c.
 *
 * Object ids: a world-wide counter, scrambled by a bijection on 60 bits so ids look like
 * Screeps' hex ids (15 hex digits) while staying unique and reproducible.
 */
#include "world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ names and tables */

static const char *const TYPE_NAMES[DW_T_COUNT] = {
    [DW_T_NONE] = "",
    [DW_T_SOURCE] = "source",
    [DW_T_CONTROLLER] = "controller",
    [DW_T_SPAWN] = "spawn",
    [DW_T_EXTENSION] = "extension",
    [DW_T_ROAD] = "road",
    [DW_T_WALL] = "constructedWall",
    [DW_T_CONTAINER] = "container",
    [DW_T_TOWER] = "tower",
    [DW_T_CREEP] = "creep",
    [DW_T_SITE] = "constructionSite",
    [DW_T_ENERGY] = "energy",
};

static const char *const PART_NAMES[DW_PARTS] = {"move",          "work",  "carry", "attack",
                                                 "ranged_attack", "tough", "heal",  "claim"};

const int DW_BODYPART_COST[DW_PARTS] = {50, 100, 50, 80, 150, 10, 250, 600};

const char *dw_type_name(int type) {
  return type > 0 && type < DW_T_COUNT ? TYPE_NAMES[type] : "";
}

int dw_type_from_name(const char *s, size_t len) {
  for (int t = 1; t < DW_T_COUNT; t++)
    if (strlen(TYPE_NAMES[t]) == len && memcmp(TYPE_NAMES[t], s, len) == 0) return t;
  return DW_T_NONE;
}

const char *dw_part_name(int part) {
  return part >= 0 && part < DW_PARTS ? PART_NAMES[part] : "";
}

int dw_part_from_name(const char *s, size_t len) {
  for (int p = 0; p < DW_PARTS; p++)
    if (strlen(PART_NAMES[p]) == len && memcmp(PART_NAMES[p], s, len) == 0) return p;
  return -1;
}

bool dw_is_obstacle_type(int type) {
  switch (type) {
    case DW_T_SPAWN:
    case DW_T_CREEP:
    case DW_T_SOURCE:
    case DW_T_CONTROLLER:
    case DW_T_WALL:
    case DW_T_EXTENSION:
    case DW_T_TOWER: return true;
    default: return false;
  }
}

bool dw_is_structure_type(int type) {
  return dw_construction_cost(type) > 0;
}

int dw_construction_cost(int stype) {
  switch (stype) {
    case DW_T_SPAWN: return 15000;
    case DW_T_EXTENSION: return 3000;
    case DW_T_ROAD: return 300;
    case DW_T_WALL: return 1;
    case DW_T_CONTAINER: return 5000;
    case DW_T_TOWER: return 5000;
    default: return 0;
  }
}

int dw_controller_structures(int stype, int level) {
  static const int spawn[9] = {0, 1, 1, 1, 1, 1, 1, 2, 3};
  static const int ext[9] = {0, 0, 5, 10, 20, 30, 40, 50, 60};
  static const int wall[9] = {0, 0, 2500, 2500, 2500, 2500, 2500, 2500, 2500};
  static const int tower[9] = {0, 0, 0, 1, 1, 2, 2, 3, 6};
  if (level < 0 || level > 8) return 0;
  switch (stype) {
    case DW_T_SPAWN: return spawn[level];
    case DW_T_EXTENSION: return ext[level];
    case DW_T_ROAD: return 2500;
    case DW_T_WALL: return wall[level];
    case DW_T_CONTAINER: return 5;
    case DW_T_TOWER: return tower[level];
    default: return 0;
  }
}

int dw_direction(int dx, int dy) {
  for (int d = 1; d <= 8; d++)
    if (DW_DIR_DX[d] == dx && DW_DIR_DY[d] == dy) return d;
  return 0;
}

int dw_parts(const dw_obj *c, int part) {
  int n = 0;
  for (int i = 0; i < c->u.creep.n; i++) n += c->u.creep.part[i] == part;
  return n;
}

int dw_active_parts(const dw_obj *c, int part) {
  int n = 0;
  for (int i = 0; i < c->u.creep.n; i++) n += c->u.creep.part[i] == part && c->u.creep.part_hits[i] > 0;
  return n;
}

int dw_creep_capacity(const dw_obj *c) {
  return dw_active_parts(c, DW_CARRY) * DW_CARRY_CAPACITY;
}

/* ------------------------------------------------------------------ ids */

#define ID_MASK ((1ull << 60) - 1)

/* Multiplication by an odd constant and xor with a right shift are both bijections on
 * 60-bit values, so distinct counters give distinct ids, and 0 only for 0. */
uint64_t dw_id_of_counter(uint64_t c) {
  uint64_t x = c & ID_MASK;
  x = (x * 0x9e3779b97f4a7c15ull) & ID_MASK;
  x ^= x >> 29;
  x = (x * 0xbf58476d1ce4e5b9ull) & ID_MASK;
  x ^= x >> 32;
  return x;
}

static uint64_t inverse_odd(uint64_t m) {
  uint64_t inv = m; /* Newton's iteration doubles the correct low bits each step */
  for (int i = 0; i < 6; i++) inv *= 2 - m * inv;
  return inv;
}

uint64_t dw_counter_of_id(uint64_t id) {
  uint64_t x = id & ID_MASK;
  x ^= x >> 32;
  x = (x * inverse_odd(0xbf58476d1ce4e5b9ull)) & ID_MASK;
  x ^= (x >> 29) ^ (x >> 58);
  x = (x * inverse_odd(0x9e3779b97f4a7c15ull)) & ID_MASK;
  return x;
}

void dw_id_format(uint64_t id, char *buf) {
  static const char hex[] = "0123456789abcdef";
  for (int i = DW_ID_HEX - 1; i >= 0; i--, id >>= 4) buf[i] = hex[id & 15];
  buf[DW_ID_HEX] = 0;
}

uint64_t dw_id_parse(const char *s, size_t len) {
  if (len != DW_ID_HEX) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return 0;
    v = (v << 4) | (uint64_t)d;
  }
  return v;
}

/* ------------------------------------------------------------------ the id index */

static size_t slot_of(uint64_t id, size_t cap) {
  uint64_t h = id * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 32) & (cap - 1);
}

static int index_grow(dw_world *w) {
  size_t cap = w->index_cap ? w->index_cap * 2 : 1024;
  dw_obj **t = calloc(cap, sizeof *t);
  if (!t) return SIM_NOMEM;
  for (size_t i = 0; i < w->index_cap; i++) {
    dw_obj *o = w->index[i];
    if (!o) continue;
    size_t s = slot_of(o->id, cap);
    while (t[s]) s = (s + 1) & (cap - 1);
    t[s] = o;
  }
  free(w->index);
  w->index = t;
  w->index_cap = cap;
  return SIM_OK;
}

static int index_add(dw_world *w, dw_obj *o) {
  if ((w->index_n + 1) * 2 > w->index_cap && index_grow(w) != SIM_OK) return SIM_NOMEM;
  size_t s = slot_of(o->id, w->index_cap);
  while (w->index[s]) {
    if (w->index[s]->id == o->id) return SIM_EXISTS;
    s = (s + 1) & (w->index_cap - 1);
  }
  w->index[s] = o;
  w->index_n++;
  return SIM_OK;
}

static void index_remove(dw_world *w, uint64_t id) {
  if (!w->index_cap) return;
  size_t mask = w->index_cap - 1, s = slot_of(id, w->index_cap);
  while (w->index[s] && w->index[s]->id != id) s = (s + 1) & mask;
  if (!w->index[s]) return;
  w->index[s] = NULL;
  w->index_n--;
  /* Backward-shift the cluster after the hole so lookups never stop early. */
  size_t hole = s;
  for (size_t j = (s + 1) & mask; w->index[j]; j = (j + 1) & mask) {
    size_t home = slot_of(w->index[j]->id, w->index_cap);
    bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      w->index[hole] = w->index[j];
      w->index[j] = NULL;
      hole = j;
    }
  }
}

dw_obj *dw_find(const dw_world *w, uint64_t id) {
  if (!id || !w->index_cap) return NULL;
  size_t mask = w->index_cap - 1, s = slot_of(id, w->index_cap);
  while (w->index[s]) {
    if (w->index[s]->id == id) return w->index[s];
    s = (s + 1) & mask;
  }
  return NULL;
}

/* ------------------------------------------------------------------ objects in rooms */

static int room_insert(dw_room *r, dw_obj *o) {
  if (r->n == r->cap) {
    uint32_t cap = r->cap ? r->cap * 2 : 16;
    dw_obj **p = realloc(r->objs, cap * sizeof *p);
    if (!p) return SIM_NOMEM;
    r->objs = p;
    r->cap = cap;
  }
  uint32_t lo = 0, hi = r->n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (r->objs[mid]->id < o->id)
      lo = mid + 1;
    else
      hi = mid;
  }
  memmove(&r->objs[lo + 1], &r->objs[lo], (r->n - lo) * sizeof *r->objs);
  r->objs[lo] = o;
  r->n++;
  r->touched = true;
  return SIM_OK;
}

static void room_remove(dw_room *r, const dw_obj *o) {
  for (uint32_t i = 0; i < r->n; i++) {
    if (r->objs[i] != o) continue;
    memmove(&r->objs[i], &r->objs[i + 1], (r->n - i - 1) * sizeof *r->objs);
    r->n--;
    r->touched = true;
    return;
  }
}

int dw_insert(dw_world *w, dw_obj *o) {
  int rc = index_add(w, o);
  if (rc != SIM_OK) return rc;
  if ((rc = room_insert(&w->rooms[o->room], o)) != SIM_OK) {
    index_remove(w, o->id);
    return rc;
  }
  return SIM_OK;
}

dw_obj *dw_spawn_object(dw_world *w, uint32_t room, uint8_t type, int x, int y) {
  dw_obj *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->id = dw_id_of_counter(++w->next_id);
  o->room = room;
  o->type = type;
  o->x = (uint8_t)x;
  o->y = (uint8_t)y;
  if (dw_insert(w, o) != SIM_OK) {
    free(o);
    return NULL;
  }
  return o;
}

void dw_touch(dw_world *w, const dw_obj *o) {
  w->rooms[o->room].touched = true;
}

void dw_kill(dw_world *w, dw_obj *o) {
  if (o->dead) return;
  o->dead = true;
  index_remove(w, o->id);
  dw_touch(w, o);
}

void dw_sweep(dw_world *w) {
  for (size_t ri = 0; ri < w->n_rooms; ri++) {
    dw_room *r = &w->rooms[ri];
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n; i++) {
      if (r->objs[i]->dead)
        free(r->objs[i]);
      else
        r->objs[k++] = r->objs[i];
    }
    r->n = k;
  }
}

int dw_move_room(dw_world *w, dw_obj *o, uint32_t room, int x, int y) {
  dw_room *to = &w->rooms[room];
  /* Make space first so a failure leaves o where it was. */
  if (to->n == to->cap) {
    uint32_t cap = to->cap ? to->cap * 2 : 16;
    dw_obj **p = realloc(to->objs, cap * sizeof *p);
    if (!p) return SIM_NOMEM;
    to->objs = p;
    to->cap = cap;
  }
  room_remove(&w->rooms[o->room], o);
  o->room = room;
  o->x = (uint8_t)x;
  o->y = (uint8_t)y;
  return room_insert(to, o); /* cannot fail now */
}

dw_obj *dw_controller(const dw_world *w, uint32_t room) {
  const dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++)
    if (r->objs[i]->type == DW_T_CONTROLLER && !r->objs[i]->dead) return r->objs[i];
  return NULL;
}

/* ------------------------------------------------------------------ rooms */

/* Rooms are W<n>N<m>: the world lies in Screeps' north-west quadrant with W1N1 at its
 * south-east corner, so a 1x1 world is the tutorial's W1N1 and going east (x+1) goes from
 * W2 to W1, going north (y-1) from N1 to N2, as on Screeps. */
void dw_room_name(uint32_t ix, uint32_t iy, uint32_t width, uint32_t height, char *out) {
  snprintf(out, DW_ROOM_NAME_MAX, "W%uN%u", (unsigned)(width - ix), (unsigned)(height - iy));
}

static bool parse_uint(const char *s, size_t len, size_t *pos, uint32_t *out) {
  size_t i = *pos, start = i;
  uint32_t v = 0;
  while (i < len && s[i] >= '0' && s[i] <= '9') {
    if (i - start >= 6) return false;
    v = v * 10 + (uint32_t)(s[i] - '0');
    i++;
  }
  if (i == start || (s[start] == '0' && i - start > 1)) return false;
  *pos = i;
  *out = v;
  return true;
}

int dw_room_lookup(const dw_world *w, const char *name, size_t len, uint32_t *out) {
  size_t pos = 0;
  uint32_t a, b;
  if (len < 4 || name[pos++] != 'W' || !parse_uint(name, len, &pos, &a)) return SIM_NOTFOUND;
  if (pos >= len || name[pos++] != 'N' || !parse_uint(name, len, &pos, &b) || pos != len) return SIM_NOTFOUND;
  if (a < 1 || a > w->width || b < 1 || b > w->height) return SIM_NOTFOUND;
  uint32_t ix = w->width - a, iy = w->height - b;
  *out = iy * w->width + ix;
  return SIM_OK;
}

/* ------------------------------------------------------------------ players */

const dw_player *dw_player_get(const dw_world *w, uint64_t id) {
  size_t lo = 0, hi = w->n_players;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (w->players[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < w->n_players && w->players[lo].id == id ? &w->players[lo] : NULL;
}

static bool valid_username(const char *u) {
  if (!u) return false;
  size_t n = strnlen(u, DW_USERNAME_MAX + 1);
  if (n == 0 || n > DW_USERNAME_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)u[i] < 0x20 || u[i] == '"' || u[i] == '\\') return false;
  return true;
}

int dw_player_put(dw_world *w, uint64_t id, const char *username) {
  if (!id || !valid_username(username)) return SIM_INVALID;
  size_t lo = 0, hi = w->n_players;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (w->players[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < w->n_players && w->players[lo].id == id) {
    snprintf(w->players[lo].username, sizeof w->players[lo].username, "%s", username);
    return SIM_OK;
  }
  if (w->n_players == w->cap_players) {
    size_t cap = w->cap_players ? w->cap_players * 2 : 8;
    dw_player *p = realloc(w->players, cap * sizeof *p);
    if (!p) return SIM_NOMEM;
    w->players = p;
    w->cap_players = cap;
  }
  memmove(&w->players[lo + 1], &w->players[lo], (w->n_players - lo) * sizeof *w->players);
  w->players[lo].id = id;
  snprintf(w->players[lo].username, sizeof w->players[lo].username, "%s", username);
  w->n_players++;
  return SIM_OK;
}

static void player_delete(dw_world *w, uint64_t id) {
  for (size_t i = 0; i < w->n_players; i++) {
    if (w->players[i].id != id) continue;
    memmove(&w->players[i], &w->players[i + 1], (w->n_players - i - 1) * sizeof *w->players);
    w->n_players--;
    return;
  }
}

/* ------------------------------------------------------------------ lifecycle */

dw_world *dw_world_alloc(uint32_t width, uint32_t height, uint64_t seed) {
  dw_world *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->base.game = sim_default_game();
  w->seed = seed;
  w->width = width;
  w->height = height;
  w->n_rooms = (size_t)width * height;
  w->rooms = calloc(w->n_rooms, sizeof *w->rooms);
  if (!w->rooms) {
    free(w);
    return NULL;
  }
  for (uint32_t iy = 0; iy < height; iy++)
    for (uint32_t ix = 0; ix < width; ix++) {
      dw_room *r = &w->rooms[iy * width + ix];
      r->ix = ix;
      r->iy = iy;
      r->touched = true;
      dw_room_name(ix, iy, width, height, r->name);
    }
  return w;
}

void dw_world_free(dw_world *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_rooms; i++) {
    for (uint32_t k = 0; k < w->rooms[i].n; k++) free(w->rooms[i].objs[k]);
    free(w->rooms[i].objs);
  }
  free(w->rooms);
  free(w->players);
  free(w->index);
  free(w);
}

int dw_rehash(dw_world *w) {
  sim_buf b;
  sim_buf_init(&b);
  int rc = SIM_OK;
  for (size_t i = 0; i < w->n_rooms && rc == SIM_OK; i++) {
    dw_room *r = &w->rooms[i];
    if (!r->touched) continue;
    sim_buf_clear(&b);
    if ((rc = dw_encode_room(w, (uint32_t)i, &b)) != SIM_OK) break;
    r->hash = sim_hash_bytes(b.data, b.len, 0x69736f776f726c64ull);
    r->touched = false;
  }
  sim_buf_release(&b);
  return rc;
}

static int g_create(const sim_world_options *o, sim_world **out, char *err) {
  uint32_t wd = o->width ? o->width : 1, ht = o->height ? o->height : 1;
  if (wd > SIM_DW_MAX_ROOMS_SIDE || ht > SIM_DW_MAX_ROOMS_SIDE) {
    if (err) snprintf(err, SIM_ERRMSG_MAX, "world size %ux%u: at most %d rooms a side", wd, ht, SIM_DW_MAX_ROOMS_SIDE);
    return SIM_INVALID;
  }
  dw_world *w = dw_world_alloc(wd, ht, o->seed);
  if (!w) return SIM_NOMEM;
  w->time = o->time;
  int rc = dw_generate(w);
  if (rc == SIM_OK) rc = dw_rehash(w);
  if (rc != SIM_OK) {
    dw_world_free(w);
    return rc;
  }
  *out = &w->base;
  return SIM_OK;
}

static void g_free(sim_world *sw) {
  dw_world_free(dw_of(sw));
}

/* ------------------------------------------------------------------ players in the world */

static bool room_is_free(const dw_world *w, uint32_t room) {
  const dw_obj *c = dw_controller(w, room);
  if (!c || c->user) return false;
  const dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++)
    if (r->objs[i]->user) return false;
  return true;
}

static bool player_has_objects(const dw_world *w, uint64_t id) {
  for (size_t i = 0; i < w->n_rooms; i++)
    for (uint32_t k = 0; k < w->rooms[i].n; k++)
      if (w->rooms[i].objs[k]->user == id && !w->rooms[i].objs[k]->dead) return true;
  return false;
}

static bool valid_name(const char *s, size_t max) {
  size_t n = strnlen(s, max + 1);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\') return false;
  return true;
}

static int g_add_player(sim_world *sw, const sim_player_spec *p, char *room_out) {
  dw_world *w = dw_of(sw);
  if (!p->id || !valid_username(p->username)) return SIM_INVALID;
  const char *spawn_name = p->spawn_name ? p->spawn_name : "Spawn1";
  if (!valid_name(spawn_name, DW_NAME_MAX)) return SIM_INVALID;
  if (player_has_objects(w, p->id)) return SIM_EXISTS;
  uint32_t room = 0;
  if (p->room) {
    if (dw_room_lookup(w, p->room, strlen(p->room), &room) != SIM_OK) return SIM_NOTFOUND;
    if (!room_is_free(w, room)) return SIM_NOROOM;
  } else {
    bool found = false;
    for (uint32_t i = 0; i < w->n_rooms && !found; i++)
      if (room_is_free(w, i)) room = i, found = true;
    if (!found) return SIM_NOROOM;
  }
  int x = p->x, y = p->y;
  if (x >= 0) {
    if (x < 1 || x > 48 || y < 1 || y > 48 || dw_tile_blocked(w, room, x, y)) return SIM_NOROOM;
    const dw_room *r = &w->rooms[room];
    for (uint32_t i = 0; i < r->n; i++)
      if (r->objs[i]->x == x && r->objs[i]->y == y) return SIM_NOROOM;
  } else if (dw_place_spawn(w, room, &x, &y) != SIM_OK) {
    return SIM_NOROOM;
  }
  int rc = dw_player_put(w, p->id, p->username);
  if (rc != SIM_OK) return rc;
  dw_obj *s = dw_spawn_object(w, room, DW_T_SPAWN, x, y);
  if (!s) return SIM_NOMEM;
  s->user = p->id;
  snprintf(s->name, sizeof s->name, "%s", spawn_name);
  s->energy = DW_SPAWN_ENERGY_START;
  s->energy_cap = DW_SPAWN_ENERGY_CAPACITY;
  s->hits = s->hits_max = DW_SPAWN_HITS;
  dw_obj *c = dw_controller(w, room);
  c->user = p->id;
  c->u.ctl.level = 1;
  c->u.ctl.progress = 0;
  c->u.ctl.downgrade_time = w->time + (uint64_t)DW_CONTROLLER_DOWNGRADE[1] + 1;
  dw_touch(w, c);
  if (room_out) snprintf(room_out, DW_ROOM_NAME_MAX, "%s", w->rooms[room].name);
  return dw_rehash(w);
}

static int g_remove_player(sim_world *sw, uint64_t id) {
  dw_world *w = dw_of(sw);
  bool known = dw_player_get(w, id) != NULL;
  bool any = false;
  for (size_t i = 0; i < w->n_rooms; i++) {
    dw_room *r = &w->rooms[i];
    for (uint32_t k = 0; k < r->n; k++) {
      dw_obj *o = r->objs[k];
      if (o->user != id || o->dead) continue;
      any = true;
      if (o->type == DW_T_CONTROLLER) {
        o->user = 0;
        o->u.ctl.level = 0;
        o->u.ctl.progress = 0;
        o->u.ctl.downgrade_time = 0;
        dw_touch(w, o);
      } else {
        dw_kill(w, o);
      }
    }
  }
  /* Spawns that were spawning a removed creep of someone else cannot exist (creeps belong
   * to the spawn's owner), so no dangling spawning remains. */
  dw_sweep(w);
  if (!known && !any) return SIM_NOTFOUND;
  player_delete(w, id);
  return dw_rehash(w);
}

static int g_suggest_room(const sim_world *sw, char *room_out) {
  const dw_world *w = dw_cof(sw);
  for (uint32_t i = 0; i < w->n_rooms; i++) {
    if (!room_is_free(w, i)) continue;
    snprintf(room_out, DW_ROOM_NAME_MAX, "%s", w->rooms[i].name);
    return SIM_OK;
  }
  return SIM_NOROOM;
}

static size_t g_room_count(const sim_world *sw) {
  return dw_cof(sw)->n_rooms;
}
static const char *g_room_name(const sim_world *sw, size_t room) {
  return dw_cof(sw)->rooms[room].name;
}

static int g_room_index(const sim_world *sw, const char *name, size_t *out) {
  uint32_t r;
  int rc = dw_room_lookup(dw_cof(sw), name, strlen(name), &r);
  if (rc == SIM_OK) *out = r;
  return rc;
}

/* Screeps' visibility: rooms with one of the player's creeps or structures (including
 * a controller they own). Construction sites give no vision. */
static int g_visible_rooms(const sim_world *sw, uint64_t player, size_t *out, size_t cap, size_t *n) {
  const dw_world *w = dw_cof(sw);
  size_t k = 0;
  if (player)
    for (size_t i = 0; i < w->n_rooms; i++) {
      const dw_room *r = &w->rooms[i];
      for (uint32_t j = 0; j < r->n; j++) {
        const dw_obj *o = r->objs[j];
        if (o->user != player || o->type == DW_T_SITE) continue;
        if (k < cap) out[k] = i;
        k++;
        break;
      }
    }
  *n = k;
  return SIM_OK;
}

static int g_owned_rooms(const sim_world *sw, uint64_t player, size_t *out, size_t cap, size_t *n) {
  const dw_world *w = dw_cof(sw);
  size_t k = 0;
  for (uint32_t i = 0; player && i < w->n_rooms; i++) {
    const dw_obj *c = dw_controller(w, i);
    if (!c || c->user != player) continue;
    if (k < cap) out[k] = i;
    k++;
  }
  *n = k;
  return SIM_OK;
}

static uint64_t g_time(const sim_world *sw) {
  return dw_cof(sw)->time;
}

static uint64_t g_seed(const sim_world *sw) {
  return dw_cof(sw)->seed;
}

static uint64_t g_hash(const sim_world *sw) {
  const dw_world *w = dw_cof(sw);
  sim_buf b;
  sim_buf_init(&b);
  uint64_t h = 0;
  if (dw_encode_meta(w, &b) == SIM_OK) h = sim_hash_bytes(b.data, b.len, 0x6d657461ull);
  sim_buf_release(&b);
  for (size_t i = 0; i < w->n_rooms; i++) {
    uint8_t pair[16];
    for (int k = 0; k < 8; k++) {
      pair[k] = (uint8_t)(h >> (8 * k));
      pair[8 + k] = (uint8_t)(w->rooms[i].hash >> (8 * k));
    }
    h = sim_hash_bytes(pair, sizeof pair, i);
  }
  return h;
}

static const sim_host_fn_def HOST_FNS[] = {
    {"findPath", dw_host_find_path},
    {"terrain", dw_host_terrain},
};

/* The player API, evaluated in this order in the startup snapshot (sim/js/README.md). */
extern const char dw_js_lodash[], dw_js_constants[], dw_js_world[];
static const char *const JS_SOURCES[] = {dw_js_lodash, dw_js_constants, dw_js_world};

static const sim_game DEFAULT_GAME = {
    .name = "default",
    .data_version = 1,
    .create = g_create,
    .load = dw_load,
    .free = g_free,
    .save = dw_save,
    .saved = dw_saved,
    .add_player = g_add_player,
    .remove_player = g_remove_player,
    .suggest_room = g_suggest_room,
    .room_count = g_room_count,
    .room_name = g_room_name,
    .room_index = g_room_index,
    .visible_rooms = g_visible_rooms,
    .owned_rooms = g_owned_rooms,
    .room_view = dw_room_view,
    .room_terrain = dw_room_terrain,
    .tick = dw_tick,
    .time = g_time,
    .hash = g_hash,
    .seed = g_seed,
    .room_objects = dw_room_objects,
    .host_fns = HOST_FNS,
    .n_host_fns = sizeof HOST_FNS / sizeof HOST_FNS[0],
    .js_sources = JS_SOURCES,
    .n_js_sources = sizeof JS_SOURCES / sizeof JS_SOURCES[0],
};

const sim_game *sim_default_game(void) {
  return &DEFAULT_GAME;
}
