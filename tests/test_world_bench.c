/* test_world_bench.c — what the default world costs, printed, not asserted: building a
 * room's view, the room feed's diff, applying intents per creep, a path, saving a room,
 * hashing. A busy room: RCL 8, 60 extensions, 2 sources, 100 creeps of 10 parts, roads,
 * sites. ISOWORLD_DUMP_VIEW=<file> also writes that room's view (for the JS measurement
 * in sim/js/bench.js). */
#include "test_world_util.h"

#include <time.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static dw_world *busy_room(void) {
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 25, 4, TW_ALICE, 8);
  tw_obj(w, 0, DW_T_SOURCE, 5, 25, 0);
  tw_obj(w, 0, DW_T_SOURCE, 45, 25, 0);
  dw_obj *s = tw_obj(w, 0, DW_T_SPAWN, 25, 25, TW_ALICE);
  snprintf(s->name, sizeof s->name, "Spawn1");
  int ext = 0;
  for (int y = 30; y < 48 && ext < 60; y += 2)
    for (int x = 5; x < 45 && ext < 60; x += 3, ext++) {
      dw_obj *e = tw_obj(w, 0, DW_T_EXTENSION, x, y, TW_ALICE);
      e->energy_cap = 200;
      e->energy = ext * 3;
    }
  for (int x = 6; x < 45; x++) tw_obj(w, 0, DW_T_ROAD, x, 20, 0);
  for (int i = 0; i < 5; i++) {
    dw_obj *site = tw_obj(w, 0, DW_T_SITE, 10 + i, 15, TW_ALICE);
    site->u.site.stype = DW_T_ROAD;
    site->u.site.total = 300;
  }
  int k = 0;
  for (int y = 6; y < 19 && k < 100; y++)
    for (int x = 3; x < 47 && k < 100; x += 4, k++) {
      char name[32];
      snprintf(name, sizeof name, "Worker%d", k);
      dw_obj *c = tw_creep(w, 0, TW_ALICE, name, x, y, "WWWWCCCMMM");
      c->energy = k % 150;
    }
  tw_idle(w, 1);
  return w;
}

static void test_world_bench(void **state) {
  (void)state;
  dw_world *w = busy_room();
  sim_buf b;
  sim_buf_init(&b);
  const int N = 2000;
  double t0 = now_us();
  for (int i = 0; i < N; i++) {
    sim_buf_clear(&b);
    assert_int_equal(sim_world_room_view(&w->base, 0, &b), SIM_OK);
  }
  double view_us = (now_us() - t0) / N;
  size_t view_bytes = b.len;
  const char *dump = getenv("ISOWORLD_DUMP_VIEW");
  if (dump) {
    FILE *f = fopen(dump, "w");
    if (f) {
      fwrite(b.data, 1, b.len, f);
      fclose(f);
    }
  }
  print_message("room view: %.1f us per build, %zu bytes (%u objects, 100 creeps) — built once per room per tick\n",
                view_us, view_bytes, w->rooms[0].n);

  /* Intents: every creep moves one step and says something; workers next to nothing. */
  char ids[100][16];
  int k = 0;
  for (uint32_t i = 0; i < w->rooms[0].n && k < 100; i++)
    if (w->rooms[0].objs[i]->type == DW_T_CREEP) tw_id(w->rooms[0].objs[i], ids[k++]);
  size_t cap = 100 * 128;
  char *text = malloc(cap);
  const int T = 300;
  double parse_apply = 0;
  for (int tick = 0; tick < T; tick++) {
    size_t len = 0;
    len += (size_t)snprintf(text + len, cap - len, "[");
    for (int i = 0; i < k; i++)
      len += (size_t)snprintf(text + len, cap - len, "%s[1,\"%s\",%d],[10,\"%s\",\"w\",false]", i ? "," : "", ids[i],
                              tick % 2 ? 5 : 1, ids[i]);
    snprintf(text + len, cap - len, "]");
    sim_intents bt = {.player = TW_ALICE, .data = text, .len = strlen(text)};
    double a = now_us();
    assert_int_equal(sim_world_tick(&w->base, w->time + 1, &bt, 1), SIM_OK);
    parse_apply += now_us() - a;
  }
  print_message(
      "tick with 100 creeps x 2 intents (parse, validate, move, updates, rehash): %.1f us, %.2f us per creep\n",
      parse_apply / T, parse_apply / T / k);
  double idle = 0;
  for (int tick = 0; tick < T; tick++) {
    double a = now_us();
    tw_idle(w, 1);
    idle += now_us() - a;
  }
  print_message("tick with no intents (updates and rehash of the room): %.1f us\n", idle / T);

  /* Room feed: snapshot, then diffs of ticks where every creep moved. */
  sim_feed *f;
  assert_int_equal(sim_feed_new(&f), SIM_OK);
  sim_buf_clear(&b);
  t0 = now_us();
  assert_int_equal(sim_feed_snapshot(f, &w->base, 0, &b), SIM_OK);
  double snap_us = now_us() - t0;
  size_t snap_bytes = b.len;
  double diff_us = 0;
  size_t diff_bytes = 0;
  for (int tick = 0; tick < 50; tick++) {
    size_t len = 0;
    len += (size_t)snprintf(text + len, cap - len, "[");
    for (int i = 0; i < k; i++)
      len += (size_t)snprintf(text + len, cap - len, "%s[1,\"%s\",%d]", i ? "," : "", ids[i], tick % 2 ? 5 : 1);
    snprintf(text + len, cap - len, "]");
    sim_intents bt = {.player = TW_ALICE, .data = text, .len = strlen(text)};
    assert_int_equal(sim_world_tick(&w->base, w->time + 1, &bt, 1), SIM_OK);
    sim_buf_clear(&b);
    double a = now_us();
    assert_int_equal(sim_feed_diff(f, &w->base, 0, &b, NULL), SIM_OK);
    diff_us += now_us() - a;
    diff_bytes += b.len;
  }
  print_message("room feed: snapshot %.0f us / %zu bytes; diff with 100 moving creeps %.0f us / %zu bytes\n", snap_us,
                snap_bytes, diff_us / 50, diff_bytes / 50);
  sim_feed_free(f);

  /* Paths across the busy room (creeps block). */
  static sim_dw_path p;
  uint64_t r = 7;
  int found = 0, M = 2000;
  double paths = 0, ops = 0;
  for (int i = 0; i < M; i++) {
    r = tw_mix(r);
    sim_dw_goal g = {1 + (int)(r % 48), 1 + (int)((r >> 8) % 48), 1};
    sim_dw_path_opts o = {.player = TW_ALICE};
    double a = now_us();
    assert_int_equal(sim_dw_find_path(&w->base, 0, 25, 22, &g, 1, &o, &p), SIM_OK);
    paths += now_us() - a;
    ops += p.ops;
    found += !p.incomplete;
  }
  print_message("findPath in the busy room: %.1f us per search (%.0f expansions on average, %d/%d complete)\n",
                paths / M, ops / M, found, M);

  /* Saving and hashing. */
  t0 = now_us();
  for (int i = 0; i < 1000; i++) {
    sim_buf_clear(&b);
    assert_int_equal(dw_encode_room(w, 0, &b), SIM_OK);
  }
  double enc = (now_us() - t0) / 1000;
  t0 = now_us();
  uint64_t h = 0;
  for (int i = 0; i < 1000; i++) h ^= sim_hash_bytes(b.data, b.len, (uint64_t)i);
  double hash = (now_us() - t0) / 1000;
  print_message("room record: %zu bytes, encoded in %.1f us, hashed in %.1f us (%llx)\n", b.len, enc, hash,
                (unsigned long long)(h & 0xf));

  /* World generation. */
  t0 = now_us();
  sim_world *g;
  sim_world_options o = {.seed = 1, .width = 8, .height = 8};
  assert_int_equal(sim_world_create(sim_default_game(), &o, &g, NULL), SIM_OK);
  print_message("generating an 8x8-room world: %.1f ms\n", (now_us() - t0) / 1000);
  sim_world_free(g);
  free(text);
  sim_buf_release(&b);
  tw_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_world_bench)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
