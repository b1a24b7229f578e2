/*
 * test_sandbox_measure.c — measurement: heap statistics (used, total, limit, percentage,
 * external memory), CPU and wall totals, response time (an idle vm answers at once, a
 * busy one at its next interrupt check, a stuck one not at all — and is stopped past
 * the response limit), and a master aggregating many vms.
 */
#include "test_sandbox_util.h"

typedef struct caught {
  int catastrophic, status;
} caught;

static void on_cat(sbx_vm *vm, int st, const char *msg, void *ud) {
  ((caught *)ud)->catastrophic++;
  ((caught *)ud)->status = st;
}

static sbx_vm *new_vm(const sbx_library *measure, size_t heap_mb, caught *c) {
  const sbx_library *libs[] = {sbt_console(), measure};
  sbx_vm_options o = sbt_opts();
  o.heap_limit_mb = heap_mb;
  o.on_catastrophic_error = on_cat;
  o.cb_ud = c;
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, measure ? 2 : 1, &o, &vm, NULL), SBX_OK);
  return vm;
}

static void test_sandbox_measure_stats(void **state) {
  (void)state;
  caught c = {0};
  sbx_vm *vm = new_vm(NULL, 32, &c);
  sbx_stats st;
  assert_int_equal(sbx_vm_stats(vm, &st), SBX_OK);
  assert_int_equal(st.runs, 0);
  assert_true(st.response_ms < 0); /* never pinged */
  sbt_run_ok(vm,
             "globalThis.keep = new ArrayBuffer(3 << 20);\n"
             "globalThis.junk = []; for (let i = 0; i < 2e4; i++) junk.push({ i, s: 'x' + i });\n"
             "const t = Date.now(); while (Date.now() - t < 60) {}\n");
  assert_int_equal(sbx_vm_stats(vm, &st), SBX_OK);
  assert_int_equal(st.runs, 1);
  assert_true(st.heap_used > (1u << 20));
  assert_true(st.heap_total >= st.heap_used);
  assert_int_equal(st.heap_limit, 32u << 20);
  assert_true(st.heap_used_pct > 0 && st.heap_used_pct < 100);
  assert_true(st.external >= (3u << 20));
  assert_true(st.cpu_ns >= 50000000ull);
  assert_true(st.wall_ns >= st.cpu_ns / 2);
  sbt_run_ok(vm, "junk.length = 0;");
  sbx_stats st2;
  sbx_vm_stats(vm, &st2);
  assert_int_equal(st2.runs, 2);
  assert_true(st2.cpu_ns >= st.cpu_ns);
  sbx_vm_free(vm);
}

typedef struct bg {
  sbx_vm *vm;
  const char *fn;
  double timeout;
  int status;
} bg;

static void *call_bg(void *arg) {
  bg *b = arg;
  sbx_result r;
  b->status = sbx_vm_call(b->vm, b->fn, NULL, 0, b->timeout, &r);
  sbx_result_release(&r);
  return NULL;
}

static void test_sandbox_measure_response_time(void **state) {
  (void)state;
  caught c = {0};
  sbx_library *m;
  sbx_measure_options mo = {.response_limit_ms = 150 * g_scale};
  assert_int_equal(sbx_measure_library_new(&mo, &m), SBX_OK);
  sbx_vm *vm = new_vm(m, 256, &c);
  sbt_run_ok(vm,
             "const a = []; for (let i = 0; i < 1e6; i++) a.push(Math.random());\n"
             "return { busy() { const t = Date.now(); while (Date.now() - t < 400) {} return 1; },\n"
             "         stuck() { a.sort(); return 2; } };\n");
  /* idle: answered at once */
  assert_int_equal(sbx_vm_ping(vm), SBX_OK);
  sbx_stats st;
  sbx_vm_stats(vm, &st);
  assert_false(st.response_pending);
  assert_true(st.response_ms >= 0 && st.response_ms < 20 * g_scale);
  /* busy in JavaScript: answered at the next interrupt check, long before the call ends */
  bg b = {vm, "busy", 5000 * g_scale, 1};
  pthread_t t;
  pthread_create(&t, NULL, call_bg, &b);
  usleep((useconds_t)(100 * g_scale * 1000));
  assert_int_equal(sbx_vm_ping(vm), SBX_OK);
  usleep((useconds_t)(50 * g_scale * 1000));
  sbx_vm_stats(vm, &st);
  assert_false(st.response_pending);
  assert_true(st.response_ms < 40 * g_scale);
  pthread_join(t, NULL);
  assert_int_equal(b.status, SBX_OK);
  /* stuck in a builtin that does not check interrupts (a default-comparator sort of a
   * million numbers): the ping stays unanswered; past the limit the vm is stopped */
  b = (bg){vm, "stuck", 60000 * g_scale, 1};
  pthread_create(&t, NULL, call_bg, &b);
  usleep((useconds_t)(80 * g_scale * 1000));
  assert_int_equal(sbx_vm_ping(vm), SBX_OK);
  double t0 = sbt_now_ms();
  bool seen_pending = false;
  while (sbt_now_ms() - t0 < 400 * g_scale) {
    sbx_vm_stats(vm, &st);
    if (st.response_pending && st.response_ms > 50 * g_scale) seen_pending = true;
    usleep(20000);
  }
  pthread_join(t, NULL);
  assert_true(seen_pending);
  assert_int_equal(b.status, SBX_RESPONSE_LIMIT);
  assert_int_equal(c.catastrophic, 1);
  assert_int_equal(c.status, SBX_RESPONSE_LIMIT);
  assert_false(sbx_vm_has_isolate(vm));
  sbx_vm_free(vm);
  sbx_library_free(m);
}

static void test_sandbox_measure_master(void **state) {
  (void)state;
  sbx_measure_master *master;
  assert_int_equal(sbx_measure_master_new(&master), SBX_OK);
  sbx_library *m;
  sbx_measure_options mo = {.master = master};
  assert_int_equal(sbx_measure_library_new(&mo, &m), SBX_OK);
  caught c = {0};
  sbx_vm *vms[3];
  for (int i = 0; i < 3; i++) {
    vms[i] = new_vm(m, 16 * (size_t)(i + 1), &c);
    char code[128];
    snprintf(code, sizeof code, "globalThis.b = new ArrayBuffer(%d << 20);", i + 1);
    sbt_run_ok(vms[i], code);
  }
  sbx_measure_totals tot;
  sbx_measure_master_stats(master, &tot);
  assert_int_equal(tot.count, 3);
  assert_int_equal(tot.response_avg_ms, 0); /* nobody pinged yet */
  sbx_measure_master_ping_all(master);
  sbx_measure_master_stats(master, &tot);
  assert_int_equal(tot.count, 3);
  assert_int_equal(tot.heap_limit, (16u + 32u + 48u) << 20);
  assert_true(tot.external >= (6u << 20));
  assert_true(tot.heap_used > 0 && tot.heap_used_pct > 0);
  assert_true(tot.response_max_ms >= tot.response_avg_ms && tot.response_avg_ms >= 0);
  assert_true(tot.cpu_ns > 0);
  sbx_vm_free(vms[0]); /* leaves the master */
  sbx_measure_master_stats(master, &tot);
  assert_int_equal(tot.count, 2);
  assert_int_equal(tot.heap_limit, (32u + 48u) << 20);
  sbx_measure_master_free(master); /* the others leave it */
  sbx_vm_free(vms[1]);
  sbx_vm_free(vms[2]);
  sbx_library_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_measure_stats),
      cmocka_unit_test(test_sandbox_measure_response_time),
      cmocka_unit_test(test_sandbox_measure_master),
  };
  int rc = cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
  sbx_library_free(g_console);
  return rc;
}
