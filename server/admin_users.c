/*
 * admin_users.c — accounts as admins manage them: list, show, create, ban, unban, CPU
 * limit, password reset, long-lived tokens.
 *
 * The same records and rules as the player API (players.h): names and emails are
 * validated the same way, passwords are argon2id hashes made on the thread pool, tokens
 * are stored as hashes only and shown once. Every change is an op on the tick thread,
 * which also updates the player in RAM (apply) so a ban or a CPU limit holds from the
 * next tick on: a banned player never runs, and the player API refuses a banned user on
 * every request (it reads the user record each time), so a ban takes effect at once.
 */
#include "admin_int.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *id_json(uint64_t id) {
  char b[24];
  snprintf(b, sizeof b, "%" PRIu64, id);
  return json_string(b);
}

/* The JSON of a user (never its password hash). */
static json_t *user_json(store_txn *txn, const store_user *u) {
  store_cpu c;
  bool has_cpu = store_cpu_get(txn, u->id, &c) == STORE_OK;
  json_t *j = json_pack("{s:o, s:s, s:s, s:s, s:i, s:b, s:I, s:b, s:s}", "id", id_json(u->id), "username", u->username,
                        "email", u->email, "status", (u->flags & SRV_USER_BANNED) ? "banned" : "active", "cpu",
                        (int)u->cpu_limit, "banned", (u->flags & SRV_USER_BANNED) != 0, "created_ms",
                        (json_int_t)u->created_ms, "password", u->password_hash[0] != '\0', "branch", u->active_branch);
  if (j && has_cpu) {
    json_object_set_new(j, "bucket", json_integer(c.bucket));
    json_object_set_new(j, "last_tick", json_integer((json_int_t)c.last_tick));
    json_object_set_new(j, "last_cpu_ms", json_integer(c.last_used_ms));
  }
  return j;
}

/* ------------------------------------------------------------------ list */

typedef struct list_acc {
  store_txn *txn;
  json_t *list;
} list_acc;

static int list_user(const store_user *u, void *ud) {
  list_acc *l = ud;
  json_t *j = user_json(l->txn, u);
  return j && json_array_append_new(l->list, j) == 0 ? 0 : STORE_NOMEM;
}

static void list_read(admin_read *r, store_txn *txn) {
  list_acc l = {txn, json_array()};
  int rc = l.list ? store_user_iter(txn, list_user, &l) : STORE_NOMEM;
  if (rc != STORE_OK) {
    json_decref(l.list);
    admin_read_refuse(r, 500, "store_error", "cannot list the users: %s", store_strerror(rc));
    return;
  }
  r->reply = json_pack("{s:o}", "users", l.list);
}

static void h_list(srv_admin *a, web_req *req, const char *who) {
  admin_note(who, "users list");
  admin_read *r = admin_read_new(a, req);
  if (r) admin_read_start(r, list_read);
}

/* ------------------------------------------------------------------ show */

typedef struct show_acc {
  store_txn *txn;
  uint64_t uid;
  json_t *arr;
} show_acc;

static int count_module(const store_code_module *m, void *ud) {
  size_t *n = ud;
  n[0]++;
  n[1] += m->len;
  return 0;
}

static int show_branch(const store_branch *b, void *ud) {
  show_acc *s = ud;
  size_t n[2] = {0, 0};
  int rc = store_code_iter_branch(s->txn, s->uid, b->name, count_module, n);
  if (rc != STORE_OK) return rc;
  json_t *j =
      json_pack("{s:s, s:b, s:b, s:I, s:I, s:I}", "name", b->name, "active_world",
                (b->flags & STORE_BRANCH_ACTIVE_WORLD) != 0, "active_sim", (b->flags & STORE_BRANCH_ACTIVE_SIM) != 0,
                "modules", (json_int_t)n[0], "bytes", (json_int_t)n[1], "timestamp_ms", (json_int_t)b->timestamp_ms);
  return j && json_array_append_new(s->arr, j) == 0 ? 0 : STORE_NOMEM;
}

static int show_token(const unsigned char *hash, const store_token *t, void *ud) {
  show_acc *s = ud;
  char id[17];
  admin_token_id(hash, id);
  json_t *j = json_pack("{s:s, s:s, s:I, s:I}", "id", id, "label", t->label, "created_ms", (json_int_t)t->created_ms,
                        "expires_ms", (json_int_t)t->expires_ms);
  return j && json_array_append_new(s->arr, j) == 0 ? 0 : STORE_NOMEM;
}

static int count_cmd(uint64_t seq, const char *expr, size_t len, void *ud) {
  (void)seq;
  (void)expr;
  (void)len;
  (*(size_t *)ud)++;
  return 0;
}

static void show_read(admin_read *r, store_txn *txn) {
  store_user u;
  int rc = store_user_find(txn, r->name, &u);
  if (rc == STORE_NOTFOUND || rc == STORE_INVALID) {
    admin_read_refuse(r, 404, "not_found", "no user named '%s'", r->name);
    return;
  }
  json_t *j = rc == STORE_OK ? user_json(txn, &u) : NULL;
  show_acc s = {txn, u.id, json_array()};
  if (j && s.arr && (rc = store_branch_iter(txn, u.id, show_branch, &s)) == STORE_OK)
    json_object_set_new(j, "branches", s.arr);
  else
    json_decref(s.arr);
  s.arr = json_array();
  if (j && s.arr && rc == STORE_OK && (rc = store_token_iter(txn, u.id, show_token, &s)) == STORE_OK)
    json_object_set_new(j, "tokens", s.arr);
  else
    json_decref(s.arr);
  const char *mem;
  size_t mlen = 0, cmds = 0;
  if (rc == STORE_OK) {
    int m = store_memory_get(txn, u.id, &mem, &mlen);
    if (m != STORE_OK && m != STORE_NOTFOUND) rc = m;
  }
  if (rc == STORE_OK) rc = store_console_iter(txn, u.id, count_cmd, &cmds);
  if (rc != STORE_OK || !j) {
    json_decref(j);
    admin_read_refuse(r, 500, "store_error", "cannot read user '%s': %s", r->name, store_strerror(rc));
    return;
  }
  json_object_set_new(j, "memory_bytes", json_integer((json_int_t)mlen));
  json_object_set_new(j, "console_queue", json_integer((json_int_t)cmds));
  r->reply = json_pack("{s:o}", "user", j);
}

static void h_show(srv_admin *a, web_req *req, const char *who) {
  admin_read *r = admin_read_new(a, req);
  if (!r) return;
  if (!admin_arg_user(req, NULL, "user", r->name)) {
    free(r);
    return;
  }
  admin_note(who, "users show %s", r->name);
  admin_read_start(r, show_read);
}

/* ------------------------------------------------------------------ create */

static int create_prepare(srv *s, store_txn *txn, admin_op *o) {
  int rc = srv_user_create(s, txn, &o->user, NULL, 0);
  if (rc == STORE_EXISTS)
    return admin_refuse(o, 409, "exists", "a user named '%s'%s already exists", o->user.username,
                        o->user.email[0] ? " or with that email" : "");
  return rc;
}

static void create_apply(srv *s, admin_op *o) {
  store_txn *txn;
  int rc = store_read_begin(s->db, &txn);
  if (rc == STORE_OK) {
    rc = srv_player_add(s, txn, &o->user);
    store_abort(txn);
  }
  if (rc != STORE_OK)
    srv_log("user %s is created but could not be loaded: %s (runs after a restart)", o->user.username,
            store_strerror(rc));
  atomic_store(&s->pub_users, s->n_players);
  o->reply = json_pack("{s:{s:o, s:s, s:s, s:i}}", "user", "id", id_json(o->user.id), "username", o->user.username,
                       "email", o->user.email, "cpu", (int)o->user.cpu_limit);
}

static void hash_work(uv_work_t *w) {
  admin_op *o = (admin_op *)((char *)w - offsetof(admin_op, work));
  o->work_rc = srv_password_hash(o->secret, o->password_hash);
  /* A generated password stays in `secret` until it is answered (shown once). */
  if (!o->flag) sodium_memzero(o->secret, sizeof o->secret);
}

static void create_hashed(uv_work_t *w, int status) {
  (void)status;
  admin_op *o = (admin_op *)((char *)w - offsetof(admin_op, work));
  if (o->work_rc != 0) {
    admin_fail(o->req, 500, "internal", "cannot hash the password");
    admin_op_free(o);
    return;
  }
  memcpy(o->user.password_hash, o->password_hash, sizeof o->user.password_hash);
  admin_op_submit(o);
}

static void h_create(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  char name[STORE_USERNAME_MAX], email[STORE_EMAIL_MAX], password[SRV_PASSWORD_MAX + 2];
  int64_t cpu;
  bool ok = admin_arg_str(req, body, "username", false, name, sizeof name) &&
            admin_arg_str(req, body, "email", true, email, sizeof email) &&
            admin_arg_str(req, body, "password", true, password, sizeof password) &&
            admin_arg_int(req, body, "cpu", 1, 10000, true, a->s->cfg.cpu_limit, &cpu);
  json_decref(body);
  if (!ok) {
    sodium_memzero(password, sizeof password);
    return;
  }
  const char *err = NULL;
  if (!srv_username_is_valid(name))
    err = "invalid username: 3 to 30 letters, digits, '_' or '-'";
  else if (email[0] && !srv_email_is_valid(email))
    err = "invalid email";
  else if (password[0] && (strlen(password) < SRV_PASSWORD_MIN || strlen(password) > SRV_PASSWORD_MAX))
    err = "invalid password: 8 to 256 characters";
  if (err) {
    sodium_memzero(password, sizeof password);
    admin_fail(req, 400, "bad_request", "%s", err);
    return;
  }
  admin_op *o = admin_op_new(a, req, who, "users create %s%s%s --cpu %" PRId64 "%s", name, email[0] ? " --email " : "",
                             email, cpu, password[0] ? " (with a password)" : "");
  if (!o) {
    sodium_memzero(password, sizeof password);
    return;
  }
  snprintf(o->user.username, sizeof o->user.username, "%s", name);
  snprintf(o->user.email, sizeof o->user.email, "%s", email);
  o->user.cpu_limit = (int32_t)cpu;
  o->prepare = create_prepare;
  o->apply = create_apply;
  if (!password[0]) {
    admin_op_submit(o);
    return;
  }
  snprintf(o->secret, sizeof o->secret, "%s", password);
  sodium_memzero(password, sizeof password);
  if (uv_queue_work(a->loop, &o->work, hash_work, create_hashed) != 0) {
    admin_fail(req, 500, "internal", "cannot queue the work");
    admin_op_free(o);
  }
}

/* ------------------------------------------------------------------ ban, unban */

static int ban_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  int rc = admin_op_find_user(txn, o);
  if (rc) return rc;
  uint32_t was = o->user.flags;
  if (o->flag)
    o->user.flags |= SRV_USER_BANNED;
  else
    o->user.flags &= ~SRV_USER_BANNED;
  o->num = was != o->user.flags;
  return o->num ? store_user_put(txn, &o->user) : 0;
}

static void ban_apply(srv *s, admin_op *o) {
  srv_player *p = srv_player_find(s, o->uid);
  if (p) p->flags = o->user.flags;
  o->reply = json_pack("{s:s, s:b, s:b}", "username", o->user.username, "banned", o->flag, "changed", o->num != 0);
}

static void ban(srv_admin *a, web_req *req, const char *who, bool on) {
  admin_op *o = admin_user_op(a, req, who, on ? "users ban" : "users unban");
  if (!o) return;
  o->flag = on;
  o->prepare = ban_prepare;
  o->apply = ban_apply;
  admin_op_submit(o);
}

static void h_ban(srv_admin *a, web_req *req, const char *who) {
  ban(a, req, who, true);
}

static void h_unban(srv_admin *a, web_req *req, const char *who) {
  ban(a, req, who, false);
}

/* ------------------------------------------------------------------ set-cpu */

static int cpu_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  int rc = admin_op_find_user(txn, o);
  if (rc) return rc;
  o->target = (uint64_t)o->user.cpu_limit;
  o->user.cpu_limit = (int32_t)o->num;
  if ((rc = store_user_put(txn, &o->user)) != STORE_OK) return rc;
  store_cpu c;
  rc = store_cpu_get(txn, o->uid, &c);
  if (rc == STORE_NOTFOUND) {
    c = (store_cpu){0};
    c.bucket = SIM_BUCKET_START;
  } else if (rc != STORE_OK) {
    return rc;
  }
  c.limit = (int32_t)o->num;
  return store_cpu_put(txn, o->uid, &c);
}

static void cpu_apply(srv *s, admin_op *o) {
  srv_player *p = srv_player_find(s, o->uid);
  if (p) p->cpu.limit = (int32_t)o->num;
  o->reply = json_pack("{s:s, s:I, s:I}", "username", o->user.username, "cpu", (json_int_t)o->num, "previous",
                       (json_int_t)o->target);
}

static void h_set_cpu(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  char name[STORE_USERNAME_MAX];
  int64_t cpu;
  bool ok = admin_arg_user(req, body, "user", name) && admin_arg_int(req, body, "cpu", 1, 10000, false, 0, &cpu);
  json_decref(body);
  if (!ok) return;
  admin_op *o = admin_op_new(a, req, who, "users set-cpu %s %" PRId64, name, cpu);
  if (!o) return;
  snprintf(o->name, sizeof o->name, "%s", name);
  o->num = cpu;
  o->prepare = cpu_prepare;
  o->apply = cpu_apply;
  admin_op_submit(o);
}

/* ------------------------------------------------------------------ reset-password */

static int password_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  int rc = admin_op_find_user(txn, o);
  if (rc) return rc;
  memcpy(o->user.password_hash, o->password_hash, sizeof o->user.password_hash);
  if ((rc = store_user_put(txn, &o->user)) != STORE_OK) return rc;
  o->reply = json_pack("{s:s}", "username", o->user.username);
  if (o->reply && o->flag) json_object_set_new(o->reply, "password", json_string(o->secret));
  sodium_memzero(o->secret, sizeof o->secret);
  return 0;
}

static void password_hashed(uv_work_t *w, int status) {
  (void)status;
  admin_op *o = (admin_op *)((char *)w - offsetof(admin_op, work));
  if (o->work_rc != 0) {
    admin_fail(o->req, 500, "internal", "cannot hash the password");
    admin_op_free(o);
    return;
  }
  admin_op_submit(o);
}

static void h_reset_password(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  char name[STORE_USERNAME_MAX], password[SRV_PASSWORD_MAX + 2];
  bool ok =
      admin_arg_user(req, body, "user", name) && admin_arg_str(req, body, "password", true, password, sizeof password);
  json_decref(body);
  if (!ok) {
    sodium_memzero(password, sizeof password);
    return;
  }
  if (password[0] && (strlen(password) < SRV_PASSWORD_MIN || strlen(password) > SRV_PASSWORD_MAX)) {
    sodium_memzero(password, sizeof password);
    admin_fail(req, 400, "bad_request", "invalid password: 8 to 256 characters");
    return;
  }
  admin_op *o = admin_op_new(a, req, who, "users reset-password %s%s", name, password[0] ? "" : " (generated)");
  if (!o) {
    sodium_memzero(password, sizeof password);
    return;
  }
  snprintf(o->name, sizeof o->name, "%s", name);
  if (password[0]) {
    snprintf(o->secret, sizeof o->secret, "%s", password);
  } else {
    /* 18 random bytes: a 24-character password, shown once in the answer. */
    unsigned char raw[18];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(o->secret, sizeof o->secret, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    o->flag = true;
  }
  sodium_memzero(password, sizeof password);
  o->prepare = password_prepare;
  if (uv_queue_work(a->loop, &o->work, hash_work, password_hashed) != 0) {
    admin_fail(req, 500, "internal", "cannot queue the work");
    admin_op_free(o);
  }
}

/* ------------------------------------------------------------------ tokens */

static int issue_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  int rc = admin_op_find_user(txn, o);
  if (rc) return rc;
  char token[SRV_TOKEN_MAX];
  unsigned char hash[SRV_TOKEN_HASH_BYTES];
  if (srv_token_long_new(o->uid, token, hash) != 0) return STORE_INTERNAL;
  store_token t = {0};
  t.created_ms = srv_now_ms();
  t.expires_ms = o->num ? t.created_ms + o->num * 86400000LL : 0;
  snprintf(t.label, sizeof t.label, "%.*s", (int)sizeof t.label - 1, o->text);
  rc = store_token_put(txn, o->uid, hash, &t);
  if (rc == STORE_OK) {
    char id[17];
    admin_token_id(hash, id);
    o->reply = json_pack("{s:s, s:s, s:s, s:s, s:I}", "username", o->user.username, "token", token, "id", id, "label",
                         t.label, "expires_ms", (json_int_t)t.expires_ms);
  }
  sodium_memzero(token, sizeof token);
  return rc;
}

static void h_issue_token(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  char name[STORE_USERNAME_MAX], label[STORE_TOKEN_LABEL_MAX];
  int64_t days;
  bool ok = admin_arg_user(req, body, "user", name) && admin_arg_str(req, body, "label", true, label, sizeof label) &&
            admin_arg_int(req, body, "days", 0, 3650, true, 0, &days);
  json_decref(body);
  if (!ok) return;
  admin_op *o = admin_op_new(a, req, who, "users issue-token %s%s%s%s", name, label[0] ? " --label " : "", label,
                             days ? " (expiring)" : "");
  if (!o) return;
  snprintf(o->name, sizeof o->name, "%s", name);
  snprintf(o->text, sizeof o->text, "%s", label);
  o->num = days;
  o->prepare = issue_prepare;
  admin_op_submit(o);
}

typedef struct revoke_acc {
  admin_op *o;
  unsigned char (*hashes)[SRV_TOKEN_HASH_BYTES];
  size_t n, cap;
} revoke_acc;

static int match_token(const unsigned char *hash, const store_token *t, void *ud) {
  (void)t;
  revoke_acc *r = ud;
  char id[17];
  admin_token_id(hash, id);
  if (!r->o->flag && strcmp(id, r->o->text) != 0) return 0;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    void *p = realloc(r->hashes, cap * sizeof *r->hashes);
    if (!p) return STORE_NOMEM;
    r->hashes = p;
    r->cap = cap;
  }
  memcpy(r->hashes[r->n++], hash, SRV_TOKEN_HASH_BYTES);
  return 0;
}

static int revoke_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  int rc = admin_op_find_user(txn, o);
  if (rc) return rc;
  revoke_acc r = {o, NULL, 0, 0};
  rc = store_token_iter(txn, o->uid, match_token, &r);
  /* Deleted after the walk: a write must not happen under a cursor's feet. */
  for (size_t i = 0; rc == STORE_OK && i < r.n; i++) rc = store_token_delete(txn, o->uid, r.hashes[i]);
  free(r.hashes);
  if (rc != STORE_OK) return rc;
  if (!o->flag && r.n == 0)
    return admin_refuse(o, 404, "not_found", "user '%s' has no token with id %s", o->name, o->text);
  o->reply = json_pack("{s:s, s:I}", "username", o->user.username, "revoked", (json_int_t)r.n);
  return 0;
}

static void h_revoke_token(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  char name[STORE_USERNAME_MAX], id[32];
  bool ok = admin_arg_user(req, body, "user", name) && admin_arg_str(req, body, "id", true, id, sizeof id);
  json_t *all = json_object_get(body, "all");
  bool is_all = json_is_true(all);
  json_decref(body);
  if (!ok) return;
  if (is_all == (id[0] != '\0') || (id[0] && strlen(id) != 16)) {
    admin_fail(req, 400, "bad_request", "give either 'id' (16 hex digits, as users show lists them) or 'all': true");
    return;
  }
  admin_op *o = admin_op_new(a, req, who, "users revoke-token %s %s", name, is_all ? "--all" : id);
  if (!o) return;
  snprintf(o->name, sizeof o->name, "%s", name);
  snprintf(o->text, sizeof o->text, "%s", id);
  o->flag = is_all;
  o->prepare = revoke_prepare;
  admin_op_submit(o);
}

int admin_users_install(srv_admin *a) {
  int rc;
  if ((rc = admin_route(a, "GET", "/admin/users", h_list)) ||
      (rc = admin_route(a, "GET", "/admin/users/show", h_show)) ||
      (rc = admin_route(a, "POST", "/admin/users/create", h_create)) ||
      (rc = admin_route(a, "POST", "/admin/users/ban", h_ban)) ||
      (rc = admin_route(a, "POST", "/admin/users/unban", h_unban)) ||
      (rc = admin_route(a, "POST", "/admin/users/set-cpu", h_set_cpu)) ||
      (rc = admin_route(a, "POST", "/admin/users/reset-password", h_reset_password)) ||
      (rc = admin_route(a, "POST", "/admin/users/issue-token", h_issue_token)) ||
      (rc = admin_route(a, "POST", "/admin/users/revoke-token", h_revoke_token)))
    return rc;
  return 0;
}
