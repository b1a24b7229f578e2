/* test_sim.c — the CPU rules players see (Screeps' limit, bucket, tickLimit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "sim.h"

static void test_sim_tick_limit_is_bucket_plus_limit_capped(void **state) {
  (void)state;
  sim_cpu c = {.limit = 100, .bucket = 50};
  assert_true(sim_cpu_tick_limit(&c) == 150);
  c.bucket = 10000;
  assert_true(sim_cpu_tick_limit(&c) == SIM_TICK_LIMIT_MAX);
  c.bucket = -200;
  assert_true(sim_cpu_tick_limit(&c) == 0);
}

static void test_sim_bucket_gains_unused_and_caps(void **state) {
  (void)state;
  sim_cpu c = {.limit = 100, .bucket = 9990};
  sim_cpu_charge(&c, 20); /* +80, capped */
  assert_int_equal(c.bucket, SIM_BUCKET_MAX);
  c.bucket = 0;
  sim_cpu_charge(&c, 30.2); /* 31 ms billed, whole ms rounded up */
  assert_int_equal(c.bucket, 69);
}

static void test_sim_overrun_is_billed_and_skips(void **state) {
  (void)state;
  sim_cpu c = {.limit = 20, .bucket = 100};
  sim_cpu_charge(&c, 500); /* a builtin ignored termination: billed anyway */
  assert_int_equal(c.bucket, 100 + 20 - 500);
  assert_true(sim_cpu_must_skip(&c));
  /* Skipped ticks earn the limit until the bucket is back at or above zero. */
  int skipped = 0;
  while (sim_cpu_must_skip(&c)) {
    sim_cpu_charge(&c, 0);
    skipped++;
  }
  assert_int_equal(skipped, 19); /* -380 + 19*20 = 0 */
  assert_false(sim_cpu_must_skip(&c));
}

static void test_sim_charge_ignores_nan_and_negative(void **state) {
  (void)state;
  sim_cpu c = {.limit = 10, .bucket = 0};
  sim_cpu_charge(&c, NAN);
  assert_int_equal(c.bucket, 10);
  sim_cpu_charge(&c, -5);
  assert_int_equal(c.bucket, 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sim_tick_limit_is_bucket_plus_limit_capped),
      cmocka_unit_test(test_sim_bucket_gains_unused_and_caps),
      cmocka_unit_test(test_sim_overrun_is_billed_and_skips),
      cmocka_unit_test(test_sim_charge_ignores_nan_and_negative),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
