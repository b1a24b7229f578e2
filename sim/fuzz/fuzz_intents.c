/*
 * fuzz_intents.c — libFuzzer target: one player's intent bytes, straight from a hostile
 * isolate, applied to a small world with creeps, a spawn and sites. Every input starts
 * from the same saved world; after the tick the world must save and load again with the
 * same hash (the decoder checks every invariant the rules rely on).
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DISOWORLD_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_intents && build-fuzz/bin/fuzz_intents -max_total_time=60
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct recs {
  sim_record r[64];
  size_t n;
} recs;

static int put(const char *key, const void *data, size_t len, void *ud) {
  recs *rs = ud;
  if (rs->n == 64) return -1;
  void *d = malloc(len ? len : 1);
  memcpy(d, data, len);
  rs->r[rs->n++] = (sim_record){strdup(key), d, len};
  return 0;
}

static void drop(recs *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    free((void *)rs->r[i].key);
    free((void *)rs->r[i].data);
  }
  rs->n = 0;
}

static recs start;

/* The starting world: alice in W1N1 with a few creeps made by her spawn. */
static void init(void) {
  sim_world *w;
  sim_world_options o = {.seed = 5, .width = 2, .height = 1};
  if (sim_world_create(sim_default_game(), &o, &w, NULL) != SIM_OK) abort();
  sim_player_spec a = {.id = 1, .username = "alice", .room = "W1N1", .x = -1};
  sim_player_spec b = {.id = 2, .username = "bob", .room = "W2N1", .x = -1};
  if (sim_world_add_player(w, &a, NULL) != SIM_OK || sim_world_add_player(w, &b, NULL) != SIM_OK) abort();
  size_t room;
  sim_world_room_index(w, "W1N1", &room);
  sim_buf v;
  sim_buf_init(&v);
  sim_world_room_view(w, room, &v);
  const char *sp = strstr(v.data, "\"type\":\"spawn\"");
  char id[16] = "";
  if (sp) memcpy(id, sp - 24, 15); /* {"_id":"<15 hex>","type":"spawn" */
  sim_buf_release(&v);
  for (int t = 0; t < 60; t++) {
    char text[256];
    snprintf(text, sizeof text, "[[12,\"%s\",\"c%d\",[\"work\",\"carry\",\"move\"],null],[13,\"W1N1\",%d,20,\"road\"]]", id, t,
             5 + t % 40);
    sim_intents i = {.player = 1, .data = text, .len = strlen(text)};
    if (sim_world_tick(w, sim_world_time(w) + 1, &i, 1) != SIM_OK) abort();
  }
  if (sim_world_save(w, true, put, &start) != SIM_OK) abort();
  sim_world_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!start.n) init();
  sim_world *w;
  if (sim_world_load(sim_default_game(), start.r, start.n, &w, NULL) != SIM_OK) abort();
  sim_intents b[2] = {{.player = 1, .data = (const char *)data, .len = size},
                      {.player = 2, .data = (const char *)data, .len = size / 2}};
  if (sim_world_tick(w, sim_world_time(w) + 1, b, 2) != SIM_OK) abort();
  recs after = {0};
  if (sim_world_save(w, true, put, &after) != SIM_OK) abort();
  sim_world *again;
  if (sim_world_load(sim_default_game(), after.r, after.n, &again, NULL) != SIM_OK) abort(); /* invariants broken */
  if (sim_world_hash(again) != sim_world_hash(w)) abort();
  sim_world_free(again);
  drop(&after);
  sim_world_free(w);
  return 0;
}
