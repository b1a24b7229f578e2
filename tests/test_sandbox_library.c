/*
 * test_sandbox_library.c — writing a library, and the vm's lifecycle with libraries:
 * JavaScript prelude with lib/core, sync host functions (values, errors, the deadline
 * flag), per-vm state and every hook, per-run data (a shared blob read by many vms as one
 * string), groups, script libraries, snapshot errors, the vm's callbacks (on_error,
 * on_catastrophic_error, on_end, on_dispose), and that no host object is reachable.
 */
#include "test_sandbox_util.h"

/* ------------------------------------------------------------------ a test library */

typedef struct counters {
  int attach, start, after_start, run_begin, run_end, dispose;
  int last_data_blobs;
  const void *last_data_ptr;
  bool saw_deadline;
} counters;

static counters g_c;

typedef struct vm_state {
  int calls;
  char intents[256];
} vm_state;

static void f_square(sbx_call *c, const sbx_value *a, size_t n) {
  vm_state *st = sbx_call_state(c);
  st->calls++;
  double x = n > 0 ? sbx_value_number(&a[0]) : 0;
  if (x != x) {
    sbx_call_throw(c, "square expects a number, got type %d", n > 0 ? (int)a[0].type : -1);
    return;
  }
  sbx_call_return_number(c, x * x);
}

static void f_calls(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_call_return_number(c, ((vm_state *)sbx_call_state(c))->calls);
}

static void f_info(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_value list[2] = {sbx_string(sbx_call_fn_ud(c)), sbx_string(sbx_call_library_ud(c))};
  sbx_value members[3] = {sbx_member("fn", list[0]), sbx_member("lib", list[1]),
                          sbx_member("pair", sbx_array(list, 2))};
  sbx_value o = sbx_object(members, 3);
  sbx_call_return(c, &o);
}

/* Busy until the run's deadline flag is raised (as a long path finder would poll it). */
static void f_spin(sbx_call *c, const sbx_value *a, size_t n) {
  const atomic_int *deadline = sbx_call_deadline(c);
  double t0 = sbt_now_ms();
  while (!atomic_load(deadline) && sbt_now_ms() - t0 < 10000 * g_scale) {
  }
  g_c.saw_deadline = atomic_load(deadline) == SBX_CPU_LIMIT && sbx_call_expired(c);
  sbx_call_return_number(c, -1);
}

/* The run's data for this library: blob i as a string (no copy when ASCII). */
static void f_view(sbx_call *c, const sbx_value *a, size_t n) {
  const sbx_lib_data *d = sbx_call_data(c);
  size_t i = n > 0 ? (size_t)sbx_value_number(&a[0]) : 0;
  if (!d || i >= d->n_blobs) return;
  sbx_call_return_blob(c, d->blobs[i], true);
}

/* Per-run output: the library keeps it in its per-vm state for the host to read. */
static void f_intents(sbx_call *c, const sbx_value *a, size_t n) {
  vm_state *st = sbx_call_state(c);
  if (n > 0 && a[0].type == SBX_VAL_STRING) snprintf(st->intents, sizeof st->intents, "%s", a[0].u.string);
}

static int h_attach(const sbx_library *lib, sbx_vm *vm, void **state) {
  g_c.attach++;
  *state = calloc(1, sizeof(vm_state));
  return *state ? 0 : SBX_NOMEM;
}
static void h_start(const sbx_library *lib, sbx_vm *vm, void *state) {
  g_c.start++;
}
static void h_after_start(const sbx_library *lib, sbx_vm *vm, void *state) {
  g_c.after_start++;
}
static void h_run_begin(const sbx_library *lib, sbx_vm *vm, void *state, const sbx_lib_data *d) {
  g_c.run_begin++;
  g_c.last_data_blobs = d ? (int)d->n_blobs : -1;
  g_c.last_data_ptr = d ? d->ptr : NULL;
  ((vm_state *)state)->intents[0] = 0;
}
static void h_run_end(const sbx_library *lib, sbx_vm *vm, void *state) {
  g_c.run_end++;
}
static void h_dispose(const sbx_library *lib, sbx_vm *vm, void *state) {
  g_c.dispose++;
  free(state);
}

static const sbx_host_fn_def g_fns[] = {
    {"square", f_square, 0, NULL}, {"calls", f_calls, 0, NULL}, {"info", f_info, 0, (void *)"fn-ud"},
    {"spin", f_spin, 0, NULL},     {"view", f_view, 0, NULL},   {"intents", f_intents, 0, NULL},
};

/* The library's JavaScript: a `world` global over the host functions, per-tick state
 * built in onRunBegin (as a game's player API builds Game from the room views), and the
 * intents handed back in onRunEnd. */
static const char LIB_JS[] =
    "'use strict';\n"
    "let host = null, cfg = null, rooms = null, queued = [];\n"
    "const world = {\n"
    "  square: (x) => host.square(x),\n"
    "  calls: () => host.calls(),\n"
    "  info: () => host.info(),\n"
    "  spin: () => host.spin(),\n"
    "  get rooms() { return rooms; },\n"
    "  config: () => cfg,\n"
    "  order: (o) => { queued.push(o); lib.requestEnd(); },\n"
    "};\n"
    "Object.defineProperty(globalThis, 'world', { value: Object.freeze(world) });\n"
    "lib.onAttach((h, config) => { host = h; cfg = config; });\n"
    "lib.onRunBegin(() => { rooms = [host.view(0), host.view(1)]; queued = []; });\n"
    "lib.onRunEnd(() => { host.intents(queued.join(';')); });\n";

static sbx_value g_cfg_members[2];
static sbx_value g_cfg;
static sbx_library g_lib = {
    .name = "world",
    .js = LIB_JS,
    .fns = g_fns,
    .n_fns = sizeof g_fns / sizeof g_fns[0],
    .ud = (void *)"lib-ud",
    .attach = h_attach,
    .start = h_start,
    .after_start = h_after_start,
    .run_begin = h_run_begin,
    .run_end = h_run_end,
    .dispose = h_dispose,
};

static void init_lib(void) {
  g_cfg_members[0] = sbx_member("name", sbx_string("testworld"));
  g_cfg_members[1] = sbx_member("size", sbx_number(50));
  g_cfg = sbx_object(g_cfg_members, 2);
  g_lib.config = &g_cfg;
}

/* ------------------------------------------------------------------ general API */

static void test_sandbox_library_host_functions_and_hooks(void **state) {
  (void)state;
  init_lib();
  memset(&g_c, 0, sizeof g_c);
  const sbx_library *libs[] = {sbt_console(), &g_lib};
  sbx_vm_options o = sbt_opts();
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 2, &o, &vm, NULL), SBX_OK);
  assert_int_equal(g_c.attach, 1);
  assert_non_null(sbx_vm_library_state(vm, &g_lib));
  sbx_result r;
  assert_int_equal(sbx_vm_init(vm, &r), SBX_OK);
  sbx_result_release(&r);
  assert_int_equal(g_c.start, 1);
  sbt_run_ok(vm,
             "return {\n"
             "  main: () => [world.square(7), world.calls(), world.config(), world.info()],\n"
             "  bad: () => { try { world.square('x'); } catch (e) { return [e instanceof Error, e.message]; } },\n"
             "  typ: () => [typeof world.square, String(world.square).includes('native') ? 'wrapped' : 'js'],\n"
             "};\n");
  assert_int_equal(g_c.after_start, 1);
  sbt_call_json(vm, "main",
                "[49,1,{\"name\":\"testworld\",\"size\":50},{\"fn\":\"fn-ud\",\"lib\":\"lib-ud\",\"pair\":[\"fn-ud\","
                "\"lib-ud\"]}]");
  sbt_call_json(vm, "bad", "[true,\"square expects a number, got type 4\"]");
  sbx_vm_free(vm);
  assert_int_equal(g_c.dispose, 1);
  assert_int_equal(g_c.run_begin, 0); /* run hooks are for ticks */
}

/* A long host function polls the deadline flag and gives up when the run is over its
 * CPU budget: V8 itself cannot interrupt a host function. */
static void test_sandbox_library_deadline_flag(void **state) {
  (void)state;
  init_lib();
  memset(&g_c, 0, sizeof g_c);
  const sbx_library *libs[] = {&g_lib};
  sbx_vm_options o = sbt_opts();
  o.cpu_limit_ms = 100 * g_scale;
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 1, &o, &vm, NULL), SBX_OK);
  sbx_result r;
  double t0 = sbt_now_ms();
  sbx_vm_run(vm, "world.spin(); for (;;) {}", NULL, &r);
  sbt_expect_status(&r, SBX_CPU_LIMIT);
  sbx_result_release(&r);
  assert_true(sbt_now_ms() - t0 < 3000 * g_scale);
  assert_true(g_c.saw_deadline);
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ ticks */

/* The game's way: a library in the player runtime reads per-run data (one blob per room,
 * built once and shared by every vm), and hands intents back at the end of the tick. */
static void test_sandbox_library_per_run_data_in_ticks(void **state) {
  (void)state;
  init_lib();
  memset(&g_c, 0, sizeof g_c);
  const sbx_library *libs[] = {sbx_player_library(), &g_lib};
  sbx_runtime *rt;
  char *err = NULL;
  assert_int_equal(sbx_runtime_new_libs(libs, 2, &rt, &err), SBX_OK);
  sbx_vm *vms[3];
  const char *src =
      "module.exports.loop = function () {\n"
      "  const r = world.rooms;\n"
      "  console.log(Game.time + ' ' + r[0].length + ' ' + r[0].slice(0, 12) + ' ' + r[1] + ' ' + typeof r[0]);\n"
      "  world.order('move ' + Game.time);\n"
      "};\n";
  sbx_module m = {"main", src, strlen(src), false};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(sbx_vm_new(rt, NULL, &vms[i]), SBX_OK);
    assert_int_equal(sbx_vm_set_code(vms[i], &m, 1), SBX_OK);
  }
  /* a big ASCII view and a small non-ASCII one, shared by the three vms */
  size_t big = 200000;
  char *text = malloc(big);
  memset(text, 'v', big);
  memcpy(text, "{\"room\":\"W1N1\"", 14);
  sbx_blob *b0, *b1;
  assert_int_equal(sbx_blob_wrap(text, big, NULL, NULL, &b0), SBX_OK); /* freed below, by us */
  assert_int_equal(sbx_blob_new("é", strlen("é"), &b1), SBX_OK);
  sbx_blob *blobs[2] = {b0, b1};
  int marker;
  sbx_lib_data d = {&g_lib, &marker, blobs, 2};
  sbx_pool *pool;
  assert_int_equal(sbx_pool_new(2, &pool), SBX_OK);
  for (uint64_t t = 1; t <= 2; t++) {
    sbx_job jobs[3];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 3; i++) {
      jobs[i].vm = vms[i];
      jobs[i].in = (sbx_tick_in){
          .time = t, .cpu_limit_ms = 100, .tick_limit_ms = 500 * g_scale, .lib_data = &d, .n_lib_data = 1};
    }
    assert_int_equal(sbx_pool_run(pool, jobs, 3), SBX_OK);
    for (int i = 0; i < 3; i++) {
      sbx_tick_out *o = &jobs[i].out;
      if (o->status != SBX_OK) fprintf(stderr, "vm %d: %s\n", i, o->error ? o->error : "?");
      assert_int_equal(o->status, SBX_OK);
      char want[128];
      snprintf(want, sizeof want, "%d 200000 {\"room\":\"W1N é string", (int)t);
      assert_int_equal(o->n_lines, 1);
      assert_string_equal(o->lines[0].text, want);
      vm_state *st = sbx_vm_library_state(vms[i], &g_lib);
      snprintf(want, sizeof want, "move %d", (int)t);
      assert_string_equal(st->intents, want);
      sbx_tick_out_release(o);
    }
  }
  assert_int_equal(g_c.run_begin, 6);
  assert_int_equal(g_c.run_end, 6);
  assert_int_equal(g_c.last_data_blobs, 2);
  assert_ptr_equal(g_c.last_data_ptr, &marker);
  assert_int_equal(g_c.start, 3);
  assert_int_equal(g_c.after_start, 3); /* the first tick ran each entry */
  sbx_pool_free(pool);
  for (int i = 0; i < 3; i++) sbx_vm_free(vms[i]);
  sbx_runtime_free(rt);
  /* the isolates are gone: nothing references the blobs but us */
  assert_int_equal(__atomic_load_n((int *)b0, __ATOMIC_RELAXED), 1);
  sbx_blob_unref(b0);
  sbx_blob_unref(b1);
  free(text);
}

/* ------------------------------------------------------------------ composition and errors */

static void test_sandbox_library_groups_scripts_and_snapshot_errors(void **state) {
  (void)state;
  static sbx_library a = {.name = "a", .js = "globalThis.order = (globalThis.order || '') + 'a';"};
  static sbx_library s = {.name = "s",
                          .js = "var fromScript = 1; function scriptFn() { return 2; } order += 's';",
                          .flags = SBX_LIB_SCRIPT};
  static sbx_library b = {.name = "b", .js = "order += 'b'; lib.onAttach(() => core.log(0, 'b attached'));"};
  const sbx_library *members[] = {&a, &s};
  sbx_library *group;
  assert_int_equal(sbx_library_group_new("ab", members, 2, &group), SBX_OK);
  const sbx_library *libs[] = {sbt_console(), group, &b, &a /* twice: kept once */};
  sbx_vm_options o = sbt_opts();
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 4, &o, &vm, NULL), SBX_OK);
  sbt_run_ok(vm, "return { main: () => [order, fromScript, scriptFn()] };");
  sbt_call_json(vm, "main", "[\"asb\",1,2]");
  sbt_expect_line("b attached");
  sbx_vm_free(vm);
  sbx_library_free(group);
  sbt_lines_clear(NULL);

  /* a library whose JavaScript throws: the snapshot fails and says which library */
  static sbx_library bad = {.name = "bad", .js = "throw new Error('bad prelude');"};
  const sbx_library *bl[] = {&a, &bad};
  char *err = NULL;
  vm = NULL;
  assert_int_equal(sbx_vm_create(bl, 2, &o, &vm, &err), SBX_SNAPSHOT);
  assert_null(vm);
  assert_non_null(err);
  assert_non_null(strstr(err, "isoworld:lib/bad"));
  assert_non_null(strstr(err, "bad prelude"));
  free(err);
  /* malformed: a host function without a function */
  static const sbx_host_fn_def nofn[] = {{"x", NULL, 0, NULL}};
  static sbx_library broken = {.name = "broken", .fns = nofn, .n_fns = 1};
  const sbx_library *brl[] = {&broken};
  assert_int_equal(sbx_vm_create(brl, 1, &o, &vm, NULL), SBX_INVALID);
}

typedef struct events {
  int errors, catastrophic, ends, disposes;
  int last_status;
} events;

static void ev_error(sbx_vm *vm, int st, const char *msg, void *ud) {
  ((events *)ud)->errors++;
  ((events *)ud)->last_status = st;
}
static void ev_cat(sbx_vm *vm, int st, const char *msg, void *ud) {
  ((events *)ud)->catastrophic++;
  ((events *)ud)->last_status = st;
}
static void ev_end(sbx_vm *vm, void *ud) {
  ((events *)ud)->ends++;
}
static void ev_dispose(sbx_vm *vm, void *ud) {
  ((events *)ud)->disposes++;
}

static void test_sandbox_library_vm_callbacks(void **state) {
  (void)state;
  events ev = {0};
  sbx_vm_options o = sbt_opts();
  o.heap_limit_mb = 16;
  o.cpu_limit_ms = 200 * g_scale;
  o.on_error = ev_error;
  o.on_catastrophic_error = ev_cat;
  o.on_end = ev_end;
  o.on_dispose = ev_dispose;
  o.cb_ud = &ev;
  const sbx_library *libs[] = {sbt_console()};
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 1, &o, &vm, NULL), SBX_OK);
  sbt_run_ok(vm, "globalThis.kept = 1; return { f: () => 1 };");
  assert_int_equal(ev.ends, 1);
  sbx_result r;
  assert_int_equal(sbx_vm_run(vm, "throw new RangeError('recoverable')", NULL, &r), SBX_EXCEPTION);
  sbx_result_release(&r);
  assert_int_equal(ev.errors, 1);
  assert_int_equal(ev.last_status, SBX_EXCEPTION);
  assert_int_equal(sbx_vm_run(vm, "for (;;) {}", NULL, &r), SBX_CPU_LIMIT);
  sbx_result_release(&r);
  assert_int_equal(ev.errors, 2);
  sbt_run_ok(vm, "if (globalThis.kept !== 1) throw new Error('global lost');"); /* the vm goes on */
  assert_int_equal(sbx_vm_run(vm, "const a = []; for (;;) a.push(new Array(1e5).fill(1.5));", NULL, &r),
                   SBX_HEAP_LIMIT);
  sbx_result_release(&r);
  assert_int_equal(ev.catastrophic, 1);
  assert_int_equal(ev.last_status, SBX_HEAP_LIMIT);
  assert_false(sbx_vm_has_isolate(vm));
  /* a fresh isolate next time; the old global is gone */
  sbt_run_ok(vm, "if (globalThis.kept === 1) throw new Error('global kept');");
  assert_int_equal(ev.disposes, 0);
  sbx_vm_free(vm);
  assert_int_equal(ev.disposes, 1);
}

static void test_sandbox_library_nothing_reachable(void **state) {
  (void)state;
  init_lib();
  sbx_library *timers, *ipc;
  assert_int_equal(sbx_timers_library_new(NULL, &timers), SBX_OK);
  static const sbx_host_fn_def f[] = {{"hostFn", f_calls, 0, NULL}};
  sbx_ipc_options io = {f, 1, NULL};
  assert_int_equal(sbx_ipc_library_new(&io, &ipc), SBX_OK);
  const sbx_library *libs[] = {sbt_console(), timers, ipc, &g_lib};
  sbx_vm_options o = sbt_opts();
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 4, &o, &vm, NULL), SBX_OK);
  sbt_run_ok(vm,
             "return { main() {\n"
             "  const names = Object.getOwnPropertyNames(globalThis);\n"
             "  const bad = names.filter(n => /isoworld|^host$|^core$|^lib$/.test(n));\n"
             "  const found = [];\n"
             "  for (const n of names) { let v; try { v = globalThis[n]; } catch (e) { continue; }\n"
             "    if (v && (typeof v === 'object' || typeof v === 'function') && n !== 'world' && n !== 'console') {\n"
             "      const ks = ['log', 'callDone', 'compile', 'load', 'onAttach', 'requestEnd', 'tickBody', 'square', "
             "'error']\n"
             "        .filter(k => k in v);\n"
             "      if (ks.length >= 2) found.push(n + ':' + ks.join()); } }\n"
             "  return [bad, found, typeof __isoworld_attach, typeof __isoworld_define];\n"
             "} };");
  sbt_call_json(vm, "main", "[[],[],\"undefined\",\"undefined\"]");
  sbx_vm_free(vm);
  sbx_library_free(timers);
  sbx_library_free(ipc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_library_host_functions_and_hooks),
      cmocka_unit_test(test_sandbox_library_deadline_flag),
      cmocka_unit_test(test_sandbox_library_per_run_data_in_ticks),
      cmocka_unit_test(test_sandbox_library_groups_scripts_and_snapshot_errors),
      cmocka_unit_test(test_sandbox_library_vm_callbacks),
      cmocka_unit_test(test_sandbox_library_nothing_reachable),
  };
  int rc = cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
  sbx_library_free(g_console);
  return rc;
}
