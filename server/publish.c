/*
 * publish.c — what the players' runs produce, streamed to websocket subscribers.
 *
 * The path of a frame: the tick thread commits a tick, then (srv_publish_begin/run/end)
 * builds the frames of the channels somebody listens to — each channel's frame once, in
 * JSON, with the console rules applied — and appends them, in tick order, to a queue that
 * a uv_async_t drains on the loop thread, which hands each frame to web (web_ws_publish),
 * where it is copied once and shared by every subscriber's queue. Nothing is published
 * that was not committed, and the tick thread never touches libwebsockets.
 *
 * Who listens: web tells us (loop thread) when a channel gains its first subscriber or
 * loses its last one. We keep, per user, which of console / cpu / code and which Memory
 * paths are listened to, and give the tick thread an immutable, reference-counted copy
 * (swapped under a mutex on every change). So a tick costs nothing for players nobody
 * watches, and Memory is parsed only for players with watched paths.
 *
 * Channels (PROTOCOL.md "Websocket"):
 *   user:<id>/console  {"messages":{"log":[...],"results":[...]}} once per tick the player
 *                      ran, then each error as its own {"error":"..."}; texts HTML-escaped,
 *                      console.logUnsafe lines raw
 *   user:<id>/cpu      {"cpu":<ms used>,"memory":<Memory length>} after each run; one on
 *                      subscribe, from the committed CPU record
 *   user:<id>/code     {"branch","modules","timestamp","hash"} on upload
 *   user:<id>/memory/<path>  the value at the path, as a string (see memory_payload), after
 *                      each run; at most SRV_PUB_MEMORY_PATHS paths per user
 *   server-message     srv_publish_server_message(): sent to every connection
 * Every user:<id>/... channel needs a socket authenticated as that user.
 */
#include "api.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUB_CONSOLE 1u
#define PUB_CPU 2u
#define PUB_CODE 4u
#define PUB_PENDING_MAX ((size_t)64 << 20) /* bytes of frames waiting for the loop */
#define PUB_PATH_MAX 256

/* ------------------------------------------------------------------ who listens */

typedef struct pub_user {
  uint64_t uid;
  unsigned flags; /* PUB_* */
  size_t n_paths;
  char **paths;
} pub_user;

/* A room somebody listens to (room:<NAME>). gen grows with every new subscriber, who
 * needs a full snapshot: the tick thread sends one when it sees gen change. */
typedef struct pub_room {
  char name[16];
  uint64_t gen;
} pub_room;

/* A set of listened-to users, sorted by uid, and rooms. The loop thread's own copy is
 * mutable; the tick thread gets immutable snapshots. */
typedef struct pub_subs {
  atomic_int refs;
  size_t n, cap;
  pub_user *u;
  size_t n_rooms, cap_rooms;
  pub_room *rooms;
} pub_subs;

/* Tick thread: the feed of one room (what its subscribers last got). */
typedef struct room_feed {
  char name[16];
  uint64_t gen;
  sim_feed *feed;
} room_feed;

/* A frame waiting for the loop thread. channel NULL: to every connection. */
typedef struct pub_frame {
  struct pub_frame *next;
  const char *channel; /* points into data, after the text */
  size_t len;
  char data[]; /* text, NUL, channel, NUL */
} pub_frame;

struct srv_pub {
  srv *s;
  web *w;
  uv_async_t async;
  pthread_mutex_t mu;
  /* under mu */
  pub_frame *head, *tail;
  size_t pending_bytes;
  uint64_t lost_frames;
  pub_subs *snap;
  /* loop thread */
  pub_subs master;
  uint64_t lost_reported;
  /* tick thread */
  struct mem_cache *cache;
  size_t n_cache;
  room_feed *feeds;
  size_t n_feeds;
};

static void subs_clear(pub_subs *ss) {
  for (size_t i = 0; i < ss->n; i++) {
    for (size_t k = 0; k < ss->u[i].n_paths; k++) free(ss->u[i].paths[k]);
    free(ss->u[i].paths);
  }
  free(ss->u);
  ss->u = NULL;
  ss->n = ss->cap = 0;
  free(ss->rooms);
  ss->rooms = NULL;
  ss->n_rooms = ss->cap_rooms = 0;
}

static void subs_unref(pub_subs *ss) {
  if (!ss || atomic_fetch_sub(&ss->refs, 1) != 1) return;
  subs_clear(ss);
  free(ss);
}

static const pub_user *subs_find(const pub_subs *ss, uint64_t uid) {
  size_t lo = 0, hi = ss ? ss->n : 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ss->u[mid].uid == uid) return &ss->u[mid];
    if (ss->u[mid].uid < uid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* Loop thread: the master's entry for uid, created if `create`. */
static pub_user *master_get(srv_pub *pub, uint64_t uid, bool create) {
  pub_subs *m = &pub->master;
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (m->u[mid].uid == uid) return &m->u[mid];
    if (m->u[mid].uid < uid)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (!create) return NULL;
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    pub_user *u = realloc(m->u, cap * sizeof *u);
    if (!u) return NULL;
    m->u = u;
    m->cap = cap;
  }
  memmove(&m->u[lo + 1], &m->u[lo], (m->n - lo) * sizeof *m->u);
  m->u[lo] = (pub_user){uid, 0, 0, NULL};
  m->n++;
  return &m->u[lo];
}

static void master_drop_if_empty(srv_pub *pub, pub_user *e) {
  pub_subs *m = &pub->master;
  if (e->flags || e->n_paths) return;
  free(e->paths);
  size_t i = (size_t)(e - m->u);
  memmove(&m->u[i], &m->u[i + 1], (m->n - i - 1) * sizeof *m->u);
  m->n--;
}

/* Loop thread: gives the tick thread a fresh copy of the master. */
static void snapshot(srv_pub *pub) {
  pub_subs *ss = calloc(1, sizeof *ss);
  bool ok = ss != NULL;
  if (ok && pub->master.n) {
    ss->u = calloc(pub->master.n, sizeof *ss->u);
    ok = ss->u != NULL;
    for (size_t i = 0; ok && i < pub->master.n; i++) {
      const pub_user *e = &pub->master.u[i];
      pub_user *d = &ss->u[ss->n++];
      *d = (pub_user){e->uid, e->flags, 0, NULL};
      if (!e->n_paths) continue;
      if (!(d->paths = calloc(e->n_paths, sizeof *d->paths))) {
        ok = false;
        break;
      }
      for (size_t k = 0; k < e->n_paths; k++) {
        if (!(d->paths[k] = strdup(e->paths[k]))) {
          ok = false;
          break;
        }
        d->n_paths++;
      }
    }
  }
  if (ok && pub->master.n_rooms) {
    ss->rooms = malloc(pub->master.n_rooms * sizeof *ss->rooms);
    ok = ss->rooms != NULL;
    if (ok) {
      memcpy(ss->rooms, pub->master.rooms, pub->master.n_rooms * sizeof *ss->rooms);
      ss->n_rooms = ss->cap_rooms = pub->master.n_rooms;
    }
  }
  if (!ok) {
    if (ss) subs_clear(ss);
    free(ss);
    srv_log("websocket: out of memory updating the subscriptions (the previous ones stay in force)");
    return;
  }
  atomic_store(&ss->refs, 1);
  pthread_mutex_lock(&pub->mu);
  pub_subs *old = pub->snap;
  pub->snap = ss;
  pthread_mutex_unlock(&pub->mu);
  subs_unref(old);
}

/* "user:<id>/<rest>": the id (non-zero) and rest, or 0. */
static uint64_t parse_user_channel(const char *ch, const char **rest) {
  uint64_t id = 0;
  const char *p = ch + 5;
  if (strncmp(ch, "user:", 5)) return 0;
  if (*p < '1' || *p > '9') return 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (id > (UINT64_MAX - 9) / 10) return 0;
    id = id * 10 + (uint64_t)(*p - '0');
  }
  if (*p != '/') return 0;
  *rest = p + 1;
  return id;
}

static unsigned kind_flag(const char *rest) {
  if (!strcmp(rest, "console")) return PUB_CONSOLE;
  if (!strcmp(rest, "cpu")) return PUB_CPU;
  if (!strcmp(rest, "code")) return PUB_CODE;
  return 0;
}

static const char *memory_path(const char *rest) {
  if (strncmp(rest, "memory/", 7) || !rest[7] || strlen(rest + 7) > PUB_PATH_MAX) return NULL;
  return rest + 7;
}

/* ------------------------------------------------------------------ web's backend (loop thread) */

static int be_auth(void *ud, const char *token, uint64_t *user, char *fresh, size_t cap) {
  srv_pub *pub = ud;
  store_user u;
  bool is_long = false;
  if (!api_token_user(pub->s, token, &u, &is_long)) return -1;
  *user = u.id;
  fresh[0] = '\0';
  if (!is_long && cap >= SRV_TOKEN_MAX) {
    int64_t exp = srv_now_ms() + (int64_t)pub->s->cfg.token_ttl_s * 1000;
    if (srv_token_mint(pub->s->token_key, u.id, exp, fresh) != 0) fresh[0] = '\0';
  }
  return 0;
}

static bool be_may_subscribe(void *ud, uint64_t user, const char *channel) {
  srv_pub *pub = ud;
  const char *rest, *path;
  uint64_t id;
  if (!strcmp(channel, "server-message")) return true;
  if (!strncmp(channel, "room:", 5)) return channel[5] != '\0' && strlen(channel + 5) < sizeof(((pub_room *)0)->name);
  if (!(id = parse_user_channel(channel, &rest))) return false;
  /* stricter than vanilla: every user channel needs a socket of that very user */
  if (!user || id != user || !*rest) return false;
  if (!strncmp(rest, "memory/", 7)) {
    if (!(path = memory_path(rest))) return false;
    if (web_ws_subscribers(pub->w, channel)) return true; /* already watched: no new path */
    const pub_user *e = master_get(pub, id, false);
    return !e || e->n_paths < SRV_PUB_MEMORY_PATHS;
  }
  return true; /* console, cpu, code, and the vanilla client's others (nothing published) */
}

/* Builds ["<channel>",{"cpu":N,"memory":N}]. */
static int cpu_frame(char *buf, size_t cap, uint64_t uid, int64_t used, size_t memory) {
  return snprintf(buf, cap, "[\"user:%" PRIu64 "/cpu\",{\"cpu\":%" PRId64 ",\"memory\":%zu}]", uid, used, memory);
}

/* Loop thread: the master's entry for a room, created if `create`. */
static pub_room *master_room(srv_pub *pub, const char *name, bool create) {
  pub_subs *m = &pub->master;
  for (size_t i = 0; i < m->n_rooms; i++)
    if (!strcmp(m->rooms[i].name, name)) return &m->rooms[i];
  if (!create || strlen(name) >= sizeof m->rooms[0].name) return NULL;
  if (m->n_rooms == m->cap_rooms) {
    size_t cap = m->cap_rooms ? m->cap_rooms * 2 : 8;
    pub_room *r = realloc(m->rooms, cap * sizeof *r);
    if (!r) return NULL;
    m->rooms = r;
    m->cap_rooms = cap;
  }
  pub_room *r = &m->rooms[m->n_rooms++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  return r;
}

static void be_subscribed(void *ud, web_ws *c, uint64_t user, const char *channel) {
  srv_pub *pub = ud;
  if (!strncmp(channel, "room:", 5)) {
    /* a new subscriber of a room: the next tick sends the room's full snapshot */
    pub_room *r = master_room(pub, channel + 5, true);
    if (r) {
      r->gen++;
      snapshot(pub);
    }
    return;
  }
  const char *rest;
  uint64_t id = parse_user_channel(channel, &rest);
  if (!id || id != user || strcmp(rest, "cpu")) return;
  /* the first cpu frame: from the committed state */
  store_txn *txn;
  store_cpu cpu = {0};
  const char *mem = NULL;
  size_t len = 0;
  if (store_read_begin(pub->s->db, &txn) != STORE_OK) return;
  store_cpu_get(txn, id, &cpu);
  if (store_memory_get(txn, id, &mem, &len) == STORE_OK) len = srv_utf16_length(mem, len);
  store_abort(txn);
  char frame[128];
  int n = cpu_frame(frame, sizeof frame, id, cpu.last_used_ms, len);
  web_ws_send(c, frame, (size_t)n);
}

static void channel_change(srv_pub *pub, const char *channel, bool open) {
  const char *rest, *path;
  if (!strncmp(channel, "room:", 5)) {
    if (open) {
      master_room(pub, channel + 5, true);
    } else {
      pub_room *r = master_room(pub, channel + 5, false);
      pub_subs *m = &pub->master;
      if (r) *r = m->rooms[--m->n_rooms];
    }
    snapshot(pub);
    return;
  }
  uint64_t id = parse_user_channel(channel, &rest);
  unsigned flag;
  if (!id) return;
  flag = kind_flag(rest);
  path = memory_path(rest);
  if (!flag && !path) return;
  pub_user *e = master_get(pub, id, open);
  if (!e) return;
  if (flag) {
    if (open)
      e->flags |= flag;
    else
      e->flags &= ~flag;
  } else if (open) {
    char *copy = strdup(path);
    char **v = copy ? realloc(e->paths, (e->n_paths + 1) * sizeof *v) : NULL;
    if (!v) {
      free(copy);
      master_drop_if_empty(pub, e);
      srv_log("websocket: out of memory watching %s", channel);
      return;
    }
    e->paths = v;
    e->paths[e->n_paths++] = copy;
  } else {
    for (size_t k = 0; k < e->n_paths; k++) {
      if (strcmp(e->paths[k], path)) continue;
      free(e->paths[k]);
      e->paths[k] = e->paths[--e->n_paths];
      break;
    }
  }
  master_drop_if_empty(pub, e);
  snapshot(pub);
}

static void be_channel_open(void *ud, const char *channel) {
  channel_change(ud, channel, true);
}

static void be_channel_close(void *ud, const char *channel) {
  channel_change(ud, channel, false);
}

/* ------------------------------------------------------------------ the hand-off */

/* Any thread: appends a list of frames for the loop thread, in order. */
static void push_frames(srv_pub *pub, pub_frame *head, pub_frame *tail, size_t bytes) {
  if (!head) return;
  pthread_mutex_lock(&pub->mu);
  if (pub->pending_bytes + bytes > PUB_PENDING_MAX) {
    /* the loop thread is far behind: these are lost rather than hold memory without end */
    for (pub_frame *f = head, *next; f; f = next) {
      next = f->next;
      pub->lost_frames++;
      free(f);
    }
    pthread_mutex_unlock(&pub->mu);
    return;
  }
  if (pub->tail)
    pub->tail->next = head;
  else
    pub->head = head;
  pub->tail = tail;
  pub->pending_bytes += bytes;
  pthread_mutex_unlock(&pub->mu);
  uv_async_send(&pub->async);
}

static void on_async(uv_async_t *h) {
  srv_pub *pub = h->data;
  pthread_mutex_lock(&pub->mu);
  pub_frame *f = pub->head;
  pub->head = pub->tail = NULL;
  pub->pending_bytes = 0;
  uint64_t lost = pub->lost_frames;
  pthread_mutex_unlock(&pub->mu);
  if (lost != pub->lost_reported) {
    srv_log("websocket: %" PRIu64 " frames lost: the loop thread could not keep up with the ticks",
            lost - pub->lost_reported);
    pub->lost_reported = lost;
  }
  while (f) {
    pub_frame *next = f->next;
    if (pub->w) {
      if (f->channel)
        web_ws_publish(pub->w, f->channel, f->data, f->len);
      else
        web_ws_broadcast(pub->w, f->data, f->len);
    }
    free(f);
    f = next;
  }
}

/* ------------------------------------------------------------------ JSON text */

/* A growing string. On out of memory it stops growing and says so in `oom`. */
typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void sb_grow(sbuf *b, size_t add) {
  if (b->oom || b->n + add + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + add + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = true;
    return;
  }
  b->p = p;
  b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
  sb_grow(b, n);
  if (b->oom) return;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) {
  sb_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

/*
 * Appends text as a JSON string. html: escape & < > " ' as HTML entities first (the
 * console's rule; console.logUnsafe is raw). Invalid UTF-8 becomes U+FFFD, so the frame
 * is always a valid websocket text frame.
 */
static void sb_json_str(sbuf *b, const char *text, size_t len, bool html) {
  const unsigned char *s = (const unsigned char *)text;
  sb_grow(b, len + len / 4 + 2);
  sb_put(b, "\"", 1);
  size_t run = 0; /* bytes copied verbatim, pending */
  for (size_t i = 0; i < len;) {
    unsigned char c = s[i];
    const char *rep = NULL;
    char u[8];
    size_t adv = 1;
    if (c == '"')
      rep = html ? "&quot;" : "\\\"";
    else if (c == '\\')
      rep = "\\\\";
    else if (html && c == '&')
      rep = "&amp;";
    else if (html && c == '<')
      rep = "&lt;";
    else if (html && c == '>')
      rep = "&gt;";
    else if (html && c == '\'')
      rep = "&#39;";
    else if (c == '\n')
      rep = "\\n";
    else if (c == '\r')
      rep = "\\r";
    else if (c == '\t')
      rep = "\\t";
    else if (c < 0x20 || c == 0x7f) {
      snprintf(u, sizeof u, "\\u%04x", c);
      rep = u;
    } else if (c >= 0x80) {
      adv = utf8_seq(s + i, len - i);
      if (!adv) {
        rep = "\\ufffd";
        adv = 1;
      }
    }
    if (rep) {
      sb_put(b, text + i - run, run);
      run = 0;
      sb_puts(b, rep);
    } else {
      run += adv;
    }
    i += adv;
  }
  sb_put(b, text + len - run, run);
  sb_put(b, "\"", 1);
}

/* ------------------------------------------------------------------ frames of a tick */

struct srv_pub_tick {
  srv_pub *pub;
  pub_subs *subs;
  uint64_t time;
  pub_frame *head, *tail;
  size_t bytes;
};

/* Moves b's text into a new frame for channel (NULL: every connection). */
static void tick_add(srv_pub_tick *t, const char *channel, sbuf *b) {
  if (b->oom || !b->n) {
    free(b->p);
    *b = (sbuf){0};
    return;
  }
  size_t cl = channel ? strlen(channel) : 0;
  pub_frame *f = malloc(sizeof *f + b->n + 1 + cl + 1);
  if (f) {
    f->next = NULL;
    f->len = b->n;
    memcpy(f->data, b->p, b->n + 1);
    f->channel = NULL;
    if (channel) {
      memcpy(f->data + b->n + 1, channel, cl + 1);
      f->channel = f->data + b->n + 1;
    }
    if (t->tail)
      t->tail->next = f;
    else
      t->head = f;
    t->tail = f;
    t->bytes += b->n;
  }
  free(b->p);
  *b = (sbuf){0};
}

static void frame_open(sbuf *b, const char *channel) {
  sb_puts(b, "[\"");
  sb_puts(b, channel);
  sb_puts(b, "\",");
}

static size_t line_len(const sbx_line *l) {
  return l->len ? l->len : strlen(l->text);
}

static void console_frames(srv_pub_tick *t, uint64_t uid, const sbx_line *lines, size_t n, const char *error) {
  char channel[64];
  sbuf b = {0};
  bool error_seen = false;
  snprintf(channel, sizeof channel, "user:%" PRIu64 "/console", uid);
  frame_open(&b, channel);
  sb_puts(&b, "{\"messages\":{\"log\":[");
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    if (lines[i].level == SBX_RESULT || lines[i].level == SBX_ERROR) continue;
    if (!first) sb_put(&b, ",", 1);
    first = false;
    sb_json_str(&b, lines[i].text, line_len(&lines[i]), !lines[i].unsafe);
  }
  sb_puts(&b, "],\"results\":[");
  first = true;
  for (size_t i = 0; i < n; i++) {
    if (lines[i].level != SBX_RESULT) continue;
    if (!first) sb_put(&b, ",", 1);
    first = false;
    sb_json_str(&b, lines[i].text, line_len(&lines[i]), !lines[i].unsafe);
  }
  sb_puts(&b, "]}}]");
  tick_add(t, channel, &b);
  /* each error its own frame, in the order the run produced them */
  for (size_t i = 0; i < n; i++) {
    if (lines[i].level != SBX_ERROR) continue;
    if (error && !strcmp(lines[i].text, error)) error_seen = true;
    frame_open(&b, channel);
    sb_puts(&b, "{\"error\":");
    sb_json_str(&b, lines[i].text, line_len(&lines[i]), true);
    sb_puts(&b, "}]");
    tick_add(t, channel, &b);
  }
  /* a failed run whose error is not among the lines (cut by the cap, or a failure of the
   * sandbox itself) */
  if (error && *error && !error_seen) {
    frame_open(&b, channel);
    sb_puts(&b, "{\"error\":");
    sb_json_str(&b, error, strlen(error), true);
    sb_puts(&b, "}]");
    tick_add(t, channel, &b);
  }
}

/*
 * The payload of user:<id>/memory/<path>: a string, as the vanilla server sends (it sends
 * ""+value). Strings as they are, other primitives in their JSON form; objects and arrays
 * as compact JSON (vanilla would send "[object Object]"); a path that leads nowhere is
 * "undefined", one that goes through undefined or null "Incorrect memory path".
 * Appends the JSON string to b.
 */
static void memory_payload(sbuf *b, json_t *root, const char *path) {
  json_t *v = NULL, *owned = NULL;
  srv_path_result r = root ? srv_memory_path_get(root, path, &v, &owned) : SRV_PATH_INCORRECT;
  if (r == SRV_PATH_FOUND && json_is_string(v)) {
    sb_json_str(b, json_string_value(v), json_string_length(v), false);
  } else if (r == SRV_PATH_FOUND) {
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text)
      sb_json_str(b, text, strlen(text), false);
    else
      b->oom = true;
    free(text);
  } else {
    sb_puts(b, r == SRV_PATH_UNDEFINED ? "\"undefined\"" : "\"Incorrect memory path\"");
  }
  json_decref(owned);
}

/*
 * Why a cache: finding a path means parsing the whole Memory (up to 2 MB, ~10 ms), every
 * tick, on the tick thread. Many ticks leave Memory as it was (code that reads it, or
 * keeps its state in the global), so the tick thread keeps, per watched player, the Memory
 * text it last parsed and the payloads it found; an unchanged Memory costs a memcmp.
 */
typedef struct mem_cache {
  uint64_t uid;
  char *memory; /* copy of the Memory text the payloads come from */
  size_t len;
  size_t n;
  char **paths, **payloads;
} mem_cache;

static void mem_cache_clear(mem_cache *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->paths[i]);
    free(c->payloads[i]);
  }
  free(c->paths);
  free(c->payloads);
  free(c->memory);
  c->paths = c->payloads = NULL;
  c->memory = NULL;
  c->n = c->len = 0;
}

static mem_cache *mem_cache_get(srv_pub *pub, uint64_t uid) {
  for (size_t i = 0; i < pub->n_cache; i++)
    if (pub->cache[i].uid == uid) return &pub->cache[i];
  mem_cache *c = realloc(pub->cache, (pub->n_cache + 1) * sizeof *c);
  if (!c) return NULL;
  pub->cache = c;
  c = &pub->cache[pub->n_cache++];
  memset(c, 0, sizeof *c);
  c->uid = uid;
  return c;
}

/* Drops the cache entries of players nobody watches the Memory of any more. */
static void mem_cache_prune(srv_pub *pub, const pub_subs *ss) {
  size_t k = 0;
  for (size_t i = 0; i < pub->n_cache; i++) {
    const pub_user *e = subs_find(ss, pub->cache[i].uid);
    if (e && e->n_paths)
      pub->cache[k++] = pub->cache[i];
    else
      mem_cache_clear(&pub->cache[i]);
  }
  pub->n_cache = k;
}

static void memory_frames(srv_pub_tick *t, uint64_t uid, const pub_user *e, const srv_player *p) {
  const char *mem = p->memory ? p->memory : "{}";
  size_t len = p->memory ? p->memory_len : 2;
  mem_cache *c = mem_cache_get(t->pub, uid);
  bool same = c && c->memory && c->len == len && !memcmp(c->memory, mem, len);
  json_t *root = NULL;
  bool parsed = false;
  char **payloads = calloc(e->n_paths, sizeof *payloads);
  for (size_t k = 0; k < e->n_paths; k++) {
    char channel[64 + PUB_PATH_MAX];
    sbuf b = {0};
    snprintf(channel, sizeof channel, "user:%" PRIu64 "/memory/%s", uid, e->paths[k]);
    frame_open(&b, channel);
    const char *cached = NULL;
    for (size_t i = 0; same && i < c->n; i++)
      if (!strcmp(c->paths[i], e->paths[k])) cached = c->payloads[i];
    size_t at = b.n;
    if (cached) {
      sb_puts(&b, cached);
    } else {
      if (!parsed) {
        root = srv_memory_parse(mem, len);
        parsed = true;
      }
      memory_payload(&b, root, e->paths[k]);
    }
    if (payloads && !b.oom) payloads[k] = strndup(b.p + at, b.n - at);
    sb_puts(&b, "]");
    tick_add(t, channel, &b);
  }
  json_decref(root);
  /* remember this Memory and what was found in it */
  if (c && payloads) {
    char *copy = same ? c->memory : malloc(len + 1);
    bool ok = copy != NULL;
    for (size_t k = 0; ok && k < e->n_paths; k++) ok = payloads[k] != NULL;
    char **paths = ok ? calloc(e->n_paths, sizeof *paths) : NULL;
    for (size_t k = 0; paths && k < e->n_paths; k++)
      if (!(paths[k] = strdup(e->paths[k]))) ok = false;
    if (ok && paths) {
      if (!same) memcpy(copy, mem, len);
      if (same) c->memory = NULL; /* kept: not freed by the clear below */
      mem_cache_clear(c);
      c->memory = copy;
      c->len = len;
      c->n = e->n_paths;
      c->paths = paths;
      c->payloads = payloads;
      payloads = NULL;
    } else {
      for (size_t k = 0; paths && k < e->n_paths; k++) free(paths[k]);
      free(paths);
      if (copy && !same) free(copy);
    }
  }
  for (size_t k = 0; payloads && k < e->n_paths; k++) free(payloads[k]);
  free(payloads);
}

srv_pub_tick *srv_publish_begin(srv *s, uint64_t time) {
  srv_pub *pub = s->pub;
  if (!pub) return NULL;
  pthread_mutex_lock(&pub->mu);
  pub_subs *ss = pub->snap;
  if (ss && (ss->n || ss->n_rooms))
    atomic_fetch_add(&ss->refs, 1);
  else
    ss = NULL;
  pthread_mutex_unlock(&pub->mu);
  if (!ss) {
    /* nobody listens to any player or room: the tick costs nothing more */
    for (size_t i = 0; i < pub->n_feeds; i++) sim_feed_free(pub->feeds[i].feed);
    pub->n_feeds = 0;
    return NULL;
  }
  srv_pub_tick *t = calloc(1, sizeof *t);
  if (!t) {
    subs_unref(ss);
    return NULL;
  }
  t->pub = pub;
  t->subs = ss;
  t->time = time;
  return t;
}

void srv_publish_run(srv_pub_tick *t, const srv_player *p, const sbx_tick_out *o) {
  if (!t) return;
  const pub_user *e = subs_find(t->subs, p->id);
  if (!e) return;
  if (e->flags & PUB_CONSOLE) console_frames(t, p->id, o->lines, o->n_lines, o->status != SBX_OK ? o->error : NULL);
  if (e->flags & PUB_CPU) {
    char frame[128];
    sbuf b = {0};
    int n = cpu_frame(frame, sizeof frame, p->id, p->last_used_ms,
                      p->memory ? srv_utf16_length(p->memory, p->memory_len) : 0);
    sb_put(&b, frame, (size_t)n);
    char channel[64];
    snprintf(channel, sizeof channel, "user:%" PRIu64 "/cpu", p->id);
    tick_add(t, channel, &b);
  }
  if (e->n_paths) memory_frames(t, p->id, e, p);
}

/* room:<NAME>: a full snapshot for a room with a new subscriber, else the diff since the
 * last tick (every tick: subscribers see gameTime advance). Feeds of rooms nobody listens
 * to any more are dropped. */
void srv_publish_rooms(srv_pub_tick *t, const sim_world *w) {
  if (!t || !w) return;
  srv_pub *pub = t->pub;
  const pub_subs *ss = t->subs;
  /* drop feeds nobody listens to */
  for (size_t i = 0; i < pub->n_feeds;) {
    bool listened = false;
    for (size_t k = 0; k < ss->n_rooms && !listened; k++) listened = !strcmp(ss->rooms[k].name, pub->feeds[i].name);
    if (listened) {
      i++;
      continue;
    }
    sim_feed_free(pub->feeds[i].feed);
    pub->feeds[i] = pub->feeds[--pub->n_feeds];
  }
  for (size_t k = 0; k < ss->n_rooms; k++) {
    const pub_room *r = &ss->rooms[k];
    size_t room;
    if (sim_world_room_index(w, r->name, &room) != SIM_OK) continue;
    room_feed *f = NULL;
    for (size_t i = 0; i < pub->n_feeds && !f; i++)
      if (!strcmp(pub->feeds[i].name, r->name)) f = &pub->feeds[i];
    if (!f) {
      room_feed *nf = realloc(pub->feeds, (pub->n_feeds + 1) * sizeof *nf);
      if (!nf) continue;
      pub->feeds = nf;
      f = &pub->feeds[pub->n_feeds];
      memset(f, 0, sizeof *f);
      if (sim_feed_new(&f->feed) != SIM_OK) continue;
      snprintf(f->name, sizeof f->name, "%s", r->name);
      pub->n_feeds++;
    }
    sim_buf payload;
    sim_buf_init(&payload);
    int rc;
    if (f->gen != r->gen) {
      rc = sim_feed_snapshot(f->feed, w, room, &payload);
      f->gen = r->gen;
    } else {
      rc = sim_feed_diff(f->feed, w, room, &payload, NULL);
    }
    if (rc == SIM_OK) {
      char channel[32];
      snprintf(channel, sizeof channel, "room:%s", r->name);
      sbuf b = {0};
      frame_open(&b, channel);
      sb_put(&b, payload.data, payload.len);
      sb_puts(&b, "]");
      tick_add(t, channel, &b);
    }
    sim_buf_release(&payload);
  }
}

void srv_publish_end(srv *s, srv_pub_tick *t) {
  if (!t) return;
  /* players skipped this tick for an empty bucket: their console says so */
  for (size_t i = 0; i < s->n_players; i++) {
    const srv_player *p = s->players[i];
    if (p->skipped_tick != t->time) continue;
    const pub_user *e = subs_find(t->subs, p->id);
    if (!e || !(e->flags & PUB_CONSOLE)) continue;
    sbx_line l = {SBX_ERROR, false, (char *)SRV_SKIP_TEXT, sizeof SRV_SKIP_TEXT - 1};
    console_frames(t, p->id, &l, 1, NULL);
  }
  mem_cache_prune(t->pub, t->subs);
  push_frames(t->pub, t->head, t->tail, t->bytes);
  subs_unref(t->subs);
  free(t);
}

void srv_publish_code(srv *s, uint64_t uid, const char *branch, const sbx_module *mods, size_t n, int64_t timestamp,
                      json_t *hash) {
  srv_pub *pub = s->pub;
  if (!pub) return;
  srv_pub_tick *t = srv_publish_begin(s, 0);
  if (!t) return;
  const pub_user *e = subs_find(t->subs, uid);
  if (e && (e->flags & PUB_CODE)) {
    char channel[64];
    snprintf(channel, sizeof channel, "user:%" PRIu64 "/code", uid);
    json_t *modules = json_object();
    for (size_t i = 0; modules && i < n; i++) {
      json_t *v;
      if (mods[i].binary) {
        size_t cap = sodium_base64_ENCODED_LEN(mods[i].len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(cap);
        if (b64)
          sodium_bin2base64(b64, cap, (const unsigned char *)mods[i].source, mods[i].len,
                            sodium_base64_VARIANT_ORIGINAL);
        v = b64 ? json_pack("{s:s}", "binary", b64) : NULL;
        free(b64);
      } else {
        v = json_stringn(mods[i].source, mods[i].len);
      }
      if (v) json_object_set_new(modules, mods[i].name, v);
    }
    json_t *payload = json_pack("{s:s, s:o, s:I}", "branch", branch, "modules", modules ? modules : json_object(),
                                "timestamp", (json_int_t)timestamp);
    if (payload && hash) json_object_set(payload, "hash", hash);
    json_t *frame = payload ? json_pack("[s, o]", channel, payload) : NULL;
    char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
    json_decref(frame);
    if (text) {
      sbuf b = {text, strlen(text), strlen(text) + 1, false};
      tick_add(t, channel, &b);
    }
  }
  /* (a snapshot-holding publish with no frames pushes nothing) */
  push_frames(t->pub, t->head, t->tail, t->bytes);
  subs_unref(t->subs);
  free(t);
}

void srv_publish_server_message(srv *s, const char *text) {
  srv_pub *pub = s ? s->pub : NULL;
  if (!pub || !text) return;
  sbuf b = {0};
  sb_puts(&b, "[\"server-message\",");
  sb_json_str(&b, text, strlen(text), false);
  sb_puts(&b, "]");
  srv_pub_tick t = {.pub = pub};
  tick_add(&t, NULL, &b);
  push_frames(pub, t.head, t.tail, t.bytes);
}

/* ------------------------------------------------------------------ lifecycle */

static void pub_closed(uv_handle_t *h) {
  srv_pub *pub = h->data;
  pthread_mutex_lock(&pub->mu);
  pub_frame *f = pub->head;
  pub->head = pub->tail = NULL;
  pub_subs *ss = pub->snap;
  pub->snap = NULL;
  pthread_mutex_unlock(&pub->mu);
  while (f) {
    pub_frame *next = f->next;
    free(f);
    f = next;
  }
  subs_unref(ss);
  subs_clear(&pub->master);
  for (size_t i = 0; i < pub->n_cache; i++) mem_cache_clear(&pub->cache[i]);
  free(pub->cache);
  for (size_t i = 0; i < pub->n_feeds; i++) sim_feed_free(pub->feeds[i].feed);
  free(pub->feeds);
  pthread_mutex_destroy(&pub->mu);
  free(pub);
}

int srv_publish_init(srv *s, uv_loop_t *loop, web *w, const web_ws_options *opt) {
  srv_pub *pub = calloc(1, sizeof *pub);
  if (!pub) return -1;
  pub->s = s;
  pub->w = w;
  pthread_mutex_init(&pub->mu, NULL);
  int rc = uv_async_init(loop, &pub->async, on_async);
  if (rc) {
    pthread_mutex_destroy(&pub->mu);
    free(pub);
    return rc;
  }
  pub->async.data = pub;
  web_ws_backend be = {
      .auth = be_auth,
      .may_subscribe = be_may_subscribe,
      .subscribed = be_subscribed,
      .channel_open = be_channel_open,
      .channel_close = be_channel_close,
  };
  if ((rc = web_ws_setup(w, &be, pub, opt)) != WEB_OK) {
    uv_close((uv_handle_t *)&pub->async, pub_closed);
    return rc;
  }
  s->pub = pub;
  return 0;
}

void srv_publish_close(srv *s) {
  srv_pub *pub = s->pub;
  if (!pub) return;
  /* the tick thread has stopped: nothing publishes any more */
  s->pub = NULL;
  pub->w = NULL;
  uv_close((uv_handle_t *)&pub->async, pub_closed);
}
