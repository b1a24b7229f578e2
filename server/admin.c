/*
 * admin.c — the admin API's frame: who may talk to it, how it answers, how its changes
 * reach the store, and its life from start to stop.
 *
 * A second HTTP listener (web_new on the same loop), bound to loopback by default and
 * separate from the player API, so a firewall rule or a reverse proxy for players never
 * exposes it. Every request must come from loopback (unless --admin-remote) and carry
 * the admin token, a random 256-bit value the server writes on its first start to
 * <data-dir>/admin.token with mode 0600: whoever may read the data directory's secrets
 * may administer the world, nobody else. Next to it, admin.json tells isoworld-admin
 * where the listener is. The token is compared in constant time.
 *
 * What it must not do: answer before a change is committed (changes are ops, answered
 * from their done callback), trust anything a client sends (every argument is checked
 * here before an op exists; the store checks again), or block the loop (long reads go to
 * the thread pool, a backup to its own thread).
 */
#include "admin_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ answers, log */

void admin_ok(web_req *req, json_t *fields) {
  json_t *o = json_pack("{s:i}", "ok", 1);
  if (o && fields) json_object_update(o, fields);
  json_decref(fields);
  if (!o) {
    web_respond_error(req, 500, "out of memory");
    return;
  }
  web_respond(req, 200, o);
}

void admin_fail(web_req *req, int http, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *o = json_pack("{s:i, s:s, s:s}", "ok", 0, "error", msg, "code", code);
  if (!o) {
    web_respond_error(req, 500, "out of memory");
    return;
  }
  web_respond(req, http, o);
}

void admin_note(const char *who, const char *fmt, ...) {
  char what[STORE_ADMIN_WHAT_MAX + 128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  srv_log("admin %s: %s", who, what);
}

/* ------------------------------------------------------------------ arguments */

bool admin_body(web_req *req, json_t **out) {
  size_t len = 0;
  const char *b = web_req_body(req, &len);
  if (len == 0) {
    *out = json_object();
    if (!*out) admin_fail(req, 500, "internal", "out of memory");
    return *out != NULL;
  }
  json_error_t e;
  json_t *j = json_loadb(b, len, JSON_REJECT_DUPLICATES, &e);
  if (!j || !json_is_object(j)) {
    json_decref(j);
    admin_fail(req, 400, "bad_request", "the body must be a JSON object%s%s", j ? "" : ": ", j ? "" : e.text);
    return false;
  }
  *out = j;
  return true;
}

static bool printable(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return false;
  return true;
}

bool admin_arg_user(web_req *req, json_t *body, const char *key, char out[STORE_USERNAME_MAX]) {
  const char *v = NULL;
  if (body) {
    json_t *j = json_object_get(body, key);
    v = json_is_string(j) && strlen(json_string_value(j)) == json_string_length(j) ? json_string_value(j) : NULL;
  } else {
    v = web_req_query(req, key);
  }
  if (!v || !*v || strlen(v) >= STORE_USERNAME_MAX || !printable(v)) {
    admin_fail(req, 400, "bad_request", "'%s' must be a username (1 to %d characters)", key, STORE_USERNAME_MAX - 1);
    return false;
  }
  memcpy(out, v, strlen(v) + 1);
  return true;
}

bool admin_arg_int(web_req *req, json_t *body, const char *key, int64_t lo, int64_t hi, bool has_dflt, int64_t dflt,
                   int64_t *out) {
  json_t *j = json_object_get(body, key);
  if (!j || json_is_null(j)) {
    if (has_dflt) {
      *out = dflt;
      return true;
    }
    admin_fail(req, 400, "bad_request", "'%s' is required: a whole number from %" PRId64 " to %" PRId64, key, lo, hi);
    return false;
  }
  if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
    admin_fail(req, 400, "bad_request", "'%s' must be a whole number from %" PRId64 " to %" PRId64, key, lo, hi);
    return false;
  }
  *out = json_integer_value(j);
  return true;
}

bool admin_arg_str(web_req *req, json_t *body, const char *key, bool optional, char *out, size_t max) {
  json_t *j = json_object_get(body, key);
  if (!j || json_is_null(j)) {
    if (optional) {
      out[0] = '\0';
      return true;
    }
    admin_fail(req, 400, "bad_request", "'%s' is required", key);
    return false;
  }
  if (!json_is_string(j) || json_string_length(j) >= max || strlen(json_string_value(j)) != json_string_length(j)) {
    admin_fail(req, 400, "bad_request", "'%s' must be a string of at most %zu bytes", key, max - 1);
    return false;
  }
  memcpy(out, json_string_value(j), json_string_length(j) + 1);
  return true;
}

void admin_token_id(const unsigned char *hash, char out[17]) {
  sodium_bin2hex(out, 17, hash, 8);
}

json_t *admin_hex(const unsigned char *bytes, size_t n) {
  char buf[2 * 64 + 1];
  if (n > 64) n = 64;
  sodium_bin2hex(buf, sizeof buf, bytes, n);
  return json_string(buf);
}

/* ------------------------------------------------------------------ authentication */

static bool token_ok(srv_admin *a, web_req *req) {
  const char *t = web_req_header(req, "x-admin-token");
  const char *auth = web_req_header(req, "authorization");
  if ((!t || !*t) && auth && !strncasecmp(auth, "Bearer ", 7)) t = auth + 7;
  if (!t) return false;
  while (*t == ' ') t++;
  size_t n = strlen(a->token);
  return strlen(t) == n && sodium_memcmp(t, a->token, n) == 0;
}

/* "<name>@<peer>": the name the client gives (X-Admin-User, e.g. the OS user running
 * isoworld-admin; informative only, since the token is shared) and its address. */
static void who_of(web_req *req, char *out, size_t cap) {
  const char *u = web_req_header(req, "x-admin-user");
  char name[48];
  size_t k = 0;
  for (const char *p = u ? u : ""; *p && k < sizeof name - 1; p++) {
    unsigned char ch = (unsigned char)*p;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("._-+", ch))
      name[k++] = (char)ch;
  }
  name[k] = '\0';
  snprintf(out, cap, "%s@%s", k ? name : "admin", web_req_peer(req));
}

static void on_request(web_req *req, void *ud) {
  admin_route_ctx *r = ud;
  srv_admin *a = r->a;
  if (a->closing) {
    admin_fail(req, 503, "stopping", "the server is stopping");
    return;
  }
  if (!a->s->cfg.admin_remote && !web_req_is_loopback(req)) {
    srv_log("admin: refused %s %s from %s: not a loopback client", web_req_method(req), web_req_path(req),
            web_req_peer(req));
    admin_fail(req, 403, "forbidden",
               "the admin API answers loopback clients only (the server's --admin-remote allows others)");
    return;
  }
  if (!token_ok(a, req)) {
    srv_log("admin: refused %s %s from %s: missing or wrong admin token", web_req_method(req), web_req_path(req),
            web_req_peer(req));
    admin_fail(req, 401, "unauthorized", "missing or wrong admin token (it is in the server's %s)", "admin.token");
    return;
  }
  char who[STORE_ADMIN_WHO_MAX];
  who_of(req, who, sizeof who);
  r->fn(a, req, who);
}

int admin_route(srv_admin *a, const char *method, const char *path, admin_handler fn) {
  if (a->n_routes == ADMIN_ROUTES_MAX) return WEB_ENOMEM;
  admin_route_ctx *r = &a->routes[a->n_routes++];
  r->a = a;
  r->fn = fn;
  return web_route(a->w, method, path, on_request, r);
}

/* ------------------------------------------------------------------ ops */

admin_op *admin_op_new(srv_admin *a, web_req *req, const char *who, const char *what_fmt, ...) {
  admin_op *o = calloc(1, sizeof *o);
  if (!o) {
    admin_fail(req, 500, "internal", "out of memory");
    return NULL;
  }
  o->a = a;
  o->req = req;
  snprintf(o->who, sizeof o->who, "%s", who);
  va_list ap;
  va_start(ap, what_fmt);
  vsnprintf(o->what, sizeof o->what, what_fmt, ap);
  va_end(ap);
  return o;
}

admin_op *admin_user_op(srv_admin *a, web_req *req, const char *who, const char *verb) {
  json_t *body;
  if (!admin_body(req, &body)) return NULL;
  char name[STORE_USERNAME_MAX];
  bool ok = admin_arg_user(req, body, "user", name);
  json_decref(body);
  if (!ok) return NULL;
  admin_op *o = admin_op_new(a, req, who, "%s %s", verb, name);
  if (o) snprintf(o->name, sizeof o->name, "%s", name);
  return o;
}

void admin_op_free(admin_op *o) {
  if (!o) return;
  json_decref(o->reply);
  sodium_memzero(o->secret, sizeof o->secret);
  sodium_memzero(o->password_hash, sizeof o->password_hash);
  sodium_memzero(&o->user, sizeof o->user);
  free(o);
}

int admin_refuse(admin_op *o, int http, const char *code, const char *fmt, ...) {
  o->http = http;
  snprintf(o->code, sizeof o->code, "%s", code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->err, sizeof o->err, fmt, ap);
  va_end(ap);
  return 1;
}

int admin_op_find_user(store_txn *txn, admin_op *o) {
  int rc = store_user_find(txn, o->name, &o->user);
  if (rc == STORE_NOTFOUND || rc == STORE_INVALID)
    return admin_refuse(o, 404, "not_found", "no user named '%s'", o->name);
  if (rc != STORE_OK) return rc;
  o->uid = o->user.id;
  return 0;
}

static int op_prepare(srv *s, store_txn *txn, void *ud) {
  admin_op *o = ud;
  int rc = o->prepare(s, txn, o);
  if (rc != 0) return rc;
  /* The admin log entry is part of the change's own transaction: logged if and only if
   * committed. */
  store_admin_entry *e = calloc(1, sizeof *e);
  if (!e) return STORE_NOMEM;
  e->time_ms = srv_now_ms();
  snprintf(e->who, sizeof e->who, "%s", o->who);
  snprintf(e->what, sizeof e->what, "%s", o->what);
  rc = store_admin_log_append(txn, e);
  free(e);
  return rc;
}

static void op_apply(srv *s, void *ud) {
  admin_op *o = ud;
  if (o->apply) o->apply(s, o);
}

void admin_op_answer(admin_op *o, int status) {
  if (status == 0) {
    admin_ok(o->req, o->reply);
    o->reply = NULL;
  } else if (status > 0) {
    admin_fail(o->req, o->http ? o->http : 409, o->code[0] ? o->code : "refused", "%s", o->err);
  } else if (status == SRV_OP_STOPPED) {
    admin_fail(o->req, 503, "stopping", "the server is stopping; nothing was changed");
  } else {
    admin_fail(o->req, 500, "store_error", "the change could not be saved: %s", store_strerror(status));
  }
  admin_op_free(o);
}

static void op_done(srv *s, int status, void *ud) {
  (void)s;
  admin_op *o = ud;
  if (status == 0)
    admin_note(o->who, "%s: done", o->what);
  else if (status > 0)
    admin_note(o->who, "%s: refused: %s", o->what, o->err);
  else
    admin_note(o->who, "%s: failed: %s", o->what,
               status == SRV_OP_STOPPED ? "the server is stopping" : store_strerror(status));
  if (o->done)
    o->done(o, status);
  else
    admin_op_answer(o, status);
}

void admin_op_submit(admin_op *o) {
  int rc = srv_op_submit(o->a->s, op_prepare, op_apply, op_done, o);
  if (rc != 0) {
    admin_note(o->who, "%s: failed: the server is stopping", o->what);
    if (rc == SRV_OP_STOPPED)
      admin_fail(o->req, 503, "stopping", "the server is stopping; nothing was changed");
    else
      admin_fail(o->req, 500, "internal", "out of memory");
    admin_op_free(o);
  }
}

/* ------------------------------------------------------------------ reads */

admin_read *admin_read_new(srv_admin *a, web_req *req) {
  admin_read *r = calloc(1, sizeof *r);
  if (!r) {
    admin_fail(req, 500, "internal", "out of memory");
    return NULL;
  }
  r->a = a;
  r->req = req;
  return r;
}

void admin_read_refuse(admin_read *r, int http, const char *code, const char *fmt, ...) {
  r->http = http;
  snprintf(r->code, sizeof r->code, "%s", code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err, sizeof r->err, fmt, ap);
  va_end(ap);
  json_decref(r->reply);
  r->reply = NULL;
}

static void read_work(uv_work_t *w) {
  admin_read *r = (admin_read *)w;
  store_txn *txn;
  int rc = store_read_begin(r->a->s->db, &txn);
  if (rc != STORE_OK) {
    admin_read_refuse(r, 500, "store_error", "cannot read the store: %s", store_strerror(rc));
    return;
  }
  r->fn(r, txn);
  store_abort(txn);
}

static void read_after(uv_work_t *w, int status) {
  (void)status;
  admin_read *r = (admin_read *)w;
  if (r->http)
    admin_fail(r->req, r->http, r->code, "%s", r->err);
  else if (!r->reply)
    admin_fail(r->req, 500, "internal", "the read failed (out of memory?)");
  else {
    if (r->extra) json_object_update(r->reply, r->extra);
    admin_ok(r->req, r->reply);
    r->reply = NULL;
  }
  json_decref(r->reply);
  json_decref(r->extra);
  free(r);
}

void admin_read_start(admin_read *r, void (*fn)(admin_read *r, store_txn *txn)) {
  r->fn = fn;
  if (uv_queue_work(r->a->loop, &r->work, read_work, read_after) != 0) {
    admin_fail(r->req, 500, "internal", "cannot queue the read");
    json_decref(r->extra);
    free(r);
  }
}

/* ------------------------------------------------------------------ waiters */

static void sweep(srv_admin *a, bool ticked) {
  uint64_t now = uv_now(a->loop);
  admin_waiter **pp = &a->waiters;
  while (*pp) {
    admin_waiter *w = *pp;
    bool gone = !web_req_is_connected(w->req);
    bool answered = gone ? (admin_fail(w->req, 503, "gone", "client went away"), true)
                         : ((ticked || now >= w->deadline) && w->check(a, w, now >= w->deadline));
    if (answered) {
      *pp = w->next;
      free(w);
      atomic_fetch_sub(&a->n_waiters, 1);
    } else {
      pp = &w->next;
    }
  }
  if (!a->waiters && a->handles_live) uv_timer_stop(&a->sweep);
}

static void on_tick_async(uv_async_t *h) {
  sweep(h->data, true);
}

static void on_sweep(uv_timer_t *h) {
  sweep(h->data, false);
}

void admin_wait(srv_admin *a, admin_waiter *w) {
  if (a->closing || !a->handles_live) {
    admin_fail(w->req, 503, "stopping", "the server is stopping");
    free(w);
    return;
  }
  if (w->check(a, w, false)) {
    free(w);
    return;
  }
  w->next = a->waiters;
  a->waiters = w;
  atomic_fetch_add(&a->n_waiters, 1);
  if (!uv_is_active((uv_handle_t *)&a->sweep)) uv_timer_start(&a->sweep, on_sweep, 200, 200);
}

void srv_admin_after_tick(srv *s) {
  srv_admin *a = s->admin;
  if (!a) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
  pthread_mutex_lock(&a->stats_mu);
  a->dur_us[a->i_stats] = (uint64_t)atomic_load(&s->pub_last_tick_us);
  a->i_stats = (a->i_stats + 1) % ADMIN_STATS_WINDOW;
  if (a->n_stats < ADMIN_STATS_WINDOW) a->n_stats++;
  if (a->last_end_us) {
    a->gap_us[a->i_gaps] = now - a->last_end_us;
    a->i_gaps = (a->i_gaps + 1) % ADMIN_STATS_WINDOW;
    if (a->n_gaps < ADMIN_STATS_WINDOW) a->n_gaps++;
  }
  a->last_end_us = now;
  a->ticks_run++;
  pthread_mutex_unlock(&a->stats_mu);
  if (atomic_load(&a->any_follow)) {
    /* Followers that stopped polling lapse: then the tick's console costs nothing again. */
    int64_t ms = srv_now_ms();
    pthread_mutex_lock(&a->con_mu);
    size_t k = 0;
    for (size_t i = 0; i < a->n_follow; i++)
      if (a->follow[i].until_ms > ms) a->follow[k++] = a->follow[i];
    a->n_follow = k;
    atomic_store(&a->any_follow, k > 0);
    pthread_mutex_unlock(&a->con_mu);
  }
  if (atomic_load(&a->n_waiters) > 0) uv_async_send(&a->tick_async);
}

/* ------------------------------------------------------------------ files */

/* Writes `text` to path atomically (a temporary file renamed over it), mode 0600. */
static int write_file_atomic(const char *path, const char *text) {
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  size_t n = strlen(text);
  bool ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* The admin token: read from <data-dir>/admin.token, or made on the first start. */
static int load_token(srv_admin *a) {
  snprintf(a->token_path, sizeof a->token_path, "%s/admin.token", a->s->cfg.data_dir);
  int fd = open(a->token_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    struct stat st;
    char buf[sizeof a->token + 2];
    ssize_t n = fstat(fd, &st) == 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (n >= 0 && (st.st_mode & 077)) {
      /* Someone loosened it: tighten it again rather than run with a readable secret. */
      if (fchmod(fd, 0600) != 0) {
        srv_log("admin: %s is readable by others and cannot be made private: %s", a->token_path, strerror(errno));
        close(fd);
        return -1;
      }
      srv_log("admin: %s was readable by others; its mode is 0600 again", a->token_path);
    }
    close(fd);
    if (n < 0) {
      srv_log("admin: cannot read %s: %s", a->token_path, strerror(errno));
      return -1;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    size_t len = strlen(buf);
    bool ok = len >= 16 && len < sizeof a->token;
    for (size_t i = 0; ok && i < len; i++)
      ok = (buf[i] >= 'a' && buf[i] <= 'z') || (buf[i] >= 'A' && buf[i] <= 'Z') || (buf[i] >= '0' && buf[i] <= '9') ||
           buf[i] == '-' || buf[i] == '_';
    if (!ok) {
      srv_log("admin: %s does not hold a token (16 or more of A-Z a-z 0-9 - _); delete it to get a new one",
              a->token_path);
      sodium_memzero(buf, sizeof buf);
      return -1;
    }
    memcpy(a->token, buf, len + 1);
    sodium_memzero(buf, sizeof buf);
    return 0;
  }
  if (errno != ENOENT) {
    srv_log("admin: cannot open %s: %s", a->token_path, strerror(errno));
    return -1;
  }
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(a->token, sizeof a->token, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  char line[sizeof a->token + 2];
  snprintf(line, sizeof line, "%s\n", a->token);
  int rc = write_file_atomic(a->token_path, line);
  sodium_memzero(line, sizeof line);
  if (rc != 0) {
    srv_log("admin: cannot write %s: %s", a->token_path, strerror(errno));
    return -1;
  }
  srv_log("admin: new admin token written to %s (mode 0600)", a->token_path);
  return 0;
}

static int write_info(srv_admin *a) {
  const char *b = a->s->cfg.admin_bind;
  int port = web_port(a->w);
  bool v6 = strchr(b, ':') != NULL;
  if (!strcmp(b, "0.0.0.0"))
    snprintf(a->url, sizeof a->url, "http://127.0.0.1:%d", port);
  else if (!strcmp(b, "::"))
    snprintf(a->url, sizeof a->url, "http://[::1]:%d", port);
  else
    snprintf(a->url, sizeof a->url, v6 ? "http://[%s]:%d" : "http://%s:%d", b, port);
  snprintf(a->info_path, sizeof a->info_path, "%s/admin.json", a->s->cfg.data_dir);
  json_t *j = json_pack("{s:s, s:i, s:I, s:s, s:s}", "url", a->url, "port", port, "pid", (json_int_t)getpid(),
                        "version", ISOWORLD_VERSION, "token_file", "admin.token");
  char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
  json_decref(j);
  if (!text) return -1;
  size_t n = strlen(text);
  char *line = malloc(n + 2);
  int rc = -1;
  if (line) {
    memcpy(line, text, n);
    memcpy(line + n, "\n", 2);
    rc = write_file_atomic(a->info_path, line);
    free(line);
  }
  free(text);
  if (rc != 0) srv_log("admin: cannot write %s: %s", a->info_path, strerror(errno));
  return rc;
}

/* ------------------------------------------------------------------ lifecycle */

int srv_admin_lock_data_dir(srv *s) {
  long pid = 0;
  char holder[64];
  int rc = store_dir_lock_take(s->cfg.data_dir, "server", &s->dir_lock, &pid, holder, sizeof holder);
  if (rc == STORE_BUSY) {
    srv_log("the data directory %s is in use by %s%s (pid %ld): stop it first", s->cfg.data_dir,
            !strcmp(holder, "restore") ? "a restore" : "another isoworld", !strcmp(holder, "restore") ? "" : " server",
            pid);
    return -1;
  }
  if (rc != STORE_OK) {
    srv_log("cannot lock the data directory %s: %s", s->cfg.data_dir, store_strerror(rc));
    return -1;
  }
  return 0;
}

static void web_log(void *ud, int level, const char *message) {
  (void)ud;
  srv_log("admin http: %s%s", level == WEB_LOG_ERROR ? "error: " : level == WEB_LOG_WARN ? "warning: " : "", message);
}

static bool is_loopback_addr(const char *b) {
  return !strncmp(b, "127.", 4) || !strcmp(b, "::1");
}

int srv_admin_start(srv *s, uv_loop_t *loop) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->hold_cv, &ca);
  pthread_condattr_destroy(&ca);
  atomic_store(&s->pub_tick_ms, s->cfg.tick_ms);

  /* A pause survives restarts: an admin who stopped time to repair something does not
   * want a crash to restart it. */
  bool stored_pause = false;
  store_txn *txn;
  if (store_read_begin(s->db, &txn) == STORE_OK) {
    const void *v;
    size_t len;
    stored_pause = store_setting_get(txn, "paused", &v, &len) == STORE_OK && len == 1 && *(const char *)v == '1';
    store_abort(txn);
  }
  pthread_mutex_lock(&s->mu);
  s->paused = s->cfg.paused || stored_pause;
  pthread_mutex_unlock(&s->mu);
  if (s->paused)
    srv_log("time is paused (%s): `isoworld-admin world resume` starts it",
            stored_pause ? "an admin paused it" : "--paused");
  if (!s->cfg.admin) return 0;

  srv_admin *a = calloc(1, sizeof *a);
  if (!a) return -1;
  a->s = s;
  a->loop = loop;
  a->started_ms = srv_now_ms();
  pthread_mutex_init(&a->stats_mu, NULL);
  pthread_mutex_init(&a->con_mu, NULL);
  pthread_mutex_init(&a->bk_mu, NULL);
  if (load_token(a) != 0) goto fail;

  web_options wo;
  web_options_init(&wo);
  wo.bind_addr = s->cfg.admin_bind;
  wo.port = s->cfg.admin_port;
  wo.max_body = 1 << 20;
  wo.server_name = "isoworld-admin";
  wo.ws_path = "/admin/-"; /* no websocket here */
  wo.request_timeout_s = 125;
  wo.log = web_log;
  static const char *const capture[] = {"x-admin-token", "x-admin-user", NULL};
  wo.capture_headers = capture;
  int rc = web_new(loop, &wo, &a->w);
  if (rc != 0) {
    srv_log("cannot serve the admin API on %s:%d: %s (see --admin-port, --admin-bind, --no-admin)", s->cfg.admin_bind,
            s->cfg.admin_port, web_strerror(rc));
    goto fail;
  }
  if ((rc = admin_time_install(a)) || (rc = admin_users_install(a)) || (rc = admin_player_install(a)) ||
      (rc = admin_backup_install(a))) {
    srv_log("cannot set up the admin API: %s", web_strerror(rc));
    goto fail;
  }
  uv_async_init(loop, &a->tick_async, on_tick_async);
  a->tick_async.data = a;
  uv_timer_init(loop, &a->sweep);
  a->sweep.data = a;
  a->handles_live = true;
  if (write_info(a) != 0) goto fail;
  s->admin = a;
  /* (No "http://" here: scripts and tests look for the player API's address with it.) */
  srv_log("admin API on %s port %d (token in %s)%s", s->cfg.admin_bind, web_port(a->w), a->token_path,
          is_loopback_addr(s->cfg.admin_bind) ? ""
          : s->cfg.admin_remote               ? "; answering remote clients"
                                              : "; answering loopback clients only (--admin-remote)");
  return 0;
fail:
  s->admin = a; /* srv_admin_shutdown/close release it */
  return -1;
}

static void handle_closed(uv_handle_t *h) {
  (void)h;
}

void srv_admin_shutdown(srv *s) {
  srv_admin *a = s->admin;
  if (!a || a->closing) return;
  a->closing = true;
  while (a->waiters) {
    admin_waiter *w = a->waiters;
    a->waiters = w->next;
    admin_fail(w->req, 503, "stopping", "the server is stopping");
    free(w);
  }
  atomic_store(&a->n_waiters, 0);
  web_free(a->w);
  a->w = NULL;
  if (a->handles_live) {
    a->handles_live = false;
    uv_timer_stop(&a->sweep);
    uv_close((uv_handle_t *)&a->sweep, handle_closed);
    uv_close((uv_handle_t *)&a->tick_async, handle_closed);
  }
}

void srv_admin_close(srv *s) {
  srv_admin *a = s->admin;
  if (!a) return;
  admin_backup_close(a);
  admin_console_close(a);
  if (a->info_path[0]) unlink(a->info_path);
  sodium_memzero(a->token, sizeof a->token);
  pthread_mutex_destroy(&a->stats_mu);
  pthread_mutex_destroy(&a->con_mu);
  pthread_mutex_destroy(&a->bk_mu);
  s->admin = NULL;
  free(a);
}
