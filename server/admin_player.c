/*
 * admin_player.c — one player as an admin sees it: stats, a reset of its global, its
 * console followed live; its place in the world (respawn, place-spawn).
 *
 * The console an admin follows is what the tick committed: the tick thread hands each
 * player's lines to srv_admin_console_feed after the commit, and only for players
 * someone follows (a follow lapses ADMIN_FOLLOW_TTL_MS after its last poll), so an
 * unfollowed world costs one atomic load per player per tick. The lines wait in one
 * ring shared by every followed player, bounded in lines and bytes; a follower that
 * falls behind the ring is told how many lines it missed. Followers long-poll:
 * GET /admin/player/console?user=&after=<seq>&wait=<ms> answers at once when lines
 * after `after` exist, else when the next ticks bring some, else at the deadline.
 * (When the websocket issue lands, its user:<id>/console publish path can feed the same
 * ring, or the CLI can subscribe there instead.)
 */
#include "admin_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ the console ring */

static bool followed_locked(srv_admin *a, uint64_t uid, int64_t now) {
  for (size_t i = 0; i < a->n_follow; i++)
    if (a->follow[i].uid == uid && a->follow[i].until_ms > now) return true;
  return false;
}

static void ring_drop_oldest(srv_admin *a) {
  admin_line *l = &a->ring[a->ring_first];
  a->ring_bytes -= l->len;
  free(l->text);
  l->text = NULL;
  a->ring_first = (a->ring_first + 1) % ADMIN_CONSOLE_LINES;
  a->ring_n--;
}

void srv_admin_console_feed(srv *s, const srv_player *p, uint64_t t, const sbx_line *lines, size_t n) {
  srv_admin *a = s->admin;
  if (!a || n == 0 || !atomic_load(&a->any_follow)) return;
  int64_t now = srv_now_ms();
  pthread_mutex_lock(&a->con_mu);
  if (followed_locked(a, p->id, now)) {
    for (size_t i = 0; i < n; i++) {
      size_t len = lines[i].len;
      if (len > ADMIN_CONSOLE_BYTES / 4) len = ADMIN_CONSOLE_BYTES / 4;
      char *copy = malloc(len + 1);
      if (!copy) break;
      memcpy(copy, lines[i].text, len);
      copy[len] = '\0';
      while (a->ring_n && (a->ring_n == ADMIN_CONSOLE_LINES || a->ring_bytes + len > ADMIN_CONSOLE_BYTES))
        ring_drop_oldest(a);
      size_t at = (a->ring_first + a->ring_n) % ADMIN_CONSOLE_LINES;
      a->ring[at] = (admin_line){++a->next_line_seq, p->id, t, (int)lines[i].level, copy, len};
      a->ring_n++;
      a->ring_bytes += len;
    }
  }
  pthread_mutex_unlock(&a->con_mu);
}

void admin_console_close(srv_admin *a) {
  while (a->ring_n) ring_drop_oldest(a);
}

/* Follows uid (again) for ADMIN_FOLLOW_TTL_MS. false when ADMIN_FOLLOW_MAX other
 * players are followed already. */
static bool follow(srv_admin *a, uint64_t uid) {
  int64_t now = srv_now_ms();
  pthread_mutex_lock(&a->con_mu);
  size_t k = 0;
  bool found = false;
  for (size_t i = 0; i < a->n_follow; i++) {
    if (a->follow[i].until_ms <= now) continue; /* lapsed */
    if (a->follow[i].uid == uid) {
      a->follow[i].until_ms = now + ADMIN_FOLLOW_TTL_MS;
      found = true;
    }
    a->follow[k++] = a->follow[i];
  }
  a->n_follow = k;
  if (!found && a->n_follow < ADMIN_FOLLOW_MAX) {
    a->follow[a->n_follow].uid = uid;
    a->follow[a->n_follow].until_ms = now + ADMIN_FOLLOW_TTL_MS;
    a->n_follow++;
    found = true;
  }
  atomic_store(&a->any_follow, a->n_follow > 0);
  pthread_mutex_unlock(&a->con_mu);
  return found;
}

static const char *level_name(int l) {
  switch (l) {
    case SBX_INFO: return "info";
    case SBX_WARN: return "warn";
    case SBX_ERROR: return "error";
    case SBX_DEBUG: return "debug";
    case SBX_RESULT: return "result";
    default: return "log";
  }
}

/* Lines of uid after `after` (at most max), and the sequence number to ask after next.
 * NULL when there are none yet. *missed: lines of the ring dropped before being read. */
static json_t *collect(srv_admin *a, uint64_t uid, uint64_t after, size_t max, uint64_t *next, uint64_t *missed) {
  json_t *arr = NULL;
  pthread_mutex_lock(&a->con_mu);
  uint64_t first = a->ring_n ? a->ring[a->ring_first].seq : a->next_line_seq + 1;
  *missed = after + 1 < first && after > 0 ? first - after - 1 : 0;
  *next = after > a->next_line_seq ? a->next_line_seq : after;
  size_t got = 0;
  for (size_t i = 0; i < a->ring_n && got < max; i++) {
    admin_line *l = &a->ring[(a->ring_first + i) % ADMIN_CONSOLE_LINES];
    if (l->seq <= after) continue;
    *next = l->seq;
    if (l->uid != uid) continue;
    if (!arr && !(arr = json_array())) break;
    json_t *text = json_stringn(l->text, l->len);
    if (!text) text = json_string("(a line that is not UTF-8)");
    json_t *j = json_pack("{s:I, s:I, s:s, s:o}", "seq", (json_int_t)l->seq, "tick", (json_int_t)l->tick, "level",
                          level_name(l->level), "text", text);
    if (!j || json_array_append_new(arr, j)) break;
    got++;
  }
  if (got < max && !arr) *next = a->next_line_seq; /* nothing for uid: skip the others' lines */
  pthread_mutex_unlock(&a->con_mu);
  return arr;
}

static bool console_check(srv_admin *a, admin_waiter *w, bool timeout) {
  follow(a, w->uid);
  uint64_t next, missed;
  json_t *lines = collect(a, w->uid, w->after, w->max_lines, &next, &missed);
  if (!lines && !timeout) return false;
  admin_ok(w->req,
           json_pack("{s:o, s:I, s:I, s:I}", "lines", lines ? lines : json_array(), "next", (json_int_t)next, "dropped",
                     (json_int_t)missed, "game_time", (json_int_t)atomic_load(&a->s->pub_game_time)));
  return true;
}

static void h_console(srv_admin *a, web_req *req, const char *who) {
  char name[STORE_USERNAME_MAX];
  if (!admin_arg_user(req, NULL, "user", name)) return;
  const char *after_s = web_req_query(req, "after"), *wait_s = web_req_query(req, "wait");
  char *end = NULL;
  unsigned long long after = 0;
  long wait = 20000;
  if (after_s) {
    after = strtoull(after_s, &end, 10);
    if (!*after_s || *end) {
      admin_fail(req, 400, "bad_request", "'after' must be a line number (the 'next' of the last answer)");
      return;
    }
  }
  if (wait_s) {
    wait = strtol(wait_s, &end, 10);
    if (!*wait_s || *end || wait < 0 || wait > ADMIN_WAIT_MAX_MS) {
      admin_fail(req, 400, "bad_request", "'wait' must be from 0 to %d ms", ADMIN_WAIT_MAX_MS);
      return;
    }
  }
  store_txn *txn;
  store_user u;
  int rc = store_read_begin(a->s->db, &txn);
  if (rc == STORE_OK) {
    rc = store_user_find(txn, name, &u);
    store_abort(txn);
  }
  if (rc == STORE_NOTFOUND || rc == STORE_INVALID) {
    admin_fail(req, 404, "not_found", "no user named '%s'", name);
    return;
  }
  if (rc != STORE_OK) {
    admin_fail(req, 500, "store_error", "cannot read the store: %s", store_strerror(rc));
    return;
  }
  if (!after_s) {
    /* A new follower: from now on. */
    admin_note(who, "player console %s", name);
    pthread_mutex_lock(&a->con_mu);
    after = a->next_line_seq;
    pthread_mutex_unlock(&a->con_mu);
  }
  if (!follow(a, u.id)) {
    admin_fail(req, 409, "busy", "the consoles of %d players are followed already; try again later", ADMIN_FOLLOW_MAX);
    return;
  }
  admin_waiter *w = calloc(1, sizeof *w);
  if (!w) {
    admin_fail(req, 500, "internal", "out of memory");
    return;
  }
  w->req = req;
  w->uid = u.id;
  w->after = after;
  w->max_lines = 1000;
  w->deadline = uv_now(a->loop) + (uint64_t)wait;
  w->check = console_check;
  admin_wait(a, w);
}

/* ------------------------------------------------------------------ stats */

static int count_module(const store_code_module *m, void *ud) {
  size_t *n = ud;
  n[0]++;
  n[1] += m->len;
  return 0;
}

static void stats_read(admin_read *r, store_txn *txn) {
  store_user u;
  int rc = store_user_find(txn, r->name, &u);
  if (rc == STORE_NOTFOUND || rc == STORE_INVALID) {
    admin_read_refuse(r, 404, "not_found", "no user named '%s'", r->name);
    return;
  }
  uint64_t gt = 0;
  store_cpu c = {0};
  const char *mem;
  size_t mlen = 0, segs = 0, seg_bytes = 0, modules[2] = {0, 0};
  int active[STORE_SEGMENTS_ACTIVE_MAX];
  size_t n_active = 0;
  bool has_cpu = false;
  if (rc == STORE_OK) rc = store_get_game_time(txn, &gt);
  if (rc == STORE_OK) {
    int x = store_cpu_get(txn, u.id, &c);
    has_cpu = x == STORE_OK;
    if (x != STORE_OK && x != STORE_NOTFOUND) rc = x;
  }
  if (rc == STORE_OK) {
    int x = store_memory_get(txn, u.id, &mem, &mlen);
    if (x != STORE_OK && x != STORE_NOTFOUND) rc = x;
  }
  for (int id = 0; rc == STORE_OK && id < SRV_SEGMENT_IDS; id++) {
    const char *d;
    size_t l;
    int x = store_segment_get(txn, u.id, id, &d, &l);
    if (x == STORE_OK) {
      segs++;
      seg_bytes += l;
    } else if (x != STORE_NOTFOUND) {
      rc = x;
    }
  }
  if (rc == STORE_OK) rc = store_segments_get_active(txn, u.id, active, STORE_SEGMENTS_ACTIVE_MAX, &n_active);
  if (rc == STORE_OK && u.active_branch[0])
    rc = store_code_iter_branch(txn, u.id, u.active_branch, count_module, modules);
  if (rc != STORE_OK) {
    admin_read_refuse(r, 500, "store_error", "cannot read user '%s': %s", r->name, store_strerror(rc));
    return;
  }
  char id[24];
  snprintf(id, sizeof id, "%" PRIu64, u.id);
  json_t *seg_active = json_array();
  for (size_t i = 0; seg_active && i < n_active; i++) json_array_append_new(seg_active, json_integer(active[i]));
  r->reply = json_pack(
      "{s:{s:s, s:s, s:s, s:b, s:I, s:{s:I, s:I}, s:{s:i, s:I, s:i, s:I, s:b}, s:{s:I}, s:{s:I, s:I, s:o}}}", "player",
      "id", id, "username", u.username, "branch", u.active_branch, "banned", (u.flags & SRV_USER_BANNED) != 0,
      "game_time", (json_int_t)gt, "code", "modules", (json_int_t)modules[0], "bytes", (json_int_t)modules[1], "cpu",
      "limit", (int)(has_cpu ? c.limit : u.cpu_limit), "bucket", (json_int_t)(has_cpu ? c.bucket : SIM_BUCKET_START),
      "last_used_ms", (int)c.last_used_ms, "last_tick", (json_int_t)c.last_tick, "ran_last_tick",
      has_cpu && c.last_tick == gt && gt > 0, "memory", "bytes", (json_int_t)mlen, "segments", "count",
      (json_int_t)segs, "bytes", (json_int_t)seg_bytes, "active", seg_active ? seg_active : json_array());
}

static void h_stats(srv_admin *a, web_req *req, const char *who) {
  admin_read *r = admin_read_new(a, req);
  if (!r) return;
  if (!admin_arg_user(req, NULL, "user", r->name)) {
    free(r);
    return;
  }
  admin_note(who, "player stats %s", r->name);
  admin_read_start(r, stats_read);
}

/* ------------------------------------------------------------------ reset-global */

static int reset_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  return admin_op_find_user(txn, o);
}

static void reset_apply(srv *s, admin_op *o) {
  srv_player *p = srv_player_find(s, o->uid);
  /* Between ticks, on the tick thread: no run of this vm is in progress. */
  if (p) sbx_vm_reset(p->vm);
  o->reply = json_pack("{s:s, s:b, s:I}", "username", o->user.username, "reset", p != NULL, "from_tick",
                       (json_int_t)(s->game_time + 1));
}

static void h_reset_global(srv_admin *a, web_req *req, const char *who) {
  admin_op *o = admin_user_op(a, req, who, "player reset-global");
  if (!o) return;
  o->prepare = reset_prepare;
  o->apply = reset_apply;
  admin_op_submit(o);
}

/* ------------------------------------------------------------------ respawn, place-spawn */

static json_t *id_json(uint64_t id) {
  char b[24];
  snprintf(b, sizeof b, "%" PRIu64, id);
  return json_string(b);
}

/* The names of the rooms uid owns (NULL: out of memory). */
static json_t *owned_rooms(const sim_world *w, uint64_t uid) {
  size_t rooms[64], n = 0;
  json_t *a = json_array();
  if (!a || sim_world_owned_rooms(w, uid, rooms, 64, &n) != SIM_OK) return a;
  for (size_t i = 0; i < n && i < 64; i++)
    if (json_array_append_new(a, json_string(sim_world_room_name(w, rooms[i])))) {
      json_decref(a);
      return NULL;
    }
  return a;
}

/* respawn: every object of the player goes (its rooms are released), then it is placed
 * again in a free room, and (apply) its global starts over. A refusal after the leave
 * changes nothing either: ops.c reloads the committed world. */
static int respawn_prepare(srv *s, store_txn *txn, admin_op *o) {
  int rc = admin_op_find_user(txn, o);
  if (rc) return rc;
  const sim_world *w = srv_world_get(s);
  if (!w) return admin_refuse(o, 501, "no_world", "this server has no world");
  size_t seen = 0, one;
  char free_room[16];
  json_t *prev = owned_rooms(w, o->uid);
  if (!prev) return STORE_NOMEM;
  /* Nothing to free and nowhere to go: refuse before touching the world. */
  if (json_array_size(prev) == 0 && sim_world_suggest_room(w, free_room) == SIM_NOROOM &&
      sim_world_visible_rooms(w, o->uid, &one, 1, &seen) == SIM_OK && seen == 0) {
    json_decref(prev);
    return admin_refuse(o, 409, "no_room", "no free room for %s in this world (world generate makes a bigger one)",
                        o->user.username);
  }
  rc = srv_world_leave(s, txn, o->uid);
  if (rc != SIM_OK && rc != SIM_NOTFOUND) {
    json_decref(prev);
    return STORE_NOMEM; /* the store refused the change */
  }
  bool removed = rc == SIM_OK;
  char room[16] = "";
  rc = srv_world_join(s, txn, o->uid, o->user.username, NULL, 0, 0, NULL, room);
  if (rc != SIM_OK) json_decref(prev);
  switch (rc) {
    case SIM_OK: break;
    case SIM_NOROOM:
      return admin_refuse(o, 409, "no_room", "no free room for %s in this world; nothing was changed",
                          o->user.username);
    case SIM_INVALID:
    case SIM_EXISTS:
      return admin_refuse(o, 409, "refused", "the world cannot place %s (%s); nothing was changed", o->user.username,
                          sim_strerror(rc));
    default: return STORE_NOMEM;
  }
  o->reply = json_pack("{s:s, s:o, s:s, s:o, s:b}", "username", o->user.username, "id", id_json(o->uid), "room", room,
                       "previous_rooms", prev, "removed", removed);
  return o->reply ? 0 : STORE_NOMEM;
}

static void respawn_apply(srv *s, admin_op *o) {
  srv_player *p = srv_player_find(s, o->uid);
  if (p) sbx_vm_reset(p->vm); /* as reset-global: between ticks, no run in progress */
  json_object_set_new(o->reply, "global_reset", json_boolean(p != NULL));
  json_object_set_new(o->reply, "from_tick", json_integer((json_int_t)(s->game_time + 1)));
}

static void h_respawn(srv_admin *a, web_req *req, const char *who) {
  admin_op *o = admin_user_op(a, req, who, "player respawn");
  if (!o) return;
  o->prepare = respawn_prepare;
  o->apply = respawn_apply;
  admin_op_submit(o);
}

/* A room name as Screeps writes them: W|E digits N|S digits (W1N1, E12S3). */
static bool room_name_ok(const char *r) {
  const char *p = r;
  if (*p != 'W' && *p != 'E') return false;
  p++;
  if (*p < '0' || *p > '9') return false;
  while (*p >= '0' && *p <= '9') p++;
  if (*p != 'N' && *p != 'S') return false;
  p++;
  if (*p < '0' || *p > '9') return false;
  while (*p >= '0' && *p <= '9') p++;
  return *p == '\0' && p - r < 16;
}

/* place-spawn: only for a player with no room; everything is checked before the world
 * changes, so a refusal costs nothing. */
static int place_prepare(srv *s, store_txn *txn, admin_op *o) {
  int rc = admin_op_find_user(txn, o);
  if (rc) return rc;
  const sim_world *w = srv_world_get(s);
  if (!w) return admin_refuse(o, 501, "no_world", "this server has no world");
  size_t idx;
  if (sim_world_room_index(w, o->room, &idx) != SIM_OK) {
    uint32_t side = srv_world_size(s);
    size_t n = sim_world_room_count(w);
    return admin_refuse(o, 404, "not_found", "no room %s in this world (%" PRIu32 "x%" PRIu32 " rooms: %s ... %s)",
                        o->room, side, side, sim_world_room_name(w, 0), sim_world_room_name(w, n ? n - 1 : 0));
  }
  json_t *has = owned_rooms(w, o->uid);
  if (!has) return STORE_NOMEM;
  if (json_array_size(has)) {
    const char *r0 = json_string_value(json_array_get(has, 0));
    admin_refuse(o, 409, "already_playing", "%s is already playing (owns %s): respawn them instead",
                 o->user.username, r0 ? r0 : "a room");
    json_decref(has);
    return 1;
  }
  json_decref(has);
  char got[16] = "";
  rc = srv_world_join(s, txn, o->uid, o->user.username, o->room, o->x, o->y, o->spawn_name[0] ? o->spawn_name : NULL,
                      got);
  switch (rc) {
    case SIM_OK: break;
    case SIM_EXISTS:
      return admin_refuse(o, 409, "already_playing",
                          "%s is already playing (has objects in the world): respawn them instead", o->user.username);
    case SIM_NOTFOUND: return admin_refuse(o, 404, "not_found", "no room %s in this world", o->room);
    case SIM_NOROOM:
      return admin_refuse(o, 409, "no_room",
                          "%s %d,%d is not free: the room has an owner or someone's objects, or the tile is a wall or "
                          "taken",
                          o->room, o->x, o->y);
    case SIM_INVALID:
      return admin_refuse(o, 400, "bad_request", "the world refuses this spawn (its name, or the username)");
    default: return STORE_NOMEM;
  }
  o->reply = json_pack("{s:s, s:o, s:s, s:i, s:i, s:s}", "username", o->user.username, "id", id_json(o->uid), "room",
                       got, "x", o->x, "y", o->y, "spawn", o->spawn_name[0] ? o->spawn_name : "Spawn1");
  return o->reply ? 0 : STORE_NOMEM;
}

static void h_place_spawn(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  char name[STORE_USERNAME_MAX], room[32], spawn[sizeof ((admin_op *)0)->spawn_name];
  int64_t x, y;
  bool ok = admin_arg_user(req, body, "user", name) && admin_arg_str(req, body, "room", false, room, sizeof room) &&
            admin_arg_int(req, body, "x", 0, 49, false, 0, &x) && admin_arg_int(req, body, "y", 0, 49, false, 0, &y) &&
            admin_arg_str(req, body, "name", true, spawn, 101);
  json_decref(body);
  if (!ok) return;
  if (!room_name_ok(room)) {
    admin_fail(req, 400, "bad_request", "'%s' is not a room name (like W1N1 or E2S3)", room);
    return;
  }
  if (x < 1 || x > 48 || y < 1 || y > 48) {
    admin_fail(req, 400, "bad_request", "a spawn cannot stand on a room's edge: x and y must be 1 to 48");
    return;
  }
  for (const unsigned char *p = (const unsigned char *)spawn; *p; p++)
    if (*p < 0x20 || *p == '"' || *p == '\\' || *p == 0x7f) {
      admin_fail(req, 400, "bad_request", "'name' must be printable, without quotes or backslashes");
      return;
    }
  admin_op *o = spawn[0] ? admin_op_new(a, req, who, "player place-spawn %s %s %" PRId64 " %" PRId64 " --name %s",
                                        name, room, x, y, spawn)
                         : admin_op_new(a, req, who, "player place-spawn %s %s %" PRId64 " %" PRId64, name, room, x, y);
  if (!o) return;
  snprintf(o->name, sizeof o->name, "%s", name);
  snprintf(o->room, sizeof o->room, "%.15s", room); /* room_name_ok: < 16 bytes */
  snprintf(o->spawn_name, sizeof o->spawn_name, "%s", spawn);
  o->x = (int)x;
  o->y = (int)y;
  o->prepare = place_prepare;
  admin_op_submit(o);
}

int admin_player_install(srv_admin *a) {
  int rc;
  if ((rc = admin_route(a, "GET", "/admin/player/stats", h_stats)) ||
      (rc = admin_route(a, "POST", "/admin/player/reset-global", h_reset_global)) ||
      (rc = admin_route(a, "GET", "/admin/player/console", h_console)) ||
      (rc = admin_route(a, "POST", "/admin/player/respawn", h_respawn)) ||
      (rc = admin_route(a, "POST", "/admin/player/place-spawn", h_place_spawn)))
    return rc;
  return 0;
}
