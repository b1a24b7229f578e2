/*
 * api_user.c — a player's own data over HTTP: code and branches, Memory, segments,
 * console commands, long-lived tokens.
 *
 * Routes (PROTOCOL.md "Code", "Memory and console"); every one authenticates first and
 * touches only the authenticated user's records:
 *   GET  /api/user/code ?branch=            {ok, branch, modules}
 *   POST /api/user/code {branch?, modules}  {ok, timestamp}   (also HTTP Basic)
 *   GET  /api/user/branches                 {ok, list:[{_id, branch, activeWorld, activeSim,
 *                                            modules, timestamp}]}
 *   POST /api/user/clone-branch {branch?, newName, defaultModules?}   {ok, timestamp}
 *   POST /api/user/delete-branch {branch}                             {ok, timestamp}
 *   POST /api/user/set-active-branch {branch, activeName}             {ok}
 *   GET  /api/user/memory ?path=            {ok, data:"gz:..."} | {ok}
 *   POST /api/user/memory {path?, value}    {ok}
 *   GET  /api/user/memory-segment ?segment= {ok, data: string|null} (a list: data: [...])
 *   POST /api/user/memory-segment {segment, data}                     {ok}
 *   POST /api/user/console {expression}     {ok}
 *   GET  /api/user/auth-tokens              {ok, list:[{_id, label, created, expires}]}
 *   POST /api/user/auth-tokens {password, label?, days?}  {ok, token, _id, expires}
 *   POST /api/user/auth-tokens/revoke {_id} {ok}
 *
 * Reads use LMDB read transactions: inline when small, on the thread pool when they may
 * be megabytes (code, branches, Memory). Writes are ops on the tick thread, answered
 * after their commit. Where vanilla Screeps evaluates a change as code in the player's
 * runtime (Memory by path), isoworld applies it to the committed state directly: the
 * change is durable when acknowledged and needs no isolate.
 */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ op plumbing */

/* ------------------------------------------------------------------ branches */

typedef struct find_flag {
  uint32_t flag;
  store_branch *out;
  bool found;
} find_flag;

static int match_flag(const store_branch *b, void *ud) {
  find_flag *f = ud;
  if (!(b->flags & f->flag)) return 0;
  *f->out = *b;
  f->found = true;
  return 1;
}

/* Finds a branch by name or by selector ("" and "$activeWorld": the running branch;
 * "$activeSim"). STORE_OK, STORE_NOTFOUND or a store error. */
static int resolve_branch(store_txn *txn, uint64_t uid, const char *sel, store_branch *out) {
  if (!sel || !*sel) sel = "$activeWorld";
  if (sel[0] == '$') {
    find_flag f = {0, out, false};
    if (!strcmp(sel, "$activeWorld"))
      f.flag = STORE_BRANCH_ACTIVE_WORLD;
    else if (!strcmp(sel, "$activeSim"))
      f.flag = STORE_BRANCH_ACTIVE_SIM;
    else
      return STORE_NOTFOUND;
    int rc = store_branch_iter(txn, uid, match_flag, &f);
    if (rc < 0) return rc;
    return f.found ? STORE_OK : STORE_NOTFOUND;
  }
  if (strlen(sel) >= STORE_BRANCH_MAX) return STORE_NOTFOUND;
  return store_branch_get(txn, uid, sel, out);
}

static json_t *modules_json_add(json_t *mods, const store_code_module *m) {
  char name[STORE_MODULE_NAME_MAX];
  if (srv_module_unescape(m->name, name, sizeof name) != 0) return mods;
  json_t *v;
  if (m->binary) {
    size_t b64 = sodium_base64_ENCODED_LEN(m->len, sodium_base64_VARIANT_ORIGINAL);
    char *enc = malloc(b64);
    if (!enc) return NULL;
    sodium_bin2base64(enc, b64, m->data, m->len, sodium_base64_VARIANT_ORIGINAL);
    v = json_pack("{s:s}", "binary", enc);
    free(enc);
  } else {
    v = json_stringn(m->data, m->len);
    if (!v) v = json_stringn_nocheck(m->data, m->len);
  }
  if (!v || json_object_set_new(mods, name, v)) return NULL;
  return mods;
}

static int collect_json(const store_code_module *m, void *ud) {
  return modules_json_add(ud, m) ? 0 : STORE_NOMEM;
}

/* The modules of a branch as {name: text | {binary}}. NULL on failure. */
static json_t *branch_modules(store_txn *txn, uint64_t uid, const char *branch) {
  json_t *mods = json_object();
  if (mods && store_code_iter_branch(txn, uid, branch, collect_json, mods) != STORE_OK) {
    json_decref(mods);
    return NULL;
  }
  return mods;
}

/* A read on the thread pool that produces a reply (or an error). */
typedef struct read_job {
  api_job job;
  uint64_t uid;
  char arg[1024]; /* branch name, Memory path */
  bool has_arg;
  json_t *reply;
  char err[200];
} read_job;

static void read_after(api_job *j) {
  read_job *r = (read_job *)j;
  if (r->reply)
    api_respond_ok(j->req, r->reply);
  else if (r->err[0])
    api_fail(j->req, r->err);
  else
    web_respond_error(j->req, 500, "the read failed");
  free(r);
}

static read_job *read_job_new(web_req *req, const store_user *u, const char *arg) {
  read_job *r = calloc(1, sizeof *r);
  if (!r) {
    web_respond_error(req, 500, "out of memory");
    return NULL;
  }
  r->uid = u->id;
  if (arg) {
    snprintf(r->arg, sizeof r->arg, "%s", arg);
    r->has_arg = true;
  }
  return r;
}

static void read_start(srv_api *api, web_req *req, read_job *r, api_work_fn fn) {
  if (api_queue_work(api, req, &r->job, fn, read_after) != 0) {
    web_respond_error(req, 500, "cannot queue the work");
    free(r);
  }
}

static void code_get_work(api_job *j) {
  read_job *r = (read_job *)j;
  store_txn *txn;
  if (store_read_begin(j->api->s->db, &txn) != STORE_OK) return;
  store_branch b;
  int rc = resolve_branch(txn, r->uid, r->arg, &b);
  if (rc == STORE_NOTFOUND) {
    snprintf(r->err, sizeof r->err, "branch does not exist");
  } else if (rc == STORE_OK) {
    json_t *mods = branch_modules(txn, r->uid, b.name);
    if (mods) r->reply = json_pack("{s:s, s:o}", "branch", b.name, "modules", mods);
  }
  store_abort(txn);
}

static void h_code_get(web_req *req, void *ud) {
  srv_api *api = ud;
  store_user u;
  if (!api_authenticate(api, req, &u)) return;
  read_job *r = read_job_new(req, &u, web_req_query(req, "branch"));
  if (r) read_start(api, req, r, code_get_work);
}

typedef struct list_ctx {
  store_txn *txn;
  uint64_t uid;
  json_t *list;
} list_ctx;

static int list_branch(const store_branch *b, void *ud) {
  list_ctx *c = ud;
  char id[128];
  snprintf(id, sizeof id, "%" PRIu64 "/%s", c->uid, b->name);
  json_t *mods = branch_modules(c->txn, c->uid, b->name);
  if (!mods) return STORE_NOMEM;
  json_t *e =
      json_pack("{s:s, s:s, s:b, s:b, s:o, s:I}", "_id", id, "branch", b->name, "activeWorld",
                (b->flags & STORE_BRANCH_ACTIVE_WORLD) != 0, "activeSim", (b->flags & STORE_BRANCH_ACTIVE_SIM) != 0,
                "modules", mods, "timestamp", (json_int_t)b->timestamp_ms);
  return e && json_array_append_new(c->list, e) == 0 ? 0 : STORE_NOMEM;
}

static void branches_work(api_job *j) {
  read_job *r = (read_job *)j;
  store_txn *txn;
  if (store_read_begin(j->api->s->db, &txn) != STORE_OK) return;
  list_ctx c = {txn, r->uid, json_array()};
  if (c.list && store_branch_iter(txn, r->uid, list_branch, &c) == STORE_OK)
    r->reply = json_pack("{s:O}", "list", c.list);
  json_decref(c.list);
  store_abort(txn);
}

static void h_branches(web_req *req, void *ud) {
  srv_api *api = ud;
  store_user u;
  if (!api_authenticate(api, req, &u)) return;
  read_job *r = read_job_new(req, &u, NULL);
  if (r) read_start(api, req, r, branches_work);
}

/* ---- upload */

typedef struct code_op {
  uop o;
  api_job job; /* HTTP Basic: the password check */
  char sel[STORE_BRANCH_MAX];
  char branch[STORE_BRANCH_MAX]; /* resolved by prepare */
  api_modules mods;
  int64_t timestamp;
  char login[STORE_EMAIL_MAX];
  char password[SRV_PASSWORD_MAX + 1];
  store_user user;
  bool basic_ok;
  json_t *hash; /* the upload's _hash, echoed on user:<id>/code */
} code_op;

static void code_op_release(uop *o) {
  code_op *c = (code_op *)o;
  api_modules_release(&c->mods);
  json_decref(c->hash);
  sodium_memzero(c->password, sizeof c->password);
}

/* Replaces every module of `branch` with mods. */
static int write_modules(store_txn *txn, uint64_t uid, const char *branch, const sbx_module *m, size_t n) {
  int rc = store_code_delete_branch(txn, uid, branch);
  if (rc != STORE_OK && rc != STORE_NOTFOUND) return rc;
  for (size_t i = 0; i < n; i++) {
    char esc[STORE_MODULE_NAME_MAX];
    if (srv_module_escape(m[i].name, esc, sizeof esc) != 0) return STORE_INVALID;
    if ((rc = store_code_put_module(txn, uid, branch, esc, m[i].source, m[i].len, m[i].binary)) != STORE_OK) return rc;
  }
  return STORE_OK;
}

static int code_prepare(srv *s, store_txn *txn, void *ud) {
  (void)s;
  code_op *c = ud;
  store_branch b;
  int rc = resolve_branch(txn, c->o.uid, c->sel, &b);
  if (rc == STORE_NOTFOUND) return api_uop_refuse(&c->o, "branch does not exist");
  if (rc != STORE_OK) return rc;
  if ((rc = write_modules(txn, c->o.uid, b.name, c->mods.m, c->mods.n)) != STORE_OK) return rc;
  c->timestamp = srv_now_ms();
  b.timestamp_ms = c->timestamp;
  if ((rc = store_branch_put(txn, c->o.uid, &b)) != STORE_OK) return rc;
  if ((rc = store_code_set_stamp(txn, c->o.uid, (uint64_t)c->timestamp)) != STORE_OK) return rc;
  snprintf(c->branch, sizeof c->branch, "%s", b.name);
  c->o.reply = json_pack("{s:I}", "timestamp", (json_int_t)c->timestamp);
  return 0;
}

static void code_apply(srv *s, void *ud) {
  code_op *c = ud;
  srv_publish_code(s, c->o.uid, c->branch, c->mods.m, c->mods.n, c->timestamp, c->hash);
  srv_player *p = srv_player_find(s, c->o.uid);
  if (!p) return;
  if (!strcmp(p->branch, c->branch)) {
    /* The running branch: the new code runs from the player's next tick, on a new global. */
    if (srv_player_set_code(p, c->mods.m, c->mods.n) != 0)
      srv_log("player %s: out of memory loading new code", p->name);
    p->code_stamp = (uint64_t)c->timestamp;
  }
  srv_log("player %s: %zu module%s uploaded to branch %s%s", p->name, c->mods.n, c->mods.n == 1 ? "" : "s", c->branch,
          !strcmp(p->branch, c->branch) ? " (running)" : "");
}

static void code_basic_work(api_job *j) {
  code_op *c = (code_op *)((char *)j - offsetof(code_op, job));
  c->basic_ok = api_check_password(j->api->s, c->login, c->password, &c->user);
  sodium_memzero(c->password, sizeof c->password);
}

static void code_basic_after(api_job *j) {
  code_op *c = (code_op *)((char *)j - offsetof(code_op, job));
  if (!c->basic_ok) {
    api_unauthorized(c->o.req);
    api_uop_free(&c->o);
    return;
  }
  c->o.uid = c->user.id;
  api_rotate_token(c->o.api, c->o.req, &c->user);
  api_uop_submit(&c->o, code_prepare, code_apply);
}

static void h_code_post(web_req *req, void *ud) {
  srv_api *api = ud;
  store_user u = {0};
  char login[STORE_EMAIL_MAX], pass[SRV_PASSWORD_MAX + 1];
  bool basic = false;
  if (api_has_token(req)) {
    if (!api_authenticate(api, req, &u)) return;
  } else if (web_req_basic_auth(req, login, sizeof login, pass, sizeof pass) == WEB_OK) {
    basic = true; /* grunt-screeps: checked on the thread pool, below */
  } else {
    api_unauthorized(req);
    return;
  }
  json_t *body;
  if (web_parse_json_body(req, &body) != WEB_OK) {
    sodium_memzero(pass, sizeof pass);
    return;
  }
  code_op *c = api_uop_new(sizeof *c, api, req, &u);
  if (!c) {
    json_decref(body);
    sodium_memzero(pass, sizeof pass);
    return;
  }
  c->o.release = code_op_release;
  json_t *jb = json_object_get(body, "branch");
  const char *sel = json_is_string(jb) ? json_string_value(jb) : "";
  int rc = 0;
  if (!json_is_null(jb) && jb && !json_is_string(jb)) rc = api_uop_refuse(&c->o, "invalid branch name");
  if (!rc && strlen(sel) >= sizeof c->sel) rc = api_uop_refuse(&c->o, "branch does not exist");
  if (!rc) snprintf(c->sel, sizeof c->sel, "%s", sel);
  if (!rc && api_modules_parse(json_object_get(body, "modules"), &c->mods, c->o.err, sizeof c->o.err) != 0) rc = 1;
  c->hash = json_incref(json_object_get(body, "_hash"));
  json_decref(body);
  if (rc) {
    api_fail(req, c->o.err);
    api_uop_free(&c->o);
    sodium_memzero(pass, sizeof pass);
    return;
  }
  if (!basic) {
    api_uop_submit(&c->o, code_prepare, code_apply);
    return;
  }
  snprintf(c->login, sizeof c->login, "%s", login);
  snprintf(c->password, sizeof c->password, "%s", pass);
  sodium_memzero(pass, sizeof pass);
  if (api_queue_work(api, req, &c->job, code_basic_work, code_basic_after) != 0) {
    web_respond_error(req, 500, "cannot queue the work");
    api_uop_free(&c->o);
  }
}

/* ---- clone, delete, set active */

typedef struct branch_op {
  uop o;
  char from[STORE_BRANCH_MAX]; /* clone source, "" for defaultModules */
  char name[STORE_BRANCH_MAX]; /* target */
  api_modules mods;            /* clone: defaultModules */
  uint32_t flag;               /* set-active: STORE_BRANCH_ACTIVE_* */
  bool reload;                 /* apply: the running branch changed */
} branch_op;

static void branch_op_release(uop *o) {
  api_modules_release(&((branch_op *)o)->mods);
}

typedef struct mod_copy {
  sbx_module *m;
  size_t n, cap;
} mod_copy;

static int copy_module(const store_code_module *m, void *ud) {
  mod_copy *c = ud;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 8;
    sbx_module *p = realloc(c->m, cap * sizeof *p);
    if (!p) return STORE_NOMEM;
    c->m = p;
    c->cap = cap;
  }
  char name[STORE_MODULE_NAME_MAX];
  char *d = malloc(m->len + 1);
  if (!d || srv_module_unescape(m->name, name, sizeof name) != 0) {
    free(d);
    return STORE_NOMEM;
  }
  memcpy(d, m->data, m->len);
  d[m->len] = '\0';
  char *nm = strdup(name);
  if (!nm) {
    free(d);
    return STORE_NOMEM;
  }
  c->m[c->n++] = (sbx_module){nm, d, m->len, m->binary};
  return 0;
}

static int count_branch(const store_branch *b, void *ud) {
  (void)b;
  (*(size_t *)ud)++;
  return 0;
}

static int clone_prepare(srv *s, store_txn *txn, void *ud) {
  branch_op *c = ud;
  store_branch target, src;
  int rc = store_branch_get(txn, c->o.uid, c->name, &target);
  bool exists = rc == STORE_OK;
  if (rc != STORE_OK && rc != STORE_NOTFOUND) return rc;
  if (!exists) {
    size_t n = 0;
    if ((rc = store_branch_iter(txn, c->o.uid, count_branch, &n)) != STORE_OK) return rc;
    if (n >= SRV_BRANCHES_MAX) return api_uop_refuse(&c->o, "too many branches");
    memset(&target, 0, sizeof target);
    snprintf(target.name, sizeof target.name, "%s", c->name);
  }
  mod_copy mc = {0};
  const sbx_module *mods = c->mods.m;
  size_t n_mods = c->mods.n;
  if (c->from[0]) {
    rc = store_branch_get(txn, c->o.uid, c->from, &src);
    if (rc == STORE_NOTFOUND) return api_uop_refuse(&c->o, "branch does not exist");
    if (rc != STORE_OK) return rc;
    /* Copies first: pointers into the map do not survive the writes below. */
    rc = store_code_iter_branch(txn, c->o.uid, c->from, copy_module, &mc);
    mods = mc.m;
    n_mods = mc.n;
  }
  static const sbx_module empty_main = {"main", "", 0, false};
  if (rc == STORE_OK && n_mods == 0) {
    mods = &empty_main;
    n_mods = 1;
  }
  if (rc == STORE_OK) rc = write_modules(txn, c->o.uid, c->name, mods, n_mods);
  int64_t now = srv_now_ms();
  target.timestamp_ms = now;
  if (rc == STORE_OK) rc = store_branch_put(txn, c->o.uid, &target);
  srv_player *p = srv_player_find(s, c->o.uid);
  c->reload = p && !strcmp(p->branch, c->name);
  if (rc == STORE_OK && c->reload) rc = store_code_set_stamp(txn, c->o.uid, (uint64_t)now);
  for (size_t i = 0; i < mc.n; i++) {
    free((char *)mc.m[i].name);
    free((char *)mc.m[i].source);
  }
  free(mc.m);
  if (rc == STORE_OK) c->o.reply = json_pack("{s:I}", "timestamp", (json_int_t)now);
  return rc;
}

/* Reloads the running code of the player from committed state. */
static void reload_apply(srv *s, void *ud) {
  branch_op *c = ud;
  srv_player *p = srv_player_find(s, c->o.uid);
  if (!p || !c->reload) return;
  if (c->flag == STORE_BRANCH_ACTIVE_WORLD) snprintf(p->branch, sizeof p->branch, "%s", c->name);
  store_txn *txn;
  int rc = store_read_begin(s->db, &txn);
  if (rc == STORE_OK) {
    rc = srv_player_load_code(s, txn, p);
    store_abort(txn);
  }
  if (rc != STORE_OK)
    srv_log("player %s: cannot load branch %s: %s", p->name, p->branch, store_strerror(rc));
  else
    srv_log("player %s: now running branch %s", p->name, p->branch);
}

static bool take_branch_name(json_t *body, const char *key, char *out, size_t cap, bool required) {
  const char *v = api_jstr(body, key);
  if (!v || !*v) {
    out[0] = '\0';
    return !required;
  }
  if (!srv_branch_name_is_valid(v)) return false;
  snprintf(out, cap, "%s", v);
  return true;
}

static void h_clone_branch(web_req *req, void *ud) {
  srv_api *api = ud;
  json_t *body;
  branch_op *c = api_uop_begin(api, req, sizeof *c, branch_op_release, &body, NULL);
  if (!c) return;
  int rc = 0;
  if (!take_branch_name(body, "newName", c->name, sizeof c->name, true) ||
      !take_branch_name(body, "branch", c->from, sizeof c->from, false))
    rc = api_uop_refuse(&c->o, "invalid branch name");
  json_t *dm = json_object_get(body, "defaultModules");
  if (!rc && !c->from[0] && dm && !json_is_null(dm) && api_modules_parse(dm, &c->mods, c->o.err, sizeof c->o.err) != 0)
    rc = 1;
  json_decref(body);
  if (rc) {
    api_fail(req, c->o.err);
    api_uop_free(&c->o);
    return;
  }
  c->flag = 0;
  api_uop_submit(&c->o, clone_prepare, reload_apply);
}

static int delete_prepare(srv *s, store_txn *txn, void *ud) {
  (void)s;
  branch_op *c = ud;
  store_branch b;
  int rc = store_branch_get(txn, c->o.uid, c->name, &b);
  if (rc == STORE_NOTFOUND) return api_uop_refuse(&c->o, "branch does not exist");
  if (rc != STORE_OK) return rc;
  if (b.flags & (STORE_BRANCH_ACTIVE_WORLD | STORE_BRANCH_ACTIVE_SIM))
    return api_uop_refuse(&c->o, "cannot delete an active branch");
  if ((rc = store_branch_delete(txn, c->o.uid, c->name)) != STORE_OK) return rc;
  c->o.reply = json_pack("{s:I}", "timestamp", (json_int_t)srv_now_ms());
  return 0;
}

static void h_delete_branch(web_req *req, void *ud) {
  srv_api *api = ud;
  json_t *body;
  branch_op *c = api_uop_begin(api, req, sizeof *c, NULL, &body, NULL);
  if (!c) return;
  bool ok = take_branch_name(body, "branch", c->name, sizeof c->name, true);
  json_decref(body);
  if (!ok) {
    api_fail(req, "invalid branch name");
    api_uop_free(&c->o);
    return;
  }
  api_uop_submit(&c->o, delete_prepare, NULL);
}

typedef struct flag_ctx {
  store_branch list[SRV_BRANCHES_MAX + 8];
  size_t n;
} flag_ctx;

static int note_branch(const store_branch *b, void *ud) {
  flag_ctx *f = ud;
  if (f->n < sizeof f->list / sizeof f->list[0]) f->list[f->n++] = *b;
  return 0;
}

static int set_active_prepare(srv *s, store_txn *txn, void *ud) {
  branch_op *c = ud;
  flag_ctx *f = calloc(1, sizeof *f);
  if (!f) return STORE_NOMEM;
  int rc = store_branch_iter(txn, c->o.uid, note_branch, f);
  bool found = false;
  for (size_t i = 0; i < f->n; i++) found = found || !strcmp(f->list[i].name, c->name);
  if (rc == STORE_OK && !found) {
    free(f);
    return api_uop_refuse(&c->o, "no branch");
  }
  for (size_t i = 0; rc == STORE_OK && i < f->n; i++) {
    uint32_t flags = f->list[i].flags & ~c->flag;
    if (!strcmp(f->list[i].name, c->name)) flags |= c->flag;
    if (flags == f->list[i].flags) continue;
    f->list[i].flags = flags;
    rc = store_branch_put(txn, c->o.uid, &f->list[i]);
  }
  free(f);
  if (rc == STORE_OK && c->flag == STORE_BRANCH_ACTIVE_WORLD) {
    store_user u;
    if ((rc = store_user_get(txn, c->o.uid, &u)) == STORE_OK) {
      snprintf(u.active_branch, sizeof u.active_branch, "%s", c->name);
      rc = store_user_put(txn, &u);
    }
    srv_player *p = srv_player_find(s, c->o.uid);
    c->reload = p && strcmp(p->branch, c->name) != 0;
    if (rc == STORE_OK && c->reload) rc = store_code_set_stamp(txn, c->o.uid, (uint64_t)srv_now_ms());
  }
  return rc;
}

static void h_set_active_branch(web_req *req, void *ud) {
  srv_api *api = ud;
  json_t *body;
  branch_op *c = api_uop_begin(api, req, sizeof *c, NULL, &body, NULL);
  if (!c) return;
  const char *an = api_jstr(body, "activeName");
  c->flag = !an                          ? 0
            : !strcmp(an, "activeWorld") ? STORE_BRANCH_ACTIVE_WORLD
            : !strcmp(an, "activeSim")   ? STORE_BRANCH_ACTIVE_SIM
                                         : 0;
  bool ok = take_branch_name(body, "branch", c->name, sizeof c->name, true) && c->flag;
  json_decref(body);
  if (!ok) {
    api_fail(req, "invalid params");
    api_uop_free(&c->o);
    return;
  }
  api_uop_submit(&c->o, set_active_prepare, reload_apply);
}

/* ------------------------------------------------------------------ Memory */

static void memory_get_work(api_job *j) {
  read_job *r = (read_job *)j;
  store_txn *txn;
  if (store_read_begin(j->api->s->db, &txn) != STORE_OK) return;
  const char *mem = "{}";
  size_t len = 2;
  int rc = store_memory_get(txn, r->uid, &mem, &len);
  if (rc == STORE_NOTFOUND || (rc == STORE_OK && len == 0)) {
    mem = "{}";
    len = 2;
    rc = STORE_OK;
  }
  if (rc != STORE_OK) {
    store_abort(txn);
    return;
  }
  char *gz = NULL;
  if (!r->has_arg || !r->arg[0]) {
    gz = srv_gz_base64(mem, len);
    store_abort(txn);
    if (gz) r->reply = json_pack("{s:s}", "data", gz);
    free(gz);
    return;
  }
  json_t *root = srv_memory_parse(mem, len);
  store_abort(txn);
  if (!root) {
    r->reply = json_pack("{s:s}", "data", "Incorrect memory path");
    return;
  }
  json_t *v, *owned;
  srv_path_result pr = srv_memory_path_get(root, r->arg, &v, &owned);
  if (pr == SRV_PATH_INCORRECT) {
    r->reply = json_pack("{s:s}", "data", "Incorrect memory path");
  } else if (pr == SRV_PATH_UNDEFINED) {
    r->reply = json_object(); /* {"ok":1}: no data */
  } else {
    size_t dl;
    char *text = srv_memory_dump(v, &dl);
    if (text) gz = srv_gz_base64(text, dl);
    if (gz) r->reply = json_pack("{s:s}", "data", gz);
    free(text);
    free(gz);
  }
  json_decref(owned);
  json_decref(root);
}

static void h_memory_get(web_req *req, void *ud) {
  srv_api *api = ud;
  store_user u;
  if (!api_authenticate(api, req, &u)) return;
  const char *path = web_req_query(req, "path");
  if (path && strlen(path) >= sizeof((read_job *)0)->arg) {
    api_fail(req, "Incorrect memory path");
    return;
  }
  read_job *r = read_job_new(req, &u, path);
  if (r) read_start(api, req, r, memory_get_work);
}

typedef struct memory_op {
  uop o;
  char *path;    /* NULL or "": the whole Memory */
  json_t *value; /* NULL: delete / clear */
  char *new_mem; /* prepare's result, moved to the player by apply */
  size_t new_len;
} memory_op;

static void memory_op_release(uop *o) {
  memory_op *m = (memory_op *)o;
  free(m->path);
  json_decref(m->value);
  free(m->new_mem);
}

static int memory_prepare(srv *s, store_txn *txn, void *ud) {
  memory_op *m = ud;
  srv_player *p = srv_player_find(s, m->o.uid);
  if (!p) return api_uop_refuse(&m->o, "no such player");
  json_t *root = p->memory ? srv_memory_parse(p->memory, p->memory_len) : NULL;
  if (!root || !json_is_object(root)) {
    json_decref(root);
    root = json_object(); /* what the player's own Memory would start from */
  }
  if (srv_memory_path_set(&root, m->path, m->value ? json_incref(m->value) : NULL, m->o.err, sizeof m->o.err) != 0) {
    json_decref(root);
    return 1;
  }
  m->new_mem = srv_memory_dump(root, &m->new_len);
  json_decref(root);
  if (!m->new_mem) return STORE_NOMEM;
  if (srv_utf16_length(m->new_mem, m->new_len) > SRV_MEMORY_MAX)
    return api_uop_refuse(&m->o, "Memory size would exceed the 2 MB limit");
  return store_memory_put(txn, m->o.uid, m->new_mem, m->new_len);
}

static void memory_apply(srv *s, void *ud) {
  memory_op *m = ud;
  srv_player *p = srv_player_find(s, m->o.uid);
  if (!p) return;
  free(p->memory);
  p->memory = m->new_mem;
  p->memory_len = m->new_len;
  m->new_mem = NULL;
}

static void h_memory_post(web_req *req, void *ud) {
  srv_api *api = ud;
  json_t *body;
  memory_op *m = api_uop_begin(api, req, sizeof *m, memory_op_release, &body, NULL);
  if (!m) return;
  json_t *path = json_object_get(body, "path");
  json_t *value = json_object_get(body, "value");
  int rc = 0;
  if (path && !json_is_null(path) && !json_is_string(path)) rc = api_uop_refuse(&m->o, "invalid path");
  if (!rc && json_is_string(path) && !(m->path = strdup(json_string_value(path)))) rc = api_uop_refuse(&m->o, "out of memory");
  if (!rc && value) {
    size_t len;
    char *text = srv_memory_dump(value, &len);
    if (!text || srv_utf16_length(text, len) > SRV_MEMORY_VALUE_MAX) rc = api_uop_refuse(&m->o, "memory size is too large");
    free(text);
    m->value = json_incref(value);
  }
  json_decref(body);
  if (rc) {
    api_fail(req, m->o.err);
    api_uop_free(&m->o);
    return;
  }
  api_uop_submit(&m->o, memory_prepare, memory_apply);
}

/* ------------------------------------------------------------------ segments */

/* A segment id from text or a JSON number: 0..99, else -1. */
static int segment_id_text(const char *s, size_t n) {
  if (n == 0 || n > 2) return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v < SRV_SEGMENT_IDS ? v : -1;
}

static json_t *segment_value(store_txn *txn, uint64_t uid, int id) {
  const char *d;
  size_t len;
  if (store_segment_get(txn, uid, id, &d, &len) != STORE_OK) return json_null();
  json_t *v = json_stringn(d, len);
  return v ? v : json_stringn_nocheck(d, len);
}

static void h_segment_get(web_req *req, void *ud) {
  srv_api *api = ud;
  store_user u;
  if (!api_authenticate(api, req, &u)) return;
  const char *q = web_req_query(req, "segment");
  if (!q) {
    api_fail(req, "invalid segment ID");
    return;
  }
  int ids[SRV_SEGMENT_IDS];
  size_t n = 0;
  bool list = strchr(q, ',') != NULL;
  for (const char *p = q;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    int id = segment_id_text(p, len);
    if (id < 0 || n == SRV_SEGMENT_IDS) {
      api_fail(req, "invalid segment ID");
      return;
    }
    ids[n++] = id;
    if (!comma) break;
    p = comma + 1;
  }
  store_txn *txn;
  if (store_read_begin(api->s->db, &txn) != STORE_OK) {
    web_respond_error(req, 500, "database unavailable");
    return;
  }
  json_t *data;
  if (list) {
    data = json_array();
    for (size_t i = 0; data && i < n; i++) json_array_append_new(data, segment_value(txn, u.id, ids[i]));
  } else {
    data = segment_value(txn, u.id, ids[0]);
  }
  store_abort(txn);
  api_respond_ok(req, json_pack("{s:o}", "data", data));
}

typedef struct segment_op {
  uop o;
  int id;
  char *data;
  size_t len;
} segment_op;

static void segment_op_release(uop *o) {
  free(((segment_op *)o)->data);
}

static int segment_prepare(srv *s, store_txn *txn, void *ud) {
  (void)s;
  segment_op *g = ud;
  return store_segment_put(txn, g->o.uid, g->id, g->data, g->len);
}

static void h_segment_post(web_req *req, void *ud) {
  srv_api *api = ud;
  json_t *body;
  segment_op *g = api_uop_begin(api, req, sizeof *g, segment_op_release, &body, NULL);
  if (!g) return;
  json_t *js = json_object_get(body, "segment"), *jd = json_object_get(body, "data");
  g->id = json_is_integer(js) && json_integer_value(js) >= 0 && json_integer_value(js) < SRV_SEGMENT_IDS
              ? (int)json_integer_value(js)
          : json_is_string(js) ? segment_id_text(json_string_value(js), json_string_length(js))
                               : -1;
  int rc = 0;
  if (g->id < 0) rc = api_uop_refuse(&g->o, "invalid segment ID");
  if (!rc && !json_is_string(jd)) rc = api_uop_refuse(&g->o, "data must be a string");
  if (!rc && srv_utf16_length(json_string_value(jd), json_string_length(jd)) > SRV_SEGMENT_MAX)
    rc = api_uop_refuse(&g->o, "length limit exceeded");
  if (!rc) {
    g->len = json_string_length(jd);
    if (!(g->data = malloc(g->len + 1)))
      rc = api_uop_refuse(&g->o, "out of memory");
    else
      memcpy(g->data, json_string_value(jd), g->len + 1);
  }
  json_decref(body);
  if (rc) {
    api_fail(req, g->o.err);
    api_uop_free(&g->o);
    return;
  }
  api_uop_submit(&g->o, segment_prepare, NULL);
}

/* ------------------------------------------------------------------ console */

typedef struct console_op {
  uop o;
  char *expr;
  uint64_t seq;
} console_op;

static void console_op_release(uop *o) {
  free(((console_op *)o)->expr);
}

static int console_prepare(srv *s, store_txn *txn, void *ud) {
  console_op *c = ud;
  srv_player *p = srv_player_find(s, c->o.uid);
  if (!p) return api_uop_refuse(&c->o, "no such player");
  if (p->n_cmds >= SRV_CONSOLE_QUEUE_MAX)
    return api_uop_refuse(&c->o, "too many console commands are waiting for the next tick");
  return store_console_push(txn, c->o.uid, c->expr, strlen(c->expr), &c->seq);
}

static void console_apply(srv *s, void *ud) {
  console_op *c = ud;
  srv_player *p = srv_player_find(s, c->o.uid);
  if (p && srv_player_push_cmd(p, c->seq, c->expr) != 0)
    srv_log("player %s: out of memory queueing a console command (it runs after a restart)", p->name);
}

static void h_console(web_req *req, void *ud) {
  srv_api *api = ud;
  json_t *body;
  console_op *c = api_uop_begin(api, req, sizeof *c, console_op_release, &body, NULL);
  if (!c) return;
  json_t *je = json_object_get(body, "expression");
  int rc = 0;
  if (!json_is_string(je) || json_string_length(je) == 0) rc = api_uop_refuse(&c->o, "expression must be a non-empty string");
  if (!rc && memchr(json_string_value(je), '\0', json_string_length(je))) rc = api_uop_refuse(&c->o, "invalid expression");
  if (!rc && srv_utf16_length(json_string_value(je), json_string_length(je)) > SRV_CONSOLE_EXPR_MAX)
    rc = api_uop_refuse(&c->o, "expression size is too large");
  if (!rc && !(c->expr = strdup(json_string_value(je)))) rc = api_uop_refuse(&c->o, "out of memory");
  json_decref(body);
  if (rc) {
    api_fail(req, c->o.err);
    api_uop_free(&c->o);
    return;
  }
  api_uop_submit(&c->o, console_prepare, console_apply);
}

/* ------------------------------------------------------------------ long-lived tokens */

static void token_id(const unsigned char *hash, char out[17]) {
  sodium_bin2hex(out, 17, hash, 8);
}

typedef struct tok_list {
  json_t *list;
} tok_list;

static int list_token(const unsigned char *hash, const store_token *t, void *ud) {
  char id[17];
  token_id(hash, id);
  json_t *e = json_pack("{s:s, s:s, s:I, s:I}", "_id", id, "label", t->label, "created", (json_int_t)t->created_ms,
                        "expires", (json_int_t)t->expires_ms);
  return e && json_array_append_new(((tok_list *)ud)->list, e) == 0 ? 0 : STORE_NOMEM;
}

static void h_tokens_list(web_req *req, void *ud) {
  srv_api *api = ud;
  store_user u;
  if (!api_authenticate(api, req, &u)) return;
  store_txn *txn;
  tok_list l = {json_array()};
  int rc = l.list ? store_read_begin(api->s->db, &txn) : STORE_NOMEM;
  if (rc == STORE_OK) {
    rc = store_token_iter(txn, u.id, list_token, &l);
    store_abort(txn);
  }
  if (rc != STORE_OK) {
    json_decref(l.list);
    web_respond_error(req, 500, "cannot list the tokens");
    return;
  }
  api_respond_ok(req, json_pack("{s:o}", "list", l.list));
}

typedef struct token_op {
  uop o;
  api_job job;
  char password[SRV_PASSWORD_MAX + 1];
  char username[STORE_USERNAME_MAX];
  store_user user;
  bool ok;
  char token[SRV_TOKEN_MAX];
  unsigned char hash[SRV_TOKEN_HASH_BYTES];
  store_token rec;
  char id[17];
} token_op;

static void token_op_release(uop *o) {
  token_op *t = (token_op *)o;
  sodium_memzero(t->password, sizeof t->password);
  sodium_memzero(t->token, sizeof t->token);
}

static int token_prepare(srv *s, store_txn *txn, void *ud) {
  (void)s;
  token_op *t = ud;
  int rc = store_token_put(txn, t->o.uid, t->hash, &t->rec);
  if (rc == STORE_OK)
    t->o.reply =
        json_pack("{s:s, s:s, s:I}", "token", t->token, "_id", t->id, "expires", (json_int_t)t->rec.expires_ms);
  return rc;
}

static void token_check_work(api_job *j) {
  token_op *t = (token_op *)((char *)j - offsetof(token_op, job));
  store_user u;
  t->ok = api_check_password(j->api->s, t->username, t->password, &u) && u.id == t->o.uid;
  sodium_memzero(t->password, sizeof t->password);
}

static void token_check_after(api_job *j) {
  token_op *t = (token_op *)((char *)j - offsetof(token_op, job));
  if (!t->ok) {
    api_fail(t->o.req, "wrong password");
    api_uop_free(&t->o);
    return;
  }
  if (srv_token_long_new(t->o.uid, t->token, t->hash) != 0) {
    web_respond_error(t->o.req, 500, "cannot make a token");
    api_uop_free(&t->o);
    return;
  }
  token_id(t->hash, t->id);
  api_uop_submit(&t->o, token_prepare, NULL);
}

static void h_tokens_create(web_req *req, void *ud) {
  srv_api *api = ud;
  json_t *body;
  store_user u;
  token_op *t = api_uop_begin(api, req, sizeof *t, token_op_release, &body, &u);
  if (!t) return;
  const char *pw = api_jstr(body, "password"), *label = api_jstr(body, "label");
  json_t *days = json_object_get(body, "days");
  int rc = 0;
  if (!pw || strlen(pw) > SRV_PASSWORD_MAX) rc = api_uop_refuse(&t->o, "password required (the account's password)");
  if (!rc && label && strlen(label) >= sizeof t->rec.label) rc = api_uop_refuse(&t->o, "label too long (at most 63 bytes)");
  if (!rc && days && !json_is_null(days) &&
      (!json_is_integer(days) || json_integer_value(days) < 1 || json_integer_value(days) > 3650))
    rc = api_uop_refuse(&t->o, "days must be a whole number from 1 to 3650");
  if (!rc) {
    snprintf(t->password, sizeof t->password, "%s", pw);
    snprintf(t->username, sizeof t->username, "%s", u.username);
    snprintf(t->rec.label, sizeof t->rec.label, "%s", label ? label : "");
    t->rec.created_ms = srv_now_ms();
    t->rec.expires_ms = json_is_integer(days) ? t->rec.created_ms + json_integer_value(days) * 86400000LL : 0;
  }
  json_decref(body);
  if (rc) {
    api_fail(req, t->o.err);
    api_uop_free(&t->o);
    return;
  }
  if (api_queue_work(api, req, &t->job, token_check_work, token_check_after) != 0) {
    web_respond_error(req, 500, "cannot queue the work");
    api_uop_free(&t->o);
  }
}

typedef struct revoke_op {
  uop o;
  char id[17];
  unsigned char hash[SRV_TOKEN_HASH_BYTES];
  bool found;
} revoke_op;

static int match_token(const unsigned char *hash, const store_token *t, void *ud) {
  (void)t;
  revoke_op *r = ud;
  char id[17];
  token_id(hash, id);
  if (strcmp(id, r->id) != 0) return 0;
  memcpy(r->hash, hash, SRV_TOKEN_HASH_BYTES);
  r->found = true;
  return 1;
}

static int revoke_prepare(srv *s, store_txn *txn, void *ud) {
  (void)s;
  revoke_op *r = ud;
  int rc = store_token_iter(txn, r->o.uid, match_token, r);
  if (rc < 0) return rc;
  if (!r->found) return api_uop_refuse(&r->o, "token not found");
  return store_token_delete(txn, r->o.uid, r->hash);
}

static void h_tokens_revoke(web_req *req, void *ud) {
  srv_api *api = ud;
  json_t *body;
  revoke_op *r = api_uop_begin(api, req, sizeof *r, NULL, &body, NULL);
  if (!r) return;
  const char *id = api_jstr(body, "_id");
  bool ok = id && strlen(id) == 16;
  if (ok) snprintf(r->id, sizeof r->id, "%s", id);
  json_decref(body);
  if (!ok) {
    api_fail(req, "token not found");
    api_uop_free(&r->o);
    return;
  }
  api_uop_submit(&r->o, revoke_prepare, NULL);
}

/* ------------------------------------------------------------------ install */

int api_user_install(srv_api *api) {
  web *w = api->w;
  int rc;
  if ((rc = web_route(w, "GET", "/api/user/code", h_code_get, api)) ||
      (rc = web_route(w, "POST", "/api/user/code", h_code_post, api)) ||
      (rc = web_route(w, "GET", "/api/user/branches", h_branches, api)) ||
      (rc = web_route(w, "POST", "/api/user/clone-branch", h_clone_branch, api)) ||
      (rc = web_route(w, "POST", "/api/user/delete-branch", h_delete_branch, api)) ||
      (rc = web_route(w, "POST", "/api/user/set-active-branch", h_set_active_branch, api)) ||
      (rc = web_route(w, "GET", "/api/user/memory", h_memory_get, api)) ||
      (rc = web_route(w, "POST", "/api/user/memory", h_memory_post, api)) ||
      (rc = web_route(w, "GET", "/api/user/memory-segment", h_segment_get, api)) ||
      (rc = web_route(w, "POST", "/api/user/memory-segment", h_segment_post, api)) ||
      (rc = web_route(w, "POST", "/api/user/console", h_console, api)) ||
      (rc = web_route(w, "GET", "/api/user/auth-tokens", h_tokens_list, api)) ||
      (rc = web_route(w, "POST", "/api/user/auth-tokens", h_tokens_create, api)) ||
      (rc = web_route(w, "POST", "/api/user/auth-tokens/revoke", h_tokens_revoke, api)))
    return rc;
  return 0;
}

int srv_api_install(srv *s, web *w, uv_loop_t *loop) {
  /* Lives as long as the server: thread-pool work and ops may still finish (and answer
   * into a web that is gone, which web allows) after the web is freed. */
  static srv_api api;
  api = (srv_api){s, loop, w};
  int rc = api_auth_install(&api);
  if (!rc) rc = api_user_install(&api);
  if (!rc) rc = api_world_install(&api);
  return rc;
}
