/*
 * path.c — the default world's path finder (A* on one room) and the host functions the JS
 * API calls: host.findPath and host.terrain.
 *
 * Host functions run on the calling player's thread, inside a V8 callback that the
 * watchdog cannot interrupt, while other players' threads run theirs on the same world:
 * they only read the world, allocate their scratch per call, poll the caller's deadline
 * flag every 256 expansions, and bound their work by maxOps (at most 100000; a room has
 * 2500 tiles, so a search can never take more than 2500 expansions anyway).
 *
 * Costs are Screeps' Room.findPath grid (PathFinder.search's with TERRAIN_ONLY: terrain
 * and the caller's matrix alone): terrain (plain 2, swamp 10; with ignoreRoads
 * 1 and 5), roads 1, obstacles (structures that block, sources, controllers, the caller's
 * own obstacle construction sites, creeps unless ignoreCreeps) impassable, then a caller's
 * CostMatrix on top (non-zero entries replace). The heuristic is the Chebyshev distance
 * to the nearest goal's range times the smallest tile cost in the grid, which never
 * overestimates: complete paths are cheapest paths. Ties are broken by h, then by the
 * order nodes were reached, so a search is a function of its inputs.
 */
#include "world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(x, y) ((y)*DW_SIZE + (x))
#define BLOCK 255

typedef struct search {
  uint8_t cost[DW_TILES];
  int32_t g[DW_TILES], f[DW_TILES], h[DW_TILES];
  uint32_t seq[DW_TILES];
  int16_t parent[DW_TILES];
  int16_t pos[DW_TILES]; /* place in the heap, -1 not in it */
  uint8_t closed[DW_TILES];
  int16_t heap[DW_TILES];
  int n;
} search;

static bool less(const search *s, int a, int b) {
  if (s->f[a] != s->f[b]) return s->f[a] < s->f[b];
  if (s->h[a] != s->h[b]) return s->h[a] < s->h[b];
  return s->seq[a] < s->seq[b];
}

static void swap(search *s, int i, int j) {
  int16_t a = s->heap[i], b = s->heap[j];
  s->heap[i] = b;
  s->heap[j] = a;
  s->pos[b] = (int16_t)i;
  s->pos[a] = (int16_t)j;
}

static void up(search *s, int i) {
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!less(s, s->heap[i], s->heap[p])) break;
    swap(s, i, p);
    i = p;
  }
}

static void down(search *s, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < s->n && less(s, s->heap[l], s->heap[m])) m = l;
    if (r < s->n && less(s, s->heap[r], s->heap[m])) m = r;
    if (m == i) return;
    swap(s, i, m);
    i = m;
  }
}

static int pop(search *s) {
  int top = s->heap[0];
  s->n--;
  if (s->n > 0) {
    s->heap[0] = s->heap[s->n];
    s->pos[s->heap[0]] = 0;
    down(s, 0);
  }
  s->pos[top] = -1;
  return top;
}

static void push_or_decrease(search *s, int node) {
  if (s->pos[node] < 0) {
    s->heap[s->n] = (int16_t)node;
    s->pos[node] = (int16_t)s->n;
    s->n++;
  }
  up(s, s->pos[node]);
}

static int heuristic(int x, int y, const sim_dw_goal *goals, size_t n, int min_cost) {
  int best = INT32_MAX;
  for (size_t i = 0; i < n; i++) {
    int d = dw_cheb(x, y, goals[i].x, goals[i].y) - goals[i].range;
    if (d < 0) d = 0;
    if (d < best) best = d;
  }
  return best * min_cost;
}

static bool destructible(int type) {
  return type == DW_T_WALL || type == DW_T_SPAWN || type == DW_T_EXTENSION || type == DW_T_TOWER;
}

int sim_dw_find_path(const sim_world *sw, size_t room, int x, int y, const sim_dw_goal *goals, size_t ng,
                     const sim_dw_path_opts *o, sim_dw_path *out) {
  if (!sw || sw->game != sim_default_game() || !goals || !o || !out) return SIM_INVALID;
  const dw_world *w = dw_cof(sw);
  if (room >= w->n_rooms || x < 0 || y < 0 || x >= DW_SIZE || y >= DW_SIZE) return SIM_INVALID;
  if (ng < 1 || ng > SIM_DW_PATH_MAX_GOALS) return SIM_INVALID;
  for (size_t i = 0; i < ng; i++)
    if (goals[i].x < 0 || goals[i].y < 0 || goals[i].x >= DW_SIZE || goals[i].y >= DW_SIZE || goals[i].range < 0 ||
        goals[i].range > DW_SIZE)
      return SIM_INVALID;
  bool ignore_roads = o->flags & SIM_DW_PATH_IGNORE_ROADS;
  int plain = o->plain_cost ? o->plain_cost : ignore_roads ? 1 : 2;
  int swamp = o->swamp_cost ? o->swamp_cost : ignore_roads ? 5 : 10;
  if (plain < 1 || plain > 254 || swamp < 1 || swamp > 254 || o->max_ops < 0) return SIM_INVALID;
  int max_ops = o->max_ops ? o->max_ops : SIM_DW_PATH_DEFAULT_OPS;
  if (max_ops > SIM_DW_PATH_MAX_OPS) max_ops = SIM_DW_PATH_MAX_OPS;

  search *s = malloc(sizeof *s);
  if (!s) return SIM_NOMEM;
  const dw_room *r = &w->rooms[room];
  for (int i = 0; i < DW_TILES; i++)
    s->cost[i] = r->terrain[i] == DW_WALL ? BLOCK : r->terrain[i] == DW_SWAMP ? (uint8_t)swamp : (uint8_t)plain;
  bool objects = !(o->flags & SIM_DW_PATH_TERRAIN_ONLY);
  if (!ignore_roads && objects)
    for (uint32_t i = 0; i < r->n; i++)
      if (r->objs[i]->type == DW_T_ROAD && !r->objs[i]->dead) s->cost[T(r->objs[i]->x, r->objs[i]->y)] = 1;
  for (uint32_t i = 0; objects && i < r->n; i++) {
    const dw_obj *b = r->objs[i];
    if (b->dead) continue;
    bool block = false;
    if (b->type == DW_T_CREEP)
      block = !(o->flags & SIM_DW_PATH_IGNORE_CREEPS);
    else if (dw_is_obstacle_type(b->type))
      block = !(destructible(b->type) && (o->flags & SIM_DW_PATH_IGNORE_STRUCTURES));
    else if (b->type == DW_T_SITE)
      block =
          b->user == o->player && dw_is_obstacle_type(b->u.site.stype) && !(o->flags & SIM_DW_PATH_IGNORE_STRUCTURES);
    if (block) s->cost[T(b->x, b->y)] = BLOCK;
  }
  if (o->costs)
    for (int i = 0; i < DW_TILES; i++)
      if (o->costs[i]) s->cost[i] = o->costs[i];
  int min_cost = 255;
  for (int i = 0; i < DW_TILES; i++)
    if (s->cost[i] < min_cost) min_cost = s->cost[i];
  if (min_cost >= BLOCK) min_cost = 1;

  for (int i = 0; i < DW_TILES; i++) {
    s->g[i] = INT32_MAX;
    s->pos[i] = -1;
    s->closed[i] = 0;
    s->parent[i] = -1;
  }
  int start = T(x, y);
  s->n = 0;
  s->g[start] = 0;
  s->h[start] = heuristic(x, y, goals, ng, min_cost);
  s->f[start] = s->h[start];
  uint32_t seq = 0;
  s->seq[start] = seq++;
  push_or_decrease(s, start);
  int best = start, found = -1, ops = 0, rc = SIM_OK;
  while (s->n > 0) {
    int cur = pop(s);
    int cx = cur % DW_SIZE, cy = cur / DW_SIZE;
    if (s->h[cur] == 0 && heuristic(cx, cy, goals, ng, 1) == 0) {
      found = cur;
      break;
    }
    if (ops >= max_ops) break;
    if ((ops & 255) == 0 && o->deadline && atomic_load_explicit(o->deadline, memory_order_relaxed)) {
      rc = SIM_DEADLINE;
      break;
    }
    ops++;
    s->closed[cur] = 1;
    if (s->h[cur] < s->h[best] || (s->h[cur] == s->h[best] && s->g[cur] < s->g[best])) best = cur;
    for (int d = 1; d <= 8; d++) {
      int nx = cx + DW_DIR_DX[d], ny = cy + DW_DIR_DY[d];
      if (nx < 0 || ny < 0 || nx >= DW_SIZE || ny >= DW_SIZE) continue;
      int nb = T(nx, ny);
      if (s->closed[nb] || s->cost[nb] == BLOCK) continue;
      int32_t g = s->g[cur] + s->cost[nb];
      if (g >= s->g[nb]) continue;
      s->g[nb] = g;
      s->h[nb] = heuristic(nx, ny, goals, ng, min_cost);
      s->f[nb] = g + s->h[nb];
      s->seq[nb] = seq++;
      s->parent[nb] = (int16_t)cur;
      push_or_decrease(s, nb);
    }
  }
  if (rc == SIM_OK) {
    int end = found >= 0 ? found : best;
    int n = 0;
    for (int k = end; k != start; k = s->parent[k]) n++;
    out->n = n;
    out->incomplete = found < 0;
    out->ops = ops;
    out->cost = s->g[end];
    int k = end;
    for (int i = n - 1; i >= 0; i--) {
      int p = s->parent[k];
      out->x[i] = (uint8_t)(k % DW_SIZE);
      out->y[i] = (uint8_t)(k / DW_SIZE);
      out->dir[i] = (uint8_t)dw_direction(k % DW_SIZE - p % DW_SIZE, k / DW_SIZE - p / DW_SIZE);
      k = p;
    }
  }
  free(s);
  return rc;
}

int sim_dw_serialize_path(const sim_dw_path *p, sim_buf *out) {
  if (!p || !out) return SIM_INVALID;
  if (p->n <= 0) return sim_buf_append(out, "", 0);
  char head[5];
  head[0] = (char)('0' + p->x[0] / 10);
  head[1] = (char)('0' + p->x[0] % 10);
  head[2] = (char)('0' + p->y[0] / 10);
  head[3] = (char)('0' + p->y[0] % 10);
  int rc = sim_buf_append(out, head, 4);
  for (int i = 0; rc == SIM_OK && i < p->n; i++) {
    char d = (char)('0' + p->dir[i]);
    rc = sim_buf_append(out, &d, 1);
  }
  return rc;
}

/* ------------------------------------------------------------------ host functions */

static bool arg_int(const sim_arg *a, int lo, int hi, int *out) {
  if (a->kind != SIM_ARG_NUMBER || !(a->num >= lo && a->num <= hi) || a->num != (double)(int)a->num) return false;
  *out = (int)a->num;
  return true;
}

static bool arg_room(const dw_world *w, const sim_arg *a, uint32_t *room) {
  return a->kind == SIM_ARG_STRING && a->str && dw_room_lookup(w, a->str, a->len, room) == SIM_OK;
}

/* "x,y,range;x,y,range..." — at most SIM_DW_PATH_MAX_GOALS goals. */
static size_t parse_goals(const char *s, size_t len, sim_dw_goal *g) {
  size_t n = 0, i = 0;
  while (i < len) {
    if (n == SIM_DW_PATH_MAX_GOALS) return 0;
    int v[3];
    for (int k = 0; k < 3; k++) {
      int x = 0, digits = 0;
      while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 3) x = x * 10 + (s[i++] - '0'), digits++;
      if (!digits) return 0;
      v[k] = x;
      if (k < 2) {
        if (i >= len || s[i] != ',') return 0;
        i++;
      }
    }
    g[n++] = (sim_dw_goal){v[0], v[1], v[2]};
    if (i < len) {
      if (s[i] != ';') return 0;
      i++;
      if (i == len) return 0;
    }
  }
  return n;
}

/* A CostMatrix sent as a string of 2500 code points 0..255 (String.fromCharCode of its
 * bytes), which reaches us as UTF-8. */
static bool parse_costs(const char *s, size_t len, uint8_t *out) {
  size_t i = 0, k = 0;
  while (i < len && k < DW_TILES) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80)
      out[k++] = c, i++;
    else if ((c & 0xe0) == 0xc0 && i + 1 < len && ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
      unsigned v = ((unsigned)(c & 0x1f) << 6) | ((unsigned char)s[i + 1] & 0x3f);
      if (v < 0x80 || v > 0xff) return false;
      out[k++] = (uint8_t)v;
      i += 2;
    } else {
      return false;
    }
  }
  return k == DW_TILES && i == len;
}

/* host.findPath(room, fromX, fromY, goals, flags, maxOps, plainCost, swampCost, costs)
 *   -> "incomplete,ops,cost,serializedPath" | ERR_INVALID_ARGS (-10).
 * See sim/js/README.md. */
int dw_host_find_path(const sim_host_ctx *ctx, const sim_arg *args, size_t nargs, sim_buf *str, double *num) {
  const dw_world *w = dw_cof(ctx->world);
  uint32_t room;
  int x, y, flags = 0, ops = 0, plain = 0, swamp = 0;
  sim_dw_goal goals[SIM_DW_PATH_MAX_GOALS];
  size_t ng = 0;
  if (nargs < 4 || !arg_room(w, &args[0], &room) || !arg_int(&args[1], 0, 49, &x) || !arg_int(&args[2], 0, 49, &y) ||
      args[3].kind != SIM_ARG_STRING || !args[3].str || !(ng = parse_goals(args[3].str, args[3].len, goals)))
    goto invalid;
  if (nargs > 4 && args[4].kind != SIM_ARG_UNDEFINED && !arg_int(&args[4], 0, 15, &flags)) goto invalid;
  if (nargs > 5 && args[5].kind != SIM_ARG_UNDEFINED && !arg_int(&args[5], 0, 1 << 30, &ops)) goto invalid;
  if (nargs > 6 && args[6].kind != SIM_ARG_UNDEFINED && !arg_int(&args[6], 0, 254, &plain)) goto invalid;
  if (nargs > 7 && args[7].kind != SIM_ARG_UNDEFINED && !arg_int(&args[7], 0, 254, &swamp)) goto invalid;
  uint8_t costs[DW_TILES];
  bool has_costs = false;
  if (nargs > 8 && args[8].kind == SIM_ARG_STRING && args[8].len) {
    if (!args[8].str || !parse_costs(args[8].str, args[8].len, costs)) goto invalid;
    has_costs = true;
  } else if (nargs > 8 && args[8].kind == SIM_ARG_NUMBER) {
    goto invalid;
  }
  sim_dw_path_opts o = {ctx->player, (unsigned)flags, ops, plain, swamp, has_costs ? costs : NULL, ctx->deadline};
  sim_dw_path *p = malloc(sizeof *p);
  if (!p) return SIM_NOMEM;
  int rc = sim_dw_find_path(ctx->world, room, x, y, goals, ng, &o, p);
  if (rc == SIM_INVALID) {
    free(p);
    goto invalid;
  }
  if (rc == SIM_OK) {
    char head[48];
    int n = snprintf(head, sizeof head, "%d,%d,%d,", p->incomplete ? 1 : 0, p->ops, p->cost);
    rc = sim_buf_append(str, head, (size_t)n);
    if (rc == SIM_OK) rc = sim_dw_serialize_path(p, str);
  }
  free(p);
  return rc == SIM_OK ? 1 : rc;
invalid:
  *num = DW_ERR_INVALID_ARGS;
  return 0;
}

/* host.terrain(room) -> 2500 digits ('0' plain, '1' wall, '2' swamp) | ERR_INVALID_ARGS. */
int dw_host_terrain(const sim_host_ctx *ctx, const sim_arg *args, size_t nargs, sim_buf *str, double *num) {
  const dw_world *w = dw_cof(ctx->world);
  uint32_t room;
  if (nargs < 1 || !arg_room(w, &args[0], &room)) {
    *num = DW_ERR_INVALID_ARGS;
    return 0;
  }
  int rc = dw_room_terrain(ctx->world, room, str);
  return rc == SIM_OK ? 1 : rc;
}
