/*
 * web.c — HTTP on libwebsockets 4.1 over the caller's libuv loop.
 *
 * This file is the only place that knows libwebsockets. It turns lws' callback stream into
 * whole requests (headers copied out, body collected, chunked bodies decoded), routes them to
 * handlers, and writes the answers back. It must not include any other project header and
 * must not block the loop for long: static files are read synchronously, so keep them small.
 *
 * Ownership of a request (web_req):
 *   RECEIVING   web owns it (the body is still arriving);
 *   HANDLING    the handler owns it until it calls web_respond* — possibly much later. If the
 *               connection closes meanwhile, the request is only marked gone (wsi = NULL);
 *               the late web_respond* frees it and sends nothing;
 *   RESPONDING  web owns it again until the last byte is written or the connection closes.
 * The per-transaction lws session data (struct web__pss) points at the request; lws frees
 * and reallocates that session data whenever it rebinds the protocol (every keep-alive
 * transaction), so the pointer is cleared before lws_http_transaction_completed().
 *
 * Why some things look odd (libwebsockets 4.1.6 behaviour, from its source and our tests):
 *   - lws does not read a connection while a GET's transaction is open, yet leaves POLLIN
 *     armed: once the client hangs up (or sends its next request) the level-triggered poll
 *     spins at 100% CPU. web__dispatch flow-controls rx while a handler holds the request,
 *     and a 200 ms probe (recv MSG_PEEK) notices clients that leave meanwhile.
 *   - lws services an h1 server connection's POLLOUT from inside its POLLIN handler, which
 *     returns early while rx is flow-controlled: rx must be re-enabled before writing.
 *   - lws keeps a 5 s PENDING_TIMEOUT_HTTP_CONTENT armed after LWS_CALLBACK_HTTP for a GET;
 *     a deferred answer would be cut off, so dispatch re-arms a longer user timeout.
 *   - A request with a body pipelined behind another request in the same read: lws feeds
 *     the request's own header bytes back as its body, then loops at 100% CPU. Detected
 *     (web__is_own_headers) and answered by closing the connection.
 *   - lws does not decode chunked request bodies; for a POST/PUT/PATCH without
 *     Content-Length it assumes 100 MB follow and hands us the raw bytes. We decode the
 *     chunks ourselves and close the connection after answering, since lws' idea of where
 *     the body ends is wrong and it would swallow the next request as "body".
 *   - lws does not answer "Expect: 100-continue" (curl waits 1 s); we write the 100.
 *   - Fresh connections are bound to the vhost's default protocol, which is our websocket
 *     one (so clients without Sec-WebSocket-Protocol get it): LWS_CALLBACK_HTTP_CONFIRM_UPGRADE
 *     therefore arrives at the websocket callback, not the HTTP one.
 *   - With a foreign libuv loop, lws_context_destroy() only starts closing; nothing tells
 *     the caller when lws' own uv handles are gone. The reaper (an idle handle) waits until
 *     no handle on the loop belongs to the context (lws tags its static handles with
 *     data == context; they close only after every connection handle closed), then calls
 *     lws_context_destroy() again, which finishes synchronously and frees the context.
 *   - If vhost creation fails inside lws_create_context() with a foreign loop, lws returns a
 *     context that is already half destroyed; we create the vhost explicitly instead
 *     (LWS_SERVER_OPTION_EXPLICIT_VHOSTS) so a bind failure is a clean NULL.
 *   - A bind address not on this host is taken for an interface that is not up yet: lws
 *     "succeeds" without listening and retries every 30 s. web__check_addr() asks first.
 *   - An IPv4 literal as iface on an IPv6-enabled vhost is parsed into an IPv6 sockaddr
 *     (garbage bind); IPv4 binds set LWS_SERVER_OPTION_DISABLE_IPV6.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WEB__DEFAULT_PORT 21025
#define WEB__DEFAULT_MAX_BODY ((size_t)8 * 1024 * 1024)
#define WEB__DEFAULT_REQUEST_TIMEOUT 120
#define WEB__WRITE_CHUNK ((size_t)64 * 1024)
#define WEB__STATIC_MAX ((off_t)64 * 1024 * 1024)
#define WEB__REAP_GIVE_UP_MS 10000
#define WEB__JSON_TYPE "application/json; charset=utf-8"

/* ------------------------------------------------------------------------------------------ */
/* types                                                                                       */

typedef struct web__kv {
  char *name; /* lowercase for request headers */
  char *value;
} web__kv;

typedef struct web__kvs {
  web__kv *v;
  size_t n, cap;
} web__kvs;

typedef struct web__route {
  char *method; /* uppercase, NULL = any */
  char *path;
  web_handler fn;
  void *ud;
} web__route;

typedef struct web__cleanup {
  struct web__cleanup *next;
  void (*fn)(void *ud);
  void *ud;
} web__cleanup;

enum web__state { WEB__RECEIVING = 1, WEB__HANDLING, WEB__RESPONDING, WEB__CLOSING };

enum web__chunk_state {
  WEB__CH_SIZE = 0,     /* hex digits of a chunk size */
  WEB__CH_EXT,          /* chunk extension, skipped up to CR */
  WEB__CH_SIZE_LF,      /* LF ending the size line */
  WEB__CH_DATA,         /* chunk payload */
  WEB__CH_DATA_CR,      /* CR after the payload */
  WEB__CH_DATA_LF,      /* LF after the payload */
  WEB__CH_TRAILER,      /* start of a trailer line, or the final CRLF */
  WEB__CH_TRAILER_SKIP, /* inside a trailer line */
  WEB__CH_END_LF,       /* LF of the final CRLF */
  WEB__CH_DONE,
};

struct web__pss {
  web_req *req;
};

struct web_req {
  web *w;          /* NULL once web_free() ran */
  struct lws *wsi; /* NULL once the connection is gone */
  struct web__pss *pss;
  web_req *prev, *next; /* w->reqs */
  enum web__state state;
  web_handler fn;
  void *ud;
  char method[8];
  char *path;
  web__kvs query;
  web__kvs headers;
  char peer[64];
  char *body;
  size_t body_len, body_cap;
  bool chunked, close_after, head_only, in_handler;
  uintptr_t seq;     /* transactions before this one on the same connection */
  uint64_t rx_bytes; /* raw body bytes lws handed us */
  enum web__chunk_state ch_state;
  uint64_t ch_left;
  int ch_digits;
  /* response */
  int status;
  char *ctype;
  web__kvs rheaders;
  char *rbody;
  size_t rbody_len;
  bool rbody_static;
  unsigned char *out; /* LWS_PRE + headers + body */
  size_t out_len, out_off;
};

struct web {
  uv_loop_t *loop;
  struct lws_context *ctx; /* set to NULL by lws itself when finally destroyed (pcontext) */
  struct lws_vhost *vh;
  struct lws_protocols protocols[3];
  struct lws_protocol_vhost_options pvo_ws_default, pvo_ws;
  struct lws_protocol_vhost_options hdr_origin, hdr_expose;
  char *server_name;
  char *ws_path;
  char *static_root; /* realpath of static_dir, or NULL */
  size_t max_body;
  unsigned request_timeout_s;
  char **capture; /* lowercase "name:" for lws_hdr_custom_* */
  size_t ncapture;
  web_log_fn log;
  void *log_ud;
  web__route *routes;
  size_t nroutes, cap_routes;
  web_req *reqs;
  web__ws *ws; /* websocket connections and channels (ws.c) */
  web__cleanup *cleanups;
  int port;
  bool closing;
  bool destroy_started;
  bool probe_inited;
  int open_handles; /* our uv handles still closing after web_free */
  uv_timer_t probe; /* liveness of connections whose request a handler holds */
  uv_idle_t reaper;
  uint64_t reap_start;
};

static const char *const web__default_capture[] = {"x-token", "x-username", "x-server-password", NULL};

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                               */

const char *web_strerror(int status) {
  switch (status) {
    case WEB_OK: return "ok";
    case WEB_EINVAL: return "invalid argument";
    case WEB_ENOMEM: return "out of memory";
    case WEB_EEXIST: return "route already registered";
    case WEB_EADDRINUSE: return "cannot listen on the requested address";
    case WEB_EADDRNOTAVAIL: return "bind address is not an address of this host";
    case WEB_EIO: return "libwebsockets failure";
    case WEB_ENOTCONN: return "client disconnected";
    case WEB_EBADMSG: return "malformed request body";
    case WEB_ENOENT: return "not present";
    case WEB_ENOSPC: return "buffer too small";
    default: return "unknown error";
  }
}

static void web__log(const web *w, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void web__log(const web *w, int level, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  if (!w || !w->log) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  w->log(w->log_ud, level, buf);
}

void web__logf(const web *w, int level, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  if (!w || !w->log) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  w->log(w->log_ud, level, buf);
}

web__ws *web__get_ws(const web *w) {
  return w ? w->ws : NULL;
}
uv_loop_t *web__get_loop(const web *w) {
  return w->loop;
}
const char *web__get_ws_path(const web *w) {
  return w->ws_path;
}
bool web__is_closing(const web *w) {
  return !w || w->closing;
}

static char *web__strndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static char *web__strdup(const char *s) {
  return s ? web__strndup(s, strlen(s)) : NULL;
}

static void web__lower(char *s) {
  for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static const char *web__trim(const char *s, size_t *len) {
  size_t n = strlen(s);
  while (n && isspace((unsigned char)*s)) {
    s++;
    n--;
  }
  while (n && isspace((unsigned char)s[n - 1])) n--;
  *len = n;
  return s;
}

static bool web__token_eq(const char *s, const char *word) {
  size_t n;
  const char *t = web__trim(s, &n);
  return n == strlen(word) && !strncasecmp(t, word, n);
}

/* ---- key/value lists ---- */

static int web__kvs_add(web__kvs *k, const char *name, size_t nlen, const char *value, size_t vlen) {
  web__kv kv;
  if (k->n == k->cap) {
    size_t cap = k->cap ? k->cap * 2 : 8;
    web__kv *v = realloc(k->v, cap * sizeof *v);
    if (!v) return WEB_ENOMEM;
    k->v = v;
    k->cap = cap;
  }
  kv.name = web__strndup(name, nlen);
  kv.value = web__strndup(value, vlen);
  if (!kv.name || !kv.value) {
    free(kv.name);
    free(kv.value);
    return WEB_ENOMEM;
  }
  k->v[k->n++] = kv;
  return WEB_OK;
}

static const web__kv *web__kvs_find(const web__kvs *k, const char *name) {
  for (size_t i = 0; i < k->n; i++)
    if (!strcmp(k->v[i].name, name)) return &k->v[i];
  return NULL;
}

static void web__kvs_free(web__kvs *k) {
  for (size_t i = 0; i < k->n; i++) {
    free(k->v[i].name);
    free(k->v[i].value);
  }
  free(k->v);
  memset(k, 0, sizeof *k);
}

/* ------------------------------------------------------------------------------------------ */
/* request lifetime                                                                            */

static web_req *web__req_new(web *w, struct lws *wsi, struct web__pss *pss) {
  web_req *req = calloc(1, sizeof *req);
  if (!req) return NULL;
  req->w = w;
  req->wsi = wsi;
  req->pss = pss;
  req->next = w->reqs;
  if (w->reqs) w->reqs->prev = req;
  w->reqs = req;
  pss->req = req;
  return req;
}

static void web__req_unlink(web_req *req) {
  if (req->w) {
    if (req->prev)
      req->prev->next = req->next;
    else
      req->w->reqs = req->next;
    if (req->next) req->next->prev = req->prev;
  }
  req->prev = req->next = NULL;
  req->w = NULL;
}

static void web__req_free(web_req *req) {
  if (!req) return;
  web__req_unlink(req);
  if (req->pss && req->pss->req == req) req->pss->req = NULL;
  free(req->path);
  web__kvs_free(&req->query);
  web__kvs_free(&req->headers);
  web__kvs_free(&req->rheaders);
  free(req->body);
  free(req->ctype);
  if (!req->rbody_static) free(req->rbody);
  free(req->out);
  free(req);
}

/* ------------------------------------------------------------------------------------------ */
/* responses                                                                                   */

/*
 * Queues a response. Takes `body` (malloc'd, or a string literal when body_static).
 * Consumes req when the connection is gone.
 */
static int web__respond(web_req *req, int status, const char *ctype, char *body, size_t len, bool body_static) {
  if (!req) {
    if (!body_static) free(body);
    return WEB_EINVAL;
  }
  if (!req->wsi) {
    if (!body_static) free(body);
    web__req_free(req);
    return WEB_ENOTCONN;
  }
  if (req->state == WEB__RESPONDING || req->state == WEB__CLOSING) {
    /* answered twice: keep the first answer */
    if (!body_static) free(body);
    web__log(req->w, WEB_LOG_ERROR, "web: second response for %s ignored", req->path);
    return WEB_EINVAL;
  }
  free(req->ctype);
  req->ctype = NULL;
  if (ctype && !(req->ctype = web__strdup(ctype))) {
    if (!body_static) free(body);
    body = "{\"error\":\"out of memory\"}";
    len = strlen(body);
    body_static = true;
    status = 500;
    ctype = NULL;
  }
  req->status = status;
  req->rbody = body;
  req->rbody_len = len;
  req->rbody_static = body_static;
  req->state = WEB__RESPONDING;
  /* lws 4.1 services an h1 server connection's POLLOUT from its POLLIN handler, which
   * returns early while rx is flow-controlled: reading must be back on before writing */
  lws_rx_flow_control(req->wsi, 1);
  lws_callback_on_writable(req->wsi);
  return WEB_OK;
}

static int web__respond_oom(web_req *req) {
  int rc = web__respond(req, 500, WEB__JSON_TYPE, "{\"error\":\"out of memory\"}", 25, true);
  return rc == WEB_OK ? WEB_ENOMEM : rc;
}

int web_respond_raw(web_req *req, int http_status, const char *content_type, const void *body, size_t len) {
  char *copy;
  if (!req) return WEB_EINVAL;
  if (!req->wsi) return web__respond(req, http_status, NULL, NULL, 0, true);
  copy = malloc(len + 1);
  if (!copy) return web__respond_oom(req);
  if (len) memcpy(copy, body, len);
  copy[len] = '\0';
  return web__respond(req, http_status, content_type, copy, len, false);
}

int web_respond_json(web_req *req, int http_status, const char *json_text) {
  if (!json_text) json_text = "{}";
  return web_respond_raw(req, http_status, WEB__JSON_TYPE, json_text, strlen(json_text));
}

int web_respond(web_req *req, int http_status, json_t *body) {
  char *text;
  if (!req) {
    json_decref(body);
    return WEB_EINVAL;
  }
  if (!body) return web_respond_json(req, http_status, "{}");
  if (!req->wsi) {
    json_decref(body);
    return web__respond(req, http_status, NULL, NULL, 0, true);
  }
  text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(body);
  if (!text) return web__respond_oom(req);
  return web__respond(req, http_status, WEB__JSON_TYPE, text, strlen(text), false);
}

int web_respond_error(web_req *req, int http_status, const char *message) {
  json_t *o = json_object();
  if (!o || json_object_set_new(o, "error", json_string(message ? message : "error"))) {
    json_decref(o);
    return web__respond_oom(req);
  }
  return web_respond(req, http_status, o);
}

int web_req_set_header(web_req *req, const char *name, const char *value) {
  if (!req || !name || !*name || !value || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) return WEB_EINVAL;
  for (const char *p = name; *p; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 127) return WEB_EINVAL;
  return web__kvs_add(&req->rheaders, name, strlen(name), value, strlen(value));
}

/* Header block + body into one buffer, so small answers leave in one write. */
static int web__build_out(struct lws *wsi, web_req *req) {
  size_t cap = 1024 + (req->ctype ? strlen(req->ctype) : 0);
  unsigned char *start, *p, *end;
  size_t hlen, blen = req->head_only ? 0 : req->rbody_len;

  for (size_t i = 0; i < req->rheaders.n; i++)
    cap += strlen(req->rheaders.v[i].name) + strlen(req->rheaders.v[i].value) + 8;
  if (req->w && req->w->server_name) cap += strlen(req->w->server_name);
  req->out = malloc(LWS_PRE + cap + blen);
  if (!req->out) return -1;
  start = p = req->out + LWS_PRE;
  end = start + cap;

  if (lws_add_http_header_status(wsi, (unsigned)req->status, &p, end)) return -1;
  if (req->ctype && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (const unsigned char *)req->ctype,
                                                 (int)strlen(req->ctype), &p, end))
    return -1;
  if (req->status != 204 && req->status != 304 && req->status >= 200 &&
      lws_add_http_header_content_length(wsi, req->rbody_len, &p, end))
    return -1;
  for (size_t i = 0; i < req->rheaders.n; i++) {
    char name[256];
    const char *v = req->rheaders.v[i].value;
    int n = snprintf(name, sizeof name, "%s:", req->rheaders.v[i].name);
    if (n < 0 || (size_t)n >= sizeof name) continue;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v, (int)strlen(v), &p,
                                    end))
      return -1;
  }
  if (req->close_after &&
      lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end))
    return -1;
  if (lws_finalize_http_header(wsi, &p, end)) return -1;
  hlen = (size_t)(p - start);
  if (blen) memcpy(p, req->rbody, blen);
  req->out_len = hlen + blen;
  req->out_off = 0;
  if (!req->rbody_static) free(req->rbody);
  req->rbody = NULL;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* request accessors                                                                           */

const char *web_req_method(const web_req *req) {
  return req ? req->method : NULL;
}
const char *web_req_path(const web_req *req) {
  return req ? req->path : NULL;
}
const char *web_req_peer(const web_req *req) {
  return req ? req->peer : NULL;
}
bool web_req_is_connected(const web_req *req) {
  return req && req->wsi;
}

const char *web_req_query(const web_req *req, const char *name) {
  const web__kv *kv;
  if (!req || !name) return NULL;
  kv = web__kvs_find(&req->query, name);
  return kv ? kv->value : NULL;
}

const char *web_req_body(const web_req *req, size_t *len) {
  if (len) *len = req && req->body ? req->body_len : 0;
  return req && req->body ? req->body : "";
}

bool web_req_is_loopback(const web_req *req) {
  const char *p;
  if (!req) return false;
  p = req->peer;
  if (!strncasecmp(p, "::ffff:", 7)) p += 7;
  return !strncmp(p, "127.", 4) || !strcmp(p, "::1");
}

/* Is `lname` (lowercase, no colon) one of lws' own header tokens? Those are all captured. */
static bool web__is_lws_token(const char *lname) {
  size_t n = strlen(lname);
  for (int t = 0; t < (int)WSI_TOKEN_COUNT; t++) {
    const char *s = (const char *)lws_token_to_string((enum lws_token_indexes)t);
    if (s && strlen(s) == n + 1 && s[n] == ':' && !strncmp(s, lname, n)) return true;
  }
  return false;
}

const char *web_req_header(web_req *req, const char *name) {
  const web__kv *kv;
  char lname[128], cname[130];
  int len;
  size_t n;
  char *val;

  if (!req || !name || !*name || (n = strlen(name)) >= sizeof lname) return NULL;
  memcpy(lname, name, n + 1);
  web__lower(lname);
  kv = web__kvs_find(&req->headers, lname);
  if (kv) return kv->value;
  /* not captured: a live lookup is only possible while lws still holds the headers */
  if (!req->in_handler || !req->wsi || web__is_lws_token(lname)) return NULL;
  snprintf(cname, sizeof cname, "%s:", lname);
  len = lws_hdr_custom_length(req->wsi, cname, (int)(n + 1));
  if (len < 0 || !(val = malloc((size_t)len + 1))) return NULL;
  if (lws_hdr_custom_copy(req->wsi, val, len + 1, cname, (int)(n + 1)) < 0 ||
      web__kvs_add(&req->headers, lname, n, val, (size_t)len)) {
    free(val);
    return NULL;
  }
  free(val);
  return req->headers.v[req->headers.n - 1].value;
}

int web_req_basic_auth(const web_req *req, char *user, size_t user_size, char *pass, size_t pass_size) {
  const web__kv *kv;
  const char *s, *colon;
  char *dec;
  size_t n, ulen, plen;
  int dlen, rc = WEB_OK;

  if (!req || !user || !pass || !user_size || !pass_size) return WEB_EINVAL;
  kv = web__kvs_find(&req->headers, "authorization");
  if (!kv) return WEB_ENOENT;
  s = web__trim(kv->value, &n);
  if (n < 6 || strncasecmp(s, "basic", 5) || !isspace((unsigned char)s[5])) return WEB_ENOENT;
  s += 6;
  n -= 6;
  while (n && isspace((unsigned char)*s)) {
    s++;
    n--;
  }
  if (!n) return WEB_EINVAL;
  dec = malloc(n + 4);
  if (!dec) return WEB_ENOMEM;
  {
    char *in = web__strndup(s, n);
    if (!in) {
      free(dec);
      return WEB_ENOMEM;
    }
    dlen = lws_b64_decode_string(in, dec, (int)(n + 4));
    free(in);
  }
  if (dlen < 0 || memchr(dec, '\0', (size_t)dlen) || !(colon = memchr(dec, ':', (size_t)dlen))) {
    rc = WEB_EINVAL;
    goto out;
  }
  ulen = (size_t)(colon - dec);
  plen = (size_t)dlen - ulen - 1;
  if (ulen >= user_size || plen >= pass_size) {
    rc = WEB_ENOSPC;
    goto out;
  }
  memcpy(user, dec, ulen);
  user[ulen] = '\0';
  memcpy(pass, colon + 1, plen);
  pass[plen] = '\0';
out:
  free(dec);
  return rc;
}

int web_parse_json_body(web_req *req, json_t **out) {
  json_error_t err;
  json_t *v;
  size_t len;
  const char *body;
  char msg[400];

  if (!req || !out) return WEB_EINVAL;
  *out = NULL;
  body = web_req_body(req, &len);
  {
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i])) i++;
    if (i == len) {
      if (!(*out = json_object())) return web__respond_oom(req), WEB_ENOMEM;
      return WEB_OK;
    }
  }
  v = json_loadb(body, len, 0, &err);
  if (!v) {
    snprintf(msg, sizeof msg, "malformed JSON body: %s at line %d column %d", err.text, err.line, err.column);
    web_respond_error(req, 200, msg);
    return WEB_EBADMSG;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    web_respond_error(req, 200, "malformed JSON body: expected an object");
    return WEB_EBADMSG;
  }
  *out = v;
  return WEB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* routing                                                                                     */

int web_route(web *w, const char *method, const char *path, web_handler fn, void *ud) {
  web__route r = {0};
  if (!w || !path || path[0] != '/' || !fn || w->closing) return WEB_EINVAL;
  if (method && (!*method || strlen(method) >= 8)) return WEB_EINVAL;
  for (size_t i = 0; i < w->nroutes; i++) {
    const web__route *o = &w->routes[i];
    if (!strcmp(o->path, path) && ((!o->method && !method) || (o->method && method && !strcasecmp(o->method, method))))
      return WEB_EEXIST;
  }
  if (w->nroutes == w->cap_routes) {
    size_t cap = w->cap_routes ? w->cap_routes * 2 : 16;
    web__route *v = realloc(w->routes, cap * sizeof *v);
    if (!v) return WEB_ENOMEM;
    w->routes = v;
    w->cap_routes = cap;
  }
  r.path = web__strdup(path);
  r.method = method ? web__strdup(method) : NULL;
  if (!r.path || (method && !r.method)) {
    free(r.path);
    free(r.method);
    return WEB_ENOMEM;
  }
  for (char *p = r.method; p && *p; p++) *p = (char)toupper((unsigned char)*p);
  r.fn = fn;
  r.ud = ud;
  w->routes[w->nroutes++] = r;
  return WEB_OK;
}

int web_on_free(web *w, void (*fn)(void *ud), void *ud) {
  web__cleanup *c;
  if (!w || !fn || w->closing) return WEB_EINVAL;
  c = malloc(sizeof *c);
  if (!c) return WEB_ENOMEM;
  c->fn = fn;
  c->ud = ud;
  c->next = w->cleanups;
  w->cleanups = c;
  return WEB_OK;
}

/* Finds the route for method+path; *path_known tells whether any method is routed there. */
static const web__route *web__find_route(const web *w, const char *method, const char *path, bool *path_known) {
  const web__route *any = NULL;
  *path_known = false;
  for (size_t i = 0; i < w->nroutes; i++) {
    const web__route *r = &w->routes[i];
    if (strcmp(r->path, path)) continue;
    *path_known = true;
    if (!r->method) {
      any = r;
      continue;
    }
    if (!strcmp(r->method, method) || (!strcmp(method, "HEAD") && !strcmp(r->method, "GET"))) return r;
  }
  return any;
}

static void web__allow_list(const web *w, const char *path, char *buf, size_t size) {
  size_t used = 0;
  bool get = false, any = false;
  buf[0] = '\0';
  for (size_t i = 0; i < w->nroutes; i++) {
    const web__route *r = &w->routes[i];
    if (strcmp(r->path, path)) continue;
    if (!r->method)
      any = true;
    else {
      int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", r->method);
      if (n > 0 && (size_t)n < size - used) used += (size_t)n;
      if (!strcmp(r->method, "GET")) get = true;
    }
  }
  if (any)
    snprintf(buf, size, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
  else {
    int n = snprintf(buf + used, size - used, "%s%sOPTIONS", used ? ", " : "", get ? "HEAD, " : "");
    (void)n;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* static files                                                                                */

static const char *web__mime(const char *path) {
  static const struct {
    const char *ext, *type;
  } map[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"json", "application/json; charset=utf-8"},
      {"map", "application/json; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"ico", "image/x-icon"},
      {"wasm", "application/wasm"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
  };
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash)) return "application/octet-stream";
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcasecmp(dot + 1, map[i].ext)) return map[i].type;
  return "application/octet-stream";
}

static bool web__has_dotdot(const char *path) {
  for (const char *p = path; (p = strstr(p, "..")); p += 2) {
    bool start = p == path || p[-1] == '/';
    bool end = p[2] == '\0' || p[2] == '/';
    if (start && end) return true;
  }
  return strchr(path, '\\') != NULL;
}

static void web__serve_static(web *w, web_req *req) {
  char full[PATH_MAX], real[PATH_MAX];
  const char *path = req->path;
  size_t rootlen = strlen(w->static_root);
  struct stat st;
  char *data = NULL;
  int fd = -1, n;
  off_t got = 0;

  if (web__has_dotdot(path)) {
    web_respond_error(req, 403, "forbidden");
    return;
  }
  n = snprintf(full, sizeof full, "%s%s%s", w->static_root, path, path[strlen(path) - 1] == '/' ? "index.html" : "");
  if (n < 0 || (size_t)n >= sizeof full || !realpath(full, real) || strncmp(real, w->static_root, rootlen) ||
      real[rootlen] != '/' || stat(real, &st) || !S_ISREG(st.st_mode) || st.st_size > WEB__STATIC_MAX) {
    web_respond_error(req, 404, "not found");
    return;
  }
  fd = open(real, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) || !(data = malloc((size_t)st.st_size + 1))) goto fail;
  while (got < st.st_size) {
    ssize_t r = read(fd, data + got, (size_t)(st.st_size - got));
    if (r <= 0) goto fail;
    got += r;
  }
  close(fd);
  web_req_set_header(req, "Cache-Control", "no-cache");
  web__respond(req, 200, web__mime(real), data, (size_t)got, false);
  return;
fail:
  if (fd >= 0) close(fd);
  free(data);
  web_respond_error(req, 404, "not found");
}

/* ------------------------------------------------------------------------------------------ */
/* the HTTP protocol callback                                                                  */

static const struct {
  enum lws_token_indexes tok;
  const char *name;
} web__methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},   {WSI_TOKEN_POST_URI, "POST"},   {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {WSI_TOKEN_PUT_URI, "PUT"},   {WSI_TOKEN_PATCH_URI, "PATCH"}, {WSI_TOKEN_DELETE_URI, "DELETE"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
};

static const char *web__method_of(struct lws *wsi) {
  for (size_t i = 0; i < sizeof web__methods / sizeof web__methods[0]; i++)
    if (lws_hdr_total_length(wsi, web__methods[i].tok)) return web__methods[i].name;
  return NULL;
}

/* Copies everything we may need out of lws' header table, which lws recycles. */
static int web__capture(web *w, struct lws *wsi, web_req *req) {
  int total;
  for (int t = 0; t < (int)WSI_TOKEN_COUNT; t++) {
    const char *name = (const char *)lws_token_to_string((enum lws_token_indexes)t);
    size_t nl;
    int tl;
    char *val;
    if (!name || (nl = strlen(name)) < 2 || name[0] == ':' || name[nl - 1] != ':') continue;
    tl = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
    if (tl <= 0) continue;
    /* repeated headers are joined with ',', which lws does not count in tl */
    val = malloc((size_t)tl * 2 + 2);
    if (!val) return WEB_ENOMEM;
    if (lws_hdr_copy(wsi, val, tl * 2 + 2, (enum lws_token_indexes)t) < 0) {
      free(val);
      continue;
    }
    if (web__kvs_add(&req->headers, name, nl - 1, val, strlen(val))) {
      free(val);
      return WEB_ENOMEM;
    }
    free(val);
  }
  for (size_t i = 0; i < w->ncapture; i++) {
    const char *cn = w->capture[i];
    int cl = (int)strlen(cn), vl = lws_hdr_custom_length(wsi, cn, cl);
    char *val;
    if (vl < 0) continue;
    if (!(val = malloc((size_t)vl + 1))) return WEB_ENOMEM;
    if (lws_hdr_custom_copy(wsi, val, vl + 1, cn, cl) < 0) {
      free(val);
      continue;
    }
    if (web__kvs_add(&req->headers, cn, (size_t)cl - 1, val, (size_t)vl)) {
      free(val);
      return WEB_ENOMEM;
    }
    free(val);
  }
  total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
  if (total > 0) {
    char *frag = malloc((size_t)total + 1);
    if (!frag) return WEB_ENOMEM;
    for (int i = 0;; i++) {
      int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
      char *eq;
      if (n < 0) break;
      if (!n) continue;
      eq = strchr(frag, '=');
      if (web__kvs_add(&req->query, frag, eq ? (size_t)(eq - frag) : (size_t)n, eq ? eq + 1 : "",
                       eq ? strlen(eq + 1) : 0)) {
        free(frag);
        return WEB_ENOMEM;
      }
    }
    free(frag);
  }
  if (!lws_get_peer_simple(wsi, req->peer, sizeof req->peer)) req->peer[0] = '\0';
  return WEB_OK;
}

/* An answer made by web itself, before any handler saw the request. */
static void web__early(web_req *req, int status, const char *msg, bool close_after) {
  if (close_after) req->close_after = true;
  web_respond_error(req, status, msg);
}

/*
 * Every WEB__PROBE_MS, looks at the connections whose request a handler holds: web__dispatch
 * stops lws reading them, so a client that leaves would go unnoticed. A peek that reads EOF
 * (lws itself treats a half-close as a close) or an error closes the connection, which
 * marks the request gone.
 */
#define WEB__PROBE_MS 200

static void web__probe_cb(uv_timer_t *t) {
  web *w = t->data;
  web_req *req, *next;
  bool any = false;
  for (req = w->reqs; req; req = next) {
    char b;
    ssize_t n;
    int fd;
    next = req->next;
    if (req->state != WEB__HANDLING || !req->wsi || req->in_handler) continue;
    fd = lws_get_socket_fd(req->wsi);
    if (fd < 0) continue;
    n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      /* closes now; CLOSED_HTTP marks req gone (it stays in the list: no unlink) */
      lws_set_timeout(req->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
      continue;
    }
    any = true;
  }
  if (!any) uv_timer_stop(t);
}

static void web__dispatch(web_req *req) {
  web *w = req->w;
  req->state = WEB__HANDLING;
  if (req->wsi) {
    /*
     * lws does not read a connection while its transaction is open: a GET sits in
     * LRS_DOING_TRANSACTION, where POLLIN stays armed but is never serviced, and the
     * level-triggered poll then spins at 100% CPU once the client closes or sends more.
     * Stop reading until the answer is ready (web__respond turns reading back on, which
     * lws needs in order to write); web__probe_cb watches for hang-ups meanwhile.
     */
    lws_rx_flow_control(req->wsi, 0);
    lws_set_timeout(req->wsi, PENDING_TIMEOUT_USER_OK, (int)w->request_timeout_s);
  }
  req->in_handler = true;
  req->fn(req, req->ud);
  req->in_handler = false;
  if (!req->w) {
    /* web_free() from inside the handler orphaned the request: finish what it left */
    if (req->state == WEB__RESPONDING) web__req_free(req);
    return;
  }
  if (req->state == WEB__HANDLING && req->wsi && w->probe_inited && !uv_is_active((uv_handle_t *)&w->probe))
    uv_timer_start(&w->probe, web__probe_cb, WEB__PROBE_MS, WEB__PROBE_MS);
}

static void web__body_append(web_req *req, const unsigned char *in, size_t len) {
  web *w = req->w;
  if (req->body_len + len > w->max_body) {
    web__early(req, 413, "request body too large", true);
    return;
  }
  if (req->body_len + len + 1 > req->body_cap) {
    size_t cap = req->body_cap ? req->body_cap : 4096;
    char *b;
    while (cap < req->body_len + len + 1) cap *= 2;
    if (cap > w->max_body + 1) cap = w->max_body + 1;
    b = realloc(req->body, cap);
    if (!b) {
      req->close_after = true;
      web__respond_oom(req);
      return;
    }
    req->body = b;
    req->body_cap = cap;
  }
  memcpy(req->body + req->body_len, in, len);
  req->body_len += len;
  req->body[req->body_len] = '\0';
}

static int web__hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Decodes a chunked body as it arrives; dispatches on the final chunk. */
static void web__chunked_feed(web_req *req, const unsigned char *in, size_t len) {
  size_t i = 0;
  while (i < len && req->state == WEB__RECEIVING) {
    int c = in[i];
    switch (req->ch_state) {
      case WEB__CH_SIZE: {
        int h = web__hexval(c);
        if (h >= 0) {
          if (req->ch_digits++ >= 15) goto bad;
          req->ch_left = req->ch_left * 16 + (uint64_t)h;
        } else if (!req->ch_digits) {
          goto bad;
        } else if (c == '\r') {
          req->ch_state = WEB__CH_SIZE_LF;
        } else if (c == ';' || c == ' ' || c == '\t') {
          req->ch_state = WEB__CH_EXT;
        } else {
          goto bad;
        }
        i++;
        break;
      }
      case WEB__CH_EXT:
        if (c == '\r') req->ch_state = WEB__CH_SIZE_LF;
        i++;
        break;
      case WEB__CH_SIZE_LF:
        if (c != '\n') goto bad;
        i++;
        if (!req->ch_left) {
          req->ch_state = WEB__CH_TRAILER;
          break;
        }
        if (req->ch_left > req->w->max_body - req->body_len) {
          web__early(req, 413, "request body too large", true);
          return;
        }
        req->ch_state = WEB__CH_DATA;
        break;
      case WEB__CH_DATA: {
        size_t n = len - i;
        if (n > req->ch_left) n = (size_t)req->ch_left;
        web__body_append(req, in + i, n);
        i += n;
        req->ch_left -= n;
        if (!req->ch_left) req->ch_state = WEB__CH_DATA_CR;
        break;
      }
      case WEB__CH_DATA_CR:
        if (c != '\r') goto bad;
        req->ch_state = WEB__CH_DATA_LF;
        i++;
        break;
      case WEB__CH_DATA_LF:
        if (c != '\n') goto bad;
        req->ch_state = WEB__CH_SIZE;
        req->ch_digits = 0;
        req->ch_left = 0;
        i++;
        break;
      case WEB__CH_TRAILER:
        req->ch_state = c == '\r' ? WEB__CH_END_LF : WEB__CH_TRAILER_SKIP;
        i++;
        break;
      case WEB__CH_TRAILER_SKIP:
        if (c == '\n') req->ch_state = WEB__CH_TRAILER;
        i++;
        break;
      case WEB__CH_END_LF:
        if (c != '\n') goto bad;
        req->ch_state = WEB__CH_DONE;
        i++;
        if (!req->body && !(req->body = calloc(1, 1))) {
          web__respond_oom(req);
          return;
        }
        web__dispatch(req);
        return;
      case WEB__CH_DONE: return;
    }
  }
  return;
bad:
  web__early(req, 400, "malformed chunked body", true);
}

static bool web__method_has_body(const char *m) {
  return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

/*
 * lws 4.1.6 bug: when a request with a body is parsed out of lws' own read-ahead buffer
 * (it was pipelined behind another request in the same read), lws_http_action() feeds that
 * same buffer, which still starts with the request's own header bytes, to the body
 * callback, and then loops over it at 100% CPU. Recognise the request line coming back as
 * "body" on a reused connection and hang up instead; pipelining clients must retry
 * unanswered requests anyway. Sequential keep-alive is not affected.
 */
static bool web__is_own_headers(const web_req *req, const char *in, size_t len) {
  char line[16];
  size_t n = (size_t)snprintf(line, sizeof line, "%s ", req->method);
  if (len < n) n = len; /* lws cuts the "body" at Content-Length, which may be shorter */
  return req->seq > 0 && req->rx_bytes == 0 && n && !memcmp(in, line, n);
}

static int web__on_http(web *w, struct lws *wsi, struct web__pss *pss, const char *uri) {
  const char *method = web__method_of(wsi), *cl, *te, *expect;
  const web__route *route;
  bool expect_body = false, path_known;
  web_req *req;

  if (!method || !pss) return -1;
  if (pss->req) /* a request still pending on this connection (pipelining): refuse */
    return -1;
  req = web__req_new(w, wsi, pss);
  if (!req) return -1;
  /* the connection's transaction counter lives in the wsi, which outlives each pss */
  req->seq = (uintptr_t)lws_get_opaque_user_data(wsi);
  lws_set_opaque_user_data(wsi, (void *)(req->seq + 1));
  snprintf(req->method, sizeof req->method, "%s", method);
  req->head_only = !strcmp(method, "HEAD");
  req->path = web__strdup(uri ? uri : "/");
  if (!req->path || web__capture(w, wsi, req)) {
    web__req_free(req);
    return -1;
  }

  /* body framing (see the top of the file for why lws needs help here) */
  cl = web_req_header(req, "content-length");
  te = web_req_header(req, "transfer-encoding");
  if (te) {
    req->chunked = true;
    req->close_after = true;
    if (cl) {
      web__early(req, 400, "both Content-Length and Transfer-Encoding", true);
      return 0;
    }
    if (!web__token_eq(te, "chunked")) {
      web__early(req, 501, "unsupported Transfer-Encoding", true);
      return 0;
    }
    if (!web__method_has_body(method)) {
      web__early(req, 400, "chunked body not accepted for this method", true);
      return 0;
    }
    expect_body = true;
  } else if (cl) {
    size_t n;
    const char *s = web__trim(cl, &n);
    uint64_t v = 0;
    if (!n || n > 19) {
      web__early(req, 400, "bad Content-Length", true);
      return 0;
    }
    for (size_t i = 0; i < n; i++) {
      if (!isdigit((unsigned char)s[i])) {
        web__early(req, 400, "bad Content-Length", true);
        return 0;
      }
      v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > w->max_body) {
      web__early(req, 413, "request body too large", true);
      return 0;
    }
    /* lws delivers BODY callbacks for any length > 0, and for an explicit 0 on POST only */
    expect_body = v > 0 || !strcmp(method, "POST");
    if (v) {
      req->body = malloc((size_t)v + 1);
      if (!req->body) {
        req->close_after = true;
        web__respond_oom(req);
        return 0;
      }
      req->body_cap = (size_t)v + 1;
    }
  } else if (web__method_has_body(method)) {
    /* No length: HTTP/1.1 says no body, lws expects 100 MB. Take it as empty, and close
     * after answering so lws' "body" never swallows the next request. */
    req->close_after = true;
  }

  route = web__find_route(w, method, req->path, &path_known);
  if (!strcmp(method, "OPTIONS") && !route) {
    if (!path_known) {
      web__early(req, 404, "not found", false);
      return 0;
    }
    char allow[256];
    web__allow_list(w, req->path, allow, sizeof allow);
    web_req_set_header(req, "Access-Control-Allow-Methods", allow);
    web_req_set_header(req, "Access-Control-Allow-Headers", "X-Token, X-Username, Content-Type, Authorization");
    web_req_set_header(req, "Access-Control-Max-Age", "86400");
    web_req_set_header(req, "Allow", allow);
    web__respond(req, 204, NULL, NULL, 0, true);
    return 0;
  }
  if (!route) {
    if (path_known) {
      char allow[256];
      web__allow_list(w, req->path, allow, sizeof allow);
      web_req_set_header(req, "Allow", allow);
      web__early(req, 405, "method not allowed", false);
    } else if (w->static_root && (!strcmp(method, "GET") || req->head_only)) {
      web__serve_static(w, req);
    } else {
      web__early(req, 404, "not found", false);
    }
    return 0;
  }
  req->fn = route->fn;
  req->ud = route->ud;
  if (!expect_body) {
    web__dispatch(req);
    return 0;
  }
  req->state = WEB__RECEIVING;
  expect = web_req_header(req, "expect");
  if (expect && web__token_eq(expect, "100-continue")) {
    static const char c100[] = "HTTP/1.1 100 Continue\r\n\r\n";
    unsigned char buf[LWS_PRE + sizeof c100];
    memcpy(buf + LWS_PRE, c100, sizeof c100 - 1);
    if (lws_write(wsi, buf + LWS_PRE, sizeof c100 - 1, LWS_WRITE_HTTP) < 0) return -1;
  }
  return 0;
}

static int web__on_writeable(struct lws *wsi, struct web__pss *pss) {
  web_req *req = pss ? pss->req : NULL;
  size_t left, n;
  bool last;

  if (!req) return 0;
  if (req->state == WEB__CLOSING) return -1; /* everything written and flushed: hang up */
  if (req->state != WEB__RESPONDING) return 0;
  if (!req->out && web__build_out(wsi, req)) return -1;
  left = req->out_len - req->out_off;
  n = left > WEB__WRITE_CHUNK ? WEB__WRITE_CHUNK : left;
  last = n == left;
  if (lws_write(wsi, req->out + LWS_PRE + req->out_off, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
    return -1;
  req->out_off += n;
  if (!last) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  if (req->close_after) {
    /* lws may still hold unsent bytes; it calls us back only once they are out */
    req->state = WEB__CLOSING;
    lws_callback_on_writable(wsi);
    return 0;
  }
  web__req_free(req); /* clears pss->req */
  if (lws_http_transaction_completed(wsi)) return -1;
  return 0;
}

/* The connection (or this transaction's binding) is going away. */
static void web__detach(struct web__pss *pss) {
  web_req *req;
  if (!pss || !(req = pss->req)) return;
  pss->req = NULL;
  req->pss = NULL;
  req->wsi = NULL;
  if (req->state == WEB__HANDLING || req->in_handler) return; /* its holder answers later; web_respond* frees it */
  web__req_free(req);
}

/*
 * An Upgrade request. lws binds fresh connections to the vhost's default protocol (our
 * websocket one), so this arrives at whichever callback that is: both call here.
 */
int web__confirm_upgrade(web *w, struct lws *wsi, const char *what) {
  char uri[256];
  if (!what || strcasecmp(what, "websocket")) return -1; /* h2c and friends: not spoken here */
  if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || !web__ws_path_ok(w, uri)) {
    if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL)) return -1;
    return 1; /* answered; lws completes the transaction */
  }
  return 0;
}

static int web__http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  web *w = lws_context_user(lws_get_context(wsi));
  struct web__pss *pss = user;

  if (!w || w->closing) {
    /* web_free() already released every request; refuse anything new */
    switch (reason) {
      case LWS_CALLBACK_HTTP:
      case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      case LWS_CALLBACK_HTTP_BODY:
      case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      case LWS_CALLBACK_HTTP_WRITEABLE: return -1;
      default: return 0;
    }
  }
  switch (reason) {
    case LWS_CALLBACK_HTTP: return web__on_http(w, wsi, pss, in);
    case LWS_CALLBACK_HTTP_BODY:
      if (pss && pss->req && pss->req->state == WEB__RECEIVING && len) {
        if (web__is_own_headers(pss->req, in, len)) {
          web__log(w, WEB_LOG_WARN, "web: pipelined %s %s with a body refused (lws 4.1)", pss->req->method,
                   pss->req->path);
          return -1; /* close: the client retries the unanswered requests */
        }
        pss->req->rx_bytes += len;
        if (pss->req->chunked)
          web__chunked_feed(pss->req, in, len);
        else
          web__body_append(pss->req, in, len);
      }
      return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      if (pss && pss->req && pss->req->state == WEB__RECEIVING) {
        web_req *req = pss->req;
        if (req->chunked) {
          web__early(req, 400, "incomplete chunked body", true);
          return 0;
        }
        if (!req->body && !(req->body = calloc(1, 1))) {
          web__respond_oom(req);
          return 0;
        }
        web__dispatch(req);
      }
      return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: return web__on_writeable(wsi, pss);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: return web__confirm_upgrade(w, wsi, in);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP: web__detach(pss); return 0;
    default: return 0;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* lifecycle                                                                                   */

void web_options_init(web_options *opt) {
  if (!opt) return;
  memset(opt, 0, sizeof *opt);
  opt->bind_addr = "0.0.0.0";
  opt->port = WEB__DEFAULT_PORT;
  opt->max_body = WEB__DEFAULT_MAX_BODY;
}

int web_port(const web *w) {
  return w ? w->port : -1;
}

static void web__free_mem(web *w) {
  for (size_t i = 0; i < w->nroutes; i++) {
    free(w->routes[i].method);
    free(w->routes[i].path);
  }
  free(w->routes);
  for (size_t i = 0; i < w->ncapture; i++) free(w->capture[i]);
  free(w->capture);
  free(w->server_name);
  free(w->ws_path);
  free(w->static_root);
  web__ws_free(w->ws);
  free(w);
}

static void web__handle_closed(uv_handle_t *h) {
  web *w = h->data;
  if (--w->open_handles == 0) web__free_mem(w);
}

typedef struct web__walk {
  void *ctx;
  int n;
} web__walk;

static void web__walk_cb(uv_handle_t *h, void *arg) {
  web__walk *st = arg;
  if (h->data == st->ctx) st->n++;
}

/*
 * Runs on the loop after web_free(): first tick starts lws' teardown (outside any lws
 * callback, so lws never defers it), later ticks wait for lws' handles to close and then
 * let lws free the context.
 */
static void web__reap(uv_idle_t *h) {
  web *w = h->data;
  if (w->ctx && !w->destroy_started) {
    w->destroy_started = true;
    lws_context_destroy(w->ctx);
    return;
  }
  if (w->ctx) {
    web__walk st = {w->ctx, 0};
    uv_walk(h->loop, web__walk_cb, &st);
    if (st.n) {
      if (uv_now(h->loop) - w->reap_start > WEB__REAP_GIVE_UP_MS) {
        web__log(w, WEB_LOG_ERROR, "web: libwebsockets did not close; leaking it");
        uv_idle_stop(h);
      }
      return;
    }
    lws_context_destroy(w->ctx); /* finishes synchronously; lws sets w->ctx = NULL */
    if (w->ctx) return;
  }
  uv_idle_stop(h);
  uv_close((uv_handle_t *)h, web__handle_closed);
}

void web_free(web *w) {
  web_req *req;

  if (!w || w->closing) return;
  w->closing = true;

  while (w->cleanups) {
    web__cleanup *cl = w->cleanups;
    w->cleanups = cl->next;
    cl->fn(cl->ud);
    free(cl);
  }
  /* Requests: those a handler holds become orphans the holder still answers (and frees);
   * the rest go now. lws' session data may still point at them, but every lws callback
   * bails out on w->closing from here on. */
  while ((req = w->reqs)) {
    web__req_unlink(req);
    req->wsi = NULL;
    req->pss = NULL;
    if (req->state != WEB__HANDLING && !req->in_handler) web__req_free(req);
  }
  /* websocket connections: dropped here, without telling the backend (its owner may be
   * gone already: cleanups ran first); lws closes their sockets with the context */
  web__ws_free(w->ws);
  w->ws = NULL;
  if (w->probe_inited) {
    uv_timer_stop(&w->probe);
    w->open_handles++;
    uv_close((uv_handle_t *)&w->probe, web__handle_closed);
  }
  if (w->ctx) {
    uv_idle_init(w->loop, &w->reaper);
    w->reaper.data = w;
    w->reap_start = uv_now(w->loop);
    w->open_handles++;
    uv_idle_start(&w->reaper, web__reap);
  }
  if (!w->open_handles) web__free_mem(w);
}

static int web__add_capture(web *w, const char *name) {
  size_t n = strlen(name);
  char *s, **v;
  if (!n || n > 120 || strpbrk(name, ": \t\r\n")) return WEB_EINVAL;
  s = malloc(n + 2);
  if (!s) return WEB_ENOMEM;
  memcpy(s, name, n);
  s[n] = '\0';
  web__lower(s);
  for (size_t i = 0; i < w->ncapture; i++)
    if (!strncmp(w->capture[i], s, n) && w->capture[i][n] == ':') {
      free(s);
      return WEB_OK;
    }
  s[n] = ':';
  s[n + 1] = '\0';
  v = realloc(w->capture, (w->ncapture + 1) * sizeof *v);
  if (!v) {
    free(s);
    return WEB_ENOMEM;
  }
  w->capture = v;
  w->capture[w->ncapture++] = s;
  return WEB_OK;
}

/*
 * lws treats a bind address that is not (yet) on this host as "interface not up yet": it
 * creates the vhost without a listener and retries every 30 s, and reports success. Find
 * out first, with a throwaway socket bound to that address on an ephemeral port.
 */
static int web__check_addr(const char *bind_addr, bool v6) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd, rc = WEB_OK;

  memset(&ss, 0, sizeof ss);
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, bind_addr, &a->sin6_addr);
    len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, bind_addr, &a->sin_addr);
    len = sizeof *a;
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return WEB_OK; /* let lws report whatever this is */
  if (bind(fd, (struct sockaddr *)&ss, len) && errno == EADDRNOTAVAIL) rc = WEB_EADDRNOTAVAIL;
  close(fd);
  return rc;
}

int web_new(uv_loop_t *loop, const web_options *opt, web **out) {
  struct lws_context_creation_info info;
  web_options defaults;
  void *foreign_loops[1];
  const char *bind;
  unsigned char a6[16];
  bool v6 = false;
  web *w;
  int rc;

  if (!out) return WEB_EINVAL;
  *out = NULL;
  if (!loop) return WEB_EINVAL;
  if (!opt) {
    memset(&defaults, 0, sizeof defaults);
    opt = &defaults;
  }
  if (opt->port < 0 || opt->port > 65535) return WEB_EINVAL;
  bind = opt->bind_addr && *opt->bind_addr ? opt->bind_addr : "0.0.0.0";
  if (inet_pton(AF_INET6, bind, a6) == 1)
    v6 = true;
  else if (inet_pton(AF_INET, bind, a6) != 1)
    return WEB_EINVAL;
  if ((rc = web__check_addr(bind, v6))) return rc;

  w = calloc(1, sizeof *w);
  if (!w) return WEB_ENOMEM;
  w->loop = loop;
  w->max_body = opt->max_body ? opt->max_body : WEB__DEFAULT_MAX_BODY;
  w->request_timeout_s = opt->request_timeout_s ? opt->request_timeout_s : WEB__DEFAULT_REQUEST_TIMEOUT;
  w->log = opt->log;
  w->log_ud = opt->log_ud;
  w->server_name = web__strdup(opt->server_name ? opt->server_name : "isoworld");
  w->ws_path = web__strdup(opt->ws_path ? opt->ws_path : "/socket/websocket");
  rc = WEB_ENOMEM;
  if (!w->server_name || !w->ws_path) goto fail;
  if ((rc = web__ws_new(w, &w->ws))) goto fail;
  if (opt->static_dir) {
    char real[PATH_MAX];
    struct stat st;
    rc = WEB_EINVAL;
    if (!realpath(opt->static_dir, real) || stat(real, &st) || !S_ISDIR(st.st_mode)) goto fail;
    rc = WEB_ENOMEM;
    if (!(w->static_root = web__strdup(real))) goto fail;
  }
  for (size_t i = 0; web__default_capture[i]; i++)
    if ((rc = web__add_capture(w, web__default_capture[i]))) goto fail;
  for (size_t i = 0; opt->capture_headers && opt->capture_headers[i]; i++)
    if ((rc = web__add_capture(w, opt->capture_headers[i]))) goto fail;

  w->protocols[0].name = "http";
  w->protocols[0].callback = web__http_cb;
  w->protocols[0].per_session_data_size = sizeof(struct web__pss);
  w->protocols[1].name = WEB__WS_PROTOCOL;
  w->protocols[1].callback = web__ws_callback;
  w->protocols[1].per_session_data_size = web__ws_pss_size();
  w->protocols[1].rx_buffer_size = 4096;
  /* Screeps clients send no Sec-WebSocket-Protocol: make ours the vhost default */
  w->pvo_ws_default.name = "default";
  w->pvo_ws_default.value = "1";
  w->pvo_ws.name = WEB__WS_PROTOCOL;
  w->pvo_ws.value = "";
  w->pvo_ws.options = &w->pvo_ws_default;
  /* added by lws to every HTTP response it writes, its own error pages included */
  w->hdr_origin.name = "Access-Control-Allow-Origin:";
  w->hdr_origin.value = "*";
  w->hdr_origin.next = &w->hdr_expose;
  w->hdr_expose.name = "Access-Control-Expose-Headers:";
  w->hdr_expose.value = "X-Token";

  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

  memset(&info, 0, sizeof info);
  foreign_loops[0] = loop;
  /* (VALIDATE_UTF8 is read from the context, not the vhost) */
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_VALIDATE_UTF8;
  info.foreign_loops = foreign_loops;
  info.pcontext = &w->ctx;
  info.user = w;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.server_string = w->server_name;
  info.timeout_secs = 20;
  info.max_http_header_data = 8192;
  info.pt_serv_buf_size = 64 * 1024;
  info.count_threads = 1;
  info.gid = -1;
  info.uid = -1;
  uv_timer_init(loop, &w->probe);
  w->probe.data = w;
  w->probe_inited = true;
  w->ctx = lws_create_context(&info);
  if (!w->ctx) {
    web_free(w); /* the probe timer closes on the loop */
    return WEB_EIO;
  }

  info.options = LWS_SERVER_OPTION_LIBUV;
  if (!v6) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  info.port = opt->port;
  info.iface = (!strcmp(bind, "0.0.0.0") || !strcmp(bind, "::")) ? NULL : bind;
  info.protocols = w->protocols;
  info.pvo = &w->pvo_ws;
  info.headers = &w->hdr_origin;
  info.vhost_name = "isoworld";
  info.keepalive_timeout = 30;
  w->vh = lws_create_vhost(w->ctx, &info);
  if (!w->vh || (w->port = lws_get_vhost_listen_port(w->vh)) <= 0) {
    web__log(w, WEB_LOG_ERROR, "web: cannot listen on %s:%d", bind, opt->port);
    web_free(w); /* lws' handles close on the loop */
    return WEB_EADDRINUSE;
  }
  *out = w;
  return WEB_OK;

fail:
  web__free_mem(w);
  return rc;
}
