/*
 * test_sandbox_util.h — what the sandbox library tests (tests/test_sandbox_<library>.c)
 * share: the engine fixture, a console sink that keeps lines, and assertions on results.
 * Header-only (static functions): each test executable includes it once.
 *
 * Time budgets are multiplied under valgrind (V8 runs 20-50x slower there), as in
 * test_sandbox.c; ISOWORLD_TEST_TIME_SCALE overrides the factor.
 */
#ifndef ISOWORLD_TEST_SANDBOX_UTIL_H
#define ISOWORLD_TEST_SANDBOX_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sandbox.h"

#include <pthread.h>
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

static double g_scale = 1;

static inline int sbt_setup(void **state) {
  (void)state;
  const char *s = getenv("ISOWORLD_TEST_TIME_SCALE");
  if (s && atof(s) > 0)
    g_scale = atof(s);
  else if (RUNNING_ON_VALGRIND)
    g_scale = 40;
  return sbx_engine_start(NULL) == SBX_OK ? 0 : -1;
}

static inline int sbt_teardown(void **state) {
  (void)state;
  sbx_engine_stop();
  return 0;
}

static inline double sbt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ console lines */

#define SBT_MAX_LINES 256
typedef struct sbt_lines {
  pthread_mutex_t mu;
  int n;
  int level[SBT_MAX_LINES];
  char *text[SBT_MAX_LINES];
  sbx_vm *vm[SBT_MAX_LINES];
} sbt_lines;

static sbt_lines g_lines = {.mu = PTHREAD_MUTEX_INITIALIZER};

static inline void sbt_sink(sbx_vm *vm, sbx_level level, const char *text, size_t len, void *ud) {
  sbt_lines *l = ud ? ud : &g_lines;
  pthread_mutex_lock(&l->mu);
  if (l->n < SBT_MAX_LINES) {
    l->level[l->n] = (int)level;
    l->vm[l->n] = vm;
    l->text[l->n] = strndup(text, len);
    l->n++;
  }
  pthread_mutex_unlock(&l->mu);
}

static inline void sbt_lines_clear(sbt_lines *l) {
  if (!l) l = &g_lines;
  pthread_mutex_lock(&l->mu);
  for (int i = 0; i < l->n; i++) free(l->text[i]);
  l->n = 0;
  pthread_mutex_unlock(&l->mu);
}

static inline void sbt_lines_dump(const sbt_lines *l) {
  if (!l) l = &g_lines;
  fprintf(stderr, "---- %d console lines\n", l->n);
  for (int i = 0; i < l->n; i++) fprintf(stderr, "  [%d] %.300s\n", l->level[i], l->text[i]);
}

/* Index of the first line containing needle, or -1. */
static inline int sbt_find(const sbt_lines *l, const char *needle) {
  if (!l) l = &g_lines;
  for (int i = 0; i < l->n; i++)
    if (strstr(l->text[i], needle)) return i;
  return -1;
}

#define sbt_expect_line(needle)                                         \
  do {                                                                  \
    if (sbt_find(NULL, (needle)) < 0) {                                 \
      fprintf(stderr, "no console line containing \"%s\"\n", (needle)); \
      sbt_lines_dump(NULL);                                             \
    }                                                                   \
    assert_true(sbt_find(NULL, (needle)) >= 0);                         \
  } while (0)

/* A console library with the shared sink, allocated once per test binary. */
static sbx_library *g_console;
static inline const sbx_library *sbt_console(void) {
  if (!g_console) {
    sbx_console_options o = {sbt_sink, NULL};
    assert_int_equal(sbx_console_library_new(&o, &g_console), SBX_OK);
  }
  return g_console;
}

/* ------------------------------------------------------------------ results */

static inline void sbt_dump_result(const char *what, const sbx_result *r) {
  char *v = r->value ? sbx_value_to_json(r->value) : NULL;
  fprintf(stderr, "---- %s: status %d (%s)\n  error: %s\n  value: %s\n", what, r->status, sbx_strerror(r->status),
          r->error ? r->error : "(none)", v ? v : "(none)");
  free(v);
  sbt_lines_dump(NULL);
}

#define sbt_expect_status(r, st)                                        \
  do {                                                                  \
    if ((r)->status != (st)) sbt_dump_result("unexpected status", (r)); \
    assert_int_equal((r)->status, (st));                                \
  } while (0)

/* The result's value as JSON equals want. */
#define sbt_expect_json(r, want)                                            \
  do {                                                                      \
    char *j_ = sbx_value_to_json((r)->value);                               \
    if (!j_ || strcmp(j_, (want)) != 0) {                                   \
      fprintf(stderr, "value %s, wanted %s\n", j_ ? j_ : "(null)", (want)); \
      sbt_dump_result("wrong value", (r));                                  \
    }                                                                       \
    assert_non_null(j_);                                                    \
    assert_string_equal(j_, (want));                                        \
    free(j_);                                                               \
  } while (0)

#define sbt_expect_error(r, needle)                                 \
  do {                                                              \
    if (!(r)->error || !strstr((r)->error, (needle))) {             \
      fprintf(stderr, "error does not contain \"%s\"\n", (needle)); \
      sbt_dump_result("wrong error", (r));                          \
    }                                                               \
    assert_non_null((r)->error);                                    \
    assert_non_null(strstr((r)->error, (needle)));                  \
  } while (0)

/* Runs code (must succeed). */
static inline void sbt_run_ok(sbx_vm *vm, const char *code) {
  sbx_result r;
  sbx_vm_run(vm, code, "main", &r);
  sbt_expect_status(&r, SBX_OK);
  sbx_result_release(&r);
}

/* Calls fn with no arguments; the result's JSON must be want. */
static inline void sbt_call_json(sbx_vm *vm, const char *fn, const char *want) {
  sbx_result r;
  sbx_vm_call(vm, fn, NULL, 0, 5000 * g_scale, &r);
  sbt_expect_status(&r, SBX_OK);
  sbt_expect_json(&r, want);
  sbx_result_release(&r);
}

/* Runs the vm's event loop until nothing is pending (at most max_ms). */
static inline void sbt_drain_all(sbx_vm *vm, double max_ms) {
  double t0 = sbt_now_ms();
  while (sbx_vm_has_pending(vm) && sbt_now_ms() - t0 < max_ms) {
    sbx_result r;
    sbx_vm_run_pending(vm, 50, &r);
    sbx_result_release(&r);
  }
}

static inline sbx_vm_options sbt_opts(void) {
  sbx_vm_options o = {.heap_limit_mb = 32, .cpu_limit_ms = 2000 * g_scale, .wall_limit_ms = 5000 * g_scale};
  return o;
}

#endif
