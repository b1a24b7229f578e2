/*
 * admin_int.h — what the files of the admin API share. Internal to server/admin*.c.
 *
 *   admin.c         lifecycle (data directory lock, token file, admin.json, listener),
 *                   authentication, logging, answers, the op and read plumbing, waiters
 *   admin_time.c    the tick thread's wait (pause, step, tick rate, backup hold), tick
 *                   statistics, world status/pause/resume/step/tick-rate/generate/reset,
 *                   broadcast, the admin log
 *   admin_users.c   users list/show/create/ban/unban/set-cpu/reset-password/tokens
 *   admin_player.c  player stats/reset-global/respawn/place-spawn and the console feed
 *                   admins follow
 *   admin_backup.c  backups taken while the server runs
 *
 * Every handler runs on the loop thread after the request passed the peer check and the
 * token check. Changes are ops (server.h): prepared and committed by the tick thread,
 * together with an entry of the store's admin log, and answered from the op's done
 * callback, so an admin is told "done" only once it is on disk. Reads that may be long
 * (lists, the state hash) run on libuv's thread pool in a read transaction.
 *
 * The admin API's JSON: success is HTTP 200 {"ok":1, ...}; a failure is {"ok":0,
 * "error":"<one line>", "code":"<word>"} with an HTTP status that says what kind:
 * 400 bad_request (arguments), 401 unauthorized, 403 forbidden (peer), 404 not_found,
 * 409 (a refusal given the state: exists, not_paused, busy, already_playing, no_room,
 * ...), 501 (not in this build: no_world), 503 stopping, 500 internal.
 */
#ifndef ISOWORLD_SERVER_ADMIN_INT_H
#define ISOWORLD_SERVER_ADMIN_INT_H

#include "server.h"
#include "web.h"

#define ADMIN_ROUTES_MAX 48
#define ADMIN_CONSOLE_LINES 4096       /* lines kept for followers, all players together */
#define ADMIN_CONSOLE_BYTES (1u << 20) /* and their bytes */
#define ADMIN_FOLLOW_MAX 64            /* players followed at once */
#define ADMIN_FOLLOW_TTL_MS 30000      /* a follow lapses this long after the last poll */
#define ADMIN_WAIT_MAX_MS 25000        /* longest long-poll */
#define ADMIN_STEP_WAIT_MS 110000      /* world step answers by then, done or not */
#define ADMIN_STATS_WINDOW 100         /* ticks in the measured tick statistics */

typedef struct srv_admin srv_admin;
typedef struct admin_waiter admin_waiter;
typedef struct admin_backup admin_backup;

typedef struct admin_line {
  uint64_t seq; /* increasing over all lines */
  uint64_t uid;
  uint64_t tick;
  int level; /* sbx_level */
  char *text;
  size_t len;
} admin_line;

typedef void (*admin_handler)(srv_admin *a, web_req *req, const char *who);

typedef struct admin_route_ctx {
  srv_admin *a;
  admin_handler fn;
} admin_route_ctx;

struct srv_admin {
  srv *s;
  uv_loop_t *loop;
  web *w;
  char token[128];
  char token_path[1100];
  char info_path[1100];
  char url[200];
  int64_t started_ms;
  bool closing;
  admin_route_ctx routes[ADMIN_ROUTES_MAX];
  size_t n_routes;

  /* waiters: loop thread only */
  uv_async_t tick_async; /* sent by the tick thread after a tick while someone waits */
  uv_timer_t sweep;      /* deadlines of waiters */
  bool handles_live;
  admin_waiter *waiters;
  atomic_int n_waiters;

  /* tick statistics: written by the tick thread, read by the loop thread */
  pthread_mutex_t stats_mu;
  uint64_t dur_us[ADMIN_STATS_WINDOW]; /* duration of each of the last ticks */
  uint64_t gap_us[ADMIN_STATS_WINDOW]; /* time between consecutive tick ends */
  size_t n_stats, i_stats, n_gaps, i_gaps;
  uint64_t last_end_us;
  uint64_t ticks_run; /* since start */

  /* console lines of followed players: tick thread appends, loop thread reads */
  pthread_mutex_t con_mu;
  admin_line ring[ADMIN_CONSOLE_LINES];
  size_t ring_first, ring_n, ring_bytes;
  uint64_t next_line_seq;
  struct {
    uint64_t uid;
    int64_t until_ms;
  } follow[ADMIN_FOLLOW_MAX];
  size_t n_follow;
  atomic_int any_follow;

  /* backups */
  pthread_mutex_t bk_mu;
  admin_backup *bk; /* the last or current one */
};

/* ---- answers (loop thread; each consumes req) */
/* {"ok":1} plus the fields of `fields` (stolen; may be NULL). */
void admin_ok(web_req *req, json_t *fields);
void admin_fail(web_req *req, int http, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One line in the server log: "admin <who>: <what>". */
void admin_note(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- request helpers. On failure they answer the request (400) and return false. */
/* Parses the body (a JSON object; empty: {}). */
bool admin_body(web_req *req, json_t **out);
/* The username in body[key] (or the query parameter `key` when body is NULL): 1..63
 * bytes, no control character. */
bool admin_arg_user(web_req *req, json_t *body, const char *key, char out[STORE_USERNAME_MAX]);
/* An integer in body[key] within lo..hi; `dflt` when absent and has_dflt. */
bool admin_arg_int(web_req *req, json_t *body, const char *key, int64_t lo, int64_t hi, bool has_dflt, int64_t dflt,
                   int64_t *out);
/* A string in body[key] of at most max-1 bytes (absent: "" when optional). */
bool admin_arg_str(web_req *req, json_t *body, const char *key, bool optional, char *out, size_t max);

/* ---- routes */
int admin_route(srv_admin *a, const char *method, const char *path, admin_handler fn);

/* ---- ops: a change, committed by the tick thread with its admin log entry */
typedef struct admin_op admin_op;
struct admin_op {
  srv_admin *a;
  web_req *req;
  char who[STORE_ADMIN_WHO_MAX];
  char what[STORE_ADMIN_WHAT_MAX];
  int (*prepare)(srv *s, store_txn *txn, admin_op *o); /* 0, > 0 refused (admin_refuse), < 0 store error */
  void (*apply)(srv *s, admin_op *o);                  /* may be NULL */
  void (*done)(admin_op *o, int status);               /* NULL: admin_op_answer */
  /* the refusal */
  int http;
  char code[32];
  char err[256];
  json_t *reply; /* fields of the success answer */
  /* arguments and results, as each op needs them */
  char name[STORE_USERNAME_MAX];
  uint64_t uid;
  int64_t num;
  uint64_t target;
  bool flag;
  store_user user;
  char secret[SRV_PASSWORD_MAX + 1]; /* a password (zeroed after use) */
  char password_hash[STORE_PASSWORD_HASH_MAX];
  char text[1024];
  char room[16];        /* player place-spawn */
  char spawn_name[104]; /* its --name ("": Spawn1) */
  int x, y;
  uv_work_t work; /* password hashing on the thread pool */
  int work_rc;
};

/* A new op for `req` (NULL and answered 500 on out of memory). what: the action as the
 * log shows it. */
admin_op *admin_op_new(srv_admin *a, web_req *req, const char *who, const char *what_fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The start of a handler acting on the one user its body names ("user"): parses the body
 * and the name, makes the op (logged as "<verb> <name>", o->name set). NULL: answered. */
admin_op *admin_user_op(srv_admin *a, web_req *req, const char *who, const char *verb);
/* Submits o (answers and frees it if the queue refuses). */
void admin_op_submit(admin_op *o);
/* Sets o's refusal; returns 1 (prepare's "refused"). */
int admin_refuse(admin_op *o, int http, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The default done: answers by status and frees o. */
void admin_op_answer(admin_op *o, int status);
void admin_op_free(admin_op *o);
/* Finds a user by name in prepare: fills o->user/o->uid, or refuses 404. */
int admin_op_find_user(store_txn *txn, admin_op *o);

/* ---- reads on the thread pool */
typedef struct admin_read admin_read;
struct admin_read {
  uv_work_t work;
  srv_admin *a;
  web_req *req;
  void (*fn)(admin_read *r, store_txn *txn); /* thread pool: fill reply or refuse */
  json_t *reply;
  int http;
  char code[32];
  char err[256];
  char name[STORE_USERNAME_MAX];
  int64_t num;
  bool flag;
  json_t *extra; /* built on the loop thread, merged into reply (stolen) */
};
admin_read *admin_read_new(srv_admin *a, web_req *req);
void admin_read_start(admin_read *r, void (*fn)(admin_read *r, store_txn *txn));
void admin_read_refuse(admin_read *r, int http, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- waiters: requests answered later, when ticks have happened or at a deadline */
struct admin_waiter {
  admin_waiter *next;
  web_req *req;
  uint64_t deadline; /* uv_now */
  /* Called after ticks and at the deadline (timeout true). Returns true once it has
   * answered req (the waiter is then freed). */
  bool (*check)(srv_admin *a, admin_waiter *w, bool timeout);
  uint64_t target, uid, after;
  size_t max_lines;
  int64_t num;
};
/* Adds w (malloc'd; freed by the admin) and checks it once at once. */
void admin_wait(srv_admin *a, admin_waiter *w);

/* ---- the parts */
int admin_time_install(srv_admin *a);
int admin_users_install(srv_admin *a);
int admin_player_install(srv_admin *a);
int admin_backup_install(srv_admin *a);
/* After the loop ended: waits for a backup thread and frees its state. */
void admin_backup_close(srv_admin *a);
/* Frees the console lines. */
void admin_console_close(srv_admin *a);
/* The token of a long-lived token's hash as the player API shows it (16 hex digits). */
void admin_token_id(const unsigned char *hash, char out[17]);
/* JSON of a hash (hex). */
json_t *admin_hex(const unsigned char *bytes, size_t n);

#endif
