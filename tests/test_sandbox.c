/*
 * test_sandbox.c — unit tests of sandbox/ (player JavaScript in persistent V8 isolates).
 *
 * The engine and one runtime (startup snapshot) are made once, in the group setup: V8
 * can be started only once per process. Each test makes its own vm(s) and frees them.
 * Most tests run ticks with sbx_vm_tick on this thread (the watchdog is started in the
 * group setup); the pool tests run batches on an sbx_pool.
 *
 * Assertions are on behaviour the player sees (statuses, console lines, Memory), never
 * on timing except generous sanity bounds ("stopped within 3 s"). Under valgrind every
 * budget is multiplied (ISOWORLD_TEST_TIME_SCALE overrides the factor), because V8 runs
 * 20-50x slower there and would otherwise hit its CPU limit while creating a global.
 *
 * The stuck-builtin pool test holds a core for a few seconds after the batch ended (the
 * abandoned thread finishes its sort on its own); it waits for that thread to exit
 * before returning, so V8 is never stopped under a live isolate. Set
 * ISOWORLD_TEST_NO_STUCK=1 to skip it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sandbox.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* ------------------------------------------------------------------ fixture */

static sbx_runtime *g_rt;
static double g_scale = 1;      /* multiplies every time budget (valgrind) */
static bool g_thread_in_v8;     /* an abandoned thread may still be inside V8 */

static int group_setup(void **state) {
  (void)state;
  const char *s = getenv("ISOWORLD_TEST_TIME_SCALE");
  if (s && atof(s) > 0) g_scale = atof(s);
  else if (RUNNING_ON_VALGRIND) g_scale = 40;
  if (sbx_engine_start(NULL) != SBX_OK) return -1;
  char *err = NULL;
  if (sbx_runtime_new(NULL, &g_rt, &err) != SBX_OK) {
    fprintf(stderr, "sbx_runtime_new: %s\n", err ? err : "?");
    free(err);
    return -1;
  }
  return sbx_watchdog_start() == SBX_OK ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  sbx_watchdog_stop();
  sbx_runtime_free(g_rt);
  g_rt = NULL;
  /* V8 must not be stopped under a thread still inside it (the stuck-builtin test failed
   * before that thread ended): then leave it up until exit. */
  if (!g_thread_in_v8) sbx_engine_stop();
  return 0;
}

/* ------------------------------------------------------------------ helpers */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static sbx_vm *new_vm_mods(const sbx_vm_options *opt, const sbx_module *mods, size_t n) {
  sbx_vm *vm = NULL;
  assert_int_equal(sbx_vm_new(g_rt, opt, &vm), SBX_OK);
  assert_non_null(vm);
  assert_int_equal(sbx_vm_set_code(vm, mods, n), SBX_OK);
  return vm;
}

static sbx_module js(const char *name, const char *src) { return (sbx_module){name, src, strlen(src), false}; }

static sbx_vm *new_vm(const sbx_vm_options *opt, const char *main_src) {
  sbx_module m = js("main", main_src);
  return new_vm_mods(opt, &m, 1);
}

/* A realistic tick input: Game.time = time, a generous CPU budget. */
static sbx_tick_in tin(uint64_t time) {
  sbx_tick_in in = {.time = time, .cpu_limit_ms = 100, .tick_limit_ms = 500 * g_scale, .bucket = 10000};
  return in;
}

static void dump(const char *what, const sbx_tick_out *o) {
  fprintf(stderr, "---- %s: status %d (%s), %zu lines, omitted %zu, memory_changed %d\n", what, o->status,
          sbx_strerror(o->status), o->n_lines, o->omitted_lines, o->memory_changed);
  if (o->error) fprintf(stderr, "  error: %s\n", o->error);
  for (size_t i = 0; i < o->n_lines && i < 40; i++)
    fprintf(stderr, "  [%d%s] %.300s\n", o->lines[i].level, o->lines[i].unsafe ? " unsafe" : "", o->lines[i].text);
  if (o->memory) fprintf(stderr, "  memory: %.300s\n", o->memory);
}

/* Index of the first line containing needle (at level, or any level if level < 0), or -1. */
static long find_line_at(const sbx_tick_out *o, int level, const char *needle) {
  for (size_t i = 0; i < o->n_lines; i++) {
    if (level >= 0 && (int)o->lines[i].level != level) continue;
    if (strstr(o->lines[i].text, needle)) return (long)i;
  }
  return -1;
}

static long find_line(const sbx_tick_out *o, const char *needle) { return find_line_at(o, -1, needle); }

#define expect_status(o, st)                                                               \
  do {                                                                                     \
    if ((o)->status != (st)) dump("unexpected status", (o));                              \
    assert_int_equal((o)->status, (st));                                                   \
  } while (0)

#define expect_line(o, needle)                                                             \
  do {                                                                                     \
    if (find_line((o), (needle)) < 0) {                                                    \
      fprintf(stderr, "no line containing \"%s\"\n", (needle));                           \
      dump("missing line", (o));                                                           \
    }                                                                                      \
    assert_true(find_line((o), (needle)) >= 0);                                            \
  } while (0)

#define expect_exact_line(o, idx, txt)                                                     \
  do {                                                                                     \
    if ((o)->n_lines <= (size_t)(idx) || strcmp((o)->lines[(idx)].text, (txt)) != 0) {     \
      fprintf(stderr, "line %d is not \"%s\"\n", (int)(idx), (txt));                     \
      dump("wrong line", (o));                                                             \
    }                                                                                      \
    assert_true((o)->n_lines > (size_t)(idx));                                             \
    assert_string_equal((o)->lines[(idx)].text, (txt));                                    \
  } while (0)

#define expect_error_contains(o, needle)                                                   \
  do {                                                                                     \
    if (!(o)->error || !strstr((o)->error, (needle))) {                                    \
      fprintf(stderr, "error does not contain \"%s\"\n", (needle));                       \
      dump("wrong error", (o));                                                            \
    }                                                                                      \
    assert_non_null((o)->error);                                                           \
    assert_non_null(strstr((o)->error, (needle)));                                         \
  } while (0)

/* Runs one tick of vm on this thread; out must be released by the caller. */
static int tick(sbx_vm *vm, const sbx_tick_in *in, sbx_tick_out *out) {
  int rc = sbx_vm_tick(vm, in, out);
  assert_int_equal(rc, out->status);
  return rc;
}

/* One tick expected to succeed, with the text of its lines checked in order. */
static void tick_ok_lines(sbx_vm *vm, uint64_t time, const char *const *lines, size_t n) {
  sbx_tick_in in = tin(time);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  if (out.n_lines != n) dump("line count", &out);
  assert_int_equal(out.n_lines, n);
  for (size_t i = 0; i < n; i++) expect_exact_line(&out, i, lines[i]);
  sbx_tick_out_release(&out);
}

static int nthreads(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* ------------------------------------------------------------------ loop and global */

static void test_sandbox_loop_runs_and_global_persists(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "global.evals = (global.evals || 0) + 1;\n"
                      "module.exports.loop = function () {\n"
                      "  global.counter = (global.counter || 0) + 1;\n"
                      "  console.log('counter ' + global.counter + ' evals ' + global.evals);\n"
                      "};\n");
  assert_false(sbx_vm_has_isolate(vm));
  assert_int_equal(sbx_vm_generation(vm), 0);
  for (uint64_t t = 1; t <= 5; t++) {
    sbx_tick_in in = tin(100 + t);
    sbx_tick_out out;
    tick(vm, &in, &out);
    expect_status(&out, SBX_OK);
    char want[64];
    snprintf(want, sizeof want, "counter %d evals 1", (int)t);
    assert_int_equal(out.n_lines, 1);
    expect_exact_line(&out, 0, want);
    assert_int_equal(out.created, t == 1);
    assert_int_equal(out.global_reset, t == 1);
    assert_null(out.error);
    assert_true(out.wall_ns > 0);
    sbx_tick_out_release(&out);
  }
  assert_true(sbx_vm_has_isolate(vm));
  assert_int_equal(sbx_vm_generation(vm), 1);

  /* sbx_vm_reset: a fresh global (counter restarts, main evaluated again), same isolate. */
  sbx_vm_reset(vm);
  const char *after_reset[] = {"counter 1 evals 1"};
  sbx_tick_in in = tin(200);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.global_reset);
  assert_false(out.created);
  expect_exact_line(&out, 0, after_reset[0]);
  sbx_tick_out_release(&out);
  assert_int_equal(sbx_vm_generation(vm), 2);
  sbx_vm_free(vm);
}

static void test_sandbox_userdata_and_invalid_args(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL, "module.exports.loop = function () {};");
  int x;
  assert_null(sbx_vm_userdata(vm));
  sbx_vm_set_userdata(vm, &x);
  assert_ptr_equal(sbx_vm_userdata(vm), &x);
  sbx_module bad = {NULL, "x", 1, false};
  assert_int_equal(sbx_vm_set_code(vm, &bad, 1), SBX_INVALID);
  assert_int_equal(sbx_vm_set_code(vm, NULL, 1), SBX_INVALID);
  sbx_tick_in in = tin(1);
  sbx_tick_out out;
  assert_int_equal(sbx_vm_tick(NULL, &in, &out), SBX_INVALID);
  sbx_vm *none = NULL;
  assert_int_equal(sbx_vm_new(NULL, NULL, &none), SBX_INVALID);
  assert_null(none);
  sbx_vm_free(NULL);
  sbx_tick_out_release(NULL);
  assert_string_equal(sbx_strerror(SBX_CPU_LIMIT), "Script execution timed out: CPU time limit reached");
  assert_non_null(sbx_strerror(12345));
  assert_true(sbx_runtime_snapshot_size(g_rt) > 1000);
  assert_non_null(strstr(sbx_engine_version(), "."));
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ Memory */

static void test_sandbox_memory_round_trip(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  if (Game.time === 2) { console.log('untouched'); return; }\n"
                      "  Memory.count = (Memory.count || 0) + 1;\n"
                      "  Memory.tag = 'x' + Game.time;\n"
                      "};\n");
  /* tick 1: from {"count":41,"keep":[1,2]} */
  const char m1[] = "{\"count\":41,\"keep\":[1,2]}";
  sbx_tick_in in = tin(1);
  in.memory = m1;
  in.memory_len = strlen(m1);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.memory_changed);
  assert_non_null(out.memory);
  assert_string_equal(out.memory, "{\"count\":42,\"keep\":[1,2],\"tag\":\"x1\"}");
  assert_int_equal(out.memory_len, strlen(out.memory));
  char *saved = out.memory;
  size_t saved_len = out.memory_len;
  out.memory = NULL;
  sbx_tick_out_release(&out);

  /* tick 2 does not touch Memory: unchanged, nothing copied back. */
  in = tin(2);
  in.memory = saved;
  in.memory_len = saved_len;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  expect_exact_line(&out, 0, "untouched");
  assert_false(out.memory_changed);
  assert_null(out.memory);
  sbx_tick_out_release(&out);

  /* tick 3 continues from the saved string. */
  in = tin(3);
  in.memory = saved;
  in.memory_len = saved_len;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.memory_changed);
  assert_string_equal(out.memory, "{\"count\":43,\"keep\":[1,2],\"tag\":\"x3\"}");
  sbx_tick_out_release(&out);

  /* No memory at all: Memory starts as {}. */
  in = tin(4);
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.memory_changed);
  assert_string_equal(out.memory, "{\"count\":1,\"tag\":\"x4\"}");
  sbx_tick_out_release(&out);
  free(saved);
  sbx_vm_free(vm);
}

static void test_sandbox_rawmemory_get_set(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  if (Game.time === 1) {\n"
                      "    console.log('raw ' + RawMemory.get());\n"
                      "    RawMemory.set('{\"b\":2}');\n"
                      "    console.log('after ' + RawMemory.get() + ' ' + Memory.b + ' ' + Memory.a);\n"
                      "  } else if (Game.time === 2) {\n"
                      "    RawMemory.set('not json at all');\n"
                      "  } else if (Game.time === 3) {\n"
                      "    try { RawMemory.set(5); } catch (e) { console.log('threw ' + e.message); }\n"
                      "  } else {\n"
                      "    Memory.x = 1;\n"
                      "    RawMemory.set('{\"y\":1}');\n"
                      "  }\n"
                      "};\n");
  const char m[] = "{\"a\":1}";
  sbx_tick_out out;
  for (uint64_t t = 1; t <= 4; t++) {
    sbx_tick_in in = tin(t);
    in.memory = m;
    in.memory_len = strlen(m);
    tick(vm, &in, &out);
    expect_status(&out, SBX_OK);
    switch (t) {
      case 1:
        expect_exact_line(&out, 0, "raw {\"a\":1}");
        expect_exact_line(&out, 1, "after {\"b\":2} 2 undefined");
        assert_true(out.memory_changed);
        assert_string_equal(out.memory, "{\"b\":2}");
        break;
      case 2: /* RawMemory.set is saved verbatim, even when it is not JSON */
        assert_true(out.memory_changed);
        assert_string_equal(out.memory, "not json at all");
        break;
      case 3:
        expect_exact_line(&out, 0, "threw Raw memory value is not a string");
        assert_false(out.memory_changed);
        assert_null(out.memory);
        break;
      case 4: /* RawMemory.set after touching Memory: the raw string wins */
        assert_true(out.memory_changed);
        assert_string_equal(out.memory, "{\"y\":1}");
        break;
    }
    sbx_tick_out_release(&out);
  }
  sbx_vm_free(vm);
}

static void test_sandbox_memory_corrupt_gives_empty_object(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  console.log('memory ' + JSON.stringify(Memory));\n"
                      "  Memory.fresh = true;\n"
                      "};\n");
  const char m[] = "{\"creeps\": {\"a\": [1, 2";
  sbx_tick_in in = tin(1);
  in.memory = m;
  in.memory_len = strlen(m);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  long err = find_line_at(&out, SBX_ERROR, "Memory could not be parsed");
  if (err < 0) dump("no parse error line", &out);
  assert_true(err >= 0);
  expect_line(&out, "memory {}");
  assert_true(out.memory_changed);
  assert_string_equal(out.memory, "{\"fresh\":true}");
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
}

static void test_sandbox_memory_oversize_keeps_previous(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  Memory.ok = Game.time;\n"
                      "  if (Game.time === 2) Memory.big = 'x'.repeat(5000);\n"
                      "};\n");
  char *mem = strdup("{\"ok\":0}");
  for (uint64_t t = 1; t <= 3; t++) {
    sbx_tick_in in = tin(t);
    in.memory = mem;
    in.memory_len = strlen(mem);
    in.memory_max = 1024;
    sbx_tick_out out;
    tick(vm, &in, &out);
    if (t == 2) {
      /* refused: the previous Memory stays, and the player is told */
      assert_true(out.status == SBX_OK || out.status == SBX_EXCEPTION);
      assert_false(out.memory_changed);
      assert_null(out.memory);
      long e = find_line_at(&out, SBX_ERROR, "Memory size is over");
      if (e < 0) dump("no oversize line", &out);
      assert_true(e >= 0);
    } else {
      expect_status(&out, SBX_OK);
      assert_true(out.memory_changed);
      free(mem);
      mem = out.memory;
      out.memory = NULL;
    }
    sbx_tick_out_release(&out);
    if (t == 2) assert_string_equal(mem, "{\"ok\":1}");
  }
  assert_string_equal(mem, "{\"ok\":3}");
  free(mem);
  sbx_vm_free(vm);
}

/* A Memory that cannot be serialised (a cycle, a BigInt) is kept as it was, and the
 * player is told why, without the prelude's frames. */
static void test_sandbox_memory_unserialisable_keeps_previous(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  Memory.t = Game.time;\n"
                      "  if (Game.time === 2) Memory.self = Memory;\n"
                      "  if (Game.time === 3) Memory.big = 10n;\n"
                      "  console.log('loop ' + Game.time);\n"
                      "};\n");
  const char m[] = "{\"t\":0}";
  for (uint64_t t = 1; t <= 4; t++) {
    sbx_tick_in in = tin(t);
    in.memory = m;
    in.memory_len = strlen(m);
    sbx_tick_out out;
    tick(vm, &in, &out);
    if (t == 2 || t == 3) {
      assert_false(out.memory_changed);
      assert_null(out.memory);
      long k = find_line_at(&out, SBX_ERROR, "Memory could not be serialised");
      if (k < 0) dump("no serialise error line", &out);
      assert_true(k >= 0);
      assert_non_null(strstr(out.lines[k].text, "TypeError"));
      for (size_t i = 0; i < out.n_lines; i++) assert_null(strstr(out.lines[i].text, "isoworld:"));
      if (out.error) assert_null(strstr(out.error, "isoworld:"));
    } else {
      expect_status(&out, SBX_OK);
      assert_true(out.memory_changed);
      char want[32];
      snprintf(want, sizeof want, "{\"t\":%d}", (int)t);
      assert_string_equal(out.memory, want);
    }
    sbx_tick_out_release(&out);
  }
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ statuses */

static void test_sandbox_cpu_limit_infinite_loop(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  global.c = (global.c || 0) + 1;\n"
                      "  console.log('c ' + global.c);\n"
                      "  if (Game.time === 2) for (;;) {}\n"
                      "};\n");
  const char *l1[] = {"c 1"};
  tick_ok_lines(vm, 1, l1, 1);
  sbx_tick_in in = tin(2);
  in.tick_limit_ms = 50 * g_scale;
  in.wall_limit_ms = 2000 * g_scale; /* stopped for CPU even on a loaded machine */
  sbx_tick_out out;
  double t0 = now_ms();
  tick(vm, &in, &out);
  double took = now_ms() - t0;
  expect_status(&out, SBX_CPU_LIMIT);
  expect_exact_line(&out, 0, "c 2");
  long k = find_line_at(&out, SBX_ERROR, "Script execution timed out: CPU time limit reached");
  assert_true(k >= 0);
  expect_error_contains(&out, "CPU time limit");
  assert_true(took < 3000 * g_scale);
  assert_true(out.cpu_ns >= (uint64_t)(45e6 * g_scale)); /* billed at least (about) its budget */
  assert_false(out.memory_changed);
  sbx_tick_out_release(&out);
  /* The global survives a CPU kill, and the next tick is not killed by a stale request. */
  const char *l3[] = {"c 3"};
  tick_ok_lines(vm, 3, l3, 1);
  assert_int_equal(sbx_vm_generation(vm), 1);
  sbx_vm_free(vm);
}

static void test_sandbox_wall_limit(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  if (Game.time === 1) for (;;) {}\n"
                      "  console.log('fine');\n"
                      "};\n");
  sbx_tick_in in = tin(1);
  in.tick_limit_ms = 100000;
  in.wall_limit_ms = 100 * g_scale;
  sbx_tick_out out;
  double t0 = now_ms();
  tick(vm, &in, &out);
  double took = now_ms() - t0;
  expect_status(&out, SBX_WALL_LIMIT);
  expect_line(&out, "wall time limit");
  assert_true(took < 3000 * g_scale);
  sbx_tick_out_release(&out);
  const char *l2[] = {"fine"};
  tick_ok_lines(vm, 2, l2, 1);
  sbx_vm_free(vm);
}

static void test_sandbox_heap_limit_then_fresh_global(void **state) {
  (void)state;
  sbx_vm_options opt = {.heap_limit_mb = 32};
  sbx_vm *vm = new_vm(&opt,
                      "const keep = [];\n"
                      "module.exports.loop = function () {\n"
                      "  global.c = (global.c || 0) + 1;\n"
                      "  console.log('c ' + global.c);\n"
                      "  if (Game.time === 2) for (;;) keep.push(new Array(1e5).fill(Math.random()));\n"
                      "};\n");
  const char *l1[] = {"c 1"};
  tick_ok_lines(vm, 1, l1, 1);
  assert_int_equal(sbx_vm_generation(vm), 1);
  sbx_tick_in in = tin(2);
  in.tick_limit_ms = 5000 * g_scale;
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_HEAP_LIMIT);
  expect_line(&out, "memory allocation limit reached");
  expect_line(&out, "isolate was disposed");
  assert_true(out.heap.limit == 32u << 20);
  sbx_tick_out_release(&out);
  assert_false(sbx_vm_has_isolate(vm));

  in = tin(3);
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.created);
  assert_true(out.global_reset);
  expect_exact_line(&out, 0, "c 1");
  sbx_tick_out_release(&out);
  assert_int_equal(sbx_vm_generation(vm), 2);
  sbx_vm_free(vm);
}

/* One allocation far past the limit passes without the heap-limit callback; the process
 * must still survive the next one (it died of a fatal OOM when the callback's new limit
 * was under the heap's size) and the run ends with SBX_HEAP_LIMIT. */
static void test_sandbox_heap_limit_single_large_allocation(void **state) {
  (void)state;
  sbx_vm_options opt = {.heap_limit_mb = 64};
  sbx_vm *vm = new_vm(&opt,
                      "module.exports.loop = function () {\n"
                      "  if (Game.time === 1) global.a = new Array(3e7).fill(1.5);\n"
                      "  console.log('fine ' + typeof global.a);\n"
                      "};\n");
  sbx_tick_in in = tin(1);
  in.tick_limit_ms = 10000 * g_scale;
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_HEAP_LIMIT);
  sbx_tick_out_release(&out);
  in = tin(2);
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.created);
  expect_exact_line(&out, 0, "fine undefined");
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
}

static void test_sandbox_halt_gives_fresh_global(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  global.c = (global.c || 0) + 1;\n"
                      "  console.log('c ' + global.c);\n"
                      "  if (Game.time === 2) { Game.cpu.halt(); console.log('after halt'); }\n"
                      "};\n");
  const char *l1[] = {"c 1"};
  tick_ok_lines(vm, 1, l1, 1);
  sbx_tick_in in = tin(2);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_HALTED);
  expect_exact_line(&out, 0, "c 2");
  assert_true(find_line(&out, "after halt") < 0);
  expect_line(&out, "CPU halted");
  sbx_tick_out_release(&out);

  in = tin(3);
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.global_reset);
  expect_exact_line(&out, 0, "c 1");
  sbx_tick_out_release(&out);
  assert_int_equal(sbx_vm_generation(vm), 2);
  sbx_vm_free(vm);
}

/* V8-NOTES "stale termination": a termination requested during a builtin that ignores
 * it (default-comparator sort) and then returns normally must not kill the next tick. */
static void test_sandbox_stale_termination_cleared(void **state) {
  (void)state;
  sbx_vm_options opt = {.heap_limit_mb = 256};
  sbx_vm *vm = new_vm(&opt,
                      "const a = [];\n"
                      "module.exports.loop = function () {\n"
                      "  if (Game.time === 1) { for (let i = 0; i < 3e5; i++) a.push(Math.random()); return; }\n"
                      "  if (Game.time === 2) { a.sort(); return; }\n"
                      "  console.log('fine ' + a.length);\n"
                      "};\n");
  sbx_tick_in in = tin(1);
  in.tick_limit_ms = 5000 * g_scale;
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  sbx_tick_out_release(&out);

  in = tin(2);
  in.tick_limit_ms = 30 * g_scale;
  tick(vm, &in, &out);
  /* sbx_vm_tick has no hard limit: the sort runs to its end, the run is billed (for CPU,
   * or for wall time when the machine is loaded: valgrind). */
  if (out.status != SBX_CPU_LIMIT) expect_status(&out, SBX_WALL_LIMIT);
  sbx_tick_out_release(&out);

  const char *l3[] = {"fine 300000"};
  tick_ok_lines(vm, 3, l3, 1);
  const char *l4[] = {"fine 300000"};
  tick_ok_lines(vm, 4, l4, 1);
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ errors */

static void test_sandbox_exception_names_main_and_line(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "function inner() {\n"
                      "  throw new Error('boom ' + Game.time);\n"
                      "}\n"
                      "module.exports.loop = function () { Memory.seen = Game.time; inner(); };\n");
  for (uint64_t t = 7; t <= 8; t++) {
    sbx_tick_in in = tin(t);
    sbx_tick_out out;
    tick(vm, &in, &out);
    expect_status(&out, SBX_EXCEPTION);
    char want[32];
    snprintf(want, sizeof want, "Error: boom %d", (int)t);
    expect_error_contains(&out, want);
    expect_error_contains(&out, "main:2");
    expect_error_contains(&out, "main:4");
    assert_null(strstr(out.error, "isoworld:"));
    long e = find_line_at(&out, SBX_ERROR, "main:2");
    assert_true(e >= 0);
    assert_null(strstr(out.lines[e].text, "isoworld:"));
    assert_non_null(strstr(out.lines[e].text, want));
    /* As on Screeps, Memory of a tick that threw is still saved. */
    assert_true(out.memory_changed);
    char mem[32];
    snprintf(mem, sizeof mem, "{\"seen\":%d}", (int)t);
    assert_string_equal(out.memory, mem);
    sbx_tick_out_release(&out);
  }
  sbx_vm_free(vm);
}

static void test_sandbox_syntax_error_then_fixed(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "// line one\n"
                      "module.exports.loop = function () { let x = ; };\n");
  for (uint64_t t = 1; t <= 2; t++) {
    sbx_tick_in in = tin(t);
    sbx_tick_out out;
    tick(vm, &in, &out);
    expect_status(&out, SBX_EXCEPTION);
    expect_error_contains(&out, "SyntaxError");
    expect_error_contains(&out, "main:2");
    assert_null(strstr(out.error, "isoworld:"));
    assert_true(find_line_at(&out, SBX_ERROR, "SyntaxError") >= 0);
    sbx_tick_out_release(&out);
  }
  sbx_module fixed = js("main", "module.exports.loop = function () { console.log('fixed'); };\n");
  assert_int_equal(sbx_vm_set_code(vm, &fixed, 1), SBX_OK);
  const char *l[] = {"fixed"};
  tick_ok_lines(vm, 3, l, 1);
  sbx_vm_free(vm);
}

static void test_sandbox_missing_module(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL, "const x = require('x');\nmodule.exports.loop = function () {};\n");
  for (uint64_t t = 1; t <= 2; t++) { /* a failed main is retried (and fails again) */
    sbx_tick_in in = tin(t);
    sbx_tick_out out;
    tick(vm, &in, &out);
    expect_status(&out, SBX_EXCEPTION);
    expect_error_contains(&out, "Unknown module 'x'");
    expect_error_contains(&out, "main:1");
    sbx_tick_out_release(&out);
  }
  /* No main module at all. */
  sbx_module other = js("other", "module.exports = 1;");
  assert_int_equal(sbx_vm_set_code(vm, &other, 1), SBX_OK);
  sbx_tick_in in = tin(3);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_EXCEPTION);
  expect_error_contains(&out, "Unknown module 'main'");
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
}

/* A throw inside a module required by main names that module. */
static void test_sandbox_exception_in_required_module(void **state) {
  (void)state;
  sbx_module mods[] = {
      js("main", "const r = require('role.builder');\nmodule.exports.loop = function () { r.run(); };\n"),
      js("role.builder", "module.exports.run = function () {\n  null.x;\n};\n"),
  };
  sbx_vm *vm = new_vm_mods(NULL, mods, 2);
  sbx_tick_in in = tin(1);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_EXCEPTION);
  expect_error_contains(&out, "TypeError");
  expect_error_contains(&out, "role.builder:2");
  expect_error_contains(&out, "main:2");
  assert_null(strstr(out.error, "isoworld:"));
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
}

/* An async loop that rejects: the error reaches the console, naming main. */
static void test_sandbox_async_loop_rejection_reported(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = async function () {\n"
                      "  await null;\n"
                      "  throw new Error('async boom ' + Game.time);\n"
                      "};\n");
  sbx_tick_in in = tin(5);
  sbx_tick_out out;
  tick(vm, &in, &out);
  assert_true(out.status == SBX_OK || out.status == SBX_EXCEPTION);
  long k = find_line_at(&out, SBX_ERROR, "Error: async boom 5");
  if (k < 0) dump("async rejection", &out);
  assert_true(k >= 0);
  assert_non_null(strstr(out.lines[k].text, "main:3"));
  assert_null(strstr(out.lines[k].text, "isoworld:"));
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ require */

static void test_sandbox_require_names_and_cache(void **state) {
  (void)state;
  sbx_module mods[] = {
      js("main",
         "const h = require('role.harvester');\n"
         "const u1 = require('./lib/util');\n"
         "const u2 = require('lib/util.js');\n"
         "const u3 = require('/lib/util');\n"
         "module.exports.loop = function () {\n"
         "  console.log(h.role + ' ' + (u1 === u2) + ' ' + (u2 === u3) + ' ' + u1.evals() + ' ' +\n"
         "              (require('role.harvester') === h));\n"
         "};\n"),
      js("role.harvester", "console.log('eval harvester');\nmodule.exports = { role: 'harvester' };\n"),
      js("lib/util",
         "console.log('eval util');\n"
         "global.utilEvals = (global.utilEvals || 0) + 1;\n"
         "exports.evals = () => global.utilEvals;\n"),
  };
  sbx_vm *vm = new_vm_mods(NULL, mods, 3);
  const char *first[] = {"eval harvester", "eval util", "harvester true true 1 true"};
  const char *later[] = {"harvester true true 1 true"};
  tick_ok_lines(vm, 1, first, 3);
  tick_ok_lines(vm, 2, later, 1);
  tick_ok_lines(vm, 3, later, 1);
  /* A new upload: every module is evaluated again, once. */
  assert_int_equal(sbx_vm_set_code(vm, mods, 3), SBX_OK);
  tick_ok_lines(vm, 4, first, 3);
  tick_ok_lines(vm, 5, later, 1);
  sbx_vm_reset(vm);
  tick_ok_lines(vm, 6, first, 3);
  tick_ok_lines(vm, 7, later, 1);
  sbx_vm_free(vm);
}

static void test_sandbox_require_cycle_partial_exports(void **state) {
  (void)state;
  sbx_module mods[] = {
      js("main",
         "const a = require('a');\n"
         "const b = require('b');\n"
         "module.exports.loop = function () {\n"
         "  console.log('a.fromB=' + a.fromB + ' b.aObj===a:' + (b.aObj === a) + ' a.loaded=' + a.loaded +\n"
         "              ' b.sawKeys=' + b.sawKeys);\n"
         "};\n"),
      js("a",
         "exports.loaded = false;\n"
         "const b = require('b');\n"
         "exports.fromB = b.sawA;\n"
         "exports.loaded = true;\n"),
      js("b",
         "const a = require('a');\n"
         "exports.sawA = a.loaded;\n"
         "exports.sawKeys = Object.keys(a).join(',');\n"
         "exports.aObj = a;\n"),
  };
  sbx_vm *vm = new_vm_mods(NULL, mods, 3);
  /* As in Node: b sees a's partial exports (loaded still false) and the same object. */
  const char *l[] = {"a.fromB=false b.aObj===a:true a.loaded=true b.sawKeys=loaded"};
  tick_ok_lines(vm, 1, l, 1);
  sbx_vm_free(vm);
}

static void test_sandbox_require_binary_module(void **state) {
  (void)state;
  static const char bytes[] = {0, 1, 2, (char)255, (char)128, 0, 7};
  sbx_module mods[] = {
      js("main",
         "module.exports.loop = function () {\n"
         "  const buf = require('data.bin');\n"
         "  const u = new Uint8Array(buf);\n"
         "  console.log((buf instanceof ArrayBuffer) + ' ' + buf.byteLength + ' ' + Array.from(u).join(',') +\n"
         "              ' ' + (require('data.bin') === buf));\n"
         "};\n"),
      {"data.bin", bytes, sizeof bytes, true},
  };
  sbx_vm *vm = new_vm_mods(NULL, mods, 2);
  const char *l[] = {"true 7 0,1,2,255,128,0,7 true"};
  tick_ok_lines(vm, 1, l, 1);
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ console */

static void test_sandbox_console_levels_and_format(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  console.log('a', 1, true, null, undefined, {}, [1, 2]);\n"
                      "  console.info('i');\n"
                      "  console.warn('w');\n"
                      "  console.error('e');\n"
                      "  console.debug('d');\n"
                      "  console.logUnsafe('<b>u</b>');\n"
                      "  console.log();\n"
                      "  console.log({ toString() { throw new Error('no'); } });\n"
                      "  console.log('\\u00e9\\u4e2d');\n"
                      "};\n");
  sbx_tick_in in = tin(1);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  if (out.n_lines != 9) dump("console", &out);
  assert_int_equal(out.n_lines, 9);
  const struct {
    sbx_level level;
    bool unsafe;
    const char *text;
  } want[] = {
      {SBX_LOG, false, "a 1 true null undefined [object Object] 1,2"},
      {SBX_INFO, false, "i"},
      {SBX_WARN, false, "w"},
      {SBX_ERROR, false, "e"},
      {SBX_DEBUG, false, "d"},
      {SBX_LOG, true, "<b>u</b>"},
      {SBX_LOG, false, ""},
      {SBX_LOG, false, "[object]"},
      {SBX_LOG, false, "\xc3\xa9\xe4\xb8\xad"},
  };
  for (size_t i = 0; i < 9; i++) {
    assert_int_equal(out.lines[i].level, want[i].level);
    assert_int_equal(out.lines[i].unsafe, want[i].unsafe);
    assert_string_equal(out.lines[i].text, want[i].text);
    assert_int_equal(out.lines[i].len, strlen(want[i].text));
  }
  assert_int_equal(out.omitted_lines, 0);
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
}

static void test_sandbox_console_cap_omits_middle(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL, "module.exports.loop = function () { for (let i = 0; i < 1000; i++) console.log('line ' + i); };");
  sbx_tick_in in = tin(1);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.n_lines <= 101);
  assert_true(out.n_lines >= 50);
  expect_exact_line(&out, 0, "line 0");
  expect_exact_line(&out, out.n_lines - 1, "line 999");
  long k = find_line(&out, "[Omitted ");
  assert_true(k > 0 && (size_t)k < out.n_lines - 1);
  char want[64];
  snprintf(want, sizeof want, "[Omitted %zu lines]", out.omitted_lines);
  assert_string_equal(out.lines[k].text, want);
  assert_int_equal(out.n_lines - 1 + out.omitted_lines, 1000);
  /* kept lines are in order: the head is 0.., the tail ..999 */
  snprintf(want, sizeof want, "line %ld", k - 1);
  expect_exact_line(&out, k - 1, want);
  snprintf(want, sizeof want, "line %zu", (size_t)k + out.omitted_lines);
  expect_exact_line(&out, k + 1, want);
  sbx_tick_out_release(&out);

  /* console_max_lines is honoured */
  sbx_vm_options opt = {.console_max_lines = 10};
  sbx_vm *small = new_vm(&opt, "module.exports.loop = function () { for (let i = 0; i < 1000; i++) console.log('line ' + i); };");
  tick(small, &in, &out);
  expect_status(&out, SBX_OK);
  assert_int_equal(out.n_lines, 11);
  expect_exact_line(&out, 0, "line 0");
  expect_exact_line(&out, 5, "[Omitted 990 lines]");
  expect_exact_line(&out, 10, "line 999");
  sbx_tick_out_release(&out);
  sbx_vm_free(small);
  sbx_vm_free(vm);
}

static void test_sandbox_console_repeats_collapsed(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  console.log('first');\n"
                      "  for (let i = 0; i < 500; i++) console.log('same');\n"
                      "  console.log('last');\n"
                      "};\n");
  const char *l[] = {"first", "same", "[Previous message repeated 499 times]", "last"};
  tick_ok_lines(vm, 1, l, 4);
  sbx_vm_free(vm);
  /* repeats at the very end of a run are flushed too */
  vm = new_vm(NULL, "module.exports.loop = function () { for (let i = 0; i < 3; i++) console.log('again'); };");
  const char *l2[] = {"again", "[Previous message repeated 2 times]"};
  tick_ok_lines(vm, 1, l2, 2);
  sbx_vm_free(vm);
}

static void test_sandbox_console_long_line_and_byte_cap(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  console.log('y'.repeat(100000));\n"
                      "  for (let i = 0; i < 40; i++) console.log(i + ':' + 'z'.repeat(10000));\n"
                      "};\n");
  sbx_tick_in in = tin(1);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  assert_true(out.n_lines >= 2);
  const sbx_line *l = &out.lines[0];
  assert_true(l->len < 100000);
  assert_true(l->len >= 1000);
  assert_int_equal(l->len, strlen(l->text));
  assert_true(strncmp(l->text, "yyyyyyyyyy", 10) == 0);
  assert_non_null(strstr(l->text, "[line truncated]"));
  size_t bytes = 0;
  for (size_t i = 0; i < out.n_lines; i++)
    if (!strstr(out.lines[i].text, "[Omitted ")) bytes += out.lines[i].len;
  assert_true(bytes <= (64u << 10));
  assert_true(out.omitted_lines > 0);
  expect_line(&out, "39:zzzz"); /* the most recent line is kept */
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);

  /* Long lines must not crowd out the message of a kill at the end of the run. */
  vm = new_vm(NULL,
              "module.exports.loop = function () {\n"
              "  for (let i = 0; i < 10; i++) console.log(i + ':' + 'w'.repeat(16375));\n"
              "  for (;;) {}\n"
              "};\n");
  in.tick_limit_ms = 50 * g_scale;
  in.wall_limit_ms = 2000 * g_scale;
  tick(vm, &in, &out);
  expect_status(&out, SBX_CPU_LIMIT);
  assert_true(out.n_lines >= 2);
  assert_non_null(strstr(out.lines[out.n_lines - 1].text, "CPU time limit reached"));
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ limits */

static void test_sandbox_eval_size_limit(void **state) {
  (void)state;
  sbx_vm_options opt = {.max_eval_bytes = 4096};
  sbx_vm *vm = new_vm(&opt,
                      "module.exports.loop = function () {\n"
                      "  const big = '1+'.repeat(3000) + '1';\n"
                      "  try { console.log('big eval ' + eval(big)); } catch (e) { console.log('eval ' + e.name); }\n"
                      "  try { console.log('big indirect ' + (0, eval)(big)); } catch (e) { console.log('indirect ' + e.name); }\n"
                      "  try { new Function(big); console.log('big fn ran'); } catch (e) { console.log('fn ' + e.name); }\n"
                      "  console.log('small ' + eval('2+3') + ' ' + new Function('a', 'return a * 2')(21) +\n"
                      "              ' ' + eval('1+'.repeat(1000) + '1'));\n"
                      "};\n");
  const char *l[] = {"eval EvalError", "indirect EvalError", "fn EvalError", "small 5 42 1001"};
  tick_ok_lines(vm, 1, l, 4);
  sbx_vm_free(vm);
}

static void test_sandbox_arraybuffer_external_limit(void **state) {
  (void)state;
  sbx_vm_options opt = {.heap_limit_mb = 64, .external_limit_mb = 8};
  sbx_vm *vm = new_vm(&opt,
                      "const hoard = [];\n"
                      "module.exports.loop = function () {\n"
                      "  if (Game.time === 1) {\n"
                      "    try { new ArrayBuffer(16 * 1024 * 1024); } catch (e) { console.log(e.name + ': ' + e.message); }\n"
                      "    console.log('small ' + new ArrayBuffer(1024 * 1024).byteLength);\n"
                      "    return;\n"
                      "  }\n"
                      "  if (Game.time === 2) { for (;;) hoard.push(new Uint8Array(1024 * 1024)); }\n"
                      "  console.log('still ' + hoard.length);\n"
                      "};\n");
  const char *l1[] = {"RangeError: Array buffer allocation failed", "small 1048576"};
  tick_ok_lines(vm, 1, l1, 2);
  sbx_tick_in in = tin(2);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_EXCEPTION);
  expect_error_contains(&out, "RangeError");
  expect_error_contains(&out, "Array buffer allocation failed");
  assert_true(out.heap.external <= (8u << 20));
  sbx_tick_out_release(&out);
  /* The cap is per vm and cumulative: the hoard (< 8 MB) is still there. */
  in = tin(3);
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  long k = find_line(&out, "still ");
  assert_true(k >= 0);
  int kept = atoi(out.lines[k].text + 6);
  assert_true(kept >= 1 && kept <= 8);
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
}

static void test_sandbox_deep_recursion_range_error(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "function r(n) { return r(n + 1) + 1; }\n"
                      "module.exports.loop = function () { if (Game.time === 1) r(0); console.log('fine'); };\n");
  sbx_tick_in in = tin(1);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_EXCEPTION);
  expect_error_contains(&out, "RangeError");
  expect_error_contains(&out, "Maximum call stack size exceeded");
  sbx_tick_out_release(&out);
  const char *l[] = {"fine"};
  tick_ok_lines(vm, 2, l, 1);
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ isolation */

static void test_sandbox_no_host_reachable(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  const g = Function('return this')();\n"
                      "  console.log('same ' + (g === globalThis));\n"
                      "  console.log('process ' + typeof process + ' ' + typeof g.process);\n"
                      "  console.log('attach ' + typeof __isoworld_attach + ' ' + ('__isoworld_attach' in globalThis));\n"
                      "  const hostNames = ['log', 'compile', 'memory', 'cpu', 'heap', 'halt', 'host'];\n"
                      "  const names = Object.getOwnPropertyNames(globalThis);\n"
                      "  console.log('names ' + names.filter(n => hostNames.includes(n)).join(','));\n"
                      "  let found = [];\n"
                      "  for (const n of names) {\n"
                      "    let v; try { v = globalThis[n]; } catch (e) { continue; }\n"
                      "    if (v && (typeof v === 'object' || typeof v === 'function')) {\n"
                      "      if (typeof v.compile === 'function' && typeof v.halt === 'function') found.push(n);\n"
                      "      if (typeof v.memory === 'function' && typeof v.log === 'function') found.push(n);\n"
                      "    }\n"
                      "  }\n"
                      "  console.log('hostlike ' + found.join(','));\n"
                      "  console.log('fs ' + (() => { try { require('fs'); return 'loaded'; } catch (e) { return e.message; } })());\n"
                      "  console.log('ctor ' + this.constructor.constructor('return typeof process')());\n"
                      "  console.log('halt ' + /native code/.test(String(Game.cpu.halt)));\n"
                      "};\n");
  const char *l[] = {"same true",
                     "process undefined undefined",
                     "attach undefined false",
                     "names ",
                     "hostlike ",
                     "fs Unknown module 'fs'",
                     "ctor undefined",
                     "halt false"};
  tick_ok_lines(vm, 1, l, 8);
  /* still so on a later tick (the attach hook is gone for good) */
  tick_ok_lines(vm, 2, l, 8);
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ commands */

static void test_sandbox_console_commands(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  console.log('loop ' + Game.time);\n"
                      "  if (Game.time === 2) throw new Error('loop failed');\n"
                      "};\n");
  const char *cmds[] = {"1 + 1", "global.x = 5; 'set ' + global.x", "throw new Error('cmd boom')",
                        "Memory.fromCmd = Game.time", "undefinedVariable"};
  for (uint64_t t = 1; t <= 2; t++) {
    sbx_tick_in in = tin(t);
    in.commands = cmds;
    in.n_commands = 5;
    sbx_tick_out out;
    tick(vm, &in, &out);
    expect_status(&out, t == 1 ? SBX_OK : SBX_EXCEPTION);
    char want[32];
    snprintf(want, sizeof want, "loop %d", (int)t);
    expect_exact_line(&out, 0, want);
    /* results follow the loop's output, in order, as SBX_RESULT lines */
    size_t r = 0;
    const char *results[5] = {NULL};
    for (size_t i = 0; i < out.n_lines; i++)
      if (out.lines[i].level == SBX_RESULT && r < 5) results[r++] = out.lines[i].text;
    if (r != 5) dump("commands", &out);
    assert_int_equal(r, 5);
    long first_result = find_line_at(&out, SBX_RESULT, "2");
    assert_true(first_result > 0);
    assert_string_equal(results[0], "2");
    assert_string_equal(results[1], "set 5");
    assert_non_null(strstr(results[2], "cmd boom"));
    snprintf(want, sizeof want, "%d", (int)t);
    assert_string_equal(results[3], want);
    assert_non_null(strstr(results[4], "ReferenceError"));
    /* a command's change to Memory is saved */
    assert_true(out.memory_changed);
    snprintf(want, sizeof want, "{\"fromCmd\":%d}", (int)t);
    assert_string_equal(out.memory, want);
    sbx_tick_out_release(&out);
  }
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ Game */

static void test_sandbox_game_object(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  console.log('time ' + Game.time + ' limit ' + Game.cpu.limit + ' tick ' + Game.cpu.tickLimit +\n"
                      "              ' bucket ' + Game.cpu.bucket);\n"
                      "  const a = Game.cpu.getUsed();\n"
                      "  let x = 0; for (let i = 0; i < 3e6; i++) x += i % 7;\n"
                      "  const b = Game.cpu.getUsed();\n"
                      "  console.log('used ' + (typeof a) + ' ' + (a >= 0) + ' ' + (b > a) + ' ' + (x > 0));\n"
                      "  const empty = ['creeps', 'rooms', 'spawns', 'structures', 'flags', 'constructionSites']\n"
                      "    .filter(k => typeof Game[k] === 'object' && Game[k] !== null && Object.keys(Game[k]).length === 0);\n"
                      "  console.log('empty ' + empty.length);\n"
                      "  console.log('prev ' + typeof Game.foo + ' ' + Object.keys(Game.creeps).length);\n"
                      "  Game.foo = 1; Game.creeps.bob = {};\n"
                      "  const h = Game.cpu.getHeapStatistics();\n"
                      "  console.log('heap ' + (h.used_heap_size > 0) + ' ' + h.heap_size_limit);\n"
                      "};\n");
  for (uint64_t t = 0; t < 2; t++) {
    sbx_tick_in in = tin(123456789 + t);
    in.cpu_limit_ms = 20 + (double)t;
    in.tick_limit_ms = 500 * g_scale;
    in.bucket = 9876;
    sbx_tick_out out;
    tick(vm, &in, &out);
    expect_status(&out, SBX_OK);
    char want[128];
    snprintf(want, sizeof want, "time %d limit %d tick %g bucket 9876", 123456789 + (int)t, 20 + (int)t,
             500 * g_scale);
    expect_exact_line(&out, 0, want);
    expect_exact_line(&out, 1, "used number true true true");
    expect_exact_line(&out, 2, "empty 6");
    expect_exact_line(&out, 3, "prev undefined 0");
    snprintf(want, sizeof want, "heap true %d", 64 << 20);
    expect_exact_line(&out, 4, want);
    sbx_tick_out_release(&out);
  }
  sbx_vm_free(vm);
}

/* A legacy main without loop runs as a whole every tick. */
static void test_sandbox_main_without_loop_runs_each_tick(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL, "global.n = (global.n || 0) + 1; console.log('main ' + global.n);");
  const char *l1[] = {"main 1"}, *l2[] = {"main 2"};
  tick_ok_lines(vm, 1, l1, 1);
  tick_ok_lines(vm, 2, l2, 1);
  sbx_vm_free(vm);
}

/* ------------------------------------------------------------------ pool */

static void test_sandbox_pool_batch_of_50(void **state) {
  (void)state;
  enum { N = 50 };
  sbx_pool *pool = NULL;
  assert_int_equal(sbx_pool_new(2, &pool), SBX_OK);
  assert_int_equal(sbx_pool_threads(pool), 2);
  sbx_vm *vms[N];
  char *mem[N];
  for (int i = 0; i < N; i++) {
    char src[256];
    snprintf(src, sizeof src,
             "module.exports.loop = function () {\n"
             "  global.n = (global.n || 0) + 1;\n"
             "  Memory.id = %d; Memory.ticks = (Memory.ticks || 0) + 1;\n"
             "  console.log('vm %d n ' + global.n + ' t ' + Game.time);\n"
             "};\n",
             i, i);
    vms[i] = new_vm(NULL, src);
    mem[i] = NULL;
  }
  sbx_job jobs[N];
  for (int t = 1; t <= 3; t++) {
    for (int i = 0; i < N; i++) {
      memset(&jobs[i], 0, sizeof jobs[i]);
      jobs[i].vm = vms[i];
      jobs[i].in = tin((uint64_t)(1000 + t));
      jobs[i].in.memory = mem[i];
      jobs[i].in.memory_len = mem[i] ? strlen(mem[i]) : 0;
    }
    assert_int_equal(sbx_pool_run(pool, jobs, N), SBX_OK);
    for (int i = 0; i < N; i++) {
      sbx_tick_out *o = &jobs[i].out;
      expect_status(o, SBX_OK);
      char want[64];
      snprintf(want, sizeof want, "vm %d n %d t %d", i, t, 1000 + t);
      assert_int_equal(o->n_lines, 1);
      expect_exact_line(o, 0, want);
      assert_int_equal(o->created, t == 1);
      snprintf(want, sizeof want, "{\"id\":%d,\"ticks\":%d}", i, t);
      assert_true(o->memory_changed);
      assert_string_equal(o->memory, want);
      free(mem[i]);
      mem[i] = o->memory;
      o->memory = NULL;
      sbx_tick_out_release(o);
    }
  }
  assert_int_equal(sbx_pool_abandoned(pool), 0);
  assert_int_equal(sbx_pool_run(pool, jobs, 0), SBX_OK);
  for (int i = 0; i < N; i++) {
    free(mem[i]);
    sbx_vm_free(vms[i]);
  }
  sbx_pool_free(pool);
}

/* A vm stuck in a builtin that ignores termination (default-comparator sort: numbers
 * compared as strings) past the hard limit is abandoned; the rest of the batch finishes,
 * the pool replaces the thread, and the vm gets a fresh isolate. */
static void test_sandbox_pool_abandons_stuck_builtin(void **state) {
  (void)state;
  if (getenv("ISOWORLD_TEST_NO_STUCK")) {
    skip();
    return;
  }
  enum { N = 6, SORT_N = 1000000 };
  sbx_pool *pool = NULL;
  assert_int_equal(sbx_pool_new(2, &pool), SBX_OK);
  int threads0 = nthreads();
  sbx_vm_options big = {.heap_limit_mb = 512};
  char src[512];
  snprintf(src, sizeof src,
           "const a = [];\n"
           "module.exports.loop = function () {\n"
           "  global.c = (global.c || 0) + 1;\n"
           "  if (Game.time === 1) { for (let i = 0; i < %d; i++) a.push(Math.random()); }\n"
           "  if (Game.time === 2) { a.sort(); }\n"
           "  console.log('stuck c ' + global.c + ' len ' + a.length);\n"
           "};\n",
           (int)SORT_N);
  sbx_vm *stuck = new_vm(&big, src);
  sbx_vm *others[N];
  for (int i = 0; i < N; i++) {
    char s[256];
    snprintf(s, sizeof s,
             "module.exports.loop = function () { global.c = (global.c || 0) + 1;"
             " let x = 0; for (let i = 0; i < 2e5; i++) x += i;"
             " console.log('other %d c ' + global.c); };",
             i);
    others[i] = new_vm(NULL, s);
  }
  sbx_job jobs[N + 1];
  for (int t = 1; t <= 3; t++) {
    memset(jobs, 0, sizeof jobs);
    /* the stuck vm first, so the others queue behind it on two threads */
    jobs[0].vm = stuck;
    jobs[0].in = tin((uint64_t)t);
    if (t == 1) jobs[0].in.tick_limit_ms = 5000 * g_scale;
    if (t == 2) {
      jobs[0].in.tick_limit_ms = 100 * g_scale;
      jobs[0].in.hard_limit_ms = 600 * g_scale;
    }
    for (int i = 0; i < N; i++) {
      jobs[i + 1].vm = others[i];
      jobs[i + 1].in = tin((uint64_t)t);
    }
    double t0 = now_ms();
    if (t == 2) g_thread_in_v8 = true;
    assert_int_equal(sbx_pool_run(pool, jobs, N + 1), SBX_OK);
    double took = now_ms() - t0;
    for (int i = 0; i < N; i++) {
      sbx_tick_out *o = &jobs[i + 1].out;
      expect_status(o, SBX_OK);
      char want[64];
      snprintf(want, sizeof want, "other %d c %d", i, t);
      expect_exact_line(o, 0, want);
      sbx_tick_out_release(o);
    }
    sbx_tick_out *o = &jobs[0].out;
    if (t == 2) {
      expect_status(o, SBX_ABANDONED);
      expect_error_contains(o, "stuck in a builtin");
      expect_line(o, "stuck in a builtin");
      assert_true(took < 5000 * g_scale); /* the batch did not wait for the sort */
      assert_int_equal(sbx_pool_abandoned(pool), 1);
      assert_false(sbx_vm_has_isolate(stuck));
    } else if (t == 3) {
      /* While the abandoned thread is still sorting, the player is skipped: one stuck
       * thread per player at most. */
      expect_status(o, SBX_BUSY);
      expect_error_contains(o, "still stuck");
      assert_int_equal(sbx_engine_stuck_threads(), 1);
    } else {
      expect_status(o, SBX_OK);
      char want[64];
      snprintf(want, sizeof want, "stuck c 1 len %d", (int)SORT_N);
      expect_exact_line(o, 0, want);
      assert_true(o->created);
      assert_true(o->global_reset);
    }
    sbx_tick_out_release(o);
  }
  assert_int_equal(sbx_pool_threads(pool), 2);
  assert_int_equal(sbx_vm_generation(stuck), 1);
  /* The abandoned thread finishes its sort on its own, disposes the isolate and exits:
   * wait for it (V8 must not be stopped under it, and it must not leak). */
  double t0 = now_ms();
  while ((nthreads() > threads0 || sbx_engine_stuck_threads() > 0) && now_ms() - t0 < 60000 * g_scale)
    usleep(20000);
  assert_true(nthreads() <= threads0);
  assert_int_equal(sbx_engine_stuck_threads(), 0);
  g_thread_in_v8 = false;
  /* Then the player runs again, on a fresh isolate and global (counter restarts, array
   * empty). */
  memset(jobs, 0, sizeof jobs);
  jobs[0].vm = stuck;
  jobs[0].in = tin(4);
  assert_int_equal(sbx_pool_run(pool, jobs, 1), SBX_OK);
  expect_status(&jobs[0].out, SBX_OK);
  expect_exact_line(&jobs[0].out, 0, "stuck c 1 len 0");
  assert_true(jobs[0].out.created);
  assert_true(jobs[0].out.global_reset);
  sbx_tick_out_release(&jobs[0].out);
  assert_int_equal(sbx_vm_generation(stuck), 2);
  for (int i = 0; i < N; i++) sbx_vm_free(others[i]);
  sbx_vm_free(stuck);
  sbx_pool_free(pool);
}

/* RawMemory segments: setActiveSegments asks for ids for next tick; the host hands the
 * active ones in; changed ones come out; invalid ids and oversize data are refused with
 * a console line, not saved. */
static void test_sandbox_segments_round_trip(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL,
                      "module.exports.loop = function () {\n"
                      "  if (Game.time === 1) { RawMemory.setActiveSegments([3, 7]); RawMemory.segments[3] = 'three';\n"
                      "    RawMemory.segments[120] = 'bad'; }\n"
                      "  if (Game.time === 2) { console.log('seg3=' + RawMemory.segments[3] + ' seg7=' + RawMemory.segments[7]);\n"
                      "    RawMemory.segments[7] = 'x'.repeat(200000); RawMemory.segments[5] = 'five'; }\n"
                      "  if (Game.time === 3) { try { RawMemory.setActiveSegments([1,2,3,4,5,6,7,8,9,10,11]); }\n"
                      "    catch (e) { console.log(e.message); } }\n"
                      "};\n");
  sbx_tick_in in = tin(1);
  sbx_tick_out o;
  tick(vm, &in, &o);
  expect_status(&o, SBX_OK);
  assert_int_equal(o.n_segments_written, 1);
  assert_int_equal(o.segments_written[0].id, 3);
  assert_string_equal(o.segments_written[0].data, "three");
  assert_true(o.active_segments_set);
  assert_int_equal(o.n_active_segments, 2);
  assert_int_equal(o.active_segments[0], 3);
  assert_int_equal(o.active_segments[1], 7);
  expect_line(&o, "\"120\" is not a valid segment ID");
  sbx_tick_out_release(&o);

  sbx_segment segs[2] = {{3, (char *)"three", 5}, {7, (char *)"seven", 5}};
  in = tin(2);
  in.segments = segs;
  in.n_segments = 2;
  tick(vm, &in, &o);
  expect_status(&o, SBX_OK);
  expect_exact_line(&o, 0, "seg3=three seg7=seven");
  expect_line(&o, "RawMemory.segments[7] is over 100 KB");
  assert_int_equal(o.n_segments_written, 1); /* 5 only: 3 unchanged, 7 too big */
  assert_int_equal(o.segments_written[0].id, 5);
  assert_string_equal(o.segments_written[0].data, "five");
  assert_false(o.active_segments_set);
  sbx_tick_out_release(&o);

  in = tin(3);
  tick(vm, &in, &o);
  expect_status(&o, SBX_OK);
  expect_line(&o, "Only 10 memory segments can be active");
  assert_false(o.active_segments_set);
  sbx_tick_out_release(&o);
  sbx_vm_free(vm);
}

/* Console commands still run when the loop ran out of CPU (with a budget of their own),
 * and the run keeps its CPU_LIMIT status; commands_run tells the caller they ran. */
static void test_sandbox_commands_run_after_cpu_timeout(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL, "module.exports.loop = function () { for (;;) {} };");
  const char *cmds[] = {"Game.time * 2", "for (;;) {}", "'after'"};
  sbx_tick_in in = tin(21);
  in.tick_limit_ms = 50 * g_scale;
  in.commands = cmds;
  in.n_commands = 3;
  sbx_tick_out o;
  tick(vm, &in, &o);
  expect_status(&o, SBX_CPU_LIMIT);
  assert_true(o.commands_run);
  assert_true(find_line_at(&o, SBX_RESULT, "42") >= 0);
  expect_line(&o, "Script execution timed out: CPU time limit reached");
  sbx_tick_out_release(&o);
  sbx_vm_free(vm);
}

/* sbx_runtime_new's extra prelude: a classic script after the player API (its function
 * declarations are globals, it may extend Game's prototype), built from libraries now;
 * one that throws fails the runtime with the reason. */
static void test_sandbox_runtime_extra_prelude(void **state) {
  (void)state;
  sbx_runtime *rt = NULL;
  char *err = NULL;
  assert_int_equal(sbx_runtime_new("function helper(x) { return 'helped ' + x; }\n"
                                   "Object.getPrototypeOf(new (function () {})()).constructor;\n"
                                   "var EXTRA_VERSION = 3;",
                                   &rt, &err),
                   SBX_OK);
  assert_null(err);
  sbx_vm *vm;
  assert_int_equal(sbx_vm_new(rt, NULL, &vm), SBX_OK);
  sbx_module m = js("main", "module.exports.loop = function () { console.log(helper(Game.time) + ' v' + EXTRA_VERSION); };");
  assert_int_equal(sbx_vm_set_code(vm, &m, 1), SBX_OK);
  const char *l[] = {"helped 5 v3"};
  sbx_tick_in in = tin(5);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  expect_exact_line(&out, 0, l[0]);
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
  sbx_runtime_free(rt);
  assert_int_equal(sbx_runtime_new("throw new Error('extra broke')", &rt, &err), SBX_SNAPSHOT);
  assert_null(rt);
  assert_non_null(err);
  assert_non_null(strstr(err, "extra broke"));
  free(err);
}

/* The player API is libraries: a runtime of sbx_player_library() behaves as
 * sbx_runtime_new(NULL). */
static void test_sandbox_player_api_from_libraries(void **state) {
  (void)state;
  const sbx_library *libs[] = {sbx_player_library()};
  sbx_runtime *rt;
  assert_int_equal(sbx_runtime_new_libs(libs, 1, &rt, NULL), SBX_OK);
  sbx_vm *vm;
  assert_int_equal(sbx_vm_new(rt, NULL, &vm), SBX_OK);
  sbx_module m = js("main", "module.exports.loop = function () { Memory.t = Game.time; console.log(typeof RawMemory.segments); };");
  assert_int_equal(sbx_vm_set_code(vm, &m, 1), SBX_OK);
  sbx_tick_in in = tin(9);
  sbx_tick_out out;
  tick(vm, &in, &out);
  expect_status(&out, SBX_OK);
  expect_exact_line(&out, 0, "object");
  assert_string_equal(out.memory, "{\"t\":9}");
  sbx_tick_out_release(&out);
  sbx_vm_free(vm);
  sbx_runtime_free(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_runtime_extra_prelude),
      cmocka_unit_test(test_sandbox_player_api_from_libraries),
      cmocka_unit_test(test_sandbox_loop_runs_and_global_persists),
      cmocka_unit_test(test_sandbox_segments_round_trip),
      cmocka_unit_test(test_sandbox_commands_run_after_cpu_timeout),
      cmocka_unit_test(test_sandbox_userdata_and_invalid_args),
      cmocka_unit_test(test_sandbox_memory_round_trip),
      cmocka_unit_test(test_sandbox_rawmemory_get_set),
      cmocka_unit_test(test_sandbox_memory_corrupt_gives_empty_object),
      cmocka_unit_test(test_sandbox_memory_oversize_keeps_previous),
      cmocka_unit_test(test_sandbox_memory_unserialisable_keeps_previous),
      cmocka_unit_test(test_sandbox_cpu_limit_infinite_loop),
      cmocka_unit_test(test_sandbox_wall_limit),
      cmocka_unit_test(test_sandbox_heap_limit_then_fresh_global),
      cmocka_unit_test(test_sandbox_heap_limit_single_large_allocation),
      cmocka_unit_test(test_sandbox_halt_gives_fresh_global),
      cmocka_unit_test(test_sandbox_stale_termination_cleared),
      cmocka_unit_test(test_sandbox_exception_names_main_and_line),
      cmocka_unit_test(test_sandbox_syntax_error_then_fixed),
      cmocka_unit_test(test_sandbox_missing_module),
      cmocka_unit_test(test_sandbox_exception_in_required_module),
      cmocka_unit_test(test_sandbox_async_loop_rejection_reported),
      cmocka_unit_test(test_sandbox_require_names_and_cache),
      cmocka_unit_test(test_sandbox_require_cycle_partial_exports),
      cmocka_unit_test(test_sandbox_require_binary_module),
      cmocka_unit_test(test_sandbox_console_levels_and_format),
      cmocka_unit_test(test_sandbox_console_cap_omits_middle),
      cmocka_unit_test(test_sandbox_console_repeats_collapsed),
      cmocka_unit_test(test_sandbox_console_long_line_and_byte_cap),
      cmocka_unit_test(test_sandbox_eval_size_limit),
      cmocka_unit_test(test_sandbox_arraybuffer_external_limit),
      cmocka_unit_test(test_sandbox_deep_recursion_range_error),
      cmocka_unit_test(test_sandbox_no_host_reachable),
      cmocka_unit_test(test_sandbox_console_commands),
      cmocka_unit_test(test_sandbox_game_object),
      cmocka_unit_test(test_sandbox_main_without_loop_runs_each_tick),
      cmocka_unit_test(test_sandbox_pool_batch_of_50),
      cmocka_unit_test(test_sandbox_pool_abandons_stuck_builtin),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
