/*
 * views.c — per-tick sharing of room views. A room's view depends only on the world, so
 * it is built once per tick, on first demand, and the same bytes go to every player who
 * sees the room. The buffers live across ticks (reset only empties them) so a steady
 * world builds its views without allocating.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

typedef struct view_slot {
  sim_buf text;
  bool built;
} view_slot;

struct sim_views {
  const sim_world *world;
  view_slot *slots;
  size_t n_slots;
  size_t bytes, built;
};

int sim_views_new(sim_views **out) {
  if (!out) return SIM_INVALID;
  *out = calloc(1, sizeof **out);
  return *out ? SIM_OK : SIM_NOMEM;
}

void sim_views_free(sim_views *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n_slots; i++) sim_buf_release(&v->slots[i].text);
  free(v->slots);
  free(v);
}

void sim_views_reset(sim_views *v, const sim_world *w) {
  v->world = w;
  for (size_t i = 0; i < v->n_slots; i++) {
    v->slots[i].built = false;
    sim_buf_clear(&v->slots[i].text);
  }
  v->bytes = v->built = 0;
}

static int ensure_slots(sim_views *v, size_t n) {
  if (n <= v->n_slots) return SIM_OK;
  view_slot *s = realloc(v->slots, n * sizeof *s);
  if (!s) return SIM_NOMEM;
  for (size_t i = v->n_slots; i < n; i++) {
    sim_buf_init(&s[i].text);
    s[i].built = false;
  }
  v->slots = s;
  v->n_slots = n;
  return SIM_OK;
}

static int build(sim_views *v, const sim_world *w, size_t room) {
  view_slot *s = &v->slots[room];
  if (s->built) return SIM_OK;
  sim_buf_clear(&s->text);
  int rc = sim_world_room_view(w, room, &s->text);
  if (rc != SIM_OK) return rc;
  if (!s->text.data && (rc = sim_buf_append(&s->text, "", 0)) != SIM_OK) return rc;
  s->built = true;
  v->bytes += s->text.len;
  v->built++;
  return SIM_OK;
}

/* The player's visible rooms into *idx (a small stack array or a malloc'd one). */
static int rooms_of(const sim_world *w, uint64_t player, size_t *stack, size_t stack_cap, size_t **idx, size_t *n) {
  *idx = stack;
  int rc = sim_world_visible_rooms(w, player, stack, stack_cap, n);
  if (rc != SIM_OK || *n <= stack_cap) return rc;
  size_t *heap = malloc(*n * sizeof *heap);
  if (!heap) return SIM_NOMEM;
  size_t cap = *n;
  if ((rc = sim_world_visible_rooms(w, player, heap, cap, n)) != SIM_OK || *n > cap) {
    free(heap);
    return rc != SIM_OK ? rc : SIM_INVALID; /* the world changed under us */
  }
  *idx = heap;
  return SIM_OK;
}

int sim_views_build_all(sim_views *v, const sim_world *w, const uint64_t *players, size_t n) {
  if (!v || !w || (n && !players)) return SIM_INVALID;
  if (v->world != w) sim_views_reset(v, w);
  int rc = ensure_slots(v, sim_world_room_count(w));
  for (size_t p = 0; rc == SIM_OK && p < n; p++) {
    size_t stack[64], *idx, k;
    if ((rc = rooms_of(w, players[p], stack, 64, &idx, &k)) != SIM_OK) break;
    for (size_t i = 0; rc == SIM_OK && i < k; i++) rc = build(v, w, idx[i]);
    if (idx != stack) free(idx);
  }
  return rc;
}

int sim_views_for_player(sim_views *v, const sim_world *w, uint64_t player, sim_view_ref *out, size_t cap, size_t *n) {
  if (!v || !w || !n || (cap && !out)) return SIM_INVALID;
  if (v->world != w) sim_views_reset(v, w);
  int rc = ensure_slots(v, sim_world_room_count(w));
  if (rc != SIM_OK) return rc;
  size_t stack[64], *idx, k;
  if ((rc = rooms_of(w, player, stack, 64, &idx, &k)) != SIM_OK) return rc;
  for (size_t i = 0; rc == SIM_OK && i < k; i++) {
    if ((rc = build(v, w, idx[i])) != SIM_OK) break;
    if (i < cap) out[i] = (sim_view_ref){idx[i], v->slots[idx[i]].text.data, v->slots[idx[i]].text.len};
  }
  *n = k;
  if (idx != stack) free(idx);
  return rc;
}

size_t sim_views_bytes(const sim_views *v) {
  return v ? v->bytes : 0;
}
size_t sim_views_rooms_built(const sim_views *v) {
  return v ? v->built : 0;
}
