/* test_world_encode.c — the stored form of the default world: a save/load round trip keeps
 * the state (hash and bytes), a tick rewrites only the rooms it changed, and truncated,
 * mutated or garbage records are refused cleanly (never a crash, never a world that breaks
 * the rules' invariants). */
#include "test_world_util.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
  rng = tw_mix(rng + 1);
  return (uint32_t)(rng % n);
}

static int load(tw_records *rs, sim_world **out) {
  char err[SIM_ERRMSG_MAX];
  *out = NULL;
  int rc = sim_world_load(sim_default_game(), rs->r, rs->n, out, err);
  if (rc == SIM_OK)
    assert_non_null(*out);
  else {
    assert_null(*out);
    assert_true(err[0] != 0); /* a refusal says why */
  }
  return rc;
}

static dw_world *played(uint64_t seed, int ticks) {
  dw_world *w = tw_world(seed, 2, 2);
  for (int i = 0; i < ticks; i++) tw_bot_tick(w, seed);
  return w;
}

static void test_world_encode_round_trip(void **state) {
  (void)state;
  dw_world *w = played(9, 400);
  static tw_records a, b;
  assert_int_equal(sim_world_save(&w->base, true, tw_put_record, &a), SIM_OK);
  assert_int_equal(a.n, 1 + 2 * w->n_rooms); /* meta, and terrain + room per room */
  sim_world *l;
  assert_int_equal(load(&a, &l), SIM_OK);
  assert_int_equal(sim_world_hash(l), sim_world_hash(&w->base));
  assert_int_equal(sim_world_time(l), w->time);
  tw_assert_invariants(dw_cof(l));
  assert_int_equal(sim_world_save(l, true, tw_put_record, &b), SIM_OK);
  assert_int_equal(a.n, b.n);
  for (size_t i = 0; i < a.n; i++) {
    assert_string_equal(a.r[i].key, b.r[i].key);
    assert_int_equal(a.r[i].len, b.r[i].len);
    assert_memory_equal(a.r[i].data, b.r[i].data, a.r[i].len);
  }
  /* Views are the same text too. */
  sim_buf x, y;
  sim_buf_init(&x);
  sim_buf_init(&y);
  for (size_t r = 0; r < w->n_rooms; r++) {
    sim_buf_clear(&x);
    sim_buf_clear(&y);
    assert_int_equal(sim_world_room_view(&w->base, r, &x), SIM_OK);
    assert_int_equal(sim_world_room_view(l, r, &y), SIM_OK);
    assert_string_equal(x.data, y.data);
  }
  sim_buf_release(&x);
  sim_buf_release(&y);
  tw_records_free(&a);
  tw_records_free(&b);
  sim_world_free(l);
  tw_free(w);
}

typedef struct counter {
  int puts;
  bool meta;
  char keys[64][32];
} counter;

static int count_put(const char *key, const void *data, size_t len, void *ud) {
  (void)data;
  (void)len;
  counter *c = ud;
  if (strcmp(key, "meta") == 0) c->meta = true;
  if (c->puts < 64) snprintf(c->keys[c->puts], 32, "%s", key);
  c->puts++;
  return 0;
}

static void test_world_encode_writes_only_changed_rooms(void **state) {
  (void)state;
  dw_world *w = played(21, 50);
  counter c = {0};
  assert_int_equal(sim_world_save(&w->base, false, count_put, &c), SIM_OK);
  assert_int_equal(c.puts, 1 + 2 * (int)w->n_rooms); /* never saved: everything */
  sim_world_saved(&w->base);
  memset(&c, 0, sizeof c);
  assert_int_equal(sim_world_save(&w->base, false, count_put, &c), SIM_OK);
  assert_int_equal(c.puts, 0); /* nothing changed since */
  tw_bot_tick(w, 21);
  memset(&c, 0, sizeof c);
  assert_int_equal(sim_world_save(&w->base, false, count_put, &c), SIM_OK);
  assert_true(c.meta); /* the time moved */
  /* The two players' rooms changed; the two empty rooms did not (full sources, nobody). */
  assert_int_equal(c.puts, 1 + 2);
  for (int i = 0; i < c.puts; i++) assert_null(strstr(c.keys[i], "terrain:"));
  /* A put that fails stops the save and is returned. */
  tw_free(w);
}

static void test_world_encode_refuses_truncated_records(void **state) {
  (void)state;
  dw_world *w = played(33, 200);
  static tw_records rs;
  assert_int_equal(sim_world_save(&w->base, true, tw_put_record, &rs), SIM_OK);
  size_t refused = 0;
  for (size_t k = 0; k < rs.n; k++) {
    const void *orig = rs.r[k].data;
    size_t len = rs.r[k].len;
    size_t step = len > 600 ? len / 300 : 1;
    for (size_t cut = 0; cut < len; cut += step) {
      void *copy = malloc(cut ? cut : 1);
      memcpy(copy, orig, cut);
      rs.r[k].data = copy;
      rs.r[k].len = cut;
      sim_world *l;
      int rc = load(&rs, &l);
      if (rc != SIM_CORRUPT && rc != SIM_VERSION)
        fail_msg("%s cut at %zu of %zu: %s", rs.r[k].key, cut, len, sim_strerror(rc));
      refused++;
      free(copy);
    }
    rs.r[k].data = orig;
    rs.r[k].len = len;
  }
  assert_true(refused > 100);
  sim_world *l;
  assert_int_equal(load(&rs, &l), SIM_OK);
  sim_world_free(l);
  tw_records_free(&rs);
  tw_free(w);
}

static void test_world_encode_survives_mutations(void **state) {
  (void)state;
  dw_world *w = played(44, 300);
  static tw_records rs;
  assert_int_equal(sim_world_save(&w->base, true, tw_put_record, &rs), SIM_OK);
  int accepted = 0, refused = 0;
  for (int round = 0; round < 3000; round++) {
    size_t k = rnd((uint32_t)rs.n);
    const void *orig = rs.r[k].data;
    size_t len = rs.r[k].len;
    uint8_t *copy = malloc(len + 8);
    memcpy(copy, orig, len);
    size_t nlen = len;
    int flips = 1 + (int)rnd(4);
    for (int f = 0; f < flips && nlen; f++) {
      size_t at = rnd((uint32_t)nlen);
      switch (rnd(4)) {
        case 0: copy[at] = (uint8_t)rnd(256); break;
        case 1: copy[at] ^= (uint8_t)(1u << rnd(8)); break;
        case 2:
          if (nlen < len + 8) {
            memmove(copy + at + 1, copy + at, nlen - at);
            copy[at] = (uint8_t)rnd(256);
            nlen++;
          }
          break;
        default:
          memmove(copy + at, copy + at + 1, nlen - at - 1);
          nlen--;
          break;
      }
    }
    rs.r[k].data = copy;
    rs.r[k].len = nlen;
    sim_world *l;
    int rc = load(&rs, &l);
    if (rc == SIM_OK) {
      /* Accepted: then it is a world the rules can run on. */
      accepted++;
      dw_world *d = dw_of(l);
      tw_assert_invariants(d);
      for (int t = 0; t < 3; t++) tw_bot_tick(d, (uint64_t)round);
      tw_assert_invariants(d);
      sim_world_free(l);
    } else {
      assert_true(rc == SIM_CORRUPT || rc == SIM_VERSION);
      refused++;
    }
    rs.r[k].data = orig;
    rs.r[k].len = len;
    free(copy);
  }
  print_message("mutated stores: %d accepted (harmless changes), %d refused\n", accepted, refused);
  assert_true(refused > 1000);
  tw_records_free(&rs);
  tw_free(w);
}

static void test_world_encode_refuses_garbage_and_bad_sets(void **state) {
  (void)state;
  dw_world *w = played(55, 20);
  static tw_records rs;
  assert_int_equal(sim_world_save(&w->base, true, tw_put_record, &rs), SIM_OK);
  sim_world *l;
  /* Pure garbage in each record. */
  for (size_t k = 0; k < rs.n; k++) {
    const void *orig = rs.r[k].data;
    size_t len = rs.r[k].len;
    for (int round = 0; round < 50; round++) {
      size_t n = rnd(4096);
      uint8_t *g = malloc(n + 1);
      for (size_t i = 0; i < n; i++) g[i] = (uint8_t)rnd(256);
      rs.r[k].data = g;
      rs.r[k].len = n;
      int rc = load(&rs, &l);
      if (rc == SIM_OK)
        sim_world_free(l);
      else
        assert_true(rc == SIM_CORRUPT || rc == SIM_VERSION);
      free(g);
    }
    rs.r[k].data = orig;
    rs.r[k].len = len;
  }
  /* A missing record, an unknown key, a room of another world, a duplicate. */
  sim_record saved = rs.r[rs.n - 1];
  rs.n--;
  assert_int_equal(load(&rs, &l), SIM_CORRUPT);
  rs.r[rs.n++] = (sim_record){"flags:W1N1", "x", 1};
  assert_int_equal(load(&rs, &l), SIM_CORRUPT);
  rs.r[rs.n - 1] = (sim_record){"room:W9N9", saved.data, saved.len};
  assert_int_equal(load(&rs, &l), SIM_CORRUPT);
  rs.r[rs.n - 1] = rs.r[rs.n - 2];
  assert_int_equal(load(&rs, &l), SIM_CORRUPT);
  rs.r[rs.n - 1] = saved;
  assert_int_equal(load(&rs, &l), SIM_OK);
  sim_world_free(l);
  /* No records at all; a newer version. */
  assert_int_equal(load(&(tw_records){.n = 0}, &l), SIM_CORRUPT);
  size_t m = 0;
  while (strcmp(rs.r[m].key, "meta") != 0) m++;
  uint8_t *meta = (uint8_t *)rs.r[m].data;
  meta[4] = 2;
  assert_int_equal(load(&rs, &l), SIM_VERSION);
  meta[4] = 1;
  tw_records_free(&rs);
  tw_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_world_encode_round_trip),
      cmocka_unit_test(test_world_encode_writes_only_changed_rooms),
      cmocka_unit_test(test_world_encode_refuses_truncated_records),
      cmocka_unit_test(test_world_encode_survives_mutations),
      cmocka_unit_test(test_world_encode_refuses_garbage_and_bad_sets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
