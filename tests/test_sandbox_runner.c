/*
 * test_sandbox_runner.c — the standalone runner, tools/isoworld-sandbox, driven as a
 * subprocess on temporary project directories: every library through it (console,
 * modules and fs over the tree, timers, host functions, threads, crypto, measure), its
 * limits and flags, exit statuses, ticks as the server runs them, JSON output, --help.
 * The hostile corpus through the runner is test_hostile_runner.c.
 */
#include "test_sandbox_util.h"

#include <sys/stat.h>
#include <sys/wait.h>

static char g_bin[1024];

/* A project directory with the given files (name, content, ..., NULL). */
static char *project(const char *first, ...) {
  char *dir = strdup("/tmp/isoworld-runner-XXXXXX");
  assert_non_null(mkdtemp(dir));
  va_list ap;
  va_start(ap, first);
  for (const char *name = first; name; name = va_arg(ap, const char *)) {
    const char *content = va_arg(ap, const char *);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    *slash = 0;
    char mk[600];
    snprintf(mk, sizeof mk, "mkdir -p '%s'", path);
    assert_int_equal(system(mk), 0);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
  }
  va_end(ap);
  return dir;
}

static void remove_project(char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  free(dir);
}

/* Runs `isoworld-sandbox run DIR ARGS` (or just ARGS when dir is NULL); returns the exit
 * status, *out the output (stdout, and stderr when both). */
static int run(const char *dir, const char *args, bool both, char **out) {
  char cmd[4096];
  if (dir)
    snprintf(cmd, sizeof cmd, "'%s' run '%s' %s %s", g_bin, dir, args, both ? "2>&1" : "2>/dev/null");
  else
    snprintf(cmd, sizeof cmd, "'%s' %s %s", g_bin, args, both ? "2>&1" : "2>/dev/null");
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n + 4097 > cap) buf = realloc(buf, cap *= 2);
    size_t got = fread(buf + n, 1, cap - n - 1, p);
    if (!got) break;
    n += got;
  }
  buf[n] = 0;
  int st = pclose(p);
  *out = buf;
  assert_true(WIFEXITED(st));
  return WEXITSTATUS(st);
}

#define expect_out(out, needle)                                                            \
  do {                                                                                     \
    if (!strstr((out), (needle))) fprintf(stderr, "no \"%s\" in:\n%s\n", (needle), (out)); \
    assert_non_null(strstr((out), (needle)));                                              \
  } while (0)

static void test_sandbox_runner_help_and_usage(void **state) {
  (void)state;
  char *out;
  assert_int_equal(run(NULL, "--help", true, &out), 0);
  expect_out(out, "Usage: isoworld-sandbox run DIR");
  expect_out(out, "--ticks N");
  expect_out(out, "Exit status");
  free(out);
  assert_int_equal(run(NULL, "walk", true, &out), 64);
  free(out);
  assert_int_equal(run(NULL, "run /nonexistent/dir", true, &out), 66);
  free(out);
  char *dir = project("main.js", "1;", NULL);
  assert_int_equal(run(dir, "--heap-mb x", true, &out), 64);
  free(out);
  remove_project(dir);
}

static void test_sandbox_runner_project(void **state) {
  (void)state;
  char *dir = project(
      "main.js",
      "const util = require('./lib/util');\n"
      "const cfg = require('./config.json');\n"
      "const path = require('path');\n"
      "const fs = require('fs/promises');\n"
      "console.log('start', util.twice(cfg.n), path.basename(__filename));\n"
      "console.error('to stderr');\n"
      "setTimeout(async () => {\n"
      "  await fs.mkdir('/out');\n"
      "  await fs.writeFile('/out/x.txt', 'data');\n"
      "  console.log('files', JSON.stringify(await fs.readdir('/')), await fs.readFile('/out/x.txt', 'utf8'));\n"
      "  const v = await host.echo({ a: [1, 'b'] });\n"
      "  await host.sleep(20);\n"
      "  console.log('host', JSON.stringify(v), JSON.stringify(await host.args()), crypto.sha256('abc').slice(0, 8));\n"
      "}, 5);\n"
      "module.exports = { greet: async (who, punct) => 'hello ' + who + punct };\n",
      "lib/util.js", "exports.twice = (x) => x * 2;", "config.json", "{\"n\": 21}", NULL);
  char *out;
  assert_int_equal(run(dir, "--call greet -- world !", false, &out), 0);
  expect_out(out, "start 42 main.js\n");
  expect_out(out, "\"hello world!\"\n");
  expect_out(out, "files [\"config.json\",\"lib\",\"main.js\",\"out\"] data\n");
  expect_out(out, "host {\"a\":[1,\"b\"]} [\"world\",\"!\"] ba7816bf\n");
  assert_null(strstr(out, "to stderr")); /* console.error goes to stderr */
  free(out);
  assert_int_equal(run(dir, "--json --call greet -- a b", false, &out), 0);
  expect_out(out, "{\"console\":{\"level\":3,\"thread\":0,\"text\":\"to stderr\"}}");
  expect_out(out, "{\"call\":\"greet\",\"status\":0,\"status_text\":\"ok\",\"value\":\"hello ab\"");
  expect_out(out, "{\"run\":\"/main.js\",\"status\":0");
  free(out);
  /* --entry, --mock, refusals */
  free(dir);
  dir = project("app/start.js",
                "const h = require('http'); console.log('mocked', typeof h, Object.keys(h).length);\n"
                "try { require('child_process'); } catch (e) { console.log(e.message); }\n",
                NULL);
  assert_int_equal(run(dir, "--entry app/start.js --mock http", true, &out), 0);
  expect_out(out, "mocked object 0");
  expect_out(out, "Cannot require 'child_process'");
  free(out);
  remove_project(dir);
}

static void test_sandbox_runner_errors_and_limits(void **state) {
  (void)state;
  char *out;
  char *dir = project("main.js", "const x = 1;\nfunction f() { throw new Error('entry failed'); }\nf();\n", NULL);
  assert_int_equal(run(dir, "", true, &out), 1);
  expect_out(out, "Error: entry failed");
  expect_out(out, "main:2");
  free(out);
  remove_project(dir);
  dir = project("main.js", "let = ;", NULL);
  assert_int_equal(run(dir, "", true, &out), 1);
  expect_out(out, "SyntaxError");
  free(out);
  remove_project(dir);
  dir = project("main.js", "for (;;) {}", NULL);
  double t0 = sbt_now_ms();
  assert_int_equal(run(dir, "--cpu-ms 100", true, &out), 2);
  assert_true(sbt_now_ms() - t0 < 5000);
  expect_out(out, "CPU time limit reached");
  free(out);
  remove_project(dir);
  dir = project("main.js", "const a = []; for (;;) a.push(new Array(1e5).fill(1.5));", NULL);
  assert_int_equal(run(dir, "--heap-mb 16", true, &out), 4);
  expect_out(out, "memory allocation limit reached");
  free(out);
  remove_project(dir);
  /* an error in a timer is reported and makes the exit status 1; the others still run */
  dir = project("main.js",
                "setTimeout(() => { throw new Error('late'); }, 1); setTimeout(() => console.log('other ran'), 5);",
                NULL);
  assert_int_equal(run(dir, "", true, &out), 1);
  expect_out(out, "Error: late");
  expect_out(out, "other ran");
  free(out);
  remove_project(dir);
  /* work pending forever: --timeout */
  dir = project("main.js", "setInterval(() => {}, 10);", NULL);
  t0 = sbt_now_ms();
  assert_int_equal(run(dir, "--timeout 300", true, &out), 12);
  assert_true(sbt_now_ms() - t0 < 5000);
  free(out);
  remove_project(dir);
  /* limits of timers and of the tree */
  dir = project("main.js",
                "setTimeout(() => {}, 1); setTimeout(() => {}, 1);\n"
                "try { setTimeout(() => {}, 1); } catch (e) { console.log(e.name); }",
                NULL);
  assert_int_equal(run(dir, "--timers 2", true, &out), 0);
  expect_out(out, "RangeError");
  free(out);
  assert_int_equal(run(dir, "--timers 0", true, &out), 1);
  expect_out(out, "setTimeout is not defined");
  free(out);
  remove_project(dir);
  dir = project("main.js", "1", "a.js", "1", "b.js", "1", "c.js", "1", NULL);
  assert_int_equal(run(dir, "--max-files 3", true, &out), 66);
  expect_out(out, "cannot load");
  free(out);
  remove_project(dir);
}

static void test_sandbox_runner_threads(void **state) {
  (void)state;
  char *dir = project("main.js",
                      "(async () => {\n"
                      "  const w = await startThread('./worker');\n"
                      "  console.log('sum', await w.sum([1, 2, 3]), await w.slow(7));\n"
                      "  try { await w.spin(); } catch (e) { console.log('spin:', e.message); }\n"
                      "  console.log('disposed', w.isDisposed);\n"
                      "})();\n",
                      "worker.js",
                      "console.log('worker', isThread);\n"
                      "exposeCallables({ sum: (a) => a.reduce((x, y) => x + y, 0),\n"
                      "  slow: async (x) => { await host.sleep(10); return x * 3; }, spin: () => { for (;;) {} } });\n",
                      NULL);
  char *out;
  assert_int_equal(run(dir, "--thread-response-ms 100", true, &out), 0);
  expect_out(out, "[thread 1] worker 1\n");
  expect_out(out, "sum 6 21\n");
  expect_out(out, "spin: thread 1 stopped answering");
  expect_out(out, "disposed true\n");
  free(out);
  assert_int_equal(run(dir, "--threads 0", true, &out), 1); /* an unhandled rejection */
  expect_out(out, "Unhandled promise rejection: ReferenceError: startThread is not defined");
  free(out);
  remove_project(dir);
}

static void test_sandbox_runner_ticks(void **state) {
  (void)state;
  char *dir = project(
      "main.js",
      "const role = require('./role.harvester');\n"
      "module.exports.loop = function () {\n"
      "  Memory.n = (Memory.n || 0) + 1;\n"
      "  console.log(role.name + ' tick ' + Game.time + ' n ' + Memory.n + ' cpu ' + (Game.cpu.getUsed() >= 0));\n"
      "};\n",
      "role.harvester.js", "module.exports = { name: 'harvester' };", NULL);
  char *out;
  assert_int_equal(run(dir, "--ticks 3 --time 10 --memory '{\"n\":5}'", true, &out), 0);
  expect_out(out, "[10] harvester tick 10 n 6 cpu true\n");
  expect_out(out, "[12] harvester tick 12 n 8 cpu true\n");
  free(out);
  assert_int_equal(run(dir, "--ticks 2 --json", false, &out), 0);
  expect_out(out, "{\"tick\":0,\"time\":1,\"status\":0");
  expect_out(out, "\"lines\":[{\"level\":0,\"text\":\"harvester tick 2 n 2 cpu true\"}]");
  expect_out(out, "{\"done\":true,\"generation\":1,\"memory\":\"{\\\"n\\\":2}\",\"exit\":0}");
  free(out);
  remove_project(dir);
}

static void test_sandbox_runner_measure(void **state) {
  (void)state;
  char *dir = project("main.js", "globalThis.b = new ArrayBuffer(2 << 20); setTimeout(() => {}, 5);", NULL);
  char *out;
  assert_int_equal(run(dir, "--stats --json", false, &out), 0);
  expect_out(out, "{\"stats\":{\"heap_used\":");
  expect_out(out, "\"heap_limit\":67108864");
  expect_out(out, "\"runs\":");
  free(out);
  remove_project(dir);
  /* a VM stuck in a builtin does not answer pings: stopped past --response-ms */
  dir = project("main.js", "const a = []; for (let i = 0; i < 1e6; i++) a.push(Math.random()); a.sort();", NULL);
  double t0 = sbt_now_ms();
  int code = run(dir, "--heap-mb 256 --cpu-ms 20000 --response-ms 100", true, &out);
  if (code != 13) fprintf(stderr, "%s\n", out);
  assert_int_equal(code, 13);
  expect_out(out, "response time limit exceeded");
  assert_true(sbt_now_ms() - t0 < 30000);
  free(out);
  remove_project(dir);
}

int main(void) {
  const char *bin = getenv("ISOWORLD_BIN_DIR");
  snprintf(g_bin, sizeof g_bin, "%s/isoworld-sandbox", bin ? bin : "./bin");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_runner_help_and_usage),
      cmocka_unit_test(test_sandbox_runner_project),
      cmocka_unit_test(test_sandbox_runner_errors_and_limits),
      cmocka_unit_test(test_sandbox_runner_threads),
      cmocka_unit_test(test_sandbox_runner_ticks),
      cmocka_unit_test(test_sandbox_runner_measure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
