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
 * The players' state lives in RAM, owned by this thread, as a write-through copy of
 * what is committed: the database is read once, at start. If a commit fails the
 * server stops rather than run on with a world it cannot save: what is on disk is the
 * last committed tick, and a restart goes on from it.
 */
#include "server.h"

#include <inttypes.h>
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

typedef struct code_acc {
  sbx_module *mods;
  size_t n, cap;
} code_acc;

static int collect_module(const store_code_module *m, void *ud) {
  code_acc *a = ud;
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 8;
    sbx_module *p = realloc(a->mods, cap * sizeof *p);
    if (!p) return STORE_NOMEM;
    a->mods = p;
    a->cap = cap;
  }
  /* Borrowed until the read txn ends; sbx_vm_set_code copies. */
  a->mods[a->n++] = (sbx_module){m->name, m->data, m->len, m->binary};
  /* m->name is only valid during the call: keep a copy. */
  char *name = strdup(m->name);
  if (!name) return STORE_NOMEM;
  a->mods[a->n - 1].name = name;
  return 0;
}

static int load_player_code(srv *s, store_txn *txn, srv_player *p, const char *branch) {
  code_acc acc = {0};
  int rc = store_code_iter_branch(txn, p->id, branch, collect_module, &acc);
  if (rc == STORE_OK && acc.n > 0) {
    rc = sbx_vm_set_code(p->vm, acc.mods, acc.n) == SBX_OK ? STORE_OK : STORE_NOMEM;
    p->has_code = rc == STORE_OK;
  }
  for (size_t i = 0; i < acc.n; i++) free((char *)acc.mods[i].name);
  free(acc.mods);
  (void)s;
  return rc;
}

static int add_player(const store_user *u, void *ud) {
  srv *s = ud;
  if (s->n_players == s->cap_players) {
    size_t cap = s->cap_players ? s->cap_players * 2 : 16;
    srv_player *np = realloc(s->players, cap * sizeof *np);
    if (!np) return STORE_NOMEM;
    s->players = np;
    s->cap_players = cap;
  }
  srv_player *p = &s->players[s->n_players];
  memset(p, 0, sizeof *p);
  p->id = u->id;
  snprintf(p->name, sizeof p->name, "%s", u->username);
  p->cpu.limit = u->cpu_limit > 0 ? u->cpu_limit : s->cfg.cpu_limit;
  p->cpu.bucket = SIM_BUCKET_START;
  s->n_players++;
  return 0;
}

static int load_players(srv *s, store_txn *txn) {
  int rc = store_user_iter(txn, add_player, s);
  if (rc != STORE_OK) return rc;
  sbx_vm_options vo = {.heap_limit_mb = (size_t)s->cfg.heap_mb};
  for (size_t i = 0; i < s->n_players; i++) {
    srv_player *p = &s->players[i];
    store_user u;
    if ((rc = store_user_get(txn, p->id, &u)) != STORE_OK) return rc;
    if (sbx_vm_new(s->rt, &vo, &p->vm) != SBX_OK) return STORE_NOMEM;
    sbx_vm_set_userdata(p->vm, p);
    store_code_get_stamp(txn, p->id, &p->code_stamp);
    if ((rc = load_player_code(s, txn, p, u.active_branch[0] ? u.active_branch : "default")) != STORE_OK) return rc;
    const char *mem;
    size_t len;
    rc = store_memory_get(txn, p->id, &mem, &len);
    if (rc == STORE_OK) {
      p->memory = malloc(len + 1);
      if (!p->memory) return STORE_NOMEM;
      memcpy(p->memory, mem, len);
      p->memory[len] = 0;
      p->memory_len = len;
    } else if (rc != STORE_NOTFOUND) {
      return rc;
    }
    store_cpu c;
    rc = store_cpu_get(txn, p->id, &c);
    if (rc == STORE_OK) {
      p->cpu.bucket = c.bucket;
      p->last_used_ms = c.last_used_ms;
      p->last_tick = c.last_tick;
    } else if (rc != STORE_NOTFOUND) {
      return rc;
    }
  }
  return STORE_OK;
}

int srv_open(srv *s) {
  char msg[STORE_ERRMSG_MAX];
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
  char *err = NULL;
  if (sbx_runtime_new(NULL, &s->rt, &err) != SBX_OK) {
    srv_log("cannot build the player prelude snapshot: %s", err ? err : "?");
    free(err);
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
  if (users == 0 && t == 0 && s->cfg.demo) {
    if ((rc = store_write_begin(s->db, &txn)) != STORE_OK) goto db_error;
    if ((rc = srv_seed_demo(s, txn)) != STORE_OK) {
      store_abort(txn);
      goto db_error;
    }
    if ((rc = store_commit(txn)) != STORE_OK) goto db_error;
    srv_log("new data directory %s: seeded two demo players", s->cfg.data_dir);
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

/* Returns 0, or -1 when the tick could not be committed. */
static int run_tick(srv *s, sbx_job *jobs, size_t *job_player, tick_stats *st) {
  uint64_t t0 = mono_us();
  uint64_t T = s->game_time + 1;
  size_t n = 0;
  memset(st, 0, sizeof *st);
  static const char skip_text[] = "Script execution has been terminated: CPU bucket is empty";
  for (size_t i = 0; i < s->n_players; i++) {
    srv_player *p = &s->players[i];
    if (!p->has_code) continue;
    if (sim_cpu_must_skip(&p->cpu)) {
      sim_cpu_charge(&p->cpu, 0);
      sbx_line l = {SBX_ERROR, false, (char *)skip_text, sizeof skip_text - 1};
      print_lines(s, p, T, &l, 1);
      st->skipped++;
      continue;
    }
    sbx_job *j = &jobs[n];
    memset(j, 0, sizeof *j);
    j->vm = p->vm;
    j->in.time = T;
    j->in.cpu_limit_ms = p->cpu.limit;
    j->in.tick_limit_ms = sim_cpu_tick_limit(&p->cpu);
    j->in.bucket = (double)p->cpu.bucket;
    j->in.wall_limit_ms = s->cfg.wall_ms;
    j->in.hard_limit_ms = s->cfg.hard_ms;
    j->in.memory = p->memory;
    j->in.memory_len = p->memory_len;
    job_player[n++] = i;
  }
  sbx_pool_run(s->pool, jobs, n);
  uint64_t t1 = mono_us();
  st->run_us = t1 - t0;

  /* Apply results to the players (RAM), then commit everything in one transaction. */
  for (size_t k = 0; k < n; k++) {
    srv_player *p = &s->players[job_player[k]];
    sbx_tick_out *o = &jobs[k].out;
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
  }
  store_txn *txn;
  int rc = store_write_begin(s->db, &txn);
  if (rc == STORE_OK) rc = store_set_game_time(txn, T);
  for (size_t i = 0; rc == STORE_OK && i < s->n_players; i++) {
    srv_player *p = &s->players[i];
    if (!p->has_code) continue;
    if (p->memory_dirty) rc = store_memory_put(txn, p->id, p->memory, p->memory_len);
    store_cpu c = {p->cpu.limit, p->cpu.bucket, p->last_used_ms, p->last_tick};
    if (rc == STORE_OK) rc = store_cpu_put(txn, p->id, &c);
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
    for (size_t k = 0; k < n; k++) sbx_tick_out_release(&jobs[k].out);
    return -1;
  }
  for (size_t i = 0; i < s->n_players; i++) s->players[i].memory_dirty = false;
  s->game_time = T;

  /* Publish: only now that the tick is on disk. */
  atomic_store(&s->pub_game_time, T);
  for (size_t k = 0; k < n; k++) {
    srv_player *p = &s->players[job_player[k]];
    print_lines(s, p, T, jobs[k].out.lines, jobs[k].out.n_lines);
    sbx_tick_out_release(&jobs[k].out);
  }
  st->total_us = mono_us() - t0;
  atomic_store(&s->pub_last_tick_us, (int_fast64_t)st->total_us);
  return 0;
}

/* ------------------------------------------------------------------ the thread */

static void *tick_main(void *arg) {
  srv *s = arg;
  sbx_job *jobs = calloc(s->n_players ? s->n_players : 1, sizeof *jobs);
  size_t *job_player = calloc(s->n_players ? s->n_players : 1, sizeof *job_player);
  if (!jobs || !job_player) {
    srv_log("out of memory starting the tick thread");
    s->exit_code = 1;
    goto out;
  }
  uint64_t next = mono_us(), ticks = 0;
  uint64_t sum_us = 0, max_us = 0;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    while (!s->stop && s->cfg.tick_ms > 0 && mono_us() < next) {
      uint64_t wake = next;
      struct timespec ts = {(time_t)(wake / 1000000u), (long)(wake % 1000000u) * 1000};
      pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (stop) break;
    uint64_t started = mono_us();
    if (s->cfg.tick_ms > 0) {
      next += (uint64_t)s->cfg.tick_ms * 1000u;
      /* Fell behind by more than a tick: start counting again from now, no burst. */
      if (next + (uint64_t)s->cfg.tick_ms * 1000u < started) next = started + (uint64_t)s->cfg.tick_ms * 1000u;
    }
    tick_stats st;
    if (run_tick(s, jobs, job_player, &st) != 0) {
      s->exit_code = 1;
      break;
    }
    ticks++;
    sum_us += st.total_us;
    if (st.total_us > max_us) max_us = st.total_us;
    if (s->cfg.stats_every > 0 && ticks % (uint64_t)s->cfg.stats_every == 0) {
      srv_log("tick %" PRIu64 ": %zu players ran (%zu failed, %zu skipped); tick %.2f ms (players %.2f, commit "
              "%.2f); last %d: mean %.2f ms, max %.2f ms",
              s->game_time, st.ran, st.failed, st.skipped, (double)st.total_us / 1e3, (double)st.run_us / 1e3,
              (double)st.commit_us / 1e3, s->cfg.stats_every, (double)sum_us / 1e3 / s->cfg.stats_every,
              (double)max_us / 1e3);
      sum_us = max_us = 0;
    }
    if (s->cfg.max_ticks && ticks >= s->cfg.max_ticks) {
      srv_log("reached --max-ticks %" PRIu64 " at game time %" PRIu64, s->cfg.max_ticks, s->game_time);
      break;
    }
  }
out:
  free(jobs);
  free(job_player);
  if (s->on_tick_thread_exit) s->on_tick_thread_exit(s->on_exit_ud);
  return NULL;
}

int srv_start_ticking(srv *s) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&s->mu, NULL);
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
  for (size_t i = 0; i < s->n_players; i++) {
    sbx_vm_free(s->players[i].vm);
    free(s->players[i].memory);
  }
  free(s->players);
  s->players = NULL;
  s->n_players = 0;
  sbx_runtime_free(s->rt);
  s->rt = NULL;
  store_close(s->db);
  s->db = NULL;
}
