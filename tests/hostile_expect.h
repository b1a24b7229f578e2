/*
 * hostile_expect.h — what a hostile scenario (shared/hostile/<file>.js, or one kept here)
 * must produce, in one place for both ways of running it: through the server's pool
 * (test_hostile.c) and through the standalone runner (test_hostile_runner.c, which
 * parses `isoworld-sandbox run DIR --ticks N --json` back into sbx_tick_out). The table
 * restates each file's first line ("// expect: ...") as assertions on the player's ticks.
 * Header-only: each test executable includes it once.
 */
#ifndef ISOWORLD_HOSTILE_EXPECT_H
#define ISOWORLD_HOSTILE_EXPECT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sandbox.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TICKS = 6, THREADS = 2 };

/* The wall budget is well above the CPU one, so a loop is stopped for CPU (as the files
 * expect) even on a loaded machine. */
#define TICK_LIMIT_MS 150.0
#define WALL_LIMIT_MS 1500.0
#define HARD_LIMIT_MS 3000.0
#define FIRST_TIME 1000
#define ABANDONED_WAIT_MS 90000.0

static const char *g_file;    /* as given: "infinite_loop.js" */

/* ------------------------------------------------------------------ what a run produced */

typedef struct hostile_run {
  sbx_tick_out a[TICKS]; /* A's results, kept until the checks ran */
  uint64_t a_generation; /* sbx_vm_generation(A) after the last tick */
  char *a_memory_initial, *a_memory; /* A's Memory before the first and after the last tick */
} hostile_run;

static void dump(const char *what, int t, const sbx_tick_out *o) {
  fprintf(stderr, "---- %s (tick %d): status %d (%s), %zu lines, omitted %zu, wall %.1f ms, cpu %.1f ms\n", what, t,
          o->status, sbx_strerror(o->status), o->n_lines, o->omitted_lines, (double)o->wall_ns / 1e6,
          (double)o->cpu_ns / 1e6);
  if (o->error) fprintf(stderr, "  error: %.600s\n", o->error);
  for (size_t i = 0; i < o->n_lines && i < 12; i++) fprintf(stderr, "  [%d] %.200s\n", o->lines[i].level, o->lines[i].text);
}

static long find_line(const sbx_tick_out *o, const char *needle) {
  for (size_t i = 0; i < o->n_lines; i++)
    if (strstr(o->lines[i].text, needle)) return (long)i;
  return -1;
}

static bool error_has(const sbx_tick_out *o, const char *needle) { return o->error && strstr(o->error, needle); }

#define check_tick(cond, t, o)                                                             \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "failed: %s\n", #cond);                                             \
      dump(g_file, (t), (o));                                                              \
    }                                                                                      \
    assert_true(cond);                                                                     \
  } while (0)

/* ------------------------------------------------------------------ expectations */

/* Terminated every tick: by the CPU budget — or, when the machine is so loaded that the
 * thread gets under a tenth of a core, by the wall-clock budget first. */
static void expect_cpu_limit_each_tick(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_CPU_LIMIT || o->status == SBX_WALL_LIMIT, t, o);
    check_tick(find_line(o, o->status == SBX_CPU_LIMIT ? "Script execution timed out: CPU time limit reached"
                                                        : "Script execution timed out: wall time limit reached") >= 0,
               t, o);
    check_tick(o->wall_ns < 3000000000ull, t, o);
  }
}

static void expect_infinite_loop(const hostile_run *r) {
  expect_cpu_limit_each_tick(r);
  assert_int_equal(r->a_generation, 1); /* global kept across CPU kills */
}

static void expect_deep_recursion(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_EXCEPTION, t, o);
    check_tick(error_has(o, "RangeError: Maximum call stack size exceeded"), t, o);
    check_tick(error_has(o, "main:"), t, o); /* with a stack */
    check_tick(!error_has(o, "isoworld:"), t, o);
  }
  assert_int_equal(r->a_generation, 1);
}

static void expect_heap_growth(const hostile_run *r) {
  int hits = 0;
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_HEAP_LIMIT || o->status == SBX_CPU_LIMIT, t, o);
    if (o->status == SBX_HEAP_LIMIT) {
      hits++;
      check_tick(find_line(o, "memory allocation limit reached") >= 0, t, o);
      check_tick(find_line(o, "isolate was disposed") >= 0, t, o);
      /* recreated and run again next tick */
      if (t + 1 < TICKS) check_tick(r->a[t + 1].created && r->a[t + 1].global_reset, t + 1, &r->a[t + 1]);
    }
  }
  assert_true(hits >= 1);
}

static void expect_string_doubling(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_HEAP_LIMIT || (o->status == SBX_EXCEPTION && error_has(o, "Invalid string length")),
               t, o);
  }
}

static void expect_arraybuffer_hoard(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_EXCEPTION, t, o);
    check_tick(error_has(o, "RangeError: Array buffer allocation failed"), t, o);
    check_tick(o->heap.external <= (64u << 20), t, o);
  }
}

static void expect_catastrophic_regex(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_OK || o->status == SBX_CPU_LIMIT, t, o);
    if (o->status == SBX_OK) check_tick(o->n_lines == 1 && strcmp(o->lines[0].text, "false") == 0, t, o);
    check_tick(o->wall_ns < 3000000000ull, t, o);
  }
}

static void expect_huge_eval(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    bool refused = o->status == SBX_EXCEPTION && error_has(o, "EvalError");
    bool terminated = o->status == SBX_CPU_LIMIT || o->status == SBX_WALL_LIMIT || o->status == SBX_HEAP_LIMIT;
    check_tick(refused || terminated, t, o);
    check_tick(o->wall_ns < 3000000000ull, t, o); /* the parser did not hold the thread */
  }
}

static void expect_host_escape(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_OK, t, o);
    check_tick(o->n_lines == 2, t, o);
    /* typeof g.process; "player-require" is the player's own require, not Node's */
    check_tick(strncmp(o->lines[0].text, "undefined ", 10) == 0, t, o);
    check_tick(strcmp(o->lines[1].text, "undefined") == 0 || strncmp(o->lines[1].text, "blocked", 7) == 0, t, o);
    check_tick(find_line(o, "object") < 0 && find_line(o, "function") < 0, t, o);
  }
}

static void expect_global_persistence(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    char want[64];
    snprintf(want, sizeof want, "n %d tick %d", t + 1, FIRST_TIME + t);
    check_tick(o->status == SBX_OK, t, o);
    check_tick(o->n_lines == 1 && strcmp(o->lines[0].text, want) == 0, t, o);
  }
  assert_int_equal(r->a_generation, 1);
}

static void expect_throw_with_stack(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    char want[64];
    snprintf(want, sizeof want, "Error: boom at %d", FIRST_TIME + t);
    check_tick(o->status == SBX_EXCEPTION, t, o);
    check_tick(error_has(o, want) && error_has(o, "main:2") && error_has(o, "main:3"), t, o);
    check_tick(!error_has(o, "isoworld:"), t, o);
    long k = find_line(o, want);
    check_tick(k >= 0 && o->lines[k].level == SBX_ERROR && strstr(o->lines[k].text, "main:2") &&
                   !strstr(o->lines[k].text, "isoworld:"),
               t, o);
  }
}

static void expect_memory_oversize(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_OK || o->status == SBX_EXCEPTION, t, o);
    check_tick(!o->memory_changed && !o->memory, t, o);
    long k = find_line(o, "Memory size is over");
    check_tick(k >= 0 && o->lines[k].level == SBX_ERROR, t, o);
  }
  assert_string_equal(r->a_memory, r->a_memory_initial); /* Memory.ok never advanced */
}

static void expect_syntax_error(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_EXCEPTION, t, o);
    check_tick(error_has(o, "SyntaxError") && error_has(o, "main:2"), t, o);
    check_tick(find_line(o, "SyntaxError") >= 0, t, o);
  }
}

static void expect_console_flood(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_OK || o->status == SBX_CPU_LIMIT, t, o);
    check_tick(o->n_lines <= 101 && o->omitted_lines > 0, t, o);
    long k = find_line(o, "[Omitted ");
    check_tick(k > 0, t, o);
    check_tick(strcmp(o->lines[0].text, "spam 0") == 0, t, o);
    size_t bytes = 0;
    for (size_t i = 0; i < o->n_lines; i++) bytes += o->lines[i].len;
    check_tick(bytes <= (64u << 10) + 64, t, o);
    /* a kill is reported after the flood, not drowned by it */
    if (o->status == SBX_CPU_LIMIT)
      check_tick(strstr(o->lines[o->n_lines - 1].text, "CPU time limit reached") != NULL, t, o);
  }
}

static const struct {
  const char *file;
  void (*check)(const hostile_run *r);
} expectations[] = {
    {"infinite_loop.js", expect_infinite_loop},
    {"microtask_loop.js", expect_cpu_limit_each_tick},
    {"async_loop.js", expect_cpu_limit_each_tick},
    {"deep_recursion.js", expect_deep_recursion},
    {"heap_growth.js", expect_heap_growth},
    {"string_doubling.js", expect_string_doubling},
    {"arraybuffer_hoard.js", expect_arraybuffer_hoard},
    {"catastrophic_regex.js", expect_catastrophic_regex},
    {"huge_eval.js", expect_huge_eval},
    {"host_escape.js", expect_host_escape},
    {"global_persistence.js", expect_global_persistence},
    {"throw_with_stack.js", expect_throw_with_stack},
    {"memory_oversize.js", expect_memory_oversize},
    {"syntax_error.js", expect_syntax_error},
    {"console_flood.js", expect_console_flood},
};

/* More hostile scenarios of classes the shared files do not cover, kept here so that each
 * is still its own process and ctest entry (tests/CMakeLists.txt lists their names):
 *   test_hostile inline:<name>
 * Each found a way to kill the whole process with one line of player code in V8 10.2. */
static void expect_huge_allocation(const hostile_run *r) {
  int hits = 0;
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick(o->status == SBX_HEAP_LIMIT || o->status == SBX_CPU_LIMIT || o->status == SBX_WALL_LIMIT ||
                   o->status == SBX_ABANDONED || o->status == SBX_BUSY,
               t, o);
    if (o->status == SBX_HEAP_LIMIT) hits++;
  }
  /* On a loaded machine the allocation can outlast the hard limit: then the thread is
   * given up on (and the player skipped while it is stuck) — the process survives either way. */
  bool abandoned = false;
  for (int t = 0; t < TICKS; t++) abandoned |= r->a[t].status == SBX_ABANDONED;
  assert_true(hits >= 1 || abandoned);
}

static void expect_refused_or_terminated(const hostile_run *r) {
  for (int t = 0; t < TICKS; t++) {
    const sbx_tick_out *o = &r->a[t];
    check_tick((o->status == SBX_EXCEPTION && error_has(o, "RangeError")) || o->status == SBX_HEAP_LIMIT ||
                   o->status == SBX_CPU_LIMIT || o->status == SBX_WALL_LIMIT || o->status == SBX_ABANDONED ||
                   o->status == SBX_BUSY,
               t, o);
  }
}

typedef struct inline_scenario {
  const char *name;
  const char *source;
  void (*check)(const hostile_run *r);
} inline_scenario;

static const inline_scenario inline_scenarios[] = {
    /* One allocation far past the heap limit passes without a NearHeapLimitCallback; the
     * next one then found a limit under the heap's size: fatal "Reached heap limit". */
    {"huge_allocation", "module.exports.loop = function () { global.a = new Array(3e7).fill(1.5); };\n",
     expect_huge_allocation},
    /* split('') of a string longer than FixedArray::kMaxLength (2^27 - 2): V8 10.2 aborts
     * with "Fatal JavaScript invalid size error" instead of throwing. */
    {"split_huge", "module.exports.loop = function () { 'x'.repeat(2 ** 27 + 16).split(''); };\n",
     expect_refused_or_terminated},
    /* match(/x/g) of such a string: "Fatal javascript OOM in invalid array length". */
    {"match_huge", "module.exports.loop = function () { 'x'.repeat(2 ** 27 + 16).match(/x/g); };\n",
     expect_refused_or_terminated},
};

#endif
