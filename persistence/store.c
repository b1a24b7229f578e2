/*
 * store.c — the store's lifecycle, error reporting, transactions, meta records, backup
 * and info.
 *
 * This file owns the LMDB environment: it creates the data directory, opens the
 * environment, checks (or, on a fresh environment, writes) the schema version, and opens
 * every named database once so their handles are valid in all later transactions. It
 * must not interpret player data (store_data.c does) nor decode records (store_codec.c).
 *
 * Schema 2 added the emails, branches, segments, console and tokens databases. A schema 1
 * store opened writable is upgraded in place, in the opening transaction: the new
 * databases are created and the email index is built from the users.
 *
 * Why MDB_NOTLS: the server begins read snapshots on one thread and hands them to
 * workers; without it LMDB binds a reader slot to the thread that began the txn.
 * Why the writer bookkeeping (writer_active/writer): LMDB's writer lock is a plain mutex,
 * so a thread that begins a second write txn, or backs up while holding one, would wait
 * for itself forever. We detect that case and answer STORE_BUSY instead.
 */
#include "store_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ errors */

const char *store_strerror(int status) {
  switch (status) {
#define STORE__STR(name, value, text) \
  case STORE_##name: return text;
    STORE_STATUS_MAP(STORE__STR)
#undef STORE__STR
  }
  return "unknown error";
}

int store__map_mdb(int rc) {
  switch (rc) {
    case MDB_SUCCESS: return STORE_OK;
    case MDB_NOTFOUND:
    case ENOENT: return STORE_NOTFOUND;
    case MDB_KEYEXIST:
    case EEXIST: return STORE_EXISTS;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case ENOSPC:
    case EDQUOT: return STORE_FULL;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
    case EBUSY:
    case EAGAIN: return STORE_BUSY;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID: return STORE_CORRUPT;
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE: return STORE_SCHEMA;
    case MDB_BAD_TXN: return STORE_BADTXN;
    case MDB_BAD_VALSIZE:
    case EINVAL: return STORE_INVALID;
    case EROFS:
    case EACCES:
    case EPERM: return STORE_IO;
    case ENOMEM: return STORE_NOMEM;
    case MDB_PANIC: return STORE_IO;
    default: return rc > 0 ? STORE_IO : STORE_INTERNAL;
  }
}

static void store__set_errmsg(store *s, store_txn *txn, const char *msg) {
  if (txn) snprintf(txn->errmsg, sizeof txn->errmsg, "%s", msg);
  if (s) {
    pthread_mutex_lock(&s->lock);
    snprintf(s->errmsg, sizeof s->errmsg, "%s", msg);
    pthread_mutex_unlock(&s->lock);
  }
}

int store__fail(store *s, store_txn *txn, int status, const char *fmt, ...) {
  char msg[STORE_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!s && txn) s = txn->s;
  store__set_errmsg(s, txn, msg);
  return status;
}

int store__fail_mdb(store_txn *txn, int rc, const char *what) {
  int st = store__map_mdb(rc);
  if (rc == MDB_MAP_FULL)
    return store__fail(NULL, txn, st, "%s: %s (map_size %llu bytes; raise store_options.map_size)", what,
                       mdb_strerror(rc), (unsigned long long)txn->s->map_size);
  return store__fail(NULL, txn, st, "%s: %s", what, mdb_strerror(rc));
}

const char *store_errmsg(store *s, char *buf, size_t size) {
  if (!buf || size == 0) return buf;
  if (!s) {
    buf[0] = '\0';
    return buf;
  }
  pthread_mutex_lock(&s->lock);
  snprintf(buf, size, "%s", s->errmsg);
  pthread_mutex_unlock(&s->lock);
  return buf;
}

const char *store_txn_errmsg(const store_txn *txn) {
  return txn ? txn->errmsg : "";
}

int store__check_txn(store_txn *txn, bool want_write, const char *fn) {
  if (!txn) return STORE_INVALID;
  if (want_write && !txn->write) return store__fail(NULL, txn, STORE_READONLY, "%s: needs a write transaction", fn);
  return STORE_OK;
}

/* ------------------------------------------------------------------ lifecycle */

static const char *const store__db_names[STORE__DB_COUNT] = {
#define STORE__DB_NAME(id, name) name,
    STORE__DB_MAP(STORE__DB_NAME)
#undef STORE__DB_NAME
};

int store_create(store **out) {
  if (!out) return STORE_INVALID;
  *out = NULL;
  store *s = calloc(1, sizeof *s);
  if (!s) return STORE_NOMEM;
  if (pthread_mutex_init(&s->lock, NULL) != 0) {
    free(s);
    return STORE_NOMEM;
  }
  *out = s;
  return STORE_OK;
}

/* mkdir -p: creates dir and its missing parents with `mode`. On failure returns errno
 * and the path that failed in failed (cap bytes). */
static int store__mkdir_p(const char *dir, mode_t mode, char *failed, size_t cap) {
  size_t n = strlen(dir);
  char *p = malloc(n + 1);
  if (!p) return ENOMEM;
  memcpy(p, dir, n + 1);
  int err = 0;
  for (size_t i = 1; i <= n && !err; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    char saved = p[i];
    p[i] = '\0';
    if (mkdir(p, mode) != 0 && errno != EEXIST) err = errno;
    if (err) snprintf(failed, cap, "%s", p);
    p[i] = saved;
  }
  if (!err) {
    struct stat st;
    if (stat(dir, &st) != 0) {
      err = errno;
      snprintf(failed, cap, "%s", dir);
    } else if (!S_ISDIR(st.st_mode)) {
      err = ENOTDIR;
      snprintf(failed, cap, "%s", dir);
    }
  }
  free(p);
  return err;
}

static int store__meta_get_raw(MDB_txn *t, MDB_dbi meta, const char *key, MDB_val *v) {
  MDB_val k = {strlen(key), (void *)key};
  return mdb_get(t, meta, &k, v);
}

/* Opens (creating unless readonly) the named databases and checks or writes the schema
 * version. Fills s->dbi on success. */
static int store__init_dbs(store *s, MDB_env *env) {
  const char *dir = s->path;
  MDB_txn *t = NULL;
  int rc = mdb_txn_begin(env, NULL, s->readonly ? MDB_RDONLY : 0, &t);
  if (rc)
    return store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): cannot begin a transaction: %s", dir,
                       mdb_strerror(rc));

  int st = STORE_OK;
  bool fresh = false, upgrade = false;
  MDB_dbi dbi[STORE__DB_COUNT];
  rc = mdb_dbi_open(t, "meta", 0, &dbi[STORE__DB_META]);
  if (rc == MDB_NOTFOUND) {
    MDB_dbi main_dbi;
    MDB_stat ms;
    rc = mdb_dbi_open(t, NULL, 0, &main_dbi);
    if (!rc) rc = mdb_stat(t, main_dbi, &ms);
    if (rc) {
      st = store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): cannot read the main database: %s", dir,
                       mdb_strerror(rc));
      goto fail;
    }
    if (ms.ms_entries != 0) {
      st = store__fail(s, NULL, STORE_SCHEMA,
                       "store_open(%s): data.mdb is an LMDB environment but not an isoworld store "
                       "(it has no 'meta' database); refusing to touch it",
                       dir);
      goto fail;
    }
    if (s->readonly) {
      st = store__fail(s, NULL, STORE_NOTFOUND,
                       "store_open(%s): the environment is empty (no isoworld store yet); open it "
                       "writable once to create it",
                       dir);
      goto fail;
    }
    fresh = true;
    rc = mdb_dbi_open(t, "meta", MDB_CREATE, &dbi[STORE__DB_META]);
  } else if (rc == MDB_INCOMPATIBLE) {
    st = store__fail(s, NULL, STORE_SCHEMA,
                     "store_open(%s): 'meta' in data.mdb is not a database: not an isoworld store", dir);
    goto fail;
  }
  if (rc) {
    st = store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): cannot open database 'meta': %s", dir,
                     mdb_strerror(rc));
    goto fail;
  }

  if (!fresh) {
    MDB_val v;
    rc = store__meta_get_raw(t, dbi[STORE__DB_META], "schema_version", &v);
    if (rc == MDB_NOTFOUND) {
      st = store__fail(s, NULL, STORE_SCHEMA,
                       "store_open(%s): the 'meta' database has no schema_version record: not an "
                       "isoworld store, or a damaged one",
                       dir);
      goto fail;
    }
    if (rc) {
      st = store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): cannot read schema_version: %s", dir,
                       mdb_strerror(rc));
      goto fail;
    }
    if (v.mv_size != 4) {
      st = store__fail(s, NULL, STORE_CORRUPT, "store_open(%s): the schema_version record has %zu bytes, expected 4",
                       dir, v.mv_size);
      goto fail;
    }
    uint32_t ver = store__le32_get(v.mv_data);
    if (ver == 1 && STORE_SCHEMA_VERSION == 2 && !s->readonly) {
      upgrade = true; /* schema 1 -> 2: new databases and the email index, below */
    } else if (ver == 1 && STORE_SCHEMA_VERSION == 2) {
      st = store__fail(s, NULL, STORE_SCHEMA,
                       "store_open(%s): the data has schema version 1 but this build of isoworld reads schema "
                       "version 2: open it writable once to upgrade it",
                       dir);
      goto fail;
    } else if (ver != STORE_SCHEMA_VERSION) {
      st = store__fail(s, NULL, STORE_SCHEMA,
                       "store_open(%s): the data has schema version %u but this build of isoworld "
                       "reads schema version %u (%s)",
                       dir, ver, STORE_SCHEMA_VERSION,
                       ver > STORE_SCHEMA_VERSION ? "written by a newer isoworld: upgrade"
                                                  : "written by an older isoworld: no migration exists");
      goto fail;
    }
  }

  for (int i = 0; i < STORE__DB_COUNT; i++) {
    if (i == STORE__DB_META) continue;
    rc = mdb_dbi_open(t, store__db_names[i], s->readonly ? 0 : MDB_CREATE, &dbi[i]);
    if (rc == MDB_NOTFOUND) {
      st = store__fail(s, NULL, STORE_CORRUPT, "store_open(%s): database '%s' is missing", dir, store__db_names[i]);
      goto fail;
    }
    if (rc) {
      st = store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): cannot open database '%s': %s", dir,
                       store__db_names[i], mdb_strerror(rc));
      goto fail;
    }
  }

  if (upgrade) {
    const char *why = "";
    rc = store__rebuild_email_index(t, dbi, &why);
    if (rc) {
      st = store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): upgrading schema 1 to 2: %s: %s", dir, why,
                       mdb_strerror(rc));
      goto fail;
    }
  }

  if (fresh || upgrade) {
    unsigned char b[4];
    store__le32_put(b, STORE_SCHEMA_VERSION);
    MDB_val k = {strlen("schema_version"), "schema_version"}, v = {4, b};
    rc = mdb_put(t, dbi[STORE__DB_META], &k, &v, 0);
    if (rc) {
      st = store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): cannot write schema_version: %s", dir,
                       mdb_strerror(rc));
      goto fail;
    }
  }

  /* Commit even a read txn: that is what keeps the dbi handles open for later txns. */
  rc = mdb_txn_commit(t);
  t = NULL;
  if (rc) {
    st = store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): cannot commit the initial transaction: %s", dir,
                     mdb_strerror(rc));
    goto fail;
  }
  memcpy(s->dbi, dbi, sizeof dbi);
  return STORE_OK;

fail:
  if (t) mdb_txn_abort(t);
  return st;
}

int store_open(store *s, const char *dir, const store_options *opt) {
  store_options o = {0};
  if (opt) o = *opt;
  if (!s) return STORE_INVALID;
  if (!dir || !*dir) return store__fail(s, NULL, STORE_INVALID, "store_open: directory is NULL or empty");
  if (s->env || s->path) return store__fail(s, NULL, STORE_INVALID, "store_open(%s): handle already used", dir);

  s->path = strdup(dir);
  if (!s->path) return store__fail(s, NULL, STORE_NOMEM, "store_open(%s): out of memory", dir);
  s->readonly = o.readonly;
  s->map_size = o.map_size ? o.map_size : STORE__DEFAULT_MAP_SIZE;
  unsigned readers = o.max_readers > STORE__MIN_READERS ? o.max_readers : STORE__MIN_READERS;

  struct stat sb;
  if (o.nolock && !o.readonly)
    return store__fail(s, NULL, STORE_INVALID, "store_open(%s): nolock is only allowed with readonly", dir);
  if (o.nosubdir) {
    if (o.readonly && (stat(dir, &sb) != 0 || !S_ISREG(sb.st_mode)))
      return store__fail(s, NULL, STORE_NOTFOUND, "store_open(%s): no such file (readonly open)", dir);
  } else if (!o.readonly) {
    char failed[256];
    int err = store__mkdir_p(dir, 0700, failed, sizeof failed);
    if (err)
      return store__fail(s, NULL, err == ENOMEM ? STORE_NOMEM : STORE_IO,
                         "store_open(%s): cannot create directory %s: %s", dir, failed, strerror(err));
  } else if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    return store__fail(s, NULL, STORE_NOTFOUND, "store_open(%s): no such directory (readonly open)", dir);
  }

  MDB_env *env = NULL;
  int rc = mdb_env_create(&env);
  if (rc) return store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): mdb_env_create: %s", dir, mdb_strerror(rc));
  if ((rc = mdb_env_set_maxdbs(env, STORE__MAX_DBS)) != 0 ||
      (rc = mdb_env_set_mapsize(env, (size_t)s->map_size)) != 0 || (rc = mdb_env_set_maxreaders(env, readers)) != 0) {
    mdb_env_close(env);
    return store__fail(s, NULL, store__map_mdb(rc), "store_open(%s): cannot configure LMDB: %s", dir, mdb_strerror(rc));
  }
  unsigned flags = MDB_NOTLS | (o.nosync ? MDB_NOSYNC : 0) | (o.readonly ? MDB_RDONLY : 0) |
                   (o.nosubdir ? MDB_NOSUBDIR : 0) | (o.nolock ? MDB_NOLOCK : 0);
  rc = mdb_env_open(env, dir, flags, 0600);
  if (rc) {
    int st = store__map_mdb(rc);
    if (rc == MDB_INVALID)
      store__fail(s, NULL, STORE_CORRUPT, "store_open(%s): %s%s is not an LMDB database (or its header is damaged): %s",
                  dir, dir, o.nosubdir ? "" : "/data.mdb", mdb_strerror(rc));
    else if (rc == MDB_VERSION_MISMATCH)
      store__fail(s, NULL, STORE_SCHEMA,
                  "store_open(%s): data.mdb or lock.mdb was written by an incompatible LMDB version: %s", dir,
                  mdb_strerror(rc));
    else if (rc == ENOENT && o.readonly)
      store__fail(s, NULL, STORE_NOTFOUND, "store_open(%s): no data.mdb (readonly open): %s", dir, mdb_strerror(rc));
    else
      store__fail(s, NULL, st, "store_open(%s): cannot open the LMDB environment: %s", dir, mdb_strerror(rc));
    mdb_env_close(env);
    return st;
  }

  /* A larger map recorded in an existing file wins over ours. */
  MDB_envinfo ei;
  if (mdb_env_info(env, &ei) == 0) s->map_size = ei.me_mapsize;

  /* A truncated file (a copy cut short) would make LMDB read past its end through the
   * map, which is SIGBUS rather than an error: refuse it here. */
  MDB_stat es;
  mdb_filehandle_t fd;
  if (mdb_env_info(env, &ei) == 0 && mdb_env_stat(env, &es) == 0 && mdb_env_get_fd(env, &fd) == 0 &&
      fstat(fd, &sb) == 0 && (uint64_t)sb.st_size < ((uint64_t)ei.me_last_pgno + 1) * es.ms_psize) {
    mdb_env_close(env);
    return store__fail(s, NULL, STORE_CORRUPT, "store_open(%s): the data file is truncated (%lld bytes, needs %llu)",
                       dir, (long long)sb.st_size, (unsigned long long)(((uint64_t)ei.me_last_pgno + 1) * es.ms_psize));
  }

  int st = store__init_dbs(s, env);
  if (st) {
    mdb_env_close(env);
    return st;
  }
  s->env = env;
  return STORE_OK;
}

void store_close(store *s) {
  if (!s) return;
  if (s->env) mdb_env_close(s->env);
  free(s->path);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

const char *store_path(const store *s) {
  return s ? s->path : NULL;
}

/* ------------------------------------------------------------------ transactions */

static int store__begin(store *s, bool write, store_txn **out) {
  const char *fn = write ? "store_write_begin" : "store_read_begin";
  if (!out) return s ? store__fail(s, NULL, STORE_INVALID, "%s: out is NULL", fn) : STORE_INVALID;
  *out = NULL;
  if (!s) return STORE_INVALID;
  if (!s->env) return store__fail(s, NULL, STORE_INVALID, "%s: the store is not open", fn);
  if (write && s->readonly) return store__fail(s, NULL, STORE_READONLY, "%s: the store was opened readonly", fn);
  if (write) {
    pthread_mutex_lock(&s->lock);
    bool self = s->writer_active && pthread_equal(s->writer, pthread_self());
    pthread_mutex_unlock(&s->lock);
    if (self) return store__fail(s, NULL, STORE_BUSY, "%s: this thread already holds the write transaction", fn);
  }
  store_txn *t = calloc(1, sizeof *t);
  if (!t) return store__fail(s, NULL, STORE_NOMEM, "%s: out of memory", fn);
  t->s = s;
  t->write = write;
  int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
  if (rc) {
    free(t);
    if (rc == MDB_MAP_RESIZED)
      return store__fail(s, NULL, STORE_BUSY, "%s: another process grew the map; reopen the store (%s)", fn,
                         mdb_strerror(rc));
    return store__fail(s, NULL, store__map_mdb(rc), "%s: %s", fn, mdb_strerror(rc));
  }
  if (write) {
    pthread_mutex_lock(&s->lock);
    s->writer_active = true;
    s->writer = pthread_self();
    pthread_mutex_unlock(&s->lock);
  }
  *out = t;
  return STORE_OK;
}

int store_read_begin(store *s, store_txn **out) {
  return store__begin(s, false, out);
}

int store_write_begin(store *s, store_txn **out) {
  return store__begin(s, true, out);
}

/* Clears the writer mark while the LMDB writer lock is still held, so the next writer's
 * mark cannot be overwritten by ours. */
static void store__writer_end(store_txn *t) {
  if (!t->write) return;
  pthread_mutex_lock(&t->s->lock);
  t->s->writer_active = false;
  pthread_mutex_unlock(&t->s->lock);
}

int store_commit(store_txn *t) {
  if (!t) return STORE_INVALID;
  store *s = t->s;
  store__writer_end(t);
  int rc = mdb_txn_commit(t->txn); /* frees the MDB_txn even on failure */
  int st = STORE_OK;
  if (rc == MDB_BAD_TXN)
    st = store__fail(s, NULL, STORE_BADTXN, "store_commit: nothing was committed: the transaction failed earlier (%s)",
                     t->errmsg[0] ? t->errmsg : mdb_strerror(rc));
  else if (rc)
    st = store__fail(s, NULL, store__map_mdb(rc), "store_commit: nothing was committed: %s%s", mdb_strerror(rc),
                     rc == MDB_MAP_FULL ? " (raise store_options.map_size)" : "");
  free(t);
  return st;
}

void store_abort(store_txn *t) {
  if (!t) return;
  store__writer_end(t);
  mdb_txn_abort(t->txn);
  free(t);
}

bool store_txn_is_write(const store_txn *t) {
  return t && t->write;
}

/* ------------------------------------------------------------------ meta */

int store__meta_get_u64(store_txn *t, const char *key, uint64_t dflt, uint64_t *out, const char *fn) {
  MDB_val v;
  int rc = store__meta_get_raw(t->txn, t->s->dbi[STORE__DB_META], key, &v);
  if (rc == MDB_NOTFOUND) {
    *out = dflt;
    return STORE_OK;
  }
  if (rc) return store__fail_mdb(t, rc, fn);
  if (v.mv_size != 8)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: meta record '%s' has %zu bytes, expected 8", fn, key, v.mv_size);
  *out = store__le64_get(v.mv_data);
  return STORE_OK;
}

int store__meta_put_u64(store_txn *t, const char *key, uint64_t value, const char *fn) {
  unsigned char b[8];
  store__le64_put(b, value);
  MDB_val k = {strlen(key), (void *)key}, v = {8, b};
  int rc = mdb_put(t->txn, t->s->dbi[STORE__DB_META], &k, &v, 0);
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}

int store_get_schema_version(store_txn *t, uint32_t *out) {
  int st = store__check_txn(t, false, "store_get_schema_version");
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "store_get_schema_version: out is NULL");
  MDB_val v;
  int rc = store__meta_get_raw(t->txn, t->s->dbi[STORE__DB_META], "schema_version", &v);
  if (rc == MDB_NOTFOUND) return store__fail(NULL, t, STORE_CORRUPT, "store_get_schema_version: the record is missing");
  if (rc) return store__fail_mdb(t, rc, "store_get_schema_version");
  if (v.mv_size != 4)
    return store__fail(NULL, t, STORE_CORRUPT, "store_get_schema_version: record has %zu bytes, expected 4", v.mv_size);
  *out = store__le32_get(v.mv_data);
  return STORE_OK;
}

int store_get_game_time(store_txn *t, uint64_t *out) {
  int st = store__check_txn(t, false, "store_get_game_time");
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "store_get_game_time: out is NULL");
  return store__meta_get_u64(t, "game_time", 0, out, "store_get_game_time");
}

int store_set_game_time(store_txn *t, uint64_t game_time) {
  int st = store__check_txn(t, true, "store_set_game_time");
  if (st) return st;
  return store__meta_put_u64(t, "game_time", game_time, "store_set_game_time");
}

int store_next_user_id(store_txn *t, uint64_t *out) {
  int st = store__check_txn(t, true, "store_next_user_id");
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "store_next_user_id: out is NULL");
  uint64_t next;
  st = store__meta_get_u64(t, "next_user_id", 1, &next, "store_next_user_id");
  if (st) return st;
  if (next == 0 || next == UINT64_MAX)
    return store__fail(NULL, t, STORE_CORRUPT, "store_next_user_id: counter holds %llu", (unsigned long long)next);
  st = store__meta_put_u64(t, "next_user_id", next + 1, "store_next_user_id");
  if (st) return st;
  *out = next;
  return STORE_OK;
}

/* ------------------------------------------------------------------ backup, info */

int store_backup(store *s, const char *dir, bool compact) {
  if (!s) return STORE_INVALID;
  if (!dir || !*dir) return store__fail(s, NULL, STORE_INVALID, "store_backup: directory is NULL or empty");
  if (!s->env) return store__fail(s, NULL, STORE_INVALID, "store_backup(%s): the store is not open", dir);
  pthread_mutex_lock(&s->lock);
  bool self = s->writer_active && pthread_equal(s->writer, pthread_self());
  pthread_mutex_unlock(&s->lock);
  if (self)
    return store__fail(s, NULL, STORE_BUSY, "store_backup(%s): called by the thread holding the write transaction",
                       dir);

  char failed[256];
  int err = store__mkdir_p(dir, 0700, failed, sizeof failed);
  if (err)
    return store__fail(s, NULL, err == ENOMEM ? STORE_NOMEM : STORE_IO,
                       "store_backup(%s): cannot create directory %s: %s", dir, failed, strerror(err));

  int rc = mdb_env_copy2(s->env, dir, compact ? MDB_CP_COMPACT : 0);
  if (rc == EEXIST)
    return store__fail(s, NULL, STORE_EXISTS,
                       "store_backup(%s): %s/data.mdb already exists; back up into a new directory", dir, dir);
  if (rc) {
    /* Do not leave a half-written copy that looks like a store. */
    size_t n = strlen(dir) + sizeof "/data.mdb";
    char *file = malloc(n);
    if (file) {
      snprintf(file, n, "%s/data.mdb", dir);
      unlink(file);
      free(file);
    }
    return store__fail(s, NULL, store__map_mdb(rc), "store_backup(%s): %s", dir, mdb_strerror(rc));
  }
  return STORE_OK;
}

int store_get_info(store_txn *t, store_info *out) {
  int st = store__check_txn(t, false, "store_get_info");
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "store_get_info: out is NULL");
  memset(out, 0, sizeof *out);
  MDB_envinfo ei;
  MDB_stat es;
  int rc = mdb_env_info(t->s->env, &ei);
  if (!rc) rc = mdb_env_stat(t->s->env, &es);
  if (rc) return store__fail_mdb(t, rc, "store_get_info");
  out->map_size = ei.me_mapsize;
  out->page_size = es.ms_psize;
  out->map_used = ((uint64_t)ei.me_last_pgno + 1) * es.ms_psize;
  out->last_txnid = ei.me_last_txnid;
  out->max_readers = ei.me_maxreaders;
  out->reader_slots_used = ei.me_numreaders;
  if ((st = store_get_schema_version(t, &out->schema_version)) != 0) return st;
  if ((st = store_get_game_time(t, &out->game_time)) != 0) return st;
  for (int i = 0; i < STORE__DB_COUNT && i < STORE_INFO_MAX_DBS; i++) {
    MDB_stat ms;
    rc = mdb_stat(t->txn, t->s->dbi[i], &ms);
    if (rc) return store__fail_mdb(t, rc, "store_get_info");
    out->dbs[i].name = store__db_names[i];
    out->dbs[i].entries = ms.ms_entries;
    out->dbs[i].bytes = ((uint64_t)ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages) * ms.ms_psize;
    out->dbs[i].depth = ms.ms_depth;
    out->n_dbs = (size_t)i + 1;
  }
  return STORE_OK;
}
