/*
 * store_int.h — internals shared by the files of persistence/. Never included outside
 * persistence/ (it pulls in lmdb.h, which must not leak into the rest of the project).
 *
 * store.c        lifecycle, errors, transactions, meta, backup, info
 * store_codec.c  pure encoders/decoders of the binary records (no LMDB)
 * store_data.c   users, code, memory, cpu, world on top of the two
 * store_player.c branches, segments, console queue, tokens, settings (schema 2)
 * store_admin.c  backup to a fd, admin log, data directory lock, verify and state hash
 */
#ifndef ISOWORLD_STORE_INT_H
#define ISOWORLD_STORE_INT_H

#include "store.h"

#include <lmdb.h>
#include <pthread.h>

/* The named databases. The order is the order of store_info.dbs. */
#define STORE__DB_MAP(X)      \
  X(META, "meta")             \
  X(USERS, "users")           \
  X(USERNAMES, "usernames")   \
  X(CODE, "code")             \
  X(CODE_STAMP, "code_stamp") \
  X(MEMORY, "memory")         \
  X(CPU, "cpu")               \
  X(WORLD, "world")           \
  X(EMAILS, "emails")         \
  X(BRANCHES, "branches")     \
  X(SEGMENTS, "segments")     \
  X(CONSOLE, "console")       \
  X(TOKENS, "tokens")

/* clang-format off */
enum {
#define STORE__DB_ENUM(id, name) STORE__DB_##id,
  STORE__DB_MAP(STORE__DB_ENUM)
#undef STORE__DB_ENUM
  STORE__DB_COUNT
};
/* clang-format on */

/* maxdbs: the databases above plus room for future ones without a format change. */
#define STORE__MAX_DBS 32
#define STORE__DEFAULT_MAP_SIZE (4ull << 30)
#define STORE__MIN_READERS 126u

struct store {
  MDB_env *env; /* NULL until store_open succeeds */
  MDB_dbi dbi[STORE__DB_COUNT];
  char *path;
  bool readonly;
  uint64_t map_size;

  /* Guards errmsg and the writer bookkeeping; taken only on failure paths and at
   * write_begin/end, never while LMDB may block. */
  pthread_mutex_t lock;
  char errmsg[STORE_ERRMSG_MAX];
  bool writer_active;
  pthread_t writer;
};

struct store_txn {
  store *s;
  MDB_txn *txn;
  bool write;
  char errmsg[STORE_ERRMSG_MAX];
};

/* Maps an LMDB or errno code to a store_status. */
int store__map_mdb(int rc);

/* Records a failure: formats the detail into txn->errmsg (if txn) and s->errmsg, and
 * returns status unchanged. printf-style. */
int store__fail(store *s, store_txn *txn, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Records an LMDB failure `rc` of operation `what` and returns the mapped status. */
int store__fail_mdb(store_txn *txn, int rc, const char *what);

/* Checks txn is non-NULL (STORE_INVALID) and, when want_write, a write txn
 * (STORE_READONLY), recording the detail under `fn`. */
int store__check_txn(store_txn *txn, bool want_write, const char *fn);

/* Meta u64 records (little-endian, 8 bytes). get: dflt when absent; STORE_CORRUPT on a
 * wrong size. fn names the caller in the detail. */
int store__meta_get_u64(store_txn *txn, const char *key, uint64_t dflt, uint64_t *out, const char *fn);
int store__meta_put_u64(store_txn *txn, const char *key, uint64_t value, const char *fn);

/* Helpers of the record files (store_data.c). */
/* Length of a NUL-terminated name in 1..max-1, or -1. */
long store__name_len(const char *s, size_t max);
bool store__has_prefix(const MDB_val *k, const void *prefix, size_t plen);
/* Calls visit(t, key, value, ud) for each record of dbi whose key starts with prefix
 * (plen 0: every record), in key order, until visit returns non-zero (returned as is).
 * LMDB's errors are recorded under fn. */
int store__each(store_txn *t, MDB_dbi dbi, const void *prefix, size_t plen, const char *fn,
                int (*visit)(store_txn *t, const MDB_val *k, const MDB_val *v, void *ud), void *ud);
/* Deletes every key of dbi starting with prefix; *n (may be NULL) counts them. */
int store__del_prefix(store_txn *t, MDB_dbi dbi, const void *prefix, size_t plen, size_t *n, const char *fn);
/* Deletes one key; STORE_NOTFOUND is returned unrecorded. */
int store__del_key(store_txn *t, MDB_dbi dbi, const void *key, size_t klen, const char *fn);
/* Rebuilds the email index from the users (schema 1 -> 2 upgrade). Raw txn, dbi table. */
int store__rebuild_email_index(MDB_txn *t, const MDB_dbi *dbi, const char **why);

/* Big-endian keys and little-endian values. */
void store__be64_put(unsigned char *p, uint64_t v);
uint64_t store__be64_get(const unsigned char *p);
void store__le32_put(unsigned char *p, uint32_t v);
uint32_t store__le32_get(const unsigned char *p);
void store__le64_put(unsigned char *p, uint64_t v);
uint64_t store__le64_get(const unsigned char *p);

/* ---- codec (store_codec.c): pure functions over byte buffers ---- */

/* Largest encoded user record. */
#define STORE__USER_REC_MAX 512
#define STORE__CPU_REC_SIZE 25

/* Encodes u into buf (STORE__USER_REC_MAX bytes); returns the length. u must have been
 * validated by store__user_validate. */
size_t store__user_encode(const store_user *u, unsigned char *buf);
/* Decodes a user record; STORE_CORRUPT on any malformed byte (detail in why). */
int store__user_decode(const void *data, size_t len, store_user *out, const char **why);
/* STORE_OK or STORE_INVALID with the reason in why. */
int store__user_validate(const store_user *u, const char **why);

void store__cpu_encode(const store_cpu *c, unsigned char *buf);
int store__cpu_decode(const void *data, size_t len, store_cpu *out, const char **why);

/* Lower-cases ASCII letters of name into out (STORE_USERNAME_MAX bytes); returns the
 * length, or -1 when name is empty or too long. */
int store__username_fold(const char *name, char *out);
/* The same for an email (STORE_EMAIL_MAX bytes); -1 when empty or too long. */
int store__email_fold(const char *email, char *out);

#endif /* ISOWORLD_STORE_INT_H */
