/*
 * value.c — sbx_value helpers (copy, free, lookup, JSON text), the arena the shim
 * converts values into, and blobs.
 *
 * A copied value (sbx_value_dup) is one allocation: the tree first, then every string,
 * key and byte run after it, so free() of the root frees all of it and a copy can move
 * between threads as one pointer (async completions, call results).
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ arena */

struct sbx__arena_chunk {
  struct sbx__arena_chunk *next;
  size_t size;
  max_align_t data[];
};

void *sbx__arena_alloc(sbx__arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n > a->left) {
    size_t size = n > 4096 ? n : 4096;
    struct sbx__arena_chunk *c = malloc(sizeof *c + size);
    if (!c) return NULL;
    c->next = a->chunks;
    c->size = size;
    a->chunks = c;
    a->cur = (char *)c->data;
    a->left = size;
  }
  void *p = a->cur;
  a->cur += n;
  a->left -= n;
  return p;
}

void sbx__arena_release(sbx__arena *a) {
  struct sbx__arena_chunk *c = a->chunks;
  while (c) {
    struct sbx__arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ values */

sbx_value sbx_string(const char *s) {
  return sbx_string_n(s ? s : "", s ? strlen(s) : 0);
}

double sbx_value_number(const sbx_value *v) {
  return v && v->type == SBX_VAL_NUMBER ? v->u.number : NAN;
}

bool sbx_value_bool(const sbx_value *v) {
  return v && v->type == SBX_VAL_BOOL && v->u.boolean;
}

const sbx_value *sbx_value_get(const sbx_value *v, const char *key) {
  if (!v || v->type != SBX_VAL_OBJECT || !key) return NULL;
  for (size_t i = 0; i < v->len; i++)
    if (v->u.items[i].key && strcmp(v->u.items[i].key, key) == 0) return &v->u.items[i];
  return NULL;
}

static size_t align16(size_t n) {
  return (n + 15) & ~(size_t)15;
}

/* Bytes of the heap part (strings, keys, bytes, child arrays) of v, aligned. */
static size_t heap_size(const sbx_value *v) {
  size_t n = v->key ? align16(strlen(v->key) + 1) : 0;
  switch (v->type) {
    case SBX_VAL_STRING: n += align16(v->len + 1); break;
    case SBX_VAL_BYTES: n += align16(v->len ? v->len : 1); break;
    case SBX_VAL_ARRAY:
    case SBX_VAL_OBJECT:
      n += align16(v->len * sizeof(sbx_value));
      for (size_t i = 0; i < v->len; i++) n += heap_size(&v->u.items[i]);
      break;
    default: break;
  }
  return n;
}

size_t sbx__value_size(const sbx_value *v) {
  return align16(sizeof(sbx_value)) + heap_size(v);
}

void sbx__value_copy_into(const sbx_value *v, sbx_value *dst, char **heap) {
  *dst = *v;
  if (v->key) {
    size_t kl = strlen(v->key) + 1;
    memcpy(*heap, v->key, kl);
    dst->key = *heap;
    *heap += align16(kl);
  }
  switch (v->type) {
    case SBX_VAL_STRING: {
      char *s = *heap;
      if (v->len) memcpy(s, v->u.string, v->len);
      s[v->len] = 0;
      dst->u.string = s;
      *heap += align16(v->len + 1);
      break;
    }
    case SBX_VAL_BYTES: {
      unsigned char *b = (unsigned char *)*heap;
      if (v->len) memcpy(b, v->u.bytes, v->len);
      dst->u.bytes = b;
      *heap += align16(v->len ? v->len : 1);
      break;
    }
    case SBX_VAL_ARRAY:
    case SBX_VAL_OBJECT: {
      sbx_value *items = (sbx_value *)*heap;
      *heap += align16(v->len * sizeof(sbx_value));
      for (size_t i = 0; i < v->len; i++) sbx__value_copy_into(&v->u.items[i], &items[i], heap);
      dst->u.items = items;
      break;
    }
    default: break;
  }
}

sbx_value *sbx_value_dup(const sbx_value *v) {
  sbx_value undef = sbx_undefined();
  if (!v) v = &undef;
  size_t n = sbx__value_size(v);
  sbx_value *out = malloc(n);
  if (!out) return NULL;
  char *heap = (char *)out + align16(sizeof(sbx_value));
  sbx__value_copy_into(v, out, &heap);
  out->key = NULL;
  return out;
}

void sbx_value_free(sbx_value *v) {
  free(v);
}

/* ------------------------------------------------------------------ JSON text */

typedef struct jbuf {
  char *p;
  size_t len, cap;
  bool oom;
} jbuf;

static void jput(jbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void jstr(jbuf *b, const char *s, size_t n) {
  jput(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      jput(b, esc, 2);
    } else if (c == '\n') {
      jput(b, "\\n", 2);
    } else if (c == '\t') {
      jput(b, "\\t", 2);
    } else if (c == '\r') {
      jput(b, "\\r", 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      jput(b, esc, 6);
    } else {
      jput(b, (const char *)&s[i], 1);
    }
  }
  jput(b, "\"", 1);
}

static void jval(jbuf *b, const sbx_value *v) {
  char num[40];
  switch (v->type) {
    case SBX_VAL_UNDEFINED:
    case SBX_VAL_NULL: jput(b, "null", 4); break;
    case SBX_VAL_BOOL: jput(b, v->u.boolean ? "true" : "false", v->u.boolean ? 4 : 5); break;
    case SBX_VAL_NUMBER:
      if (!isfinite(v->u.number)) {
        jput(b, "null", 4);
      } else if (v->u.number == floor(v->u.number) && fabs(v->u.number) < 1e15) {
        int n = snprintf(num, sizeof num, "%.0f", v->u.number);
        jput(b, num, (size_t)n);
      } else {
        int n = snprintf(num, sizeof num, "%.17g", v->u.number);
        jput(b, num, (size_t)n);
      }
      break;
    case SBX_VAL_STRING: jstr(b, v->u.string, v->len); break;
    case SBX_VAL_BYTES: {
      int n = snprintf(num, sizeof num, "{\"bytes\":%zu}", v->len);
      jput(b, num, (size_t)n);
      break;
    }
    case SBX_VAL_ARRAY:
    case SBX_VAL_OBJECT: {
      bool obj = v->type == SBX_VAL_OBJECT;
      jput(b, obj ? "{" : "[", 1);
      for (size_t i = 0; i < v->len; i++) {
        if (i) jput(b, ",", 1);
        if (obj) {
          const char *k = v->u.items[i].key ? v->u.items[i].key : "";
          jstr(b, k, strlen(k));
          jput(b, ":", 1);
        }
        jval(b, &v->u.items[i]);
      }
      jput(b, obj ? "}" : "]", 1);
      break;
    }
  }
}

char *sbx_value_to_json(const sbx_value *v) {
  jbuf b = {0};
  sbx_value undef = sbx_undefined();
  jval(&b, v ? v : &undef);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p ? b.p : strdup("null");
}

/* ------------------------------------------------------------------ blobs */

static bool is_ascii(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] >= 0x80) return false;
  return true;
}

static void free_plain(void *data, void *ud) {
  (void)ud;
  free(data);
}

int sbx_blob_wrap(void *data, size_t len, void (*free_fn)(void *, void *), void *ud, sbx_blob **out) {
  *out = NULL;
  if (!data && len) return SBX_INVALID;
  sbx_blob *b = calloc(1, sizeof *b);
  if (!b) return SBX_NOMEM;
  b->refs = 1;
  b->data = data ? data : "";
  b->len = len;
  b->ascii = is_ascii(b->data, len);
  b->free_fn = data ? free_fn : NULL;
  b->ud = ud;
  *out = b;
  return SBX_OK;
}

int sbx_blob_new(const void *data, size_t len, sbx_blob **out) {
  *out = NULL;
  if (!data && len) return SBX_INVALID;
  char *copy = malloc(len + 1);
  if (!copy) return SBX_NOMEM;
  if (len) memcpy(copy, data, len);
  copy[len] = 0;
  int rc = sbx_blob_wrap(copy, len, free_plain, NULL, out);
  if (rc != SBX_OK) free(copy);
  return rc;
}

sbx_blob *sbx_blob_ref(sbx_blob *b) {
  if (b) __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
  return b;
}

void sbx_blob_unref(sbx_blob *b) {
  if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  if (b->free_fn) b->free_fn((void *)b->data, b->ud);
  free(b);
}

const void *sbx_blob_data(const sbx_blob *b) {
  return b ? b->data : NULL;
}
size_t sbx_blob_len(const sbx_blob *b) {
  return b ? b->len : 0;
}

/* ------------------------------------------------------------------ results */

void sbx_result_release(sbx_result *r) {
  if (!r) return;
  free(r->error);
  sbx_value_free(r->value);
  memset(r, 0, sizeof *r);
}
