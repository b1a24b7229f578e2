/*
 * cpu.c — Screeps' CPU accounting rules. Pure arithmetic on sim_cpu values; the
 * clocks that measure `used` live in the sandbox.
 */
#include "sim.h"

#include <math.h>

double sim_cpu_tick_limit(const sim_cpu *c) {
  double t = (double)c->bucket + (double)c->limit;
  if (t > SIM_TICK_LIMIT_MAX) t = SIM_TICK_LIMIT_MAX;
  return t < 0 ? 0 : t;
}

bool sim_cpu_must_skip(const sim_cpu *c) { return c->bucket < 0; }

void sim_cpu_charge(sim_cpu *c, double used_ms) {
  if (!(used_ms >= 0)) used_ms = 0; /* NaN or negative: nothing used */
  /* Whole milliseconds, rounded up, as the player is told (Game.cpu.getUsed is exact). */
  int64_t used = (int64_t)ceil(used_ms);
  int64_t b = c->bucket + (int64_t)c->limit - used;
  if (b > SIM_BUCKET_MAX) b = SIM_BUCKET_MAX;
  c->bucket = b;
}
