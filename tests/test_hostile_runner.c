/*
 * test_hostile_runner.c — one hostile scenario through the standalone runner, in its own
 * process, with the same outcome as through the server's pool (test_hostile.c):
 *
 *   test_hostile_runner <file.js> | inline:<name>
 *
 * The file becomes main.js of a temporary project directory, run by
 *   isoworld-sandbox run DIR --ticks 6 --time 1000 --cpu-ms 150 --wall-ms 1500
 *       --hard-ms 3000 --heap-mb 64 --memory '{"ok":0}' --json
 * ($ISOWORLD_BIN_DIR, set by ctest, else ./bin). Its per-tick JSON lines are parsed back
 * into sbx_tick_out, and the expectation of the file (tests/hostile_expect.h, the table
 * test_hostile.c uses) is checked, plus what the runner promises itself: it exits (no
 * crash, no hang: a status code, not a signal), within the hard limits, and a failing
 * tick carries an error and a console line.
 */
#include "hostile_expect.h"

#include <jansson.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const inline_scenario *g_inline;
static char *g_source;
static char g_dir[64];

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *read_all(FILE *f, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n + 4096 + 1 > cap) buf = realloc(buf, cap *= 2);
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}

static char *dupstr(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* One {"tick":...} line into out. */
static void parse_tick(json_t *o, sbx_tick_out *out) {
  memset(out, 0, sizeof *out);
  out->status = (int)json_integer_value(json_object_get(o, "status"));
  out->error = dupstr(o, "error");
  out->cpu_ns = (uint64_t)json_integer_value(json_object_get(o, "cpu_ns"));
  out->wall_ns = (uint64_t)json_integer_value(json_object_get(o, "wall_ns"));
  out->created = json_is_true(json_object_get(o, "created"));
  out->global_reset = json_is_true(json_object_get(o, "global_reset"));
  out->omitted_lines = (size_t)json_integer_value(json_object_get(o, "omitted"));
  out->memory_changed = json_is_true(json_object_get(o, "memory_changed"));
  out->memory = dupstr(o, "memory");
  out->memory_len = out->memory ? strlen(out->memory) : 0;
  out->heap.used = (size_t)json_integer_value(json_object_get(o, "heap_used"));
  out->heap.external = (size_t)json_integer_value(json_object_get(o, "heap_external"));
  json_t *lines = json_object_get(o, "lines");
  out->n_lines = json_array_size(lines);
  out->lines = calloc(out->n_lines + 1, sizeof *out->lines);
  for (size_t i = 0; i < out->n_lines; i++) {
    json_t *l = json_array_get(lines, i);
    out->lines[i].level = (sbx_level)json_integer_value(json_object_get(l, "level"));
    out->lines[i].text = dupstr(l, "text");
    out->lines[i].len = out->lines[i].text ? strlen(out->lines[i].text) : 0;
    if (!out->lines[i].text) out->lines[i].text = strdup("");
  }
}

static void test_hostile_runner_scenario(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/main.js", g_dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(g_source, f);
  fclose(f);
  const char *bin = getenv("ISOWORLD_BIN_DIR");
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "'%s/isoworld-sandbox' run '%s' --ticks %d --time %d --cpu-ms %g --wall-ms %g --hard-ms %g --heap-mb 64 "
           "--memory '{\"ok\":0}' --json",
           bin ? bin : "./bin", g_dir, TICKS, FIRST_TIME, TICK_LIMIT_MS, WALL_LIMIT_MS, HARD_LIMIT_MS);
  double t0 = now_ms();
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char *out = read_all(p, NULL);
  int wst = pclose(p);
  double took = now_ms() - t0;
  if (!WIFEXITED(wst) || WEXITSTATUS(wst) >= 64) fprintf(stderr, "runner: %s\nstatus %d\n%.3000s\n", cmd, wst, out);
  assert_true(WIFEXITED(wst));
  assert_true(WEXITSTATUS(wst) < 64);
  /* six ticks, each ended by its hard limit at worst, plus creating the vm */
  assert_true(took < TICKS * (HARD_LIMIT_MS + 1500) + 10000);

  hostile_run r;
  memset(&r, 0, sizeof r);
  r.a_memory_initial = strdup("{\"ok\":0}");
  int ticks = 0;
  bool done = false;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    if (!o) {
      fprintf(stderr, "not JSON: %.300s\n", line);
      continue;
    }
    if (json_object_get(o, "tick") && ticks < TICKS) {
      parse_tick(o, &r.a[ticks]);
      const sbx_tick_out *ao = &r.a[ticks];
      /* A's status is one a player can be given; a failure says so */
      check_tick(ao->status <= 0 && ao->status >= SBX_HALTED, ticks, ao);
      if (ao->status != SBX_OK) check_tick(ao->error != NULL && ao->n_lines >= 1, ticks, ao);
      ticks++;
    } else if (json_object_get(o, "done")) {
      done = true;
      r.a_generation = (uint64_t)json_integer_value(json_object_get(o, "generation"));
      r.a_memory = dupstr(o, "memory");
    }
    json_decref(o);
  }
  free(out);
  assert_int_equal(ticks, TICKS);
  assert_true(done);
  if (!r.a_memory) r.a_memory = strdup(r.a_memory_initial);
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
  if (!found) fprintf(stderr, "NOTE: no expectation for %s in hostile_expect.h; only the common checks ran\n", g_file);
  for (int t = 0; t < TICKS; t++) sbx_tick_out_release(&r.a[t]);
  free(r.a_memory_initial);
  free(r.a_memory);
}

static int group_setup(void **state) {
  (void)state;
  if (strncmp(g_file, "inline:", 7) == 0) {
    for (size_t i = 0; i < sizeof inline_scenarios / sizeof inline_scenarios[0]; i++)
      if (strcmp(inline_scenarios[i].name, g_file + 7) == 0) g_inline = &inline_scenarios[i];
    if (!g_inline) return -1;
    g_source = strdup(g_inline->source);
    g_file = g_inline->name;
  } else {
    const char *shared = getenv("ISOWORLD_SHARED_DIR");
    char path[1024];
    if (g_file[0] == '/')
      snprintf(path, sizeof path, "%s", g_file);
    else
      snprintf(path, sizeof path, "%s/hostile/%s", shared ? shared : "../shared", g_file);
    FILE *f = fopen(path, "rb");
    if (!f) {
      fprintf(stderr, "cannot read %s\n", path);
      return -1;
    }
    g_source = read_all(f, NULL);
    fclose(f);
    const char *slash = strrchr(g_file, '/');
    if (slash) g_file = slash + 1;
  }
  snprintf(g_dir, sizeof g_dir, "/tmp/isoworld-hostile-XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/main.js", g_dir);
  unlink(path);
  rmdir(g_dir);
  free(g_source);
  return 0;
}

int main(int argc, char **argv) {
  g_file = argc > 1 ? argv[1] : getenv("ISOWORLD_HOSTILE_FILE");
  if (!g_file || !*g_file) {
    fprintf(stderr, "usage: test_hostile_runner <file.js>|inline:<name>\n");
    return 2;
  }
  char name[256];
  const char *base = strrchr(g_file, '/');
  base = base ? base + 1 : strncmp(g_file, "inline:", 7) == 0 ? g_file + 7 : g_file;
  snprintf(name, sizeof name, "test_hostile_runner_%.*s", (int)strcspn(base, "."), base);
  const struct CMUnitTest tests[] = {
      {.name = name,
       .test_func = test_hostile_runner_scenario,
       .setup_func = NULL,
       .teardown_func = NULL,
       .initial_state = NULL},
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
