/*
 * fuzz_world.c — libFuzzer target: stored world records from a damaged database. The
 * input is a sequence of records, each a key byte (which of KEYS), a 16-bit little-endian
 * length and the bytes; the decoder must refuse or accept without reading out of bounds,
 * and an accepted world must run a tick.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

static const char *const KEYS[] = {"meta", "terrain:W1N1", "room:W1N1", "terrain:W2N1", "room:W2N1", "x"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sim_record r[16];
  size_t n = 0, i = 0;
  while (n < 16 && size - i >= 3) {
    size_t len = (size_t)data[i + 1] | (size_t)data[i + 2] << 8;
    if (len > size - i - 3) len = size - i - 3;
    r[n++] = (sim_record){KEYS[data[i] % 6], data + i + 3, len};
    i += 3 + len;
  }
  sim_world *w;
  char err[SIM_ERRMSG_MAX];
  if (sim_world_load(sim_default_game(), r, n, &w, err) != SIM_OK) return 0;
  if (sim_world_tick(w, sim_world_time(w) + 1, NULL, 0) != SIM_OK) abort();
  sim_world_free(w);
  return 0;
}
