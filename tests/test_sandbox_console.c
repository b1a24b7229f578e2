/*
 * test_sandbox_console.c — the console library: every level reaches the host's sink, in
 * order, with the arguments formatted as on Screeps; without a sink, lines go to a tick's
 * capped buffer; with a sink in ticks, the sink gets them instead. No host object is
 * reachable through console.
 */
#include "test_sandbox_util.h"

static void test_sandbox_console_levels_to_sink(void **state) {
  (void)state;
  const sbx_library *libs[] = {sbt_console()};
  sbx_vm_options o = sbt_opts();
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 1, &o, &vm, NULL), SBX_OK);
  sbt_run_ok(vm,
             "console.log('a', 1, true, null, undefined, {}, [1, 2]);\n"
             "console.info('i'); console.warn('w'); console.error('e'); console.debug('d');\n"
             "console.log('ünïcödé ✓');\n"
             "console.log({ toString() { throw new Error('no'); } });\n"
             "console.log(Object.getOwnPropertyNames(console).sort().join());\n");
  static const char *want[] = {
      "a 1 true null undefined [object Object] 1,2", "i", "w", "e", "d", "ünïcödé ✓", "[object]",
      "debug,error,info,log,logUnsafe,warn"};
  static const int levels[] = {SBX_LOG, SBX_INFO, SBX_WARN, SBX_ERROR, SBX_DEBUG, SBX_LOG, SBX_LOG, SBX_LOG};
  if (g_lines.n != 8) sbt_lines_dump(NULL);
  assert_int_equal(g_lines.n, 8);
  for (int i = 0; i < 8; i++) {
    assert_string_equal(g_lines.text[i], want[i]);
    assert_int_equal(g_lines.level[i], levels[i]);
    assert_ptr_equal(g_lines.vm[i], vm);
  }
  sbt_lines_clear(NULL);
  /* lines of a failing run come before the failure; the failure is returned, not logged */
  sbx_result r;
  sbx_vm_run(vm, "console.log('before'); null.x;", "broken", &r);
  sbt_expect_status(&r, SBX_EXCEPTION);
  sbt_expect_error(&r, "TypeError");
  sbt_expect_error(&r, "broken:1");
  sbx_result_release(&r);
  assert_int_equal(g_lines.n, 1);
  assert_string_equal(g_lines.text[0], "before");
  sbx_vm_free(vm);
  sbt_lines_clear(NULL);
}

/* In ticks: with a sink, lines go to the sink and not into sbx_tick_out.lines; the
 * player console (no sink) keeps the tick's capped buffer, as test_sandbox.c checks. */
static void test_sandbox_console_ticks(void **state) {
  (void)state;
  const sbx_library *libs[] = {sbx_guards_library(), sbt_console(), sbx_modules_library(), sbx_memory_library(),
                               sbx_game_library()};
  sbx_runtime *rt;
  assert_int_equal(sbx_runtime_new_libs(libs, 5, &rt, NULL), SBX_OK);
  sbx_vm *vm;
  assert_int_equal(sbx_vm_new(rt, NULL, &vm), SBX_OK);
  const char *src =
      "module.exports.loop = function () { for (let i = 0; i < 300; i++) console.log('t' + Game.time + ' ' + i); };";
  sbx_module m = {"main", src, strlen(src), false};
  assert_int_equal(sbx_vm_set_code(vm, &m, 1), SBX_OK);
  assert_int_equal(sbx_watchdog_start(), SBX_OK);
  sbx_tick_in in = {.time = 7, .cpu_limit_ms = 100, .tick_limit_ms = 1000 * g_scale};
  sbx_tick_out out;
  assert_int_equal(sbx_vm_tick(vm, &in, &out), SBX_OK);
  assert_int_equal(out.n_lines, 0);
  sbx_tick_out_release(&out);
  assert_int_equal(g_lines.n, SBT_MAX_LINES); /* the sink got all of them (it keeps 256) */
  assert_string_equal(g_lines.text[0], "t7 0");
  sbx_watchdog_stop();
  sbx_vm_free(vm);
  sbx_runtime_free(rt);
  sbt_lines_clear(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_console_levels_to_sink),
      cmocka_unit_test(test_sandbox_console_ticks),
  };
  int rc = cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
  sbx_library_free(g_console);
  return rc;
}
