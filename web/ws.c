/*
 * ws.c — the websocket protocol of the Screeps private server, on libwebsockets.
 *
 * What a client sees (PROTOCOL.md "Websocket"): on connect "time <epoch ms>" and
 * "protocol 14"; then text commands — "auth <token>" (answered "auth ok <new token>" or
 * "auth failed"), "subscribe <channel>", "unsubscribe <channel>", "gzip on|off" — and
 * event frames ["<channel>", <payload>] for the channels it subscribed to. With gzip on,
 * a frame may be "gz:" + base64 of its zlib (RFC 1950) deflate, when that is shorter.
 * The same protocol is spoken inside SockJS framing at /socket/<server>/<session>/websocket
 * (the Screeps game client's transport): "o" on open, every message as a["..."], "h"
 * every 25 s, and client messages as JSON arrays of strings.
 *
 * What the module decides itself: framing, the per-connection queues, subscriptions and
 * the channel index, gzip, SockJS. What it asks the server (web_ws_backend): who a token
 * belongs to, whether a connection may subscribe to a channel, what to send right after a
 * subscription, and when a channel gains its first or loses its last subscriber.
 *
 * Why frames are shared: a published frame goes to many connections. It is copied once
 * into a reference-counted buffer with LWS_PRE headroom; every queue holding it holds a
 * reference. The gzip and SockJS forms are made lazily, once per publish, for the first
 * connection that needs them. lws_write writes the websocket header into the headroom of
 * the shared buffer, which is harmless: the header is the same for every connection (server
 * frames are not masked), and lws copies whatever the socket did not take.
 *
 * Why queues are bounded: the loop must never wait for a client, and a client that stops
 * reading must not make the server hold frames without end. Each connection's queue is
 * bounded by count and bytes (and all queues together by a global byte budget); past the
 * bound the oldest frames are dropped and the client gets "dropped <N>" before the next
 * frame it receives. A connection that has made no progress for stall_close_ms while frames
 * are being dropped is closed. lws itself holds at most the unsent rest of one frame per
 * connection: we write only when lws says the connection is writable.
 *
 * Everything here runs on the loop thread.
 */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zlib.h>

#define WS__DEFAULT_QUEUE_MESSAGES 1000
#define WS__DEFAULT_QUEUE_BYTES ((size_t)1 << 20)
#define WS__DEFAULT_TOTAL_BYTES ((size_t)256 << 20)
#define WS__DEFAULT_STALL_MS 30000
#define WS__DEFAULT_MAX_SUBS 200
#define WS__RX_MAX ((size_t)16 * 1024) /* longest client message */
#define WS__CHANNEL_MAX 512
#define WS__WRITES_PER_CALLBACK 16
#define WS__SOCKJS_HEARTBEAT_US ((lws_usec_t)25 * 1000 * 1000)
#define WS__TOKEN_MAX 256

/* ------------------------------------------------------------------------------------------ */
/* types                                                                                       */

/* An outgoing frame's bytes, shared by every queue that holds it. */
typedef struct ws__msg {
  uint32_t refs;
  size_t len;
  unsigned char buf[]; /* LWS_PRE + len + 1 */
} ws__msg;

typedef struct ws__sub ws__sub;

typedef struct ws__chan {
  struct ws__chan *hnext;
  uint32_t hash;
  ws__sub *subs; /* doubly linked through cprev/cnext */
  size_t n;
  char name[]; /* NUL-terminated */
} ws__chan;

struct ws__sub {
  ws__chan *ch;
  web_ws *c;
  ws__sub *cprev, *cnext; /* in the channel */
  ws__sub *next;          /* in the connection */
};

struct web_ws {
  web__ws *ws;
  struct lws *wsi;
  web_ws *prev, *next; /* ws->conns */
  uint64_t user;       /* 0: not authenticated */
  bool sockjs, gzip, closing;
  ws__sub *subs;
  size_t n_subs;
  /* queue: a ring of frames, oldest at q_head */
  ws__msg **q;
  size_t q_cap, q_head, q_n, q_bytes;
  uint64_t waiting_since_ms; /* frames pending and no write since then; 0 when idle */
  uint64_t dropped_pending;  /* frames dropped since the last "dropped" notice */
  /* the message being received */
  char *rx;
  size_t rx_len, rx_cap;
  bool rx_overflow, rx_binary;
  char peer[64];
};

struct ws__pss {
  web_ws *c;
};

struct web__ws {
  web *w;
  web_ws_backend b;
  void *ud;
  bool has_backend;
  web_ws_options opt;
  web_ws *conns;
  size_t n_conns;
  ws__chan **tab;
  size_t tab_cap, n_chans, n_subs;
  size_t live_bytes;   /* bytes of every frame alive (each counted once) */
  char *sockjs_prefix; /* "/socket/" when ws_path ends in "/websocket", else NULL */
  web_ws_stats st;
};

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */

static uint64_t ws__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t ws__hash(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

static ws__msg *ws__msg_new(web__ws *ws, size_t len) {
  ws__msg *m = malloc(sizeof *m + LWS_PRE + len + 1);
  if (!m) return NULL;
  m->refs = 1;
  m->len = len;
  m->buf[LWS_PRE + len] = '\0';
  ws->live_bytes += len;
  return m;
}

static ws__msg *ws__msg_copy(web__ws *ws, const char *text, size_t len) {
  ws__msg *m = ws__msg_new(ws, len);
  if (m && len) memcpy(m->buf + LWS_PRE, text, len);
  return m;
}

static void ws__msg_unref(web__ws *ws, ws__msg *m) {
  if (!m || --m->refs) return;
  ws->live_bytes -= m->len;
  free(m);
}

static char *ws__msg_text(ws__msg *m) {
  return (char *)m->buf + LWS_PRE;
}

/* "gz:" + base64 of the zlib deflate of text, or NULL when that is not shorter (or no
 * memory). */
static ws__msg *ws__gz(web__ws *ws, const char *text, size_t len) {
  uLongf clen = compressBound((uLong)len);
  unsigned char *z;
  ws__msg *m = NULL;
  size_t b64;
  if (len < 32) return NULL; /* never shorter */
  z = malloc(clen);
  if (!z) return NULL;
  if (compress2(z, &clen, (const Bytef *)text, (uLong)len, Z_DEFAULT_COMPRESSION) != Z_OK) goto out;
  b64 = sodium_base64_ENCODED_LEN(clen, sodium_base64_VARIANT_ORIGINAL) - 1; /* without the NUL */
  if (3 + b64 >= len) goto out;
  if (!(m = ws__msg_new(ws, 3 + b64))) goto out;
  memcpy(ws__msg_text(m), "gz:", 3);
  sodium_bin2base64(ws__msg_text(m) + 3, b64 + 1, z, clen, sodium_base64_VARIANT_ORIGINAL);
out:
  free(z);
  return m;
}

/* SockJS: a["<text as a JSON string>"]. */
static ws__msg *ws__sockjs_wrap(web__ws *ws, const char *text, size_t len) {
  size_t n = 5; /* a [ " " ] */
  ws__msg *m;
  char *p;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)text[i];
    n += ch == '"' || ch == '\\' ? 2 : ch < 0x20 ? 6 : 1;
  }
  if (!(m = ws__msg_new(ws, n))) return NULL;
  p = ws__msg_text(m);
  *p++ = 'a';
  *p++ = '[';
  *p++ = '"';
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == '"' || ch == '\\') {
      *p++ = '\\';
      *p++ = (char)ch;
    } else if (ch < 0x20) {
      static const char hex[] = "0123456789abcdef";
      memcpy(p, "\\u00", 4);
      p[4] = hex[ch >> 4];
      p[5] = hex[ch & 15];
      p += 6;
    } else {
      *p++ = (char)ch;
    }
  }
  *p++ = '"';
  *p++ = ']';
  return m;
}

/*
 * The forms of one frame, made on demand: [0] plain, [1] gzip (or plain when gzip is not
 * shorter), [2] SockJS, [3] SockJS of the gzip form. v[] holds references.
 */
typedef struct ws__forms {
  const char *text;
  size_t len;
  ws__msg *v[4];
} ws__forms;

static ws__msg *ws__form(web__ws *ws, ws__forms *f, int k) {
  if (f->v[k]) return f->v[k];
  switch (k) {
    case 0: f->v[0] = ws__msg_copy(ws, f->text, f->len); break;
    case 1:
      f->v[1] = ws__gz(ws, f->text, f->len);
      if (!f->v[1] && ws__form(ws, f, 0)) (f->v[1] = f->v[0])->refs++;
      break;
    case 2: f->v[2] = ws__sockjs_wrap(ws, f->text, f->len); break;
    case 3: {
      ws__msg *g = ws__form(ws, f, 1);
      if (!g) break;
      if (g == f->v[0]) {
        if (ws__form(ws, f, 2)) (f->v[3] = f->v[2])->refs++;
      } else {
        f->v[3] = ws__sockjs_wrap(ws, ws__msg_text(g), g->len);
      }
      break;
    }
    default: break;
  }
  return f->v[k];
}

static void ws__forms_release(web__ws *ws, ws__forms *f) {
  for (int k = 0; k < 4; k++) ws__msg_unref(ws, f->v[k]);
}

static int ws__form_of(const web_ws *c) {
  return (c->gzip ? 1 : 0) | (c->sockjs ? 2 : 0);
}

/* ------------------------------------------------------------------------------------------ */
/* queues                                                                                      */

static void ws__queue_clear(web_ws *c) {
  while (c->q_n) {
    ws__msg *m = c->q[c->q_head];
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_n--;
    ws__msg_unref(c->ws, m);
  }
  c->q_bytes = 0;
  c->q_head = 0;
  c->waiting_since_ms = 0;
}

/* Closes a connection that cannot keep up; it stays listed until lws reports it closed. */
static void ws__kill(web_ws *c, const char *why) {
  web__ws *ws = c->ws;
  if (c->closing) return;
  c->closing = true;
  ws__queue_clear(c);
  ws->st.closed_slow++;
  web__logf(ws->w, WEB_LOG_WARN, "websocket from %s closed: %s", c->peer[0] ? c->peer : "?", why);
  lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static bool ws__over(const web_ws *c, size_t add) {
  const web__ws *ws = c->ws;
  return c->q_n >= ws->opt.queue_max_messages || c->q_bytes + add > ws->opt.queue_max_bytes ||
         ws->live_bytes > ws->opt.total_max_bytes;
}

/* Queues m (a reference is taken) on c, dropping the oldest frames past the bounds. */
static int ws__enqueue(web_ws *c, ws__msg *m) {
  web__ws *ws = c->ws;
  uint64_t now;
  bool dropped = false;
  if (!m) return WEB_ENOMEM;
  if (c->closing) return WEB_ENOTCONN;
  while (c->q_n && ws__over(c, m->len)) {
    ws__msg *old = c->q[c->q_head];
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_n--;
    c->q_bytes -= old->len;
    ws__msg_unref(ws, old);
    c->dropped_pending++;
    ws->st.frames_dropped++;
    dropped = true;
  }
  now = ws__now_ms();
  if (dropped && c->waiting_since_ms && now - c->waiting_since_ms >= ws->opt.stall_close_ms) {
    ws__kill(c, "it stopped reading (its queue overflowed and nothing could be written)");
    return WEB_ENOTCONN;
  }
  if (c->q_n == c->q_cap) {
    size_t cap = c->q_cap ? c->q_cap * 2 : 8;
    ws__msg **q;
    if (cap > ws->opt.queue_max_messages) cap = ws->opt.queue_max_messages;
    if (cap < c->q_n + 1) cap = c->q_n + 1;
    q = malloc(cap * sizeof *q);
    if (!q) return WEB_ENOMEM;
    for (size_t i = 0; i < c->q_n; i++) q[i] = c->q[(c->q_head + i) % c->q_cap];
    free(c->q);
    c->q = q;
    c->q_cap = cap;
    c->q_head = 0;
  }
  c->q[(c->q_head + c->q_n) % c->q_cap] = m;
  m->refs++;
  c->q_n++;
  c->q_bytes += m->len;
  if (!c->waiting_since_ms) c->waiting_since_ms = now;
  lws_callback_on_writable(c->wsi);
  return WEB_OK;
}

/* Queues a connection-specific text (greeting, answers): in SockJS framing if needed. */
static int ws__send_text(web_ws *c, const char *text, size_t len) {
  web__ws *ws = c->ws;
  ws__msg *m = c->sockjs ? ws__sockjs_wrap(ws, text, len) : ws__msg_copy(ws, text, len);
  int rc = ws__enqueue(c, m);
  ws__msg_unref(ws, m);
  return rc;
}

/* Writes what lws lets us write now. Returns -1 to close the connection. */
static int ws__write(web_ws *c) {
  web__ws *ws = c->ws;
  int budget = WS__WRITES_PER_CALLBACK;
  if (c->closing) return -1;
  while (budget-- > 0) {
    if (c->dropped_pending) {
      /* the notice goes before the frames that were kept (they are newer) */
      unsigned char buf[LWS_PRE + 64];
      char *p = (char *)buf + LWS_PRE;
      int n = c->sockjs ? snprintf(p, 64, "a[\"dropped %llu\"]", (unsigned long long)c->dropped_pending)
                        : snprintf(p, 64, "dropped %llu", (unsigned long long)c->dropped_pending);
      c->dropped_pending = 0;
      if (lws_write(c->wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_TEXT) < n) return -1;
    } else if (c->q_n) {
      ws__msg *m = c->q[c->q_head];
      int rc;
      c->q_head = (c->q_head + 1) % c->q_cap;
      c->q_n--;
      c->q_bytes -= m->len;
      rc = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
      ws->st.frames_sent++;
      ws->st.bytes_sent += m->len;
      if (rc < (int)m->len) {
        ws__msg_unref(ws, m);
        return -1;
      }
      ws__msg_unref(ws, m);
    } else {
      break;
    }
    if (lws_send_pipe_choked(c->wsi)) break;
  }
  if (c->q_n || c->dropped_pending) {
    c->waiting_since_ms = ws__now_ms();
    lws_callback_on_writable(c->wsi);
  } else {
    c->waiting_since_ms = 0;
    if (c->q_cap > 64) { /* a burst is over: give its queue back */
      free(c->q);
      c->q = NULL;
      c->q_cap = c->q_head = 0;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* channels and subscriptions                                                                  */

static ws__chan *ws__chan_find(const web__ws *ws, const char *name, uint32_t h) {
  if (!ws->tab_cap) return NULL;
  for (ws__chan *ch = ws->tab[h & (ws->tab_cap - 1)]; ch; ch = ch->hnext)
    if (ch->hash == h && !strcmp(ch->name, name)) return ch;
  return NULL;
}

static int ws__tab_grow(web__ws *ws) {
  size_t cap = ws->tab_cap ? ws->tab_cap * 2 : 64;
  ws__chan **tab = calloc(cap, sizeof *tab);
  if (!tab) return WEB_ENOMEM;
  for (size_t i = 0; i < ws->tab_cap; i++) {
    ws__chan *ch = ws->tab[i];
    while (ch) {
      ws__chan *next = ch->hnext;
      ch->hnext = tab[ch->hash & (cap - 1)];
      tab[ch->hash & (cap - 1)] = ch;
      ch = next;
    }
  }
  free(ws->tab);
  ws->tab = tab;
  ws->tab_cap = cap;
  return WEB_OK;
}

static void ws__chan_remove(web__ws *ws, ws__chan *ch) {
  ws__chan **pp = &ws->tab[ch->hash & (ws->tab_cap - 1)];
  while (*pp != ch) pp = &(*pp)->hnext;
  *pp = ch->hnext;
  ws->n_chans--;
}

/* A channel name: 1..512 bytes, no control character, space, '"' or '\\' (so a frame can
 * name it without escaping). UTF-8 beyond ASCII is allowed (Memory paths). */
static bool ws__channel_ok(const char *s, size_t n) {
  if (!n || n > WS__CHANNEL_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= ' ' || ch == 0x7f || ch == '"' || ch == '\\') return false;
  }
  return true;
}

static ws__sub *ws__find_sub(const web_ws *c, const char *name) {
  for (ws__sub *s = c->subs; s; s = s->next)
    if (!strcmp(s->ch->name, name)) return s;
  return NULL;
}

/* Unlinks sub s from its channel and frees it (the caller unlinks it from the connection).
 * tell: call channel_close when the channel empties. */
static void ws__sub_drop(web__ws *ws, ws__sub *s, bool tell) {
  ws__chan *ch = s->ch;
  if (s->cprev)
    s->cprev->cnext = s->cnext;
  else
    ch->subs = s->cnext;
  if (s->cnext) s->cnext->cprev = s->cprev;
  ch->n--;
  ws->n_subs--;
  free(s);
  if (!ch->n) {
    ws__chan_remove(ws, ch);
    if (tell && ws->has_backend && ws->b.channel_close) ws->b.channel_close(ws->ud, ch->name);
    free(ch);
  }
}

static void ws__subscribe(web_ws *c, const char *name, size_t n) {
  web__ws *ws = c->ws;
  ws__chan *ch;
  ws__sub *s;
  uint32_t h;
  bool fresh = false;
  if (!ws__channel_ok(name, n) || ws__find_sub(c, name)) return;
  if (c->n_subs >= ws->opt.max_subscriptions) {
    web__logf(ws->w, WEB_LOG_WARN, "websocket from %s: subscription to %s refused: %zu subscriptions already", c->peer,
              name, c->n_subs);
    return;
  }
  if (ws->has_backend && ws->b.may_subscribe && !ws->b.may_subscribe(ws->ud, c->user, name)) return;
  h = ws__hash(name, n);
  ch = ws__chan_find(ws, name, h);
  if (!ch) {
    if (ws->n_chans >= ws->tab_cap && ws__tab_grow(ws)) return;
    if (!(ch = calloc(1, sizeof *ch + n + 1))) return;
    memcpy(ch->name, name, n + 1);
    ch->hash = h;
    ch->hnext = ws->tab[h & (ws->tab_cap - 1)];
    ws->tab[h & (ws->tab_cap - 1)] = ch;
    ws->n_chans++;
    fresh = true;
  }
  if (!(s = calloc(1, sizeof *s))) {
    if (fresh) {
      ws__chan_remove(ws, ch);
      free(ch);
    }
    return;
  }
  s->ch = ch;
  s->c = c;
  s->cnext = ch->subs;
  if (ch->subs) ch->subs->cprev = s;
  ch->subs = s;
  ch->n++;
  s->next = c->subs;
  c->subs = s;
  c->n_subs++;
  ws->n_subs++;
  if (fresh && ws->has_backend && ws->b.channel_open) ws->b.channel_open(ws->ud, ch->name);
  if (ws->has_backend && ws->b.subscribed) ws->b.subscribed(ws->ud, c, c->user, ch->name);
}

static void ws__unsubscribe(web_ws *c, const char *name) {
  for (ws__sub **pp = &c->subs; *pp; pp = &(*pp)->next) {
    ws__sub *s = *pp;
    if (strcmp(s->ch->name, name)) continue;
    *pp = s->next;
    c->n_subs--;
    ws__sub_drop(c->ws, s, true);
    return;
  }
}

/* After a change of user: drop the subscriptions the connection may no longer have. */
static void ws__recheck(web_ws *c) {
  web__ws *ws = c->ws;
  ws__sub **pp = &c->subs;
  if (!ws->has_backend || !ws->b.may_subscribe) return;
  while (*pp) {
    ws__sub *s = *pp;
    if (ws->b.may_subscribe(ws->ud, c->user, s->ch->name)) {
      pp = &s->next;
      continue;
    }
    *pp = s->next;
    c->n_subs--;
    ws__sub_drop(ws, s, true);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* commands                                                                                    */

static void ws__auth(web_ws *c, const char *token) {
  web__ws *ws = c->ws;
  char fresh[WS__TOKEN_MAX], answer[WS__TOKEN_MAX + 16];
  uint64_t user = 0;
  int n;
  fresh[0] = '\0';
  if (!ws->has_backend || !ws->b.auth || !*token || strlen(token) >= WS__TOKEN_MAX ||
      ws->b.auth(ws->ud, token, &user, fresh, sizeof fresh) != 0 || !user) {
    ws__send_text(c, "auth failed", 11);
    return;
  }
  if (c->user && c->user != user) {
    c->user = user;
    ws__recheck(c);
  }
  c->user = user;
  fresh[sizeof fresh - 1] = '\0';
  n = snprintf(answer, sizeof answer, "auth ok %s", fresh[0] ? fresh : token);
  ws__send_text(c, answer, (size_t)n);
}

static void ws__command(web_ws *c, char *cmd, size_t len) {
  char *arg, *end;
  size_t vlen;
  while (len && isspace((unsigned char)*cmd)) cmd++, len--;
  end = cmd + len;
  while (end > cmd && isspace((unsigned char)end[-1])) end--;
  *end = '\0';
  for (arg = cmd; *arg && *arg != ' '; arg++) {
  }
  vlen = (size_t)(arg - cmd);
  while (*arg == ' ') arg++;
  if (vlen == 4 && !memcmp(cmd, "auth", 4)) {
    ws__auth(c, arg);
  } else if (vlen == 9 && !memcmp(cmd, "subscribe", 9)) {
    ws__subscribe(c, arg, strlen(arg));
  } else if (vlen == 11 && !memcmp(cmd, "unsubscribe", 11)) {
    ws__unsubscribe(c, arg);
  } else if (vlen == 4 && !memcmp(cmd, "gzip", 4)) {
    if (!strcmp(arg, "on"))
      c->gzip = true;
    else if (!strcmp(arg, "off"))
      c->gzip = false;
  }
  /* anything else is ignored, as by the vanilla server */
}

/* One whole client message: a command, or (SockJS) a JSON array of commands. */
static void ws__message(web_ws *c, char *text, size_t len) {
  json_t *v, *e;
  size_t i;
  if (!c->sockjs) {
    ws__command(c, text, len);
    return;
  }
  v = json_loadb(text, len, JSON_DECODE_ANY, NULL);
  if (json_is_string(v)) {
    char *s = strndup(json_string_value(v), json_string_length(v));
    if (s) ws__command(c, s, strlen(s));
    free(s);
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, e) {
      char *s;
      if (!json_is_string(e) || c->closing) continue;
      if (!(s = strndup(json_string_value(e), json_string_length(e)))) break;
      ws__command(c, s, strlen(s));
      free(s);
    }
  }
  json_decref(v);
}

static void ws__receive(web_ws *c, struct lws *wsi, const char *in, size_t len) {
  bool first = lws_is_first_fragment(wsi) && c->rx_len == 0 && !c->rx_overflow;
  if (first) c->rx_binary = lws_frame_is_binary(wsi);
  if (!c->rx_overflow) {
    if (c->rx_len + len > WS__RX_MAX) {
      c->rx_overflow = true;
    } else {
      if (c->rx_len + len + 1 > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 256;
        char *b;
        while (cap < c->rx_len + len + 1) cap *= 2;
        if (!(b = realloc(c->rx, cap))) {
          c->rx_overflow = true;
          return;
        }
        c->rx = b;
        c->rx_cap = cap;
      }
      memcpy(c->rx + c->rx_len, in, len);
      c->rx_len += len;
      c->rx[c->rx_len] = '\0';
    }
  }
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return;
  if (c->rx_overflow)
    web__logf(c->ws->w, WEB_LOG_WARN, "websocket from %s: a message over %zu bytes was ignored", c->peer, WS__RX_MAX);
  else if (!c->rx_binary && c->rx_len)
    ws__message(c, c->rx, c->rx_len);
  c->rx_len = 0;
  c->rx_overflow = false;
  if (c->rx_cap > 4096) {
    free(c->rx);
    c->rx = NULL;
    c->rx_cap = 0;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* connections                                                                                 */

static void ws__conn_free(web__ws *ws, web_ws *c, bool tell) {
  while (c->subs) {
    ws__sub *s = c->subs;
    c->subs = s->next;
    ws__sub_drop(ws, s, tell);
  }
  ws__queue_clear(c);
  free(c->q);
  free(c->rx);
  if (c->prev)
    c->prev->next = c->next;
  else
    ws->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  ws->n_conns--;
  free(c);
}

static int ws__established(web__ws *ws, struct lws *wsi, struct ws__pss *pss) {
  char uri[256], msg[64];
  struct timespec ts;
  web_ws *c;
  int n;
  if (!pss || !(c = calloc(1, sizeof *c))) return -1;
  c->ws = ws;
  c->wsi = wsi;
  c->next = ws->conns;
  if (ws->conns) ws->conns->prev = c;
  ws->conns = c;
  ws->n_conns++;
  ws->st.connections_total++;
  pss->c = c;
  if (!lws_get_peer_simple(wsi, c->peer, sizeof c->peer)) c->peer[0] = '\0';
  if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) > 0 && strcmp(uri, web__get_ws_path(ws->w)))
    c->sockjs = true;
  if (c->sockjs) {
    ws__msg *o = ws__msg_copy(ws, "o", 1);
    int rc = ws__enqueue(c, o);
    ws__msg_unref(ws, o);
    if (rc) return -1;
    lws_set_timer_usecs(wsi, WS__SOCKJS_HEARTBEAT_US);
  }
  clock_gettime(CLOCK_REALTIME, &ts);
  n = snprintf(msg, sizeof msg, "time %llu",
               (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)(ts.tv_nsec / 1000000));
  if (ws__send_text(c, msg, (size_t)n) || ws__send_text(c, "protocol 14", 11)) return -1;
  return 0;
}

int web__ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  web *w = lws_context_user(lws_get_context(wsi));
  web__ws *ws = web__get_ws(w);
  struct ws__pss *pss = user;
  web_ws *c = pss ? pss->c : NULL;

  if (web__is_closing(w) || !ws)
    return reason == LWS_CALLBACK_ESTABLISHED || reason == LWS_CALLBACK_SERVER_WRITEABLE ||
                   reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE || reason == LWS_CALLBACK_RECEIVE
               ? -1
               : 0;
  switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: return web__confirm_upgrade(w, wsi, in);
    case LWS_CALLBACK_ESTABLISHED: return ws__established(ws, wsi, pss);
    case LWS_CALLBACK_SERVER_WRITEABLE: return c ? ws__write(c) : 0;
    case LWS_CALLBACK_RECEIVE:
      if (c && !c->closing) ws__receive(c, wsi, in, len);
      return 0;
    case LWS_CALLBACK_TIMER:
      if (c && c->sockjs && !c->closing) {
        ws__msg *h = ws__msg_copy(ws, "h", 1);
        ws__enqueue(c, h);
        ws__msg_unref(ws, h);
        lws_set_timer_usecs(wsi, WS__SOCKJS_HEARTBEAT_US);
      }
      return 0;
    case LWS_CALLBACK_CLOSED:
      if (c) {
        pss->c = NULL;
        ws__conn_free(ws, c, true);
      }
      return 0;
    default: return 0;
  }
}

size_t web__ws_pss_size(void) {
  return sizeof(struct ws__pss);
}

/* ------------------------------------------------------------------------------------------ */
/* SockJS                                                                                      */

bool web__ws_path_ok(const web *w, const char *uri) {
  const web__ws *ws = web__get_ws(w);
  const char *p, *slash;
  size_t n;
  if (!strcmp(uri, web__get_ws_path(w))) return true;
  if (!ws || !ws->sockjs_prefix) return false;
  /* <prefix><server>/<session>/websocket, server and session non-empty, no further '/' */
  n = strlen(ws->sockjs_prefix);
  if (strncmp(uri, ws->sockjs_prefix, n)) return false;
  p = uri + n;
  if (!(slash = strchr(p, '/')) || slash == p) return false;
  p = slash + 1;
  if (!(slash = strchr(p, '/')) || slash == p) return false;
  return !strcmp(slash, "/websocket");
}

static void ws__sockjs_info(web_req *req, void *ud) {
  char body[160];
  (void)ud;
  snprintf(body, sizeof body, "{\"websocket\":true,\"origins\":[\"*:*\"],\"cookie_needed\":false,\"entropy\":%u}",
           (unsigned)randombytes_random());
  web_req_set_header(req, "Cache-Control", "no-store, no-cache, must-revalidate, max-age=0");
  web_respond_json(req, 200, body);
}

/* ------------------------------------------------------------------------------------------ */
/* lifecycle and public API                                                                    */

static void ws__defaults(web_ws_options *o) {
  if (!o->queue_max_messages) o->queue_max_messages = WS__DEFAULT_QUEUE_MESSAGES;
  if (!o->queue_max_bytes) o->queue_max_bytes = WS__DEFAULT_QUEUE_BYTES;
  if (!o->total_max_bytes) o->total_max_bytes = WS__DEFAULT_TOTAL_BYTES;
  if (!o->stall_close_ms) o->stall_close_ms = WS__DEFAULT_STALL_MS;
  if (!o->max_subscriptions) o->max_subscriptions = WS__DEFAULT_MAX_SUBS;
}

int web__ws_new(web *w, web__ws **out) {
  web__ws *ws = calloc(1, sizeof *ws);
  const char *path = web__get_ws_path(w);
  size_t n = strlen(path);
  static const char tail[] = "/websocket";
  *out = NULL;
  if (!ws) return WEB_ENOMEM;
  if (sodium_init() < 0) {
    free(ws);
    return WEB_EIO;
  }
  ws->w = w;
  ws__defaults(&ws->opt);
  if (n > sizeof tail - 1 && !strcmp(path + n - (sizeof tail - 1), tail)) {
    char info[300];
    size_t plen = n - (sizeof tail - 1) + 1; /* keeps the '/' */
    int rc;
    if (plen + 5 > sizeof info || !(ws->sockjs_prefix = strndup(path, plen))) {
      free(ws);
      return WEB_ENOMEM;
    }
    snprintf(info, sizeof info, "%sinfo", ws->sockjs_prefix);
    if ((rc = web_route(w, "GET", info, ws__sockjs_info, NULL)) != WEB_OK && rc != WEB_EEXIST) {
      free(ws->sockjs_prefix);
      free(ws);
      return rc;
    }
  }
  *out = ws;
  return WEB_OK;
}

void web__ws_free(web__ws *ws) {
  if (!ws) return;
  while (ws->conns) ws__conn_free(ws, ws->conns, false);
  free(ws->tab);
  free(ws->sockjs_prefix);
  free(ws);
}

int web_ws_setup(web *w, const web_ws_backend *backend, void *ud, const web_ws_options *opt) {
  web__ws *ws = web__get_ws(w);
  if (!ws || web__is_closing(w)) return WEB_EINVAL;
  if (backend) {
    ws->b = *backend;
    ws->ud = ud;
    ws->has_backend = true;
  }
  if (opt) {
    ws->opt = *opt;
    ws__defaults(&ws->opt);
  }
  return WEB_OK;
}

int web_ws_publish(web *w, const char *channel, const char *frame, size_t len) {
  web__ws *ws = web__get_ws(w);
  ws__forms f;
  ws__chan *ch;
  int sent = 0;
  if (!ws || !channel || !frame || web__is_closing(w)) return WEB_EINVAL;
  ch = ws__chan_find(ws, channel, ws__hash(channel, strlen(channel)));
  ws->st.frames_published++;
  if (!ch) return 0;
  memset(&f, 0, sizeof f);
  f.text = frame;
  f.len = len;
  for (ws__sub *s = ch->subs; s; s = s->cnext) {
    web_ws *c = s->c;
    if (c->closing) continue;
    if (ws__enqueue(c, ws__form(ws, &f, ws__form_of(c))) == WEB_OK) sent++;
  }
  ws__forms_release(ws, &f);
  return sent;
}

int web_ws_broadcast(web *w, const char *frame, size_t len) {
  web__ws *ws = web__get_ws(w);
  ws__forms f;
  int sent = 0;
  if (!ws || !frame || web__is_closing(w)) return WEB_EINVAL;
  memset(&f, 0, sizeof f);
  f.text = frame;
  f.len = len;
  for (web_ws *c = ws->conns, *next; c; c = next) {
    next = c->next;
    if (c->closing) continue;
    if (ws__enqueue(c, ws__form(ws, &f, ws__form_of(c))) == WEB_OK) sent++;
  }
  ws__forms_release(ws, &f);
  return sent;
}

int web_ws_send(web_ws *c, const char *frame, size_t len) {
  ws__forms f;
  int rc;
  if (!c || !frame) return WEB_EINVAL;
  memset(&f, 0, sizeof f);
  f.text = frame;
  f.len = len;
  rc = ws__enqueue(c, ws__form(c->ws, &f, ws__form_of(c)));
  ws__forms_release(c->ws, &f);
  return rc;
}

uint64_t web_ws_user(const web_ws *c) {
  return c ? c->user : 0;
}

const char *web_ws_peer(const web_ws *c) {
  return c ? c->peer : NULL;
}

size_t web_ws_subscribers(const web *w, const char *channel) {
  const web__ws *ws = web__get_ws(w);
  const ws__chan *ch;
  if (!ws || !channel) return 0;
  ch = ws__chan_find(ws, channel, ws__hash(channel, strlen(channel)));
  return ch ? ch->n : 0;
}

void web_ws_get_stats(const web *w, web_ws_stats *out) {
  const web__ws *ws = web__get_ws(w);
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!ws) return;
  *out = ws->st;
  out->connections = ws->n_conns;
  out->channels = ws->n_chans;
  out->subscriptions = ws->n_subs;
  out->queued_bytes = ws->live_bytes;
}
