/*
 * store_player.c — the player records of schema 2: branch records, RawMemory segments,
 * the console queue, long-lived token hashes, and server settings.
 *
 * Like store_data.c, each function maps one public call onto gets, puts and cursor
 * scans, keeps no state between calls, and validates what it decodes. Policy (how many
 * branches, which segment ids, how long an expression) belongs to the server; the store
 * only refuses what its own format cannot hold.
 *
 * Keys: every record here is keyed by the user id first (big-endian), so a user's
 * records of one kind are a contiguous range: listing a user's branches or tokens, or
 * dropping everything of a deleted user, is one range scan. Console entries add a
 * big-endian sequence number, so the range is also the queue's order.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define DBI(t, id) ((t)->s->dbi[STORE__DB_##id])

/* ------------------------------------------------------------------ branches */

#define BRANCH_REC_V1 1
#define BRANCH_REC_SIZE 13 /* u8 version, u32 flags, u64 timestamp */

static int branch_key(store_txn *t, const char *fn, uint64_t uid, const char *name, unsigned char *kb, size_t *kl) {
  long n = store__name_len(name, STORE_BRANCH_MAX);
  if (n < 0) return store__fail(NULL, t, STORE_INVALID, "%s: branch must be 1..%d bytes", fn, STORE_BRANCH_MAX - 1);
  store__be64_put(kb, uid);
  memcpy(kb + 8, name, (size_t)n);
  *kl = 8 + (size_t)n;
  return STORE_OK;
}

static int branch_decode(store_txn *t, const char *fn, uint64_t uid, const MDB_val *k, const MDB_val *v,
                         store_branch *out) {
  const unsigned char *p = v->mv_data;
  size_t nl = k->mv_size - 8;
  if (v->mv_size != BRANCH_REC_SIZE || p[0] != BRANCH_REC_V1 || nl == 0 || nl >= STORE_BRANCH_MAX ||
      memchr((const char *)k->mv_data + 8, '\0', nl))
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": bad branch record (%zu-byte key, %zu bytes)", fn,
                       uid, k->mv_size, v->mv_size);
  memset(out, 0, sizeof *out);
  memcpy(out->name, (const char *)k->mv_data + 8, nl);
  out->flags = store__le32_get(p + 1);
  out->timestamp_ms = (int64_t)store__le64_get(p + 5);
  return STORE_OK;
}

int store_branch_put(store_txn *t, uint64_t uid, const store_branch *b) {
  const char *fn = "store_branch_put";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  if (!b) return store__fail(NULL, t, STORE_INVALID, "%s: b is NULL", fn);
  unsigned char kb[8 + STORE_BRANCH_MAX], vb[BRANCH_REC_SIZE];
  size_t kl;
  if ((st = branch_key(t, fn, uid, b->name, kb, &kl)) != 0) return st;
  vb[0] = BRANCH_REC_V1;
  store__le32_put(vb + 1, b->flags);
  store__le64_put(vb + 5, (uint64_t)b->timestamp_ms);
  MDB_val k = {kl, kb}, v = {sizeof vb, vb};
  int rc = mdb_put(t->txn, DBI(t, BRANCHES), &k, &v, 0);
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}

int store_branch_get(store_txn *t, uint64_t uid, const char *name, store_branch *out) {
  const char *fn = "store_branch_get";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "%s: out is NULL", fn);
  unsigned char kb[8 + STORE_BRANCH_MAX];
  size_t kl;
  if ((st = branch_key(t, fn, uid, name, kb, &kl)) != 0) return st;
  MDB_val k = {kl, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, BRANCHES), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  return branch_decode(t, fn, uid, &k, &v, out);
}

int store_branch_delete(store_txn *t, uint64_t uid, const char *name) {
  const char *fn = "store_branch_delete";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  unsigned char kb[8 + STORE_BRANCH_MAX];
  size_t kl;
  if ((st = branch_key(t, fn, uid, name, kb, &kl)) != 0) return st;
  int rec = store__del_key(t, DBI(t, BRANCHES), kb, kl, fn);
  if (rec && rec != STORE_NOTFOUND) return rec;
  int mods = store_code_delete_branch(t, uid, name);
  if (mods && mods != STORE_NOTFOUND) return mods;
  return rec == STORE_NOTFOUND && mods == STORE_NOTFOUND ? STORE_NOTFOUND : STORE_OK;
}

/* The per-user iterators: what their visitors need. */
typedef struct user_visit {
  const char *name;
  uint64_t uid;
  union {
    int (*branch)(const store_branch *b, void *ud);
    int (*console)(uint64_t seq, const char *expr, size_t len, void *ud);
    int (*token)(const unsigned char *hash, const store_token *tok, void *ud);
  } fn;
  void *ud;
} user_visit;

static int visit_branch(store_txn *t, const MDB_val *k, const MDB_val *v, void *ud) {
  const user_visit *u = ud;
  store_branch b;
  int st = branch_decode(t, u->name, u->uid, k, v, &b);
  return st ? st : u->fn.branch(&b, u->ud);
}

/* Checks, then walks the records of dbi under the user's 8-byte key prefix. */
static int user_iter(store_txn *t, int db, user_visit *u, bool have_fn,
                     int (*visit)(store_txn *, const MDB_val *, const MDB_val *, void *)) {
  int st = store__check_txn(t, false, u->name);
  if (st) return st;
  if (!have_fn) return store__fail(NULL, t, STORE_INVALID, "%s: fn is NULL", u->name);
  unsigned char pre[8];
  store__be64_put(pre, u->uid);
  return store__each(t, t->s->dbi[db], pre, 8, u->name, visit, u);
}

int store_branch_iter(store_txn *t, uint64_t uid, int (*fn)(const store_branch *b, void *ud), void *ud) {
  user_visit u = {"store_branch_iter", uid, {.branch = fn}, ud};
  return user_iter(t, STORE__DB_BRANCHES, &u, fn != NULL, visit_branch);
}

static int count_one(const store_branch *b, void *ud) {
  (void)b;
  (*(size_t *)ud)++;
  return 0;
}

int store_branch_count(store_txn *t, uint64_t uid, size_t *out) {
  if (!out) return t ? store__fail(NULL, t, STORE_INVALID, "store_branch_count: out is NULL") : STORE_INVALID;
  *out = 0;
  return store_branch_iter(t, uid, count_one, out);
}

/* ------------------------------------------------------------------ segments */

#define SEGMENT_ACTIVE_KEY 0xff

static int segment_key(store_txn *t, const char *fn, uint64_t uid, int id, unsigned char *kb) {
  if (id < 0 || id > STORE_SEGMENT_ID_MAX)
    return store__fail(NULL, t, STORE_INVALID, "%s: segment id %d is not in 0..%d", fn, id, STORE_SEGMENT_ID_MAX);
  store__be64_put(kb, uid);
  kb[8] = (unsigned char)id;
  return STORE_OK;
}

int store_segment_put(store_txn *t, uint64_t uid, int id, const void *data, size_t len) {
  const char *fn = "store_segment_put";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  unsigned char kb[9];
  if ((st = segment_key(t, fn, uid, id, kb)) != 0) return st;
  if (!data && len) return store__fail(NULL, t, STORE_INVALID, "%s: data is NULL", fn);
  MDB_val k = {9, kb}, v = {len, NULL};
  int rc = mdb_put(t->txn, DBI(t, SEGMENTS), &k, &v, MDB_RESERVE);
  if (rc) return store__fail_mdb(t, rc, fn);
  if (len) memcpy(v.mv_data, data, len);
  return STORE_OK;
}

int store_segment_get(store_txn *t, uint64_t uid, int id, const char **data, size_t *len) {
  const char *fn = "store_segment_get";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!data || !len) return store__fail(NULL, t, STORE_INVALID, "%s: data or len is NULL", fn);
  unsigned char kb[9];
  if ((st = segment_key(t, fn, uid, id, kb)) != 0) return st;
  MDB_val k = {9, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, SEGMENTS), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  *data = v.mv_data;
  *len = v.mv_size;
  return STORE_OK;
}

int store_segment_delete(store_txn *t, uint64_t uid, int id) {
  const char *fn = "store_segment_delete";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  unsigned char kb[9];
  if ((st = segment_key(t, fn, uid, id, kb)) != 0) return st;
  return store__del_key(t, DBI(t, SEGMENTS), kb, 9, fn);
}

int store_segments_set_active(store_txn *t, uint64_t uid, const int *ids, size_t n) {
  const char *fn = "store_segments_set_active";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  if (n > STORE_SEGMENTS_ACTIVE_MAX || (n && !ids))
    return store__fail(NULL, t, STORE_INVALID, "%s: %zu ids (at most %d)", fn, n, STORE_SEGMENTS_ACTIVE_MAX);
  unsigned char vb[STORE_SEGMENTS_ACTIVE_MAX];
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] > STORE_SEGMENT_ID_MAX)
      return store__fail(NULL, t, STORE_INVALID, "%s: segment id %d is not in 0..%d", fn, ids[i], STORE_SEGMENT_ID_MAX);
    vb[i] = (unsigned char)ids[i];
  }
  unsigned char kb[9];
  store__be64_put(kb, uid);
  kb[8] = SEGMENT_ACTIVE_KEY;
  if (n == 0) {
    st = store__del_key(t, DBI(t, SEGMENTS), kb, 9, fn);
    return st == STORE_NOTFOUND ? STORE_OK : st;
  }
  MDB_val k = {9, kb}, v = {n, vb};
  int rc = mdb_put(t->txn, DBI(t, SEGMENTS), &k, &v, 0);
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}

int store_segments_get_active(store_txn *t, uint64_t uid, int *ids, size_t cap, size_t *n) {
  const char *fn = "store_segments_get_active";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!n || (cap && !ids)) return store__fail(NULL, t, STORE_INVALID, "%s: ids or n is NULL", fn);
  *n = 0;
  unsigned char kb[9];
  store__be64_put(kb, uid);
  kb[8] = SEGMENT_ACTIVE_KEY;
  MDB_val k = {9, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, SEGMENTS), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_OK;
  if (rc) return store__fail_mdb(t, rc, fn);
  if (v.mv_size > STORE_SEGMENTS_ACTIVE_MAX)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": %zu active ids", fn, uid, v.mv_size);
  const unsigned char *p = v.mv_data;
  for (size_t i = 0; i < v.mv_size && *n < cap; i++) {
    if (p[i] > STORE_SEGMENT_ID_MAX)
      return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": bad active id %u", fn, uid, p[i]);
    ids[(*n)++] = p[i];
  }
  return STORE_OK;
}

/* ------------------------------------------------------------------ console queue */

#define CONSOLE_EXPR_MAX 65535

int store_console_push(store_txn *t, uint64_t uid, const char *expr, size_t len, uint64_t *seq) {
  const char *fn = "store_console_push";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  if (!expr || len == 0 || len > CONSOLE_EXPR_MAX)
    return store__fail(NULL, t, STORE_INVALID, "%s: expression must be 1..%d bytes", fn, CONSOLE_EXPR_MAX);
  uint64_t next;
  if ((st = store__meta_get_u64(t, "next_console_seq", 1, &next, fn)) != 0) return st;
  if ((st = store__meta_put_u64(t, "next_console_seq", next + 1, fn)) != 0) return st;
  unsigned char kb[16];
  store__be64_put(kb, uid);
  store__be64_put(kb + 8, next);
  MDB_val k = {16, kb}, v = {len + 1, NULL};
  int rc = mdb_put(t->txn, DBI(t, CONSOLE), &k, &v, MDB_RESERVE);
  if (rc) return store__fail_mdb(t, rc, fn);
  unsigned char *p = v.mv_data;
  p[0] = 0;
  memcpy(p + 1, expr, len);
  if (seq) *seq = next;
  return STORE_OK;
}

static int visit_console(store_txn *t, const MDB_val *k, const MDB_val *v, void *ud) {
  const user_visit *u = ud;
  const unsigned char *p = v->mv_data;
  if (k->mv_size != 16 || v->mv_size < 2 || p[0] != 0)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": bad console entry (%zu-byte key, %zu bytes)",
                       u->name, u->uid, k->mv_size, v->mv_size);
  return u->fn.console(store__be64_get((const unsigned char *)k->mv_data + 8), (const char *)p + 1, v->mv_size - 1,
                       u->ud);
}

int store_console_iter(store_txn *t, uint64_t uid, int (*fn)(uint64_t seq, const char *expr, size_t len, void *ud),
                       void *ud) {
  user_visit u = {"store_console_iter", uid, {.console = fn}, ud};
  return user_iter(t, STORE__DB_CONSOLE, &u, fn != NULL, visit_console);
}

int store_console_trim(store_txn *t, uint64_t uid, uint64_t upto, size_t *n) {
  const char *fn = "store_console_trim";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  size_t count = 0;
  unsigned char pre[8];
  store__be64_put(pre, uid);
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, DBI(t, CONSOLE), &c);
  if (rc) return store__fail_mdb(t, rc, fn);
  for (;;) {
    MDB_val k = {8, pre}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND || (rc == 0 && (!store__has_prefix(&k, pre, 8) || k.mv_size != 16 ||
                                           store__be64_get((const unsigned char *)k.mv_data + 8) > upto))) {
      rc = 0;
      break;
    }
    if (rc) break;
    if ((rc = mdb_cursor_del(c, 0)) != 0) break;
    count++;
  }
  mdb_cursor_close(c);
  if (n) *n = count;
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}

/* ------------------------------------------------------------------ tokens */

#define TOKEN_REC_V1 1

static void token_key(uint64_t uid, const unsigned char *hash, unsigned char *kb) {
  store__be64_put(kb, uid);
  memcpy(kb + 8, hash, STORE_TOKEN_HASH_BYTES);
}

static int token_decode(store_txn *t, const char *fn, uint64_t uid, const MDB_val *v, store_token *out) {
  const unsigned char *p = v->mv_data;
  memset(out, 0, sizeof *out);
  if (v->mv_size < 19 || p[0] != TOKEN_REC_V1) goto bad;
  out->created_ms = (int64_t)store__le64_get(p + 1);
  out->expires_ms = (int64_t)store__le64_get(p + 9);
  size_t ll = (size_t)p[17] | ((size_t)p[18] << 8);
  if (ll >= STORE_TOKEN_LABEL_MAX || v->mv_size != 19 + ll || memchr(p + 19, '\0', ll)) goto bad;
  memcpy(out->label, p + 19, ll);
  return STORE_OK;
bad:
  return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": bad token record of %zu bytes", fn, uid,
                     v->mv_size);
}

int store_token_put(store_txn *t, uint64_t uid, const unsigned char hash[STORE_TOKEN_HASH_BYTES],
                    const store_token *tok) {
  const char *fn = "store_token_put";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  if (!hash || !tok || !memchr(tok->label, '\0', sizeof tok->label))
    return store__fail(NULL, t, STORE_INVALID, "%s: hash or token NULL, or label not NUL-terminated", fn);
  size_t ll = strlen(tok->label);
  unsigned char kb[8 + STORE_TOKEN_HASH_BYTES], vb[19 + STORE_TOKEN_LABEL_MAX];
  token_key(uid, hash, kb);
  vb[0] = TOKEN_REC_V1;
  store__le64_put(vb + 1, (uint64_t)tok->created_ms);
  store__le64_put(vb + 9, (uint64_t)tok->expires_ms);
  vb[17] = (unsigned char)(ll & 0xff);
  vb[18] = (unsigned char)(ll >> 8);
  memcpy(vb + 19, tok->label, ll);
  MDB_val k = {sizeof kb, kb}, v = {19 + ll, vb};
  int rc = mdb_put(t->txn, DBI(t, TOKENS), &k, &v, 0);
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}

int store_token_get(store_txn *t, uint64_t uid, const unsigned char hash[STORE_TOKEN_HASH_BYTES], store_token *out) {
  const char *fn = "store_token_get";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!hash || !out) return store__fail(NULL, t, STORE_INVALID, "%s: hash or out is NULL", fn);
  unsigned char kb[8 + STORE_TOKEN_HASH_BYTES];
  token_key(uid, hash, kb);
  MDB_val k = {sizeof kb, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, TOKENS), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  return token_decode(t, fn, uid, &v, out);
}

int store_token_delete(store_txn *t, uint64_t uid, const unsigned char hash[STORE_TOKEN_HASH_BYTES]) {
  const char *fn = "store_token_delete";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  if (!hash) return store__fail(NULL, t, STORE_INVALID, "%s: hash is NULL", fn);
  unsigned char kb[8 + STORE_TOKEN_HASH_BYTES];
  token_key(uid, hash, kb);
  return store__del_key(t, DBI(t, TOKENS), kb, sizeof kb, fn);
}

static int visit_token(store_txn *t, const MDB_val *k, const MDB_val *v, void *ud) {
  const user_visit *u = ud;
  if (k->mv_size != 8 + STORE_TOKEN_HASH_BYTES)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": token key of %zu bytes", u->name, u->uid,
                       k->mv_size);
  store_token tok;
  int st = token_decode(t, u->name, u->uid, v, &tok);
  return st ? st : u->fn.token((const unsigned char *)k->mv_data + 8, &tok, u->ud);
}

int store_token_iter(store_txn *t, uint64_t uid, int (*fn)(const unsigned char *hash, const store_token *tok, void *ud),
                     void *ud) {
  user_visit u = {"store_token_iter", uid, {.token = fn}, ud};
  return user_iter(t, STORE__DB_TOKENS, &u, fn != NULL, visit_token);
}

/* ------------------------------------------------------------------ settings */

#define SETTING_PREFIX "setting:"
#define SETTING_NAME_MAX 200

static int setting_key(store_txn *t, const char *fn, const char *name, char *kb, size_t *kl) {
  long n = store__name_len(name, SETTING_NAME_MAX + 1);
  if (n < 0) return store__fail(NULL, t, STORE_INVALID, "%s: name must be 1..%d bytes", fn, SETTING_NAME_MAX);
  memcpy(kb, SETTING_PREFIX, sizeof SETTING_PREFIX - 1);
  memcpy(kb + sizeof SETTING_PREFIX - 1, name, (size_t)n);
  *kl = sizeof SETTING_PREFIX - 1 + (size_t)n;
  return STORE_OK;
}

int store_setting_put(store_txn *t, const char *name, const void *data, size_t len) {
  const char *fn = "store_setting_put";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  char kb[sizeof SETTING_PREFIX + SETTING_NAME_MAX];
  size_t kl;
  if ((st = setting_key(t, fn, name, kb, &kl)) != 0) return st;
  if (!data && len) return store__fail(NULL, t, STORE_INVALID, "%s: data is NULL", fn);
  MDB_val k = {kl, kb}, v = {len, NULL};
  int rc = mdb_put(t->txn, DBI(t, META), &k, &v, MDB_RESERVE);
  if (rc) return store__fail_mdb(t, rc, fn);
  if (len) memcpy(v.mv_data, data, len);
  return STORE_OK;
}

int store_setting_get(store_txn *t, const char *name, const void **data, size_t *len) {
  const char *fn = "store_setting_get";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!data || !len) return store__fail(NULL, t, STORE_INVALID, "%s: data or len is NULL", fn);
  char kb[sizeof SETTING_PREFIX + SETTING_NAME_MAX];
  size_t kl;
  if ((st = setting_key(t, fn, name, kb, &kl)) != 0) return st;
  MDB_val k = {kl, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, META), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  *data = v.mv_data;
  *len = v.mv_size;
  return STORE_OK;
}
