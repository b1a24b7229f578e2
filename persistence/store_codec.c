/*
 * store_codec.c — encoders and decoders of the store's binary records.
 *
 * Pure functions over byte buffers: no LMDB, no allocation, no I/O. Bytes read back from
 * the database are treated as untrusted: every read is bounds-checked, every string must
 * fit its destination array with room for the NUL, and trailing bytes are an error, so a
 * damaged record yields STORE_CORRUPT and never an out-of-bounds read.
 *
 * Why a binary form rather than JSON: records are read on every tick (CPU state) and at
 * every login (users); a fixed little-endian layout costs a few loads to decode and
 * has no parser to harden. Each record starts with a version byte so a later schema can
 * read old records and rewrite them lazily.
 */
#include "store_int.h"

#include <string.h>

#define STORE__USER_REC_V1 1
#define STORE__CPU_REC_V1 1

void store__be64_put(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (unsigned char)(v & 0xff);
    v >>= 8;
  }
}

uint64_t store__be64_get(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

void store__le32_put(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t store__le32_get(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

void store__le64_put(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t store__le64_get(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

int store__username_fold(const char *name, char *out) {
  size_t n = 0;
  if (!name) return -1;
  for (; name[n]; n++) {
    if (n >= STORE_USERNAME_MAX - 1) return -1;
    char c = name[n];
    out[n] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  if (n == 0) return -1;
  out[n] = '\0';
  return (int)n;
}

int store__email_fold(const char *email, char *out) {
  size_t n = 0;
  if (!email) return -1;
  for (; email[n]; n++) {
    if (n >= STORE_EMAIL_MAX - 1) return -1;
    char c = email[n];
    out[n] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  if (n == 0) return -1;
  out[n] = '\0';
  return (int)n;
}

/* ---- writer / reader over a byte buffer ---- */

typedef struct {
  unsigned char *p;
  size_t n;
} store__w;

static void w_u8(store__w *w, unsigned v) {
  w->p[w->n++] = (unsigned char)v;
}
static void w_u32(store__w *w, uint32_t v) {
  store__le32_put(w->p + w->n, v);
  w->n += 4;
}
static void w_u64(store__w *w, uint64_t v) {
  store__le64_put(w->p + w->n, v);
  w->n += 8;
}
static void w_str(store__w *w, const char *s) {
  size_t len = strlen(s); /* validated: < 65536 and fits the record */
  w->p[w->n++] = (unsigned char)(len & 0xff);
  w->p[w->n++] = (unsigned char)(len >> 8);
  memcpy(w->p + w->n, s, len);
  w->n += len;
}

typedef struct {
  const unsigned char *p;
  size_t n, off;
  const char *why; /* first failure */
} store__r;

static bool r_need(store__r *r, size_t k, const char *what) {
  if (r->why) return false;
  if (r->n - r->off < k) {
    r->why = what;
    return false;
  }
  return true;
}
static unsigned r_u8(store__r *r, const char *what) {
  if (!r_need(r, 1, what)) return 0;
  return r->p[r->off++];
}
static uint32_t r_u32(store__r *r, const char *what) {
  if (!r_need(r, 4, what)) return 0;
  uint32_t v = store__le32_get(r->p + r->off);
  r->off += 4;
  return v;
}
static uint64_t r_u64(store__r *r, const char *what) {
  if (!r_need(r, 8, what)) return 0;
  uint64_t v = store__le64_get(r->p + r->off);
  r->off += 8;
  return v;
}
/* Reads a length-prefixed string into dst[cap], NUL-terminated. Rejects strings that do
 * not fit or hold a NUL byte. */
static void r_str(store__r *r, char *dst, size_t cap, const char *what) {
  dst[0] = '\0';
  if (!r_need(r, 2, what)) return;
  size_t len = (size_t)r->p[r->off] | ((size_t)r->p[r->off + 1] << 8);
  r->off += 2;
  if (len >= cap) {
    r->why = what;
    return;
  }
  if (!r_need(r, len, what)) return;
  if (memchr(r->p + r->off, '\0', len)) {
    r->why = what;
    return;
  }
  memcpy(dst, r->p + r->off, len);
  dst[len] = '\0';
  r->off += len;
}

/* ---- user ---- */

static bool str_in(const char *s, size_t cap) {
  return memchr(s, '\0', cap) != NULL;
}

int store__user_validate(const store_user *u, const char **why) {
  if (!u) return *why = "user is NULL", STORE_INVALID;
  if (u->id == 0) return *why = "user id 0 is reserved", STORE_INVALID;
  if (!str_in(u->username, sizeof u->username))
    return *why = "username not NUL-terminated within 64 bytes", STORE_INVALID;
  if (u->username[0] == '\0') return *why = "username is empty", STORE_INVALID;
  if (!str_in(u->email, sizeof u->email)) return *why = "email not NUL-terminated within its array", STORE_INVALID;
  if (!str_in(u->password_hash, sizeof u->password_hash))
    return *why = "password_hash not NUL-terminated within its array", STORE_INVALID;
  if (!str_in(u->active_branch, sizeof u->active_branch))
    return *why = "active_branch not NUL-terminated within its array", STORE_INVALID;
  return STORE_OK;
}

/* v1: u8 version, u64 id, u32 cpu_limit, u32 flags, u64 created_ms,
 *     str username, str email, str password_hash, str active_branch
 *     (str = u16 length + bytes, no NUL). */
size_t store__user_encode(const store_user *u, unsigned char *buf) {
  store__w w = {buf, 0};
  w_u8(&w, STORE__USER_REC_V1);
  w_u64(&w, u->id);
  w_u32(&w, (uint32_t)u->cpu_limit);
  w_u32(&w, u->flags);
  w_u64(&w, (uint64_t)u->created_ms);
  w_str(&w, u->username);
  w_str(&w, u->email);
  w_str(&w, u->password_hash);
  w_str(&w, u->active_branch);
  return w.n;
}

int store__user_decode(const void *data, size_t len, store_user *out, const char **why) {
  store__r r = {data, len, 0, NULL};
  memset(out, 0, sizeof *out);
  unsigned ver = r_u8(&r, "empty record");
  if (!r.why && ver != STORE__USER_REC_V1) {
    *why = "unknown user record version";
    return STORE_CORRUPT;
  }
  out->id = r_u64(&r, "truncated id");
  out->cpu_limit = (int32_t)r_u32(&r, "truncated cpu_limit");
  out->flags = r_u32(&r, "truncated flags");
  out->created_ms = (int64_t)r_u64(&r, "truncated created_ms");
  r_str(&r, out->username, sizeof out->username, "bad username");
  r_str(&r, out->email, sizeof out->email, "bad email");
  r_str(&r, out->password_hash, sizeof out->password_hash, "bad password_hash");
  r_str(&r, out->active_branch, sizeof out->active_branch, "bad active_branch");
  if (!r.why && r.off != r.n) r.why = "trailing bytes";
  if (!r.why && (out->id == 0 || out->username[0] == '\0')) r.why = "id 0 or empty username";
  if (r.why) {
    *why = r.why;
    return STORE_CORRUPT;
  }
  return STORE_OK;
}

/* ---- cpu ---- */

/* v1: u8 version, u32 limit, u64 bucket, u32 last_used_ms, u64 last_tick (25 bytes). */
void store__cpu_encode(const store_cpu *c, unsigned char *buf) {
  store__w w = {buf, 0};
  w_u8(&w, STORE__CPU_REC_V1);
  w_u32(&w, (uint32_t)c->limit);
  w_u64(&w, (uint64_t)c->bucket);
  w_u32(&w, (uint32_t)c->last_used_ms);
  w_u64(&w, c->last_tick);
}

int store__cpu_decode(const void *data, size_t len, store_cpu *out, const char **why) {
  memset(out, 0, sizeof *out);
  if (len != STORE__CPU_REC_SIZE) {
    *why = "cpu record has the wrong size";
    return STORE_CORRUPT;
  }
  store__r r = {data, len, 0, NULL};
  if (r_u8(&r, "empty") != STORE__CPU_REC_V1) {
    *why = "unknown cpu record version";
    return STORE_CORRUPT;
  }
  out->limit = (int32_t)r_u32(&r, "limit");
  out->bucket = (int64_t)r_u64(&r, "bucket");
  out->last_used_ms = (int32_t)r_u32(&r, "last_used_ms");
  out->last_tick = r_u64(&r, "last_tick");
  return STORE_OK;
}
