/*
 * test_sandbox_timers.c — the timers library: setTimeout/setInterval/clear*, in due
 * order, with arguments, a maximum of live timers, errors reported without stopping the
 * others; timers fire in runs' drains (the general API's event loop, and inside a tick's
 * budget); a VM without live timers has nothing pending.
 */
#include "test_sandbox_util.h"

typedef struct cb_log {
  int errors, ends;
  char last_error[512];
} cb_log;

static void on_error(sbx_vm *vm, int status, const char *msg, void *ud) {
  cb_log *l = ud;
  l->errors++;
  snprintf(l->last_error, sizeof l->last_error, "%s", msg);
}

static void on_end(sbx_vm *vm, void *ud) {
  ((cb_log *)ud)->ends++;
}

static sbx_vm *new_vm(size_t max_timers, cb_log *log, sbx_library **timers) {
  sbx_timers_options to = {max_timers};
  assert_int_equal(sbx_timers_library_new(&to, timers), SBX_OK);
  const sbx_library *libs[] = {sbt_console(), *timers};
  sbx_vm_options o = sbt_opts();
  o.on_error = on_error;
  o.on_end = on_end;
  o.cb_ud = log;
  sbx_vm *vm = NULL;
  assert_int_equal(sbx_vm_create(libs, 2, &o, &vm, NULL), SBX_OK);
  return vm;
}

static void test_sandbox_timers_order_args_and_clear(void **state) {
  (void)state;
  cb_log log = {0};
  sbx_library *tl;
  sbx_vm *vm = new_vm(0, &log, &tl);
  /* delays scaled with the time budgets: the statements between them run 40x slower under
   * valgrind, and timers fire by due time */
  char code[1024];
  int k = (int)(10 * g_scale);
  snprintf(code, sizeof code,
           "const out = [];\n"
           "setTimeout((a, b) => out.push('t30 ' + a + b), %d, 'x', 'y');\n"
           "setTimeout(() => out.push('t10'), %d);\n"
           "const k = setTimeout(() => out.push('cleared'), 5);\n"
           "clearTimeout(k);\n"
           "setTimeout(() => { out.push('t0'); setTimeout(() => out.push('nested'), 0); }, 0);\n"
           "let n = 0;\n"
           "const iv = setInterval(() => { out.push('iv' + (++n)); if (n === 3) clearInterval(iv); }, 5);\n"
           "return { out: () => out.join(','), ids: () => [typeof k, k > 0] };\n",
           3 * k, k);
  sbt_run_ok(vm, code);
  assert_true(sbx_vm_has_pending(vm));
  assert_int_equal(log.ends, 0);
  sbt_drain_all(vm, 5000 * g_scale);
  assert_false(sbx_vm_has_pending(vm));
  assert_int_equal(log.ends, 1);
  /* t0 before t10 before t30; the interval's three runs interleave by due time */
  sbx_result r;
  sbx_vm_call(vm, "out", NULL, 0, 1000 * g_scale, &r);
  sbt_expect_status(&r, SBX_OK);
  const char *s = r.value->u.string;
  assert_non_null(strstr(s, "nested"));
  assert_true(strstr(s, "t0") < strstr(s, "nested")); /* the next round, after t0 */
  assert_null(strstr(s, "cleared"));
  assert_true(strstr(s, "t0") < strstr(s, "t10") && strstr(s, "t10") < strstr(s, "t30 xy"));
  assert_non_null(strstr(s, "iv3"));
  assert_null(strstr(s, "iv4"));
  sbx_result_release(&r);
  sbt_call_json(vm, "ids", "[\"number\",true]");
  assert_int_equal(log.errors, 0);
  sbx_vm_free(vm);
  sbx_library_free(tl);
  sbt_lines_clear(NULL);
}

static void test_sandbox_timers_limit_and_errors(void **state) {
  (void)state;
  cb_log log = {0};
  sbx_library *tl;
  sbx_vm *vm = new_vm(3, &log, &tl);
  sbt_run_ok(vm,
             "const ids = [setTimeout(() => { throw new Error('cb boom'); }, 1), setTimeout(() => console.log('second "
             "ran'), 2),\n"
             "             setTimeout(() => {}, 3)];\n"
             "let msg = '';\n"
             "try { setTimeout(() => {}, 1); } catch (e) { msg = e.name + ': ' + e.message; }\n"
             "let bad = ''; try { setTimeout('1+1', 1); } catch (e) { bad = e.name; }\n"
             "return { msg: () => [msg, bad] };\n");
  sbt_call_json(vm, "msg", "[\"RangeError: Too many timers: at most 3 may be live at once\",\"TypeError\"]");
  sbt_drain_all(vm, 5000 * g_scale);
  /* the throwing callback is reported (console error line and on_error); the next still runs */
  sbt_expect_line("Error: cb boom");
  sbt_expect_line("second ran");
  assert_true(log.errors >= 1);
  assert_non_null(strstr(log.last_error, "cb boom"));
  assert_null(strstr(log.last_error, "isoworld:"));
  /* room again once they fired */
  sbt_run_ok(vm, "setTimeout(() => console.log('room again'), 1);");
  sbt_drain_all(vm, 5000 * g_scale);
  sbt_expect_line("room again");
  sbx_vm_free(vm);
  sbx_library_free(tl);
  sbt_lines_clear(NULL);
}

/* In the game's ticks: a timer due now fires inside the same tick (its line is among the
 * tick's), one due later waits for a later tick, and timer callbacks spend the tick's
 * CPU budget like the loop does. */
static void test_sandbox_timers_inside_ticks(void **state) {
  (void)state;
  sbx_library *tl;
  assert_int_equal(sbx_timers_library_new(NULL, &tl), SBX_OK);
  const sbx_library *libs[] = {sbx_player_library(), tl};
  sbx_runtime *rt;
  char *err = NULL;
  assert_int_equal(sbx_runtime_new_libs(libs, 2, &rt, &err), SBX_OK);
  sbx_vm *vm;
  assert_int_equal(sbx_vm_new(rt, NULL, &vm), SBX_OK);
  const char *src =
      "module.exports.loop = function () {\n"
      "  if (Game.time === 1) { setTimeout(() => console.log('soon ' + Game.time), 0);\n"
      "                         setTimeout(() => console.log('later ' + Game.time), 150); }\n"
      "  if (Game.time === 4) setInterval(() => { for (;;) {} }, 1);\n"
      "  console.log('loop ' + Game.time);\n"
      "};\n";
  sbx_module m = {"main", src, strlen(src), false};
  assert_int_equal(sbx_vm_set_code(vm, &m, 1), SBX_OK);
  assert_int_equal(sbx_watchdog_start(), SBX_OK);
  for (uint64_t t = 1; t <= 5; t++) {
    if (t == 3) usleep((useconds_t)(200 * g_scale * 1000));
    if (t == 5) usleep(10 * 1000);
    sbx_tick_in in = {.time = t, .cpu_limit_ms = 100, .tick_limit_ms = (t == 5 ? 100 : 500) * g_scale, .bucket = 1};
    sbx_tick_out out;
    sbx_vm_tick(vm, &in, &out);
    if (t < 5 && out.status != SBX_OK) {
      fprintf(stderr, "tick %d: status %d %s\n", (int)t, out.status, out.error ? out.error : "");
      for (size_t i = 0; i < out.n_lines; i++) fprintf(stderr, "  %s\n", out.lines[i].text);
    }
    if (t < 5) assert_int_equal(out.status, SBX_OK);
    if (t == 1) {
      assert_int_equal(out.n_lines, 2);
      assert_string_equal(out.lines[0].text, "loop 1");
      assert_string_equal(out.lines[1].text, "soon 1");
    } else if (t == 2) {
      assert_int_equal(out.n_lines, 1);
      assert_string_equal(out.lines[0].text, "loop 2");
    } else if (t == 3) {
      assert_int_equal(out.n_lines, 2);
      assert_string_equal(out.lines[1].text, "later 3");
    } else if (t == 5) {
      /* the interval set at tick 4 runs away at tick 5: stopped within the tick's budget */
      assert_int_equal(out.status, SBX_CPU_LIMIT);
      assert_true(out.wall_ns < (uint64_t)(3000 * g_scale * 1e6));
    }
    sbx_tick_out_release(&out);
  }
  sbx_watchdog_stop();
  sbx_vm_free(vm);
  sbx_runtime_free(rt);
  sbx_library_free(tl);
}

/* An interval keeps the event loop alive until it is cleared from outside. */
static void test_sandbox_timers_interval_keeps_vm_pending(void **state) {
  (void)state;
  cb_log log = {0};
  sbx_library *tl;
  sbx_vm *vm = new_vm(0, &log, &tl);
  sbt_run_ok(vm,
             "let n = 0; const iv = setInterval(() => n++, 2);\n"
             "return { n: () => n, stop: () => { clearInterval(iv); return n; } };");
  for (int i = 0; i < 5; i++) {
    sbx_result r;
    assert_int_equal(sbx_vm_run_pending(vm, 1000 * g_scale, &r), SBX_OK);
    sbx_result_release(&r);
    assert_true(sbx_vm_has_pending(vm));
  }
  sbx_result r;
  sbx_vm_call(vm, "stop", NULL, 0, 1000 * g_scale, &r);
  sbt_expect_status(&r, SBX_OK);
  assert_true(r.value->u.number >= 4);
  sbx_result_release(&r);
  assert_false(sbx_vm_has_pending(vm));
  sbx_vm_free(vm);
  sbx_library_free(tl);
  sbt_lines_clear(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_timers_order_args_and_clear),
      cmocka_unit_test(test_sandbox_timers_limit_and_errors),
      cmocka_unit_test(test_sandbox_timers_inside_ticks),
      cmocka_unit_test(test_sandbox_timers_interval_keeps_vm_pending),
  };
  int rc = cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
  sbx_library_free(g_console);
  return rc;
}
