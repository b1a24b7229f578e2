/*
 * api_auth.c — accounts over HTTP: registration, sign-in, tokens, who am I.
 *
 * Routes (PROTOCOL.md "Auth", screepsmod-auth's registration):
 *   POST /api/register/submit         {username, email?, password, modules?} -> {ok:1}
 *   GET  /api/register/check-username ?username= -> {ok:1} | {error:"exists"}
 *   GET  /api/register/check-email    ?email=    -> {ok:1} | {error:"exists"}
 *   GET  /api/authmod                 {ok:1, name, version, allowRegistration, steam:false}
 *   POST /api/auth/signin             {email: <email or username>, password} or Basic
 *                                     -> {ok:1, token}; wrong credentials -> 401
 *   GET  /api/auth/me                 {ok:1, _id, username, email, cpu, password, ...}
 *   GET  /api/auth/query-token        ?token= -> {ok:1, token:{full:true, token}}
 *   GET  /api/user/name               {ok:1, username}
 *
 * Passwords are never stored or logged: argon2id hashes only, computed and checked on
 * libuv's thread pool (tens of milliseconds each), never on the loop thread.
 */
#include "api.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ shared helpers */

json_t *api_ok(void) {
  return json_pack("{s:i}", "ok", 1);
}

void api_respond_ok(web_req *req, json_t *extra) {
  json_t *o = api_ok();
  if (o && extra) json_object_update(o, extra);
  json_decref(extra);
  if (!o) {
    web_respond_error(req, 500, "out of memory");
    return;
  }
  web_respond(req, 200, o);
}

void api_fail(web_req *req, const char *message) {
  web_respond_error(req, 200, message);
}

void api_unauthorized(web_req *req) {
  web_respond_error(req, 401, "unauthorized");
}

void api_op_failed(web_req *req, int status) {
  if (status == SRV_OP_STOPPED)
    web_respond_error(req, 503, "the server is stopping");
  else
    web_respond_error(req, 500, "the change could not be saved");
}

static const char *request_token(web_req *req) {
  const char *t = web_req_header(req, "x-token");
  if (t && *t) return t;
  t = web_req_query(req, "_token");
  return t && *t ? t : NULL;
}

bool api_has_token(web_req *req) {
  return request_token(req) != NULL;
}

void api_rotate_token(srv_api *api, web_req *req, const store_user *u) {
  char tok[SRV_TOKEN_MAX];
  int64_t exp = srv_now_ms() + (int64_t)api->s->cfg.token_ttl_s * 1000;
  if (srv_token_mint(api->s->token_key, u->id, exp, tok) == 0) web_req_set_header(req, "X-Token", tok);
}

bool api_token_user(srv *s, const char *token, store_user *u, bool *is_long) {
  uint64_t uid = 0;
  unsigned char hash[SRV_TOKEN_HASH_BYTES];
  int64_t now = srv_now_ms();
  srv_token_kind k = srv_token_check(s->token_key, token, now, &uid, NULL, hash);
  if (k != SRV_TOKEN_SESSION && k != SRV_TOKEN_LONG) return false;
  store_txn *txn;
  if (store_read_begin(s->db, &txn) != STORE_OK) return false;
  bool ok = true;
  if (k == SRV_TOKEN_LONG) {
    store_token t;
    ok = store_token_get(txn, uid, hash, &t) == STORE_OK && (t.expires_ms == 0 || now < t.expires_ms);
  }
  ok = ok && store_user_get(txn, uid, u) == STORE_OK && !(u->flags & SRV_USER_BANNED);
  store_abort(txn);
  if (is_long) *is_long = k == SRV_TOKEN_LONG;
  return ok;
}

bool api_authenticate(srv_api *api, web_req *req, store_user *u) {
  const char *token = request_token(req);
  bool is_long = false;
  if (!token || !api_token_user(api->s, token, u, &is_long)) {
    api_unauthorized(req);
    return false;
  }
  if (is_long)
    web_req_set_header(req, "X-Token", token);
  else
    api_rotate_token(api, req, u);
  return true;
}

static void job_work(uv_work_t *w) {
  api_job *job = (api_job *)w;
  job->fn(job);
}

static void job_after(uv_work_t *w, int status) {
  (void)status;
  api_job *job = (api_job *)w;
  job->after(job);
}

int api_queue_work(srv_api *api, web_req *req, api_job *job, api_work_fn fn, api_after_fn after) {
  job->api = api;
  job->req = req;
  job->fn = fn;
  job->after = after;
  return uv_queue_work(api->loop, &job->work, job_work, job_after);
}

bool api_check_password(srv *s, const char *login, const char *password, store_user *user) {
  bool found = false;
  store_txn *txn;
  if (login && *login && store_read_begin(s->db, &txn) == STORE_OK) {
    found = store_user_find(txn, login, user) == STORE_OK ||
            (strchr(login, '@') && store_user_find_email(txn, login, user) == STORE_OK);
    store_abort(txn);
  }
  if (!found || !user->password_hash[0]) {
    /* The same work as a real check, so a wrong name takes as long as a wrong password. */
    char dummy[128];
    srv_password_hash(password ? password : "", dummy);
    return false;
  }
  return srv_password_verify(user->password_hash, password ? password : "") && !(user->flags & SRV_USER_BANNED);
}

/* The string member `key` of a JSON object, or NULL. */
const char *api_jstr(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ------------------------------------------------------------------ sign-in */

typedef struct signin_job {
  api_job job;
  char login[STORE_EMAIL_MAX];
  char password[SRV_PASSWORD_MAX + 1];
  store_user user;
  bool ok;
} signin_job;

static void signin_work(api_job *j) {
  signin_job *sj = (signin_job *)j;
  sj->ok = api_check_password(j->api->s, sj->login, sj->password, &sj->user);
  sodium_memzero(sj->password, sizeof sj->password);
}

static void signin_after(api_job *j) {
  signin_job *sj = (signin_job *)j;
  if (!sj->ok) {
    api_unauthorized(j->req);
  } else {
    char tok[SRV_TOKEN_MAX];
    int64_t exp = srv_now_ms() + (int64_t)j->api->s->cfg.token_ttl_s * 1000;
    if (srv_token_mint(j->api->s->token_key, sj->user.id, exp, tok) != 0)
      web_respond_error(j->req, 500, "cannot mint a token");
    else
      api_respond_ok(j->req, json_pack("{s:s}", "token", tok));
  }
  free(sj);
}

static void h_signin(web_req *req, void *ud) {
  srv_api *api = ud;
  signin_job *sj = calloc(1, sizeof *sj);
  if (!sj) {
    web_respond_error(req, 500, "out of memory");
    return;
  }
  char user[STORE_EMAIL_MAX], pass[SRV_PASSWORD_MAX + 1];
  int brc = web_req_basic_auth(req, user, sizeof user, pass, sizeof pass);
  if (brc == WEB_OK) {
    snprintf(sj->login, sizeof sj->login, "%s", user);
    snprintf(sj->password, sizeof sj->password, "%s", pass);
    sodium_memzero(pass, sizeof pass);
  } else {
    json_t *body;
    if (web_parse_json_body(req, &body) != WEB_OK) {
      free(sj);
      return;
    }
    const char *login = api_jstr(body, "email");
    if (!login) login = api_jstr(body, "username");
    const char *password = api_jstr(body, "password");
    bool fits = login && password && strlen(login) < sizeof sj->login && strlen(password) < sizeof sj->password;
    if (fits) {
      snprintf(sj->login, sizeof sj->login, "%s", login);
      snprintf(sj->password, sizeof sj->password, "%s", password);
    }
    json_decref(body);
    if (!fits) {
      free(sj);
      api_unauthorized(req);
      return;
    }
  }
  if (api_queue_work(api, req, &sj->job, signin_work, signin_after) != 0) {
    sodium_memzero(sj->password, sizeof sj->password);
    free(sj);
    web_respond_error(req, 500, "cannot queue the work");
  }
}

/* ------------------------------------------------------------------ registration */

typedef struct register_job {
  api_job job;
  store_user user;
  char password[SRV_PASSWORD_MAX + 1];
  api_modules mods;
  int hash_rc;
  char err[160];
} register_job;

static void register_free(register_job *rj) {
  api_modules_release(&rj->mods);
  sodium_memzero(rj->password, sizeof rj->password);
  free(rj);
}

void api_modules_release(api_modules *m) {
  for (size_t i = 0; i < m->n; i++) {
    free((char *)m->m[i].name);
    free((char *)m->m[i].source);
  }
  free(m->m);
  memset(m, 0, sizeof *m);
}

int api_modules_parse(json_t *modules, api_modules *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  if (!json_is_object(modules)) return snprintf(err, errcap, "modules must be an object"), -1;
  if (json_dumpb(modules, NULL, 0, JSON_COMPACT) > SRV_CODE_MAX)
    return snprintf(err, errcap, "code length exceeds 5 MB limit"), -1;
  size_t n = json_object_size(modules);
  out->m = calloc(n + 1, sizeof *out->m); /* + an empty main if there is none */
  if (!out->m) return snprintf(err, errcap, "out of memory"), -1;
  bool has_main = false;
  const char *name;
  json_t *v;
  json_object_foreach(modules, name, v) {
    char esc[STORE_MODULE_NAME_MAX];
    if (srv_module_escape(name, esc, sizeof esc) != 0) {
      api_modules_release(out);
      return snprintf(err, errcap, "invalid module name '%.60s'", name), -1;
    }
    const char *b64 = json_is_object(v) ? api_jstr(v, "binary") : NULL;
    char *d = NULL;
    size_t len = 0;
    bool binary = false;
    if (json_is_string(v)) {
      len = json_string_length(v);
      if ((d = malloc(len + 1))) memcpy(d, json_string_value(v), len + 1);
    } else if (b64) {
      size_t bl = strlen(b64), cap = bl / 4 * 3 + 4;
      binary = true;
      if ((d = malloc(cap)) &&
          sodium_base642bin((unsigned char *)d, cap, b64, bl, "\r\n ", &len, NULL, sodium_base64_VARIANT_ORIGINAL)) {
        free(d);
        api_modules_release(out);
        return snprintf(err, errcap, "module '%.60s': binary is not base64", name), -1;
      }
    } else {
      api_modules_release(out);
      return snprintf(err, errcap, "module '%.60s' must be a string or {\"binary\": \"<base64>\"}", name), -1;
    }
    char *nm = strdup(name);
    if (!d || !nm) {
      free(d);
      free(nm);
      api_modules_release(out);
      return snprintf(err, errcap, "out of memory"), -1;
    }
    out->m[out->n++] = (sbx_module){nm, d, len, binary};
    if (!strcmp(name, "main")) has_main = true;
  }
  if (!has_main) {
    char *nm = strdup("main"), *d = calloc(1, 1);
    if (!nm || !d) {
      free(nm);
      free(d);
      api_modules_release(out);
      return snprintf(err, errcap, "out of memory"), -1;
    }
    out->m[out->n++] = (sbx_module){nm, d, 0, false};
  }
  return 0;
}

static void register_work(api_job *j) {
  register_job *rj = (register_job *)j;
  rj->hash_rc = srv_password_hash(rj->password, rj->user.password_hash);
  sodium_memzero(rj->password, sizeof rj->password);
}

static int register_prepare(srv *s, store_txn *txn, void *ud) {
  register_job *rj = ud;
  int rc = srv_user_create(s, txn, &rj->user, rj->mods.m, rj->mods.n);
  if (rc == STORE_EXISTS) {
    snprintf(rj->err, sizeof rj->err, "User already exists");
    return 1;
  }
  if (rc == STORE_INVALID) {
    snprintf(rj->err, sizeof rj->err, "invalid module name");
    return 1;
  }
  return rc;
}

static void register_apply(srv *s, void *ud) {
  register_job *rj = ud;
  store_txn *txn;
  int rc = store_read_begin(s->db, &txn);
  if (rc == STORE_OK) {
    rc = srv_player_add(s, txn, &rj->user);
    store_abort(txn);
  }
  if (rc != STORE_OK)
    srv_log("user %s is registered but could not be loaded: %s (runs after a restart)", rj->user.username,
            store_strerror(rc));
  atomic_store(&s->pub_users, s->n_players);
  srv_log("registered user %s (id %" PRIu64 ")", rj->user.username, rj->user.id);
}

static void register_done(srv *s, int status, void *ud) {
  (void)s;
  register_job *rj = ud;
  if (status == 0)
    api_respond_ok(rj->job.req, NULL);
  else if (status > 0)
    api_fail(rj->job.req, rj->err);
  else
    api_op_failed(rj->job.req, status);
  register_free(rj);
}

static void register_after(api_job *j) {
  register_job *rj = (register_job *)j;
  if (rj->hash_rc != 0) {
    web_respond_error(j->req, 500, "cannot hash the password");
    register_free(rj);
    return;
  }
  int rc = srv_op_submit(j->api->s, register_prepare, register_apply, register_done, rj);
  if (rc != 0) {
    api_op_failed(j->req, rc);
    register_free(rj);
  }
}

static void h_register(web_req *req, void *ud) {
  srv_api *api = ud;
  if (!api->s->cfg.registration) {
    api_fail(req, "registration is closed on this server");
    return;
  }
  json_t *body;
  if (web_parse_json_body(req, &body) != WEB_OK) return;
  const char *username = api_jstr(body, "username"), *email = api_jstr(body, "email"),
             *password = api_jstr(body, "password");
  const char *err = NULL;
  if (!srv_username_is_valid(username))
    err = "invalid username: 3 to 30 letters, digits, '_' or '-'";
  else if (email && *email && !srv_email_is_valid(email))
    err = "invalid email";
  else if (!password || strlen(password) < SRV_PASSWORD_MIN || strlen(password) > SRV_PASSWORD_MAX)
    err = "invalid password: 8 to 256 characters";
  if (err) {
    json_decref(body);
    api_fail(req, err);
    return;
  }
  /* Early answer for a name or email already taken (the op checks again). */
  store_txn *txn;
  store_user other;
  if (store_read_begin(api->s->db, &txn) == STORE_OK) {
    bool taken = store_user_find(txn, username, &other) == STORE_OK ||
                 (email && *email && store_user_find_email(txn, email, &other) == STORE_OK);
    store_abort(txn);
    if (taken) {
      json_decref(body);
      api_fail(req, "User already exists");
      return;
    }
  }
  register_job *rj = calloc(1, sizeof *rj);
  if (!rj) {
    json_decref(body);
    web_respond_error(req, 500, "out of memory");
    return;
  }
  snprintf(rj->user.username, sizeof rj->user.username, "%s", username);
  if (email) snprintf(rj->user.email, sizeof rj->user.email, "%s", email);
  snprintf(rj->password, sizeof rj->password, "%s", password);
  rj->user.cpu_limit = api->s->cfg.cpu_limit;
  json_t *mods = json_object_get(body, "modules");
  int mrc = mods && !json_is_null(mods) ? api_modules_parse(mods, &rj->mods, rj->err, sizeof rj->err) : 0;
  json_decref(body);
  if (mrc != 0) {
    api_fail(req, rj->err);
    register_free(rj);
    return;
  }
  if (api_queue_work(api, req, &rj->job, register_work, register_after) != 0) {
    web_respond_error(req, 500, "cannot queue the work");
    register_free(rj);
  }
}

/* Whether a username or email is free: {ok:1}, or {error:"exists"}. */
static void check_available(web_req *req, srv_api *api, const char *value, bool (*valid)(const char *),
                            const char *invalid_msg, int (*find)(store_txn *, const char *, store_user *)) {
  if (!valid(value)) {
    api_fail(req, invalid_msg);
    return;
  }
  store_txn *txn;
  store_user u;
  if (store_read_begin(api->s->db, &txn) != STORE_OK) {
    web_respond_error(req, 500, "database unavailable");
    return;
  }
  bool taken = find(txn, value, &u) == STORE_OK;
  store_abort(txn);
  if (taken)
    api_fail(req, "exists");
  else
    api_respond_ok(req, NULL);
}

static void h_check_username(web_req *req, void *ud) {
  check_available(req, ud, web_req_query(req, "username"), srv_username_is_valid, "invalid username",
                  store_user_find);
}

static void h_check_email(web_req *req, void *ud) {
  check_available(req, ud, web_req_query(req, "email"), srv_email_is_valid, "invalid email", store_user_find_email);
}

static void h_authmod(web_req *req, void *ud) {
  srv_api *api = ud;
  api_respond_ok(req, json_pack("{s:s, s:s, s:b, s:b}", "name", "isoworld", "version", ISOWORLD_VERSION,
                                "allowRegistration", api->s->cfg.registration, "steam", 0));
}

/* ------------------------------------------------------------------ who am I */

static void h_me(web_req *req, void *ud) {
  srv_api *api = ud;
  store_user u;
  if (!api_authenticate(api, req, &u)) return;
  char id[24];
  snprintf(id, sizeof id, "%" PRIu64, u.id);
  api_respond_ok(req, json_pack("{s:s, s:s, s:s, s:i, s:b, s:{}, s:i, s:i, s:i, s:{}}", "_id", id, "username",
                                u.username, "email", u.email, "cpu", (int)u.cpu_limit, "password",
                                u.password_hash[0] != '\0', "badge", "gcl", 0, "power", 0, "money", 0, "steam"));
}

static void h_name(web_req *req, void *ud) {
  srv_api *api = ud;
  store_user u;
  if (!api_authenticate(api, req, &u)) return;
  api_respond_ok(req, json_pack("{s:s}", "username", u.username));
}

static void h_query_token(web_req *req, void *ud) {
  srv_api *api = ud;
  const char *token = web_req_query(req, "token");
  store_user u;
  if (!token || !api_token_user(api->s, token, &u, NULL)) {
    api_fail(req, "invalid token");
    return;
  }
  api_respond_ok(req, json_pack("{s:{s:b, s:s}}", "token", "full", 1, "token", token));
}

int api_auth_install(srv_api *api) {
  web *w = api->w;
  int rc;
  if ((rc = web_route(w, "POST", "/api/auth/signin", h_signin, api)) ||
      (rc = web_route(w, "GET", "/api/auth/me", h_me, api)) ||
      (rc = web_route(w, "GET", "/api/auth/query-token", h_query_token, api)) ||
      (rc = web_route(w, "GET", "/api/user/name", h_name, api)) ||
      (rc = web_route(w, "GET", "/api/authmod", h_authmod, api)) ||
      (rc = web_route(w, "POST", "/api/register/submit", h_register, api)) ||
      (rc = web_route(w, "GET", "/api/register/check-username", h_check_username, api)) ||
      (rc = web_route(w, "GET", "/api/register/check-email", h_check_email, api)))
    return rc;
  return 0;
}
