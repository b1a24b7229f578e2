/*
 * terrain.c — world generation for the default world: Screeps-like rooms from a seed.
 *
 * Each room: walls all around its border, broken by exits where a neighbouring room
 * exists (the two rooms of a border derive the exits from the same random stream, so they
 * line up); cave-like wall masses from smoothed noise; swamp patches; everything open
 * connected to every exit (unreachable pockets are filled in); then a controller and one
 * or two sources on open tiles whose placement keeps the room connected and leaves each
 * source at least three free tiles around it, so the tutorial's creeps can share it.
 *
 * All randomness is splitmix64 seeded from the world seed and the room (or border)
 * coordinates: a room's terrain does not depend on the order rooms are generated in.
 */
#include "world.h"

#include <stdlib.h>
#include <string.h>

typedef struct rng {
  uint64_t s;
} rng;

static uint64_t next(rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0); the tiny modulo bias is irrelevant here. */
static uint32_t below(rng *r, uint32_t n) {
  return (uint32_t)(next(r) % n);
}

static rng rng_for(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  rng r = {seed ^ 0x5eed5eed5eed5eedull};
  r.s ^= next(&r) ^ a * 0x100000001b3ull;
  r.s ^= next(&r) ^ b * 0xc2b2ae3d27d4eb4full;
  r.s ^= next(&r) ^ c * 0x165667b19e3779f9ull;
  next(&r);
  return r;
}

#define T(x, y) ((y)*DW_SIZE + (x))

/* ------------------------------------------------------------------ exits */

/* The exit segments of one border: positions 2..47 along it, 1-3 segments of 2-8 tiles,
 * separated by at least 2 walls. `vertical` borders run along y (between east and west
 * neighbours); (ax, ay) is the grid cell of the room west of / north of the border. */
static void border_exits(uint64_t seed, bool vertical, uint32_t ax, uint32_t ay, uint8_t open[DW_SIZE]) {
  memset(open, 0, DW_SIZE);
  rng r = rng_for(seed, vertical ? 1 : 2, ax, ay);
  int segments = 1 + (int)below(&r, 3);
  int placed = 0;
  for (int attempt = 0; attempt < 40 && placed < segments; attempt++) {
    int len = 2 + (int)below(&r, 7);
    int start = 2 + (int)below(&r, (uint32_t)(46 - len));
    bool clash = false;
    for (int i = start - 2; i < start + len + 2; i++)
      if (i >= 0 && i < DW_SIZE && open[i]) clash = true;
    if (clash) continue;
    for (int i = start; i < start + len; i++) open[i] = 1;
    placed++;
  }
}

/* ------------------------------------------------------------------ connectivity */

static const int8_t NX[8] = {0, 1, 1, 1, 0, -1, -1, -1};
static const int8_t NY[8] = {-1, -1, 0, 1, 1, 1, 0, -1};

/* Components of non-wall tiles (8-connected): comp[t] = component number (1..) or 0. */
static int components(const uint8_t *t, int *comp, int *sizes, int max_comps) {
  static const int none = 0;
  for (int i = 0; i < DW_TILES; i++) comp[i] = none;
  int n = 0;
  int *stack = malloc(DW_TILES * sizeof *stack);
  if (!stack) return -1;
  for (int i = 0; i < DW_TILES; i++) {
    if (t[i] == DW_WALL || comp[i]) continue;
    if (n == max_comps) break;
    n++;
    int sp = 0, size = 0;
    stack[sp++] = i;
    comp[i] = n;
    while (sp) {
      int c = stack[--sp];
      size++;
      int x = c % DW_SIZE, y = c / DW_SIZE;
      for (int d = 0; d < 8; d++) {
        int nx = x + NX[d], ny = y + NY[d];
        if (nx < 0 || ny < 0 || nx >= DW_SIZE || ny >= DW_SIZE) continue;
        int k = T(nx, ny);
        if (t[k] == DW_WALL || comp[k]) continue;
        comp[k] = n;
        stack[sp++] = k;
      }
    }
    sizes[n] = size;
  }
  free(stack);
  return n;
}

static bool on_edge(int x, int y) {
  return x == 0 || y == 0 || x == DW_SIZE - 1 || y == DW_SIZE - 1;
}

/* Makes every open tile part of one region that holds every exit: digs from each
 * disconnected exit toward the centre until it meets the main region, then fills every
 * other pocket with wall. */
static int connect(uint8_t *t) {
  int *comp = malloc(DW_TILES * sizeof *comp), *sizes = malloc((DW_TILES + 1) * sizeof *sizes);
  if (!comp || !sizes) {
    free(comp);
    free(sizes);
    return SIM_NOMEM;
  }
  int rc = SIM_OK;
  for (int round = 0; round < 64; round++) {
    int n = components(t, comp, sizes, DW_TILES);
    if (n < 0) {
      rc = SIM_NOMEM;
      break;
    }
    if (n == 0) break;
    int main = 1;
    for (int c = 2; c <= n; c++)
      if (sizes[c] > sizes[main]) main = c;
    /* An exit tile outside the main region: dig from it toward the centre. */
    int from = -1;
    for (int i = 0; i < DW_TILES && from < 0; i++)
      if (comp[i] && comp[i] != main && on_edge(i % DW_SIZE, i / DW_SIZE)) from = i;
    if (from < 0) {
      for (int i = 0; i < DW_TILES; i++)
        if (comp[i] != main) t[i] = DW_WALL;
      break;
    }
    int x = from % DW_SIZE, y = from / DW_SIZE;
    while (comp[T(x, y)] != main) {
      if (x != 25) x += x < 25 ? 1 : -1;
      if (y != 25 && (x == 25 || (x + y) % 2 == 0)) y += y < 25 ? 1 : -1;
      if (x == 25 && y == 25 && comp[T(x, y)] != main) {
        /* The centre itself is not in the main region: dig to any main tile. */
        int target = -1;
        for (int i = 0; i < DW_TILES && target < 0; i++)
          if (comp[i] == main) target = i;
        int tx = target % DW_SIZE, ty = target / DW_SIZE;
        while (x != tx || y != ty) {
          if (x != tx) x += x < tx ? 1 : -1;
          if (y != ty) y += y < ty ? 1 : -1;
          if (!on_edge(x, y) && t[T(x, y)] == DW_WALL) t[T(x, y)] = DW_PLAIN;
        }
        break;
      }
      if (!on_edge(x, y) && t[T(x, y)] == DW_WALL) t[T(x, y)] = DW_PLAIN;
    }
  }
  free(comp);
  free(sizes);
  return rc;
}

/* ------------------------------------------------------------------ one room */

static void smooth(uint8_t *m, int rounds) {
  uint8_t tmp[DW_TILES];
  for (int r = 0; r < rounds; r++) {
    for (int y = 0; y < DW_SIZE; y++)
      for (int x = 0; x < DW_SIZE; x++) {
        int walls = 0;
        for (int d = 0; d < 8; d++) {
          int nx = x + NX[d], ny = y + NY[d];
          walls += nx < 0 || ny < 0 || nx >= DW_SIZE || ny >= DW_SIZE || m[T(nx, ny)];
        }
        tmp[T(x, y)] = walls >= 5 ? 1 : walls <= 3 ? 0 : m[T(x, y)];
      }
    memcpy(m, tmp, sizeof tmp);
  }
}

static void gen_terrain(const dw_world *w, uint32_t ix, uint32_t iy, int attempt, uint8_t *t) {
  rng r = rng_for(w->seed, 3 + 16 * (uint64_t)attempt, ix, iy);
  uint8_t walls[DW_TILES], swamp[DW_TILES];
  /* Later attempts (a room too closed to hold its objects) have fewer walls; the last
   * one none at all, which always works. */
  int wall_pct = attempt >= 7 ? 0 : 40 - 4 * attempt + (int)below(&r, 6);
  for (int i = 0; i < DW_TILES; i++) {
    walls[i] = below(&r, 100) < (uint32_t)wall_pct;
    swamp[i] = below(&r, 100) < 40;
  }
  smooth(walls, 5);
  smooth(swamp, 4);
  for (int y = 0; y < DW_SIZE; y++)
    for (int x = 0; x < DW_SIZE; x++) {
      int i = T(x, y);
      t[i] = on_edge(x, y) || walls[i] ? DW_WALL : swamp[i] ? DW_SWAMP : DW_PLAIN;
    }
  /* Exits: the border tiles, and a short approach inside, are open. */
  uint8_t open[DW_SIZE];
  for (int side = 0; side < 4; side++) {
    bool has;
    switch (side) {
      case 0:
        has = iy > 0;
        if (has) border_exits(w->seed, false, ix, iy - 1, open);
        break; /* top */
      case 1:
        has = ix + 1 < w->width;
        if (has) border_exits(w->seed, true, ix, iy, open);
        break; /* right */
      case 2:
        has = iy + 1 < w->height;
        if (has) border_exits(w->seed, false, ix, iy, open);
        break; /* bottom */
      default:
        has = ix > 0;
        if (has) border_exits(w->seed, true, ix - 1, iy, open);
        break; /* left */
    }
    if (!has) continue;
    for (int k = 0; k < DW_SIZE; k++) {
      if (!open[k]) continue;
      for (int depth = 0; depth < 4; depth++) {
        int x, y;
        switch (side) {
          case 0: x = k, y = depth; break;
          case 1: x = DW_SIZE - 1 - depth, y = k; break;
          case 2: x = k, y = DW_SIZE - 1 - depth; break;
          default: x = depth, y = k; break;
        }
        t[T(x, y)] = DW_PLAIN;
      }
    }
  }
}

/* ------------------------------------------------------------------ objects */

bool dw_tile_blocked(const dw_world *w, uint32_t room, int x, int y) {
  const dw_room *r = &w->rooms[room];
  bool road = false;
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *o = r->objs[i];
    if (o->dead || o->x != x || o->y != y) continue;
    if (o->type != DW_T_CREEP && dw_is_obstacle_type(o->type)) return true;
    if (o->type == DW_T_ROAD) road = true;
  }
  return r->terrain[T(x, y)] == DW_WALL && !road;
}

int dw_flood(const dw_world *w, uint32_t room, int x, int y, int extra_block, uint8_t *seen) {
  uint8_t blocked[DW_TILES];
  const dw_room *r = &w->rooms[room];
  for (int i = 0; i < DW_TILES; i++) blocked[i] = r->terrain[i] == DW_WALL;
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *o = r->objs[i];
    if (o->dead) continue;
    if (o->type == DW_T_ROAD) blocked[T(o->x, o->y)] = 0;
  }
  for (uint32_t i = 0; i < r->n; i++) {
    const dw_obj *o = r->objs[i];
    if (!o->dead && o->type != DW_T_CREEP && dw_is_obstacle_type(o->type)) blocked[T(o->x, o->y)] = 1;
  }
  if (extra_block >= 0 && extra_block < DW_TILES) blocked[extra_block] = 1;
  memset(seen, 0, DW_TILES);
  if (x < 0 || y < 0 || x >= DW_SIZE || y >= DW_SIZE || blocked[T(x, y)]) return 0;
  int stack[DW_TILES], sp = 0, count = 0;
  stack[sp++] = T(x, y);
  seen[T(x, y)] = 1;
  while (sp) {
    int c = stack[--sp];
    count++;
    int cx = c % DW_SIZE, cy = c / DW_SIZE;
    for (int d = 0; d < 8; d++) {
      int nx = cx + NX[d], ny = cy + NY[d];
      if (nx < 0 || ny < 0 || nx >= DW_SIZE || ny >= DW_SIZE) continue;
      int k = T(nx, ny);
      if (blocked[k] || seen[k]) continue;
      seen[k] = 1;
      stack[sp++] = k;
    }
  }
  return count;
}

static int open_tiles(const dw_world *w, uint32_t room, int *first) {
  int n = 0;
  *first = -1;
  for (int y = 0; y < DW_SIZE; y++)
    for (int x = 0; x < DW_SIZE; x++)
      if (!dw_tile_blocked(w, room, x, y)) {
        if (*first < 0) *first = T(x, y);
        n++;
      }
  return n;
}

/* Would blocking tile (x, y) split the room's open area? First a local test: if the
 * open tiles around it touch each other all round, any way through it can go round it
 * instead. Only otherwise flood the room. */
static bool keeps_connected(const dw_world *w, uint32_t room, int x, int y) {
  int ox[8], oy[8], n = 0;
  for (int d = 0; d < 8; d++) {
    int nx = x + NX[d], ny = y + NY[d];
    if (nx < 0 || ny < 0 || nx >= DW_SIZE || ny >= DW_SIZE || dw_tile_blocked(w, room, nx, ny)) continue;
    ox[n] = nx, oy[n] = ny, n++;
  }
  if (n == 0) return false;
  uint8_t seen_ring[8] = {1};
  int stack[8], sp = 0, reached = 1;
  stack[sp++] = 0;
  while (sp) {
    int a = stack[--sp];
    for (int b = 0; b < n; b++)
      if (!seen_ring[b] && dw_cheb(ox[a], oy[a], ox[b], oy[b]) == 1) {
        seen_ring[b] = 1;
        reached++;
        stack[sp++] = b;
      }
  }
  if (reached == n) return true;
  int first, total = open_tiles(w, room, &first);
  if (first == T(x, y)) {
    /* Start the flood elsewhere. */
    for (int i = first + 1; i < DW_TILES; i++)
      if (!dw_tile_blocked(w, room, i % DW_SIZE, i / DW_SIZE)) {
        first = i;
        break;
      }
  }
  uint8_t seen[DW_TILES];
  return dw_flood(w, room, first % DW_SIZE, first / DW_SIZE, T(x, y), seen) == total - 1;
}

static int free_neighbours(const dw_world *w, uint32_t room, int x, int y) {
  int n = 0;
  for (int d = 0; d < 8; d++) {
    int nx = x + NX[d], ny = y + NY[d];
    if (nx < 1 || ny < 1 || nx > 48 || ny > 48) continue;
    n += !dw_tile_blocked(w, room, nx, ny);
  }
  return n;
}

static bool far_from(const dw_world *w, uint32_t room, int x, int y, int dist) {
  const dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++)
    if (dw_cheb(x, y, r->objs[i]->x, r->objs[i]->y) < dist) return false;
  return true;
}

static dw_obj *place(dw_world *w, uint32_t room, rng *r, uint8_t type, int min_free, int min_dist) {
  for (int attempt = 0; attempt < 4000; attempt++) {
    int x = 4 + (int)below(r, 42), y = 4 + (int)below(r, 42);
    if (dw_tile_blocked(w, room, x, y)) continue;
    if (free_neighbours(w, room, x, y) < min_free) continue;
    if (!far_from(w, room, x, y, attempt < 3000 ? min_dist : 3)) continue;
    if (!keeps_connected(w, room, x, y)) continue;
    return dw_spawn_object(w, room, type, x, y);
  }
  return NULL;
}

static void clear_room(dw_world *w, uint32_t room) {
  dw_room *r = &w->rooms[room];
  for (uint32_t i = 0; i < r->n; i++) dw_kill(w, r->objs[i]);
  dw_sweep(w);
}

/* A controller and one or two sources; false if the room has no place for them. */
static bool place_objects(dw_world *w, uint32_t i, int attempt) {
  dw_room *room = &w->rooms[i];
  rng r = rng_for(w->seed, 4 + 16 * (uint64_t)attempt, room->ix, room->iy);
  if (!place(w, i, &r, DW_T_CONTROLLER, 2, 1)) return false;
  int sources = 1 + (int)below(&r, 2);
  for (int s = 0; s < sources; s++) {
    dw_obj *o = place(w, i, &r, DW_T_SOURCE, 3, 7);
    if (!o) return s > 0;
    o->energy = o->energy_cap = DW_SOURCE_ENERGY_NEUTRAL_CAPACITY;
  }
  return true;
}

int dw_generate(dw_world *w) {
  /* Room by room in index order (object ids are handed out in this order). */
  for (uint32_t i = 0; i < w->n_rooms; i++) {
    dw_room *room = &w->rooms[i];
    bool done = false;
    for (int attempt = 0; attempt < 8 && !done; attempt++) {
      gen_terrain(w, room->ix, room->iy, attempt, room->terrain);
      int rc = connect(room->terrain);
      if (rc != SIM_OK) return rc;
      int open = 0;
      for (int k = 0; k < DW_TILES; k++) open += room->terrain[k] != DW_WALL;
      if (open < 700) continue;
      done = place_objects(w, i, attempt);
      if (!done) clear_room(w, i);
    }
    if (!done) return SIM_NOMEM; /* unreachable: an open room always has room */
    room->touched = true;
  }
  return SIM_OK;
}

/* The first spawn of a player: an open tile whose eight neighbours are open (the spawn
 * then cannot cut the room), at distance >= 3 from sources and the controller, as close
 * to them as possible (sum of distances), ties to the smallest y*50+x. */
int dw_place_spawn(dw_world *w, uint32_t room, int *ox, int *oy) {
  const dw_room *r = &w->rooms[room];
  long best = -1;
  int bx = -1, by = -1;
  for (int y = 3; y <= 46; y++)
    for (int x = 3; x <= 46; x++) {
      if (dw_tile_blocked(w, room, x, y) || r->terrain[T(x, y)] == DW_SWAMP) continue;
      if (free_neighbours(w, room, x, y) < 8) continue;
      long score = 0;
      bool ok = true;
      for (uint32_t i = 0; i < r->n && ok; i++) {
        const dw_obj *o = r->objs[i];
        int d = dw_cheb(x, y, o->x, o->y);
        if (d < 3) ok = false;
        /* squared: a spot between the sources and the controller, not next to one of
         * them and far from the rest (a plain sum ties along the whole segment) */
        if (o->type == DW_T_SOURCE || o->type == DW_T_CONTROLLER)
          score += (long)d * d;
        else if (o->x == x && o->y == y)
          ok = false;
      }
      if (!ok) continue;
      if (best < 0 || score < best) best = score, bx = x, by = y;
    }
  if (best < 0) return SIM_NOROOM;
  *ox = bx;
  *oy = by;
  return SIM_OK;
}
