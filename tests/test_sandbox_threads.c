/*
 * test_sandbox_threads.c — the threads library: startThread(path) from the tree, workers'
 * exposeCallables called as async methods, workers calling host functions and using
 * timers, the parent disposing a worker, the count limit, workers that stop answering
 * (a loop, the heap limit) disposed while the parent goes on, CPU billed to the parent,
 * everything disposed with the parent, and workers inside a tick.
 */
#include "test_sandbox_util.h"

static void h_save(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_value m[2] = {sbx_member("saved", sbx_bool(true)),
                    sbx_member("id", sbx_number(sbx_vm_thread_id(sbx_call_vm(c))))};
  sbx_value o = sbx_object(m, 2);
  sbx_call_return(c, &o);
}

typedef struct fixture {
  sbx_library *codebase, *threads, *ipc, *timers, *wipc;
} fixture;

static sbx_vm *new_vm(fixture *f, size_t max_threads, double response_ms, size_t worker_heap) {
  static const sbx_host_fn_def fns[] = {{"saveItem", h_save, 0, NULL}};
  sbx_ipc_options io = {fns, 1, "host"};
  assert_int_equal(sbx_ipc_library_new(&io, &f->wipc), SBX_OK);
  assert_int_equal(sbx_timers_library_new(NULL, &f->timers), SBX_OK);
  const sbx_library *wlibs[] = {sbt_console(), f->timers, f->wipc};
  sbx_threads_options to = {wlibs, 3, worker_heap, max_threads, response_ms};
  char *err = NULL;
  int rc = sbx_threads_library_new(&to, &f->threads, &err);
  if (rc != SBX_OK) fprintf(stderr, "threads: %s\n", err ? err : "?");
  free(err);
  assert_int_equal(rc, SBX_OK);
  assert_int_equal(sbx_codebase_library_new(NULL, &f->codebase), SBX_OK);
  sbx_ipc_options pio = {NULL, 0, NULL};
  assert_int_equal(sbx_ipc_library_new(&pio, &f->ipc), SBX_OK);
  const sbx_library *libs[] = {sbt_console(), f->codebase, f->threads, f->ipc, f->timers};
  sbx_vm_options o = sbt_opts();
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 5, &o, &vm, NULL), SBX_OK);
  return vm;
}

static void free_vm(fixture *f, sbx_vm *vm) {
  sbx_vm_free(vm);
  sbx_library_free(f->threads);
  sbx_library_free(f->codebase);
  sbx_library_free(f->ipc);
  sbx_library_free(f->timers);
  sbx_library_free(f->wipc);
  sbt_lines_clear(NULL);
}

static void put(sbx_vm *vm, const char *path, const char *src) {
  assert_int_equal(sbx_fs_write(sbx_vm_fs(vm), path, src, strlen(src), SBX_FS_PARENTS), SBX_OK);
}

static const char WORKER[] =
    "console.log('worker started ' + isThread);\n"
    "const helper = require('./helper');\n"
    "let tasks = 0;\n"
    "exposeCallables({\n"
    "  square: (x) => { tasks++; return helper.sq(x); },\n"
    "  save: async (item) => { tasks++; return await host.saveItem(item); },\n"
    "  later: (ms, v) => new Promise((resolve) => setTimeout(() => resolve(v + ' after ' + ms), ms)),\n"
    "  spin: () => { for (;;) {} },\n"
    "  hog: () => { const a = []; for (;;) a.push(new Array(1e5).fill(1.5)); },\n"
    "  fail: () => { throw new Error('worker failure'); },\n"
    "  stats: () => ({ tasks, isThread }),\n"
    "  nested: async () => { try { await startThread('/worker.js'); return 'started'; } catch (e) { return e.message; "
    "} },\n"
    "});\n";

static void test_sandbox_threads_start_call_dispose(void **state) {
  (void)state;
  fixture f;
  sbx_vm *vm = new_vm(&f, 2, 1000 * g_scale, 16);
  put(vm, "/worker.js", WORKER);
  put(vm, "/helper.js", "exports.sq = (x) => x * x;");
  sbt_run_ok(
      vm,
      "let w, w2;\n"
      "return {\n"
      "  async start() { w = await startThread('/worker'); return [w.threadId, typeof w.square, w.isDisposed]; },\n"
      "  async use() {\n"
      "    const r = await Promise.all([w.square(7), w.save({ id: 1 }), w.later(20, 'v'), w.stats()]);\n"
      "    let err; try { await w.fail(); } catch (e) { err = e.message.split('\\n'); }\n"
      "    return [r, err, await w.nested()];\n"
      "  },\n"
      "  async limit() {\n"
      "    w2 = await startThread('worker.js');\n"
      "    try { await startThread('/worker.js'); return 'no limit'; } catch (e) { return e.message; }\n"
      "  },\n"
      "  async missing() { try { await startThread('/nope.js'); } catch (e) { return e.message; } },\n"
      "  async dispose() {\n"
      "    const p = w.later(10000, 'never');\n"
      "    w.dispose();\n"
      "    let a, b; try { await p; } catch (e) { a = e.message; }\n"
      "    try { await w.square(2); } catch (e) { b = e.message; }\n"
      "    return [a, b, w.isDisposed, w2.isDisposed];\n"
      "  },\n"
      "};\n");
  sbt_call_json(vm, "start", "[1,\"function\",false]");
  sbt_expect_line("worker started 1");
  sbx_stats st;
  sbx_vm_stats(vm, &st);
  assert_int_equal(st.threads, 1);
  sbt_call_json(vm, "use",
                "[[49,{\"saved\":true,\"id\":1},\"v after 20\",{\"tasks\":2,\"isThread\":1}],"
                "[\"Error: worker failure\",\"    at Object.fail (worker:10:23)\"],\"startThread is not defined\"]");
  sbt_call_json(vm, "missing", "\"startThread: no file '/nope.js' in the tree\"");
  sbt_call_json(vm, "limit", "\"thread limit reached: at most 2 threads may be live\"");
  sbt_call_json(vm, "dispose", "[\"thread 1 was disposed\",\"the thread is disposed\",true,false]");
  sbx_vm_stats(vm, &st);
  assert_int_equal(st.threads, 1);
  free_vm(&f, vm); /* disposes w2 with it */
}

/* A worker that stops answering (a loop, the heap limit) is disposed; the parent goes on,
 * and the worker's CPU is the parent's. */
static void test_sandbox_threads_watchdog_and_billing(void **state) {
  (void)state;
  fixture f;
  sbx_vm *vm = new_vm(&f, 4, 100 * g_scale, 16);
  put(vm, "/worker.js", WORKER);
  put(vm, "/helper.js", "exports.sq = (x) => x * x;");
  sbt_run_ok(vm,
             "return {\n"
             "  async spin() { const w = await startThread('/worker.js');\n"
             "    let m; try { await w.spin(); } catch (e) { m = e.message; } return [m, w.isDisposed]; },\n"
             "  async hog() { const w = await startThread('/worker.js');\n"
             "    let m; try { await w.hog(); } catch (e) { m = e.message; } return [m, w.isDisposed]; },\n"
             "  alive: () => 'parent alive',\n"
             "};\n");
  sbx_result r;
  assert_int_equal(sbx_vm_call(vm, "spin", NULL, 0, 5000 * g_scale, &r), SBX_OK);
  /* CPU or wall limit (whichever the watchdog sees first on a loaded machine) */
  if (!strstr(r.value->u.items[0].u.string, "thread 1 stopped answering (Script execution timed out"))
    sbt_dump_result("spin", &r);
  assert_non_null(strstr(r.value->u.items[0].u.string, "thread 1 stopped answering (Script execution timed out"));
  assert_true(r.value->u.items[1].u.boolean);
  /* the worker's loop (stopped at 100 ms of CPU or wall) is billed to the parent's call */
  assert_true(r.cpu_ns >= (uint64_t)(40 * g_scale * 1e6));
  sbx_result_release(&r);
  sbx_vm_call(vm, "hog", NULL, 0, 10000 * g_scale, &r);
  sbt_expect_status(&r, SBX_OK);
  if (!strstr(r.value->u.items[0].u.string, "stopped answering")) sbt_dump_result("hog", &r);
  assert_non_null(strstr(r.value->u.items[0].u.string, "stopped answering"));
  sbx_result_release(&r);
  sbt_call_json(vm, "alive", "\"parent alive\"");
  sbx_stats st;
  sbx_vm_stats(vm, &st);
  assert_int_equal(st.threads, 0);
  free_vm(&f, vm);
}

/* Workers of a player run inside its tick, on the pool, within its budget. */
static void test_sandbox_threads_in_ticks(void **state) {
  (void)state;
  sbx_library *cb, *th;
  assert_int_equal(sbx_codebase_library_new(NULL, &cb), SBX_OK);
  const sbx_library *wlibs[] = {sbt_console()};
  sbx_threads_options to = {wlibs, 1, 16, 2, 200 * g_scale};
  assert_int_equal(sbx_threads_library_new(&to, &th, NULL), SBX_OK);
  const sbx_library *libs[] = {sbx_guards_library(), sbt_console(), cb, sbx_memory_library(), sbx_game_library(), th};
  sbx_runtime *rt;
  assert_int_equal(sbx_runtime_new_libs(libs, 6, &rt, NULL), SBX_OK);
  sbx_vm *vm;
  assert_int_equal(sbx_vm_new(rt, NULL, &vm), SBX_OK);
  put(vm, "/w.js", "exposeCallables({ add: (a, b) => a + b });");
  put(vm, "/main.js",
      "let w = null;\n"
      "module.exports.loop = async function () {\n"
      "  if (!w) w = await startThread('/w.js');\n"
      "  console.log('tick ' + Game.time + ' sum ' + await w.add(Game.time, 100));\n"
      "};\n");
  sbx_pool *pool;
  assert_int_equal(sbx_pool_new(1, &pool), SBX_OK);
  for (uint64_t t = 1; t <= 3; t++) {
    sbx_job job = {.vm = vm, .in = {.time = t, .cpu_limit_ms = 100, .tick_limit_ms = 500 * g_scale}};
    assert_int_equal(sbx_pool_run(pool, &job, 1), SBX_OK);
    assert_int_equal(job.out.status, SBX_OK);
    sbx_tick_out_release(&job.out);
    char want[64];
    snprintf(want, sizeof want, "tick %d sum %d", (int)t, (int)t + 100);
    sbt_expect_line(want);
  }
  sbx_stats st;
  sbx_vm_stats(vm, &st);
  assert_int_equal(st.threads, 1);
  sbx_pool_free(pool);
  sbx_vm_free(vm);
  sbx_runtime_free(rt);
  sbx_library_free(th);
  sbx_library_free(cb);
  sbt_lines_clear(NULL);
}

static int g_disposed_on; /* __atomic: 1 once on_dispose ran */
static void on_dispose(sbx_vm *vm, void *ud) {
  __atomic_store_n(&g_disposed_on, 1, __ATOMIC_RELEASE);
}

/* A worker stuck in a builtin (a default-comparator sort of a million numbers ignores
 * termination) inside its parent's tick: the pool gives up on the thread at the hard
 * limit; sbx_vm_free of the parent then returns at once, and the stuck thread frees the
 * parent (and the worker it is inside of) when V8 lets it go. */
static void test_sandbox_threads_stuck_worker_then_free(void **state) {
  (void)state;
  if (getenv("ISOWORLD_TEST_NO_STUCK") || RUNNING_ON_VALGRIND) {
    skip();
    return;
  }
  sbx_library *cb, *th;
  assert_int_equal(sbx_codebase_library_new(NULL, &cb), SBX_OK);
  sbx_threads_options to = {NULL, 0, 256, 2, 60000};
  assert_int_equal(sbx_threads_library_new(&to, &th, NULL), SBX_OK);
  const sbx_library *libs[] = {sbx_guards_library(), sbt_console(), cb, sbx_memory_library(), sbx_game_library(), th};
  sbx_runtime *rt;
  assert_int_equal(sbx_runtime_new_libs(libs, 6, &rt, NULL), SBX_OK);
  sbx_vm_options o = {.heap_limit_mb = 128, .on_dispose = on_dispose};
  sbx_vm *vm;
  assert_int_equal(sbx_vm_new(rt, &o, &vm), SBX_OK);
  put(vm, "/w.js",
      "const a = []; for (let i = 0; i < 1e6; i++) a.push(Math.random());\n"
      "exposeCallables({ sort: () => { a.sort(); return a.length; } });");
  put(vm, "/main.js",
      "let w = null;\n"
      "module.exports.loop = async function () {\n"
      "  if (Game.time === 1) { w = await startThread('/w.js'); console.log('started'); }\n"
      "  else console.log('sorted ' + await w.sort());\n"
      "};\n");
  sbx_pool *pool;
  assert_int_equal(sbx_pool_new(1, &pool), SBX_OK);
  sbx_job job = {
      .vm = vm,
      .in = {.time = 1, .cpu_limit_ms = 100, .tick_limit_ms = 20000, .wall_limit_ms = 30000, .hard_limit_ms = 30000}};
  assert_int_equal(sbx_pool_run(pool, &job, 1), SBX_OK);
  assert_int_equal(job.out.status, SBX_OK);
  sbx_tick_out_release(&job.out);
  sbt_expect_line("started");
  job = (sbx_job){.vm = vm, .in = {.time = 2, .cpu_limit_ms = 100, .tick_limit_ms = 50, .hard_limit_ms = 300}};
  assert_int_equal(sbx_pool_run(pool, &job, 1), SBX_OK);
  if (job.out.status != SBX_ABANDONED) {
    /* the sort was faster than the hard limit on this machine: nothing to test */
    sbx_tick_out_release(&job.out);
    sbx_pool_free(pool);
    sbx_vm_free(vm);
    sbx_runtime_free(rt);
    sbx_library_free(th);
    sbx_library_free(cb);
    sbt_lines_clear(NULL);
    skip();
    return;
  }
  sbx_tick_out_release(&job.out);
  double t0 = sbt_now_ms();
  sbx_vm_free(vm); /* the stuck thread still uses it: returns at once, freed later */
  assert_true(sbt_now_ms() - t0 < 200);
  assert_int_equal(__atomic_load_n(&g_disposed_on, __ATOMIC_ACQUIRE), 0);
  while (sbx_engine_stuck_threads() > 0 && sbt_now_ms() - t0 < 60000) usleep(20000);
  assert_int_equal(sbx_engine_stuck_threads(), 0);
  assert_int_equal(__atomic_load_n(&g_disposed_on, __ATOMIC_ACQUIRE), 1);
  sbx_pool_free(pool);
  sbx_runtime_free(rt);
  sbx_library_free(th);
  sbx_library_free(cb);
  sbt_lines_clear(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_threads_start_call_dispose),
      cmocka_unit_test(test_sandbox_threads_watchdog_and_billing),
      cmocka_unit_test(test_sandbox_threads_in_ticks),
      cmocka_unit_test(test_sandbox_threads_stuck_worker_then_free),
  };
  int rc = cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
  sbx_library_free(g_console);
  return rc;
}
