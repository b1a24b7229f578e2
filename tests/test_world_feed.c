/* test_world_feed.c — what leaves the world as text: the per-room view player code reads
 * (built once per room and shared), the room:<NAME> snapshots and diffs, and the
 * /api/game/room-objects answer, in Screeps' shapes. */
#include "test_world_util.h"

#include <jansson.h>

static json_t *parse(const sim_buf *b) {
  json_error_t e;
  json_t *j = json_loadb(b->data, b->len, 0, &e);
  if (!j) fail_msg("not JSON (%s): %.200s", e.text, b->data);
  return j;
}

static void test_world_view_shape(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 2);
  dw_obj *s = tw_obj(w, 0, DW_T_SPAWN, 25, 25, TW_ALICE);
  snprintf(s->name, sizeof s->name, "Spawn1");
  dw_obj *e = tw_obj(w, 0, DW_T_EXTENSION, 27, 25, TW_ALICE);
  e->energy = 20;
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "Harvester\"1\\", 10, 10, "WCM");
  char id[16], text[256];
  tw_id(s, id);
  snprintf(text, sizeof text, "[[12,\"%s\",\"Upgrader1\",[\"work\",\"carry\",\"move\"],null]]", id);
  assert_int_equal(tw_tick2(w, text, NULL, NULL, 0), SIM_OK);
  char cid[16];
  tw_id(c, cid);
  snprintf(text, sizeof text, "[[10,\"%s\",\"secret\",false]]", cid);
  assert_int_equal(tw_tick2(w, text, NULL, NULL, 0), SIM_OK);
  sim_buf b;
  sim_buf_init(&b);
  assert_int_equal(sim_world_room_view(&w->base, 0, &b), SIM_OK);
  json_t *v = parse(&b);
  assert_string_equal(json_string_value(json_object_get(v, "room")), "W1N1");
  assert_int_equal(json_integer_value(json_object_get(v, "energyAvailable")), s->energy + 20);
  assert_int_equal(json_integer_value(json_object_get(v, "energyCapacityAvailable")), 350);
  json_t *objs = json_object_get(v, "objects");
  assert_true(json_is_array(objs));
  assert_int_equal(json_array_size(objs), w->rooms[0].n);
  size_t i;
  json_t *o;
  int seen = 0;
  json_array_foreach(objs, i, o) {
    const char *type = json_string_value(json_object_get(o, "type"));
    assert_non_null(json_string_value(json_object_get(o, "_id")));
    assert_true(json_is_integer(json_object_get(o, "x")));
    assert_null(json_object_get(o, "room")); /* the view names its room once */
    if (strcmp(type, "spawn") == 0) {
      json_t *sp = json_object_get(o, "spawning");
      assert_string_equal(json_string_value(json_object_get(sp, "name")), "Upgrader1");
      assert_int_equal(json_integer_value(json_object_get(sp, "needTime")), 9);
      assert_string_equal(json_string_value(json_object_get(o, "user")), "1");
      seen++;
    }
    if (strcmp(type, "creep") == 0 && strcmp(json_string_value(json_object_get(o, "name")), "Harvester\"1\\") == 0) {
      json_t *say = json_object_get(json_object_get(o, "actionLog"), "say");
      assert_string_equal(json_string_value(json_object_get(say, "message")), "secret");
      assert_true(json_is_false(json_object_get(say, "isPublic")));
      assert_string_equal(json_string_value(json_object_get(o, "body")), "wcm"); /* packed in the view */
      assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "store"), "energy")), 0);
      assert_int_equal(json_integer_value(json_object_get(o, "storeCapacity")), 50);
      seen++;
    }
  }
  assert_int_equal(seen, 2);
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(v, "users"), "1"), "username")),
                      "alice");
  json_decref(v);
  /* The public room objects leave the private say out, and spell the body out. */
  sim_buf_clear(&b);
  assert_int_equal(sim_world_room_objects(&w->base, 0, &b), SIM_OK);
  assert_null(strstr(b.data, "secret"));
  assert_non_null(strstr(b.data, "\"body\":[{\"type\":\"work\",\"hits\":100},{\"type\":\"carry\""));
  sim_buf_clear(&b);
  assert_int_equal(sim_world_room_terrain(&w->base, 0, &b), SIM_OK);
  assert_int_equal(b.len, 2500);
  sim_buf_release(&b);
  tw_free(w);
}

static void test_world_views_are_built_once_per_room(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 2, 1);
  tw_creep(w, 0, TW_ALICE, "a", 10, 10, "M");
  tw_creep(w, 0, TW_BOB, "b", 20, 20, "M");
  tw_creep(w, 1, TW_BOB, "b2", 20, 20, "M");
  tw_idle(w, 1);
  sim_views *v;
  assert_int_equal(sim_views_new(&v), SIM_OK);
  sim_views_reset(v, &w->base);
  sim_view_ref ra[4], rb[4];
  size_t na, nb;
  assert_int_equal(sim_views_for_player(v, &w->base, TW_ALICE, ra, 4, &na), SIM_OK);
  assert_int_equal(sim_views_for_player(v, &w->base, TW_BOB, rb, 4, &nb), SIM_OK);
  assert_int_equal(na, 1);
  assert_int_equal(nb, 2);
  assert_ptr_equal(ra[0].data, rb[0].data); /* the same bytes for both */
  assert_int_equal(sim_views_rooms_built(v), 2);
  assert_int_equal(sim_views_for_player(v, &w->base, 42, ra, 4, &na), SIM_OK);
  assert_int_equal(na, 0);
  /* Next tick: reset, build_all, then lookups only read. */
  tw_idle(w, 1);
  sim_views_reset(v, &w->base);
  uint64_t players[2] = {TW_ALICE, TW_BOB};
  assert_int_equal(sim_views_build_all(v, &w->base, players, 2), SIM_OK);
  assert_int_equal(sim_views_rooms_built(v), 2);
  assert_int_equal(sim_views_for_player(v, &w->base, TW_BOB, rb, 1, &nb), SIM_OK);
  assert_int_equal(nb, 2); /* the count even when the array is shorter */
  assert_int_equal(sim_views_rooms_built(v), 2);
  assert_true(sim_views_bytes(v) > 100);
  sim_views_free(v);
  tw_free(w);
}

static void test_world_feed_snapshot_then_diffs(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 1);
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "mover", 10, 10, "CM");
  dw_obj *d = tw_creep(w, 0, TW_ALICE, "doomed", 30, 30, "CM");
  d->energy = 20;
  tw_idle(w, 1);
  sim_feed *f;
  assert_int_equal(sim_feed_new(&f), SIM_OK);
  sim_buf b;
  sim_buf_init(&b);
  assert_int_equal(sim_feed_snapshot(f, &w->base, 0, &b), SIM_OK);
  json_t *s = parse(&b);
  json_t *objs = json_object_get(s, "objects");
  char cid[16], did[16];
  tw_id(c, cid);
  tw_id(d, did);
  json_t *co = json_object_get(objs, cid);
  assert_string_equal(json_string_value(json_object_get(co, "type")), "creep");
  assert_string_equal(json_string_value(json_object_get(co, "room")), "W1N1");
  assert_string_equal(json_string_value(json_object_get(co, "name")), "mover");
  assert_int_equal(json_integer_value(json_object_get(s, "gameTime")), w->time);
  assert_string_equal(json_string_value(json_object_get(json_object_get(s, "info"), "mode")), "world");
  assert_non_null(json_object_get(json_object_get(s, "users"), "1"));
  json_decref(s);
  /* Nothing happens: an empty diff. */
  tw_idle(w, 1);
  bool changed = true;
  sim_buf_clear(&b);
  assert_int_equal(sim_feed_diff(f, &w->base, 0, &b, &changed), SIM_OK);
  assert_false(changed);
  s = parse(&b);
  assert_int_equal(json_object_size(json_object_get(s, "objects")), 0);
  assert_int_equal(json_integer_value(json_object_get(s, "gameTime")), w->time);
  json_decref(s);
  /* One creep moves and says something in public, the other dies. */
  char text[256];
  snprintf(text, sizeof text, "[[1,\"%s\",3],[10,\"%s\",\"hi\",true],[11,\"%s\"]]", cid, cid, did);
  assert_int_equal(tw_tick2(w, text, NULL, NULL, 0), SIM_OK);
  sim_buf_clear(&b);
  assert_int_equal(sim_feed_diff(f, &w->base, 0, &b, &changed), SIM_OK);
  assert_true(changed);
  s = parse(&b);
  objs = json_object_get(s, "objects");
  co = json_object_get(objs, cid);
  assert_int_equal(json_integer_value(json_object_get(co, "x")), 11);
  assert_null(json_object_get(co, "y")); /* unchanged keys are left out */
  assert_null(json_object_get(co, "name"));
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(json_object_get(co, "actionLog"), "say"), "message")), "hi");
  assert_true(json_is_null(json_object_get(objs, did)));
  /* The dropped energy is new: whole. */
  size_t whole = 0;
  const char *k;
  json_t *o;
  json_object_foreach(objs, k, o) if (json_is_object(o) && json_object_get(o, "type")) whole++;
  assert_int_equal(whole, 1);
  json_decref(s);
  /* The say lasts one tick: its key goes back to null. */
  tw_idle(w, 1);
  sim_buf_clear(&b);
  assert_int_equal(sim_feed_diff(f, &w->base, 0, &b, &changed), SIM_OK);
  s = parse(&b);
  assert_true(json_is_null(json_object_get(json_object_get(json_object_get(s, "objects"), cid), "actionLog")));
  json_decref(s);
  /* /api/game/room-objects */
  sim_buf_clear(&b);
  assert_int_equal(sim_room_objects_api(&w->base, 0, &b), SIM_OK);
  s = parse(&b);
  assert_int_equal(json_integer_value(json_object_get(s, "ok")), 1);
  assert_true(json_is_array(json_object_get(s, "objects")));
  assert_int_equal(json_array_size(json_object_get(s, "objects")), w->rooms[0].n);
  assert_non_null(json_object_get(json_object_get(s, "users"), "1"));
  json_decref(s);
  sim_buf_release(&b);
  sim_feed_free(f);
  tw_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_world_view_shape),
      cmocka_unit_test(test_world_views_are_built_once_per_room),
      cmocka_unit_test(test_world_feed_snapshot_then_diffs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
