/*
 * world.c — the game world inside the server: its life on the tick thread, its part of
 * each tick, and its changes made by ops.
 *
 * The world (sim.h, the default game) lives in RAM, owned by the tick thread, as a
 * write-through copy of its records in the store (store_world_*): loaded at start, or
 * generated for a store that has none (--world-size, --world-seed). A tick (tick.c):
 *   srv_world_begin_tick   each visible room's view built once (sim_views) and wrapped in
 *                          a blob shared by every player who sees the room
 *   srv_world_run_data     a job's sbx_lib_data: the world, the player, its views
 *   srv_world_apply        every player's intents, validated and applied (sim_world_tick)
 *   srv_world_save         the rooms that changed, into the tick's write txn
 *   srv_world_committed    after the commit (srv_world_rollback after a failure)
 * Ops that change the world (a player placed, respawned, a world reset) change it in
 * their prepare and save it into their own txn; ops.c then calls committed or rollback,
 * and a rollback reloads the world from the last commit. Players' host functions read the
 * world from the worker threads during the run phase only, when nothing changes it.
 */
#include "server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct srv_world {
  sim_world *w;
  sbx_library *lib;
  sim_views *views;
  sbx_blob **blobs; /* per room index, this tick's view (NULL: not built) */
  size_t n_blobs;
  bool unsaved; /* changed by an op whose txn is not committed yet */
  uint32_t size; /* rooms a side (square worlds), Game.map.getWorldSize() */
};

/* ------------------------------------------------------------------ loading */

/* store_world_iter: each record into a sim_record_list (data borrowed from the txn). */
static int collect(const char *key, const void *data, size_t len, void *ud) {
  return sim_record_list_add(ud, key, data, len) == SIM_OK ? 0 : STORE_NOMEM;
}

static int put_record(const char *key, const void *data, size_t len, void *ud) {
  return store_world_put(ud, key, data, len);
}

uint32_t srv_world_side(size_t rooms) {
  uint32_t side = 0;
  while ((size_t)side * side < rooms) side++;
  return side;
}

static uint32_t side_of(const sim_world *w) {
  return srv_world_side(sim_world_room_count(w));
}

/* The world as committed in txn: 1 loaded, 0 the store has none, < 0 an error (logged). */
static int load(srv *s, store_txn *txn, sim_world **out) {
  sim_record_list l = {0};
  int rc = store_world_iter(txn, NULL, collect, &l);
  if (rc != STORE_OK) {
    sim_record_list_release(&l);
    srv_log("world: cannot read its records: %s", store_strerror(rc));
    return -1;
  }
  if (l.n == 0) {
    sim_record_list_release(&l);
    return 0;
  }
  char err[SIM_ERRMSG_MAX] = "";
  rc = sim_world_load(sim_default_game(), l.r, l.n, out, err);
  sim_record_list_release(&l);
  if (rc != SIM_OK) {
    srv_log("world: the stored world cannot be loaded: %s%s%s (data directory %s)", sim_strerror(rc), *err ? ": " : "",
            err, s->cfg.data_dir);
    return -1;
  }
  return 1;
}

int srv_world_open(srv *s, store_txn *txn) {
  srv_world *sw = calloc(1, sizeof *sw);
  if (!sw) return -1;
  s->world = sw;
  if (sim_library_new(sim_default_game(), &sw->lib) != SIM_OK || sim_views_new(&sw->views) != SIM_OK) {
    srv_log("world: out of memory");
    return -1;
  }
  int rc = load(s, txn, &sw->w);
  if (rc < 0) return -1;
  if (rc == 0) {
    char err[SIM_ERRMSG_MAX] = "";
    sim_world_options o = {.seed = s->cfg.world_seed,
                           .width = (uint32_t)s->cfg.world_size,
                           .height = (uint32_t)s->cfg.world_size,
                           .time = s->game_time};
    if ((rc = sim_world_create(sim_default_game(), &o, &sw->w, err)) != SIM_OK) {
      srv_log("world: cannot generate a %dx%d world: %s %s", s->cfg.world_size, s->cfg.world_size, sim_strerror(rc), err);
      return -1;
    }
    if ((rc = sim_world_save(sw->w, true, put_record, txn)) != 0) {
      srv_log("world: cannot save the new world: %s", store_strerror(rc));
      return -1;
    }
    sw->unsaved = true;
    srv_log("world: generated %zu rooms (%dx%d, seed %" PRIu64 ")", sim_world_room_count(sw->w), s->cfg.world_size,
            s->cfg.world_size, s->cfg.world_seed);
  } else if (sim_world_time(sw->w) != s->game_time) {
    srv_log("world: its time %" PRIu64 " is not the game time %" PRIu64 " of the data directory %s: refusing to start",
            sim_world_time(sw->w), s->game_time, s->cfg.data_dir);
    return -1;
  }
  sw->size = side_of(sw->w);
  atomic_store(&s->pub_rooms, sim_world_room_count(sw->w));
  atomic_store(&s->pub_world_seed, sim_world_seed(sw->w));
  return 0;
}

const sbx_library *srv_world_library(const srv *s) {
  return s->world ? s->world->lib : NULL;
}

const sim_world *srv_world_get(const srv *s) {
  return s->world ? s->world->w : NULL;
}

uint32_t srv_world_size(const srv *s) {
  return s->world ? s->world->size : 0;
}

static void drop_blobs(srv_world *sw) {
  for (size_t i = 0; i < sw->n_blobs; i++) {
    sbx_blob_unref(sw->blobs[i]);
    sw->blobs[i] = NULL;
  }
}

void srv_world_free(srv *s) {
  srv_world *sw = s->world;
  if (!sw) return;
  drop_blobs(sw);
  free(sw->blobs);
  sim_views_free(sw->views);
  sim_world_free(sw->w);
  /* The library goes after the runtime built from it (srv_close frees that first). */
  sbx_library_free(sw->lib);
  free(sw);
  s->world = NULL;
}

/* ------------------------------------------------------------------ changes by ops */

void srv_world_committed(srv *s) {
  srv_world *sw = s->world;
  if (!sw || !sw->unsaved) return;
  sim_world_saved(sw->w);
  sw->unsaved = false;
}

int srv_world_rollback(srv *s) {
  srv_world *sw = s->world;
  if (!sw || !sw->unsaved) return 0;
  store_txn *txn;
  sim_world *w = NULL;
  int rc = store_read_begin(s->db, &txn);
  if (rc != STORE_OK) return -1;
  rc = load(s, txn, &w);
  store_abort(txn);
  if (rc <= 0) return -1;
  sim_world_free(sw->w);
  sw->w = w;
  sw->unsaved = false;
  sw->size = side_of(w);
  atomic_store(&s->pub_rooms, sim_world_room_count(w));
  atomic_store(&s->pub_world_seed, sim_world_seed(w));
  srv_log("world: a change was not committed; reloaded the world as of tick %" PRIu64, sim_world_time(w));
  return 0;
}

int srv_world_save_changes(srv *s, store_txn *txn) {
  srv_world *sw = s->world;
  if (!sw) return STORE_OK;
  sw->unsaved = true;
  return sim_world_save(sw->w, false, put_record, txn);
}

int srv_world_join(srv *s, store_txn *txn, uint64_t id, const char *username, const char *room, int x, int y,
                   const char *spawn_name, char *room_out) {
  srv_world *sw = s->world;
  if (!sw) return SIM_UNSUPPORTED;
  sim_player_spec sp = {.id = id,
                        .username = username,
                        .room = room,
                        .x = room ? x : -1,
                        .y = room ? y : -1,
                        .spawn_name = spawn_name && *spawn_name ? spawn_name : NULL};
  char name[16] = "";
  int rc = sim_world_add_player(sw->w, &sp, name);
  if (rc != SIM_OK) return rc;
  if (room_out) snprintf(room_out, 16, "%s", name);
  rc = srv_world_save_changes(s, txn);
  return rc == STORE_OK ? SIM_OK : SIM_NOMEM;
}

int srv_world_leave(srv *s, store_txn *txn, uint64_t id) {
  srv_world *sw = s->world;
  if (!sw) return SIM_UNSUPPORTED;
  int rc = sim_world_remove_player(sw->w, id);
  if (rc != SIM_OK) return rc;
  rc = srv_world_save_changes(s, txn);
  return rc == STORE_OK ? SIM_OK : SIM_NOMEM;
}

int srv_world_replace(srv *s, store_txn *txn, int side, uint64_t seed, char *err, size_t errcap) {
  srv_world *sw = s->world;
  if (!sw) return SIM_UNSUPPORTED;
  sim_world *nw = NULL;
  char e[SIM_ERRMSG_MAX] = "";
  sim_world_options o = {.seed = seed, .width = (uint32_t)side, .height = (uint32_t)side, .time = s->game_time};
  int rc = sim_world_create(sim_default_game(), &o, &nw, e);
  if (rc != SIM_OK) {
    snprintf(err, errcap, "%s%s%s", sim_strerror(rc), *e ? ": " : "", e);
    return rc;
  }
  /* Every old record goes; the new world is written whole. */
  sim_record_list l = {0};
  rc = store_world_iter(txn, NULL, collect, &l);
  for (size_t i = 0; rc == STORE_OK && i < l.n; i++) rc = store_world_delete(txn, l.r[i].key);
  sim_record_list_release(&l);
  if (rc == STORE_OK) rc = sim_world_save(nw, true, put_record, txn);
  if (rc != STORE_OK) {
    sim_world_free(nw);
    snprintf(err, errcap, "the store refused the new world: %s", store_strerror(rc));
    return SIM_NOMEM;
  }
  sim_world_free(sw->w);
  sw->w = nw;
  sw->unsaved = true; /* a failed commit reloads the old world */
  sw->size = side_of(nw);
  atomic_store(&s->pub_rooms, sim_world_room_count(nw));
  atomic_store(&s->pub_world_seed, sim_world_seed(nw));
  return SIM_OK;
}

/* ------------------------------------------------------------------ the tick */

int srv_world_begin_tick(srv *s, const uint64_t *players, size_t n) {
  srv_world *sw = s->world;
  if (!sw) return 0;
  size_t rooms = sim_world_room_count(sw->w);
  if (sw->n_blobs < rooms) {
    sbx_blob **b = realloc(sw->blobs, rooms * sizeof *b);
    if (!b) return -1;
    for (size_t i = sw->n_blobs; i < rooms; i++) b[i] = NULL;
    sw->blobs = b;
    sw->n_blobs = rooms;
  }
  drop_blobs(sw);
  sim_views_reset(sw->views, sw->w);
  return sim_views_build_all(sw->views, sw->w, players, n) == SIM_OK ? 0 : -1;
}

int srv_world_run_data(srv *s, uint64_t id, sim_run *run, const char *username, sbx_blob ***views, size_t *n_views,
                       sbx_lib_data *out) {
  srv_world *sw = s->world;
  *views = NULL;
  *n_views = 0;
  if (!sw) return 0;
  sim_view_ref refs[64];
  size_t n = 0;
  if (sim_views_for_player(sw->views, sw->w, id, refs, 64, &n) != SIM_OK) return -1;
  if (n > 64) n = 64; /* a player sees at most 64 rooms' objects in a tick */
  sbx_blob **b = n ? malloc(n * sizeof *b) : NULL;
  if (n && !b) return -1;
  for (size_t i = 0; i < n; i++) {
    size_t r = refs[i].room;
    if (r < sw->n_blobs && !sw->blobs[r] && sbx_blob_new(refs[i].data, refs[i].len, &sw->blobs[r]) != SBX_OK) {
      free(b);
      return -1;
    }
    b[i] = sw->blobs[r];
  }
  *run = (sim_run){sw->w, id, username, sw->size};
  *views = b;
  *n_views = n;
  sim_library_run_data(sw->lib, run, b, n, out);
  return 0;
}

char *srv_world_take_intents(srv *s, sbx_vm *vm, size_t *len) {
  *len = 0;
  return s->world ? sim_library_take_intents(s->world->lib, vm, len) : NULL;
}

int srv_world_apply(srv *s, uint64_t time, sim_intents *batches, size_t n) {
  srv_world *sw = s->world;
  if (!sw) return 0;
  int rc = sim_world_tick(sw->w, time, batches, n);
  if (rc != SIM_OK) srv_log("world: tick %" PRIu64 " could not be applied: %s", time, sim_strerror(rc));
  return rc == SIM_OK ? 0 : -1;
}

int srv_world_save(srv *s, store_txn *txn) {
  srv_world *sw = s->world;
  if (!sw) return STORE_OK;
  return sim_world_save(sw->w, false, put_record, txn);
}

void srv_world_end_tick(srv *s, bool committed) {
  srv_world *sw = s->world;
  if (!sw) return;
  drop_blobs(sw);
  if (committed) sim_world_saved(sw->w);
}
