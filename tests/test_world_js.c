/* test_world_js.c — the official Screeps tutorial's code, unmodified, runs through the
 * player API in sim/js against the real C world: Node stands in for the player's isolate
 * (sim/js/test/tutorial.js), this test is the server — views in, host.findPath and
 * host.terrain answered, intents applied. After 1,500 ticks the harvesters have kept the
 * spawn busy, the upgrader has upgraded the controller and the builder has built the
 * roads the console commands placed, with no exception in player code and (almost) no
 * intent the host disagreed with.
 *
 * Needs `node` (ISOWORLD_NODE, else PATH) and lodash 3.10.1 (npm install lodash@3.10.1;
 * ISOWORLD_NODE_MODULES names the node_modules folder holding it, by default
 * sim/js/node_modules, where tools/bootstrap.sh installs it). Skipped without them. */
#include "test_world_util.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct child {
  pid_t pid;
  FILE *to, *from;
} child;

static bool start_node(child *c, const char *node, const char *script, const char *modules, const char *scenario) {
  int in[2], out[2];
  if (pipe(in) || pipe(out)) return false;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  if (modules) setenv("NODE_PATH", modules, 1);
  char *argv[] = {(char *)node, (char *)script, (char *)scenario, NULL};
  int rc = posix_spawnp(&c->pid, node, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    return false;
  }
  c->to = fdopen(in[1], "w");
  c->from = fdopen(out[0], "r");
  return c->to && c->from;
}

static bool have_node_and_lodash(const char *node, const char *modules) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "NODE_PATH='%s' '%s' -e \"if (require('lodash').VERSION !== '3.10.1') process.exit(1)\" 2>/dev/null",
           modules ? modules : "", node);
  return system(cmd) == 0;
}

static json_t *read_msg(child *c) {
  static char *line = NULL;
  static size_t cap = 0;
  ssize_t n = getline(&line, &cap, c->from);
  if (n <= 0) return NULL;
  json_error_t e;
  json_t *j = json_loadb(line, (size_t)n, 0, &e);
  if (!j) fail_msg("bad message from node: %s: %.200s", e.text, line);
  return j;
}

static void send_json(child *c, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  fprintf(c->to, "%s\n", s);
  fflush(c->to);
  free(s);
  json_decref(j);
}

/* A host function call from JS: the arguments as the binding would copy them. */
static json_t *host_call(dw_world *w, const char *fn, json_t *args) {
  sim_host_fn f = sim_world_host_fn(&w->base, fn);
  if (!f) return json_null();
  sim_arg a[16];
  size_t n = json_array_size(args) < 16 ? json_array_size(args) : 16;
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(args, i);
    if (json_is_number(v))
      a[i] = (sim_arg){SIM_ARG_NUMBER, json_number_value(v), NULL, 0};
    else if (json_is_string(v))
      a[i] = (sim_arg){SIM_ARG_STRING, 0, json_string_value(v), json_string_length(v)};
    else
      a[i] = (sim_arg){SIM_ARG_UNDEFINED, 0, NULL, 0};
  }
  sim_host_ctx ctx = {&w->base, TW_ALICE, NULL};
  sim_buf out;
  sim_buf_init(&out);
  double num = 0;
  int rc = f(&ctx, a, n, &out, &num);
  json_t *r = rc == 1 ? json_stringn(out.data ? out.data : "", out.len) : rc == 0 ? json_real(num) : json_null();
  sim_buf_release(&out);
  return r;
}

static int count_named(const dw_world *w, const char *prefix, int type) {
  int n = 0;
  for (uint32_t r = 0; r < w->n_rooms; r++)
    for (uint32_t i = 0; i < w->rooms[r].n; i++) {
      const dw_obj *o = w->rooms[r].objs[i];
      if (o->type == type && strncmp(o->name, prefix, strlen(prefix)) == 0) n++;
    }
  return n;
}

static const dw_obj *creep_named_in(const dw_world *w, const char *name) {
  for (uint32_t r = 0; r < w->n_rooms; r++)
    for (uint32_t i = 0; i < w->rooms[r].n; i++)
      if (w->rooms[r].objs[i]->type == DW_T_CREEP && strcmp(w->rooms[r].objs[i]->name, name) == 0)
        return w->rooms[r].objs[i];
  return NULL;
}

static int count_type(const dw_world *w, int type) {
  int n = 0;
  for (uint32_t r = 0; r < w->n_rooms; r++)
    for (uint32_t i = 0; i < w->rooms[r].n; i++) n += w->rooms[r].objs[i]->type == type;
  return n;
}

static const char PLACE_ROADS[] =
    "(function(){var s=Game.spawns['Spawn1'];var t=s.room.getTerrain();var n=0;"
    "for(var dx=-3;dx<=3&&n<2;dx++)for(var dy=-3;dy<=3&&n<2;dy++){"
    "if(Math.max(Math.abs(dx),Math.abs(dy))<2)continue;"
    "if(t.get(s.pos.x+dx,s.pos.y+dy)===0&&s.room.createConstructionSite(s.pos.x+dx,s.pos.y+dy,STRUCTURE_ROAD)===OK)n++;"
    "}"
    "return n;})()";
static const char SPAWN_UPGRADER[] =
    "Game.spawns['Spawn1'].spawnCreep([WORK,CARRY,MOVE], 'Upgrader1', {memory: {role: 'upgrader'}})";
static const char SPAWN_BUILDER[] =
    "Game.spawns['Spawn1'].spawnCreep( [WORK, CARRY, MOVE], 'Builder1', { memory: { role: 'builder' } } )";

static bool prepare(child *c, const char *scenario) {
  const char *node = getenv("ISOWORLD_NODE") ? getenv("ISOWORLD_NODE") : "node";
  const char *modules = getenv("ISOWORLD_NODE_MODULES");
  const char *src = getenv("ISOWORLD_SOURCE_DIR");
  static char e2e_modules[1024];
  if (!modules && src) { /* where tools/bootstrap.sh installs lodash for the player API */
    snprintf(e2e_modules, sizeof e2e_modules, "%s/sim/js/node_modules", src);
    modules = e2e_modules;
  }
  if (!src || !have_node_and_lodash(node, modules)) {
    print_message("skipped: needs node and lodash 3.10.1 (set ISOWORLD_NODE_MODULES)\n");
    return false;
  }
  char script[1024];
  snprintf(script, sizeof script, "%s/sim/js/test/tutorial.js", src);
  signal(SIGPIPE, SIG_IGN);
  assert_true(start_node(c, node, script, modules, scenario));
  return true;
}

/* One tick through node: views out, host calls answered, the batch back (caller frees). */
static json_t *js_tick(child *c, dw_world *w, sim_views *views, const char *const *commands, size_t n_commands,
                       int *calls) {
  uint64_t T = w->time + 1;
  sim_views_reset(views, &w->base);
  sim_view_ref refs[8];
  size_t n;
  assert_int_equal(sim_views_for_player(views, &w->base, TW_ALICE, refs, 8, &n), SIM_OK);
  json_t *msg =
      json_pack("{s:s, s:I, s:{s:s, s:s}}", "t", "tick", "time", (json_int_t)T, "user", "id", "1", "username", "alice");
  json_t *vs = json_array();
  for (size_t i = 0; i < n && i < 8; i++) json_array_append_new(vs, json_stringn(refs[i].data, refs[i].len));
  json_object_set_new(msg, "views", vs);
  json_t *cmds = json_array();
  for (size_t i = 0; i < n_commands; i++) json_array_append_new(cmds, json_string(commands[i]));
  json_object_set_new(msg, "commands", cmds);
  send_json(c, msg);
  for (;;) {
    json_t *m = read_msg(c);
    if (!m) fail_msg("node went away at tick %llu", (unsigned long long)T);
    const char *t = json_string_value(json_object_get(m, "t"));
    if (t && strcmp(t, "call") == 0) {
      if (calls) (*calls)++;
      json_t *r = host_call(w, json_string_value(json_object_get(m, "fn")), json_object_get(m, "args"));
      send_json(c, json_pack("{s:o}", "r", r));
      json_decref(m);
      continue;
    }
    json_t *errors = json_object_get(m, "errors");
    if (json_array_size(errors))
      fail_msg("tick %llu: player code threw: %s", (unsigned long long)T, json_string_value(json_array_get(errors, 0)));
    return m;
  }
}

static void stop(child *c) {
  fclose(c->to);
  fclose(c->from);
  int st;
  waitpid(c->pid, &st, 0);
}

static void test_world_js_tutorial_runs_unmodified(void **state) {
  (void)state;
  child c;
  if (!prepare(&c, "tutorial")) skip();

  dw_world *w = tw_world(1, 1, 1);
  sim_views *views;
  assert_int_equal(sim_views_new(&views), SIM_OK);
  int max_harvesters = 0, host_refused = 0, intents_total = 0, calls = 0;
  bool upgrader = false, builder = false;
  long long progress_seen = 0;
  for (int tick = 1; tick <= 1500; tick++) {
    uint64_t T = w->time + 1;
    const char *cmds[2];
    size_t nc = 0;
    if (tick == 3) cmds[nc++] = PLACE_ROADS;
    if (tick >= 40 && tick % 10 == 0 && !upgrader) cmds[nc++] = SPAWN_UPGRADER;
    if (tick >= 40 && tick % 10 == 5 && upgrader && !builder) cmds[nc++] = SPAWN_BUILDER;
    json_t *done = js_tick(&c, w, views, cmds, nc, &calls);
    const char *text = json_string_value(json_object_get(done, "intents"));
    int32_t codes[512];
    sim_intents b = {
        .player = TW_ALICE, .data = text ? text : "", .len = text ? strlen(text) : 0, .codes = codes, .codes_cap = 512};
    assert_int_equal(sim_world_tick(&w->base, T, &b, 1), SIM_OK);
    assert_int_equal(b.status, SIM_OK);
    intents_total += (int)b.n_intents;
    for (size_t i = 0; i < b.n_intents && i < 512; i++)
      if (codes[i] != DW_OK && codes[i] != SIM_INTENT_SUPERSEDED) {
        host_refused++;
        if (getenv("ISOWORLD_VERBOSE")) print_message("tick %d: host refused %d: %.300s\n", tick, codes[i], text);
      }
    json_decref(done);
    int h = count_named(w, "Harvester", DW_T_CREEP);
    if (h > max_harvesters) max_harvesters = h;
    upgrader |= count_named(w, "Upgrader1", DW_T_CREEP) > 0;
    builder |= count_named(w, "Builder1", DW_T_CREEP) > 0;
    const dw_obj *ctl = dw_controller(w, 0);
    long long p = ctl->u.ctl.level > 1 ? 1000000 : ctl->u.ctl.progress;
    if (p > progress_seen) progress_seen = p;
    tw_assert_invariants(w);
  }
  const dw_obj *ctl = dw_controller(w, 0);
  print_message(
      "tutorial, 1500 ticks: %d harvesters at most, upgrader %d, builder %d, controller level %d progress %lld, "
      "%d roads, %d sites left, %d intents (%d refused by the host), %d host calls\n",
      max_harvesters, upgrader, builder, ctl->u.ctl.level, (long long)ctl->u.ctl.progress, count_type(w, DW_T_ROAD),
      count_type(w, DW_T_SITE), intents_total, host_refused, calls);
  assert_int_equal(max_harvesters, 2);
  assert_true(upgrader);
  assert_true(builder);
  assert_true(progress_seen > 100);
  assert_int_equal(count_type(w, DW_T_ROAD), 2);
  assert_int_equal(count_type(w, DW_T_SITE), 0);
  assert_true(host_refused * 50 < intents_total); /* the JS side and the host agree */
  stop(&c);
  sim_views_free(views);
  tw_free(w);
}

/* The API's answers checked in JS against the world (sim/js/test/tutorial.js "api"). */
static void test_world_js_api_answers(void **state) {
  (void)state;
  child c;
  if (!prepare(&c, "api")) skip();
  dw_world *w = tw_world(4, 1, 1);
  sim_views *views;
  assert_int_equal(sim_views_new(&views), SIM_OK);
  int refused = 0, total = 0;
  for (int tick = 1; tick <= 300; tick++) {
    json_t *done = js_tick(&c, w, views, NULL, 0, NULL);
    const char *text = json_string_value(json_object_get(done, "intents"));
    int32_t codes[64];
    sim_intents b = {
        .player = TW_ALICE, .data = text ? text : "", .len = text ? strlen(text) : 0, .codes = codes, .codes_cap = 64};
    assert_int_equal(sim_world_tick(&w->base, w->time + 1, &b, 1), SIM_OK);
    assert_int_equal(b.status, SIM_OK);
    total += (int)b.n_intents;
    for (size_t i = 0; i < b.n_intents && i < 64; i++)
      refused += codes[i] != DW_OK && codes[i] != SIM_INTENT_SUPERSEDED;
    json_decref(done);
  }
  const dw_obj *ctl = dw_controller(w, 0);
  assert_non_null(creep_named_in(w, "Worker"));
  assert_true(ctl->u.ctl.progress > 0 || ctl->u.ctl.level > 1);
  assert_int_equal(refused, 0);
  assert_true(total > 200);
  stop(&c);
  sim_views_free(views);
  tw_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_world_js_tutorial_runs_unmodified),
      cmocka_unit_test(test_world_js_api_answers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
