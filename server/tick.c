/*
 * tick.c — the tick thread: runs every player, commits the tick, then publishes it.
 *
 * A tick: (1) every active player gets a job — Game.time, its CPU budget from the
 * Screeps rules (sim/), its committed Memory; a player whose bucket is empty is skipped;
 * (2) the sandbox's pool runs the jobs in parallel, each player's failure confined to
 * its own job; (3) one LMDB write transaction holds the new game time, every changed
 * Memory and every player's CPU account; (4) only after the commit is anything
 * published (console output, the game time the HTTP API reports).
 *
 * Each job also carries the player's queued console commands (evaluated after loop(),
 * even when it threw; dropped from the queue in the tick's own commit once they ran)
 * and the RawMemory segments the player asked for; segments the code wrote and its new
 * choice of active segments are committed with the tick.
 *
 * Between ticks the thread runs the op queue (ops.c): changes asked for over HTTP, each
 * committed in its own transaction. An op waits at most for the tick in progress.
 *
 * The players' state lives in RAM, owned by this thread, as a write-through copy of
 * what is committed: the database is read once, at start, and then only when an op
 * adds a player or reloads code. If a tick's commit fails the server stops rather than
 * run on with a world it cannot save: what is on disk is the last committed tick, and a
 * restart goes on from it.
 */
#include "server.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void srv_log(const char *fmt, ...) {
  char ts[32];
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  va_list ap;
  va_start(ap, fmt);
  flockfile(stderr);
  fprintf(stderr, "%s ", ts);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  funlockfile(stderr);
  va_end(ap);
}

/* ------------------------------------------------------------------ loading */

static int add_player(const store_user *u, void *ud) {
  void **args = ud;
  return srv_player_add(args[0], args[1], u);
}

static int load_players(srv *s, store_txn *txn) {
  void *args[2] = {s, txn};
  return store_user_iter(txn, add_player, args);
}

/* The session-token signing key: made once, from the system's random source, and kept in
 * the store so tokens stay valid across restarts. */
static int load_token_key(srv *s, store_txn *txn) {
  const void *k;
  size_t len;
  int rc = store_setting_get(txn, "token_key", &k, &len);
  if (rc == STORE_OK && len == SRV_TOKEN_KEY_BYTES) {
    memcpy(s->token_key, k, len);
    return STORE_OK;
  }
  if (rc != STORE_OK && rc != STORE_NOTFOUND) return rc;
  randombytes_buf(s->token_key, sizeof s->token_key);
  return store_setting_put(txn, "token_key", s->token_key, sizeof s->token_key);
}

int srv_open(srv *s) {
  char msg[STORE_ERRMSG_MAX];
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&s->mu, NULL);
  if (sodium_init() < 0) {
    srv_log("libsodium failed to start");
    return -1;
  }
  int rc = store_create(&s->db);
  if (rc == STORE_OK) {
    store_options so = {.nosync = s->cfg.nosync};
    rc = store_open(s->db, s->cfg.data_dir, &so);
  }
  if (rc != STORE_OK) {
    srv_log("cannot open the data directory %s: %s", s->cfg.data_dir,
            s->db ? store_errmsg(s->db, msg, sizeof msg) : store_strerror(rc));
    return -1;
  }
  /* Seed a new data directory (no tick ever committed, no user). */
  store_txn *txn;
  if ((rc = store_read_begin(s->db, &txn)) != STORE_OK) goto db_error;
  size_t users = 0;
  uint64_t t = 0;
  rc = store_user_count(txn, &users);
  if (rc == STORE_OK) rc = store_get_game_time(txn, &t);
  store_abort(txn);
  if (rc != STORE_OK) goto db_error;
  /* One write txn before the tick thread exists: the token key, users of schema 1
   * brought up to date, and the demo players of a new data directory. */
  if ((rc = store_write_begin(s->db, &txn)) != STORE_OK) goto db_error;
  rc = load_token_key(s, txn);
  if (rc == STORE_OK) rc = srv_players_fixup(s, txn);
  s->game_time = t;
  if (rc == STORE_OK && srv_world_open(s, txn) != 0) {
    store_abort(txn);
    return -1;
  }
  bool seed = users == 0 && t == 0 && s->cfg.demo;
  if (rc == STORE_OK && seed) rc = srv_seed_demo(s, txn);
  if (rc != STORE_OK) {
    store_abort(txn);
    goto db_error;
  }
  if ((rc = store_commit(txn)) != STORE_OK) goto db_error;
  srv_world_committed(s);
  if (seed) srv_log("new data directory %s: seeded two demo players", s->cfg.data_dir);
  /* The players' runtime: the player prelude and the world's API in one snapshot. */
  char *err = NULL;
  const sbx_library *libs[2] = {sbx_player_library(), srv_world_library(s)};
  if (sbx_runtime_new_libs(libs, 2, &s->rt, &err) != SBX_OK) {
    srv_log("cannot build the player API snapshot: %s", err ? err : "?");
    free(err);
    return -1;
  }
  if ((rc = store_read_begin(s->db, &txn)) != STORE_OK) goto db_error;
  rc = store_get_game_time(txn, &s->game_time);
  if (rc == STORE_OK) rc = load_players(s, txn);
  store_abort(txn);
  if (rc != STORE_OK) goto db_error;
  atomic_store(&s->pub_game_time, s->game_time);
  atomic_store(&s->pub_users, s->n_players);
  return 0;
db_error:
  srv_log("data directory %s: %s (%s)", s->cfg.data_dir, store_strerror(rc), store_errmsg(s->db, msg, sizeof msg));
  return -1;
}

/* ------------------------------------------------------------------ one tick */

static const char *level_name(sbx_level l) {
  switch (l) {
    case SBX_WARN: return "warn ";
    case SBX_ERROR: return "error";
    case SBX_RESULT: return "=>   ";
    default: return "";
  }
}

static void print_lines(const srv *s, const srv_player *p, uint64_t t, const sbx_line *lines, size_t n) {
  if (s->cfg.quiet || n == 0) return;
  flockfile(stdout);
  for (size_t i = 0; i < n; i++) {
    const char *lv = level_name(lines[i].level);
    /* Multi-line text (stacks) is indented under its first line. */
    const char *text = lines[i].text;
    printf("[%" PRIu64 "] %s: %s%s", t, p->name, lv, *lv ? " " : "");
    for (const char *c = text; *c; c++) {
      putchar(*c);
      if (*c == '\n') printf("    ");
    }
    putchar('\n');
  }
  fflush(stdout);
  funlockfile(stdout);
}

typedef struct tick_stats {
  uint64_t run_us, commit_us, total_us;
  size_t ran, skipped, failed;
} tick_stats;

/* Per-tick scratch of one job, beside the sandbox's sbx_job. */
typedef struct tick_job {
  srv_player *p;
  const char **cmds; /* the queued expressions given to this run (borrowed from p) */
  size_t n_cmds;
  uint64_t cmds_upto;                        /* sequence number of the last of them */
  sbx_segment segs[SBX_SEGMENTS_ACTIVE_MAX]; /* borrowed from the segment read txn */
  /* the world's part: views in (blobs borrowed from world.c), intents out */
  sim_run run;
  sbx_lib_data lib_data;
  sbx_blob **views;
  size_t n_views;
  char *intents;
  size_t intents_len;
} tick_job;

typedef struct tick_scratch {
  sbx_job *jobs;
  tick_job *tj;
  uint64_t *ids;
  sim_intents *batches;
  size_t cap;
} tick_scratch;

static int scratch_reserve(tick_scratch *sc, size_t n) {
  if (n <= sc->cap) return 0;
  size_t cap = sc->cap ? sc->cap : 16;
  while (cap < n) cap *= 2;
  sbx_job *j = realloc(sc->jobs, cap * sizeof *j);
  if (!j) return -1;
  sc->jobs = j;
  tick_job *t = realloc(sc->tj, cap * sizeof *t);
  if (!t) return -1;
  sc->tj = t;
  uint64_t *ids = realloc(sc->ids, cap * sizeof *ids);
  if (!ids) return -1;
  sc->ids = ids;
  sim_intents *b = realloc(sc->batches, cap * sizeof *b);
  if (!b) return -1;
  sc->batches = b;
  sc->cap = cap;
  return 0;
}

static void scratch_release(tick_scratch *sc) {
  free(sc->jobs);
  free(sc->tj);
  free(sc->ids);
  free(sc->batches);
  memset(sc, 0, sizeof *sc);
}

/* Returns 0, or -1 when the tick could not be committed. */
static int run_tick(srv *s, tick_scratch *sc, tick_stats *st) {
  uint64_t t0 = mono_us();
  uint64_t T = s->game_time + 1;
  size_t n = 0;
  memset(st, 0, sizeof *st);
  static const char skip_text[] = "Script execution has been terminated: CPU bucket is empty";
  if (scratch_reserve(sc, s->n_players) != 0) {
    srv_log("tick %" PRIu64 ": out of memory", T);
    return -1;
  }
  /* Segments the players asked for are read from the last commit, borrowed until the
   * jobs are done. */
  store_txn *seg_txn = NULL;
  for (size_t i = 0; i < s->n_players; i++) {
    srv_player *p = s->players[i];
    if (!p->has_code || (p->flags & SRV_USER_BANNED)) continue;
    if (sim_cpu_must_skip(&p->cpu)) {
      sim_cpu_charge(&p->cpu, 0);
      sbx_line l = {SBX_ERROR, false, (char *)skip_text, sizeof skip_text - 1};
      print_lines(s, p, T, &l, 1);
      p->skipped_tick = T; /* its console hears of it after the commit (publish.c) */
      st->skipped++;
      continue;
    }
    sbx_job *j = &sc->jobs[n];
    tick_job *tj = &sc->tj[n];
    memset(j, 0, sizeof *j);
    memset(tj, 0, sizeof *tj);
    tj->p = p;
    j->vm = p->vm;
    j->in.time = T;
    j->in.cpu_limit_ms = p->cpu.limit;
    j->in.tick_limit_ms = sim_cpu_tick_limit(&p->cpu);
    j->in.bucket = (double)p->cpu.bucket;
    j->in.wall_limit_ms = s->cfg.wall_ms;
    j->in.hard_limit_ms = s->cfg.hard_ms;
    j->in.memory = p->memory;
    j->in.memory_len = p->memory_len;
    j->in.memory_max = SRV_MEMORY_MAX;
    if (p->n_cmds) {
      tj->cmds = malloc(p->n_cmds * sizeof *tj->cmds);
      if (tj->cmds) {
        for (size_t c = 0; c < p->n_cmds; c++) tj->cmds[c] = p->cmds[c].expr;
        tj->n_cmds = p->n_cmds;
        tj->cmds_upto = p->cmds[p->n_cmds - 1].seq;
        j->in.commands = tj->cmds;
        j->in.n_commands = tj->n_cmds;
      }
    }
    for (size_t k = 0; k < p->n_active_segments; k++) {
      if (!seg_txn && store_read_begin(s->db, &seg_txn) != STORE_OK) break;
      const char *data;
      size_t len;
      if (store_segment_get(seg_txn, p->id, p->active_segments[k], &data, &len) != STORE_OK) continue;
      tj->segs[j->in.n_segments++] = (sbx_segment){p->active_segments[k], (char *)data, len};
    }
    if (j->in.n_segments) j->in.segments = tj->segs;
    n++;
  }
  /* The world: each visible room's view built once, shared by the players who see it. */
  for (size_t k = 0; k < n; k++) sc->ids[k] = sc->tj[k].p->id;
  if (srv_world_begin_tick(s, sc->ids, n) != 0) srv_log("tick %" PRIu64 ": out of memory building views", T);
  for (size_t k = 0; k < n; k++) {
    tick_job *tj = &sc->tj[k];
    if (srv_world_run_data(s, tj->p->id, &tj->run, tj->p->name, &tj->views, &tj->n_views, &tj->lib_data) == 0 &&
        tj->lib_data.lib) {
      sc->jobs[k].in.lib_data = &tj->lib_data;
      sc->jobs[k].in.n_lib_data = 1;
    }
  }
  sbx_pool_run(s->pool, sc->jobs, n);
  store_abort(seg_txn);
  uint64_t t1 = mono_us();
  st->run_us = t1 - t0;

  /* Apply results to the players (RAM), then commit everything in one transaction. */
  for (size_t k = 0; k < n; k++) {
    srv_player *p = sc->tj[k].p;
    sbx_tick_out *o = &sc->jobs[k].out;
    double used_ms = (double)o->cpu_ns / 1e6;
    sim_cpu_charge(&p->cpu, used_ms);
    p->last_used_ms = (int32_t)(used_ms + 0.999);
    p->last_tick = T;
    if (o->memory_changed) {
      free(p->memory);
      p->memory = o->memory;
      p->memory_len = o->memory_len;
      o->memory = NULL;
      p->memory_dirty = true;
    }
    st->ran++;
    if (o->status != SBX_OK) st->failed++;
    tick_job *tj = &sc->tj[k];
    free(tj->views);
    tj->views = NULL;
    /* A run the pool gave up on may still be inside V8: its intents are not taken. */
    if (o->status != SBX_ABANDONED && o->status != SBX_BUSY)
      tj->intents = srv_world_take_intents(s, sc->jobs[k].vm, &tj->intents_len);
    sc->batches[k] = (sim_intents){.player = p->id, .data = tj->intents ? tj->intents : "", .len = tj->intents_len};
  }
  /* The simulation: every intent checked again and applied, in an order of its own. */
  int wrc = srv_world_apply(s, T, sc->batches, n);
  for (size_t k = 0; k < n; k++) {
    free(sc->tj[k].intents);
    sc->tj[k].intents = NULL;
  }
  if (wrc != 0) {
    srv_log("tick %" PRIu64 ": the world could not be updated; stopping with the world as of tick %" PRIu64, T,
            s->game_time);
    for (size_t k = 0; k < n; k++) {
      sbx_tick_out_release(&sc->jobs[k].out);
      free(sc->tj[k].cmds);
    }
    srv_world_end_tick(s, false);
    return -1;
  }
  store_txn *txn;
  int rc = store_write_begin(s->db, &txn);
  if (rc == STORE_OK) rc = store_set_game_time(txn, T);
  if (rc == STORE_OK) rc = srv_world_save(s, txn);
  for (size_t i = 0; rc == STORE_OK && i < s->n_players; i++) {
    srv_player *p = s->players[i];
    if (!p->has_code) continue;
    if (p->memory_dirty) rc = store_memory_put(txn, p->id, p->memory, p->memory_len);
    store_cpu c = {p->cpu.limit, p->cpu.bucket, p->last_used_ms, p->last_tick};
    if (rc == STORE_OK) rc = store_cpu_put(txn, p->id, &c);
  }
  for (size_t k = 0; rc == STORE_OK && k < n; k++) {
    srv_player *p = sc->tj[k].p;
    sbx_tick_out *o = &sc->jobs[k].out;
    /* Commands that ran leave the queue in the same commit; those that did not (the
     * run ended before it could evaluate them) wait for the next tick. */
    if (sc->tj[k].n_cmds && o->commands_run) rc = store_console_trim(txn, p->id, sc->tj[k].cmds_upto, NULL);
    for (size_t g = 0; rc == STORE_OK && g < o->n_segments_written; g++)
      rc = store_segment_put(txn, p->id, o->segments_written[g].id, o->segments_written[g].data,
                             o->segments_written[g].len);
    if (rc == STORE_OK && o->active_segments_set)
      rc = store_segments_set_active(txn, p->id, o->active_segments, o->n_active_segments);
  }
  if (rc == STORE_OK) {
    rc = store_commit(txn);
  } else if (txn) {
    store_abort(txn);
  }
  uint64_t t2 = mono_us();
  st->commit_us = t2 - t1;
  if (rc != STORE_OK) {
    char msg[STORE_ERRMSG_MAX];
    srv_log("tick %" PRIu64 " could not be committed: %s (%s); stopping with the world as of tick %" PRIu64, T,
            store_strerror(rc), store_errmsg(s->db, msg, sizeof msg), s->game_time);
    for (size_t k = 0; k < n; k++) {
      sbx_tick_out_release(&sc->jobs[k].out);
      free(sc->tj[k].cmds);
    }
    srv_world_end_tick(s, false);
    return -1;
  }
  srv_world_end_tick(s, true);
  for (size_t i = 0; i < s->n_players; i++) s->players[i]->memory_dirty = false;
  s->game_time = T;
  for (size_t k = 0; k < n; k++) {
    srv_player *p = sc->tj[k].p;
    sbx_tick_out *o = &sc->jobs[k].out;
    if (sc->tj[k].n_cmds && o->commands_run) srv_player_drop_cmds(p, sc->tj[k].cmds_upto);
    if (o->active_segments_set) {
      p->n_active_segments = o->n_active_segments;
      memcpy(p->active_segments, o->active_segments, o->n_active_segments * sizeof *o->active_segments);
    }
  }

  /* Publish: only now that the tick is on disk: the time the HTTP API reports, the
   * console on stdout, and the websocket channels (publish.c). */
  atomic_store(&s->pub_game_time, T);
  srv_pub_tick *pub = srv_publish_begin(s, T); /* websocket frames, built once per channel */
  for (size_t k = 0; k < n; k++) {
    srv_player *p = sc->tj[k].p;
    print_lines(s, p, T, sc->jobs[k].out.lines, sc->jobs[k].out.n_lines);
    srv_admin_console_feed(s, p, T, sc->jobs[k].out.lines, sc->jobs[k].out.n_lines);
    srv_publish_run(pub, p, &sc->jobs[k].out);
    sbx_tick_out_release(&sc->jobs[k].out);
    free(sc->tj[k].cmds);
  }
  srv_publish_rooms(pub, srv_world_get(s));
  srv_publish_end(s, pub);

  st->total_us = mono_us() - t0;
  atomic_store(&s->pub_last_tick_us, (int_fast64_t)st->total_us);
  return 0;
}

/* ------------------------------------------------------------------ the thread */

static void *tick_main(void *arg) {
  srv *s = arg;
  tick_scratch sc = {0};
  uint64_t next = mono_us(), ticks = 0;
  uint64_t sum_us = 0, max_us = 0;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    /* Between ticks: wait for the next one, or for an op to run (or while time is
     * paused, or a backup holds the thread: admin_time.c). */
    srv_time_wait(s, &next);
    bool stop = s->stop, ops = s->ops_head != NULL;
    pthread_mutex_unlock(&s->mu);
    if (ops) {
      srv_ops_run_pending(s);
      if (!stop) continue;
    }
    if (stop) break;
    uint64_t started = mono_us();
    if (s->cfg.tick_ms > 0) {
      next += (uint64_t)s->cfg.tick_ms * 1000u;
      /* Fell behind by more than a tick: start counting again from now, no burst. */
      if (next + (uint64_t)s->cfg.tick_ms * 1000u < started) next = started + (uint64_t)s->cfg.tick_ms * 1000u;
    }
    tick_stats st;
    if (run_tick(s, &sc, &st) != 0) {
      s->exit_code = 1;
      break;
    }
    ticks++;
    srv_admin_after_tick(s);
    sum_us += st.total_us;
    if (st.total_us > max_us) max_us = st.total_us;
    if (s->cfg.stats_every > 0 && ticks % (uint64_t)s->cfg.stats_every == 0) {
      const sim_world *w = srv_world_get(s);
      srv_log("tick %" PRIu64
              ": %zu players ran (%zu failed, %zu skipped); tick %.2f ms (players %.2f, commit "
              "%.2f); last %d: mean %.2f ms, max %.2f ms; world hash %016" PRIx64,
              s->game_time, st.ran, st.failed, st.skipped, (double)st.total_us / 1e3, (double)st.run_us / 1e3,
              (double)st.commit_us / 1e3, s->cfg.stats_every, (double)sum_us / 1e3 / s->cfg.stats_every,
              (double)max_us / 1e3, w ? sim_world_hash(w) : 0);
      sum_us = max_us = 0;
    }
    if (s->cfg.max_ticks && ticks >= s->cfg.max_ticks) {
      srv_log("reached --max-ticks %" PRIu64 " at game time %" PRIu64, s->cfg.max_ticks, s->game_time);
      break;
    }
  }
  scratch_release(&sc);
  srv_ops_stop(s);
  if (s->on_tick_thread_exit) s->on_tick_thread_exit(s->on_exit_ud);
  return NULL;
}

int srv_start_ticking(srv *s) {
  if (sbx_pool_new(s->cfg.workers, &s->pool) != SBX_OK) {
    srv_log("cannot start the worker pool");
    return -1;
  }
  if (pthread_create(&s->tick_thread, NULL, tick_main, s) != 0) {
    srv_log("cannot start the tick thread");
    return -1;
  }
  return 0;
}

void srv_stop_ticking(srv *s) {
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->tick_thread, NULL);
}

void srv_close(srv *s) {
  sbx_pool_free(s->pool);
  s->pool = NULL;
  for (size_t i = 0; i < s->n_players; i++) srv_player_free(s->players[i]);
  free(s->players);
  s->players = NULL;
  s->n_players = 0;
  sbx_runtime_free(s->rt);
  s->rt = NULL;
  srv_world_free(s);
  store_close(s->db);
  s->db = NULL;
  sodium_memzero(s->token_key, sizeof s->token_key);
}
