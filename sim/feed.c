/*
 * feed.c — the room feed for websocket subscribers (room:<NAME>) and the
 * /api/game/room-objects answer, for any game: the game renders a room's objects as JSON
 * text (sim_game.room_objects); this file keeps the text subscribers last got and turns
 * the next one into a diff in the shape Screeps clients merge: changed keys per object,
 * nested objects diffed the same way, null for removed keys and objects.
 *
 * It works on the text itself, never building a tree: a small scanner walks JSON values
 * (strings with escapes, nesting, literals) and compares members as byte ranges, so a
 * diff costs a pass over the two texts, and unchanged objects cost a memcmp. The text is
 * the game's own output; the scanner still checks every bound, and text it cannot read
 * is SIM_CORRUPT (a bug of the game, not of the feed).
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ scanning */

typedef struct span {
  const char *p;
  size_t n;
} span;

static bool span_eq(span a, span b) {
  return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

/* End of the value starting at s[i] (one past it), or 0 on malformed text. */
static size_t skip_value(const char *s, size_t n, size_t i) {
  if (i >= n) return 0;
  if (s[i] == '"') {
    for (i++; i < n; i++) {
      if (s[i] == '\\')
        i++;
      else if (s[i] == '"')
        return i + 1;
    }
    return 0;
  }
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (; i < n; i++) {
      char c = s[i];
      if (c == '"') {
        size_t e = skip_value(s, n, i);
        if (!e) return 0;
        i = e - 1;
      } else if (c == '{' || c == '[') {
        if (++depth > 64) return 0;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return 0;
  }
  size_t start = i;
  while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n') i++;
  return i > start ? i : 0;
}

/* Members of the object text `obj` ({...}): calls back with key (with its quotes) and
 * value. Returns false on malformed text. */
typedef struct member {
  span key, value;
} member;

typedef struct members {
  member *v;
  size_t n, cap;
} members;

static bool scan_object(span obj, members *out) {
  out->n = 0;
  const char *s = obj.p;
  size_t n = obj.n, i = skip_ws(s, n, 0);
  if (i >= n || s[i] != '{') return false;
  i = skip_ws(s, n, i + 1);
  if (i < n && s[i] == '}') return true;
  for (;;) {
    if (i >= n || s[i] != '"') return false;
    size_t ke = skip_value(s, n, i);
    if (!ke) return false;
    span key = {s + i, ke - i};
    i = skip_ws(s, n, ke);
    if (i >= n || s[i] != ':') return false;
    i = skip_ws(s, n, i + 1);
    size_t ve = skip_value(s, n, i);
    if (!ve) return false;
    if (out->n == out->cap) {
      size_t cap = out->cap ? out->cap * 2 : 32;
      member *v = realloc(out->v, cap * sizeof *v);
      if (!v) return false;
      out->v = v;
      out->cap = cap;
    }
    out->v[out->n++] = (member){key, {s + i, ve - i}};
    i = skip_ws(s, n, ve);
    if (i < n && s[i] == ',') {
      i = skip_ws(s, n, i + 1);
      continue;
    }
    return i < n && s[i] == '}';
  }
}

/* The member named key; looks at index `hint` first (two renderings of one room list
 * objects in the same order, so this is usually a hit). */
static const member *find_at(const members *m, span key, size_t hint) {
  if (hint < m->n && span_eq(m->v[hint].key, key)) return &m->v[hint];
  for (size_t i = 0; i < m->n; i++)
    if (span_eq(m->v[i].key, key)) return &m->v[i];
  return NULL;
}

static const member *find(const members *m, span key) {
  return find_at(m, key, 0);
}

/* ------------------------------------------------------------------ the feed */

struct sim_feed {
  sim_buf base;        /* the room_objects text subscribers have */
  span objects, users; /* into base */
  members index;       /* members of objects, into base */
  bool has_base;
};

int sim_feed_new(sim_feed **out) {
  if (!out) return SIM_INVALID;
  *out = calloc(1, sizeof **out);
  if (!*out) return SIM_NOMEM;
  sim_buf_init(&(*out)->base);
  return SIM_OK;
}

void sim_feed_free(sim_feed *f) {
  if (!f) return;
  sim_buf_release(&f->base);
  free(f->index.v);
  free(f);
}

/* The room's objects text into b, and its "objects" and "users" members. */
static int current(const sim_world *w, size_t room, sim_buf *b, span *objects, span *users) {
  sim_buf_clear(b);
  int rc = sim_world_room_objects(w, room, b);
  if (rc != SIM_OK) return rc;
  members top = {0};
  span all = {b->data ? b->data : "", b->len};
  bool ok = scan_object(all, &top);
  const member *o = ok ? find(&top, (span){"\"objects\"", 9}) : NULL,
               *u = ok ? find(&top, (span){"\"users\"", 7}) : NULL;
  if (o && o->value.n && o->value.p[0] == '{') {
    *objects = o->value;
    *users = u ? u->value : (span){"{}", 2};
  } else {
    ok = false;
  }
  free(top.v);
  return ok ? SIM_OK : SIM_CORRUPT;
}

static int put(sim_buf *out, span s) {
  return sim_buf_append(out, s.p, s.n);
}
static int lit(sim_buf *out, const char *s) {
  return sim_buf_append(out, s, strlen(s));
}

static int game_time(const sim_world *w, sim_buf *out) {
  char t[32];
  unsigned long long v = (unsigned long long)sim_world_time(w);
  int i = 32;
  do {
    t[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return sim_buf_append(out, t + i, (size_t)(32 - i));
}

static int adopt(sim_feed *f, sim_buf *cur, span objects, span users) {
  /* The current text becomes the baseline: swap buffers, re-point the spans. */
  size_t oo = (size_t)(objects.p - cur->data), uo = (size_t)(users.p - cur->data);
  bool users_inside = users.p >= cur->data && users.p < cur->data + cur->len;
  sim_buf tmp = f->base;
  f->base = *cur;
  *cur = tmp;
  f->objects = (span){f->base.data + oo, objects.n};
  f->users = users_inside ? (span){f->base.data + uo, users.n} : (span){"{}", 2};
  f->has_base = scan_object(f->objects, &f->index);
  return f->has_base ? SIM_OK : SIM_CORRUPT;
}

int sim_feed_snapshot(sim_feed *f, const sim_world *w, size_t room, sim_buf *out) {
  if (!f || !w || !out) return SIM_INVALID;
  sim_buf cur;
  sim_buf_init(&cur);
  span objects, users;
  int rc = current(w, room, &cur, &objects, &users);
  if (rc == SIM_OK) rc = lit(out, "{\"objects\":");
  if (rc == SIM_OK) rc = put(out, objects);
  if (rc == SIM_OK) rc = lit(out, ",\"users\":");
  if (rc == SIM_OK) rc = put(out, users);
  if (rc == SIM_OK) rc = lit(out, ",\"gameTime\":");
  if (rc == SIM_OK) rc = game_time(w, out);
  if (rc == SIM_OK) rc = lit(out, ",\"info\":{\"mode\":\"world\"}}");
  if (rc == SIM_OK) rc = adopt(f, &cur, objects, users);
  sim_buf_release(&cur);
  return rc;
}

/* Appends the diff of object texts a -> b ("{...}" only when something differs); sets
 * *any. */
static int diff_object(span a, span b, sim_buf *out, bool *any, int depth) {
  members ma = {0}, mb = {0};
  int rc = SIM_OK;
  *any = false;
  if (depth > 16 || !scan_object(a, &ma) || !scan_object(b, &mb)) {
    rc = SIM_CORRUPT;
    goto done;
  }
  size_t mark = out->len;
  bool first = true;
#define SEP() (first ? (first = false, lit(out, "{")) : lit(out, ","))
  for (size_t i = 0; rc == SIM_OK && i < mb.n; i++) {
    const member *old = find(&ma, mb.v[i].key);
    if (old && span_eq(old->value, mb.v[i].value)) continue;
    if (old && old->value.p[0] == '{' && mb.v[i].value.p[0] == '{') {
      size_t before = out->len;
      if ((rc = SEP()) != SIM_OK || (rc = put(out, mb.v[i].key)) != SIM_OK || (rc = lit(out, ":")) != SIM_OK) break;
      bool sub = false;
      if ((rc = diff_object(old->value, mb.v[i].value, out, &sub, depth + 1)) != SIM_OK) break;
      if (!sub) { /* equal after all (whitespace): take it back */
        out->len = before;
        out->data[out->len] = 0;
        first = out->len == mark;
      }
      continue;
    }
    if ((rc = SEP()) == SIM_OK && (rc = put(out, mb.v[i].key)) == SIM_OK && (rc = lit(out, ":")) == SIM_OK)
      rc = put(out, mb.v[i].value);
  }
  for (size_t i = 0; rc == SIM_OK && i < ma.n; i++) {
    if (find(&mb, ma.v[i].key)) continue;
    if ((rc = SEP()) == SIM_OK && (rc = put(out, ma.v[i].key)) == SIM_OK) rc = lit(out, ":null");
  }
#undef SEP
  if (rc == SIM_OK && !first) {
    rc = lit(out, "}");
    *any = true;
  }
done:
  free(ma.v);
  free(mb.v);
  return rc;
}

int sim_feed_diff(sim_feed *f, const sim_world *w, size_t room, sim_buf *out, bool *changed) {
  if (!f || !w || !out) return SIM_INVALID;
  if (!f->has_base) {
    if (changed) *changed = true;
    return sim_feed_snapshot(f, w, room, out);
  }
  sim_buf cur;
  sim_buf_init(&cur);
  span objects, users;
  members now = {0};
  bool any_change = false;
  int rc = current(w, room, &cur, &objects, &users);
  if (rc == SIM_OK && !scan_object(objects, &now)) rc = SIM_CORRUPT;
  if (rc == SIM_OK) rc = lit(out, "{\"objects\":{");
  bool first = true;
  size_t hint = 0;
  for (size_t i = 0; rc == SIM_OK && i < now.n; i++) {
    const member *old = find_at(&f->index, now.v[i].key, hint);
    if (old) hint = (size_t)(old - f->index.v) + 1;
    if (old && span_eq(old->value, now.v[i].value)) continue;
    size_t before = out->len;
    if ((rc = lit(out, first ? "" : ",")) != SIM_OK || (rc = put(out, now.v[i].key)) != SIM_OK ||
        (rc = lit(out, ":")) != SIM_OK)
      break;
    if (!old) {
      rc = put(out, now.v[i].value);
    } else {
      bool sub = false;
      rc = diff_object(old->value, now.v[i].value, out, &sub, 0);
      if (rc == SIM_OK && !sub) {
        out->len = before;
        out->data[out->len] = 0;
        continue;
      }
    }
    first = false;
    any_change = true;
  }
  hint = 0;
  for (size_t i = 0; rc == SIM_OK && i < f->index.n; i++) {
    const member *still = find_at(&now, f->index.v[i].key, hint);
    if (still) {
      hint = (size_t)(still - now.v) + 1;
      continue;
    }
    if ((rc = lit(out, first ? "" : ",")) == SIM_OK && (rc = put(out, f->index.v[i].key)) == SIM_OK)
      rc = lit(out, ":null");
    first = false;
    any_change = true;
  }
  if (rc == SIM_OK) rc = lit(out, "}");
  if (rc == SIM_OK && !span_eq(users, f->users)) {
    if ((rc = lit(out, ",\"users\":")) == SIM_OK) rc = put(out, users);
  }
  if (rc == SIM_OK) rc = lit(out, ",\"gameTime\":");
  if (rc == SIM_OK) rc = game_time(w, out);
  if (rc == SIM_OK) rc = lit(out, "}");
  if (rc == SIM_OK) rc = adopt(f, &cur, objects, users);
  if (changed) *changed = any_change;
  free(now.v);
  sim_buf_release(&cur);
  return rc;
}

int sim_room_objects_api(const sim_world *w, size_t room, sim_buf *out) {
  if (!w || !out) return SIM_INVALID;
  sim_buf cur;
  sim_buf_init(&cur);
  span objects, users;
  members m = {0};
  int rc = current(w, room, &cur, &objects, &users);
  if (rc == SIM_OK && !scan_object(objects, &m)) rc = SIM_CORRUPT;
  if (rc == SIM_OK) rc = lit(out, "{\"ok\":1,\"objects\":[");
  for (size_t i = 0; rc == SIM_OK && i < m.n; i++) {
    if (i) rc = lit(out, ",");
    if (rc == SIM_OK) rc = put(out, m.v[i].value);
  }
  if (rc == SIM_OK) rc = lit(out, "],\"users\":");
  if (rc == SIM_OK) rc = put(out, users);
  if (rc == SIM_OK) rc = lit(out, "}");
  free(m.v);
  sim_buf_release(&cur);
  return rc;
}
