/*
 * web — the HTTP API (and the websocket endpoint) of isoworld.
 *
 * HTTP/1.1 on libwebsockets, running on the caller's own libuv loop: web never owns a loop
 * or a thread. Everything here is called on the loop thread, and every callback web makes
 * (route handlers, backend functions, log) runs on the loop thread. Work on other threads
 * hands its result back to the loop (uv_async_t) and only then calls web_respond*.
 *
 * The module knows nothing of the rest of the server: what it needs from the server comes
 * through handlers registered with web_route() and the web_backend table. libwebsockets is
 * an implementation detail: no lws type or header appears here.
 *
 * Conventions implemented once for every route (the Screeps private-server dialect, see
 * PROTOCOL.md "HTTP conventions"):
 *   - unknown path                     -> 404 {"error":"not found"}
 *   - known path, wrong method         -> 405 {"error":"method not allowed"} + Allow
 *   - body larger than max_body        -> 413 {"error":"request body too large"} (checked on
 *     Content-Length before the body is read, and counted as a chunked body arrives)
 *   - OPTIONS on a known path          -> 204 with permissive CORS preflight headers
 *   - every response                   -> Access-Control-Allow-Origin: *,
 *                                         Access-Control-Expose-Headers: X-Token
 *   - JSON responses                   -> Content-Type: application/json; charset=utf-8
 *   - keep-alive (HTTP/1.1), HEAD on GET routes, Expect: 100-continue.
 *   - chunked request bodies are decoded; the connection is closed after such a request.
 *     A request with a body pipelined behind another one in the same packet is refused by
 *     closing the connection (a libwebsockets 4.1 bug); sequential keep-alive is fine.
 *   - WebSocket upgrade at web_options.ws_path (no Sec-WebSocket-Protocol needed), and at
 *     SockJS session paths beside it: the Screeps websocket protocol (see "websockets" below).
 *   - HTTP/2 (h2c upgrade) is not spoken: such a connection is dropped.
 *   - query parameters such as `shard` that a route does not read are simply ignored.
 *
 * Errors are negative errno values (WEB_E* below); web_strerror() names them.
 */
#ifndef ISOWORLD_WEB_H
#define ISOWORLD_WEB_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct web web;
typedef struct web_req web_req;

/* Status codes: 0 is success, errors are negative errno values. */
#define WEB_OK 0
#define WEB_EINVAL (-EINVAL)               /* bad argument */
#define WEB_ENOMEM (-ENOMEM)               /* out of memory */
#define WEB_EEXIST (-EEXIST)               /* route already registered */
#define WEB_EADDRINUSE (-EADDRINUSE)       /* could not listen on bind_addr:port */
#define WEB_EADDRNOTAVAIL (-EADDRNOTAVAIL) /* bind_addr is not an address of this host */
#define WEB_EIO (-EIO)                     /* libwebsockets failed */
#define WEB_ENOTCONN (-ENOTCONN)           /* the client went away before the response */
#define WEB_EBADMSG (-EBADMSG)             /* malformed request body (already answered) */
#define WEB_ENOENT (-ENOENT)               /* no such header / credentials */
#define WEB_ENOSPC (-ENOSPC)               /* caller's buffer too small */

/* Human-readable text for a WEB_* status. Never NULL. */
const char *web_strerror(int status);

/* Log levels handed to web_options.log. */
enum { WEB_LOG_ERROR = 0, WEB_LOG_WARN = 1, WEB_LOG_INFO = 2 };
typedef void (*web_log_fn)(void *ud, int level, const char *message);

/*
 * Options. A zeroed struct is valid and means: all interfaces, ephemeral port, 8 MiB bodies,
 * no static files. web_options_init() fills the defaults a real server uses (port 21025).
 */
typedef struct web_options {
  /* IPv4 or IPv6 literal to listen on. NULL or "0.0.0.0": every IPv4 interface; "::": every
   * interface, IPv4 and IPv6 (peers then look like "::ffff:127.0.0.1"). */
  const char *bind_addr;
  /* TCP port; 0 picks an ephemeral one (see web_port()). */
  int port;
  /* Largest accepted request body in bytes; 0 means 8 MiB. */
  size_t max_body;
  /* Optional directory served at "/" for GET/HEAD when no route matches ("/" and
   * directories serve index.html). NULL: no static files. Must exist if set. */
  const char *static_dir;
  /* Server: header value. NULL: "isoworld". */
  const char *server_name;
  /* Path of the websocket endpoint. NULL: "/socket/websocket". */
  const char *ws_path;
  /* Seconds a handler may take to answer before the connection is dropped (the late
   * web_respond then just frees the request). 0: 120 s. */
  unsigned request_timeout_s;
  /* Header names (case-insensitive) kept for deferred handlers in addition to all the
   * standard headers and x-token, x-username, x-server-password. NULL-terminated; may be
   * NULL. Copied by web_new(). See web_req_header(). */
  const char *const *capture_headers;
  /* Log sink for web's own messages; NULL: quiet. libwebsockets' own log is set to errors
   * and warnings on stderr (that setting is process-wide). */
  web_log_fn log;
  void *log_ud;
} web_options;

/* Fills *opt with the defaults: bind "0.0.0.0", port 21025, max_body 8 MiB. */
void web_options_init(web_options *opt);

/*
 * Creates the server and starts listening on `loop` (borrowed; must outlive the web).
 * On success *out is the new web. On failure *out is NULL and the status says why:
 * WEB_EINVAL (bad option, e.g. bind_addr not an IP literal, static_dir not a directory),
 * WEB_EADDRNOTAVAIL (bind_addr is not local), WEB_EADDRINUSE (cannot listen on the port).
 * A failure after libwebsockets was started still needs the loop to run once more to
 * release lws' handles (as with uv_close); nothing else is left behind.
 */
int web_new(uv_loop_t *loop, const web_options *opt, web **out);

/*
 * Stops listening, drops every connection, and runs the web_on_free() callbacks. No handler
 * is called after this returns. Closing is asynchronous, as with uv_close: libwebsockets'
 * handles close on the following loop iterations and the memory is released then, so run
 * the loop (uv_run returns once everything is closed). Requests still held by deferred
 * handlers stay valid: answer them with web_respond* as usual (they are freed, nothing is
 * sent). web_free(NULL) is a no-op.
 */
void web_free(web *w);

/* The bound TCP port (the real one when opt->port was 0). */
int web_port(const web *w);

/* Calls fn(ud) from web_free() (most recent first): to release what handlers use. */
int web_on_free(web *w, void (*fn)(void *ud), void *ud);

/*
 * A route handler. It runs on the loop thread once the whole request (headers and body) has
 * arrived. It must eventually call exactly one web_respond* on `req`, either before it
 * returns or later from the loop thread (a deferred response). `req` stays valid until then.
 */
typedef void (*web_handler)(web_req *req, void *ud);

/*
 * Registers `fn` for `method` ("GET", "POST", ... case-insensitive; NULL for any method) on
 * the exact path `path` (no query string; e.g. "/api/game/time"). A GET route also answers
 * HEAD. Routes take precedence over static files. Strings are copied.
 * WEB_EEXIST if that method and path are already routed.
 */
int web_route(web *w, const char *method, const char *path, web_handler fn, void *ud);

/* ---- requests. Returned strings are owned by the request: valid until web_respond*. ---- */

/* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" or "OPTIONS". */
const char *web_req_method(const web_req *req);
/* The URL-decoded path, without the query string (libwebsockets also collapses "//", "/./"
 * and "/../"). */
const char *web_req_path(const web_req *req);
/*
 * The URL-decoded value of query parameter `name` (first occurrence), "" for "?name" or
 * "?name=", NULL if absent. "+" decodes to a space. Note: libwebsockets splits parameters at
 * '&' and also at ';'.
 */
const char *web_req_query(const web_req *req, const char *name);
/*
 * The value of request header `name` (case-insensitive, e.g. "X-Token", "authorization"),
 * or NULL. Repeated headers are joined with ','. All standard headers and the capture list
 * (web_options.capture_headers, plus x-token, x-username, x-server-password) are copied when
 * the request arrives and are available until web_respond*; any other header is looked up
 * in libwebsockets' header table and is only available while the handler is running
 * synchronously (NULL after it returned).
 */
const char *web_req_header(web_req *req, const char *name);
/* The whole request body (NUL-terminated for convenience; may contain NULs), *len its size.
 * Never NULL: "" with *len 0 when there is no body. `len` may be NULL. */
const char *web_req_body(const web_req *req, size_t *len);
/* Numeric address of the client, e.g. "127.0.0.1" or "::ffff:10.0.0.2". */
const char *web_req_peer(const web_req *req);
/* True if the client connects from a loopback address (127.0.0.0/8, ::1, ::ffff:127.x). */
bool web_req_is_loopback(const web_req *req);
/* False once the client has disconnected (a deferred handler may skip its work). */
bool web_req_is_connected(const web_req *req);

/*
 * HTTP Basic credentials from the Authorization header, NUL-terminated into the caller's
 * buffers. WEB_ENOENT if there is no Basic authorization, WEB_EINVAL if it is malformed,
 * WEB_ENOSPC if a buffer is too small.
 */
int web_req_basic_auth(const web_req *req, char *user, size_t user_size, char *pass, size_t pass_size);

/*
 * Parses the body as a JSON object into *out (a new reference; the caller decrefs).
 * An empty body is an empty object. If the body is not a JSON object, this answers the
 * request itself with HTTP 200 {"error":"malformed JSON body: <reason> at line L column C"}
 * and returns WEB_EBADMSG: `req` is then consumed and must not be touched again.
 * (HTTP 200, not 400: PROTOCOL.md makes logical failures 200 + {error}, and the screeps-api
 * client turns any non-2xx answer except 401 into an opaque "[object Object]" error.)
 */
int web_parse_json_body(web_req *req, json_t **out);

/* ---- responses ---- */

/* Adds a response header (e.g. "X-Token"). Call before web_respond*. Name and value are
 * copied; CR/LF or an empty name give WEB_EINVAL. */
int web_req_set_header(web_req *req, const char *name, const char *value);

/*
 * Each web_respond* consumes `req`, always (even on error): do not touch it afterwards.
 * Returns WEB_OK when the response is queued, WEB_ENOTCONN when the client had gone (nothing
 * is sent, the request is just freed), WEB_ENOMEM when the body could not be built (a plain
 * 500 is sent instead). Call them on the loop thread only.
 */
/* Sends `body` (reference stolen; NULL means {}) as JSON with the given HTTP status. */
int web_respond(web_req *req, int http_status, json_t *body);
/* Sends `json_text` (copied, not validated) as JSON. */
int web_respond_json(web_req *req, int http_status, const char *json_text);
/* Sends {"error": message}. */
int web_respond_error(web_req *req, int http_status, const char *message);
/* Sends any body (copied) with the given Content-Type (NULL: none). */
int web_respond_raw(web_req *req, int http_status, const char *content_type, const void *body, size_t len);

/* ---- built-in game routes (api.c) ---- */

/*
 * What the game routes need from the server. Every function runs on the loop thread inside a
 * request: it must be cheap and must not block (read an atomic or a snapshot). A NULL
 * function reads as 0.
 */
typedef struct web_backend {
  uint64_t (*game_time)(void *ud);       /* current tick number */
  size_t (*user_count)(void *ud);        /* registered players */
  int64_t (*tick_duration_ms)(void *ud); /* configured tick length in ms */
  const char *welcome_text;              /* serverData.welcomeText (copied; NULL: "") */
  const char *package_version;           /* packageVersion (copied; NULL: "") */
} web_backend;

/*
 * Registers GET /api/version, GET /api/game/time and GET /api/game/tick:
 *   /api/version   {"ok":1,"protocol":14,"useNativeAuth":false,"users":N,"serverData":{
 *                   "welcomeText":...,"historyChunkSize":20,"socketUpdateThrottle":200,
 *                   "customObjectTypes":{},"renderer":{"resources":{},"metadata":{}},
 *                   "features":[]},"packageVersion":...}
 *   /api/game/time {"ok":1,"time":N}
 *   /api/game/tick {"ok":1,"tick":<ms>}
 * `backend` is copied; `ud` is passed to its functions.
 */
int web_install_game_api(web *w, const web_backend *backend, void *ud);

/* ---- websockets (ws.c) ---- */

/*
 * The Screeps websocket protocol (PROTOCOL.md "Websocket"), raw at web_options.ws_path
 * (default /socket/websocket) and in SockJS framing at <prefix><server>/<session>/websocket
 * with GET <prefix>info, where <prefix> is ws_path without its final "websocket" (default
 * /socket/). On connect the server sends "time <epoch ms>" and "protocol 14". Client
 * commands:
 *   auth <token>          -> "auth ok <new token>" | "auth failed"   (web_ws_backend.auth)
 *   subscribe <channel>   -> nothing; frames of the channel follow, if may_subscribe agrees
 *   unsubscribe <channel>
 *   gzip on|off           -> frames longer than their compressed form are sent as
 *                            "gz:" + base64(zlib deflate(frame))
 * Unknown commands are ignored; websocket pings are answered. A channel is 1..512 bytes
 * without control characters, spaces, '"' or '\\'. Frames are whatever the server
 * publishes (by convention the JSON ["<channel>", <payload>]).
 *
 * Slow clients: each connection has a queue bounded by web_ws_options (messages, bytes,
 * plus a budget for all queues together). Past the bound its oldest frames are dropped and
 * the client receives the text "dropped <N>" before its next frame. A connection that has
 * written nothing for stall_close_ms while its frames were being dropped is closed.
 *
 * Everything runs on the loop thread; backend functions are called on it too.
 */
typedef struct web_ws web_ws; /* a websocket connection; borrowed, valid during a callback */

typedef struct web_ws_backend {
  /* "auth <token>": 0 and *user (non-zero) when the token is good, with the token to give
   * back in new_token (NUL-terminated; empty: echo the client's token); anything else
   * answers "auth failed". May be NULL: every auth fails. */
  int (*auth)(void *ud, const char *token, uint64_t *user, char *new_token, size_t new_token_size);
  /* May a connection of `user` (0: not authenticated) subscribe to `channel`? Asked on
   * subscribe, and again for every subscription when the connection's user changes.
   * NULL: every channel is allowed. */
  bool (*may_subscribe)(void *ud, uint64_t user, const char *channel);
  /* c just subscribed to channel (after may_subscribe agreed): e.g. send it a first frame
   * with web_ws_send(). May be NULL. */
  void (*subscribed)(void *ud, web_ws *c, uint64_t user, const char *channel);
  /* A channel got its first subscriber / lost its last one (unsubscribe, close). Not
   * called from web_free(). May be NULL. */
  void (*channel_open)(void *ud, const char *channel);
  void (*channel_close)(void *ud, const char *channel);
} web_ws_backend;

typedef struct web_ws_options {
  size_t queue_max_messages; /* frames queued per connection; 0: 1000 */
  size_t queue_max_bytes;    /* bytes queued per connection; 0: 1 MiB (a single larger frame
                                is still queued when the queue is empty) */
  size_t total_max_bytes;    /* bytes of all queued frames (shared frames counted once);
                                past it, connections with a backlog drop; 0: 256 MiB */
  unsigned stall_close_ms;   /* 0: 30000 */
  size_t max_subscriptions;  /* per connection; 0: 200 */
} web_ws_options;

/* Sets the backend (copied; ud passed to its functions) and options (NULL: defaults).
 * Call before clients connect. WEB_EINVAL after web_free(). */
int web_ws_setup(web *w, const web_ws_backend *backend, void *ud, const web_ws_options *opt);

/* Queues `frame` (len bytes, copied once whatever the number of subscribers) for every
 * subscriber of `channel`. Returns how many connections it was queued for, or WEB_EINVAL. */
int web_ws_publish(web *w, const char *channel, const char *frame, size_t len);
/* Queues `frame` for every open connection, subscribed or not. Returns the count. */
int web_ws_broadcast(web *w, const char *frame, size_t len);
/* Queues `frame` for one connection (inside a backend callback). WEB_OK, WEB_ENOTCONN
 * (the connection is being closed), WEB_ENOMEM. */
int web_ws_send(web_ws *c, const char *frame, size_t len);
/* The connection's user (0: not authenticated) and numeric peer address. */
uint64_t web_ws_user(const web_ws *c);
const char *web_ws_peer(const web_ws *c);
/* Subscribers of a channel now. */
size_t web_ws_subscribers(const web *w, const char *channel);

typedef struct web_ws_stats {
  size_t connections;         /* open now */
  size_t channels;            /* with at least one subscriber */
  size_t subscriptions;       /* over all connections */
  size_t queued_bytes;        /* bytes of frames alive in queues (shared ones once) */
  uint64_t connections_total; /* since start */
  uint64_t frames_published;  /* web_ws_publish calls */
  uint64_t frames_sent;       /* frames written to connections */
  uint64_t bytes_sent;
  uint64_t frames_dropped; /* dropped from full queues */
  uint64_t closed_slow;    /* connections closed for not reading */
} web_ws_stats;
void web_ws_get_stats(const web *w, web_ws_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* ISOWORLD_WEB_H */
