/* test_world_rules.c — the default world's rules, one at a time, with Screeps' numbers:
 * harvest, fatigue, spawning, controller, building, aging, transfers, say, suicide,
 * construction sites, regeneration, intent priorities. */
#include "test_world_util.h"

#define ID(o, buf) (tw_id((o), (buf)), (buf))

/* ------------------------------------------------------------------ harvest */

static void test_world_harvest_amounts(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 1);
  dw_obj *src = tw_obj(w, 0, DW_T_SOURCE, 11, 10, 0);
  dw_obj *one = tw_creep(w, 0, TW_ALICE, "one", 10, 10, "WCM");
  dw_obj *five = tw_creep(w, 0, TW_ALICE, "five", 12, 11, "WWWWWCM");
  char a[16], b[16], s[16];
  ID(one, a), ID(five, b), ID(src, s);
  char text[256];
  snprintf(text, sizeof text, "[[2,\"%s\",\"%s\"],[2,\"%s\",\"%s\"]]", a, s, b, s);
  int32_t codes[2];
  assert_int_equal(tw_tick2(w, text, NULL, codes, 2), SIM_OK);
  assert_int_equal(codes[0], DW_OK);
  assert_int_equal(codes[1], DW_OK);
  assert_int_equal(one->energy, 2); /* HARVEST_POWER per WORK */
  assert_int_equal(five->energy, 10);
  assert_int_equal(src->energy, 3000 - 12);
  /* Five more ticks: the 5-WORK creep is full at 50, the excess is dropped at its feet. */
  for (int i = 0; i < 5; i++) assert_int_equal(tw_tick2(w, text, NULL, codes, 2), SIM_OK);
  assert_int_equal(five->energy, 50);
  dw_obj *pile = NULL;
  for (uint32_t i = 0; i < w->rooms[0].n; i++)
    if (w->rooms[0].objs[i]->type == DW_T_ENERGY) pile = w->rooms[0].objs[i];
  assert_non_null(pile);
  assert_int_equal(pile->x, 12);
  assert_int_equal(pile->energy, 10 - 1); /* dropped 10, decayed ceil(10/1000) this tick */
  tw_assert_invariants(w);
  tw_free(w);
}

static void test_world_harvest_refusals(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 1);
  dw_obj *src = tw_obj(w, 0, DW_T_SOURCE, 11, 10, 0);
  dw_obj *far = tw_creep(w, 0, TW_ALICE, "far", 13, 10, "WCM");
  dw_obj *noweak = tw_creep(w, 0, TW_ALICE, "nowork", 10, 10, "CM");
  dw_obj *bobs = tw_creep(w, 0, TW_BOB, "bobs", 12, 11, "WCM");
  dw_obj *ok = tw_creep(w, 0, TW_ALICE, "ok", 10, 11, "WCM");
  char a[16], s[16];
  assert_int_equal(tw_do(w, "[[2,\"%s\",\"%s\"]]", ID(far, a), ID(src, s)), DW_ERR_NOT_IN_RANGE);
  assert_int_equal(tw_do(w, "[[2,\"%s\",\"%s\"]]", ID(noweak, a), ID(src, s)), DW_ERR_NO_BODYPART);
  assert_int_equal(tw_do(w, "[[2,\"%s\",\"%s\"]]", ID(bobs, a), ID(src, s)), DW_ERR_NOT_OWNER);
  assert_int_equal(tw_do(w, "[[2,\"%s\",\"%s\"]]", ID(ok, a), ID(ok, s)), DW_ERR_INVALID_TARGET);
  assert_int_equal(tw_do(w, "[[2,\"%s\",\"000000000000001\"]]", ID(ok, a)), DW_ERR_INVALID_TARGET);
  assert_int_equal(tw_do(w, "[[2,\"000000000000001\",\"%s\"]]", ID(src, s)), DW_ERR_NOT_FOUND);
  src->energy = 0;
  assert_int_equal(tw_do(w, "[[2,\"%s\",\"%s\"]]", ID(ok, a), ID(src, s)), DW_ERR_NOT_ENOUGH_RESOURCES);
  tw_free(w);

  /* A source in a room someone else owns. */
  w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_BOB, 1);
  src = tw_obj(w, 0, DW_T_SOURCE, 11, 10, 0);
  ok = tw_creep(w, 0, TW_ALICE, "ok", 10, 10, "WCM");
  assert_int_equal(tw_do(w, "[[2,\"%s\",\"%s\"]]", ID(ok, a), ID(src, s)), DW_ERR_NOT_OWNER);
  assert_int_equal(src->energy, 3000);
  tw_free(w);
}

static void test_world_source_regenerates_after_300_ticks(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 1);
  dw_obj *src = tw_obj(w, 0, DW_T_SOURCE, 11, 10, 0);
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "h", 10, 10, "WCM");
  char a[16], s[16];
  assert_int_equal(tw_do(w, "[[2,\"%s\",\"%s\"]]", ID(c, a), ID(src, s)), DW_OK);
  uint64_t t1 = w->time;
  assert_int_equal(src->u.src.next_regen, t1 + DW_ENERGY_REGEN_TIME);
  tw_idle(w, DW_ENERGY_REGEN_TIME - 2);
  assert_int_equal(src->energy, 2998);
  tw_idle(w, 1);
  assert_int_equal(src->energy, 3000); /* as Screeps: refilled when gameTime >= next-1 */
  assert_int_equal(src->u.src.next_regen, 0);
  tw_free(w);
}

static void test_world_source_capacity_follows_ownership(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  dw_obj *ctl = tw_controller(w, 0, 40, 40, 0, 0);
  dw_obj *src = tw_obj(w, 0, DW_T_SOURCE, 11, 10, 0);
  tw_idle(w, 1);
  assert_int_equal(src->energy_cap, DW_SOURCE_ENERGY_NEUTRAL_CAPACITY);
  assert_int_equal(src->energy, DW_SOURCE_ENERGY_NEUTRAL_CAPACITY);
  ctl->user = TW_ALICE;
  ctl->u.ctl.level = 1;
  tw_idle(w, 1);
  assert_int_equal(src->energy_cap, DW_SOURCE_ENERGY_CAPACITY);
  tw_free(w);
}

/* ------------------------------------------------------------------ fatigue */

static int32_t move(dw_world *w, dw_obj *c, int dir) {
  char a[16];
  return tw_do(w, "[[1,\"%s\",%d]]", ID(c, a), dir);
}

static void test_world_fatigue_plain_swamp_road(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  /* 1 WORK + empty CARRY + 1 MOVE on plain: 1 heavy part * 2 = 2, MOVE removes 2: moves
   * every tick. */
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "c", 10, 10, "WCM");
  for (int i = 0; i < 5; i++) {
    assert_int_equal(move(w, c, 3), DW_OK);
    assert_int_equal(c->x, 11 + i);
    assert_int_equal(c->u.creep.fatigue, 0);
  }
  /* 2 WORK + 1 MOVE: fatigue 4, 2 left after the tick: every other tick. */
  dw_obj *h = tw_creep(w, 0, TW_ALICE, "h", 10, 20, "WWM");
  assert_int_equal(move(w, h, 3), DW_OK);
  assert_int_equal(h->x, 11);
  assert_int_equal(h->u.creep.fatigue, 2);
  assert_int_equal(move(w, h, 3), DW_ERR_TIRED);
  assert_int_equal(h->x, 11);
  assert_int_equal(h->u.creep.fatigue, 0);
  assert_int_equal(move(w, h, 3), DW_OK);
  assert_int_equal(h->x, 12);
  /* Swamp: 1 heavy part * 10 = 10, then 2 per tick: 4 ticks tired. */
  dw_obj *s = tw_creep(w, 0, TW_ALICE, "s", 10, 30, "WCM");
  w->rooms[0].terrain[30 * 50 + 11] = DW_SWAMP;
  assert_int_equal(move(w, s, 3), DW_OK);
  assert_int_equal(s->x, 11);
  assert_int_equal(s->u.creep.fatigue, 8);
  for (int i = 0; i < 4; i++) assert_int_equal(move(w, s, 3), DW_ERR_TIRED);
  assert_int_equal(s->u.creep.fatigue, 0);
  assert_int_equal(move(w, s, 3), DW_OK);
  /* A road on a swamp: 1 per part. */
  w->rooms[0].terrain[40 * 50 + 11] = DW_SWAMP;
  tw_obj(w, 0, DW_T_ROAD, 11, 40, 0);
  dw_obj *r = tw_creep(w, 0, TW_ALICE, "r", 10, 40, "WWM");
  assert_int_equal(move(w, r, 3), DW_OK);
  assert_int_equal(r->x, 11);
  assert_int_equal(r->u.creep.fatigue, 0); /* 2 parts * 1 - 2 */
  /* Loaded CARRY parts weigh: 2 CARRY with 60 energy = 2 heavy parts. */
  dw_obj *l = tw_creep(w, 0, TW_ALICE, "l", 30, 10, "CCM");
  l->energy = 60;
  assert_int_equal(move(w, l, 5), DW_OK);
  assert_int_equal(l->u.creep.fatigue, 2);
  dw_obj *nomove = tw_creep(w, 0, TW_ALICE, "n", 30, 20, "WC");
  assert_int_equal(move(w, nomove, 3), DW_ERR_NO_BODYPART);
  assert_int_equal(move(w, nomove, 9), DW_ERR_INVALID_ARGS);
  tw_assert_invariants(w);
  tw_free(w);
}

/* ------------------------------------------------------------------ spawning */

static int32_t spawn(dw_world *w, uint64_t player, dw_obj *s, const char *name, const char *body) {
  char a[16], text[1024];
  snprintf(text, sizeof text, "[[12,\"%s\",\"%s\",%s,null]]", ID(s, a), name, body);
  int32_t code = 12345;
  assert_int_equal(tw_tick2(w, player == TW_ALICE ? text : NULL, player == TW_BOB ? text : NULL,
                            player == TW_ALICE ? &code : NULL, 1),
                   SIM_OK);
  return code;
}

static dw_obj *creep_named(dw_world *w, const char *name) {
  for (uint32_t r = 0; r < w->n_rooms; r++)
    for (uint32_t i = 0; i < w->rooms[r].n; i++)
      if (w->rooms[r].objs[i]->type == DW_T_CREEP && strcmp(w->rooms[r].objs[i]->name, name) == 0)
        return w->rooms[r].objs[i];
  return NULL;
}

static void test_world_spawn_cost_and_time(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 1);
  dw_obj *s = tw_obj(w, 0, DW_T_SPAWN, 25, 25, TW_ALICE);
  assert_int_equal(spawn(w, TW_ALICE, s, "h1", "[\"work\",\"carry\",\"move\"]"), DW_OK);
  uint64_t t0 = w->time;
  /* BODYPART_COST: 100 + 50 + 50; the spawn regenerates 1 (room energy < 300). */
  assert_int_equal(s->energy, 300 - 200 + 1);
  dw_obj *c = creep_named(w, "h1");
  assert_non_null(c);
  assert_true(c->u.creep.spawning);
  assert_int_equal(c->energy_cap, 50);
  assert_int_equal(c->hits_max, 300);
  assert_int_equal(s->u.spawn.need_time, 9); /* CREEP_SPAWN_TIME 3 per part */
  assert_int_equal(s->u.spawn.spawn_time, t0 + 9);
  /* Busy while spawning; the name is taken at once. */
  assert_int_equal(spawn(w, TW_ALICE, s, "h2", "[\"move\"]"), DW_ERR_BUSY);
  assert_int_equal(spawn(w, TW_ALICE, s, "h1", "[\"move\"]"), DW_ERR_NAME_EXISTS);
  tw_idle(w, (int)(t0 + 7 - w->time));
  assert_true(c->u.creep.spawning);
  tw_idle(w, 1); /* processed at spawnTime-1: out for Game.time = spawnTime */
  assert_false(c->u.creep.spawning);
  assert_int_equal(w->time, t0 + 8);
  assert_int_equal(dw_cheb(c->x, c->y, s->x, s->y), 1);
  assert_int_equal(c->u.creep.age_time, w->time + DW_CREEP_LIFE_TIME);
  assert_int_equal(s->u.spawn.creep, 0);
  tw_assert_invariants(w);
  tw_free(w);
}

static void test_world_spawn_refusals(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 1);
  dw_obj *s = tw_obj(w, 0, DW_T_SPAWN, 25, 25, TW_ALICE);
  /* 350 > 300. */
  assert_int_equal(spawn(w, TW_ALICE, s, "big", "[\"work\",\"work\",\"work\",\"move\"]"), DW_ERR_NOT_ENOUGH_ENERGY);
  assert_null(creep_named(w, "big"));
  assert_int_equal(spawn(w, TW_ALICE, s, "x", "[\"wings\"]"), DW_ERR_INVALID_ARGS);
  assert_int_equal(spawn(w, TW_ALICE, s, "x", "[]"), DW_ERR_INVALID_ARGS);
  char body[1024] = "[";
  for (int i = 0; i < 51; i++) strcat(body, i ? ",\"move\"" : "\"move\"");
  strcat(body, "]");
  assert_int_equal(spawn(w, TW_ALICE, s, "x", body), DW_ERR_INVALID_ARGS);
  assert_int_equal(spawn(w, TW_ALICE, s, "", "[\"move\"]"), DW_ERR_INVALID_ARGS);
  /* Bob cannot use alice's spawn. */
  assert_int_equal(spawn(w, TW_BOB, s, "b", "[\"move\"]"), 12345);
  assert_null(creep_named(w, "b"));
  /* Extensions add their energy: 300 + 50 = 350, spawn drained first. */
  dw_controller(w, 0)->u.ctl.level = 2;
  dw_obj *e = tw_obj(w, 0, DW_T_EXTENSION, 27, 25, TW_ALICE);
  e->energy = 50;
  s->energy = 300;
  assert_int_equal(spawn(w, TW_ALICE, s, "big", "[\"work\",\"work\",\"work\",\"move\"]"), DW_OK);
  assert_int_equal(e->energy, 0);
  tw_free(w);
}

static void test_world_spawn_energy_regenerates(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 1);
  dw_obj *s = tw_obj(w, 0, DW_T_SPAWN, 25, 25, TW_ALICE);
  s->energy = 290;
  tw_idle(w, 5);
  assert_int_equal(s->energy, 295);
  tw_idle(w, 20);
  assert_int_equal(s->energy, 300);
  /* Not when the room already holds 300 (an extension's energy counts). */
  dw_controller(w, 0)->u.ctl.level = 2;
  dw_obj *e = tw_obj(w, 0, DW_T_EXTENSION, 27, 25, TW_ALICE);
  e->energy = 50;
  s->energy = 260;
  tw_idle(w, 3);
  assert_int_equal(s->energy, 260);
  tw_free(w);
}

/* ------------------------------------------------------------------ controller */

static void test_world_controller_progress_and_level_up(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  dw_obj *ctl = tw_controller(w, 0, 20, 20, TW_ALICE, 1);
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "u", 23, 20, "WWWWWCM"); /* range 3 */
  c->energy = 50;
  char a[16], k[16];
  ID(c, a), ID(ctl, k);
  assert_int_equal(tw_do(w, "[[9,\"%s\",\"%s\"]]", a, k), DW_OK);
  assert_int_equal(ctl->u.ctl.progress, 5); /* UPGRADE_CONTROLLER_POWER per WORK */
  assert_int_equal(c->energy, 45);
  ctl->u.ctl.progress = 197;
  assert_int_equal(tw_do(w, "[[9,\"%s\",\"%s\"]]", a, k), DW_OK);
  assert_int_equal(ctl->u.ctl.level, 2);
  assert_int_equal(ctl->u.ctl.progress, 2); /* 197 + 5 - 200 */
  assert_int_equal(ctl->u.ctl.downgrade_time, w->time + DW_CONTROLLER_DOWNGRADE[2] / 2 + 101);
  /* Not in range, not one's own, no energy. */
  c->x = 24;
  assert_int_equal(tw_do(w, "[[9,\"%s\",\"%s\"]]", a, k), DW_ERR_NOT_IN_RANGE);
  c->x = 23;
  c->energy = 0;
  assert_int_equal(tw_do(w, "[[9,\"%s\",\"%s\"]]", a, k), DW_ERR_NOT_ENOUGH_RESOURCES);
  dw_obj *b = tw_creep(w, 0, TW_BOB, "b", 21, 21, "WCM");
  b->energy = 10;
  char bb[16], text[128];
  snprintf(text, sizeof text, "[[9,\"%s\",\"%s\"]]", ID(b, bb), k);
  assert_int_equal(tw_tick2(w, NULL, text, NULL, 0), SIM_OK);
  assert_int_equal(b->energy, 10); /* refused (ERR_NOT_OWNER) */
  /* transfer(controller, energy) upgrades too. */
  c->energy = 10;
  assert_int_equal(tw_do(w, "[[3,\"%s\",\"%s\",\"energy\",null]]", a, k), DW_OK);
  assert_int_equal(c->energy, 5);
  tw_free(w);
}

static void test_world_controller_downgrades(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  dw_obj *ctl = tw_controller(w, 0, 20, 20, TW_ALICE, 1);
  ctl->u.ctl.downgrade_time = w->time + 5;
  tw_idle(w, 3);
  assert_int_equal(ctl->u.ctl.level, 1);
  tw_idle(w, 1);
  assert_int_equal(ctl->u.ctl.level, 0);
  assert_int_equal(ctl->user, 0);
  /* Level 2 falls to 1 with 90% of level 1's progress. */
  ctl->user = TW_ALICE;
  ctl->u.ctl.level = 2;
  ctl->u.ctl.progress = 0;
  ctl->u.ctl.downgrade_time = w->time + 2;
  tw_idle(w, 1);
  assert_int_equal(ctl->u.ctl.level, 1);
  assert_int_equal(ctl->u.ctl.progress, 180);
  tw_free(w);
}

/* ------------------------------------------------------------------ construction */

static dw_obj *find_type(dw_world *w, int type) {
  for (uint32_t i = 0; i < w->rooms[0].n; i++)
    if (w->rooms[0].objs[i]->type == type && !w->rooms[0].objs[i]->dead) return w->rooms[0].objs[i];
  return NULL;
}

static void test_world_construction_sites(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  dw_obj *ctl = tw_controller(w, 0, 20, 20, TW_ALICE, 1);
  /* RCL 1 allows no extension. */
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",30,30,\"extension\"]]"), DW_ERR_RCL_NOT_ENOUGH);
  ctl->u.ctl.level = 2;
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",30,30,\"extension\"]]"), DW_OK);
  dw_obj *site = find_type(w, DW_T_SITE);
  assert_non_null(site);
  assert_int_equal(site->u.site.total, 3000);
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",30,30,\"road\"]]"), DW_ERR_INVALID_TARGET); /* a site is there */
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",0,30,\"road\"]]"), DW_ERR_INVALID_TARGET);  /* border */
  /* Next to an exit only roads and containers; next to a border wall anything. */
  w->rooms[0].terrain[30 * 50 + 0] = DW_PLAIN;
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",1,31,\"extension\"]]"), DW_ERR_INVALID_TARGET);
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",1,30,\"road\"]]"), DW_OK);
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",1,10,\"extension\"]]"), DW_OK);
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",20,20,\"road\"]]"), DW_ERR_INVALID_TARGET); /* controller */
  w->rooms[0].terrain[10 * 50 + 10] = DW_WALL;
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",10,10,\"extension\"]]"), DW_ERR_INVALID_TARGET);
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",10,10,\"road\"]]"), DW_OK); /* roads may cross walls */
  w->rooms[0].terrain[11 * 50 + 11] = DW_SWAMP;
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",11,11,\"road\"]]"), DW_OK);
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",30,31,\"rampart\"]]"), DW_ERR_INVALID_ARGS); /* not in this world */
  assert_int_equal(tw_do(w, "[[13,\"W9N9\",30,31,\"road\"]]"), DW_ERR_INVALID_ARGS);
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",50,31,\"road\"]]"), DW_ERR_INVALID_ARGS);
  size_t roads = 0, totals = 0;
  for (uint32_t i = 0; i < w->rooms[0].n; i++) {
    dw_obj *o = w->rooms[0].objs[i];
    if (o->type == DW_T_SITE && o->u.site.stype == DW_T_ROAD) roads++, totals += (size_t)o->u.site.total;
  }
  assert_int_equal(roads, 3);
  assert_int_equal(totals, 300 * 150 + 300 * 5 + 300);
  /* Bob may not build in alice's room. */
  assert_int_equal(tw_tick2(w, NULL, "[[13,\"W1N1\",35,35,\"road\"]]", NULL, 0), SIM_OK);
  for (uint32_t i = 0; i < w->rooms[0].n; i++) assert_false(w->rooms[0].objs[i]->x == 35);
  /* Roads in a neutral room are fine; extensions are not (RCL 0). */
  dw_world *n = tw_blank(2, 1, 1);
  tw_controller(n, 0, 20, 20, 0, 0);
  assert_int_equal(tw_do(n, "[[13,\"W1N1\",30,30,\"road\"]]"), DW_OK);
  assert_int_equal(tw_do(n, "[[13,\"W1N1\",31,30,\"extension\"]]"), DW_ERR_RCL_NOT_ENOUGH);
  tw_free(n);
  tw_free(w);
}

static void test_world_build_completes_structure(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 20, 20, TW_ALICE, 2);
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",30,30,\"extension\"]]"), DW_OK);
  dw_obj *site = find_type(w, DW_T_SITE);
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "b", 33, 30, "WWWWWCM");
  c->energy = 50;
  char a[16], st[16];
  ID(c, a), ID(site, st);
  assert_int_equal(tw_do(w, "[[7,\"%s\",\"%s\"]]", a, st), DW_OK);
  assert_int_equal(site->u.site.progress, 25); /* BUILD_POWER 5 per WORK */
  assert_int_equal(c->energy, 25);
  site->u.site.progress = 2990;
  assert_int_equal(tw_do(w, "[[7,\"%s\",\"%s\"]]", a, st), DW_OK);
  assert_int_equal(c->energy, 15); /* only what was missing */
  assert_null(dw_find(w, dw_id_parse(st, 15)));
  dw_obj *e = find_type(w, DW_T_EXTENSION);
  assert_non_null(e);
  assert_int_equal(e->user, TW_ALICE);
  assert_int_equal(e->x, 30);
  assert_int_equal(e->hits, DW_EXTENSION_HITS);
  assert_int_equal(e->energy_cap, 50); /* EXTENSION_ENERGY_CAPACITY at RCL 2 */
  /* An obstacle cannot be finished under a creep; out of range; no energy. */
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",31,31,\"extension\"]]"), DW_OK);
  dw_obj *s2 = find_type(w, DW_T_SITE);
  tw_creep(w, 0, TW_ALICE, "sitter", 31, 31, "M");
  ID(s2, st);
  assert_int_equal(tw_do(w, "[[7,\"%s\",\"%s\"]]", a, st), DW_ERR_INVALID_TARGET);
  c->x = 35;
  assert_int_equal(tw_do(w, "[[7,\"%s\",\"%s\"]]", a, st), DW_ERR_NOT_IN_RANGE);
  c->x = 33;
  c->energy = 0;
  assert_int_equal(tw_do(w, "[[7,\"%s\",\"%s\"]]", a, st), DW_ERR_NOT_ENOUGH_RESOURCES);
  /* Removing a site gives back half its progress on the ground. */
  s2->u.site.progress = 100;
  assert_int_equal(tw_do(w, "[[14,\"%s\"]]", st), DW_OK);
  dw_obj *pile = find_type(w, DW_T_ENERGY);
  assert_non_null(pile);
  assert_int_equal(pile->energy, 50 - 1);
  tw_assert_invariants(w);
  tw_free(w);
}

static void test_world_repair(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  dw_obj *road = tw_obj(w, 0, DW_T_ROAD, 30, 30, 0);
  road->hits = 1000;
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "r", 31, 31, "WWCM");
  c->energy = 50;
  char a[16], r[16];
  assert_int_equal(tw_do(w, "[[8,\"%s\",\"%s\"]]", ID(c, a), ID(road, r)), DW_OK);
  assert_int_equal(road->hits, 1200); /* REPAIR_POWER 100 per WORK */
  assert_int_equal(c->energy, 48);    /* REPAIR_COST 0.01 per hit */
  tw_free(w);
}

/* ------------------------------------------------------------------ life */

static void test_world_creep_ages_and_dies(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "old", 10, 10, "WCM");
  c->energy = 20;
  c->u.creep.age_time = w->time + 4; /* ticksToLive 4 at this Game.time */
  uint64_t id = c->id;
  tw_idle(w, 2);
  assert_non_null(dw_find(w, id));
  tw_idle(w, 1); /* processed at ageTime - 1 */
  assert_null(dw_find(w, id));
  dw_obj *pile = find_type(w, DW_T_ENERGY);
  assert_non_null(pile);
  assert_int_equal(pile->energy, 20);
  assert_int_equal(pile->x, 10);
  tw_idle(w, 1);
  assert_int_equal(pile->energy, 19); /* ENERGY_DECAY: ceil(amount / 1000) a tick */
  tw_assert_invariants(w);
  tw_free(w);
}

static void test_world_say_and_suicide(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "s", 10, 10, "WCM");
  char a[16];
  ID(c, a);
  /* 10 UTF-16 units at most: the emoji counts two. */
  assert_int_equal(tw_do(w, "[[10,\"%s\",\"\\ud83d\\udd04 harvest and more\",true]]", a), DW_OK);
  assert_string_equal(c->u.creep.say, "\xf0\x9f\x94\x84 harvest");
  assert_true(c->u.creep.say_public);
  tw_idle(w, 1);
  assert_int_equal(c->u.creep.say_len, 0); /* lasts one tick */
  assert_int_equal(tw_do(w, "[[10,\"%s\",5,true]]", a), DW_ERR_INVALID_ARGS);
  c->energy = 30;
  uint64_t id = c->id;
  assert_int_equal(tw_do(w, "[[11,\"%s\"]]", a), DW_OK);
  assert_null(dw_find(w, id));
  assert_int_equal(find_type(w, DW_T_ENERGY)->energy, 30 - 1);
  tw_free(w);
}

/* ------------------------------------------------------------------ energy moves */

static void test_world_transfer_withdraw_pickup_drop(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 1);
  dw_obj *s = tw_obj(w, 0, DW_T_SPAWN, 25, 25, TW_ALICE);
  s->energy = 270;
  dw_obj *a = tw_creep(w, 0, TW_ALICE, "a", 24, 24, "WCM");
  dw_obj *b = tw_creep(w, 0, TW_ALICE, "b", 26, 26, "WCM");
  a->energy = b->energy = 50;
  char ia[16], ib[16], is[16], text[256];
  ID(a, ia), ID(b, ib), ID(s, is);
  /* Both fill the spawn in one tick: 30 fit; the smaller id goes first, the other gets
   * ERR_FULL. (The spawn does not regenerate: the room holds 300 at the update.) */
  snprintf(text, sizeof text, "[[3,\"%s\",\"%s\",\"energy\",null],[3,\"%s\",\"%s\",\"energy\",null]]", ia, is, ib, is);
  int32_t codes[2];
  assert_int_equal(tw_tick2(w, text, NULL, codes, 2), SIM_OK);
  dw_obj *first = a->id < b->id ? a : b, *second = first == a ? b : a;
  assert_int_equal(codes[first == a ? 0 : 1], DW_OK);
  assert_int_equal(codes[first == a ? 1 : 0], DW_ERR_FULL);
  assert_int_equal(s->energy, 300);
  assert_int_equal(first->energy, 20);
  assert_int_equal(second->energy, 50);
  assert_int_equal(tw_do(w, "[[3,\"%s\",\"%s\",\"energy\",10]]", ia, is), DW_ERR_FULL);
  assert_int_equal(tw_do(w, "[[3,\"%s\",\"%s\",\"power\",10]]", ia, is), DW_ERR_NOT_ENOUGH_RESOURCES);
  assert_int_equal(tw_do(w, "[[3,\"%s\",\"%s\",\"unobtainium\",10]]", ia, is), DW_ERR_INVALID_ARGS);
  assert_int_equal(tw_do(w, "[[3,\"%s\",\"%s\",\"energy\",-1]]", ia, is), DW_ERR_INVALID_ARGS);
  /* Withdraw what the creep can hold. */
  int32_t before = first->energy;
  assert_int_equal(tw_do(w, "[[4,\"%s\",\"%s\",\"energy\",null]]", first == a ? ia : ib, is), DW_OK);
  assert_int_equal(first->energy, 50);
  assert_int_equal(s->energy, 300 - (50 - before) + 1);
  assert_int_equal(tw_do(w, "[[4,\"%s\",\"%s\",\"energy\",null]]", first == a ? ia : ib, is), DW_ERR_FULL);
  /* Drop 30, pick it up again (minus a tick of decay). */
  assert_int_equal(tw_do(w, "[[6,\"%s\",\"energy\",30]]", ia), DW_OK);
  assert_int_equal(a->energy, 20);
  dw_obj *pile = find_type(w, DW_T_ENERGY);
  assert_int_equal(pile->energy, 29);
  char ip[16];
  assert_int_equal(tw_do(w, "[[5,\"%s\",\"%s\"]]", ia, ID(pile, ip)), DW_OK);
  assert_int_equal(a->energy, 49);
  assert_null(find_type(w, DW_T_ENERGY));
  assert_int_equal(tw_do(w, "[[6,\"%s\",\"energy\",100]]", ia), DW_ERR_NOT_ENOUGH_RESOURCES);
  /* Out of range. */
  a->x = 20;
  assert_int_equal(tw_do(w, "[[3,\"%s\",\"%s\",\"energy\",null]]", ia, is), DW_ERR_NOT_IN_RANGE);
  tw_assert_invariants(w);
  tw_free(w);
}

/* ------------------------------------------------------------------ intents in one tick */

static void test_world_last_call_wins_and_priorities(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  tw_controller(w, 0, 40, 40, TW_ALICE, 2);
  dw_obj *src = tw_obj(w, 0, DW_T_SOURCE, 11, 10, 0);
  dw_obj *c = tw_creep(w, 0, TW_ALICE, "c", 10, 10, "WCM");
  c->energy = 10;
  char a[16], s[16], text[512];
  ID(c, a), ID(src, s);
  /* Two moves: the second counts. */
  snprintf(text, sizeof text, "[[1,\"%s\",3],[1,\"%s\",5]]", a, a);
  int32_t codes[3];
  assert_int_equal(tw_tick2(w, text, NULL, codes, 2), SIM_OK);
  assert_int_equal(codes[0], SIM_INTENT_SUPERSEDED);
  assert_int_equal(codes[1], DW_OK);
  assert_int_equal(c->x, 10);
  assert_int_equal(c->y, 11);
  /* harvest + build in one tick: build wins (Screeps' priorities). */
  assert_int_equal(tw_do(w, "[[13,\"W1N1\",12,12,\"road\"]]"), DW_OK);
  dw_obj *site = find_type(w, DW_T_SITE);
  char st[16];
  snprintf(text, sizeof text, "[[2,\"%s\",\"%s\"],[7,\"%s\",\"%s\"]]", a, s, a, ID(site, st));
  assert_int_equal(tw_tick2(w, text, NULL, codes, 2), SIM_OK);
  assert_int_equal(codes[0], SIM_INTENT_SUPERSEDED);
  assert_int_equal(codes[1], DW_OK);
  assert_int_equal(src->energy, 3000);
  assert_int_equal(site->u.site.progress, 5);
  /* A broken entry is refused alone; a syntax error keeps what came before. */
  snprintf(text, sizeof text, "[[1,\"%s\",\"up\"],{\"x\":1},[99],[1,\"%s\",1]", a, a);
  sim_intents b = {.player = TW_ALICE, .data = text, .len = strlen(text), .codes = codes, .codes_cap = 3};
  for (uint32_t i = 0; i < w->n_rooms; i++) w->rooms[i].touched = true;
  assert_int_equal(sim_world_tick(&w->base, w->time + 1, &b, 1), SIM_OK);
  assert_int_equal(b.status, SIM_CORRUPT);
  assert_int_equal(b.n_intents, 4);
  assert_int_equal(codes[0], DW_ERR_INVALID_ARGS);
  assert_int_equal(codes[1], DW_ERR_INVALID_ARGS);
  assert_int_equal(codes[2], DW_ERR_INVALID_ARGS);
  tw_assert_invariants(w);
  tw_free(w);
}

static void test_world_tick_time_must_follow(void **state) {
  (void)state;
  dw_world *w = tw_blank(1, 1, 1);
  assert_int_equal(sim_world_tick(&w->base, w->time + 2, NULL, 0), SIM_INVALID);
  assert_int_equal(sim_world_tick(&w->base, w->time, NULL, 0), SIM_INVALID);
  assert_int_equal(sim_world_tick(&w->base, w->time + 1, NULL, 0), SIM_OK);
  tw_free(w);
}

static void test_world_add_player_places_spawn(void **state) {
  (void)state;
  sim_world *w;
  sim_world_options o = {.seed = 99, .width = 2, .height = 2};
  assert_int_equal(sim_world_create(sim_default_game(), &o, &w, NULL), SIM_OK);
  char room[16], sug[16];
  assert_int_equal(sim_world_suggest_room(w, sug), SIM_OK);
  sim_player_spec p = {.id = 5, .username = "eve", .x = -1};
  assert_int_equal(sim_world_add_player(w, &p, room), SIM_OK);
  assert_string_equal(room, sug);
  assert_int_equal(sim_world_add_player(w, &p, room), SIM_EXISTS);
  sim_player_spec q = {.id = 6, .username = "mallory", .room = room, .x = -1};
  assert_int_equal(sim_world_add_player(w, &q, NULL), SIM_NOROOM);
  q.room = "W7N7";
  assert_int_equal(sim_world_add_player(w, &q, NULL), SIM_NOTFOUND);
  size_t owned[4], n;
  assert_int_equal(sim_world_owned_rooms(w, 5, owned, 4, &n), SIM_OK);
  assert_int_equal(n, 1);
  assert_string_equal(sim_world_room_name(w, owned[0]), room);
  const dw_world *d = dw_cof(w);
  const dw_obj *ctl = dw_controller(d, (uint32_t)owned[0]);
  assert_int_equal(ctl->user, 5);
  assert_int_equal(ctl->u.ctl.level, 1);
  int spawns = 0;
  for (uint32_t i = 0; i < d->rooms[owned[0]].n; i++) {
    const dw_obj *s = d->rooms[owned[0]].objs[i];
    if (s->type != DW_T_SPAWN) continue;
    spawns++;
    assert_string_equal(s->name, "Spawn1");
    assert_int_equal(s->energy, 300);
  }
  assert_int_equal(spawns, 1);
  tw_assert_invariants(d);
  assert_int_equal(sim_world_remove_player(w, 5), SIM_OK);
  assert_int_equal(sim_world_owned_rooms(w, 5, owned, 4, &n), SIM_OK);
  assert_int_equal(n, 0);
  assert_int_equal(sim_world_remove_player(w, 5), SIM_NOTFOUND);
  sim_world_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_world_harvest_amounts),
      cmocka_unit_test(test_world_harvest_refusals),
      cmocka_unit_test(test_world_source_regenerates_after_300_ticks),
      cmocka_unit_test(test_world_source_capacity_follows_ownership),
      cmocka_unit_test(test_world_fatigue_plain_swamp_road),
      cmocka_unit_test(test_world_spawn_cost_and_time),
      cmocka_unit_test(test_world_spawn_refusals),
      cmocka_unit_test(test_world_spawn_energy_regenerates),
      cmocka_unit_test(test_world_controller_progress_and_level_up),
      cmocka_unit_test(test_world_controller_downgrades),
      cmocka_unit_test(test_world_construction_sites),
      cmocka_unit_test(test_world_build_completes_structure),
      cmocka_unit_test(test_world_repair),
      cmocka_unit_test(test_world_creep_ages_and_dies),
      cmocka_unit_test(test_world_say_and_suicide),
      cmocka_unit_test(test_world_transfer_withdraw_pickup_drop),
      cmocka_unit_test(test_world_last_call_wins_and_priorities),
      cmocka_unit_test(test_world_tick_time_must_follow),
      cmocka_unit_test(test_world_add_player_places_spawn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
