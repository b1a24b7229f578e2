/* test_world_fuzz.c — intents from a hostile isolate: random bytes, random JSON, mutated
 * real batches and random-but-well-formed intents on real objects, for thousands of
 * iterations. Never a crash (run it under ASan too), and after every tick the world's
 * invariants hold: no negative or overflowing energy, one creep per tile, no creep in a
 * wall, ids unique and indexed, every change accounted for in the room hashes. */
#include "test_world_util.h"

static uint64_t rng = 0x5151;
static uint32_t rnd(uint32_t n) {
  rng = tw_mix(rng + 0x9e3779b97f4a7c15ull);
  return (uint32_t)(rng % n);
}

typedef struct gen {
  char *p;
  size_t len, cap;
} gen;

static void put(gen *g, const char *s, size_t n) {
  if (g->len + n + 1 > g->cap) {
    g->cap = (g->len + n + 1) * 2;
    g->p = realloc(g->p, g->cap);
  }
  memcpy(g->p + g->len, s, n);
  g->len += n;
  g->p[g->len] = 0;
}
static void puts_(gen *g, const char *s) {
  put(g, s, strlen(s));
}

static void random_scalar(gen *g) {
  static const char *const pool[] = {
      "0",
      "-0",
      "1",
      "8",
      "9",
      "-1",
      "3.0",
      "2.5",
      "1e3",
      "-1E-2",
      "123456789012345678901",
      "1.7976931348623157e309",
      "true",
      "false",
      "null",
      "\"\"",
      "\"energy\"",
      "\"power\"",
      "\"W1N1\"",
      "\"W2N1\"",
      "\"W0N0\"",
      "\"work\"",
      "\"move\"",
      "\"carry\"",
      "\"road\"",
      "\"extension\"",
      "\"spawn\"",
      "\"\\u0000\"",
      "\"\\ud800\"",
      "\"\\udc00\\ud800\"",
      "\"\\ud83d\\ude00\"",
      "\"\\n\\t\\\"\\\\\\/\"",
      "\"\xf0\x9f\x98\x80\"",
      "\"aaaaaaaaaaaaaaa\"",
      "\"000000000000000\"",
      "\"fffffffffffffff\"",
      "\"0123456789abcdef\"",
      "{}",
      "{\"a\":[1,{\"b\":null}]}",
  };
  puts_(g, pool[rnd(sizeof pool / sizeof *pool)]);
}

static void random_value(gen *g, int depth) {
  if (depth > 6 || rnd(3)) {
    random_scalar(g);
    return;
  }
  if (rnd(50) == 0) { /* now and then a deep chain, past the parser's depth limit */
    int d = 20 + (int)rnd(30);
    for (int i = 0; i < d; i++) puts_(g, "[");
    random_scalar(g);
    for (int i = 0; i < d; i++) puts_(g, "]");
    return;
  }
  puts_(g, "[");
  int n = (int)rnd(8);
  for (int i = 0; i < n; i++) {
    if (i) puts_(g, rnd(20) ? "," : " , ");
    random_value(g, depth + 1);
  }
  puts_(g, "]");
}

static void check_parse(const dw_world *w, const char *data, size_t len) {
  dw_intent_list l;
  memset(&l, 0, sizeof l);
  int rc = dw_parse_intents(w, data, len, TW_ALICE, 0, &l);
  assert_true(rc == SIM_OK || rc == SIM_CORRUPT || rc == SIM_TOOBIG);
  for (size_t i = 0; i < l.n; i++) {
    const dw_intent *it = &l.v[i];
    assert_int_equal(it->seq, i);
    assert_true(it->rc == DW_OK || it->rc == DW_ERR_INVALID_ARGS);
    if (it->rc != DW_OK) continue;
    assert_true(it->code >= 1 && it->code < SIM_DW_INTENT_CODES);
    assert_true(it->str_len <= DW_NAME_MAX);
    assert_int_equal(strlen(it->str), it->str_len);
    assert_true(it->n_body <= DW_MAX_CREEP_SIZE);
    if (it->code == SIM_DW_SAY) assert_true(it->str_len <= DW_SAY_MAX);
    if (it->code == SIM_DW_MOVE) assert_true(it->a >= 1 && it->a <= 8);
    if (it->has_energy) assert_true(it->energy_off + it->n_energy <= l.ids_n);
  }
  dw_intent_list_release(&l);
}

static void test_world_fuzz_parser(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 2, 1);
  gen g = {0};
  /* Random bytes. */
  for (int i = 0; i < 20000; i++) {
    g.len = 0;
    size_t n = rnd(64);
    for (size_t k = 0; k < n; k++) {
      char c = (char)(rnd(4) ? "[]\",0123456789-.eE{}:tfnul \\"[rnd(26)] : (char)rnd(256));
      put(&g, &c, 1);
    }
    check_parse(w, g.p ? g.p : "", g.len);
  }
  /* Random JSON of arrays and scalars, often intent-shaped. */
  for (int i = 0; i < 20000; i++) {
    g.len = 0;
    puts_(&g, "[");
    int n = (int)rnd(6);
    for (int k = 0; k < n; k++) {
      if (k) puts_(&g, ",");
      if (rnd(2)) {
        char head[64];
        snprintf(head, sizeof head, "[%u,", 1 + rnd(SIM_DW_INTENT_CODES));
        puts_(&g, head);
        random_scalar(&g);
        for (int a = (int)rnd(5); a > 0; a--) {
          puts_(&g, ",");
          random_value(&g, 2);
        }
        puts_(&g, "]");
      } else {
        random_value(&g, 1);
      }
    }
    puts_(&g, "]");
    check_parse(w, g.p, g.len);
    /* And every prefix of a few of them. */
    if (i % 50 == 0)
      for (size_t cut = 0; cut < g.len; cut++) check_parse(w, g.p, cut);
  }
  /* Deep nesting stops at the depth limit instead of recursing away. */
  g.len = 0;
  for (int i = 0; i < 100000; i++) puts_(&g, "[");
  check_parse(w, g.p, g.len);
  /* Limits: too many intents, too many bytes. */
  g.len = 0;
  puts_(&g, "[");
  for (int i = 0; i < SIM_DW_INTENTS_MAX + 10; i++)
    puts_(&g, i ? ",[11,\"000000000000001\"]" : "[11,\"000000000000001\"]");
  puts_(&g, "]");
  dw_intent_list l;
  memset(&l, 0, sizeof l);
  assert_int_equal(dw_parse_intents(w, g.p, g.len, TW_ALICE, 0, &l), SIM_TOOBIG);
  assert_int_equal(l.n, SIM_DW_INTENTS_MAX);
  dw_intent_list_release(&l);
  assert_int_equal(dw_parse_intents(w, g.p, SIM_DW_INTENTS_MAX_BYTES + 1, TW_ALICE, 0, &l), SIM_TOOBIG);
  dw_intent_list_release(&l);
  free(g.p);
  tw_free(w);
}

/* An id of some object of the world (any owner, any type), or a made-up one. */
static void some_id(const dw_world *w, char *buf) {
  if (rnd(10) == 0) {
    dw_id_format(tw_mix(rng) & ((1ull << 60) - 1), buf);
    return;
  }
  uint32_t r = rnd((uint32_t)w->n_rooms);
  if (!w->rooms[r].n) {
    dw_id_format(1, buf);
    return;
  }
  dw_id_format(w->rooms[r].objs[rnd(w->rooms[r].n)]->id, buf);
}

static const char *some_amount(void) {
  static const char *const a[] = {"null", "0",   "1",          "5",           "49", "50",
                                  "51",   "300", "2147483647", "99999999999", "-3", "2.5"};
  return a[rnd(sizeof a / sizeof *a)];
}

static const char *some_resource(void) {
  static const char *const r[] = {"energy", "energy", "energy", "power", "H", "nope", ""};
  return r[rnd(sizeof r / sizeof *r)];
}

static const char *some_structure(void) {
  static const char *const s[] = {"road",      "road",  "extension", "spawn", "constructedWall",
                                  "container", "tower", "rampart",   "link"};
  return s[rnd(sizeof s / sizeof *s)];
}

/* Intents that parse, on real objects, with arguments in and out of range. */
static void random_intents(const dw_world *w, gen *g) {
  int n = (int)rnd(40);
  for (int i = 0; i < n; i++) {
    char a[16], b[16], one[512];
    some_id(w, a);
    some_id(w, b);
    int code = 1 + (int)rnd(SIM_DW_INTENT_CODES - 1);
    switch (code) {
      case SIM_DW_MOVE: snprintf(one, sizeof one, "[1,\"%s\",%u]", a, rnd(10)); break;
      case SIM_DW_TRANSFER:
      case SIM_DW_WITHDRAW:
        snprintf(one, sizeof one, "[%d,\"%s\",\"%s\",\"%s\",%s]", code, a, b, some_resource(), some_amount());
        break;
      case SIM_DW_DROP: snprintf(one, sizeof one, "[6,\"%s\",\"%s\",%s]", a, some_resource(), some_amount()); break;
      case SIM_DW_SAY:
        snprintf(one, sizeof one, "[10,\"%s\",\"%s\",%s]", a, rnd(2) ? "hello there friend" : "\\ud83d",
                 rnd(2) ? "true" : "null");
        break;
      case SIM_DW_SPAWN: {
        static const char *const bodies[] = {"[\"work\",\"carry\",\"move\"]",
                                             "[\"move\"]",
                                             "[\"claim\",\"heal\",\"tough\"]",
                                             "[\"work\",\"work\",\"work\",\"work\",\"move\"]",
                                             "[]",
                                             "[\"x\"]"};
        snprintf(one, sizeof one, "[12,\"%s\",\"n%u\",%s,%s]", a, rnd(30), bodies[rnd(6)],
                 rnd(3)   ? "null"
                 : rnd(2) ? "[]"
                          : "[\"000000000000001\"]");
        break;
      }
      case SIM_DW_CREATE_SITE:
        snprintf(one, sizeof one, "[13,\"%s\",%u,%u,\"%s\"%s]", w->rooms[rnd((uint32_t)w->n_rooms)].name, rnd(52),
                 rnd(52), some_structure(), rnd(4) ? "" : ",\"Spawn9\"");
        break;
      case SIM_DW_SUICIDE:
        if (rnd(8)) {
          snprintf(one, sizeof one, "[1,\"%s\",%u]", a, 1 + rnd(8));
          break;
        } /* suicide is rarer */
        /* fall through */
      default: snprintf(one, sizeof one, "[%d,\"%s\",\"%s\"]", code, a, b); break;
      case SIM_DW_REMOVE_SITE:
      case SIM_DW_DESTROY:
      case SIM_DW_CANCEL_SPAWN: snprintf(one, sizeof one, "[%d,\"%s\"]", code, a); break;
    }
    if (g->len > 1) puts_(g, ",");
    puts_(g, one);
  }
}

static void test_world_fuzz_ticks(void **state) {
  (void)state;
  dw_world *w = tw_world(77, 2, 2);
  /* A third player with no room: everything it sends is someone else's or nobody's. */
  assert_int_equal(dw_player_put(w, 3, "carol"), SIM_OK);
  gen g[3] = {{0}};
  int32_t codes[4096];
  size_t accepted = 0, rejected = 0, corrupt = 0;
  for (int tick = 1; tick <= 3000; tick++) {
    sim_intents b[3];
    memset(b, 0, sizeof b);
    for (int p = 0; p < 3; p++) {
      g[p].len = 0;
      uint64_t id = (uint64_t)p + 1;
      int mode = (int)rnd(10);
      if (mode < 5 && p < 2) {
        /* The bot's batch, sometimes damaged. */
        char *t = tw_bot(w, id, 9);
        size_t n = strlen(t);
        put(&g[p], t, n);
        free(t);
        if (mode == 0 && g[p].len > 2) g[p].p[rnd((uint32_t)g[p].len)] = (char)rnd(256);
        if (mode == 1) g[p].len = rnd((uint32_t)g[p].len + 1);
      } else if (mode < 9) {
        puts_(&g[p], "[");
        random_intents(w, &g[p]);
        puts_(&g[p], "]");
      } else {
        size_t n = rnd(40);
        for (size_t k = 0; k < n; k++) {
          char c = (char)rnd(256);
          put(&g[p], &c, 1);
        }
      }
      b[p] = (sim_intents){.player = id,
                           .data = g[p].p ? g[p].p : "",
                           .len = g[p].len,
                           .codes = p == 0 ? codes : NULL,
                           .codes_cap = p == 0 ? 4096 : 0};
    }
    assert_int_equal(sim_world_tick(&w->base, w->time + 1, b, 3), SIM_OK);
    for (int p = 0; p < 3; p++) {
      accepted += b[p].accepted;
      rejected += b[p].rejected;
      corrupt += b[p].status != SIM_OK;
      assert_int_equal(b[p].accepted + b[p].rejected, b[p].n_intents);
    }
    for (size_t i = 0; i < b[0].n_intents && i < 4096; i++)
      assert_true(codes[i] == DW_OK || codes[i] == SIM_INTENT_SUPERSEDED || (codes[i] <= -1 && codes[i] >= -14));
    tw_assert_invariants(w);
    if (tick % 500 == 0) {
      static tw_records rs;
      assert_int_equal(sim_world_save(&w->base, true, tw_put_record, &rs), SIM_OK);
      sim_world *l;
      char err[SIM_ERRMSG_MAX];
      if (sim_world_load(sim_default_game(), rs.r, rs.n, &l, err) != SIM_OK)
        fail_msg("tick %d: reload failed: %s", tick, err);
      assert_int_equal(sim_world_hash(l), sim_world_hash(&w->base));
      sim_world_free(l);
      tw_records_free(&rs);
    }
  }
  print_message("3000 fuzzed ticks: %zu intents accepted, %zu refused, %zu batches damaged\n", accepted, rejected,
                corrupt);
  assert_true(accepted > 1000);
  for (int p = 0; p < 3; p++) free(g[p].p);
  tw_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_world_fuzz_parser),
      cmocka_unit_test(test_world_fuzz_ticks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
