/*
 * api_ops.c — the plumbing of player API handlers whose change is an op (server.h): the
 * request waits in an api_uop until the tick thread has committed the op (or refused it),
 * then gets {"ok":1,...}, {"error":"..."} or a 500/503.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_uop_free(uop *o) {
  json_decref(o->reply);
  if (o->release) o->release(o);
  free(o);
}

static void api_uop_done(srv *s, int status, void *ud) {
  (void)s;
  uop *o = ud;
  if (status == 0) {
    api_respond_ok(o->req, o->reply);
    o->reply = NULL;
  } else if (status > 0) {
    api_fail(o->req, o->err);
  } else {
    api_op_failed(o->req, status);
  }
  api_uop_free(o);
}

void api_uop_submit(uop *o, srv_op_prepare_fn prepare, srv_op_apply_fn apply) {
  int rc = srv_op_submit(o->api->s, prepare, apply, api_uop_done, o);
  if (rc != 0) {
    api_op_failed(o->req, rc);
    api_uop_free(o);
  }
}

/* A new op of `size` bytes (a struct starting with uop) for the authenticated user. */
void *api_uop_new(size_t size, srv_api *api, web_req *req, const store_user *u) {
  uop *o = calloc(1, size);
  if (!o) {
    web_respond_error(req, 500, "out of memory");
    return NULL;
  }
  o->api = api;
  o->req = req;
  o->uid = u->id;
  return o;
}

/* The common start of a POST handler that becomes an op: authenticate, parse the JSON
 * body, allocate the op. On any failure the request has been answered and NULL is
 * returned; otherwise *body is the caller's to release. user (may be NULL) gets the
 * signed-in user's record. */
void *api_uop_begin(srv_api *api, web_req *req, size_t size, void (*release)(uop *), json_t **body,
                       store_user *user) {
  store_user local, *u = user ? user : &local;
  if (!api_authenticate(api, req, u)) return NULL;
  if (web_parse_json_body(req, body) != WEB_OK) return NULL;
  uop *o = api_uop_new(size, api, req, u);
  if (!o) {
    json_decref(*body);
    return NULL;
  }
  o->release = release;
  return o;
}

int api_uop_refuse(uop *o, const char *msg) {
  snprintf(o->err, sizeof o->err, "%s", msg);
  return 1;
}
