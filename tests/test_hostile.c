/*
 * test_hostile.c — one hostile player scenario (shared/hostile/<file>.js) per process.
 *
 *   test_hostile <file.js>        (or ISOWORLD_HOSTILE_FILE=<file.js> test_hostile)
 *
 * The file is player A's `main`, run next to a well-behaved player B (a counter in
 * Memory and one in its global) on one pool, for TICKS ticks with realistic budgets. It
 * checks what the server promises for every hostile file (the process stays up, B
 * returns SBX_OK every tick with its Memory and global counters advanced by one, the
 * batch ends on time, and A runs normally again after an upload of good code), and then
 * A's own outcome against the table in hostile_expect.h (shared with the runner's test,
 * test_hostile_runner.c), which restates each file's first line ("// expect: ...") as
 * assertions. A file with no row in the table gets only the common
 * checks and a note on stderr: add a row when adding a scenario.
 *
 * The file is looked up in $ISOWORLD_SHARED_DIR/hostile/ (set by ctest), else
 * ../shared/hostile/ relative to the current directory; an absolute path also works.
 * `test_hostile inline:<name>` runs one of the scenarios kept in this file instead.
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

#include "hostile_expect.h"

static char *g_path;          /* where it was read from */
static char *g_source;
static size_t g_source_len;
static sbx_runtime *g_rt;
static uint64_t g_abandoned; /* threads the pool gave up on and that may still be in V8 */

static const inline_scenario *g_inline; /* set for inline:<name> */

/* ------------------------------------------------------------------ the run */

static const char B_SRC[] =
    "module.exports.loop = function () {\n"
    "  global.g = (global.g || 0) + 1;\n"
    "  Memory.count = (Memory.count || 0) + 1;\n"
    "  console.log('B ' + global.g + ' ' + Memory.count);\n"
    "};\n";

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static sbx_tick_in tick_in(uint64_t time, const char *memory) {
  sbx_tick_in in = {.time = time,
                    .cpu_limit_ms = 100,
                    .tick_limit_ms = TICK_LIMIT_MS,
                    .bucket = 10000,
                    .wall_limit_ms = WALL_LIMIT_MS,
                    .hard_limit_ms = HARD_LIMIT_MS,
                    .memory = memory,
                    .memory_len = memory ? strlen(memory) : 0};
  return in;
}

static void keep_memory(char **mem, sbx_tick_out *o) {
  if (!o->memory_changed) return;
  free(*mem);
  *mem = o->memory;
  o->memory = NULL;
}

static void check_b(int t, const sbx_tick_out *o) {
  char want[64];
  snprintf(want, sizeof want, "B %d %d", t + 1, t + 1);
  check_tick(o->status == SBX_OK, t, o);
  check_tick(o->n_lines == 1 && strcmp(o->lines[0].text, want) == 0, t, o);
  snprintf(want, sizeof want, "{\"count\":%d}", t + 1);
  check_tick(o->memory_changed && o->memory && strcmp(o->memory, want) == 0, t, o);
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

static void test_hostile_scenario(void **state) {
  (void)state;
  int threads0 = nthreads();
  g_abandoned = 1; /* unknown until the end: a failed check leaves the engine up */
  sbx_pool *pool = NULL;
  assert_int_equal(sbx_pool_new(THREADS, &pool), SBX_OK);
  sbx_vm_options opt = {.heap_limit_mb = 64};
  sbx_vm *a = NULL, *b = NULL;
  assert_int_equal(sbx_vm_new(g_rt, &opt, &a), SBX_OK);
  assert_int_equal(sbx_vm_new(g_rt, &opt, &b), SBX_OK);
  sbx_module am = {"main", g_source, g_source_len, false};
  sbx_module bm = {"main", B_SRC, strlen(B_SRC), false};
  assert_int_equal(sbx_vm_set_code(a, &am, 1), SBX_OK);
  assert_int_equal(sbx_vm_set_code(b, &bm, 1), SBX_OK);

  hostile_run r;
  memset(&r, 0, sizeof r);
  r.a_memory_initial = strdup("{\"ok\":0}");
  r.a_memory = strdup(r.a_memory_initial);
  char *b_memory = NULL;

  for (int t = 0; t < TICKS; t++) {
    sbx_job jobs[2];
    memset(jobs, 0, sizeof jobs);
    jobs[0].vm = a;
    jobs[0].in = tick_in(FIRST_TIME + (uint64_t)t, r.a_memory);
    jobs[1].vm = b;
    jobs[1].in = tick_in(FIRST_TIME + (uint64_t)t, b_memory);
    double t0 = now_ms();
    assert_int_equal(sbx_pool_run(pool, jobs, 2), SBX_OK);
    double took = now_ms() - t0;
    sbx_tick_out *ao = &jobs[0].out, *bo = &jobs[1].out;
    /* the batch ends on time whatever A does (generous: hard limit + slack) */
    check_tick(took < HARD_LIMIT_MS + 1500, t, ao);
    check_b(t, bo);
    keep_memory(&b_memory, bo);
    sbx_tick_out_release(bo);
    /* A's status is one a player can be given (SBX_BUSY: skipped while a run the pool
     * gave up on is still stuck, as happens on a slow machine) */
    check_tick((ao->status <= 0 && ao->status >= SBX_HALTED) || ao->status == SBX_BUSY, t, ao);
    if (ao->status != SBX_OK) check_tick(ao->error != NULL && ao->n_lines >= 1, t, ao);
    keep_memory(&r.a_memory, ao);
    r.a[t] = *ao; /* moved: released after the checks */
    memset(ao, 0, sizeof *ao);
  }
  r.a_generation = sbx_vm_generation(a);
  if (getenv("ISOWORLD_TEST_VERBOSE"))
    for (int t = 0; t < TICKS; t++) dump(g_file, t, &r.a[t]);

  bool found = false;
  for (size_t i = 0; i < sizeof expectations / sizeof expectations[0]; i++) {
    if (strcmp(expectations[i].file, g_file) == 0) {
      expectations[i].check(&r);
      found = true;
    }
  }
  if (g_inline) {
    g_inline->check(&r);
    found = true;
  }
  if (!found) fprintf(stderr, "NOTE: no expectation for %s in test_hostile.c; only the common checks ran\n", g_file);

  /* A new upload of good code: A runs normally again, next to B. */
  static const char GOOD[] = "module.exports.loop = function () { console.log('good ' + Game.time); };";
  sbx_module gm = {"main", GOOD, strlen(GOOD), false};
  assert_int_equal(sbx_vm_set_code(a, &gm, 1), SBX_OK);
  sbx_job jobs[2];
  memset(jobs, 0, sizeof jobs);
  jobs[0].vm = a;
  jobs[0].in = tick_in(FIRST_TIME + TICKS, r.a_memory);
  jobs[1].vm = b;
  jobs[1].in = tick_in(FIRST_TIME + TICKS, b_memory);
  assert_int_equal(sbx_pool_run(pool, jobs, 2), SBX_OK);
  char want[32];
  snprintf(want, sizeof want, "good %d", FIRST_TIME + TICKS);
  check_tick(jobs[0].out.status == SBX_OK && jobs[0].out.n_lines == 1 && strcmp(jobs[0].out.lines[0].text, want) == 0,
             TICKS, &jobs[0].out);
  check_b(TICKS, &jobs[1].out);
  sbx_tick_out_release(&jobs[0].out);
  sbx_tick_out_release(&jobs[1].out);

  for (int t = 0; t < TICKS; t++) sbx_tick_out_release(&r.a[t]);
  free(r.a_memory_initial);
  free(r.a_memory);
  free(b_memory);
  g_abandoned = sbx_pool_abandoned(pool);
  sbx_pool_free(pool);
  sbx_vm_free(a);
  sbx_vm_free(b);
  /* Threads the pool gave up on are still in V8 until their builtin returns: the process
   * must survive that too, so wait for them (nothing in the API tells when they are done). */
  if (g_abandoned) {
    double t0 = now_ms();
    while (nthreads() > threads0 && now_ms() - t0 < ABANDONED_WAIT_MS) {
      struct timespec ts = {0, 50 * 1000000};
      nanosleep(&ts, NULL);
    }
    if (nthreads() > threads0)
      fprintf(stderr, "%d abandoned thread(s) still running after %.0f s\n", nthreads() - threads0,
              ABANDONED_WAIT_MS / 1000);
    assert_true(nthreads() <= threads0);
    g_abandoned = 0;
  }
}

/* ------------------------------------------------------------------ setup */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  fclose(f);
  buf[n] = 0;
  *len = n;
  return buf;
}

static int start_engine(void) {
  if (sbx_engine_start(NULL) != SBX_OK) return -1;
  char *err = NULL;
  if (sbx_runtime_new(NULL, &g_rt, &err) != SBX_OK) {
    fprintf(stderr, "sbx_runtime_new: %s\n", err ? err : "?");
    free(err);
    return -1;
  }
  return 0;
}

static int group_setup(void **state) {
  (void)state;
  if (strncmp(g_file, "inline:", 7) == 0) {
    for (size_t i = 0; i < sizeof inline_scenarios / sizeof inline_scenarios[0]; i++)
      if (strcmp(inline_scenarios[i].name, g_file + 7) == 0) g_inline = &inline_scenarios[i];
    if (!g_inline) {
      fprintf(stderr, "no inline scenario %s\n", g_file + 7);
      return -1;
    }
    g_source = strdup(g_inline->source);
    g_source_len = strlen(g_source);
    g_file = g_inline->name;
    return start_engine();
  }
  const char *shared = getenv("ISOWORLD_SHARED_DIR");
  size_t cap = strlen(g_file) + (shared ? strlen(shared) : 0) + 64;
  g_path = malloc(cap);
  if (!g_path) return -1;
  if (g_file[0] == '/') snprintf(g_path, cap, "%s", g_file);
  else snprintf(g_path, cap, "%s/hostile/%s", shared ? shared : "../shared", g_file);
  g_source = read_file(g_path, &g_source_len);
  if (!g_source) {
    fprintf(stderr, "cannot read %s\n", g_path);
    return -1;
  }
  const char *slash = strrchr(g_file, '/');
  if (slash) g_file = slash + 1;
  return start_engine();
}

static int group_teardown(void **state) {
  (void)state;
  sbx_runtime_free(g_rt);
  free(g_source);
  free(g_path);
  /* A thread abandoned in a builtin that is still inside V8 (the test failed before it
   * ended) keeps the engine up until exit. */
  if (g_abandoned == 0) sbx_engine_stop();
  return 0;
}

int main(int argc, char **argv) {
  g_file = argc > 1 ? argv[1] : getenv("ISOWORLD_HOSTILE_FILE");
  if (!g_file || !*g_file) {
    fprintf(stderr, "usage: test_hostile <file.js>|inline:<name>  (a file of shared/hostile/, an absolute path,\n"
                    "       or a scenario of test_hostile.c's inline_scenarios)\n");
    return 2;
  }
  char name[256];
  const char *base = strrchr(g_file, '/');
  base = base ? base + 1 : strncmp(g_file, "inline:", 7) == 0 ? g_file + 7 : g_file;
  size_t n = strcspn(base, ".");
  snprintf(name, sizeof name, "test_hostile_%.*s", (int)n, base);
  const struct CMUnitTest tests[] = {
      {.name = name, .test_func = test_hostile_scenario, .setup_func = NULL, .teardown_func = NULL, .initial_state = NULL},
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
