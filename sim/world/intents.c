/*
 * intents.c — the parser of the default world's intent wire format (sim.h, "The intent
 * wire format"): JSON text of an array of arrays, from an isolate we do not trust.
 *
 * A strict, bounded JSON reader: depth at most 32 (deeper is a syntax error, so no
 * recursion can run away), strings decoded once into a per-intent scratch area of fixed
 * size, numbers read by hand (no locale, no floating point: a number is only useful here
 * if it is an integer of at most 15 digits), UTF-8 validated. Each intent is parsed into
 * a small tree and then converted to a dw_intent with its arguments type-checked; an
 * intent with a bad argument is kept with its error code (so the caller can report it in
 * input order) and skipped by the tick. Nothing here looks at the world's objects: what
 * an id refers to is the tick's business (apply.c).
 */
#include "world.h"

#include <stdlib.h>
#include <string.h>

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

#define MAX_NODES 192
#define SCRATCH 8192
#define MAX_DEPTH 32

typedef struct node {
  uint8_t kind;
  bool integral; /* J_NUM: an integer that fits (|v| < 10^15) */
  bool overflow; /* J_STR: did not fit the scratch area */
  bool has_nul;  /* J_STR: contained U+0000 */
  int64_t i;
  uint32_t off, len;   /* J_STR: bytes in scratch */
  int16_t first, next; /* J_ARR: first child; siblings; -1 none */
  uint16_t n;          /* J_ARR: children */
} node;

typedef struct jp {
  const char *s;
  size_t len, pos;
  bool err;
  /* the current intent */
  node nodes[MAX_NODES];
  int n_nodes;
  bool nodes_full;
  char scratch[SCRATCH];
  uint32_t scratch_n;
} jp;

static void ws(jp *p) {
  while (p->pos < p->len) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static bool lit(jp *p, const char *w) {
  size_t n = strlen(w);
  if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0) return p->err = true, false;
  p->pos += n;
  return true;
}

static int new_node(jp *p, uint8_t kind) {
  if (p->n_nodes >= MAX_NODES) {
    p->nodes_full = true;
    return -1;
  }
  node *n = &p->nodes[p->n_nodes];
  memset(n, 0, sizeof *n);
  n->kind = kind;
  n->first = n->next = -1;
  return p->n_nodes++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool hex4(jp *p, uint32_t *out) {
  if (p->len - p->pos < 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p->s[p->pos + i]);
    if (h < 0) return false;
    v = v << 4 | (uint32_t)h;
  }
  p->pos += 4;
  *out = v;
  return true;
}

static void emit_cp(jp *p, node *n, uint32_t cp) {
  char b[4];
  int k;
  if (cp < 0x80)
    b[0] = (char)cp, k = 1;
  else if (cp < 0x800)
    b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
  else if (cp < 0x10000)
    b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
  else
    b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)), b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)),
    b[3] = (char)(0x80 | (cp & 0x3f)), k = 4;
  if (cp == 0) n->has_nul = true;
  if (n->overflow || p->scratch_n + (uint32_t)k > SCRATCH) {
    n->overflow = true;
    return;
  }
  memcpy(p->scratch + p->scratch_n, b, (size_t)k);
  p->scratch_n += (uint32_t)k;
  n->len += (uint32_t)k;
}

/* After the opening quote. Decodes into scratch (if n) or only checks (if !n). */
static void string(jp *p, node *n) {
  node dummy;
  if (!n) {
    memset(&dummy, 0, sizeof dummy);
    dummy.overflow = true;
    n = &dummy;
  } else {
    n->off = p->scratch_n;
  }
  for (;;) {
    if (p->pos >= p->len) {
      p->err = true;
      return;
    }
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c == '"') {
      p->pos++;
      return;
    }
    if (c < 0x20) {
      p->err = true;
      return;
    }
    if (c == '\\') {
      p->pos++;
      if (p->pos >= p->len) {
        p->err = true;
        return;
      }
      char e = p->s[p->pos++];
      uint32_t cp;
      switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'n': cp = 10; break;
        case 'r': cp = 13; break;
        case 't': cp = 9; break;
        case 'u':
          if (!hex4(p, &cp)) {
            p->err = true;
            return;
          }
          if (cp >= 0xd800 && cp <= 0xdbff && p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
            size_t save = p->pos;
            uint32_t lo;
            p->pos += 2;
            if (hex4(p, &lo) && lo >= 0xdc00 && lo <= 0xdfff)
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            else
              p->pos = save;
          }
          /* A lone surrogate (JSON.stringify writes them escaped) becomes U+FFFD. */
          if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
          break;
        default: p->err = true; return;
      }
      emit_cp(p, n, cp);
      continue;
    }
    /* Raw UTF-8: validate one sequence. */
    uint32_t cp;
    int extra;
    if (c < 0x80)
      cp = c, extra = 0;
    else if ((c & 0xe0) == 0xc0)
      cp = c & 0x1f, extra = 1;
    else if ((c & 0xf0) == 0xe0)
      cp = c & 0x0f, extra = 2;
    else if ((c & 0xf8) == 0xf0)
      cp = c & 0x07, extra = 3;
    else {
      p->err = true;
      return;
    }
    if (p->len - p->pos <= (size_t)extra) {
      p->err = true;
      return;
    }
    for (int k = 1; k <= extra; k++) {
      unsigned char cc = (unsigned char)p->s[p->pos + (size_t)k];
      if ((cc & 0xc0) != 0x80) {
        p->err = true;
        return;
      }
      cp = cp << 6 | (cc & 0x3f);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      p->err = true;
      return;
    }
    p->pos += (size_t)extra + 1;
    emit_cp(p, n, cp);
  }
}

/* JSON number grammar; integral when it has no exponent, a zero fraction at most, and
 * fewer than 16 integer digits. */
static void number(jp *p, node *n) {
  size_t start = p->pos;
  bool neg = false;
  if (p->pos < p->len && p->s[p->pos] == '-') neg = true, p->pos++;
  if (p->pos >= p->len) {
    p->err = true;
    return;
  }
  int64_t v = 0;
  int digits = 0;
  if (p->s[p->pos] == '0') {
    p->pos++;
    digits = 1;
  } else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9') {
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
      if (digits < 15) v = v * 10 + (p->s[p->pos] - '0');
      digits++;
      p->pos++;
    }
  } else {
    p->err = true;
    return;
  }
  bool integral = digits <= 15;
  if (p->pos < p->len && p->s[p->pos] == '.') {
    p->pos++;
    size_t f = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
      if (p->s[p->pos] != '0') integral = false;
      p->pos++;
    }
    if (p->pos == f) {
      p->err = true;
      return;
    }
  }
  if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
    p->pos++;
    if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
    size_t e = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    if (p->pos == e) {
      p->err = true;
      return;
    }
    integral = false;
  }
  (void)start;
  if (n) {
    n->integral = integral;
    n->i = neg ? -v : v;
  }
}

/* Parses one value. want_node: record it in the tree (index returned, -1 otherwise). */
static int value(jp *p, int depth, bool want_node) {
  if (depth > MAX_DEPTH) {
    p->err = true;
    return -1;
  }
  ws(p);
  if (p->pos >= p->len) {
    p->err = true;
    return -1;
  }
  char c = p->s[p->pos];
  int id = -1;
  switch (c) {
    case '[': {
      p->pos++;
      if (want_node) id = new_node(p, J_ARR);
      int last = -1;
      ws(p);
      if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return id;
      }
      for (;;) {
        int child = value(p, depth + 1, id >= 0);
        if (p->err) return -1;
        if (id >= 0) {
          if (child >= 0) {
            if (last >= 0)
              p->nodes[last].next = (int16_t)child;
            else
              p->nodes[id].first = (int16_t)child;
            last = child;
          }
          if (p->nodes[id].n < 60000) p->nodes[id].n++;
        }
        ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
          p->pos++;
          continue;
        }
        if (p->pos < p->len && p->s[p->pos] == ']') {
          p->pos++;
          return id;
        }
        p->err = true;
        return -1;
      }
    }
    case '{': {
      /* Objects are valid JSON but never a valid argument: checked and dropped. */
      p->pos++;
      if (want_node) id = new_node(p, J_OBJ);
      ws(p);
      if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return id;
      }
      for (;;) {
        ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"') {
          p->err = true;
          return -1;
        }
        p->pos++;
        string(p, NULL);
        if (p->err) return -1;
        ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') {
          p->err = true;
          return -1;
        }
        p->pos++;
        value(p, depth + 1, false);
        if (p->err) return -1;
        ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
          p->pos++;
          continue;
        }
        if (p->pos < p->len && p->s[p->pos] == '}') {
          p->pos++;
          return id;
        }
        p->err = true;
        return -1;
      }
    }
    case '"':
      p->pos++;
      if (want_node) id = new_node(p, J_STR);
      string(p, id >= 0 ? &p->nodes[id] : NULL);
      return p->err ? -1 : id;
    case 't':
      if (lit(p, "true") && want_node) id = new_node(p, J_TRUE);
      return id;
    case 'f':
      if (lit(p, "false") && want_node) id = new_node(p, J_FALSE);
      return id;
    case 'n':
      if (lit(p, "null") && want_node) id = new_node(p, J_NULL);
      return id;
    default:
      if (want_node) id = new_node(p, J_NUM);
      number(p, id >= 0 ? &p->nodes[id] : NULL);
      return p->err ? -1 : id;
  }
}

/* ------------------------------------------------------------------ conversion */

static const node *child(const jp *p, const node *arr, int k) {
  int c = arr->first;
  while (c >= 0 && k-- > 0) c = p->nodes[c].next;
  return c >= 0 ? &p->nodes[c] : NULL;
}

static bool as_int(const node *n, int64_t lo, int64_t hi, int32_t *out) {
  if (!n || n->kind != J_NUM || !n->integral || n->i < lo || n->i > hi) return false;
  *out = (int32_t)n->i;
  return true;
}

static bool as_str(const node *n, size_t max, const jp *p, const char **s, size_t *len) {
  if (!n || n->kind != J_STR || n->overflow || n->len > max) return false;
  *s = p->scratch + n->off;
  *len = n->len;
  return true;
}

static uint64_t as_id(const jp *p, const node *n) {
  const char *s;
  size_t len;
  return as_str(n, 32, p, &s, &len) ? dw_id_parse(s, len) : 0;
}

/* Amount: null (-1: all) or an integer >= 0. Large amounts saturate: they are then more
 * than anyone has, which the rules refuse with ERR_NOT_ENOUGH_RESOURCES. */
static bool as_amount(const node *n, int32_t *out) {
  if (n && n->kind == J_NULL) {
    *out = -1;
    return true;
  }
  if (!n || n->kind != J_NUM || !n->integral || n->i < 0) return false;
  *out = n->i > INT32_MAX ? INT32_MAX : (int32_t)n->i;
  return true;
}

/* Screeps' RESOURCES_ALL as far as the JS constants carry it: energy is the only one this
 * world has; the others are valid names nobody holds. */
static int resource(const jp *p, const node *n) {
  static const char *const others[] = {"power", "ops", "H", "O", "U", "L", "K", "Z", "X", "G"};
  const char *s;
  size_t len;
  if (!as_str(n, 16, p, &s, &len)) return -1;
  if (len == 6 && memcmp(s, "energy", 6) == 0) return 0;
  for (size_t i = 0; i < sizeof others / sizeof *others; i++)
    if (strlen(others[i]) == len && memcmp(others[i], s, len) == 0) return 1;
  return -1;
}

static void set_str(dw_intent *it, const char *s, size_t len) {
  memcpy(it->str, s, len);
  it->str[len] = 0;
  it->str_len = (uint16_t)len;
}

/* The say message: at most 10 UTF-16 units, cut at a code point boundary. */
static void set_say(dw_intent *it, const char *s, size_t len) {
  size_t i = 0, units = 0;
  while (i < len) {
    unsigned char c = (unsigned char)s[i];
    size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
    size_t u = k == 4 ? 2 : 1;
    if (units + u > DW_SAY_UNITS || i + k > DW_SAY_MAX) break;
    units += u;
    i += k;
  }
  set_str(it, s, i);
}

static int convert(const jp *p, const dw_world *w, int root, dw_intent *it, dw_intent_list *l) {
  if (root < 0 || p->nodes_full) return DW_ERR_INVALID_ARGS;
  const node *a = &p->nodes[root];
  if (a->kind != J_ARR || a->n < 2) return DW_ERR_INVALID_ARGS;
  int32_t code;
  if (!as_int(child(p, a, 0), 1, SIM_DW_INTENT_CODES - 1, &code)) return DW_ERR_INVALID_ARGS;
  it->code = (uint8_t)code;
  const node *subj = child(p, a, 1);
  int argc = a->n - 2;
  const char *s;
  size_t len;
  if (code == SIM_DW_CREATE_SITE) {
    uint32_t room;
    if (!as_str(subj, DW_ROOM_NAME_MAX, p, &s, &len) || dw_room_lookup(w, s, len, &room) != SIM_OK)
      return DW_ERR_INVALID_ARGS;
    it->room = room;
  } else {
    it->subject = as_id(p, subj);
    if (!it->subject) return DW_ERR_INVALID_ARGS;
  }
  const node *a0 = child(p, a, 2), *a1 = child(p, a, 3), *a2 = child(p, a, 4), *a3 = child(p, a, 5);
  switch (code) {
    case SIM_DW_MOVE:
      if (argc != 1 || !as_int(a0, 1, 8, &it->a)) return DW_ERR_INVALID_ARGS;
      return DW_OK;
    case SIM_DW_HARVEST:
    case SIM_DW_PICKUP:
    case SIM_DW_BUILD:
    case SIM_DW_REPAIR:
    case SIM_DW_UPGRADE:
      if (argc != 1 || !(it->target = as_id(p, a0))) return DW_ERR_INVALID_ARGS;
      return DW_OK;
    case SIM_DW_TRANSFER:
    case SIM_DW_WITHDRAW: {
      if (argc != 3 || !(it->target = as_id(p, a0)) || !as_amount(a2, &it->a)) return DW_ERR_INVALID_ARGS;
      int r = resource(p, a1);
      if (r < 0) return DW_ERR_INVALID_ARGS;
      it->rtype = (uint8_t)r;
      return DW_OK;
    }
    case SIM_DW_DROP: {
      if (argc != 2 || !as_amount(a1, &it->a)) return DW_ERR_INVALID_ARGS;
      int r = resource(p, a0);
      if (r < 0) return DW_ERR_INVALID_ARGS;
      it->rtype = (uint8_t)r;
      return DW_OK;
    }
    case SIM_DW_SAY:
      if (argc != 2 || !as_str(a0, 4096, p, &s, &len)) return DW_ERR_INVALID_ARGS;
      if (a1->kind != J_TRUE && a1->kind != J_FALSE && a1->kind != J_NULL) return DW_ERR_INVALID_ARGS;
      if (a0->has_nul) return DW_ERR_INVALID_ARGS;
      set_say(it, s, len);
      it->flag = a1->kind == J_TRUE;
      return DW_OK;
    case SIM_DW_SUICIDE:
    case SIM_DW_REMOVE_SITE:
    case SIM_DW_DESTROY:
    case SIM_DW_CANCEL_SPAWN: return argc == 0 ? DW_OK : DW_ERR_INVALID_ARGS;
    case SIM_DW_SPAWN: {
      if (argc != 3 || !as_str(a0, DW_NAME_MAX, p, &s, &len) || len == 0 || a0->has_nul) return DW_ERR_INVALID_ARGS;
      set_str(it, s, len);
      if (a1->kind != J_ARR || a1->n < 1 || a1->n > DW_MAX_CREEP_SIZE) return DW_ERR_INVALID_ARGS;
      for (int k = 0; k < a1->n; k++) {
        const node *e = child(p, a1, k);
        int part = as_str(e, 16, p, &s, &len) ? dw_part_from_name(s, len) : -1;
        if (part < 0) return DW_ERR_INVALID_ARGS;
        it->body[it->n_body++] = (uint8_t)part;
      }
      if (a2->kind == J_NULL) return DW_OK;
      if (a2->kind != J_ARR || a2->n > 100) return DW_ERR_INVALID_ARGS;
      if (l->ids_n + a2->n > l->ids_cap) {
        size_t cap = l->ids_cap ? l->ids_cap * 2 : 256;
        while (cap < l->ids_n + a2->n) cap *= 2;
        uint64_t *ids = realloc(l->ids, cap * sizeof *ids);
        if (!ids) return SIM_NOMEM;
        l->ids = ids;
        l->ids_cap = cap;
      }
      it->has_energy = true;
      it->energy_off = (uint32_t)l->ids_n;
      for (int k = 0; k < a2->n; k++) {
        uint64_t id = as_id(p, child(p, a2, k));
        if (!id) return DW_ERR_INVALID_ARGS;
        l->ids[l->ids_n + (size_t)k] = id;
      }
      it->n_energy = a2->n;
      l->ids_n += a2->n;
      return DW_OK;
    }
    case SIM_DW_CREATE_SITE: {
      if (argc != 3 && argc != 4) return DW_ERR_INVALID_ARGS;
      if (!as_int(a0, 0, 49, &it->a) || !as_int(a1, 0, 49, &it->b)) return DW_ERR_INVALID_ARGS;
      int t = as_str(a2, 32, p, &s, &len) ? dw_type_from_name(s, len) : DW_T_NONE;
      if (!dw_is_structure_type(t)) return DW_ERR_INVALID_ARGS;
      it->stype = (uint8_t)t;
      if (argc == 4 && a3->kind != J_NULL) {
        if (!as_str(a3, DW_NAME_MAX, p, &s, &len) || len == 0 || a3->has_nul) return DW_ERR_INVALID_ARGS;
        set_str(it, s, len);
      }
      return DW_OK;
    }
    default: return DW_ERR_INVALID_ARGS;
  }
}

static int push(dw_intent_list *l) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    dw_intent *v = realloc(l->v, cap * sizeof *v);
    if (!v) return SIM_NOMEM;
    l->v = v;
    l->cap = cap;
  }
  memset(&l->v[l->n], 0, sizeof l->v[l->n]);
  l->n++;
  return SIM_OK;
}

int dw_parse_intents(const dw_world *w, const char *data, size_t len, uint64_t player, uint32_t batch,
                     dw_intent_list *l) {
  if (len > SIM_DW_INTENTS_MAX_BYTES) return SIM_TOOBIG;
  if (len == 0) return SIM_OK; /* no intents at all */
  jp *p = malloc(sizeof *p);
  if (!p) return SIM_NOMEM;
  p->s = data;
  p->len = len;
  p->pos = 0;
  p->err = false;
  int status = SIM_OK;
  ws(p);
  if (p->pos >= p->len || p->s[p->pos] != '[') {
    free(p);
    return SIM_CORRUPT;
  }
  p->pos++;
  ws(p);
  uint32_t seq = 0;
  if (p->pos < p->len && p->s[p->pos] == ']') {
    p->pos++;
  } else {
    for (;;) {
      if (seq >= SIM_DW_INTENTS_MAX) {
        status = SIM_TOOBIG;
        break;
      }
      p->n_nodes = 0;
      p->nodes_full = false;
      p->scratch_n = 0;
      int root = value(p, 2, true);
      if (p->err) {
        status = SIM_CORRUPT;
        break;
      }
      if (push(l) != SIM_OK) {
        free(p);
        return SIM_NOMEM;
      }
      dw_intent *it = &l->v[l->n - 1];
      it->seq = seq++;
      it->batch = batch;
      it->player = player;
      int rc = convert(p, w, root, it, l);
      if (rc == SIM_NOMEM) {
        free(p);
        return SIM_NOMEM;
      }
      it->rc = rc;
      ws(p);
      if (p->pos < p->len && p->s[p->pos] == ',') {
        p->pos++;
        continue;
      }
      if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        break;
      }
      status = SIM_CORRUPT;
      break;
    }
  }
  if (status == SIM_OK) {
    ws(p);
    if (p->pos != p->len) status = SIM_CORRUPT;
  }
  free(p);
  return status;
}

void dw_intent_list_release(dw_intent_list *l) {
  free(l->v);
  free(l->ids);
  memset(l, 0, sizeof *l);
}
