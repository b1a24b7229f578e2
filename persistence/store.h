/*
 * store.h — isoworld's durable state in an LMDB environment.
 *
 * The only public header of persistence/. It keeps users, player code (branches and
 * modules), player Memory, CPU state, world blobs and the game time in named LMDB
 * databases of one environment, and checks a schema version record at open. Every
 * change is made inside a transaction; a tick is one write transaction. It depends on
 * nothing else of isoworld, and no LMDB type or header crosses this file: handles are
 * opaque and LMDB's error codes are mapped to store_status.
 *
 * What it must not do: decide policy (limits on memory size, which branch runs, CPU
 * rules) — the server decides; hold global state — everything lives in the store handle;
 * block the server's loop thread — callers run writes on the tick/writer thread.
 *
 * Objects and their lifetimes:
 *   store      one open environment (a data directory). store_create, store_open,
 *              store_close. Never open the same directory twice in one process (an LMDB
 *              rule: closing one handle would drop the other's locks).
 *   store_txn  a read snapshot or the single write transaction. Ended exactly once by
 *              store_commit or store_abort, both of which free it. Every txn must be
 *              ended before store_close.
 *
 * Thread-safety:
 *   - store_read_begin may be called from any thread; a read txn may be used from any
 *     thread (the environment is opened with MDB_NOTLS), one thread at a time.
 *   - There is at most one write txn at a time (store_write_begin blocks until the
 *     previous one ends). A write txn must be used, committed and aborted on the thread
 *     that began it. That thread beginning a second one, or calling store_backup, gets
 *     STORE_BUSY instead of waiting for itself forever.
 *   - store_errmsg may be called from any thread.
 *
 * Borrowed pointers: functions that hand out `const void *` / `const char *` data point
 * into the LMDB map. In a read txn they stay valid until the txn ends. In a write txn they
 * stay valid only until the next write through that txn, or its end, whichever is first.
 * Never write through them.
 *
 * Errors: every function returning int returns STORE_OK (0) or a negative store_status.
 * After a failure, store_txn_errmsg(txn) (for calls on a txn) and store_errmsg(store)
 * (for any call) give a one-line detail that names the record and, when LMDB failed,
 * LMDB's own message. STORE_NOTFOUND from a lookup is an answer, not a failure: it leaves
 * both messages alone. When an LMDB write fails inside a write txn (STORE_FULL, STORE_IO,
 * ...), LMDB poisons the txn: every later call on it returns STORE_BADTXN, and it can only
 * be aborted (store_commit of it returns STORE_BADTXN and frees it). STORE_NOTFOUND,
 * STORE_EXISTS, STORE_INVALID and STORE_CORRUPT detected by the store itself leave the txn
 * usable.
 *
 * On-disk format (schema version 2). Keys are big-endian so range scans go in id order;
 * values are little-endian; user, cpu, branch and token records start with a
 * record-version byte. Every per-user key starts with the user id, so all of a user's
 * records of one kind are one range.
 *   meta        "schema_version" -> u32; "game_time" -> u64; "next_user_id" -> u64;
 *               "next_console_seq" -> u64; "setting:<name>" -> bytes;
 *               "next_adminlog_seq" -> u64; "adminlog:" u64 seq -> admin log entry
 *   users       u64 id -> user record
 *   usernames   ASCII-lower-cased username -> u64 id (big-endian)
 *   emails      ASCII-lower-cased email -> u64 id (big-endian)            (schema 2)
 *   code        u64 id | branch | '\0' | module -> u8 flags (bit 0: binary) | bytes
 *   code_stamp  u64 id -> u64 stamp
 *   branches    u64 id | branch -> branch record (flags, timestamp)       (schema 2)
 *   memory      u64 id -> u8 encoding (0: raw) | bytes
 *   segments    u64 id | u8 segment -> bytes; u64 id | 0xff -> active ids (schema 2)
 *   console     u64 id | u64 seq -> u8 0 | expression bytes              (schema 2)
 *   tokens      u64 id | 32-byte token hash -> token record               (schema 2)
 *   cpu         u64 id -> cpu record
 *   world       key string -> bytes (opaque to the store)
 * Schema 1 (no schema-2 databases) is upgraded in place by a writable store_open.
 */
#ifndef ISOWORLD_STORE_H
#define ISOWORLD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The schema this build reads and writes. A data directory with another version is
 * refused by store_open with STORE_SCHEMA, except schema 1, which a writable open
 * upgrades. */
#define STORE_SCHEMA_VERSION 2u

/* Status codes: 0 is OK, errors negative. X(name, value, text). */
#define STORE_STATUS_MAP(X)                                                        \
  X(OK, 0, "ok")                                                                   \
  X(NOTFOUND, -1, "not found")                                                     \
  X(EXISTS, -2, "already exists")                                                  \
  X(INVALID, -3, "invalid argument")                                               \
  X(NOMEM, -4, "out of memory")                                                    \
  X(IO, -5, "I/O error")                                                           \
  X(FULL, -6, "database full (map size or disk space exhausted)")                  \
  X(BUSY, -7, "busy (too many readers, or the environment is locked)")             \
  X(READONLY, -8, "the store or transaction is read-only")                         \
  X(SCHEMA, -9, "unsupported schema version, or not an isoworld data directory")   \
  X(CORRUPT, -10, "corrupt data (a record or the database file failed to decode)") \
  X(BADTXN, -11, "the transaction failed earlier and must be aborted")             \
  X(INTERNAL, -12, "internal error")

typedef enum {
#define STORE__ENUM(name, value, text) STORE_##name = value,
  STORE_STATUS_MAP(STORE__ENUM)
#undef STORE__ENUM
} store_status;

/* Text of a status; never NULL (unknown codes give "unknown error"). */
const char *store_strerror(int status);

/* Field sizes, in bytes including the terminating NUL. */
#define STORE_USERNAME_MAX 64
#define STORE_EMAIL_MAX 128
#define STORE_PASSWORD_HASH_MAX 128 /* fits libsodium's crypto_pwhash_STRBYTES */
#define STORE_BRANCH_MAX 64
#define STORE_MODULE_NAME_MAX 256
#define STORE_WORLD_KEY_MAX 256
#define STORE_ERRMSG_MAX 512

typedef struct store store;
typedef struct store_txn store_txn;

/* ------------------------------------------------------------------ lifecycle */

typedef struct store_options {
  uint64_t map_size;    /* maximum size of the database in bytes; 0 = 4 GiB. The file
                           is sparse: it only takes the space actually used. */
  unsigned max_readers; /* concurrent read txns; 0 = 126, values below 126 are raised */
  bool nosync;          /* MDB_NOSYNC: commits are not fsync'd (benchmarks only; a
                           system crash may lose or corrupt recent commits). Default
                           false: a commit that returned STORE_OK is on disk. */
  bool readonly;        /* open an existing store read-only: no write txn, nothing
                           created. */
  bool nosubdir;        /* `dir` names the data file itself (a backup written by
                           store_backup_fd) instead of a directory holding data.mdb;
                           LMDB's lock file is then "<file>-lock". No directory is
                           created. */
  bool nolock;          /* use no lock file at all (LMDB's MDB_NOLOCK). Only with
                           readonly, and only for a file no other process has open
                           (verifying a backup): nothing at all is written. */
} store_options;

/* Allocates an unopened store handle into *out. Errors: STORE_INVALID (out NULL),
 * STORE_NOMEM. Free it with store_close, whether or not store_open succeeded. */
int store_create(store **out);

/* Opens the store in directory `dir` (copied). opt may be NULL for defaults.
 * Unless readonly, creates `dir` with its missing parents (mode 0700) and, on an empty
 * environment, creates the databases and writes the schema version record.
 * On an existing environment, checks the schema version record.
 * Errors (store_errmsg(s) says which file and why):
 *   STORE_INVALID   s or dir NULL/empty, or s already opened.
 *   STORE_SCHEMA    the schema version differs from STORE_SCHEMA_VERSION (both are
 *                   named), the meta record is missing, or data.mdb is an LMDB
 *                   environment that is not an isoworld store.
 *   STORE_CORRUPT   data.mdb is not an LMDB file, is damaged or truncated.
 *   STORE_NOTFOUND  readonly and there is no store in dir.
 *   STORE_IO        dir cannot be created/accessed (e.g. it is a file, permission).
 *   STORE_BUSY, STORE_NOMEM.
 * After a failure the handle can only be closed (and store_errmsg read). */
int store_open(store *s, const char *dir, const store_options *opt);

/* Closes the environment and frees s. Every txn of s must have been ended. Valid after a
 * failed or without store_open; s may be NULL. */
void store_close(store *s);

/* Copies the detail of the most recent failure of any call on s or its txns (from any
 * thread) into buf (size bytes, always NUL-terminated when size > 0); returns buf.
 * "" when nothing failed yet. Safe to call concurrently with other calls on s. */
const char *store_errmsg(store *s, char *buf, size_t size);

/* The directory given to store_open (borrowed, valid until store_close), or NULL. */
const char *store_path(const store *s);

/* ------------------------------------------------------------------ transactions */

/* Begins a read-only snapshot of the last committed state into *out.
 * Errors: STORE_INVALID (store not open), STORE_BUSY (all reader slots in use),
 * STORE_NOMEM, STORE_IO. */
int store_read_begin(store *s, store_txn **out);

/* Begins the write transaction into *out, waiting for the previous writer to finish.
 * Must be ended on the calling thread. Errors: STORE_INVALID, STORE_READONLY (store
 * opened readonly), STORE_BUSY (this thread already holds the write txn), STORE_NOMEM,
 * STORE_IO. */
int store_write_begin(store *s, store_txn **out);

/* Commits (or, for a read txn, simply ends) txn and frees it — also on failure, in which
 * case nothing of the txn was written. Errors: STORE_BADTXN (an earlier write failed),
 * STORE_FULL, STORE_IO; the detail goes to store_errmsg. txn NULL: STORE_INVALID. */
int store_commit(store_txn *txn);

/* Discards txn's changes (if any) and frees it. txn may be NULL. */
void store_abort(store_txn *txn);

/* True for a write txn. */
bool store_txn_is_write(const store_txn *txn);

/* Detail of the most recent failed call on txn, "" if none. Borrowed: valid until the
 * next call on txn or its end. */
const char *store_txn_errmsg(const store_txn *txn);

/* ------------------------------------------------------------------ meta */

/* The schema version recorded in the store. */
int store_get_schema_version(store_txn *txn, uint32_t *out);

/* The game time (tick number) last set; 0 if never set. Errors: STORE_CORRUPT. */
int store_get_game_time(store_txn *txn, uint64_t *out);

/* Sets the game time. Write txn only (else STORE_READONLY). */
int store_set_game_time(store_txn *txn, uint64_t game_time);

/* ------------------------------------------------------------------ users */

/* A user, by value. Strings are NUL-terminated within their arrays. */
typedef struct store_user {
  uint64_t id;                                 /* > 0; see store_next_user_id */
  char username[STORE_USERNAME_MAX];           /* 1..63 bytes, unique ignoring ASCII case */
  char email[STORE_EMAIL_MAX];                 /* may be empty */
  char password_hash[STORE_PASSWORD_HASH_MAX]; /* opaque to the store; may be empty */
  char active_branch[STORE_BRANCH_MAX];        /* branch the server runs; may be empty */
  int32_t cpu_limit;                           /* ms per tick */
  uint32_t flags;                              /* meaning defined by the server */
  int64_t created_ms;                          /* Unix time in ms */
} store_user;

/* Inserts or replaces the user u->id and keeps the username and email indexes consistent
 * (renaming frees the old name; an empty email has no index entry). Write txn only. Also
 * raises the next_user_id counter above u->id.
 * Errors: STORE_INVALID (id 0, username empty or not NUL-terminated within its array, a
 * string field not NUL-terminated), STORE_EXISTS (another user has this username or this
 * non-empty email, ignoring ASCII case; nothing was changed), STORE_READONLY. */
int store_user_put(store_txn *txn, const store_user *u);

/* Copies user `id` into *out. Errors: STORE_NOTFOUND, STORE_CORRUPT (the record fails to
 * decode; *out is then unspecified). */
int store_user_get(store_txn *txn, uint64_t id, store_user *out);

/* Finds a user by username, ignoring ASCII case. Errors: STORE_NOTFOUND, STORE_INVALID
 * (NULL/empty/too long username), STORE_CORRUPT. */
int store_user_find(store_txn *txn, const char *username, store_user *out);

/* Finds a user by email, ignoring ASCII case. Errors: STORE_NOTFOUND, STORE_INVALID
 * (NULL/empty/too long email), STORE_CORRUPT. */
int store_user_find_email(store_txn *txn, const char *email, store_user *out);

/* Deletes user `id`, its username and email index entries, and all of its code, code
 * stamp, branches, memory, segments, console queue, tokens and CPU records. Write txn
 * only. Errors: STORE_NOTFOUND (no such user). */
int store_user_delete(store_txn *txn, uint64_t id);

/* Number of users. */
int store_user_count(store_txn *txn, size_t *out);

/* Allocates a fresh user id: returns the counter (first id is 1) and advances it.
 * Ids are never reused, even after store_user_delete. Write txn only. */
int store_next_user_id(store_txn *txn, uint64_t *out);

/* Calls fn for each user in increasing id order. u is valid only during the call. fn
 * must not write through txn. If fn returns non-zero, iteration stops and that value is
 * returned (use positive values to tell them from store errors). Errors: STORE_CORRUPT
 * (a record fails to decode; iteration stops there). */
int store_user_iter(store_txn *txn, int (*fn)(const store_user *u, void *ud), void *ud);

/* ------------------------------------------------------------------ code */

/* One module of a branch. Pointers are borrowed (see "Borrowed pointers" above). */
typedef struct store_code_module {
  const char *name; /* NUL-terminated */
  const void *data;
  size_t len;
  bool binary; /* bytes of a binary module (e.g. wasm), else JS source */
} store_code_module;

/* Branch: 1..63 bytes; module name: 1..255 bytes; both NUL-terminated C strings.
 * Other values give STORE_INVALID. */

/* Inserts or replaces one module (data copied; len may be 0). Write txn only. */
int store_code_put_module(store_txn *txn, uint64_t uid, const char *branch, const char *module, const void *data,
                          size_t len, bool binary);

/* Reads one module into *out (name is `module` itself). Errors: STORE_NOTFOUND,
 * STORE_CORRUPT. */
int store_code_get_module(store_txn *txn, uint64_t uid, const char *branch, const char *module, store_code_module *out);

/* Deletes one module. Write txn only. Errors: STORE_NOTFOUND. */
int store_code_delete_module(store_txn *txn, uint64_t uid, const char *branch, const char *module);

/* Calls fn for each module of one branch of one user, in byte order of module names.
 * m (and m->name) is valid only during the call; m->data as for borrowed pointers.
 * fn must not write through txn. Stop/return as store_user_iter. A branch without modules
 * simply makes no call. */
int store_code_iter_branch(store_txn *txn, uint64_t uid, const char *branch,
                           int (*fn)(const store_code_module *m, void *ud), void *ud);

/* Calls fn once for each branch of user uid that has at least one module, in byte
 * order. branch is valid only during the call. Stop/return as store_user_iter. */
int store_code_iter_branches(store_txn *txn, uint64_t uid, int (*fn)(const char *branch, void *ud), void *ud);

/* Deletes every module of one branch. Write txn only. Errors: STORE_NOTFOUND (the
 * branch had no module). */
int store_code_delete_branch(store_txn *txn, uint64_t uid, const char *branch);

/* A per-user code stamp (a revision counter or a timestamp: the server's choice) so the
 * server knows when to reload a player's code. get gives 0 if never set. */
int store_code_set_stamp(store_txn *txn, uint64_t uid, uint64_t stamp);
int store_code_get_stamp(store_txn *txn, uint64_t uid, uint64_t *out);

/* ------------------------------------------------------------------ memory */

/* Stores the player's Memory string (copied; len may be 0). Write txn only. */
int store_memory_put(store_txn *txn, uint64_t uid, const void *data, size_t len);

/* Borrowed pointer to the player's Memory (not NUL-terminated) and its length.
 * Errors: STORE_NOTFOUND (never stored), STORE_CORRUPT. */
int store_memory_get(store_txn *txn, uint64_t uid, const char **data, size_t *len);

/* Deletes the player's Memory. Write txn only. Errors: STORE_NOTFOUND. */
int store_memory_delete(store_txn *txn, uint64_t uid);

/* ------------------------------------------------------------------ cpu */

typedef struct store_cpu {
  int32_t limit;        /* ms per tick */
  int64_t bucket;       /* accumulated unused CPU, ms */
  int32_t last_used_ms; /* CPU used in the last tick that ran */
  uint64_t last_tick;   /* game time of that tick */
} store_cpu;

/* Write txn only. */
int store_cpu_put(store_txn *txn, uint64_t uid, const store_cpu *cpu);
/* Errors: STORE_NOTFOUND, STORE_CORRUPT. */
int store_cpu_get(store_txn *txn, uint64_t uid, store_cpu *out);

/* ------------------------------------------------------------------ branches */

/* A branch's own record: which branch runs (flags) and when its code last changed. The
 * modules live in the code records (store_code_*); store_branch_delete removes both. */
#define STORE_BRANCH_ACTIVE_WORLD 0x1u
#define STORE_BRANCH_ACTIVE_SIM 0x2u

typedef struct store_branch {
  char name[STORE_BRANCH_MAX]; /* 1..63 bytes */
  uint32_t flags;              /* STORE_BRANCH_ACTIVE_* (others: the server's) */
  int64_t timestamp_ms;        /* Unix time in ms of the last change of its modules */
} store_branch;

/* Inserts or replaces the record of branch b->name. Write txn only. Errors:
 * STORE_INVALID (name empty, too long or not NUL-terminated). */
int store_branch_put(store_txn *txn, uint64_t uid, const store_branch *b);
/* Errors: STORE_NOTFOUND, STORE_INVALID, STORE_CORRUPT. */
int store_branch_get(store_txn *txn, uint64_t uid, const char *name, store_branch *out);
/* Deletes the branch record and every module of the branch. Write txn only. Errors:
 * STORE_NOTFOUND (neither a record nor a module existed). */
int store_branch_delete(store_txn *txn, uint64_t uid, const char *name);
/* Calls fn for each branch record of user uid, in byte order of names. b is valid only
 * during the call. fn must not write through txn. Stop/return as store_user_iter. */
int store_branch_iter(store_txn *txn, uint64_t uid, int (*fn)(const store_branch *b, void *ud), void *ud);
/* Number of branch records of user uid. */
int store_branch_count(store_txn *txn, uint64_t uid, size_t *out);

/* ------------------------------------------------------------------ segments */

/* RawMemory segments: raw bytes per user and segment id (0..STORE_SEGMENT_ID_MAX; which
 * ids and sizes are allowed is the server's policy), and the list of ids the player asked
 * to read (RawMemory.setActiveSegments). */
#define STORE_SEGMENT_ID_MAX 254
#define STORE_SEGMENTS_ACTIVE_MAX 100

/* Stores segment `id` (data copied; len may be 0). Write txn only. */
int store_segment_put(store_txn *txn, uint64_t uid, int id, const void *data, size_t len);
/* Borrowed pointer to segment `id`. Errors: STORE_NOTFOUND (never written). */
int store_segment_get(store_txn *txn, uint64_t uid, int id, const char **data, size_t *len);
/* Errors: STORE_NOTFOUND. Write txn only. */
int store_segment_delete(store_txn *txn, uint64_t uid, int id);
/* Replaces the active list with ids[0..n) (n <= STORE_SEGMENTS_ACTIVE_MAX, each a valid
 * id; n 0 clears it). Write txn only. */
int store_segments_set_active(store_txn *txn, uint64_t uid, const int *ids, size_t n);
/* Copies up to cap active ids into ids and their count into *n (0 if never set). */
int store_segments_get_active(store_txn *txn, uint64_t uid, int *ids, size_t cap, size_t *n);

/* ------------------------------------------------------------------ console queue */

/* Console commands waiting for the player's next run, in the order queued. Each gets a
 * sequence number from one counter of the store (increasing, never reused). */

/* Appends an expression (copied; 1..65535 bytes). *seq (may be NULL) is its number.
 * Write txn only. */
int store_console_push(store_txn *txn, uint64_t uid, const char *expr, size_t len, uint64_t *seq);
/* Calls fn for each queued expression of uid, oldest first. expr is borrowed (not
 * NUL-terminated). fn must not write through txn. Stop/return as store_user_iter. */
int store_console_iter(store_txn *txn, uint64_t uid, int (*fn)(uint64_t seq, const char *expr, size_t len, void *ud),
                       void *ud);
/* Deletes the queued expressions of uid numbered <= upto. *n (may be NULL) counts them.
 * Write txn only. */
int store_console_trim(store_txn *txn, uint64_t uid, uint64_t upto, size_t *n);

/* ------------------------------------------------------------------ tokens */

/* Long-lived API tokens, stored by a hash of the token (never the token itself) under
 * their user, so a user's tokens are one range and a user's deletion drops them. */
#define STORE_TOKEN_HASH_BYTES 32
#define STORE_TOKEN_LABEL_MAX 64

typedef struct store_token {
  int64_t created_ms;
  int64_t expires_ms; /* 0: never */
  char label[STORE_TOKEN_LABEL_MAX];
} store_token;

/* Inserts or replaces. Write txn only. STORE_INVALID for a label not NUL-terminated. */
int store_token_put(store_txn *txn, uint64_t uid, const unsigned char hash[STORE_TOKEN_HASH_BYTES],
                    const store_token *tok);
/* Errors: STORE_NOTFOUND, STORE_CORRUPT. */
int store_token_get(store_txn *txn, uint64_t uid, const unsigned char hash[STORE_TOKEN_HASH_BYTES], store_token *out);
/* Errors: STORE_NOTFOUND. Write txn only. */
int store_token_delete(store_txn *txn, uint64_t uid, const unsigned char hash[STORE_TOKEN_HASH_BYTES]);
/* Calls fn for each token of uid in hash order; hash and tok valid during the call only.
 * Stop/return as store_user_iter. */
int store_token_iter(store_txn *txn, uint64_t uid,
                     int (*fn)(const unsigned char *hash, const store_token *tok, void *ud), void *ud);

/* ------------------------------------------------------------------ settings */

/* Small server-wide values (e.g. a signing key) by name (1..200 bytes). get: borrowed
 * pointer; STORE_NOTFOUND if never set. put: write txn only. */
int store_setting_put(store_txn *txn, const char *name, const void *data, size_t len);
int store_setting_get(store_txn *txn, const char *name, const void **data, size_t *len);

/* ------------------------------------------------------------------ world */

/* Opaque blobs of the world (e.g. one per room) under string keys of 1..255 bytes. The
 * encoding of the bytes belongs to the caller. Keys sort bytewise, so a common prefix
 * ("room:") makes a contiguous range. */
int store_world_put(store_txn *txn, const char *key, const void *data, size_t len);
/* Errors: STORE_NOTFOUND. */
int store_world_get(store_txn *txn, const char *key, const void **data, size_t *len);
/* Errors: STORE_NOTFOUND. */
int store_world_delete(store_txn *txn, const char *key);
/* Calls fn for each key starting with prefix ("" or NULL: all), in byte order. key is
 * valid only during the call; data as for borrowed pointers. Stop/return as
 * store_user_iter. */
int store_world_iter(store_txn *txn, const char *prefix,
                     int (*fn)(const char *key, const void *data, size_t len, void *ud), void *ud);

/* ------------------------------------------------------------------ backup, info */

/* Writes a consistent copy of the store, as of the last commit, to directory `dir`
 * (created like store_open's; it must not already hold a data.mdb), while the store stays
 * in use. compact: skip free pages (smaller copy, slower). The copy is itself a store
 * that store_open opens. Blocks writers only briefly (compact: not at all). Must not be
 * called from a thread that holds the write txn (it would wait for itself: STORE_BUSY).
 * A failed copy is removed. Errors: STORE_EXISTS (dir/data.mdb exists), STORE_BUSY,
 * STORE_FULL (disk full), STORE_IO, STORE_INVALID. */
int store_backup(store *s, const char *dir, bool compact);

typedef struct store_db_info {
  const char *name; /* static string */
  uint64_t entries;
  uint64_t bytes; /* pages used by the database times the page size */
  uint32_t depth; /* B-tree depth */
} store_db_info;

/* The same consistent copy written to an open file descriptor (a file or a pipe) instead
 * of a directory: the bytes are one data.mdb file, which store_open opens with
 * options.nosubdir. The snapshot is taken before the first byte is written, so a reader
 * of a pipe knows the snapshot exists once it has received anything. fd is not closed.
 * Same rules and errors as store_backup (no STORE_EXISTS). */
int store_backup_fd(store *s, int fd, bool compact);

#define STORE_INFO_MAX_DBS 16

typedef struct store_info {
  uint32_t schema_version;
  uint64_t game_time;
  uint64_t map_size; /* configured maximum, bytes */
  uint64_t map_used; /* bytes of the file in use (up to the last used page) */
  uint32_t page_size;
  uint64_t last_txnid;
  uint32_t max_readers;
  uint32_t reader_slots_used; /* high-water mark of reader slots in the lock file */
  size_t n_dbs;
  store_db_info dbs[STORE_INFO_MAX_DBS];
} store_info;

/* Fills *out from txn's snapshot (counts) and the environment (sizes). For debugging and
 * admin views. */
int store_get_info(store_txn *txn, store_info *out);

/* ------------------------------------------------------------------ admin log */

/* What admins did (store_admin.c), kept in the meta database under "adminlog:" + u64
 * sequence number (big-endian), so the newest STORE_ADMIN_LOG_KEEP entries survive and
 * the schema does not change. Not part of the state hash. */
#define STORE_ADMIN_WHO_MAX 128
#define STORE_ADMIN_WHAT_MAX 512
#define STORE_ADMIN_LOG_KEEP 10000

typedef struct store_admin_entry {
  uint64_t seq;                    /* set by store_admin_log_append; first is 1 */
  int64_t time_ms;                 /* Unix time in ms */
  char who[STORE_ADMIN_WHO_MAX];   /* e.g. "alice@127.0.0.1" */
  char what[STORE_ADMIN_WHAT_MAX]; /* e.g. "users ban bob" */
} store_admin_entry;

/* Appends e (seq is assigned into e->seq) and drops the entry that falls out of the
 * last STORE_ADMIN_LOG_KEEP. Write txn only. STORE_INVALID if a string is not
 * NUL-terminated within its array. */
int store_admin_log_append(store_txn *txn, store_admin_entry *e);
/* Calls fn for each entry, oldest first, or newest first when `newest_first`. e is
 * valid only during the call. Stop/return as store_user_iter. Errors: STORE_CORRUPT. */
int store_admin_log_iter(store_txn *txn, bool newest_first, int (*fn)(const store_admin_entry *e, void *ud), void *ud);

/* ------------------------------------------------------------------ verify, state hash */

/*
 * The state hash: BLAKE2b-256 over a canonical byte stream of what the store persists,
 * read from one snapshot: every record of every database in LMDB key order, databases in
 * byte order of their names, each record as (u32 key length, key, u32 value length,
 * value). Left out are the meta records that are no part of the world: settings (the
 * session-signing key) and the admin log; the other meta records (schema version, game
 * time, id and sequence counters) are in. So two stores with equal hashes hold the same
 * users, code, branches, Memory, segments, console queues, tokens, CPU accounts, world
 * records and game time, byte for byte; a backup and the store it was taken from at that
 * moment have equal hashes, and admin actions that change nothing of the world (pause,
 * the admin log) do not change it.
 */
#define STORE_STATE_HASH_BYTES 32

/* The state hash of txn's snapshot (and, if game_time is not NULL, its game time). */
int store_state_hash(store_txn *txn, unsigned char out[STORE_STATE_HASH_BYTES], uint64_t *game_time);

typedef struct store_verify_report {
  uint32_t schema_version;
  uint64_t game_time;
  uint64_t records; /* every record walked, in every database */
  uint64_t bytes;   /* their keys and values */
  uint64_t users, branches, modules, memories, segments, console, tokens, cpu, world, admin_log;
  uint64_t problems; /* records that failed a check (each also reported to `problem`) */
  unsigned char state_hash[STORE_STATE_HASH_BYTES];
} store_verify_report;

/* Reads every record of txn's snapshot and checks it: each record kind decodes (users,
 * CPU, branches, tokens, modules, Memory, segments, console entries, meta and admin log
 * records), keys have their format, indexes (usernames, emails) agree with the users,
 * every per-user record belongs to an existing user, counters are past what they
 * numbered. Each problem is counted and passed to `problem` (may be NULL; the first 1000
 * only) as a one-line text. Also computes the state hash. Returns STORE_OK when the walk
 * completed — look at out->problems — or an error when LMDB itself failed (a damaged
 * file: STORE_CORRUPT). Read-only; works on a read txn. */
int store_verify(store_txn *txn, store_verify_report *out, void (*problem)(const char *msg, void *ud), void *ud);

/* ------------------------------------------------------------------ data directory lock */

/* Which process owns a data directory: an flock on "<dir>/isoworld.lock" that records
 * the holder's pid and purpose ("server", "restore"). It goes away with the process,
 * kill -9 included, so it is never stale. A server holds it while it runs; a restore
 * holds it while it replaces data.mdb; neither starts while the other holds it. */
typedef struct store_dir_lock store_dir_lock;

/* Takes the lock of `dir` (created with its parents, mode 0700, if missing) into *out.
 * STORE_BUSY when another open holds it: then *holder_pid (may be NULL; 0 if unknown)
 * and holder (may be NULL, cap bytes) say who. STORE_IO and STORE_NOMEM otherwise. The
 * lock is not inherited across exec. */
int store_dir_lock_take(const char *dir, const char *purpose, store_dir_lock **out, long *holder_pid, char *holder,
                        size_t cap);
/* Releases the lock and frees l (NULL: no-op). */
void store_dir_lock_release(store_dir_lock *l);

#ifdef __cplusplus
}
#endif

#endif /* ISOWORLD_STORE_H */
