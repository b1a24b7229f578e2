/* test_world_path.c — the path finder: cheapest paths against a brute-force search on
 * random maps, BFS lengths with uniform costs, ranges and several goals, maxOps and the
 * deadline flag, Screeps' serialized form, and host.findPath's argument checks. */
#include "test_world_util.h"

#include <limits.h>
#include <pthread.h>
#include <time.h>

static uint64_t rng_state = 0x1234567;
static uint32_t rnd(uint32_t n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state % n);
}

/* The cost grid the finder should use, built independently: terrain, obstacles, creeps. */
static void grid(const dw_world *w, int plain, int swamp, int *cost) {
  const dw_room *r = &w->rooms[0];
  for (int i = 0; i < DW_TILES; i++)
    cost[i] = r->terrain[i] == DW_WALL ? -1 : r->terrain[i] == DW_SWAMP ? swamp : plain;
  for (uint32_t i = 0; i < r->n; i++) cost[r->objs[i]->y * 50 + r->objs[i]->x] = -1; /* all placed objects block */
}

/* Brute force: relax every edge until nothing changes (Bellman-Ford on the grid). */
static void all_costs(const int *cost, int sx, int sy, long *dist) {
  for (int i = 0; i < DW_TILES; i++) dist[i] = LONG_MAX;
  dist[sy * 50 + sx] = 0;
  for (bool changed = true; changed;) {
    changed = false;
    for (int i = 0; i < DW_TILES; i++) {
      if (dist[i] == LONG_MAX) continue;
      int x = i % 50, y = i / 50;
      for (int d = 1; d <= 8; d++) {
        int nx = x + DW_DIR_DX[d], ny = y + DW_DIR_DY[d];
        if (nx < 0 || ny < 0 || nx > 49 || ny > 49) continue;
        int k = ny * 50 + nx;
        if (cost[k] < 0) continue;
        if (dist[i] + cost[k] < dist[k]) {
          dist[k] = dist[i] + cost[k];
          changed = true;
        }
      }
    }
  }
}

static void random_room(dw_world *w, int wall_pct, int swamp_pct, int obstacles) {
  dw_room *r = &w->rooms[0];
  for (uint32_t k = 0; k < r->n; k++) dw_kill(w, r->objs[k]);
  dw_sweep(w);
  for (int y = 1; y < 49; y++)
    for (int x = 1; x < 49; x++) {
      uint32_t v = rnd(100);
      r->terrain[y * 50 + x] = v < (uint32_t)wall_pct                 ? DW_WALL
                               : v < (uint32_t)(wall_pct + swamp_pct) ? DW_SWAMP
                                                                      : DW_PLAIN;
    }
  for (int i = 0; i < obstacles; i++) {
    int x = 1 + (int)rnd(48), y = 1 + (int)rnd(48);
    if (r->terrain[y * 50 + x] == DW_WALL) continue;
    bool taken = false;
    for (uint32_t k = 0; k < r->n; k++) taken |= r->objs[k]->x == x && r->objs[k]->y == y;
    if (taken) continue;
    if (rnd(2))
      tw_creep(w, 0, TW_BOB, "c", x, y, "M");
    else
      tw_obj(w, 0, DW_T_SPAWN, x, y, TW_BOB);
  }
}

static void open_tile(const dw_world *w, int *x, int *y) {
  for (;;) {
    *x = 1 + (int)rnd(48);
    *y = 1 + (int)rnd(48);
    if (w->rooms[0].terrain[*y * 50 + *x] == DW_WALL) continue;
    bool taken = false;
    for (uint32_t k = 0; k < w->rooms[0].n; k++) taken |= w->rooms[0].objs[k]->x == *x && w->rooms[0].objs[k]->y == *y;
    if (!taken) return;
  }
}

/* The path is a walk of adjacent passable tiles from (sx, sy) whose costs add up. */
static long walk(const sim_dw_path *p, const int *cost, int sx, int sy) {
  long total = 0;
  int x = sx, y = sy;
  for (int i = 0; i < p->n; i++) {
    assert_int_equal(p->x[i], x + DW_DIR_DX[p->dir[i]]);
    assert_int_equal(p->y[i], y + DW_DIR_DY[p->dir[i]]);
    x = p->x[i];
    y = p->y[i];
    assert_true(cost[y * 50 + x] > 0);
    total += cost[y * 50 + x];
  }
  return total;
}

static void test_world_path_matches_brute_force(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  static int cost[DW_TILES];
  static long dist[DW_TILES];
  static sim_dw_path p;
  int complete = 0, unreachable = 0;
  for (int round = 0; round < 300; round++) {
    random_room(w, (int)rnd(45), (int)rnd(40), (int)rnd(60));
    int sx, sy, gx, gy;
    open_tile(w, &sx, &sy);
    open_tile(w, &gx, &gy);
    int range = round % 4 == 0 ? (int)rnd(4) : 0;
    grid(w, 2, 10, cost);
    all_costs(cost, sx, sy, dist);
    long best = LONG_MAX;
    for (int i = 0; i < DW_TILES; i++)
      if (dw_cheb(i % 50, i / 50, gx, gy) <= range && dist[i] < best) best = dist[i];
    sim_dw_goal g = {gx, gy, range};
    sim_dw_path_opts o = {.max_ops = SIM_DW_PATH_MAX_OPS};
    assert_int_equal(sim_dw_find_path(&w->base, 0, sx, sy, &g, 1, &o, &p), SIM_OK);
    long walked = walk(&p, cost, sx, sy);
    assert_int_equal(walked, p.cost);
    if (best == LONG_MAX) {
      assert_true(p.incomplete);
      unreachable++;
    } else {
      if (p.incomplete) fail_msg("round %d: reachable at cost %ld but incomplete", round, best);
      assert_int_equal(p.cost, best);
      int ex = p.n ? p.x[p.n - 1] : sx, ey = p.n ? p.y[p.n - 1] : sy;
      assert_true(dw_cheb(ex, ey, gx, gy) <= range);
      complete++;
    }
  }
  assert_true(complete > 100);
  assert_true(unreachable > 0);
  tw_free(w);
}

static void test_world_path_bfs_lengths_with_uniform_costs(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  static int cost[DW_TILES];
  static long dist[DW_TILES];
  static sim_dw_path p;
  for (int round = 0; round < 100; round++) {
    random_room(w, 35, 30, 0);
    int sx, sy, gx, gy;
    open_tile(w, &sx, &sy);
    open_tile(w, &gx, &gy);
    grid(w, 1, 1, cost); /* every step costs 1: the cost is the BFS distance */
    all_costs(cost, sx, sy, dist);
    sim_dw_goal g = {gx, gy, 0};
    sim_dw_path_opts o = {.max_ops = SIM_DW_PATH_MAX_OPS, .plain_cost = 1, .swamp_cost = 1};
    assert_int_equal(sim_dw_find_path(&w->base, 0, sx, sy, &g, 1, &o, &p), SIM_OK);
    if (dist[gy * 50 + gx] == LONG_MAX) {
      assert_true(p.incomplete);
    } else {
      assert_false(p.incomplete);
      assert_int_equal(p.n, dist[gy * 50 + gx]);
    }
  }
  tw_free(w);
}

static void test_world_path_several_goals_and_costs(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  static sim_dw_path p;
  sim_dw_goal g[2] = {{40, 10, 1}, {14, 10, 1}};
  sim_dw_path_opts o = {0};
  assert_int_equal(sim_dw_find_path(&w->base, 0, 10, 10, g, 2, &o, &p), SIM_OK);
  assert_false(p.incomplete);
  assert_int_equal(p.n, 3); /* to (13, 10), next to the nearer goal */
  assert_int_equal(p.x[2], 13);
  /* A road is cheaper than plain: a detour along a road costs less than the straight line. */
  for (int x = 11; x < 30; x++) tw_obj(w, 0, DW_T_ROAD, x, 21, 0);
  sim_dw_goal far = {30, 20, 0};
  assert_int_equal(sim_dw_find_path(&w->base, 0, 10, 20, &far, 1, &o, &p), SIM_OK);
  assert_int_equal(p.cost, 19 * 1 + 2); /* 19 road tiles, then one plain step up */
  /* Ignoring roads: all plain at 1. */
  o.flags = SIM_DW_PATH_IGNORE_ROADS;
  assert_int_equal(sim_dw_find_path(&w->base, 0, 10, 20, &far, 1, &o, &p), SIM_OK);
  assert_int_equal(p.cost, 20);
  /* A CostMatrix overrides: block column 20 except at y = 40. */
  uint8_t costs[DW_TILES] = {0};
  for (int y = 0; y < 50; y++) costs[y * 50 + 20] = y == 40 ? 0 : 255;
  o.flags = 0;
  o.costs = costs;
  assert_int_equal(sim_dw_find_path(&w->base, 0, 10, 20, &far, 1, &o, &p), SIM_OK);
  bool through = false;
  for (int i = 0; i < p.n; i++) through |= p.x[i] == 20 && p.y[i] == 40;
  assert_true(through);
  /* Creeps block unless ignored. */
  o.costs = NULL;
  for (int y = 1; y < 49; y++) tw_creep(w, 0, TW_BOB, "wall", 35, y, "M");
  sim_dw_goal beyond = {40, 20, 0};
  assert_int_equal(sim_dw_find_path(&w->base, 0, 30, 20, &beyond, 1, &o, &p), SIM_OK);
  assert_true(p.incomplete);
  o.flags = SIM_DW_PATH_IGNORE_CREEPS;
  assert_int_equal(sim_dw_find_path(&w->base, 0, 30, 20, &beyond, 1, &o, &p), SIM_OK);
  assert_false(p.incomplete);
  /* Terrain only (PathFinder.search): no creeps, and no roads either. */
  o.flags = SIM_DW_PATH_TERRAIN_ONLY;
  assert_int_equal(sim_dw_find_path(&w->base, 0, 30, 20, &beyond, 1, &o, &p), SIM_OK);
  assert_false(p.incomplete);
  assert_int_equal(sim_dw_find_path(&w->base, 0, 10, 20, &far, 1, &o, &p), SIM_OK);
  assert_int_equal(p.cost, 40); /* plain 2 everywhere: the road does not count */
  /* Start in range: an empty, complete path. */
  sim_dw_goal here = {30, 21, 1};
  assert_int_equal(sim_dw_find_path(&w->base, 0, 30, 20, &here, 1, &o, &p), SIM_OK);
  assert_int_equal(p.n, 0);
  assert_false(p.incomplete);
  tw_free(w);
}

static void test_world_path_max_ops(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  static sim_dw_path p;
  sim_dw_goal g = {45, 45, 0};
  sim_dw_path_opts o = {.max_ops = 10};
  assert_int_equal(sim_dw_find_path(&w->base, 0, 2, 2, &g, 1, &o, &p), SIM_OK);
  assert_true(p.incomplete);
  assert_true(p.ops <= 10);
  assert_true(p.n > 0); /* toward the goal anyway, as Screeps' incomplete paths */
  assert_true(dw_cheb(p.x[p.n - 1], p.y[p.n - 1], 45, 45) < dw_cheb(2, 2, 45, 45));
  o.max_ops = 0; /* default 2000: enough in an open room */
  assert_int_equal(sim_dw_find_path(&w->base, 0, 2, 2, &g, 1, &o, &p), SIM_OK);
  assert_false(p.incomplete);
  assert_int_equal(p.n, 43);
  tw_free(w);
}

typedef struct raiser {
  sim_flag *flag;
  int after_ms;
} raiser;

static void *raise_later(void *arg) {
  raiser *r = arg;
  struct timespec ts = {0, (long)r->after_ms * 1000000L};
  nanosleep(&ts, NULL);
  atomic_store(r->flag, 1);
  return NULL;
}

static void test_world_path_deadline(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  static sim_dw_path p;
  /* A maze of walls so each search expands most of the room. */
  for (int x = 4; x < 48; x += 4)
    for (int y = 1; y < 49; y++) w->rooms[0].terrain[y * 50 + x] = (y == (x % 8 ? 48 : 1)) ? DW_PLAIN : DW_WALL;
  sim_flag flag;
  atomic_init(&flag, 1);
  sim_dw_goal g = {47, 47, 0};
  sim_dw_path_opts o = {.max_ops = SIM_DW_PATH_MAX_OPS, .deadline = &flag};
  assert_int_equal(sim_dw_find_path(&w->base, 0, 1, 1, &g, 1, &o, &p), SIM_DEADLINE);
  /* Raised by another thread while searches run: the running one stops at its next poll. */
  atomic_store(&flag, 0);
  raiser r = {&flag, 20};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, raise_later, &r), 0);
  int done = 0, rc = SIM_OK;
  while ((rc = sim_dw_find_path(&w->base, 0, 1, 1, &g, 1, &o, &p)) == SIM_OK) {
    assert_false(p.incomplete);
    done++;
  }
  pthread_join(th, NULL);
  assert_int_equal(rc, SIM_DEADLINE);
  assert_true(done > 0);
  tw_free(w);
}

static void test_world_path_serialized_like_screeps(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  static sim_dw_path p;
  sim_dw_goal g = {13, 7, 0};
  sim_dw_path_opts o = {0};
  assert_int_equal(sim_dw_find_path(&w->base, 0, 10, 10, &g, 1, &o, &p), SIM_OK);
  sim_buf b;
  sim_buf_init(&b);
  assert_int_equal(sim_dw_serialize_path(&p, &b), SIM_OK);
  assert_string_equal(b.data, "1109222"); /* first step (11, 9), then up-right x3 */
  sim_buf_release(&b);
  tw_free(w);
}

static int call(dw_world *w, const sim_arg *args, size_t n, sim_buf *out, double *num) {
  sim_host_fn fn = sim_world_host_fn(&w->base, "findPath");
  assert_non_null(fn);
  sim_host_ctx ctx = {&w->base, TW_ALICE, NULL};
  sim_buf_clear(out);
  *num = 0;
  return fn(&ctx, args, n, out, num);
}

#define S(s) \
  { SIM_ARG_STRING, 0, (s), sizeof(s) - 1 }
#define N(v) \
  { SIM_ARG_NUMBER, (v), NULL, 0 }
#define U \
  { SIM_ARG_UNDEFINED, 0, NULL, 0 }

static void test_world_path_host_function(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  sim_buf out;
  sim_buf_init(&out);
  double num;
  sim_arg ok[] = {S("W1N1"), N(10), N(10), S("13,7,0;40,40,2"), N(0), N(0), U, U, U};
  assert_int_equal(call(w, ok, 9, &out, &num), 1);
  assert_string_equal(out.data, "0,3,6,1109222");
  /* Everything malformed is ERR_INVALID_ARGS, as a number. */
  sim_arg bad[][9] = {
      {S("W2N1"), N(10), N(10), S("13,7,0"), U, U, U, U, U},
      {S("W1N1"), N(50), N(10), S("13,7,0"), U, U, U, U, U},
      {S("W1N1"), N(10.5), N(10), S("13,7,0"), U, U, U, U, U},
      {S("W1N1"), N(1e300), N(10), S("13,7,0"), U, U, U, U, U},
      {S("W1N1"), N(10), N(10), S(""), U, U, U, U, U},
      {S("W1N1"), N(10), N(10), S("13,7"), U, U, U, U, U},
      {S("W1N1"), N(10), N(10), S("13,7,0;"), U, U, U, U, U},
      {S("W1N1"), N(10), N(10), S("13,77,0"), U, U, U, U, U},
      {S("W1N1"), N(10), N(10), S("13,7,0"), N(16), U, U, U, U},
      {S("W1N1"), N(10), N(10), S("13,7,0"), U, N(-1), U, U, U},
      {S("W1N1"), N(10), N(10), S("13,7,0"), U, U, N(255), U, U},
      {S("W1N1"), N(10), N(10), S("13,7,0"), U, U, U, U, S("short")},
      {N(1), N(10), N(10), S("13,7,0"), U, U, U, U, U},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (call(w, bad[i], 9, &out, &num) != 0 || num != DW_ERR_INVALID_ARGS) fail_msg("bad argument set %zu accepted", i);
  }
  assert_int_equal(call(w, ok, 3, &out, &num), 0);
  /* 257 goals are too many. */
  char many[257 * 8 + 1] = "";
  for (int i = 0; i < 257; i++) strcat(many, i ? ";1,1,0" : "1,1,0");
  sim_arg lots[] = {S("W1N1"), N(10), N(10), {SIM_ARG_STRING, 0, many, strlen(many)}};
  assert_int_equal(call(w, lots, 4, &out, &num), 0);
  /* A CostMatrix as 2500 code points (UTF-8 on the wire): 255 on (11..13, 9) forces a
   * detour. */
  char costs[5000];
  size_t len = 0;
  for (int i = 0; i < DW_TILES; i++) {
    int v = (i / 50 == 9 && i % 50 >= 11 && i % 50 <= 13) ? 255 : 0;
    if (v < 0x80)
      costs[len++] = (char)v;
    else
      costs[len++] = (char)(0xc0 | v >> 6), costs[len++] = (char)(0x80 | (v & 0x3f));
  }
  sim_arg cm[] = {S("W1N1"), N(10), N(10), S("13,7,0"), U, U, U, U, {SIM_ARG_STRING, 0, costs, len}};
  assert_int_equal(call(w, cm, 9, &out, &num), 1);
  assert_true(strncmp(out.data, "0,", 2) == 0);
  assert_null(strstr(out.data, "1109222"));
  costs[len - 1] = (char)0xff; /* invalid UTF-8 */
  assert_int_equal(call(w, cm, 9, &out, &num), 0);
  /* host.terrain */
  sim_host_fn tf = sim_world_host_fn(&w->base, "terrain");
  sim_host_ctx ctx = {&w->base, TW_ALICE, NULL};
  sim_arg room[] = {S("W1N1")};
  sim_buf_clear(&out);
  assert_int_equal(tf(&ctx, room, 1, &out, &num), 1);
  assert_int_equal(out.len, 2500);
  assert_int_equal(out.data[0], '1');
  assert_int_equal(out.data[51], '0');
  assert_null(sim_world_host_fn(&w->base, "eval"));
  sim_buf_release(&out);
  tw_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_world_path_matches_brute_force),
      cmocka_unit_test(test_world_path_bfs_lengths_with_uniform_costs),
      cmocka_unit_test(test_world_path_several_goals_and_costs),
      cmocka_unit_test(test_world_path_max_ops),
      cmocka_unit_test(test_world_path_deadline),
      cmocka_unit_test(test_world_path_serialized_like_screeps),
      cmocka_unit_test(test_world_path_host_function),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
