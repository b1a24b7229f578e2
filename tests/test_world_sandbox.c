/* test_world_sandbox.c — the default world's player API in real isolates: the sandbox
 * library of sim/library.c (lodash, constants, world.js and the glue in the snapshot;
 * views in as shared blobs, host.findPath/terrain, intents out), driven the way the
 * server's tick drives it: views built once per room, every player's job on the pool,
 * intents applied by sim_world_tick.
 *
 *   tutorial        the starter bot of server/demo/ (the tutorial's roles) for 1,500
 *                   ticks or more, until the two road sites it was given at the start are
 *                   built (at most 5,000): creeps of every role alive, the controller at
 *                   level 2, the roads there, no error in its console
 *   lodash          `_` is lodash 3.10.1, also as require('lodash')
 *   api             the API checks of sim/js/test/api_main.js, every tick for 120 ticks
 *   salvage         a loop that runs out of CPU still has its intents applied
 *   hostile         players that flood intents, abuse the path finder, tamper with the
 *                   API's prototypes and intrinsics, pass garbage to every call — next to
 *                   a well-behaved player who keeps ticking and a world whose invariants
 *                   (save/load round trip, hash) hold
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"
#include "test_world_util.h"

#define MAX_PLAYERS 8

typedef struct player {
  uint64_t id;
  char name[32];
  sbx_vm *vm;
  char *memory;
  size_t memory_len;
  sbx_tick_out last;
  int errors; /* runs that ended in an error */
  char first_error[400];
} player;

typedef struct env {
  sbx_library *lib;
  sbx_runtime *rt;
  sbx_pool *pool;
  sim_world *w;
  sim_views *views;
  player p[MAX_PLAYERS];
  size_t n;
  double tick_limit_ms;
} env;

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *d = malloc((size_t)n + 1);
  if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
    free(d);
    d = NULL;
  }
  fclose(f);
  if (d) {
    d[n] = 0;
    *len = (size_t)n;
  }
  return d;
}

static void env_start(env *e, uint32_t side) {
  memset(e, 0, sizeof *e);
  e->tick_limit_ms = 200;
  assert_int_equal(sim_library_new(sim_default_game(), &e->lib), SIM_OK);
  const sbx_library *libs[2] = {sbx_player_library(), e->lib};
  char *err = NULL;
  int rc = sbx_runtime_new_libs(libs, 2, &e->rt, &err);
  if (rc != SBX_OK) fprintf(stderr, "snapshot: %s\n", err ? err : "?");
  free(err);
  assert_int_equal(rc, SBX_OK);
  assert_int_equal(sbx_pool_new(2, &e->pool), SBX_OK);
  sim_world_options o = {.seed = 7, .width = side, .height = side};
  assert_int_equal(sim_world_create(sim_default_game(), &o, &e->w, NULL), SIM_OK);
  assert_int_equal(sim_views_new(&e->views), SIM_OK);
}

static void env_stop(env *e) {
  for (size_t i = 0; i < e->n; i++) {
    sbx_vm_free(e->p[i].vm);
    free(e->p[i].memory);
    sbx_tick_out_release(&e->p[i].last);
  }
  sbx_pool_free(e->pool);
  sbx_runtime_free(e->rt);
  sbx_library_free(e->lib);
  sim_views_free(e->views);
  sim_world_free(e->w);
}

/* A player with a room and Spawn1, running `mods` (name/source pairs, NULL-terminated). */
static player *env_player(env *e, const char *name, const char *const *mods) {
  player *p = &e->p[e->n];
  p->id = e->n + 1;
  snprintf(p->name, sizeof p->name, "%s", name);
  sim_player_spec sp = {.id = p->id, .username = name, .x = -1, .y = -1};
  assert_int_equal(sim_world_add_player(e->w, &sp, NULL), SIM_OK);
  sim_world_saved(e->w);
  sbx_vm_options vo = {.heap_limit_mb = 64};
  assert_int_equal(sbx_vm_new(e->rt, &vo, &p->vm), SBX_OK);
  sbx_module m[8];
  size_t k = 0;
  for (; mods[2 * k]; k++) m[k] = (sbx_module){mods[2 * k], mods[2 * k + 1], strlen(mods[2 * k + 1]), false};
  assert_int_equal(sbx_vm_set_code(p->vm, m, k), SBX_OK);
  p->memory = strdup("{}");
  p->memory_len = 2;
  e->n++;
  return p;
}

/* One tick of every player, as the server's tick runs it. commands[i] (may be NULL) is a
 * console expression for player i. */
static void env_tick(env *e, const char *const *commands) {
  uint64_t T = sim_world_time(e->w) + 1;
  uint64_t ids[MAX_PLAYERS];
  for (size_t i = 0; i < e->n; i++) ids[i] = e->p[i].id;
  sim_views_reset(e->views, e->w);
  assert_int_equal(sim_views_build_all(e->views, e->w, ids, e->n), SIM_OK);
  size_t rooms = sim_world_room_count(e->w);
  sbx_blob **room_blob = calloc(rooms, sizeof *room_blob);
  sbx_job jobs[MAX_PLAYERS];
  sim_run runs[MAX_PLAYERS];
  sbx_lib_data ld[MAX_PLAYERS];
  sbx_blob *views[MAX_PLAYERS][16];
  const char *cmd[MAX_PLAYERS][1];
  memset(jobs, 0, sizeof jobs);
  for (size_t i = 0; i < e->n; i++) {
    player *p = &e->p[i];
    sim_view_ref refs[16];
    size_t n = 0;
    assert_int_equal(sim_views_for_player(e->views, e->w, p->id, refs, 16, &n), SIM_OK);
    if (n > 16) n = 16;
    for (size_t k = 0; k < n; k++) {
      if (!room_blob[refs[k].room]) assert_int_equal(sbx_blob_new(refs[k].data, refs[k].len, &room_blob[refs[k].room]), SBX_OK);
      views[i][k] = room_blob[refs[k].room];
    }
    runs[i] = (sim_run){e->w, p->id, p->name, 1};
    sim_library_run_data(e->lib, &runs[i], views[i], n, &ld[i]);
    sbx_job *j = &jobs[i];
    j->vm = p->vm;
    j->in.time = T;
    j->in.cpu_limit_ms = e->tick_limit_ms;
    j->in.tick_limit_ms = e->tick_limit_ms;
    j->in.bucket = 10000;
    j->in.wall_limit_ms = 3000;
    j->in.hard_limit_ms = 6000;
    j->in.memory = p->memory;
    j->in.memory_len = p->memory_len;
    j->in.lib_data = &ld[i];
    j->in.n_lib_data = 1;
    if (commands && commands[i]) {
      cmd[i][0] = commands[i];
      j->in.commands = cmd[i];
      j->in.n_commands = 1;
    }
  }
  sbx_pool_run(e->pool, jobs, e->n);
  sim_intents batches[MAX_PLAYERS];
  char *texts[MAX_PLAYERS];
  for (size_t i = 0; i < e->n; i++) {
    player *p = &e->p[i];
    sbx_tick_out *o = &jobs[i].out;
    size_t len = 0;
    texts[i] = sim_library_take_intents(e->lib, p->vm, &len);
    batches[i] = (sim_intents){.player = p->id, .data = texts[i] ? texts[i] : "", .len = len};
    if (o->memory_changed) {
      free(p->memory);
      p->memory = o->memory;
      p->memory_len = o->memory_len;
      o->memory = NULL;
    }
    if (o->status != SBX_OK) {
      if (!p->errors) snprintf(p->first_error, sizeof p->first_error, "%s", o->error ? o->error : sbx_strerror(o->status));
      p->errors++;
    }
    sbx_tick_out_release(&p->last);
    p->last = *o;
  }
  assert_int_equal(sim_world_tick(e->w, T, batches, e->n), SIM_OK);
  for (size_t i = 0; i < e->n; i++) free(texts[i]);
  for (size_t r = 0; r < rooms; r++) sbx_blob_unref(room_blob[r]);
  free(room_blob);
}

static bool has_line(const sbx_tick_out *o, const char *needle) {
  for (size_t i = 0; i < o->n_lines; i++)
    if (strstr(o->lines[i].text, needle)) return true;
  return false;
}

static void print_lines(const player *p) {
  for (size_t i = 0; i < p->last.n_lines && i < 20; i++) fprintf(stderr, "  %s: %s\n", p->name, p->last.lines[i].text);
}

static int count(const sim_world *sw, uint64_t user, int type) {
  const dw_world *w = dw_cof(sw);
  int n = 0;
  for (size_t r = 0; r < w->n_rooms; r++)
    for (uint32_t i = 0; i < w->rooms[r].n; i++) {
      const dw_obj *o = w->rooms[r].objs[i];
      if ((!user || o->user == user) && o->type == type) n++;
    }
  return n;
}

static const dw_obj *controller_of(const sim_world *sw, uint64_t user) {
  const dw_world *w = dw_cof(sw);
  for (size_t r = 0; r < w->n_rooms; r++) {
    const dw_obj *c = dw_controller(w, (uint32_t)r);
    if (c && c->user == user) return c;
  }
  return NULL;
}

/* The world survives a save/load round trip with its hash. */
static void check_round_trip(sim_world *w) {
  tw_records *rs = calloc(1, sizeof *rs);
  assert_non_null(rs);
  assert_int_equal(sim_world_save(w, true, tw_put_record, rs), 0);
  sim_world *back = NULL;
  char err[SIM_ERRMSG_MAX] = "";
  int rc = sim_world_load(sim_default_game(), rs->r, rs->n, &back, err);
  if (rc != SIM_OK) fprintf(stderr, "load: %s\n", err);
  assert_int_equal(rc, SIM_OK);
  assert_true(sim_world_hash(back) == sim_world_hash(w));
  sim_world_free(back);
  tw_records_free(rs);
  free(rs);
}

/* ------------------------------------------------------------------ the bot */

static char *g_bot[4];
static const char *g_bot_mods[10];

static void load_bot(void) {
  const char *src = getenv("ISOWORLD_SOURCE_DIR");
  assert_non_null(src);
  const char *names[4] = {"main", "role.harvester", "role.upgrader", "role.builder"};
  for (int i = 0; i < 4; i++) {
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/server/demo/%s.js", src, names[i]);
    if (!g_bot[i]) g_bot[i] = read_file(path, &len);
    assert_non_null(g_bot[i]);
    g_bot_mods[2 * i] = names[i];
    g_bot_mods[2 * i + 1] = g_bot[i];
  }
  g_bot_mods[8] = NULL;
}

static void test_tutorial(void **state) {
  (void)state;
  load_bot();
  env e;
  env_start(&e, 1);
  player *alice = env_player(&e, "alice", g_bot_mods);
  const char *site_cmd[1] = {NULL};
  int sites_asked = 0;
  int t;
  for (t = 1; t <= 5000; t++) {
    if (t > 1500 && count(e.w, alice->id, DW_T_SITE) == 0) break;
    site_cmd[0] = NULL;
    /* At the start: two roads beside the spawn, as a player types them into the console
     * (a road is 300 progress: the tutorial's lone builder brings 50 energy a trip). */
    if (t == 1) {
      site_cmd[0] =
          "var s = Game.spawns.Spawn1, r = s.room, n = 0;"
          "for (var dx = -2; dx <= 2 && n < 2; dx += 2) for (var dy = -2; dy <= 2 && n < 2; dy += 4)"
          "  if (r.getTerrain().get(s.pos.x + dx, s.pos.y + dy) === 0 &&"
          "      r.createConstructionSite(s.pos.x + dx, s.pos.y + dy, STRUCTURE_ROAD) == OK) n++;"
          "n";
      sites_asked = t;
    }
    env_tick(&e, site_cmd);
    if (sites_asked == t) {
      bool two = has_line(&alice->last, "2");
      if (!two) print_lines(alice);
      assert_true(two);
    }
  }
  if (alice->errors) fprintf(stderr, "alice: %d errors, first: %s\n", alice->errors, alice->first_error);
  int creeps = count(e.w, alice->id, DW_T_CREEP);
  const dw_obj *c = controller_of(e.w, alice->id);
  int roads = count(e.w, 0, DW_T_ROAD), sites = count(e.w, alice->id, DW_T_SITE);
  fprintf(stderr, "after %d ticks: %d creeps, controller level %d (%d), %d roads, %d sites left\n", t - 1, creeps,
          c ? c->u.ctl.level : -1, c ? (int)c->u.ctl.progress : -1, roads, sites);
  assert_true(creeps >= 4);
  assert_non_null(c);
  assert_true(c->u.ctl.level >= 2);
  assert_true(sites_asked > 0);
  assert_int_equal(roads, 2);
  assert_int_equal(sites, 0);
  /* every role alive: Memory.creeps holds them */
  assert_non_null(strstr(alice->memory, "\"role\":\"harvester\""));
  assert_non_null(strstr(alice->memory, "\"role\":\"upgrader\""));
  assert_non_null(strstr(alice->memory, "\"role\":\"builder\""));
  check_round_trip(e.w);
  env_stop(&e);
}

static void test_lodash(void **state) {
  (void)state;
  env e;
  env_start(&e, 1);
  const char *mods[] = {"main",
                        "module.exports.loop = function () {"
                        "  const l = require('lodash');"
                        "  console.log('v=' + _.VERSION + ' same=' + (l === _) + ' sum=' + _.sum([1, 2, 3]) +"
                        "    ' filter=' + _.filter(Game.spawns, (s) => s.my).length);"
                        "};",
                        NULL};
  player *p = env_player(&e, "alice", mods);
  env_tick(&e, NULL);
  if (!has_line(&p->last, "v=3.10.1 same=true sum=6 filter=1")) print_lines(p);
  assert_true(has_line(&p->last, "v=3.10.1 same=true sum=6 filter=1"));
  env_stop(&e);
}

/* The API checks of sim/js/test/api_main.js (classes, ownership, find, paths, spawning
 * and its return codes, construction rules, a creep's work), every tick in an isolate. */
static void test_api(void **state) {
  (void)state;
  const char *src = getenv("ISOWORLD_SOURCE_DIR");
  assert_non_null(src);
  char path[1024];
  size_t len;
  snprintf(path, sizeof path, "%s/sim/js/test/api_main.js", src);
  char *code = read_file(path, &len);
  assert_non_null(code);
  env e;
  env_start(&e, 1);
  const char *mods[] = {"main", code, NULL};
  player *p = env_player(&e, "alice", mods);
  for (int t = 1; t <= 120; t++) {
    env_tick(&e, NULL);
    if (p->last.status != SBX_OK) {
      fprintf(stderr, "tick %d: %s\n", t, p->last.error ? p->last.error : sbx_strerror(p->last.status));
      print_lines(p);
    }
    assert_int_equal(p->last.status, SBX_OK);
  }
  /* the worker was spawned, walked and worked */
  assert_int_equal(count(e.w, p->id, DW_T_CREEP), 1);
  free(code);
  env_stop(&e);
}

/* Intents made before the loop ran out of CPU still count (DESIGN.md "A tick"). */
static void test_salvage(void **state) {
  (void)state;
  env e;
  env_start(&e, 1);
  e.tick_limit_ms = 50;
  const char *mods[] = {"main",
                        "module.exports.loop = function () {"
                        "  if (!Game.creeps.Worker) Game.spawns.Spawn1.spawnCreep([WORK, CARRY, MOVE], 'Worker');"
                        "  for (;;) {}"
                        "};",
                        NULL};
  player *p = env_player(&e, "alice", mods);
  env_tick(&e, NULL);
  assert_int_equal(p->last.status, SBX_CPU_LIMIT);
  assert_int_equal(count(e.w, p->id, DW_T_CREEP), 1);
  env_stop(&e);
}

/* ------------------------------------------------------------------ hostile players */

static const char FLOOD[] =
    "module.exports.loop = function () {"
    "  const s = Game.spawns.Spawn1;"
    "  for (let i = 0; i < 100000; i++) {"
    "    s.spawnCreep([WORK, CARRY, MOVE], 'x'.repeat(i % 300) + i);"
    "    s.room.createConstructionSite(i % 50, (i * 7) % 50, STRUCTURE_ROAD);"
    "  }"
    "  console.log('flooded');"
    "};";

static const char PATHS[] =
    "module.exports.loop = function () {"
    "  const s = Game.spawns.Spawn1;"
    "  for (;;) {"
    "    PathFinder.search(s.pos, {pos: new RoomPosition(48, 48, s.room.name), range: 0}, {maxOps: 100000});"
    "    s.room.findPath(s.pos, new RoomPosition(1, 1, s.room.name), {maxOps: 100000, ignoreCreeps: true});"
    "  }"
    "};";

static const char TAMPER[] =
    "JSON.stringify = () => '[[12,\"x\"'; JSON.parse = () => ({});"
    "const realPush = Array.prototype.push;"
    "Object.defineProperty(Array.prototype, '0', {set(v) {}, get() { return 'tampered'; }, configurable: true});"
    "Creep.prototype.moveTo = function () { return 42; };"
    "RoomPosition.prototype.isNearTo = () => { throw new Error('boom'); };"
    "module.exports.loop = function () {"
    "  const out = [];"
    "  try { out.push(Object.keys(Game.spawns).length); } catch (e) { console.log('caught ' + e.message); }"
    "  console.log('spawns=' + Object.keys(Game.spawns).join(','));"
    "  try { Game.spawns.Spawn1.spawnCreep([WORK, MOVE], 'T' + Game.time); } catch (e) { console.log('spawn threw ' + e.message); }"
    "  Array.prototype.push = function () { throw new Error('no push'); };"
    "  try { Game.spawns.Spawn1.spawnCreep([WORK, MOVE], 'U' + Game.time); } catch (e) { console.log('hurt itself: ' + e.message); }"
    "  Array.prototype.push = realPush;"
    "  console.log('host=' + typeof host + ' factory=' + typeof __isoworld_world + ' define=' + typeof __isoworld_define);"
    "  try { console.log('caller=' + typeof Creep.prototype.harvest.caller); } catch (e) { console.log('caller threw'); }"
    "};";

static const char GARBAGE[] =
    "module.exports.loop = function () {"
    "  const s = Game.spawns.Spawn1, r = s.room, evil = {toString() { throw new Error('evil'); }, valueOf() { return NaN; }};"
    "  const calls = ["
    "    () => s.spawnCreep(evil, evil, evil), () => s.spawnCreep([evil, 'work', 12], 'a'),"
    "    () => s.spawnCreep(new Array(1e6).fill('move'), 'b'), () => s.spawnCreep(['move'], 'c'.repeat(1e6)),"
    "    () => r.createConstructionSite(evil, evil, evil), () => r.createConstructionSite(NaN, Infinity, 'spawn'),"
    "    () => r.createConstructionSite(-1e300, 1e300, 'road', evil), () => r.find(9999), () => r.find(FIND_SOURCES, evil),"
    "    () => r.lookForAt(evil, 1e9, -1e9), () => r.findPath(evil, evil, evil), () => new RoomPosition(1e9, -5, evil),"
    "    () => new RoomPosition(25, 25, 'W1N1').findClosestByPath(FIND_SOURCES, {maxOps: -5, costCallback: evil}),"
    "    () => PathFinder.search(evil, evil, evil), () => PathFinder.search(s.pos, [], {roomCallback: () => evil}),"
    "    () => Game.getObjectById(evil), () => Game.getObjectById('0'.repeat(1e6)), () => Game.map.getRoomTerrain(evil).get(evil, evil),"
    "    () => Game.map.describeExits('W99999999N99999999'), () => Room.deserializePath(evil), () => Room.serializePath(evil),"
    "    () => s.spawning && s.spawning.cancel(), () => r.controller.pos.getRangeTo(evil), () => s.pos.getDirectionTo(NaN, NaN),"
    "  ];"
    "  let threw = 0, ran = 0;"
    "  for (const c of calls) { try { c(); ran++; } catch (e) { threw++; } }"
    "  for (const name in Game.creeps) {"
    "    const c = Game.creeps[name];"
    "    try { c.move(evil); c.move(99); c.harvest(evil); c.transfer(s, evil, -5); c.transfer(s, RESOURCE_ENERGY, 1e300);"
    "      c.withdraw(r.controller, 'power', NaN); c.build(s); c.upgradeController(s); c.say(evil); c.say('x'.repeat(1e6));"
    "      c.drop('energy', -1); c.pickup(c); c.moveTo(evil, evil); c.moveByPath(evil); } catch (e) { threw++; }"
    "  }"
    "  console.log('garbage ran=' + ran + ' threw=' + threw);"
    "};";

static void test_hostile(void **state) {
  (void)state;
  load_bot();
  env e;
  env_start(&e, 3);
  e.tick_limit_ms = 100;
  player *good = env_player(&e, "alice", g_bot_mods);
  const char *flood[] = {"main", FLOOD, NULL}, *paths[] = {"main", PATHS, NULL}, *tamper[] = {"main", TAMPER, NULL},
             *garbage[] = {"main", GARBAGE, NULL};
  player *pf = env_player(&e, "flood", flood);
  player *pp = env_player(&e, "paths", paths);
  player *pt = env_player(&e, "tamper", tamper);
  player *pg = env_player(&e, "garbage", garbage);
  for (int t = 1; t <= 40; t++) {
    env_tick(&e, NULL);
    /* the well-behaved player ticks every time, the world stays whole */
    if (good->last.status != SBX_OK) print_lines(good);
    assert_int_equal(good->last.status, SBX_OK);
    if (t == 1 || t == 40) {
      print_lines(pt);
      print_lines(pg);
    }
  }
  fprintf(stderr, "flood: %d errors (%s); paths: %d errors (%s)\n", pf->errors, pf->first_error, pp->errors,
          pp->first_error);
  /* the path finder abuser is stopped by its CPU budget every tick: a host function that
   * polls the deadline, not a thread stuck in C */
  assert_int_equal(pp->last.status, SBX_CPU_LIMIT);
  assert_true(pp->errors >= 38);
  /* the tamperer hurt only itself and never reached the host */
  assert_true(has_line(&pt->last, "host=undefined factory=undefined define=undefined"));
  assert_true(has_line(&pt->last, "spawns=Spawn1"));
  assert_true(has_line(&pg->last, "garbage ran="));
  assert_true(count(e.w, good->id, DW_T_CREEP) >= 1);
  /* the flood's spawn made one creep at most per free spawn time, and sites are capped */
  assert_true(count(e.w, pf->id, DW_T_SITE) <= 100);
  check_round_trip(e.w);
  env_stop(&e);
}

int main(void) {
  if (sbx_engine_start(NULL) != SBX_OK) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lodash),
      cmocka_unit_test(test_api),
      cmocka_unit_test(test_salvage),
      cmocka_unit_test(test_tutorial),
      cmocka_unit_test(test_hostile),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  for (int i = 0; i < 4; i++) free(g_bot[i]);
  sbx_engine_stop();
  return rc;
}
