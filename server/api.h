/*
 * api.h — what the player API files (api_auth.c, api_user.c) share. Internal to server/.
 *
 * Every handler runs on the loop thread. It reads committed state through LMDB read
 * transactions (cheap, never blocked by the writer), sends heavy work (argon2, large
 * reads and encodings) to libuv's thread pool, and sends every change to the tick
 * thread as an op (server.h), answering only when the op is committed.
 */
#ifndef ISOWORLD_SERVER_API_H
#define ISOWORLD_SERVER_API_H

#include "server.h"
#include "web.h"

typedef struct srv_api {
  srv *s;
  uv_loop_t *loop;
  web *w;
} srv_api;

/* {"ok":1} — add fields, then web_respond it. NULL on out of memory. */
json_t *api_ok(void);
/* Answers {"ok":1} plus the fields of `extra` (stolen; may be NULL). */
void api_respond_ok(web_req *req, json_t *extra);
/* Answers HTTP 200 {"error": message} — a logical failure, as PROTOCOL.md wants. */
void api_fail(web_req *req, const char *message);
/* Answers 401 {"error":"unauthorized"}. */
void api_unauthorized(web_req *req);
/* Answers the failure of an op that did not commit: SRV_OP_STOPPED, a store error. */
void api_op_failed(web_req *req, int status);

/* The user behind a token, from committed state (an LMDB read; any thread): a valid
 * session token, or a long token found in the store, of a user that exists and is not
 * banned. *is_long (may be NULL) tells which. False if the token is not valid now. */
bool api_token_user(srv *s, const char *token, store_user *u, bool *is_long);
/* Authenticates a request by its token (X-Token header, else ?_token=): a valid session
 * token, or a long token found in the store, of a user that exists and is not banned.
 * On success fills *u, sets the X-Token response header (a fresh session token; a long
 * token is echoed back, so tools that adopt X-Token keep their long token) and returns
 * true. Otherwise answers 401 (req consumed) and returns false. */
bool api_authenticate(srv_api *api, web_req *req, store_user *u);
/* True when the request carries a token at all. */
bool api_has_token(web_req *req);
/* Sets a fresh session token for u in the X-Token response header. */
void api_rotate_token(srv_api *api, web_req *req, const store_user *u);

/* Runs `work` on libuv's thread pool, then `after` on the loop thread. `job` must start
 * with an api_job. 0 or a uv error (then nothing runs). */
typedef struct api_job api_job;
typedef void (*api_work_fn)(api_job *job);
typedef void (*api_after_fn)(api_job *job);
struct api_job {
  uv_work_t work;
  srv_api *api;
  web_req *req;
  api_work_fn fn;
  api_after_fn after;
};
int api_queue_work(srv_api *api, web_req *req, api_job *job, api_work_fn fn, api_after_fn after);

/* Checks username and password on the thread pool; on success the user is in `user`.
 * Wrong credentials cost the same time as right ones. Thread pool only. */
bool api_check_password(srv *s, const char *login, const char *password, store_user *user);

/* Modules of an upload, as players name them; names and data owned (malloc'd). */
typedef struct api_modules {
  sbx_module *m;
  size_t n;
} api_modules;
/* Reads a `modules` object: text, or {binary: base64}; checks the 5 MB limit and the
 * names; adds an empty `main` if there is none. 0, or -1 with a message in err (then
 * *out is empty). */
int api_modules_parse(json_t *modules, api_modules *out, char *err, size_t errcap);
void api_modules_release(api_modules *m);

/* The string member `key` of a JSON object, or NULL. */
const char *api_jstr(json_t *o, const char *key);

/* ---- handlers whose change is an op (api_ops.c) ---- */
/* An op in flight for a request: embed it first in the op's own struct. */
typedef struct uop uop;
struct uop {
  srv_api *api;
  web_req *req;
  uint64_t uid;
  char err[200]; /* the reason of a refusal (prepare returned > 0) */
  json_t *reply; /* fields added to {"ok":1} */
  void (*release)(uop *o);
};
/* A new op of `size` bytes (a struct starting with uop) for user u; NULL: answered 500. */
void *api_uop_new(size_t size, srv_api *api, web_req *req, const store_user *u);
/* Authenticate, parse the JSON body, allocate: NULL when the request was answered;
 * otherwise *body is the caller's to release; user (may be NULL) gets the user. */
void *api_uop_begin(srv_api *api, web_req *req, size_t size, void (*release)(uop *), json_t **body,
                    store_user *user);
/* Queues the op; the answer goes out when it is done (or now, if it cannot be queued). */
void api_uop_submit(uop *o, srv_op_prepare_fn prepare, srv_op_apply_fn apply);
void api_uop_free(uop *o);
/* Sets the refusal message and returns 1 (prepare's "refused"). */
int api_uop_refuse(uop *o, const char *msg);

/* Route installers. */
int api_auth_install(srv_api *api);
int api_user_install(srv_api *api);
int api_world_install(srv_api *api);

#endif
