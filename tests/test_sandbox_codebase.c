/*
 * test_sandbox_codebase.c — the codebase library: the virtual file tree (host API,
 * limits, paths that cannot escape, loading a host directory) and the module system over
 * it (relative/absolute/dotted names, .js/.json/index.js, cycles, cache, binary files,
 * built-in fs/path, mocks and refusals, the host's resolver, run_entry), the VM's
 * promise-based fs (read, write, mkdir, readdir, stat, unlink, Node error codes, limits),
 * and ticks over a tree (Game/Memory with the entry /main.js).
 */
#include "test_sandbox_util.h"

#include <sys/stat.h>

/* ------------------------------------------------------------------ the tree, host side */

static void test_sandbox_codebase_fs_host_api(void **state) {
  (void)state;
  sbx_fs_limits lim = {.max_bytes = 300, .max_files = 6};
  sbx_fs *fs;
  assert_int_equal(sbx_fs_new(&lim, &fs), SBX_OK);
  assert_int_equal(sbx_fs_write(fs, "/a/b.txt", "hello", 5, 0), SBX_NOT_FOUND); /* no parent */
  assert_int_equal(sbx_fs_write(fs, "/a/b.txt", "hello", 5, SBX_FS_PARENTS), SBX_OK);
  assert_int_equal(sbx_fs_files(fs), 2); /* /a and /a/b.txt */
  char *d;
  size_t n;
  assert_int_equal(sbx_fs_read(fs, "a/./c/../b.txt", &d, &n), SBX_OK); /* normalised */
  assert_int_equal(n, 5);
  assert_string_equal(d, "hello");
  free(d);
  /* '..' past the root stays at the root: nothing outside the tree can be named */
  assert_int_equal(sbx_fs_read(fs, "/../../../a/b.txt", &d, &n), SBX_OK);
  free(d);
  assert_int_equal(sbx_fs_read(fs, "../../etc/passwd", &d, &n), SBX_NOT_FOUND);
  assert_int_equal(sbx_fs_write(fs, "/a/b.txt", " world", 6, SBX_FS_APPEND), SBX_OK);
  assert_int_equal(sbx_fs_read(fs, "/a/b.txt", &d, &n), SBX_OK);
  assert_string_equal(d, "hello world");
  free(d);
  assert_int_equal(sbx_fs_write(fs, "/a", "x", 1, 0), SBX_IS_DIR);
  assert_int_equal(sbx_fs_write(fs, "/a/b.txt/c", "x", 1, SBX_FS_PARENTS), SBX_NOT_DIR);
  assert_int_equal(sbx_fs_mkdir(fs, "/a", false), SBX_EXISTS);
  assert_int_equal(sbx_fs_mkdir(fs, "/x/y/z", false), SBX_NOT_FOUND);
  assert_int_equal(sbx_fs_mkdir(fs, "/x/y/z", true), SBX_OK);
  char **names;
  size_t count;
  assert_int_equal(sbx_fs_list(fs, "/", &names, &count), SBX_OK);
  assert_int_equal(count, 2);
  assert_string_equal(names[0], "a");
  assert_string_equal(names[1], "x");
  sbx_fs_list_free(names, count);
  sbx_fs_stat st;
  assert_int_equal(sbx_fs_stat_path(fs, "/a/b.txt", &st), SBX_OK);
  assert_false(st.dir);
  assert_int_equal(st.size, 11);
  assert_true(st.mtime_ms > 1e12);
  /* limits: six entries (a, a/b.txt, x, x/y, x/y/z = 5), bytes */
  assert_int_equal(sbx_fs_write(fs, "/one", "1", 1, 0), SBX_OK);
  assert_int_equal(sbx_fs_write(fs, "/two", "2", 1, 0), SBX_LIMIT);
  assert_int_equal(sbx_fs_remove(fs, "/x", false), SBX_NOT_EMPTY);
  assert_int_equal(sbx_fs_remove(fs, "/x", true), SBX_OK);
  assert_int_equal(sbx_fs_files(fs), 3);
  char big[400];
  memset(big, 'b', sizeof big);
  assert_int_equal(sbx_fs_write(fs, "/big", big, sizeof big, 0), SBX_LIMIT);
  assert_int_equal(sbx_fs_stat_path(fs, "/big", &st), SBX_NOT_FOUND); /* unchanged on failure */
  assert_int_equal(sbx_fs_write(fs, "/one", big, 250, 0), SBX_OK);
  assert_int_equal(sbx_fs_write(fs, "/one", big, 290, 0), SBX_LIMIT);
  assert_true(sbx_fs_bytes(fs) <= 300);
  sbx_fs_free(fs);
}

static void test_sandbox_codebase_load_dir(void **state) {
  (void)state;
  char dir[] = "/tmp/sbxcbXXXXXX";
  assert_non_null(mkdtemp(dir));
  char p[256];
  snprintf(p, sizeof p, "%s/lib", dir);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/lib/util.js", dir);
  FILE *f = fopen(p, "w");
  fputs("module.exports = 1;", f);
  fclose(f);
  snprintf(p, sizeof p, "%s/data.bin", dir);
  f = fopen(p, "wb");
  fwrite("\x00\xff\x01", 1, 3, f);
  fclose(f);
  sbx_fs *fs;
  assert_int_equal(sbx_fs_new(NULL, &fs), SBX_OK);
  char *err = NULL;
  assert_int_equal(sbx_fs_load_dir(fs, dir, "/", &err), SBX_OK);
  sbx_fs_stat st;
  assert_int_equal(sbx_fs_stat_path(fs, "/lib/util.js", &st), SBX_OK);
  assert_false(st.binary);
  assert_int_equal(sbx_fs_stat_path(fs, "/data.bin", &st), SBX_OK);
  assert_true(st.binary);
  assert_int_equal(st.size, 3);
  assert_int_equal(sbx_fs_load_dir(fs, "/nonexistent/dir", "/", &err), SBX_NOT_FOUND);
  assert_non_null(err);
  free(err);
  sbx_fs_free(fs);
  snprintf(p, sizeof p, "rm -rf %s", dir);
  assert_int_equal(system(p), 0);
}

/* ------------------------------------------------------------------ modules */

static int resolver(const char *name, const char *from, char **src, size_t *len, void *ud) {
  (*(int *)ud)++;
  if (strcmp(name, "lodash") != 0) return -1;
  *src = strdup("module.exports = { map: (a, f) => a.map(f), from: __dirname };");
  *len = strlen(*src);
  return 0;
}

static int g_resolver_calls;

static sbx_vm *new_vm(sbx_library **lib, size_t max_bytes, size_t max_files) {
  static const char *const mocks[] = {"http", "child_process"};
  sbx_codebase_options co = {.max_bytes = max_bytes,
                             .max_files = max_files,
                             .mock_modules = mocks,
                             .n_mock_modules = 2,
                             .resolver = resolver,
                             .resolver_ud = &g_resolver_calls};
  assert_int_equal(sbx_codebase_library_new(&co, lib), SBX_OK);
  const sbx_library *libs[] = {sbt_console(), *lib};
  sbx_vm_options o = sbt_opts();
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 2, &o, &vm, NULL), SBX_OK);
  assert_non_null(sbx_vm_fs(vm));
  return vm;
}

static void put(sbx_vm *vm, const char *path, const char *src) {
  assert_int_equal(sbx_fs_write(sbx_vm_fs(vm), path, src, strlen(src), SBX_FS_PARENTS), SBX_OK);
}

static void test_sandbox_codebase_require(void **state) {
  (void)state;
  sbx_library *lib;
  sbx_vm *vm = new_vm(&lib, 0, 0);
  put(vm, "/main.js",
      "const h = require('role.harvester');\n"
      "const u1 = require('./lib/util'), u2 = require('/lib/util.js'), u3 = require('lib/util');\n"
      "const cfg = require('./config.json');\n"
      "const pkg = require('./pkg');\n"
      "const a = require('./cycle/a');\n"
      "const bin = require('./data.bin');\n"
      "const path = require('path'), fs = require('fs'), fsp = require('fs/promises'), np = require('node:path');\n"
      "const http = require('http');\n"
      "const lodash = require('lodash'), lodash2 = require('lodash');\n"
      "function refused(n) { try { require(n); return 'loaded'; } catch (e) { return e.message; } }\n"
      "module.exports = { main: () => [h.role, u1 === u2 && u2 === u3, u1.evals, cfg.limit, pkg.name, a.fromB, "
      "a.loaded,\n"
      "  bin instanceof ArrayBuffer, new Uint8Array(bin)[1], path.join('/a', '../b', 'c.js'), "
      "path.dirname('/x/y.js'),\n"
      "  path.extname('a.json'), fs.promises === fsp, np === path, Object.keys(http).length,\n"
      "  lodash.map([1, 2], x => x * 3), lodash === lodash2, lodash.from, __filename, __dirname,\n"
      "  refused('crypto'), refused('./nope'), refused('util-not-there')] };\n");
  put(vm, "/role.harvester.js", "module.exports = { role: 'harvester' };");
  put(vm, "/lib/util.js",
      "globalThis.evals = (globalThis.evals || 0) + 1; exports.evals = globalThis.evals;\n"
      "exports.self = require('./util') === exports;");
  put(vm, "/config.json", "{\"limit\": 42}");
  put(vm, "/pkg/index.js", "module.exports = { name: 'pkg' };");
  put(vm, "/cycle/a.js",
      "exports.loaded = false; const b = require('./b'); exports.fromB = b.sawA; exports.loaded = true;");
  put(vm, "/cycle/b.js", "const a = require('../cycle/a.js'); exports.sawA = a.loaded;");
  assert_int_equal(sbx_fs_write(sbx_vm_fs(vm), "/data.bin", "\x01\x02\x03", 3, SBX_FS_BINARY), SBX_OK);
  sbx_result r;
  assert_int_equal(sbx_vm_run_entry(vm, "/main.js", &r), SBX_OK);
  sbt_expect_json(&r, "[\"main\"]");
  sbx_result_release(&r);
  g_resolver_calls = 0;
  sbt_call_json(
      vm, "main",
      "[\"harvester\",true,1,42,\"pkg\",false,true,true,2,\"/b/c.js\",\"/x\",\".json\",true,true,0,[3,6],true,"
      "\"/\",\"/main.js\",\"/\",\"Cannot require 'crypto': Node's built-in modules are not available in the "
      "sandbox (fs, fs/promises and path are; others can be mocked by the host)\","
      "\"Cannot find module './nope' from '/'\",\"Cannot find module 'util-not-there' from '/'\"]");
  assert_int_equal(g_resolver_calls, 1); /* util-not-there; lodash was cached when main loaded */
  /* errors name the file and line */
  put(vm, "/broken.js", "const x = 1;\nnull.boom;\n");
  put(vm, "/syntax.js", "let = ;\n");
  assert_int_equal(sbx_vm_run_entry(vm, "/broken.js", &r), SBX_EXCEPTION);
  sbt_expect_error(&r, "TypeError");
  sbt_expect_error(&r, "broken:2");
  sbx_result_release(&r);
  assert_int_equal(sbx_vm_run_entry(vm, "syntax", &r), SBX_EXCEPTION);
  sbt_expect_error(&r, "SyntaxError");
  sbt_expect_error(&r, "syntax:1");
  sbx_result_release(&r);
  sbx_vm_free(vm);
  sbx_library_free(lib);
}

static void test_sandbox_codebase_vm_fs(void **state) {
  (void)state;
  sbx_library *lib;
  sbx_vm *vm = new_vm(&lib, 4096, 20);
  put(vm, "/main.js",
      "const fs = require('fs/promises'), fss = require('fs');\n"
      "async function code(f) { try { await f(); return 'ok'; } catch (e) { return e.code; } }\n"
      "module.exports.main = async function () {\n"
      "  await fs.mkdir('/out/deep', { recursive: true });\n"
      "  await fs.writeFile('/out/deep/r.txt', 'Result: ' + 28);\n"
      "  await fs.writeFile('out/bytes.bin', new Uint8Array([9, 8, 7]));\n"
      "  await fs.appendFile('/out/deep/r.txt', '!');\n"
      "  const text = await fs.readFile('/out/deep/r.txt', 'utf-8');\n"
      "  const bytes = await fs.readFile('/out/bytes.bin');\n"
      "  const st = await fs.stat('/out/deep/r.txt'), sd = await fs.stat('/out');\n"
      "  const list = await fs.readdir('/out');\n"
      "  const escape = await code(() => fs.readFile('../../../etc/passwd'));\n"
      "  const codes = [await code(() => fs.readFile('/none')), await code(() => fs.mkdir('/out')),\n"
      "                 await code(() => fs.unlink('/out')), await code(() => fs.readdir('/out/deep/r.txt')),\n"
      "                 await code(() => fs.writeFile('/big', 'x'.repeat(5000))), escape];\n"
      "  await fs.unlink('/out/bytes.bin');\n"
      "  return [text, Array.from(bytes), bytes instanceof Uint8Array, st.size, st.isFile(), sd.isDirectory(), list,\n"
      "          codes, fss.existsSync('/out/bytes.bin'), fss.readdirSync('/out'), fs.readFile('/x') instanceof "
      "Promise];\n"
      "};\n");
  sbx_result r;
  assert_int_equal(sbx_vm_run_entry(vm, "/main.js", &r), SBX_OK);
  sbx_result_release(&r);
  sbt_call_json(vm, "main",
                "[\"Result: 28!\",[9,8,7],true,11,true,true,[\"bytes.bin\",\"deep\"],"
                "[\"ENOENT\",\"EEXIST\",\"EISDIR\",\"ENOTDIR\",\"ENOSPC\",\"ENOENT\"],false,[\"deep\"],true]");
  /* the host sees what the VM wrote */
  char *d;
  size_t n;
  assert_int_equal(sbx_fs_read(sbx_vm_fs(vm), "/out/deep/r.txt", &d, &n), SBX_OK);
  assert_string_equal(d, "Result: 28!");
  free(d);
  sbx_vm_free(vm);
  sbx_library_free(lib);
  sbt_lines_clear(NULL);
}

/* Ticks over a tree: the player libraries with codebase instead of modules; the entry is
 * /main.js, stack traces name "main". */
static void test_sandbox_codebase_ticks(void **state) {
  (void)state;
  sbx_library *cb;
  assert_int_equal(sbx_codebase_library_new(NULL, &cb), SBX_OK);
  const sbx_library *libs[] = {sbx_guards_library(), sbt_console(), cb, sbx_memory_library(), sbx_game_library()};
  sbx_runtime *rt;
  assert_int_equal(sbx_runtime_new_libs(libs, 5, &rt, NULL), SBX_OK);
  sbx_vm *vm;
  assert_int_equal(sbx_vm_new(rt, NULL, &vm), SBX_OK);
  put(vm, "/main.js",
      "const role = require('./roles/harvester');\n"
      "module.exports.loop = function () {\n"
      "  Memory.n = (Memory.n || 0) + 1;\n"
      "  console.log(role.run() + ' ' + Game.time + ' ' + Memory.n);\n"
      "  if (Game.time === 3) throw new Error('tick three');\n"
      "};\n");
  put(vm, "/roles/harvester.js", "exports.run = () => 'harvest';");
  assert_int_equal(sbx_watchdog_start(), SBX_OK);
  char *mem = NULL;
  for (uint64_t t = 1; t <= 3; t++) {
    sbx_tick_in in = {.time = t,
                      .cpu_limit_ms = 100,
                      .tick_limit_ms = 500 * g_scale,
                      .memory = mem,
                      .memory_len = mem ? strlen(mem) : 0};
    sbx_tick_out out;
    sbx_vm_tick(vm, &in, &out);
    char want[64];
    snprintf(want, sizeof want, "harvest %d %d", (int)t, (int)t);
    sbt_expect_line(want);
    if (t < 3) {
      assert_int_equal(out.status, SBX_OK);
    } else {
      assert_int_equal(out.status, SBX_EXCEPTION);
      assert_non_null(strstr(out.error, "tick three"));
      assert_non_null(strstr(out.error, "main:5"));
    }
    assert_true(out.memory_changed);
    free(mem);
    mem = out.memory;
    out.memory = NULL;
    sbx_tick_out_release(&out);
  }
  assert_string_equal(mem, "{\"n\":3}");
  free(mem);
  sbx_watchdog_stop();
  sbx_vm_free(vm);
  sbx_runtime_free(rt);
  sbx_library_free(cb);
  sbt_lines_clear(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_codebase_fs_host_api), cmocka_unit_test(test_sandbox_codebase_load_dir),
      cmocka_unit_test(test_sandbox_codebase_require),     cmocka_unit_test(test_sandbox_codebase_vm_fs),
      cmocka_unit_test(test_sandbox_codebase_ticks),
  };
  int rc = cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
  sbx_library_free(g_console);
  return rc;
}
