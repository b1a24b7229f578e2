/*
 * game.c — the generic half of the game-module interface: status texts, byte buffers,
 * the state hash function, and the sim_world_* calls that dispatch through a world's
 * game table. Nothing here knows any game's rules.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ status */

const char *sim_strerror(int status) {
  switch (status) {
#define SIM__TEXT(name, value, text) \
  case value: return text;
    SIM_STATUS_MAP(SIM__TEXT)
#undef SIM__TEXT
    default: return "unknown error";
  }
}

/* ------------------------------------------------------------------ buffers */

void sim_buf_init(sim_buf *b) {
  b->data = NULL, b->len = b->cap = 0;
}

void sim_buf_release(sim_buf *b) {
  if (!b) return;
  free(b->data);
  sim_buf_init(b);
}

int sim_record_list_add(sim_record_list *l, const char *key, const void *data, size_t len) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    sim_record *r = realloc(l->r, cap * sizeof *r);
    if (!r) return SIM_NOMEM;
    l->r = r;
    l->cap = cap;
  }
  char *k = strdup(key);
  if (!k) return SIM_NOMEM;
  l->r[l->n++] = (sim_record){k, data, len};
  return SIM_OK;
}

void sim_record_list_release(sim_record_list *l) {
  for (size_t i = 0; i < l->n; i++) free((char *)l->r[i].key);
  free(l->r);
  l->r = NULL;
  l->n = l->cap = 0;
}

void sim_buf_clear(sim_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = 0;
}

int sim_buf_reserve(sim_buf *b, size_t extra) {
  if (extra >= SIZE_MAX / 4 - b->len) return SIM_NOMEM;
  if (b->len + extra + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return SIM_NOMEM;
    b->data = p;
    b->cap = cap;
  }
  return SIM_OK;
}

int sim_buf_append(sim_buf *b, const void *data, size_t len) {
  if (sim_buf_reserve(b, len) != SIM_OK) return SIM_NOMEM;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = 0;
  return SIM_OK;
}

/* ------------------------------------------------------------------ hash */

/* A MurmurHash3-style 64-bit hash over little-endian words: fast enough to hash every
 * changed room every tick, and defined on bytes so it is the same on every machine. */
static uint64_t rotl64(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

static uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

uint64_t sim_hash_bytes(const void *data, size_t len, uint64_t seed) {
  const uint8_t *p = data;
  const uint64_t c1 = 0x87c37b91114253d5ull, c2 = 0x4cf5ad432745937full;
  uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ull);
  while (len >= 8) {
    uint64_t k = 0;
    for (int i = 7; i >= 0; i--) k = (k << 8) | p[i];
    k *= c1;
    k = rotl64(k, 31);
    k *= c2;
    h ^= k;
    h = rotl64(h, 27) * 5 + 0x52dce729;
    p += 8;
    len -= 8;
  }
  if (len) {
    uint64_t k = 0;
    for (size_t i = len; i-- > 0;) k = (k << 8) | p[i];
    k *= c1;
    k = rotl64(k, 31);
    k *= c2;
    h ^= k;
  }
  return fmix64(h);
}

/* ------------------------------------------------------------------ dispatch */

int sim_world_create(const sim_game *g, const sim_world_options *o, sim_world **out, char *err) {
  if (err) err[0] = 0;
  if (!g || !out) return SIM_INVALID;
  *out = NULL;
  sim_world_options def = {0};
  return g->create(o ? o : &def, out, err);
}

int sim_world_load(const sim_game *g, const sim_record *records, size_t n, sim_world **out, char *err) {
  if (err) err[0] = 0;
  if (!g || !out || (n && !records)) return SIM_INVALID;
  *out = NULL;
  return g->load(records, n, out, err);
}

void sim_world_free(sim_world *w) {
  if (w) w->game->free(w);
}

const sim_game *sim_world_game(const sim_world *w) {
  return w ? w->game : NULL;
}

int sim_world_save(sim_world *w, bool all, sim_put_fn put, void *ud) {
  if (!w || !put) return SIM_INVALID;
  return w->game->save(w, all, put, ud);
}

void sim_world_saved(sim_world *w) {
  if (w) w->game->saved(w);
}

int sim_world_add_player(sim_world *w, const sim_player_spec *p, char *room_out) {
  if (!w || !p) return SIM_INVALID;
  return w->game->add_player(w, p, room_out);
}

int sim_world_remove_player(sim_world *w, uint64_t player) {
  if (!w) return SIM_INVALID;
  return w->game->remove_player(w, player);
}

int sim_world_suggest_room(const sim_world *w, char *room_out) {
  if (!w || !room_out) return SIM_INVALID;
  return w->game->suggest_room(w, room_out);
}

size_t sim_world_room_count(const sim_world *w) {
  return w ? w->game->room_count(w) : 0;
}

const char *sim_world_room_name(const sim_world *w, size_t room) {
  if (!w || room >= w->game->room_count(w)) return NULL;
  return w->game->room_name(w, room);
}

int sim_world_room_index(const sim_world *w, const char *name, size_t *out) {
  if (!w || !name || !out) return SIM_INVALID;
  return w->game->room_index(w, name, out);
}

int sim_world_visible_rooms(const sim_world *w, uint64_t player, size_t *out, size_t cap, size_t *n) {
  if (!w || !n || (cap && !out)) return SIM_INVALID;
  return w->game->visible_rooms(w, player, out, cap, n);
}

int sim_world_owned_rooms(const sim_world *w, uint64_t player, size_t *out, size_t cap, size_t *n) {
  if (!w || !n || (cap && !out)) return SIM_INVALID;
  return w->game->owned_rooms(w, player, out, cap, n);
}

int sim_world_room_view(const sim_world *w, size_t room, sim_buf *out) {
  if (!w || !out || room >= w->game->room_count(w)) return SIM_INVALID;
  return w->game->room_view(w, room, out);
}

int sim_world_room_terrain(const sim_world *w, size_t room, sim_buf *out) {
  if (!w || !out || room >= w->game->room_count(w)) return SIM_INVALID;
  return w->game->room_terrain(w, room, out);
}

int sim_world_room_objects(const sim_world *w, size_t room, sim_buf *out) {
  if (!w || !out || room >= w->game->room_count(w)) return SIM_INVALID;
  return w->game->room_objects(w, room, out);
}

int sim_world_tick(sim_world *w, uint64_t time, sim_intents *batches, size_t n) {
  if (!w || (n && !batches)) return SIM_INVALID;
  return w->game->tick(w, time, batches, n);
}

uint64_t sim_world_time(const sim_world *w) {
  return w ? w->game->time(w) : 0;
}

uint64_t sim_world_hash(const sim_world *w) {
  return w ? w->game->hash(w) : 0;
}

uint64_t sim_world_seed(const sim_world *w) {
  return w && w->game->seed ? w->game->seed(w) : 0;
}

sim_host_fn sim_world_host_fn(const sim_world *w, const char *name) {
  if (!w || !name) return NULL;
  for (size_t i = 0; i < w->game->n_host_fns; i++)
    if (strcmp(w->game->host_fns[i].name, name) == 0) return w->game->host_fns[i].fn;
  return NULL;
}
