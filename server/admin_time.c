/*
 * admin_time.c — time as admins control it: pause, resume, step, tick rate; the world's
 * status; a new world (generate, reset); broadcast; the admin log.
 *
 * The tick thread owns time. Admins change it through ops like any other change, and
 * the op's apply (on the tick thread, between ticks, after the op's commit) sets the
 * control fields under the server mutex; srv_time_wait, the tick thread's wait between
 * ticks, reads them. So "paused" means: no tick starts after the one in progress; ops
 * still run, so the world can be administered while time stands still. A step runs its
 * ticks back to back and its request is answered once the last of them is committed.
 *
 * The pause is stored (setting "paused"), so a world paused by an admin stays paused
 * across a crash or restart until someone resumes it. The tick rate is not: the
 * configuration says what a start uses.
 *
 * The backup hold: a backup (admin_backup.c) needs its state hash and LMDB's copy to
 * read the same commit. It sets `hold`; the tick thread, at its next wait, parks (no
 * tick, no op) and says so with `held`; the backup opens its snapshots and releases it.
 * The hold lasts a few milliseconds and only ever delays a tick.
 *
 * A new world (world generate, world reset) is one op: in its txn the old world's records
 * are replaced by the new world's (srv_world_replace) and every player who owned a room is
 * placed again (srv_world_join), in id order; after the commit every global starts over.
 * The world's RAM copy changes in prepare, so a failure or refusal after that point leaves
 * ops.c to reload the committed world: nothing half-made survives.
 */
#include "admin_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------ the tick thread's wait */

void srv_time_wait(srv *s, uint64_t *next) {
  for (;;) {
    if (s->stop) return;
    if (s->hold) {
      if (!s->held) {
        s->held = true;
        pthread_cond_broadcast(&s->hold_cv);
      }
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    s->held = false;
    if (s->ops_head) return;
    if (s->tick_rate_changed) {
      s->tick_rate_changed = false;
      *next = mono_us() + (uint64_t)s->cfg.tick_ms * 1000u;
    }
    if (s->paused) {
      if (s->step_left) {
        s->step_left--;
        return;
      }
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    if (s->cfg.tick_ms <= 0) return;
    if (mono_us() >= *next) return;
    struct timespec ts = {(time_t)(*next / 1000000u), (long)(*next % 1000000u) * 1000};
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
}

/* ------------------------------------------------------------------ status */

/* The seed of the world the tick thread holds (world.c publishes it), or, before it has
 * one, the configured --world-seed. */
static uint64_t world_seed(srv *s) {
  uint64_t seed = atomic_load(&s->pub_world_seed);
  return seed ? seed : s->cfg.world_seed;
}

typedef struct status_counts {
  uint64_t users, banned, ran;
  uint64_t game_time;
} status_counts;

static int count_user(const store_user *u, void *ud) {
  status_counts *c = ud;
  c->users++;
  if (u->flags & SRV_USER_BANNED) c->banned++;
  return 0;
}

static void status_read(admin_read *r, store_txn *txn) {
  status_counts c = {0};
  unsigned char hash[STORE_STATE_HASH_BYTES];
  int rc = store_get_game_time(txn, &c.game_time);
  if (rc == STORE_OK) rc = store_user_iter(txn, count_user, &c);
  if (rc == STORE_OK && r->flag) rc = store_state_hash(txn, hash, NULL);
  store_info info;
  if (rc == STORE_OK) rc = store_get_info(txn, &info);
  if (rc != STORE_OK) {
    admin_read_refuse(r, 500, "store_error", "cannot read the store: %s", store_strerror(rc));
    return;
  }
  /* The world: its room count as the tick thread published it (r->num), its seed as
   * committed. null: a server without a world. */
  uint32_t side = srv_world_side((size_t)r->num);
  json_t *world = r->num > 0 ? json_pack("{s:I, s:i, s:i, s:I}", "rooms", (json_int_t)r->num, "width", (int)side,
                                         "height", (int)side, "seed", (json_int_t)world_seed(r->a->s))
                             : json_null();
  r->reply = json_pack("{s:I, s:{s:I, s:I, s:I}, s:I, s:i, s:o, s:{s:I, s:I, s:i}}", "game_time",
                       (json_int_t)c.game_time, "players", "total", (json_int_t)c.users, "banned", (json_int_t)c.banned,
                       "active", (json_int_t)(c.users - c.banned), "rooms", (json_int_t)r->num, "world_size", (int)side,
                       "world", world, "store", "map_size", (json_int_t)info.map_size, "used",
                       (json_int_t)info.map_used, "schema_version", (int)info.schema_version);
  if (r->reply && r->flag) json_object_set_new(r->reply, "state_hash", admin_hex(hash, sizeof hash));
}

static double mean_ms(const uint64_t *v, size_t n) {
  if (!n) return 0;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += v[i];
  return (double)sum / (double)n / 1000.0;
}

static double max_ms(const uint64_t *v, size_t n) {
  uint64_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (v[i] > m) m = v[i];
  return (double)m / 1000.0;
}

static void h_status(srv_admin *a, web_req *req, const char *who) {
  srv *s = a->s;
  admin_note(who, "world status");
  pthread_mutex_lock(&s->mu);
  bool paused = s->paused;
  uint64_t step_left = s->step_left;
  pthread_mutex_unlock(&s->mu);
  pthread_mutex_lock(&a->stats_mu);
  size_t last = (a->i_stats + ADMIN_STATS_WINDOW - 1) % ADMIN_STATS_WINDOW;
  json_t *tick =
      json_pack("{s:i, s:f, s:f, s:f, s:f, s:i, s:I}", "configured_ms", atomic_load(&s->pub_tick_ms), "last_ms",
                a->n_stats ? (double)a->dur_us[last] / 1000.0 : 0.0, "mean_ms", mean_ms(a->dur_us, a->n_stats),
                "max_ms", max_ms(a->dur_us, a->n_stats), "interval_ms", mean_ms(a->gap_us, a->n_gaps), "window",
                (int)a->n_stats, "ticks_run", (json_int_t)a->ticks_run);
  pthread_mutex_unlock(&a->stats_mu);
  admin_read *r = admin_read_new(a, req);
  if (!r) {
    json_decref(tick);
    return;
  }
  const char *h = web_req_query(req, "hash");
  r->flag = !(h && !strcmp(h, "0"));
  r->num = (int64_t)atomic_load(&s->pub_rooms);
  r->extra =
      json_pack("{s:b, s:I, s:I, s:o, s:s, s:s, s:I, s:I}", "paused", paused, "step_pending", (json_int_t)step_left,
                "tick_ms", (json_int_t)atomic_load(&s->pub_tick_ms), "tick", tick, "version", ISOWORLD_VERSION,
                "data_dir", s->cfg.data_dir, "uptime_s", (json_int_t)((srv_now_ms() - a->started_ms) / 1000),
                "live_game_time", (json_int_t)atomic_load(&s->pub_game_time));
  admin_read_start(r, status_read);
}

/* ------------------------------------------------------------------ pause, resume */

static int pause_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  char v = o->flag ? '1' : '0';
  return store_setting_put(txn, "paused", &v, 1);
}

static void pause_apply(srv *s, admin_op *o) {
  pthread_mutex_lock(&s->mu);
  bool was = s->paused;
  s->paused = o->flag;
  s->step_left = 0;
  pthread_mutex_unlock(&s->mu);
  o->reply =
      json_pack("{s:b, s:b, s:I}", "paused", o->flag, "changed", was != o->flag, "game_time", (json_int_t)s->game_time);
}

static void h_pause(srv_admin *a, web_req *req, const char *who) {
  admin_op *o = admin_op_new(a, req, who, "world pause");
  if (!o) return;
  o->flag = true;
  o->prepare = pause_prepare;
  o->apply = pause_apply;
  admin_op_submit(o);
}

static void h_resume(srv_admin *a, web_req *req, const char *who) {
  admin_op *o = admin_op_new(a, req, who, "world resume");
  if (!o) return;
  o->flag = false;
  o->prepare = pause_prepare;
  o->apply = pause_apply;
  admin_op_submit(o);
}

/* ------------------------------------------------------------------ step */

static int step_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)txn;
  pthread_mutex_lock(&s->mu);
  bool paused = s->paused;
  pthread_mutex_unlock(&s->mu);
  if (!paused) return admin_refuse(o, 409, "not_paused", "time is running: pause it first (world pause)");
  return 0;
}

static void step_apply(srv *s, admin_op *o) {
  pthread_mutex_lock(&s->mu);
  s->step_left += (uint64_t)o->num;
  o->target = s->game_time + s->step_left;
  o->uid = s->game_time; /* where it started */
  pthread_mutex_unlock(&s->mu);
}

static bool step_check(srv_admin *a, admin_waiter *w, bool timeout) {
  uint64_t t = atomic_load(&a->s->pub_game_time);
  if (t < w->target && !timeout) return false;
  admin_ok(w->req, json_pack("{s:b, s:I, s:I, s:I}", "done", t >= w->target, "game_time", (json_int_t)t, "target",
                             (json_int_t)w->target, "ticks", (json_int_t)w->num));
  return true;
}

static void step_done(admin_op *o, int status) {
  if (status != 0) {
    admin_op_answer(o, status);
    return;
  }
  admin_waiter *w = calloc(1, sizeof *w);
  if (!w) {
    admin_fail(o->req, 500, "internal", "out of memory (the ticks run anyway)");
    admin_op_free(o);
    return;
  }
  w->req = o->req;
  w->target = o->target;
  w->num = o->num;
  w->deadline = uv_now(o->a->loop) + ADMIN_STEP_WAIT_MS;
  w->check = step_check;
  srv_admin *a = o->a;
  admin_op_free(o);
  admin_wait(a, w);
}

static void h_step(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  int64_t n;
  bool ok = admin_arg_int(req, body, "ticks", 1, 100000, true, 1, &n);
  json_decref(body);
  if (!ok) return;
  admin_op *o = admin_op_new(a, req, who, "world step %" PRId64, n);
  if (!o) return;
  o->num = n;
  o->prepare = step_prepare;
  o->apply = step_apply;
  o->done = step_done;
  admin_op_submit(o);
}

/* ------------------------------------------------------------------ tick rate */

static int nothing_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  (void)txn;
  (void)o;
  return 0;
}

static void tick_rate_apply(srv *s, admin_op *o) {
  pthread_mutex_lock(&s->mu);
  int was = s->cfg.tick_ms;
  s->cfg.tick_ms = (int)o->num;
  s->tick_rate_changed = true;
  pthread_mutex_unlock(&s->mu);
  atomic_store(&s->pub_tick_ms, (int)o->num);
  srv_admin *a = s->admin;
  if (a) {
    /* The measured figures describe the new rate from here on. */
    pthread_mutex_lock(&a->stats_mu);
    a->n_stats = a->i_stats = a->n_gaps = a->i_gaps = 0;
    a->last_end_us = 0;
    pthread_mutex_unlock(&a->stats_mu);
  }
  o->reply = json_pack("{s:I, s:i}", "tick_ms", (json_int_t)o->num, "previous_ms", was);
}

static void h_tick_rate(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  int64_t ms;
  bool ok = admin_arg_int(req, body, "ms", 0, 3600000, false, 0, &ms);
  json_decref(body);
  if (!ok) return;
  admin_op *o = admin_op_new(a, req, who, "world tick-rate %" PRId64, ms);
  if (!o) return;
  o->num = ms;
  o->prepare = nothing_prepare;
  o->apply = tick_rate_apply;
  admin_op_submit(o);
}

/* ------------------------------------------------------------------ the admin log */

typedef struct log_acc {
  json_t *list;
  int64_t left;
} log_acc;

static int log_entry(const store_admin_entry *e, void *ud) {
  log_acc *l = ud;
  if (l->left-- <= 0) return 1;
  json_t *j = json_pack("{s:I, s:I, s:s, s:s}", "seq", (json_int_t)e->seq, "time_ms", (json_int_t)e->time_ms, "who",
                        e->who, "what", e->what);
  return j && json_array_append_new(l->list, j) == 0 ? 0 : STORE_NOMEM;
}

static void log_read(admin_read *r, store_txn *txn) {
  log_acc l = {json_array(), r->num};
  int rc = l.list ? store_admin_log_iter(txn, true, log_entry, &l) : STORE_NOMEM;
  if (rc < 0) {
    json_decref(l.list);
    admin_read_refuse(r, 500, "store_error", "cannot read the admin log: %s", store_strerror(rc));
    return;
  }
  r->reply = json_pack("{s:o}", "entries", l.list);
}

static void h_log(srv_admin *a, web_req *req, const char *who) {
  const char *lim = web_req_query(req, "limit");
  char *end = NULL;
  long n = lim ? strtol(lim, &end, 10) : 50;
  if (lim && (!*lim || *end || n < 1 || n > STORE_ADMIN_LOG_KEEP)) {
    admin_fail(req, 400, "bad_request", "'limit' must be a whole number from 1 to %d", STORE_ADMIN_LOG_KEEP);
    return;
  }
  admin_note(who, "log --limit %ld", n);
  admin_read *r = admin_read_new(a, req);
  if (!r) return;
  r->num = n;
  admin_read_start(r, log_read);
}

/* ------------------------------------------------------------------ a new world */

typedef struct replayer {
  uint64_t id;
  char name[STORE_USERNAME_MAX];
  char from[16];
} replayer;

typedef struct replayers {
  const sim_world *w;
  replayer *p;
  size_t n, cap;
} replayers;

/* store_user_iter: keeps the users who own a room in the world (in id order). */
static int note_playing(const store_user *u, void *ud) {
  replayers *l = ud;
  size_t room, n = 0;
  if (sim_world_owned_rooms(l->w, u->id, &room, 1, &n) != SIM_OK || n == 0) return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    replayer *p = realloc(l->p, cap * sizeof *p);
    if (!p) return STORE_NOMEM;
    l->p = p;
    l->cap = cap;
  }
  replayer *r = &l->p[l->n++];
  r->id = u->id;
  snprintf(r->name, sizeof r->name, "%s", u->username);
  snprintf(r->from, sizeof r->from, "%s", sim_world_room_name(l->w, room));
  return 0;
}

static json_t *id_json(uint64_t id) {
  char b[24];
  snprintf(b, sizeof b, "%" PRIu64, id);
  return json_string(b);
}

/* world generate (o->num: rooms a side) and world reset (o->num 0: the current size).
 * o->flag: a seed was given (o->target). Everything happens in this op's txn: the old
 * world's records go, the new world is written, and every player who owned a room is
 * placed again, in id order; a failure after the world changed leaves ops.c to reload
 * the committed world (nothing is lost). */
static int replace_prepare(srv *s, store_txn *txn, admin_op *o) {
  const sim_world *w = srv_world_get(s);
  if (!w) return admin_refuse(o, 501, "no_world", "this server has no world");
  int side = o->num ? (int)o->num : (int)srv_world_size(s);
  uint64_t seed = o->flag ? o->target : world_seed(s);
  size_t old_rooms = sim_world_room_count(w);
  replayers l = {w, NULL, 0, 0};
  int rc = store_user_iter(txn, note_playing, &l);
  if (rc != STORE_OK) {
    free(l.p);
    return rc < 0 ? rc : STORE_NOMEM;
  }
  char err[256] = "";
  rc = srv_world_replace(s, txn, side, seed, err, sizeof err);
  if (rc != SIM_OK) {
    free(l.p);
    if (rc == SIM_INVALID) return admin_refuse(o, 400, "bad_request", "cannot make a %dx%d world: %s", side, side, err);
    return admin_refuse(o, 500, "internal", "cannot make a %dx%d world: %s", side, side, err);
  }
  json_t *placed = json_array(), *unplaced = json_array();
  int fail = placed && unplaced ? 0 : STORE_NOMEM;
  for (size_t i = 0; !fail && i < l.n; i++) {
    char room[16] = "";
    int j = srv_world_join(s, txn, l.p[i].id, l.p[i].name, NULL, 0, 0, NULL, room);
    json_t *e = NULL;
    if (j == SIM_OK)
      e = json_pack("{s:o, s:s, s:s, s:s}", "id", id_json(l.p[i].id), "username", l.p[i].name, "room", room, "from",
                    l.p[i].from);
    else if (j == SIM_NOROOM || j == SIM_INVALID || j == SIM_EXISTS)
      e = json_pack("{s:o, s:s, s:s, s:s}", "id", id_json(l.p[i].id), "username", l.p[i].name, "from", l.p[i].from,
                    "reason", j == SIM_NOROOM ? "no free room" : "the world refuses this player");
    else
      fail = STORE_NOMEM; /* the store refused the change: the op fails, the world is reloaded */
    if (!fail && (!e || json_array_append_new(j == SIM_OK ? placed : unplaced, e))) fail = STORE_NOMEM;
  }
  free(l.p);
  size_t rooms = sim_world_room_count(srv_world_get(s));
  if (!fail) {
    o->reply = json_pack("{s:I, s:i, s:i, s:I, s:I, s:I, s:o, s:o}", "rooms", (json_int_t)rooms, "width", side,
                         "height", side, "seed", (json_int_t)seed, "previous_rooms", (json_int_t)old_rooms, "game_time",
                         (json_int_t)s->game_time, "placed", placed, "unplaced", unplaced);
    if (!o->reply) fail = STORE_NOMEM;
    placed = unplaced = NULL;
  }
  json_decref(placed);
  json_decref(unplaced);
  if (fail) return fail;
  if (o->num == 0) {
    /* world reset: the log says what it reset to */
    snprintf(o->what + strlen(o->what), sizeof o->what - strlen(o->what), " (%dx%d, seed %" PRIu64 ")", side, side,
             seed);
  }
  return 0;
}

/* After the commit: every player's global starts over (the objects it may hold on to
 * are gone), as after a code upload; code and Memory are kept. */
static void replace_apply(srv *s, admin_op *o) {
  for (size_t i = 0; i < s->n_players; i++) sbx_vm_reset(s->players[i]->vm);
  json_object_set_new(o->reply, "globals_reset", json_integer((json_int_t)s->n_players));
  json_object_set_new(o->reply, "from_tick", json_integer((json_int_t)(s->game_time + 1)));
}

/* The optional "seed" of a generate or reset: o->flag and o->target. */
static bool seed_arg(web_req *req, json_t *body, admin_op *o) {
  int64_t seed;
  if (!admin_arg_int(req, body, "seed", 0, INT64_MAX, true, -1, &seed)) return false;
  o->flag = seed >= 0;
  o->target = o->flag ? (uint64_t)seed : 0;
  return true;
}

static void h_generate(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  int64_t n;
  const int64_t max = (int64_t)SIM_DW_MAX_ROOMS_SIDE * SIM_DW_MAX_ROOMS_SIDE;
  bool ok = admin_arg_int(req, body, "rooms", 1, max, false, 0, &n);
  admin_op o0 = {0};
  if (ok) ok = seed_arg(req, body, &o0);
  json_decref(body);
  if (!ok) return;
  uint32_t side = srv_world_side((size_t)n);
  admin_op *o;
  if (o0.flag)
    o = admin_op_new(a, req, who, "world generate %" PRId64 " --seed %" PRIu64 " (%" PRIu32 "x%" PRIu32 ")", n,
                     o0.target, side, side);
  else
    o = admin_op_new(a, req, who, "world generate %" PRId64 " (%" PRIu32 "x%" PRIu32 ")", n, side, side);
  if (!o) return;
  o->num = side;
  o->flag = o0.flag;
  o->target = o0.target;
  o->prepare = replace_prepare;
  o->apply = replace_apply;
  admin_op_submit(o);
}

static void h_reset(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  admin_op o0 = {0};
  bool ok = seed_arg(req, body, &o0);
  json_decref(body);
  if (!ok) return;
  admin_op *o = o0.flag ? admin_op_new(a, req, who, "world reset --seed %" PRIu64, o0.target)
                        : admin_op_new(a, req, who, "world reset");
  if (!o) return;
  o->num = 0;
  o->flag = o0.flag;
  o->target = o0.target;
  o->prepare = replace_prepare;
  o->apply = replace_apply;
  admin_op_submit(o);
}

/* A broadcast is an op like any change: its admin log entry is committed first, then the
 * message goes out on the websocket channel server-message (publish.c), to every
 * connected client. */
static void broadcast_done(admin_op *o, int status) {
  if (status == 0) {
    srv_publish_server_message(o->a->s, o->text);
    o->reply = json_pack("{s:b, s:s}", "sent", 1, "text", o->text);
  }
  admin_op_answer(o, status);
}

static void h_broadcast(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  char text[1024];
  bool ok = admin_arg_str(req, body, "text", false, text, sizeof text);
  json_decref(body);
  if (!ok) return;
  if (!text[0]) {
    admin_fail(req, 400, "bad_request", "'text' must not be empty");
    return;
  }
  admin_op *o = admin_op_new(a, req, who, "broadcast %.200s%s", text, strlen(text) > 200 ? "..." : "");
  if (!o) return;
  snprintf(o->text, sizeof o->text, "%s", text);
  o->prepare = nothing_prepare;
  o->done = broadcast_done;
  admin_op_submit(o);
}

int admin_time_install(srv_admin *a) {
  int rc;
  if ((rc = admin_route(a, "GET", "/admin/status", h_status)) ||
      (rc = admin_route(a, "POST", "/admin/world/pause", h_pause)) ||
      (rc = admin_route(a, "POST", "/admin/world/resume", h_resume)) ||
      (rc = admin_route(a, "POST", "/admin/world/step", h_step)) ||
      (rc = admin_route(a, "POST", "/admin/world/tick-rate", h_tick_rate)) ||
      (rc = admin_route(a, "POST", "/admin/world/generate", h_generate)) ||
      (rc = admin_route(a, "POST", "/admin/world/reset", h_reset)) ||
      (rc = admin_route(a, "POST", "/admin/broadcast", h_broadcast)) ||
      (rc = admin_route(a, "GET", "/admin/log", h_log)))
    return rc;
  return 0;
}
