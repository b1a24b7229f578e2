/* test_world_move.c — movement with Screeps' collision rules: one creep per tile, swaps,
 * trains and rotations, conflicts decided by MOVE ratio then id, blocked chains, walls and
 * obstacles, room crossings. */
#include "test_world_util.h"

/* Moves several creeps in one tick: dirs[i] for creeps[i] (0: no intent). */
static void moves(dw_world *w, dw_obj **creeps, const int *dirs, size_t n) {
  char text[4096] = "[", id[16];
  size_t len = 1;
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    if (!dirs[i]) continue;
    tw_id(creeps[i], id);
    len += (size_t)snprintf(text + len, sizeof text - len, "%s[1,\"%s\",%d]", first ? "" : ",", id, dirs[i]);
    first = false;
  }
  snprintf(text + len, sizeof text - len, "]");
  int32_t codes[64];
  assert_int_equal(tw_tick2(w, text, NULL, codes, 64), SIM_OK);
  tw_assert_invariants(w);
}

static void at(const dw_obj *c, int x, int y) {
  if (c->x != x || c->y != y) fail_msg("%s at %d,%d, expected %d,%d", c->name, c->x, c->y, x, y);
}

enum { UP = 1, RIGHT = 3, DOWN = 5, LEFT = 7 };

static void test_world_move_swap(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  dw_obj *c[2] = {tw_creep(w, 0, TW_ALICE, "a", 10, 10, "CM"), tw_creep(w, 0, TW_ALICE, "b", 11, 10, "CM")};
  int d[2] = {RIGHT, LEFT};
  moves(w, c, d, 2);
  at(c[0], 11, 10);
  at(c[1], 10, 10);
  tw_free(w);
}

static void test_world_move_train_and_rotation(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  /* A train: each moves into the tile the next one leaves. */
  dw_obj *t[3] = {tw_creep(w, 0, TW_ALICE, "t0", 10, 10, "CM"), tw_creep(w, 0, TW_ALICE, "t1", 11, 10, "CM"),
                  tw_creep(w, 0, TW_ALICE, "t2", 12, 10, "CM")};
  int d[3] = {RIGHT, RIGHT, RIGHT};
  moves(w, t, d, 3);
  at(t[0], 11, 10);
  at(t[1], 12, 10);
  at(t[2], 13, 10);
  /* Four creeps turning round a 2x2 square. */
  dw_obj *r[4] = {tw_creep(w, 0, TW_ALICE, "r0", 20, 20, "CM"), tw_creep(w, 0, TW_ALICE, "r1", 21, 20, "CM"),
                  tw_creep(w, 0, TW_ALICE, "r2", 21, 21, "CM"), tw_creep(w, 0, TW_ALICE, "r3", 20, 21, "CM")};
  int rd[4] = {RIGHT, DOWN, LEFT, UP};
  moves(w, r, rd, 4);
  at(r[0], 21, 20);
  at(r[1], 21, 21);
  at(r[2], 20, 21);
  at(r[3], 20, 20);
  tw_free(w);
}

static void test_world_move_blocked_chain(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  w->rooms[0].terrain[10 * 50 + 13] = DW_WALL;
  /* The head walks into a wall: nobody behind it can move up. */
  dw_obj *t[3] = {tw_creep(w, 0, TW_ALICE, "t0", 10, 10, "CM"), tw_creep(w, 0, TW_ALICE, "t1", 11, 10, "CM"),
                  tw_creep(w, 0, TW_ALICE, "t2", 12, 10, "CM")};
  int d[3] = {RIGHT, RIGHT, RIGHT};
  moves(w, t, d, 3);
  at(t[0], 10, 10);
  at(t[1], 11, 10);
  at(t[2], 12, 10);
  /* A creep that does not move blocks; so does a tired one. */
  dw_obj *s[2] = {tw_creep(w, 0, TW_ALICE, "mover", 20, 10, "CM"), tw_creep(w, 0, TW_BOB, "sitter", 21, 10, "CM")};
  int sd[2] = {RIGHT, 0};
  moves(w, s, sd, 2);
  at(s[0], 20, 10);
  s[1]->user = TW_ALICE;
  s[1]->u.creep.fatigue = 10;
  int sd2[2] = {RIGHT, RIGHT};
  moves(w, s, sd2, 2);
  at(s[0], 20, 10);
  at(s[1], 21, 10);
  /* Into an obstacle structure, or a wall. */
  tw_obj(w, 0, DW_T_SPAWN, 31, 10, TW_BOB);
  dw_obj *o[1] = {tw_creep(w, 0, TW_ALICE, "o", 30, 10, "CM")};
  int od[1] = {RIGHT};
  moves(w, o, od, 1);
  at(o[0], 30, 10);
  /* A road makes a wall walkable. */
  w->rooms[0].terrain[11 * 50 + 30] = DW_WALL;
  tw_obj(w, 0, DW_T_ROAD, 30, 11, 0);
  int od2[1] = {DOWN};
  moves(w, o, od2, 1);
  at(o[0], 30, 11);
  tw_free(w);
}

static void test_world_move_conflict_resolution(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  /* Two into one tile: the better MOVE-to-weight ratio wins. */
  dw_obj *c[2] = {tw_creep(w, 0, TW_ALICE, "heavy", 10, 10, "WWWM"), tw_creep(w, 0, TW_ALICE, "light", 12, 10, "WM")};
  int d[2] = {RIGHT, LEFT};
  moves(w, c, d, 2);
  at(c[0], 10, 10);
  at(c[1], 11, 10);
  /* Equal ratios: the smaller id wins, whatever the order of the intents. */
  dw_obj *e[2] = {tw_creep(w, 0, TW_ALICE, "e0", 20, 20, "CM"), tw_creep(w, 0, TW_ALICE, "e1", 22, 20, "CM")};
  dw_obj *first = e[0]->id < e[1]->id ? e[0] : e[1], *second = first == e[0] ? e[1] : e[0];
  int ed[2] = {RIGHT, LEFT};
  moves(w, e, ed, 2);
  at(first, 21, 20);
  at(second, first == e[0] ? 22 : 20, 20);
  /* A creep whose own tile is wanted wins over one whose tile is not: here x wants to
   * move on while y wants x's tile, and z competes with x for the tile ahead. */
  dw_obj *p[3] = {tw_creep(w, 0, TW_ALICE, "x", 30, 30, "WWWM"), tw_creep(w, 0, TW_ALICE, "y", 29, 30, "CM"),
                  tw_creep(w, 0, TW_ALICE, "z", 32, 30, "CM")};
  int pd[3] = {RIGHT, RIGHT, LEFT};
  moves(w, p, pd, 3);
  at(p[0], 31, 30);
  at(p[1], 30, 30);
  at(p[2], 32, 30);
  tw_free(w);
}

static void test_world_move_across_rooms(void **state) {
  (void)state;
  /* W2N1 | W1N1 with an exit at y = 25. */
  dw_world *w = tw_blank(1, 2, 1);
  uint32_t west, east;
  assert_int_equal(dw_room_lookup(w, "W2N1", 4, &west), SIM_OK);
  assert_int_equal(dw_room_lookup(w, "W1N1", 4, &east), SIM_OK);
  w->rooms[west].terrain[25 * 50 + 49] = DW_PLAIN;
  w->rooms[east].terrain[25 * 50 + 0] = DW_PLAIN;
  dw_obj *c[1] = {tw_creep(w, east, TW_ALICE, "walker", 1, 25, "WWM")};
  c[0]->u.creep.fatigue = 0;
  int d[1] = {LEFT};
  moves(w, c, d, 1);
  /* Stepped on the exit (no fatigue for that step) and crossed at the end of the tick. */
  assert_int_equal(c[0]->room, west);
  at(c[0], 49, 25);
  assert_int_equal(c[0]->u.creep.fatigue, 0);
  assert_ptr_equal(dw_find(w, c[0]->id), c[0]);
  /* Standing on an exit tile bounces back, as on Screeps; stepping off stays. */
  tw_idle(w, 1);
  assert_int_equal(c[0]->room, east);
  at(c[0], 0, 25);
  int d2[1] = {RIGHT};
  moves(w, c, d2, 1);
  assert_int_equal(c[0]->room, east);
  at(c[0], 1, 25);
  tw_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_world_move_swap),          cmocka_unit_test(test_world_move_train_and_rotation),
      cmocka_unit_test(test_world_move_blocked_chain), cmocka_unit_test(test_world_move_conflict_resolution),
      cmocka_unit_test(test_world_move_across_rooms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
