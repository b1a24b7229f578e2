/*
 * store_admin.c — what world administration needs from the store: a backup to a file
 * descriptor, the admin log, the data directory lock, and the full check of a store
 * (store_verify) with its state hash.
 *
 * The verifier reads every record of every database through raw cursors rather than the
 * typed getters, so that records nobody would look up (an orphaned module of a deleted
 * user, an index entry pointing nowhere) are seen too; it decodes each with the same
 * codecs the getters use. It never writes and never stops at the first problem: an
 * admin wants the whole list. The same walk feeds the state hash, which is defined over
 * the raw bytes (see store.h), so a backup and its origin hash equal by construction and
 * the hash does not depend on how this build decodes records.
 *
 * Why the lock is an flock and not LMDB's own lock file: LMDB allows many processes on
 * one environment by design; what must be exclusive is "a server runs here" versus "an
 * admin replaces data.mdb". flock locks die with their process, so a crashed server
 * never leaves a stale lock behind.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DBI(t, id) ((t)->s->dbi[STORE__DB_##id])

/* ------------------------------------------------------------------ backup to a fd */

int store_backup_fd(store *s, int fd, bool compact) {
  if (!s) return STORE_INVALID;
  if (fd < 0) return store__fail(s, NULL, STORE_INVALID, "store_backup_fd: bad file descriptor");
  if (!s->env) return store__fail(s, NULL, STORE_INVALID, "store_backup_fd: the store is not open");
  pthread_mutex_lock(&s->lock);
  bool self = s->writer_active && pthread_equal(s->writer, pthread_self());
  pthread_mutex_unlock(&s->lock);
  if (self)
    return store__fail(s, NULL, STORE_BUSY, "store_backup_fd: called by the thread holding the write transaction");
  int rc = mdb_env_copyfd2(s->env, fd, compact ? MDB_CP_COMPACT : 0);
  if (rc) return store__fail(s, NULL, store__map_mdb(rc), "store_backup_fd: %s", mdb_strerror(rc));
  return STORE_OK;
}

/* ------------------------------------------------------------------ admin log */

#define ADMINLOG_PREFIX "adminlog:"
#define ADMINLOG_PLEN (sizeof ADMINLOG_PREFIX - 1)
#define ADMINLOG_KLEN (ADMINLOG_PLEN + 8)
#define ADMINLOG_REC_V1 1

static void adminlog_key(uint64_t seq, unsigned char *kb) {
  memcpy(kb, ADMINLOG_PREFIX, ADMINLOG_PLEN);
  store__be64_put(kb + ADMINLOG_PLEN, seq);
}

/* v1: u8 version, u64 time_ms, u16 who length, who, u16 what length, what. */
static int adminlog_decode(const MDB_val *k, const MDB_val *v, store_admin_entry *e) {
  const unsigned char *p = v->mv_data;
  memset(e, 0, sizeof *e);
  if (k->mv_size != ADMINLOG_KLEN || v->mv_size < 13 || p[0] != ADMINLOG_REC_V1) return STORE_CORRUPT;
  e->seq = store__be64_get((const unsigned char *)k->mv_data + ADMINLOG_PLEN);
  e->time_ms = (int64_t)store__le64_get(p + 1);
  size_t wl = (size_t)p[9] | ((size_t)p[10] << 8);
  if (wl >= STORE_ADMIN_WHO_MAX || 11 + wl + 2 > v->mv_size) return STORE_CORRUPT;
  memcpy(e->who, p + 11, wl);
  size_t off = 11 + wl;
  size_t xl = (size_t)p[off] | ((size_t)p[off + 1] << 8);
  if (xl >= STORE_ADMIN_WHAT_MAX || off + 2 + xl != v->mv_size) return STORE_CORRUPT;
  memcpy(e->what, p + off + 2, xl);
  if (memchr(e->who, '\0', wl) || memchr(e->what, '\0', xl)) return STORE_CORRUPT;
  return STORE_OK;
}

int store_admin_log_append(store_txn *t, store_admin_entry *e) {
  const char *fn = "store_admin_log_append";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  if (!e || !memchr(e->who, '\0', sizeof e->who) || !memchr(e->what, '\0', sizeof e->what))
    return store__fail(NULL, t, STORE_INVALID, "%s: entry NULL or a string not NUL-terminated", fn);
  uint64_t seq;
  if ((st = store__meta_get_u64(t, "next_adminlog_seq", 1, &seq, fn)) != 0) return st;
  if ((st = store__meta_put_u64(t, "next_adminlog_seq", seq + 1, fn)) != 0) return st;
  size_t wl = strlen(e->who), xl = strlen(e->what);
  unsigned char kb[ADMINLOG_KLEN], vb[13 + STORE_ADMIN_WHO_MAX + STORE_ADMIN_WHAT_MAX];
  adminlog_key(seq, kb);
  vb[0] = ADMINLOG_REC_V1;
  store__le64_put(vb + 1, (uint64_t)e->time_ms);
  vb[9] = (unsigned char)(wl & 0xff);
  vb[10] = (unsigned char)(wl >> 8);
  memcpy(vb + 11, e->who, wl);
  vb[11 + wl] = (unsigned char)(xl & 0xff);
  vb[12 + wl] = (unsigned char)(xl >> 8);
  memcpy(vb + 13 + wl, e->what, xl);
  MDB_val k = {sizeof kb, kb}, v = {13 + wl + xl, vb};
  int rc = mdb_put(t->txn, DBI(t, META), &k, &v, 0);
  if (rc) return store__fail_mdb(t, rc, fn);
  e->seq = seq;
  if (seq > STORE_ADMIN_LOG_KEEP) {
    adminlog_key(seq - STORE_ADMIN_LOG_KEEP, kb);
    st = store__del_key(t, DBI(t, META), kb, sizeof kb, fn);
    if (st && st != STORE_NOTFOUND) return st;
  }
  return STORE_OK;
}

int store_admin_log_iter(store_txn *t, bool newest_first, int (*fn)(const store_admin_entry *e, void *ud), void *ud) {
  const char *name = "store_admin_log_iter";
  int st = store__check_txn(t, false, name);
  if (st) return st;
  if (!fn) return store__fail(NULL, t, STORE_INVALID, "%s: fn is NULL", name);
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, DBI(t, META), &c);
  if (rc) return store__fail_mdb(t, rc, name);
  unsigned char kb[ADMINLOG_KLEN];
  MDB_val k, v;
  if (newest_first) {
    /* The first key after every adminlog key, then step back. */
    adminlog_key(UINT64_MAX, kb);
    k = (MDB_val){sizeof kb, kb};
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
  } else {
    k = (MDB_val){ADMINLOG_PLEN, (void *)ADMINLOG_PREFIX};
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  }
  store_admin_entry *e = malloc(sizeof *e);
  if (!e) {
    mdb_cursor_close(c);
    return store__fail(NULL, t, STORE_NOMEM, "%s: out of memory", name);
  }
  while (rc == 0 && store__has_prefix(&k, ADMINLOG_PREFIX, ADMINLOG_PLEN)) {
    if (adminlog_decode(&k, &v, e) != STORE_OK) {
      st = store__fail(NULL, t, STORE_CORRUPT, "%s: bad admin log record (%zu-byte key, %zu bytes)", name, k.mv_size,
                       v.mv_size);
      break;
    }
    if ((st = fn(e, ud)) != 0) break;
    rc = mdb_cursor_get(c, &k, &v, newest_first ? MDB_PREV : MDB_NEXT);
  }
  free(e);
  mdb_cursor_close(c);
  if (st) return st;
  return (rc == 0 || rc == MDB_NOTFOUND) ? STORE_OK : store__fail_mdb(t, rc, name);
}

/* ------------------------------------------------------------------ directory lock */

struct store_dir_lock {
  int fd;
};

static void read_holder(int fd, long *pid, char *holder, size_t cap) {
  char buf[160];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n < 0) n = 0;
  buf[n] = '\0';
  char *end;
  long p = strtol(buf, &end, 10);
  if (pid) *pid = p > 0 ? p : 0;
  if (holder && cap) {
    while (*end == ' ') end++;
    size_t l = strcspn(end, "\n");
    if (l >= cap) l = cap - 1;
    memcpy(holder, end, l);
    holder[l] = '\0';
  }
}

int store_dir_lock_take(const char *dir, const char *purpose, store_dir_lock **out, long *holder_pid, char *holder,
                        size_t cap) {
  if (holder_pid) *holder_pid = 0;
  if (holder && cap) holder[0] = '\0';
  if (!dir || !*dir || !out) return STORE_INVALID;
  *out = NULL;
  /* mkdir -p, 0700 (as store_open) */
  size_t n = strlen(dir);
  char *path = malloc(n + sizeof "/isoworld.lock");
  if (!path) return STORE_NOMEM;
  memcpy(path, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (path[i] != '/' && path[i] != '\0') continue;
    char saved = path[i];
    path[i] = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
      free(path);
      return STORE_IO;
    }
    path[i] = saved;
  }
  memcpy(path + n, "/isoworld.lock", sizeof "/isoworld.lock");
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  free(path);
  if (fd < 0) return errno == ENOMEM ? STORE_NOMEM : STORE_IO;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EWOULDBLOCK) read_holder(fd, holder_pid, holder, cap);
    close(fd);
    return err == EWOULDBLOCK ? STORE_BUSY : STORE_IO;
  }
  store_dir_lock *l = malloc(sizeof *l);
  if (!l) {
    close(fd);
    return STORE_NOMEM;
  }
  l->fd = fd;
  char line[160];
  int len = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(), purpose && *purpose ? purpose : "isoworld");
  if (len < 0 || (size_t)len >= sizeof line) len = (int)sizeof line - 1;
  if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len) {
    /* The lock holds without the note; only the message to others gets poorer. */
  }
  *out = l;
  return STORE_OK;
}

void store_dir_lock_release(store_dir_lock *l) {
  if (!l) return;
  if (ftruncate(l->fd, 0) != 0) {
    /* nothing to do: the lock itself goes with the close */
  }
  close(l->fd); /* releases the flock */
  free(l);
}

/* ------------------------------------------------------------------ verify and hash */

typedef struct vctx {
  store_txn *t;
  store_verify_report *r;
  void (*problem)(const char *msg, void *ud);
  void *ud;
  bool decode; /* false: only the hash */
  crypto_generichash_state h;
  uint64_t next_user_id, next_console_seq, next_adminlog_seq;
  uint64_t max_user_id, max_console_seq, max_adminlog_seq;
  /* cache of the last user looked up */
  uint64_t cached_uid;
  bool cached_exists;
  store_user cached;
} vctx;

static void problem(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(vctx *v, const char *fmt, ...) {
  v->r->problems++;
  if (!v->problem || v->r->problems > 1000) return;
  char msg[STORE_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  v->problem(msg, v->ud);
}

static void hash_u32(vctx *v, uint32_t x) {
  unsigned char b[4];
  store__le32_put(b, x);
  crypto_generichash_update(&v->h, b, 4);
}

static void hash_bytes(vctx *v, const void *p, size_t n) {
  hash_u32(v, (uint32_t)n);
  if (n) crypto_generichash_update(&v->h, p, n);
}

/* The user `uid`, if it exists (decoded). */
static bool user_exists(vctx *v, uint64_t uid, store_user **u) {
  if (uid != v->cached_uid || uid == 0) {
    v->cached_uid = uid;
    v->cached_exists = false;
    unsigned char kb[8];
    store__be64_put(kb, uid);
    MDB_val k = {8, kb}, d;
    const char *why;
    if (uid && mdb_get(v->t->txn, DBI(v->t, USERS), &k, &d) == 0 &&
        store__user_decode(d.mv_data, d.mv_size, &v->cached, &why) == STORE_OK)
      v->cached_exists = true;
  }
  if (u) *u = v->cached_exists ? &v->cached : NULL;
  return v->cached_exists;
}

static void need_user(vctx *v, const char *db, const MDB_val *k) {
  if (k->mv_size < 8) return; /* reported by the caller */
  uint64_t uid = store__be64_get(k->mv_data);
  if (!user_exists(v, uid, NULL)) problem(v, "%s: a record of user %" PRIu64 ", who does not exist", db, uid);
}

static bool is_meta_hashed(const MDB_val *k) {
  static const char *const keys[] = {"schema_version", "game_time", "next_user_id", "next_console_seq"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (k->mv_size == strlen(keys[i]) && !memcmp(k->mv_data, keys[i], k->mv_size)) return true;
  return false;
}

static bool key_is(const MDB_val *k, const char *s) {
  return k->mv_size == strlen(s) && !memcmp(k->mv_data, s, k->mv_size);
}

static void check_meta(vctx *v, const MDB_val *k, const MDB_val *d) {
  static const char *const u64keys[] = {"game_time", "next_user_id", "next_console_seq", "next_adminlog_seq"};
  if (key_is(k, "schema_version")) {
    if (d->mv_size != 4)
      problem(v, "meta: schema_version has %zu bytes, expected 4", d->mv_size);
    else
      v->r->schema_version = store__le32_get(d->mv_data);
    return;
  }
  for (size_t i = 0; i < sizeof u64keys / sizeof u64keys[0]; i++) {
    if (!key_is(k, u64keys[i])) continue;
    if (d->mv_size != 8) {
      problem(v, "meta: %s has %zu bytes, expected 8", u64keys[i], d->mv_size);
      return;
    }
    uint64_t x = store__le64_get(d->mv_data);
    if (i == 0) v->r->game_time = x;
    if (i == 1) v->next_user_id = x;
    if (i == 2) v->next_console_seq = x;
    if (i == 3) v->next_adminlog_seq = x;
    return;
  }
  if (store__has_prefix(k, "setting:", 8) && k->mv_size > 8) return;
  if (store__has_prefix(k, ADMINLOG_PREFIX, ADMINLOG_PLEN)) {
    store_admin_entry e;
    if (adminlog_decode(k, d, &e) != STORE_OK) {
      problem(v, "meta: an admin log record does not decode (%zu-byte key, %zu bytes)", k->mv_size, d->mv_size);
      return;
    }
    v->r->admin_log++;
    if (e.seq > v->max_adminlog_seq) v->max_adminlog_seq = e.seq;
    return;
  }
  problem(v, "meta: unknown record '%.*s'", (int)(k->mv_size > 60 ? 60 : k->mv_size), (const char *)k->mv_data);
}

static void check_users(vctx *v, const MDB_val *k, const MDB_val *d) {
  if (k->mv_size != 8) {
    problem(v, "users: key of %zu bytes, expected 8", k->mv_size);
    return;
  }
  uint64_t id = store__be64_get(k->mv_data);
  store_user u;
  const char *why = "";
  if (store__user_decode(d->mv_data, d->mv_size, &u, &why) != STORE_OK) {
    problem(v, "users: user %" PRIu64 " does not decode: %s", id, why);
    return;
  }
  v->r->users++;
  if (u.id != id) problem(v, "users: the record under id %" PRIu64 " says id %" PRIu64, id, u.id);
  if (id > v->max_user_id) v->max_user_id = id;
  char fold[STORE_EMAIL_MAX];
  int fl = store__username_fold(u.username, fold);
  MDB_val ik = {fl > 0 ? (size_t)fl : 0, fold}, iv;
  if (fl <= 0 || mdb_get(v->t->txn, DBI(v->t, USERNAMES), &ik, &iv) != 0 || iv.mv_size != 8 ||
      store__be64_get(iv.mv_data) != id)
    problem(v, "users: user %" PRIu64 " (%s) is missing from the username index", id, u.username);
  if (u.email[0]) {
    fl = store__email_fold(u.email, fold);
    ik = (MDB_val){fl > 0 ? (size_t)fl : 0, fold};
    if (fl <= 0 || mdb_get(v->t->txn, DBI(v->t, EMAILS), &ik, &iv) != 0 || iv.mv_size != 8 ||
        store__be64_get(iv.mv_data) != id)
      problem(v, "users: user %" PRIu64 " (%s) is missing from the email index", id, u.username);
  }
}

static void check_index(vctx *v, const char *db, bool email, const MDB_val *k, const MDB_val *d) {
  if (d->mv_size != 8) {
    problem(v, "%s: an entry holds %zu bytes, expected 8", db, d->mv_size);
    return;
  }
  uint64_t id = store__be64_get(d->mv_data);
  store_user *u;
  if (!user_exists(v, id, &u)) {
    problem(v, "%s: '%.*s' points to user %" PRIu64 ", who does not exist", db,
            (int)(k->mv_size > 60 ? 60 : k->mv_size), (const char *)k->mv_data, id);
    return;
  }
  char fold[STORE_EMAIL_MAX];
  int fl = email ? store__email_fold(u->email, fold) : store__username_fold(u->username, fold);
  if (fl <= 0 || (size_t)fl != k->mv_size || memcmp(fold, k->mv_data, k->mv_size))
    problem(v, "%s: '%.*s' points to user %" PRIu64 ", whose %s differs", db, (int)(k->mv_size > 60 ? 60 : k->mv_size),
            (const char *)k->mv_data, id, email ? "email" : "username");
}

static void check_code(vctx *v, const MDB_val *k, const MDB_val *d) {
  const unsigned char *kp = k->mv_data;
  const void *nul = k->mv_size > 8 ? memchr(kp + 8, '\0', k->mv_size - 8) : NULL;
  size_t bl = nul ? (size_t)((const unsigned char *)nul - (kp + 8)) : 0;
  size_t ml = nul ? k->mv_size - 9 - bl : 0;
  if (!nul || bl == 0 || bl >= STORE_BRANCH_MAX || ml == 0 || ml >= STORE_MODULE_NAME_MAX ||
      memchr(kp + 9 + bl, '\0', ml)) {
    problem(v, "code: bad key of %zu bytes", k->mv_size);
    return;
  }
  const unsigned char *p = d->mv_data;
  if (d->mv_size < 1 || (p[0] & ~1u) != 0) {
    problem(v, "code: user %" PRIu64 " module '%.*s/%.*s' has a bad header", store__be64_get(kp), (int)bl,
            (const char *)kp + 8, (int)ml, (const char *)kp + 9 + bl);
    return;
  }
  v->r->modules++;
  need_user(v, "code", k);
  unsigned char bk[8 + STORE_BRANCH_MAX];
  memcpy(bk, kp, 8 + bl);
  MDB_val b = {8 + bl, bk}, bv;
  if (mdb_get(v->t->txn, DBI(v->t, BRANCHES), &b, &bv) != 0)
    problem(v, "code: user %" PRIu64 " has modules in branch '%.*s', which has no branch record", store__be64_get(kp),
            (int)bl, (const char *)kp + 8);
}

static void check_branch(vctx *v, const MDB_val *k, const MDB_val *d) {
  const unsigned char *p = d->mv_data;
  size_t nl = k->mv_size > 8 ? k->mv_size - 8 : 0;
  if (k->mv_size <= 8 || nl >= STORE_BRANCH_MAX || memchr((const char *)k->mv_data + 8, '\0', nl) || d->mv_size != 13 ||
      p[0] != 1) {
    problem(v, "branches: bad branch record (%zu-byte key, %zu bytes)", k->mv_size, d->mv_size);
    return;
  }
  v->r->branches++;
  need_user(v, "branches", k);
}

static void check_u64_of_user(vctx *v, const char *db, const MDB_val *k, const MDB_val *d) {
  if (k->mv_size != 8 || d->mv_size != 8) {
    problem(v, "%s: bad record (%zu-byte key, %zu bytes)", db, k->mv_size, d->mv_size);
    return;
  }
  need_user(v, db, k);
}

static void check_memory(vctx *v, const MDB_val *k, const MDB_val *d) {
  if (k->mv_size != 8 || d->mv_size < 1 || ((const unsigned char *)d->mv_data)[0] != 0) {
    problem(v, "memory: bad record (%zu-byte key, %zu bytes%s)", k->mv_size, d->mv_size,
            d->mv_size ? ", or an unknown encoding" : "");
    return;
  }
  v->r->memories++;
  need_user(v, "memory", k);
}

static void check_segment(vctx *v, const MDB_val *k, const MDB_val *d) {
  if (k->mv_size != 9) {
    problem(v, "segments: key of %zu bytes, expected 9", k->mv_size);
    return;
  }
  unsigned id = ((const unsigned char *)k->mv_data)[8];
  if (id == 0xff) {
    const unsigned char *p = d->mv_data;
    bool ok = d->mv_size <= STORE_SEGMENTS_ACTIVE_MAX;
    for (size_t i = 0; ok && i < d->mv_size; i++) ok = p[i] <= STORE_SEGMENT_ID_MAX;
    if (!ok) problem(v, "segments: user %" PRIu64 ": bad list of active segments", store__be64_get(k->mv_data));
  } else if (id > STORE_SEGMENT_ID_MAX) {
    problem(v, "segments: user %" PRIu64 ": segment id %u", store__be64_get(k->mv_data), id);
    return;
  } else {
    v->r->segments++;
  }
  need_user(v, "segments", k);
}

static void check_console(vctx *v, const MDB_val *k, const MDB_val *d) {
  const unsigned char *p = d->mv_data;
  if (k->mv_size != 16 || d->mv_size < 2 || p[0] != 0) {
    problem(v, "console: bad entry (%zu-byte key, %zu bytes)", k->mv_size, d->mv_size);
    return;
  }
  v->r->console++;
  uint64_t seq = store__be64_get((const unsigned char *)k->mv_data + 8);
  if (seq > v->max_console_seq) v->max_console_seq = seq;
  need_user(v, "console", k);
}

static void check_token(vctx *v, const MDB_val *k, const MDB_val *d) {
  const unsigned char *p = d->mv_data;
  size_t ll = d->mv_size >= 19 ? ((size_t)p[17] | ((size_t)p[18] << 8)) : 0;
  if (k->mv_size != 8 + STORE_TOKEN_HASH_BYTES || d->mv_size < 19 || p[0] != 1 || ll >= STORE_TOKEN_LABEL_MAX ||
      d->mv_size != 19 + ll || memchr(p + 19, '\0', ll)) {
    problem(v, "tokens: bad token record (%zu-byte key, %zu bytes)", k->mv_size, d->mv_size);
    return;
  }
  v->r->tokens++;
  need_user(v, "tokens", k);
}

static void check_cpu(vctx *v, const MDB_val *k, const MDB_val *d) {
  store_cpu c;
  const char *why = "";
  if (k->mv_size != 8 || store__cpu_decode(d->mv_data, d->mv_size, &c, &why) != STORE_OK) {
    problem(v, "cpu: bad record (%zu-byte key, %zu bytes): %s", k->mv_size, d->mv_size, why);
    return;
  }
  v->r->cpu++;
  need_user(v, "cpu", k);
}

static void check_world(vctx *v, const MDB_val *k, const MDB_val *d) {
  (void)d;
  if (k->mv_size == 0 || k->mv_size >= STORE_WORLD_KEY_MAX || memchr(k->mv_data, '\0', k->mv_size)) {
    problem(v, "world: bad key of %zu bytes", k->mv_size);
    return;
  }
  v->r->world++;
}

/* Databases in byte order of their names: the order of the canonical stream. */
static const struct {
  int db;
  const char *name;
} walk_order[] = {
    {STORE__DB_BRANCHES, "branches"}, {STORE__DB_CODE, "code"},   {STORE__DB_CODE_STAMP, "code_stamp"},
    {STORE__DB_CONSOLE, "console"},   {STORE__DB_CPU, "cpu"},     {STORE__DB_EMAILS, "emails"},
    {STORE__DB_MEMORY, "memory"},     {STORE__DB_META, "meta"},   {STORE__DB_SEGMENTS, "segments"},
    {STORE__DB_TOKENS, "tokens"},     {STORE__DB_USERS, "users"}, {STORE__DB_USERNAMES, "usernames"},
    {STORE__DB_WORLD, "world"},
};

static int walk_db(vctx *v, int db, const char *name) {
  MDB_cursor *c;
  int rc = mdb_cursor_open(v->t->txn, v->t->s->dbi[db], &c);
  if (rc) return store__fail_mdb(v->t, rc, "store_verify");
  hash_bytes(v, name, strlen(name));
  MDB_val k, d;
  rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
  while (rc == 0) {
    v->r->records++;
    v->r->bytes += k.mv_size + d.mv_size;
    if (db != STORE__DB_META || is_meta_hashed(&k)) {
      crypto_generichash_update(&v->h, (const unsigned char *)"\1", 1);
      hash_bytes(v, k.mv_data, k.mv_size);
      hash_bytes(v, d.mv_data, d.mv_size);
    }
    if (v->decode) {
      switch (db) {
        case STORE__DB_META: check_meta(v, &k, &d); break;
        case STORE__DB_USERS: check_users(v, &k, &d); break;
        case STORE__DB_USERNAMES: check_index(v, "usernames", false, &k, &d); break;
        case STORE__DB_EMAILS: check_index(v, "emails", true, &k, &d); break;
        case STORE__DB_CODE: check_code(v, &k, &d); break;
        case STORE__DB_CODE_STAMP: check_u64_of_user(v, "code_stamp", &k, &d); break;
        case STORE__DB_BRANCHES: check_branch(v, &k, &d); break;
        case STORE__DB_MEMORY: check_memory(v, &k, &d); break;
        case STORE__DB_SEGMENTS: check_segment(v, &k, &d); break;
        case STORE__DB_CONSOLE: check_console(v, &k, &d); break;
        case STORE__DB_TOKENS: check_token(v, &k, &d); break;
        case STORE__DB_CPU: check_cpu(v, &k, &d); break;
        case STORE__DB_WORLD: check_world(v, &k, &d); break;
        default: break;
      }
    } else if (db == STORE__DB_META && key_is(&k, "game_time") && d.mv_size == 8) {
      v->r->game_time = store__le64_get(d.mv_data);
    }
    rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
  }
  mdb_cursor_close(c);
  crypto_generichash_update(&v->h, (const unsigned char *)"\0", 1);
  if (rc != MDB_NOTFOUND) return store__fail_mdb(v->t, rc, "store_verify");
  return STORE_OK;
}

static int walk(store_txn *t, store_verify_report *out, bool decode, void (*fn)(const char *msg, void *ud), void *ud) {
  vctx *v = calloc(1, sizeof *v);
  if (!v) return store__fail(NULL, t, STORE_NOMEM, "store_verify: out of memory");
  memset(out, 0, sizeof *out);
  v->t = t;
  v->r = out;
  v->problem = fn;
  v->ud = ud;
  v->decode = decode;
  v->cached_uid = 0;
  if (sodium_init() < 0) {
    free(v);
    return store__fail(NULL, t, STORE_INTERNAL, "store_verify: libsodium failed to start");
  }
  crypto_generichash_init(&v->h, NULL, 0, STORE_STATE_HASH_BYTES);
  static const char magic[] = "isoworld state v1";
  crypto_generichash_update(&v->h, (const unsigned char *)magic, sizeof magic);
  int st = STORE_OK;
  for (size_t i = 0; st == STORE_OK && i < sizeof walk_order / sizeof walk_order[0]; i++)
    st = walk_db(v, walk_order[i].db, walk_order[i].name);
  if (st == STORE_OK) crypto_generichash_final(&v->h, out->state_hash, STORE_STATE_HASH_BYTES);
  if (st == STORE_OK && decode) {
    if (out->schema_version != STORE_SCHEMA_VERSION)
      problem(v, "meta: schema version %u, this build reads %u", out->schema_version, STORE_SCHEMA_VERSION);
    if (v->max_user_id && v->next_user_id <= v->max_user_id)
      problem(v, "meta: next_user_id %" PRIu64 " is not past user %" PRIu64, v->next_user_id, v->max_user_id);
    if (v->max_console_seq && v->next_console_seq <= v->max_console_seq)
      problem(v, "meta: next_console_seq %" PRIu64 " is not past entry %" PRIu64, v->next_console_seq,
              v->max_console_seq);
    if (v->max_adminlog_seq && v->next_adminlog_seq <= v->max_adminlog_seq)
      problem(v, "meta: next_adminlog_seq %" PRIu64 " is not past entry %" PRIu64, v->next_adminlog_seq,
              v->max_adminlog_seq);
  }
  sodium_memzero(v, sizeof *v);
  free(v);
  return st;
}

int store_verify(store_txn *t, store_verify_report *out, void (*fn)(const char *msg, void *ud), void *ud) {
  int st = store__check_txn(t, false, "store_verify");
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "store_verify: out is NULL");
  return walk(t, out, true, fn, ud);
}

int store_state_hash(store_txn *t, unsigned char out[STORE_STATE_HASH_BYTES], uint64_t *game_time) {
  int st = store__check_txn(t, false, "store_state_hash");
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "store_state_hash: out is NULL");
  store_verify_report r;
  st = walk(t, &r, false, NULL, NULL);
  if (st) return st;
  memcpy(out, r.state_hash, STORE_STATE_HASH_BYTES);
  if (game_time) *game_time = r.game_time;
  return STORE_OK;
}
