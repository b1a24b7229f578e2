/*
 * test_persistence.c — unit tests of persistence/ (the LMDB-backed store).
 *
 * Each test gets a fresh directory from mkdtemp under /tmp, removed afterwards. Tests
 * that need bytes the store would never write (another schema version, a damaged record,
 * a foreign LMDB environment) write them with LMDB directly, with the store closed: that
 * is the on-disk format documented in store.h, and the only place outside persistence/
 * allowed to include lmdb.h.
 *
 * The crash test forks a child that commits ticks in a loop and kills it with SIGKILL at
 * a random moment; set ISOWORLD_TEST_NO_FORK=1 to skip it (e.g. under valgrind).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

typedef struct {
  char dir[256]; /* the mkdtemp directory */
  char sub[320]; /* dir/data: where most tests put the store */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/isoworld-test-persistence-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->sub, sizeof f->sub, "%s/data", f->dir);
  *state = f;
  return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static int teardown(void **state) {
  fixture *f = *state;
  nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static store *open_ok(const char *dir, const store_options *opt) {
  store *s = NULL;
  assert_int_equal(store_create(&s), STORE_OK);
  int rc = store_open(s, dir, opt);
  if (rc != STORE_OK) {
    char msg[STORE_ERRMSG_MAX];
    fprintf(stderr, "store_open(%s): %s: %s\n", dir, store_strerror(rc), store_errmsg(s, msg, sizeof msg));
  }
  assert_int_equal(rc, STORE_OK);
  return s;
}

/* Opens dir expecting failure `want`; returns the detail message in msg. */
static void open_fails(const char *dir, const store_options *opt, int want, char *msg, size_t cap) {
  store *s = NULL;
  assert_int_equal(store_create(&s), STORE_OK);
  int rc = store_open(s, dir, opt);
  store_errmsg(s, msg, cap);
  if (rc != want) fprintf(stderr, "store_open(%s) = %s (%s)\n", dir, store_strerror(rc), msg);
  assert_int_equal(rc, want);
  /* After a failed open the handle refuses transactions and closes cleanly. */
  store_txn *t = (store_txn *)1;
  assert_int_equal(store_read_begin(s, &t), STORE_INVALID);
  assert_null(t);
  store_close(s);
}

static store_txn *wbegin(store *s) {
  store_txn *t = NULL;
  assert_int_equal(store_write_begin(s, &t), STORE_OK);
  assert_non_null(t);
  return t;
}

static store_txn *rbegin(store *s) {
  store_txn *t = NULL;
  assert_int_equal(store_read_begin(s, &t), STORE_OK);
  assert_non_null(t);
  return t;
}

static store_user mkuser(uint64_t id, const char *name) {
  store_user u;
  memset(&u, 0, sizeof u);
  u.id = id;
  snprintf(u.username, sizeof u.username, "%s", name);
  snprintf(u.email, sizeof u.email, "%s@example.org", name);
  snprintf(u.password_hash, sizeof u.password_hash, "$argon2id$v=19$m=65536,t=2,p=1$%s", name);
  snprintf(u.active_branch, sizeof u.active_branch, "default");
  u.cpu_limit = 20 + (int32_t)id;
  u.flags = (uint32_t)id * 3u;
  u.created_ms = 1700000000000 + (int64_t)id;
  return u;
}

static void assert_user_eq(const store_user *a, const store_user *b) {
  assert_int_equal(a->id, b->id);
  assert_string_equal(a->username, b->username);
  assert_string_equal(a->email, b->email);
  assert_string_equal(a->password_hash, b->password_hash);
  assert_string_equal(a->active_branch, b->active_branch);
  assert_int_equal(a->cpu_limit, b->cpu_limit);
  assert_int_equal(a->flags, b->flags);
  assert_int_equal(a->created_ms, b->created_ms);
}

static void be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

/* Raw LMDB access, with the store closed. */
static void raw_put(const char *dir, const char *db, const void *k, size_t kl, const void *v, size_t vl) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
  assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
  MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
  assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

/* Copies a raw value into buf; returns its length, or -1 if absent. */
static long raw_get(const char *dir, const char *db, const void *k, size_t kl, void *buf, size_t cap) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
  assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
  long n = -1;
  if (mdb_dbi_open(txn, db, 0, &dbi) == 0) {
    MDB_val key = {kl, (void *)k}, val;
    if (mdb_get(txn, dbi, &key, &val) == 0) {
      assert_true(val.mv_size <= cap);
      memcpy(buf, val.mv_data, val.mv_size);
      n = (long)val.mv_size;
    }
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return n;
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* ------------------------------------------------------------------ lifecycle */

static void test_persistence_open_creates_dir_and_schema(void **state) {
  fixture *f = *state;
  char dir[400], path[450];
  snprintf(dir, sizeof dir, "%s/a/b/c", f->dir);
  assert_false(file_exists(dir));

  store *s = open_ok(dir, NULL);
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0700);
  snprintf(path, sizeof path, "%s/data.mdb", dir);
  assert_true(file_exists(path));
  assert_string_equal(store_path(s), dir);

  store_txn *t = rbegin(s);
  assert_false(store_txn_is_write(t));
  uint32_t ver = 0;
  assert_int_equal(store_get_schema_version(t, &ver), STORE_OK);
  assert_int_equal(ver, STORE_SCHEMA_VERSION);
  uint64_t gt = 99;
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, 0);
  size_t n = 99;
  assert_int_equal(store_user_count(t, &n), STORE_OK);
  assert_int_equal(n, 0);
  store_info info;
  assert_int_equal(store_get_info(t, &info), STORE_OK);
  assert_int_equal(info.schema_version, STORE_SCHEMA_VERSION);
  assert_int_equal(info.map_size, 4ull << 30);
  assert_true(info.max_readers >= 126);
  assert_int_equal(info.n_dbs, 13);
  assert_string_equal(info.dbs[0].name, "meta");
  assert_int_equal(info.dbs[0].entries, 1); /* the schema version record */
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);

  /* The schema record is really on disk, in the documented form. */
  unsigned char v[8];
  assert_int_equal(raw_get(dir, "meta", "schema_version", 14, v, sizeof v), 4);
  assert_int_equal(v[0] | v[1] << 8 | v[2] << 16 | (uint32_t)v[3] << 24, STORE_SCHEMA_VERSION);
}

static void test_persistence_reopen_keeps_data(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  store_user u = mkuser(7, "Keeper");
  assert_int_equal(store_user_put(t, &u), STORE_OK);
  assert_int_equal(store_code_put_module(t, 7, "default", "main", "module.exports.loop=1", 21, false), STORE_OK);
  assert_int_equal(store_memory_put(t, 7, "{\"a\":1}", 7), STORE_OK);
  assert_int_equal(store_world_put(t, "room:W1N1", "xyz", 3), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);

  s = open_ok(f->sub, NULL);
  t = rbegin(s);
  store_user got;
  assert_int_equal(store_user_get(t, 7, &got), STORE_OK);
  assert_user_eq(&got, &u);
  store_code_module m;
  assert_int_equal(store_code_get_module(t, 7, "default", "main", &m), STORE_OK);
  assert_int_equal(m.len, 21);
  assert_memory_equal(m.data, "module.exports.loop=1", 21);
  const char *mem;
  size_t ml;
  assert_int_equal(store_memory_get(t, 7, &mem, &ml), STORE_OK);
  assert_int_equal(ml, 7);
  assert_memory_equal(mem, "{\"a\":1}", 7);
  const void *w;
  size_t wl;
  assert_int_equal(store_world_get(t, "room:W1N1", &w, &wl), STORE_OK);
  assert_int_equal(wl, 3);
  assert_memory_equal(w, "xyz", 3);
  store_abort(t);
  store_close(s);

  /* A readonly open sees the same data and refuses to write. */
  store_options ro = {.readonly = true};
  s = open_ok(f->sub, &ro);
  t = rbegin(s);
  assert_int_equal(store_user_get(t, 7, &got), STORE_OK);
  assert_string_equal(got.username, "Keeper");
  store_abort(t);
  store_txn *wt = (store_txn *)1;
  assert_int_equal(store_write_begin(s, &wt), STORE_READONLY);
  assert_null(wt);
  store_close(s);
}

static void test_persistence_game_time_roundtrip(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  assert_int_equal(store_set_game_time(t, 123456789012ull), STORE_OK);
  uint64_t gt = 0;
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK); /* visible inside the txn */
  assert_int_equal(gt, 123456789012ull);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);

  s = open_ok(f->sub, NULL);
  t = rbegin(s);
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, 123456789012ull);
  store_abort(t);

  t = wbegin(s);
  assert_int_equal(store_set_game_time(t, 5), STORE_OK);
  store_abort(t);
  store_close(s);

  s = open_ok(f->sub, NULL);
  t = rbegin(s);
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, 123456789012ull);
  store_abort(t);
  store_close(s);
}

static void test_persistence_schema_mismatch_refused(void **state) {
  fixture *f = *state;
  store_close(open_ok(f->sub, NULL));
  char msg[STORE_ERRMSG_MAX];

  unsigned char v3[4] = {STORE_SCHEMA_VERSION + 1, 0, 0, 0};
  raw_put(f->sub, "meta", "schema_version", 14, v3, 4);
  open_fails(f->sub, NULL, STORE_SCHEMA, msg, sizeof msg);
  assert_non_null(strstr(msg, "schema version 3"));
  assert_non_null(strstr(msg, "version 2"));
  assert_non_null(strstr(msg, "newer"));
  /* The refusal did not "fix" the record. */
  unsigned char got[8];
  assert_int_equal(raw_get(f->sub, "meta", "schema_version", 14, got, sizeof got), 4);
  assert_int_equal(got[0], STORE_SCHEMA_VERSION + 1);

  unsigned char v0[4] = {0, 0, 0, 0};
  raw_put(f->sub, "meta", "schema_version", 14, v0, 4);
  open_fails(f->sub, NULL, STORE_SCHEMA, msg, sizeof msg);
  assert_non_null(strstr(msg, "older"));

  /* Wrong size of the record itself: corrupt. */
  raw_put(f->sub, "meta", "schema_version", 14, "\1\0", 2);
  open_fails(f->sub, NULL, STORE_CORRUPT, msg, sizeof msg);
  assert_non_null(strstr(msg, "schema_version"));

  /* Back to the current version: opens again. */
  unsigned char vc[4] = {STORE_SCHEMA_VERSION, 0, 0, 0};
  raw_put(f->sub, "meta", "schema_version", 14, vc, 4);
  store_close(open_ok(f->sub, NULL));
}

/* A schema 1 store (no emails index, no schema-2 databases) is refused read-only and
 * upgraded by a writable open: its users are indexed by email. */
static void test_persistence_schema1_upgraded(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  store_user a = mkuser(1, "alice"), b = mkuser(2, "bob");
  assert_int_equal(store_user_put(t, &a), STORE_OK);
  assert_int_equal(store_user_put(t, &b), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
  /* Make it look like schema 1: version 1 and an empty email index. */
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
  assert_int_equal(mdb_env_open(env, f->sub, 0, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "emails", 0, &dbi), 0);
  assert_int_equal(mdb_drop(txn, dbi, 1), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  unsigned char v1[4] = {1, 0, 0, 0};
  raw_put(f->sub, "meta", "schema_version", 14, v1, 4);

  char msg[STORE_ERRMSG_MAX];
  store_options ro = {.readonly = true};
  open_fails(f->sub, &ro, STORE_SCHEMA, msg, sizeof msg);
  assert_non_null(strstr(msg, "upgrade"));

  s = open_ok(f->sub, NULL);
  t = rbegin(s);
  uint32_t ver = 0;
  assert_int_equal(store_get_schema_version(t, &ver), STORE_OK);
  assert_int_equal(ver, 2);
  store_user got;
  assert_int_equal(store_user_find_email(t, "BOB@example.org", &got), STORE_OK);
  assert_int_equal(got.id, 2);
  assert_int_equal(store_user_find_email(t, "alice@example.org", &got), STORE_OK);
  assert_int_equal(got.id, 1);
  size_t n = 9;
  assert_int_equal(store_branch_count(t, 1, &n), STORE_OK);
  assert_int_equal(n, 0);
  store_abort(t);
  store_close(s);
}

/* The email index: unique ignoring case, follows changes, freed on delete. */
static void test_persistence_users_email_index(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  store_user a = mkuser(1, "alice"), b = mkuser(2, "bob"), got;
  assert_int_equal(store_user_put(t, &a), STORE_OK);
  snprintf(b.email, sizeof b.email, "ALICE@Example.org");
  assert_int_equal(store_user_put(t, &b), STORE_EXISTS);
  assert_non_null(strstr(store_txn_errmsg(t), "email"));
  assert_int_equal(store_user_get(t, 2, &got), STORE_NOTFOUND);
  b.email[0] = '\0'; /* no email: no index entry, never a conflict */
  assert_int_equal(store_user_put(t, &b), STORE_OK);
  store_user c = mkuser(3, "carol");
  c.email[0] = '\0';
  assert_int_equal(store_user_put(t, &c), STORE_OK);
  assert_int_equal(store_user_find_email(t, "", &got), STORE_INVALID);
  assert_int_equal(store_user_find_email(t, "alice@EXAMPLE.org", &got), STORE_OK);
  assert_int_equal(got.id, 1);
  /* A changed email frees the old one. */
  snprintf(a.email, sizeof a.email, "a2@example.org");
  assert_int_equal(store_user_put(t, &a), STORE_OK);
  assert_int_equal(store_user_find_email(t, "alice@example.org", &got), STORE_NOTFOUND);
  assert_int_equal(store_user_find_email(t, "a2@example.org", &got), STORE_OK);
  snprintf(b.email, sizeof b.email, "alice@example.org");
  assert_int_equal(store_user_put(t, &b), STORE_OK);
  assert_int_equal(store_user_find_email(t, "Alice@example.org", &got), STORE_OK);
  assert_int_equal(got.id, 2);
  /* Deleting frees it too. */
  assert_int_equal(store_user_delete(t, 2), STORE_OK);
  assert_int_equal(store_user_find_email(t, "alice@example.org", &got), STORE_NOTFOUND);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
}

static int name_collect(const store_branch *b, void *ud) {
  char *out = ud;
  strcat(out, b->name);
  strcat(out, b->flags & STORE_BRANCH_ACTIVE_WORLD ? "*," : ",");
  return 0;
}

static int mod_count(const store_code_module *m, void *ud) {
  (void)m;
  (*(int *)ud)++;
  return 0;
}

static void test_persistence_branches(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  store_branch b = {
      .name = "default", .flags = STORE_BRANCH_ACTIVE_WORLD | STORE_BRANCH_ACTIVE_SIM, .timestamp_ms = 1700000000123};
  assert_int_equal(store_branch_put(t, 7, &b), STORE_OK);
  store_branch c = {.name = "de", .flags = 0, .timestamp_ms = 5};
  assert_int_equal(store_branch_put(t, 7, &c), STORE_OK);
  store_branch other = {.name = "default", .flags = 0, .timestamp_ms = 1};
  assert_int_equal(store_branch_put(t, 8, &other), STORE_OK);
  assert_int_equal(store_code_put_module(t, 7, "default", "main", "x", 1, false), STORE_OK);
  assert_int_equal(store_code_put_module(t, 7, "de", "main", "y", 1, false), STORE_OK);
  assert_int_equal(store_code_put_module(t, 7, "de", "lib", "z", 1, false), STORE_OK);
  store_branch got;
  assert_int_equal(store_branch_get(t, 7, "default", &got), STORE_OK);
  assert_string_equal(got.name, "default");
  assert_int_equal(got.flags, 3);
  assert_int_equal(got.timestamp_ms, 1700000000123);
  assert_int_equal(store_branch_get(t, 7, "nope", &got), STORE_NOTFOUND);
  assert_int_equal(store_branch_get(t, 7, "", &got), STORE_INVALID);
  char names[256] = "";
  assert_int_equal(store_branch_iter(t, 7, name_collect, names), STORE_OK);
  assert_string_equal(names, "de,default*,");
  size_t n;
  assert_int_equal(store_branch_count(t, 7, &n), STORE_OK);
  assert_int_equal(n, 2);
  /* Deleting "de" takes its modules and leaves "default" (a longer name, same prefix). */
  assert_int_equal(store_branch_delete(t, 7, "de"), STORE_OK);
  assert_int_equal(store_branch_delete(t, 7, "de"), STORE_NOTFOUND);
  int mods = 0;
  assert_int_equal(store_code_iter_branch(t, 7, "de", mod_count, &mods), STORE_OK);
  assert_int_equal(mods, 0);
  assert_int_equal(store_code_iter_branch(t, 7, "default", mod_count, &mods), STORE_OK);
  assert_int_equal(mods, 1);
  assert_int_equal(store_branch_count(t, 7, &n), STORE_OK);
  assert_int_equal(n, 1);
  assert_int_equal(store_branch_count(t, 8, &n), STORE_OK);
  assert_int_equal(n, 1);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
}

static void test_persistence_segments(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  assert_int_equal(store_segment_put(t, 3, 0, "zero", 4), STORE_OK);
  assert_int_equal(store_segment_put(t, 3, 99, "", 0), STORE_OK);
  assert_int_equal(store_segment_put(t, 3, 255, "x", 1), STORE_INVALID);
  assert_int_equal(store_segment_put(t, 3, -1, "x", 1), STORE_INVALID);
  const char *d;
  size_t len;
  assert_int_equal(store_segment_get(t, 3, 0, &d, &len), STORE_OK);
  assert_int_equal(len, 4);
  assert_memory_equal(d, "zero", 4);
  assert_int_equal(store_segment_get(t, 3, 99, &d, &len), STORE_OK);
  assert_int_equal(len, 0);
  assert_int_equal(store_segment_get(t, 3, 1, &d, &len), STORE_NOTFOUND);
  assert_int_equal(store_segment_get(t, 4, 0, &d, &len), STORE_NOTFOUND);
  int ids[STORE_SEGMENTS_ACTIVE_MAX];
  size_t n = 7;
  assert_int_equal(store_segments_get_active(t, 3, ids, 10, &n), STORE_OK);
  assert_int_equal(n, 0);
  int want[3] = {5, 0, 99};
  assert_int_equal(store_segments_set_active(t, 3, want, 3), STORE_OK);
  assert_int_equal(store_segments_get_active(t, 3, ids, 10, &n), STORE_OK);
  assert_int_equal(n, 3);
  assert_int_equal(ids[0], 5);
  assert_int_equal(ids[2], 99);
  assert_int_equal(store_segments_get_active(t, 3, ids, 2, &n), STORE_OK);
  assert_int_equal(n, 2);
  int bad[1] = {300};
  assert_int_equal(store_segments_set_active(t, 3, bad, 1), STORE_INVALID);
  assert_int_equal(store_segments_set_active(t, 3, NULL, 0), STORE_OK);
  assert_int_equal(store_segments_get_active(t, 3, ids, 10, &n), STORE_OK);
  assert_int_equal(n, 0);
  assert_int_equal(store_segment_delete(t, 3, 0), STORE_OK);
  assert_int_equal(store_segment_delete(t, 3, 0), STORE_NOTFOUND);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
}

typedef struct cmd_acc {
  char text[256];
  uint64_t seqs[8];
  int n;
} cmd_acc;

static int cmd_collect(uint64_t seq, const char *expr, size_t len, void *ud) {
  cmd_acc *a = ud;
  strncat(a->text, expr, len);
  strcat(a->text, ";");
  a->seqs[a->n++] = seq;
  return 0;
}

static void test_persistence_console_queue(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  uint64_t s1, s2, s3, s4;
  assert_int_equal(store_console_push(t, 1, "a()", 3, &s1), STORE_OK);
  assert_int_equal(store_console_push(t, 2, "other", 5, &s2), STORE_OK);
  assert_int_equal(store_console_push(t, 1, "b()", 3, &s3), STORE_OK);
  assert_int_equal(store_console_push(t, 1, "c()", 3, &s4), STORE_OK);
  assert_int_equal(store_console_push(t, 1, "", 0, NULL), STORE_INVALID);
  assert_true(s1 < s2 && s2 < s3 && s3 < s4);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);

  s = open_ok(f->sub, NULL); /* survives a reopen, numbering goes on */
  t = wbegin(s);
  cmd_acc a = {0};
  assert_int_equal(store_console_iter(t, 1, cmd_collect, &a), STORE_OK);
  assert_string_equal(a.text, "a();b();c();");
  size_t n;
  assert_int_equal(store_console_trim(t, 1, s3, &n), STORE_OK);
  assert_int_equal(n, 2);
  memset(&a, 0, sizeof a);
  assert_int_equal(store_console_iter(t, 1, cmd_collect, &a), STORE_OK);
  assert_string_equal(a.text, "c();");
  assert_int_equal(a.seqs[0], s4);
  memset(&a, 0, sizeof a);
  assert_int_equal(store_console_iter(t, 2, cmd_collect, &a), STORE_OK);
  assert_string_equal(a.text, "other;");
  uint64_t s5;
  assert_int_equal(store_console_push(t, 1, "d()", 3, &s5), STORE_OK);
  assert_true(s5 > s4);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
}

static int tok_count(const unsigned char *hash, const store_token *tok, void *ud) {
  (void)hash;
  (void)tok;
  (*(int *)ud)++;
  return 0;
}

static void test_persistence_tokens_and_settings(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  unsigned char h1[STORE_TOKEN_HASH_BYTES], h2[STORE_TOKEN_HASH_BYTES];
  memset(h1, 0x11, sizeof h1);
  memset(h2, 0x22, sizeof h2);
  store_token tk = {.created_ms = 10, .expires_ms = 0, .label = "grunt"};
  assert_int_equal(store_token_put(t, 5, h1, &tk), STORE_OK);
  tk.expires_ms = 99;
  snprintf(tk.label, sizeof tk.label, "ci");
  assert_int_equal(store_token_put(t, 5, h2, &tk), STORE_OK);
  store_token got;
  assert_int_equal(store_token_get(t, 5, h1, &got), STORE_OK);
  assert_string_equal(got.label, "grunt");
  assert_int_equal(got.created_ms, 10);
  assert_int_equal(got.expires_ms, 0);
  assert_int_equal(store_token_get(t, 6, h1, &got), STORE_NOTFOUND); /* under its user only */
  int n = 0;
  assert_int_equal(store_token_iter(t, 5, tok_count, &n), STORE_OK);
  assert_int_equal(n, 2);
  assert_int_equal(store_token_delete(t, 5, h1), STORE_OK);
  assert_int_equal(store_token_get(t, 5, h1, &got), STORE_NOTFOUND);

  unsigned char key[32];
  memset(key, 7, sizeof key);
  const void *d;
  size_t len;
  assert_int_equal(store_setting_get(t, "token_key", &d, &len), STORE_NOTFOUND);
  assert_int_equal(store_setting_put(t, "token_key", key, sizeof key), STORE_OK);
  assert_int_equal(store_setting_get(t, "token_key", &d, &len), STORE_OK);
  assert_int_equal(len, 32);
  assert_memory_equal(d, key, 32);
  assert_int_equal(store_setting_put(t, "", key, 1), STORE_INVALID);

  /* A user's deletion drops everything keyed by it. */
  store_user u = mkuser(5, "eve");
  assert_int_equal(store_user_put(t, &u), STORE_OK);
  store_branch b = {.name = "default"};
  assert_int_equal(store_branch_put(t, 5, &b), STORE_OK);
  assert_int_equal(store_segment_put(t, 5, 1, "s", 1), STORE_OK);
  assert_int_equal(store_console_push(t, 5, "x", 1, NULL), STORE_OK);
  assert_int_equal(store_user_delete(t, 5), STORE_OK);
  n = 0;
  assert_int_equal(store_token_iter(t, 5, tok_count, &n), STORE_OK);
  assert_int_equal(n, 0);
  size_t nb;
  assert_int_equal(store_branch_count(t, 5, &nb), STORE_OK);
  assert_int_equal(nb, 0);
  const char *sd;
  assert_int_equal(store_segment_get(t, 5, 1, &sd, &len), STORE_NOTFOUND);
  cmd_acc a = {0};
  assert_int_equal(store_console_iter(t, 5, cmd_collect, &a), STORE_OK);
  assert_int_equal(a.n, 0);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
}

static void test_persistence_foreign_lmdb_env_refused(void **state) {
  fixture *f = *state;
  char msg[STORE_ERRMSG_MAX];
  char a[400], b[400];

  /* An LMDB environment with data but no meta database: someone else's. */
  snprintf(a, sizeof a, "%s/foreign", f->dir);
  assert_int_equal(mkdir(a, 0700), 0);
  raw_put(a, "stuff", "k", 1, "v", 1);
  open_fails(a, NULL, STORE_SCHEMA, msg, sizeof msg);
  assert_non_null(strstr(msg, "not an isoworld store"));
  /* ...and we did not create our databases in it. */
  char buf[8];
  assert_int_equal(raw_get(a, "meta", "schema_version", 14, buf, sizeof buf), -1);
  assert_int_equal(raw_get(a, "stuff", "k", 1, buf, sizeof buf), 1);

  /* A meta database without the schema record. */
  snprintf(b, sizeof b, "%s/nometa", f->dir);
  assert_int_equal(mkdir(b, 0700), 0);
  raw_put(b, "meta", "game_time", 9, "\0\0\0\0\0\0\0\0", 8);
  open_fails(b, NULL, STORE_SCHEMA, msg, sizeof msg);
  assert_non_null(strstr(msg, "no schema_version record"));
}

static void test_persistence_garbage_data_file_refused(void **state) {
  fixture *f = *state;
  char path[400], msg[STORE_ERRMSG_MAX];
  assert_int_equal(mkdir(f->sub, 0700), 0);
  snprintf(path, sizeof path, "%s/data.mdb", f->sub);

  /* Big garbage: a full page and more of random bytes. */
  size_t n = 64 * 1024;
  unsigned char *junk = malloc(n);
  assert_non_null(junk);
  srand(42);
  for (size_t i = 0; i < n; i++) junk[i] = (unsigned char)rand();
  write_file(path, junk, n);
  open_fails(f->sub, NULL, STORE_CORRUPT, msg, sizeof msg);
  assert_non_null(strstr(msg, "not an LMDB database"));
  assert_non_null(strstr(msg, "data.mdb"));
  /* The file was left alone. */
  unsigned char *back = malloc(n);
  assert_non_null(back);
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_int_equal(fread(back, 1, n, fp), n);
  fclose(fp);
  assert_memory_equal(back, junk, n);
  free(back);

  /* Short garbage (less than a page), and a text file. */
  write_file(path, junk, 100);
  open_fails(f->sub, NULL, STORE_CORRUPT, msg, sizeof msg);
  const char *text = "this is my shopping list, not a database\n";
  write_file(path, text, strlen(text));
  open_fails(f->sub, NULL, STORE_CORRUPT, msg, sizeof msg);
  free(junk);

  /* Readonly open of garbage: same answer. */
  store_options ro = {.readonly = true};
  open_fails(f->sub, &ro, STORE_CORRUPT, msg, sizeof msg);

  /* A garbage lock.mdb next to a good data.mdb (e.g. left by a crash, or a copy) is
   * rebuilt by the first opener: the data is intact. */
  char good[400], lock[450];
  snprintf(good, sizeof good, "%s/good", f->dir);
  store *s = open_ok(good, NULL);
  store_txn *t = wbegin(s);
  assert_int_equal(store_set_game_time(t, 31337), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
  snprintf(lock, sizeof lock, "%s/lock.mdb", good);
  unsigned char lj[8192];
  for (size_t i = 0; i < sizeof lj; i++) lj[i] = (unsigned char)(i * 131 + 7);
  write_file(lock, lj, sizeof lj);
  s = open_ok(good, NULL);
  t = rbegin(s);
  uint64_t gt;
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, 31337);
  store_abort(t);
  store_close(s);

  /* The "directory" is a regular file. */
  char file[400];
  snprintf(file, sizeof file, "%s/plainfile", f->dir);
  write_file(file, "x", 1);
  open_fails(file, NULL, STORE_IO, msg, sizeof msg);
  assert_non_null(strstr(msg, "plainfile"));
  /* A path through a regular file. */
  char below[450];
  snprintf(below, sizeof below, "%s/sub/data", file);
  open_fails(below, NULL, STORE_IO, msg, sizeof msg);
}

static void test_persistence_lifecycle_edges(void **state) {
  fixture *f = *state;
  char msg[STORE_ERRMSG_MAX];
  store_close(NULL);
  store_abort(NULL);
  assert_int_equal(store_commit(NULL), STORE_INVALID);
  assert_int_equal(store_create(NULL), STORE_INVALID);
  assert_string_equal(store_errmsg(NULL, msg, sizeof msg), "");

  /* Created but never opened: close is fine. */
  store *s = NULL;
  assert_int_equal(store_create(&s), STORE_OK);
  assert_string_equal(store_errmsg(s, msg, sizeof msg), "");
  assert_int_equal(store_open(s, "", NULL), STORE_INVALID);
  assert_int_equal(store_open(s, NULL, NULL), STORE_INVALID);
  store_close(s);

  /* Readonly open of a directory that does not exist creates nothing. */
  store_options ro = {.readonly = true};
  open_fails(f->sub, &ro, STORE_NOTFOUND, msg, sizeof msg);
  assert_false(file_exists(f->sub));
  /* ...nor of an empty directory. */
  assert_int_equal(mkdir(f->sub, 0700), 0);
  open_fails(f->sub, &ro, STORE_NOTFOUND, msg, sizeof msg);

  /* Opening a handle twice is refused; the first open stays usable. */
  s = open_ok(f->sub, NULL);
  char other[400];
  snprintf(other, sizeof other, "%s/other", f->dir);
  assert_int_equal(store_open(s, other, NULL), STORE_INVALID);
  store_txn *t = rbegin(s);
  store_abort(t);
  store_close(s);

  /* store_strerror covers every status with a distinct text. */
  const int all[] = {STORE_OK,   STORE_NOTFOUND, STORE_EXISTS, STORE_INVALID, STORE_NOMEM,  STORE_IO,      STORE_FULL,
                     STORE_BUSY, STORE_READONLY, STORE_SCHEMA, STORE_CORRUPT, STORE_BADTXN, STORE_INTERNAL};
  size_t na = sizeof all / sizeof all[0];
  for (size_t i = 0; i < na; i++) {
    assert_non_null(store_strerror(all[i]));
    assert_string_not_equal(store_strerror(all[i]), "unknown error");
    for (size_t j = 0; j < i; j++) assert_string_not_equal(store_strerror(all[i]), store_strerror(all[j]));
  }
  assert_string_equal(store_strerror(-9999), "unknown error");
  assert_string_equal(store_strerror(5), "unknown error");
}

/* ------------------------------------------------------------------ users */

typedef struct {
  uint64_t ids[16];
  size_t n;
  size_t stop_after;
} id_list;

static int collect_ids(const store_user *u, void *ud) {
  id_list *l = ud;
  l->ids[l->n++] = u->id;
  return l->stop_after && l->n >= l->stop_after ? 77 : 0;
}

static void test_persistence_users_put_get_find(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  /* Ids chosen so little-endian keys would iterate in a different order. */
  store_user a = mkuser(256, "Alice"), b = mkuser(2, "bob"), c = mkuser(9, "CAROL_9");
  assert_int_equal(store_user_put(t, &a), STORE_OK);
  assert_int_equal(store_user_put(t, &b), STORE_OK);
  assert_int_equal(store_user_put(t, &c), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);

  t = rbegin(s);
  store_user got;
  assert_int_equal(store_user_get(t, 256, &got), STORE_OK);
  assert_user_eq(&got, &a);
  assert_int_equal(store_user_get(t, 2, &got), STORE_OK);
  assert_user_eq(&got, &b);
  assert_int_equal(store_user_get(t, 3, &got), STORE_NOTFOUND);

  /* Case-insensitive find; the stored name keeps its case. */
  assert_int_equal(store_user_find(t, "ALICE", &got), STORE_OK);
  assert_int_equal(got.id, 256);
  assert_string_equal(got.username, "Alice");
  assert_int_equal(store_user_find(t, "alice", &got), STORE_OK);
  assert_int_equal(got.id, 256);
  assert_int_equal(store_user_find(t, "carol_9", &got), STORE_OK);
  assert_int_equal(got.id, 9);
  assert_int_equal(store_user_find(t, "Bob", &got), STORE_OK);
  assert_int_equal(got.id, 2);
  assert_int_equal(store_user_find(t, "alic", &got), STORE_NOTFOUND);
  assert_int_equal(store_user_find(t, "", &got), STORE_INVALID);

  size_t n = 0;
  assert_int_equal(store_user_count(t, &n), STORE_OK);
  assert_int_equal(n, 3);

  id_list l = {0};
  assert_int_equal(store_user_iter(t, collect_ids, &l), STORE_OK);
  assert_int_equal(l.n, 3);
  assert_int_equal(l.ids[0], 2);
  assert_int_equal(l.ids[1], 9);
  assert_int_equal(l.ids[2], 256);

  /* Early stop returns the callback's value. */
  id_list l2 = {.stop_after = 2};
  assert_int_equal(store_user_iter(t, collect_ids, &l2), 77);
  assert_int_equal(l2.n, 2);

  /* Writes need a write txn. */
  assert_int_equal(store_user_put(t, &a), STORE_READONLY);
  assert_non_null(strstr(store_txn_errmsg(t), "write transaction"));
  store_abort(t);
  store_close(s);
}

static void test_persistence_users_duplicate_username_refused(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  store_user a = mkuser(1, "alice");
  assert_int_equal(store_user_put(t, &a), STORE_OK);
  store_user b = mkuser(2, "ALICE");
  snprintf(b.email, sizeof b.email, "bee@example.org");
  assert_int_equal(store_user_put(t, &b), STORE_EXISTS);
  assert_non_null(strstr(store_txn_errmsg(t), "taken by user 1"));
  /* The txn is still usable and nothing of b was written. */
  store_user got;
  assert_int_equal(store_user_get(t, 2, &got), STORE_NOTFOUND);
  assert_int_equal(store_commit(t), STORE_OK);

  t = wbegin(s);
  size_t n;
  assert_int_equal(store_user_count(t, &n), STORE_OK);
  assert_int_equal(n, 1);
  /* Re-putting the same user with another case of its own name is an update. */
  a.cpu_limit = 99;
  snprintf(a.username, sizeof a.username, "Alice");
  assert_int_equal(store_user_put(t, &a), STORE_OK);
  assert_int_equal(store_user_find(t, "aLiCe", &got), STORE_OK);
  assert_int_equal(got.cpu_limit, 99);
  assert_string_equal(got.username, "Alice");

  /* Renaming frees the old name for someone else. */
  snprintf(a.username, sizeof a.username, "Alicia");
  assert_int_equal(store_user_put(t, &a), STORE_OK);
  assert_int_equal(store_user_find(t, "alice", &got), STORE_NOTFOUND);
  assert_int_equal(store_user_find(t, "ALICIA", &got), STORE_OK);
  assert_int_equal(got.id, 1);
  assert_int_equal(store_user_put(t, &b), STORE_OK);
  assert_int_equal(store_user_find(t, "alice", &got), STORE_OK);
  assert_int_equal(got.id, 2);
  assert_int_equal(store_commit(t), STORE_OK);

  /* Invalid users. */
  t = wbegin(s);
  store_user bad = mkuser(0, "zero");
  assert_int_equal(store_user_put(t, &bad), STORE_INVALID);
  bad = mkuser(5, "");
  assert_int_equal(store_user_put(t, &bad), STORE_INVALID);
  bad = mkuser(5, "x");
  memset(bad.username, 'x', sizeof bad.username); /* no NUL within the array */
  assert_int_equal(store_user_put(t, &bad), STORE_INVALID);
  bad = mkuser(5, "x");
  memset(bad.email, 'e', sizeof bad.email);
  assert_int_equal(store_user_put(t, &bad), STORE_INVALID);
  assert_int_equal(store_user_put(t, NULL), STORE_INVALID);
  /* A 63-byte name is the longest allowed. */
  store_user longest = mkuser(6, "x");
  memset(longest.username, 'L', 63);
  longest.username[63] = '\0';
  assert_int_equal(store_user_put(t, &longest), STORE_OK);
  assert_int_equal(store_user_find(t, longest.username, &got), STORE_OK);
  assert_int_equal(got.id, 6);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
}

static void test_persistence_users_next_id_and_delete(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  uint64_t id;
  assert_int_equal(store_next_user_id(t, &id), STORE_OK);
  assert_int_equal(id, 1);
  assert_int_equal(store_next_user_id(t, &id), STORE_OK);
  assert_int_equal(id, 2);
  /* An explicit id above the counter pushes it past. */
  store_user u10 = mkuser(10, "ten");
  assert_int_equal(store_user_put(t, &u10), STORE_OK);
  assert_int_equal(store_next_user_id(t, &id), STORE_OK);
  assert_int_equal(id, 11);
  assert_int_equal(store_commit(t), STORE_OK);

  /* Aborted allocations are not consumed; committed ones survive a reopen. */
  t = wbegin(s);
  assert_int_equal(store_next_user_id(t, &id), STORE_OK);
  assert_int_equal(id, 12);
  store_abort(t);
  store_close(s);
  s = open_ok(f->sub, NULL);
  t = wbegin(s);
  assert_int_equal(store_next_user_id(t, &id), STORE_OK);
  assert_int_equal(id, 12);

  /* Delete removes the user and everything of theirs, and nothing of others. */
  store_user u3 = mkuser(3, "three");
  assert_int_equal(store_user_put(t, &u3), STORE_OK);
  for (uint64_t uid = 3; uid <= 10; uid += 7) {
    assert_int_equal(store_code_put_module(t, uid, "default", "main", "x", 1, false), STORE_OK);
    assert_int_equal(store_code_put_module(t, uid, "sim", "main", "y", 1, false), STORE_OK);
    assert_int_equal(store_code_set_stamp(t, uid, 5), STORE_OK);
    assert_int_equal(store_memory_put(t, uid, "{}", 2), STORE_OK);
    store_cpu c = {.limit = 10, .bucket = 500};
    assert_int_equal(store_cpu_put(t, uid, &c), STORE_OK);
  }
  assert_int_equal(store_commit(t), STORE_OK);

  t = wbegin(s);
  assert_int_equal(store_user_delete(t, 10), STORE_OK);
  assert_int_equal(store_user_delete(t, 10), STORE_NOTFOUND);
  assert_int_equal(store_commit(t), STORE_OK);

  t = rbegin(s);
  store_user got;
  store_code_module m;
  const char *mem;
  size_t ml;
  store_cpu cpu;
  uint64_t stamp;
  assert_int_equal(store_user_get(t, 10, &got), STORE_NOTFOUND);
  assert_int_equal(store_user_find(t, "ten", &got), STORE_NOTFOUND);
  assert_int_equal(store_code_get_module(t, 10, "default", "main", &m), STORE_NOTFOUND);
  assert_int_equal(store_code_get_module(t, 10, "sim", "main", &m), STORE_NOTFOUND);
  assert_int_equal(store_memory_get(t, 10, &mem, &ml), STORE_NOTFOUND);
  assert_int_equal(store_cpu_get(t, 10, &cpu), STORE_NOTFOUND);
  assert_int_equal(store_code_get_stamp(t, 10, &stamp), STORE_OK);
  assert_int_equal(stamp, 0);
  /* User 3 is untouched. */
  assert_int_equal(store_user_find(t, "three", &got), STORE_OK);
  assert_int_equal(store_code_get_module(t, 3, "sim", "main", &m), STORE_OK);
  assert_int_equal(store_memory_get(t, 3, &mem, &ml), STORE_OK);
  assert_int_equal(store_cpu_get(t, 3, &cpu), STORE_OK);
  assert_int_equal(store_code_get_stamp(t, 3, &stamp), STORE_OK);
  assert_int_equal(stamp, 5);
  size_t n;
  assert_int_equal(store_user_count(t, &n), STORE_OK);
  assert_int_equal(n, 1);
  store_abort(t);

  /* Deleted ids are never handed out again. */
  t = wbegin(s);
  assert_int_equal(store_next_user_id(t, &id), STORE_OK);
  assert_int_equal(id, 13);
  store_abort(t);
  store_close(s);
}

/* ------------------------------------------------------------------ code */

typedef struct {
  char names[16][STORE_MODULE_NAME_MAX];
  char data[16][64];
  bool binary[16];
  size_t n;
} module_list;

static int collect_modules(const store_code_module *m, void *ud) {
  module_list *l = ud;
  assert_true(l->n < 16);
  snprintf(l->names[l->n], sizeof l->names[0], "%s", m->name);
  assert_true(m->len < sizeof l->data[0]);
  memcpy(l->data[l->n], m->data, m->len);
  l->data[l->n][m->len] = '\0';
  l->binary[l->n] = m->binary;
  l->n++;
  return 0;
}

typedef struct {
  char names[16][STORE_BRANCH_MAX];
  size_t n;
} branch_list;

static int collect_branches(const char *b, void *ud) {
  branch_list *l = ud;
  assert_true(l->n < 16);
  snprintf(l->names[l->n++], sizeof l->names[0], "%s", b);
  return 0;
}

static void test_persistence_code_branches_are_ranges(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  /* Branch "a" vs "ab" vs "b", user 1 vs user 256 (differ in another key byte) and 2. */
  assert_int_equal(store_code_put_module(t, 1, "a", "main", "A-main", 6, false), STORE_OK);
  assert_int_equal(store_code_put_module(t, 1, "a", "util", "A-util", 6, false), STORE_OK);
  assert_int_equal(store_code_put_module(t, 1, "a", "blob", "\0\1\2", 3, true), STORE_OK);
  assert_int_equal(store_code_put_module(t, 1, "ab", "main", "AB-main", 7, false), STORE_OK);
  assert_int_equal(store_code_put_module(t, 1, "b", "main", "B-main", 6, false), STORE_OK);
  assert_int_equal(store_code_put_module(t, 2, "a", "main", "U2-A", 4, false), STORE_OK);
  assert_int_equal(store_code_put_module(t, 256, "a", "other", "U256", 4, false), STORE_OK);
  assert_int_equal(store_code_put_module(t, 1, "a", "empty", "", 0, false), STORE_OK);
  /* Replace one. */
  assert_int_equal(store_code_put_module(t, 1, "a", "util", "A-util2", 7, false), STORE_OK);
  assert_int_equal(store_code_set_stamp(t, 1, 1700000000123ull), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);

  t = rbegin(s);
  module_list l = {0};
  assert_int_equal(store_code_iter_branch(t, 1, "a", collect_modules, &l), STORE_OK);
  assert_int_equal(l.n, 4);
  assert_string_equal(l.names[0], "blob");
  assert_true(l.binary[0]);
  assert_memory_equal(l.data[0], "\0\1\2", 3);
  assert_string_equal(l.names[1], "empty");
  assert_string_equal(l.data[1], "");
  assert_string_equal(l.names[2], "main");
  assert_string_equal(l.data[2], "A-main");
  assert_false(l.binary[2]);
  assert_string_equal(l.names[3], "util");
  assert_string_equal(l.data[3], "A-util2");

  module_list lab = {0};
  assert_int_equal(store_code_iter_branch(t, 1, "ab", collect_modules, &lab), STORE_OK);
  assert_int_equal(lab.n, 1);
  assert_string_equal(lab.data[0], "AB-main");

  module_list none = {0};
  assert_int_equal(store_code_iter_branch(t, 1, "c", collect_modules, &none), STORE_OK);
  assert_int_equal(none.n, 0);
  assert_int_equal(store_code_iter_branch(t, 3, "a", collect_modules, &none), STORE_OK);
  assert_int_equal(none.n, 0);

  branch_list bl = {0};
  assert_int_equal(store_code_iter_branches(t, 1, collect_branches, &bl), STORE_OK);
  assert_int_equal(bl.n, 3);
  assert_string_equal(bl.names[0], "a");
  assert_string_equal(bl.names[1], "ab");
  assert_string_equal(bl.names[2], "b");
  branch_list bl256 = {0};
  assert_int_equal(store_code_iter_branches(t, 256, collect_branches, &bl256), STORE_OK);
  assert_int_equal(bl256.n, 1);

  store_code_module m;
  assert_int_equal(store_code_get_module(t, 1, "a", "blob", &m), STORE_OK);
  assert_true(m.binary);
  assert_int_equal(m.len, 3);
  assert_string_equal(m.name, "blob");
  assert_int_equal(store_code_get_module(t, 1, "ab", "util", &m), STORE_NOTFOUND);
  uint64_t stamp;
  assert_int_equal(store_code_get_stamp(t, 1, &stamp), STORE_OK);
  assert_int_equal(stamp, 1700000000123ull);
  assert_int_equal(store_code_get_stamp(t, 2, &stamp), STORE_OK);
  assert_int_equal(stamp, 0);

  /* Bad names. */
  char longb[STORE_BRANCH_MAX + 1];
  memset(longb, 'b', STORE_BRANCH_MAX);
  longb[STORE_BRANCH_MAX] = '\0';
  assert_int_equal(store_code_get_module(t, 1, longb, "main", &m), STORE_INVALID);
  assert_int_equal(store_code_get_module(t, 1, "", "main", &m), STORE_INVALID);
  assert_int_equal(store_code_get_module(t, 1, "a", "", &m), STORE_INVALID);
  assert_int_equal(store_code_get_module(t, 1, NULL, "main", &m), STORE_INVALID);
  store_abort(t);

  /* Deleting branch "a" of user 1 leaves "ab", "b", and user 2's and 256's "a". */
  t = wbegin(s);
  assert_int_equal(store_code_delete_branch(t, 1, "a"), STORE_OK);
  assert_int_equal(store_code_delete_branch(t, 1, "a"), STORE_NOTFOUND);
  assert_int_equal(store_code_delete_module(t, 1, "b", "main"), STORE_OK);
  assert_int_equal(store_code_delete_module(t, 1, "b", "main"), STORE_NOTFOUND);
  assert_int_equal(store_commit(t), STORE_OK);

  t = rbegin(s);
  module_list after = {0};
  assert_int_equal(store_code_iter_branch(t, 1, "a", collect_modules, &after), STORE_OK);
  assert_int_equal(after.n, 0);
  assert_int_equal(store_code_iter_branch(t, 1, "ab", collect_modules, &after), STORE_OK);
  assert_int_equal(after.n, 1);
  assert_int_equal(store_code_get_module(t, 2, "a", "main", &m), STORE_OK);
  assert_int_equal(store_code_get_module(t, 256, "a", "other", &m), STORE_OK);
  branch_list bl2 = {0};
  assert_int_equal(store_code_iter_branches(t, 1, collect_branches, &bl2), STORE_OK);
  assert_int_equal(bl2.n, 1);
  assert_string_equal(bl2.names[0], "ab");
  store_abort(t);
  store_close(s);
}

/* ------------------------------------------------------------------ memory, cpu, world */

static void test_persistence_memory_and_cpu_roundtrip(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  size_t big_len = 2u << 20;
  char *big = malloc(big_len);
  assert_non_null(big);
  for (size_t i = 0; i < big_len; i++) big[i] = (char)('a' + i % 26);

  store_txn *t = wbegin(s);
  assert_int_equal(store_memory_put(t, 1, "{\"creeps\":{}}", 13), STORE_OK);
  assert_int_equal(store_memory_put(t, 2, "", 0), STORE_OK);
  assert_int_equal(store_memory_put(t, 3, big, big_len), STORE_OK);
  store_cpu c1 = {.limit = 20, .bucket = 10000, .last_used_ms = 17, .last_tick = 99};
  store_cpu c2 = {.limit = -1, .bucket = -5, .last_used_ms = INT32_MAX, .last_tick = UINT64_MAX};
  assert_int_equal(store_cpu_put(t, 1, &c1), STORE_OK);
  assert_int_equal(store_cpu_put(t, 2, &c2), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);

  s = open_ok(f->sub, NULL);
  t = rbegin(s);
  const char *m;
  size_t ml;
  assert_int_equal(store_memory_get(t, 1, &m, &ml), STORE_OK);
  assert_int_equal(ml, 13);
  assert_memory_equal(m, "{\"creeps\":{}}", 13);
  assert_int_equal(store_memory_get(t, 2, &m, &ml), STORE_OK);
  assert_int_equal(ml, 0);
  assert_int_equal(store_memory_get(t, 3, &m, &ml), STORE_OK);
  assert_int_equal(ml, big_len);
  assert_memory_equal(m, big, big_len);
  assert_int_equal(store_memory_get(t, 4, &m, &ml), STORE_NOTFOUND);
  store_cpu got;
  assert_int_equal(store_cpu_get(t, 1, &got), STORE_OK);
  assert_int_equal(got.limit, 20);
  assert_int_equal(got.bucket, 10000);
  assert_int_equal(got.last_used_ms, 17);
  assert_int_equal(got.last_tick, 99);
  assert_int_equal(store_cpu_get(t, 2, &got), STORE_OK);
  assert_int_equal(got.limit, -1);
  assert_int_equal(got.bucket, -5);
  assert_int_equal(got.last_used_ms, INT32_MAX);
  assert_int_equal(got.last_tick, UINT64_MAX);
  assert_int_equal(store_cpu_get(t, 3, &got), STORE_NOTFOUND);
  store_abort(t);

  t = wbegin(s);
  assert_int_equal(store_memory_delete(t, 3), STORE_OK);
  assert_int_equal(store_memory_delete(t, 3), STORE_NOTFOUND);
  assert_int_equal(store_memory_get(t, 3, &m, &ml), STORE_NOTFOUND);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
  free(big);
}

typedef struct {
  char keys[8][STORE_WORLD_KEY_MAX];
  size_t n;
} key_list;

static int collect_keys(const char *key, const void *data, size_t len, void *ud) {
  key_list *l = ud;
  assert_true(l->n < 8);
  assert_true(len == strlen(key) && memcmp(data, key, len) == 0); /* values are the keys */
  snprintf(l->keys[l->n++], sizeof l->keys[0], "%s", key);
  return 0;
}

static void test_persistence_world_prefix_iteration(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  const char *keys[] = {"room:W1N2", "room:W1N1", "roomx", "terrain:W1N1", "room", "room:W10N1"};
  for (size_t i = 0; i < 6; i++) assert_int_equal(store_world_put(t, keys[i], keys[i], strlen(keys[i])), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);

  t = rbegin(s);
  key_list l = {0};
  assert_int_equal(store_world_iter(t, "room:", collect_keys, &l), STORE_OK);
  assert_int_equal(l.n, 3);
  assert_string_equal(l.keys[0], "room:W10N1");
  assert_string_equal(l.keys[1], "room:W1N1");
  assert_string_equal(l.keys[2], "room:W1N2");
  key_list all = {0};
  assert_int_equal(store_world_iter(t, NULL, collect_keys, &all), STORE_OK);
  assert_int_equal(all.n, 6);
  key_list none = {0};
  assert_int_equal(store_world_iter(t, "zzz", collect_keys, &none), STORE_OK);
  assert_int_equal(none.n, 0);
  store_abort(t);

  t = wbegin(s);
  assert_int_equal(store_world_delete(t, "roomx"), STORE_OK);
  assert_int_equal(store_world_delete(t, "roomx"), STORE_NOTFOUND);
  const void *d;
  size_t dl;
  assert_int_equal(store_world_get(t, "roomx", &d, &dl), STORE_NOTFOUND);
  assert_int_equal(store_world_get(t, "room", &d, &dl), STORE_OK);
  assert_int_equal(dl, 4);
  assert_int_equal(store_world_put(t, "", "x", 1), STORE_INVALID);
  assert_int_equal(store_commit(t), STORE_OK);

  t = rbegin(s);
  store_info info;
  assert_int_equal(store_get_info(t, &info), STORE_OK);
  bool seen = false;
  for (size_t i = 0; i < info.n_dbs; i++)
    if (strcmp(info.dbs[i].name, "world") == 0) {
      assert_int_equal(info.dbs[i].entries, 5);
      seen = true;
    }
  assert_true(seen);
  store_abort(t);
  store_close(s);
}

/* ------------------------------------------------------------------ transactions */

static void test_persistence_abort_discards(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  assert_int_equal(store_set_game_time(t, 1), STORE_OK);
  assert_int_equal(store_memory_put(t, 1, "kept", 4), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);

  /* A snapshot taken now ... */
  store_txn *snap = rbegin(s);

  t = wbegin(s);
  assert_true(store_txn_is_write(t));
  assert_int_equal(store_set_game_time(t, 2), STORE_OK);
  store_user u = mkuser(1, "ghost");
  assert_int_equal(store_user_put(t, &u), STORE_OK);
  assert_int_equal(store_memory_put(t, 1, "lost", 4), STORE_OK);
  assert_int_equal(store_code_put_module(t, 1, "default", "main", "x", 1, false), STORE_OK);
  store_abort(t);

  t = rbegin(s);
  uint64_t gt;
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, 1);
  store_user got;
  assert_int_equal(store_user_get(t, 1, &got), STORE_NOTFOUND);
  assert_int_equal(store_user_find(t, "ghost", &got), STORE_NOTFOUND);
  const char *m;
  size_t ml;
  assert_int_equal(store_memory_get(t, 1, &m, &ml), STORE_OK);
  assert_memory_equal(m, "kept", 4);
  store_code_module mod;
  assert_int_equal(store_code_get_module(t, 1, "default", "main", &mod), STORE_NOTFOUND);
  store_abort(t);

  /* ... does not see a later commit. */
  t = wbegin(s);
  assert_int_equal(store_set_game_time(t, 3), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);
  assert_int_equal(store_get_game_time(snap, &gt), STORE_OK);
  assert_int_equal(gt, 1);
  assert_int_equal(store_commit(snap), STORE_OK); /* ends a read txn */
  t = rbegin(s);
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, 3);
  /* A read txn refuses every write. */
  assert_int_equal(store_set_game_time(t, 4), STORE_READONLY);
  assert_int_equal(store_memory_put(t, 1, "x", 1), STORE_READONLY);
  assert_int_equal(store_code_put_module(t, 1, "a", "b", "x", 1, false), STORE_READONLY);
  uint64_t id;
  assert_int_equal(store_next_user_id(t, &id), STORE_READONLY);
  store_abort(t);
  store_close(s);
}

typedef struct {
  store_txn *txn;
  uint64_t game_time;
  int rc;
} thread_arg;

static void *read_in_thread(void *p) {
  thread_arg *a = p;
  a->rc = store_get_game_time(a->txn, &a->game_time);
  return NULL;
}

static void *end_in_thread(void *p) {
  thread_arg *a = p;
  store_abort(a->txn);
  return NULL;
}

static void test_persistence_threads_and_readers(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  assert_int_equal(store_set_game_time(t, 41), STORE_OK);

  /* A thread holding the write txn may not begin another one or back up: it would wait
   * for itself. */
  store_txn *t2 = (store_txn *)1;
  assert_int_equal(store_write_begin(s, &t2), STORE_BUSY);
  assert_null(t2);
  char bdir[400], msg[STORE_ERRMSG_MAX];
  snprintf(bdir, sizeof bdir, "%s/bk", f->dir);
  assert_int_equal(store_backup(s, bdir, false), STORE_BUSY);
  assert_non_null(strstr(store_errmsg(s, msg, sizeof msg), "write transaction"));
  assert_int_equal(store_commit(t), STORE_OK);

  /* A read txn begun here is used on one thread and ended on another (MDB_NOTLS). */
  thread_arg a = {.txn = rbegin(s)};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, read_in_thread, &a), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(a.rc, STORE_OK);
  assert_int_equal(a.game_time, 41);
  assert_int_equal(pthread_create(&th, NULL, end_in_thread, &a), 0);
  assert_int_equal(pthread_join(th, NULL), 0);

  /* At least 126 read txns at once on one thread; past the limit: STORE_BUSY. */
  size_t cap = 4096, n = 0;
  store_txn **rs = calloc(cap, sizeof *rs);
  assert_non_null(rs);
  int rc = STORE_OK;
  while (n < cap && (rc = store_read_begin(s, &rs[n])) == STORE_OK) n++;
  assert_int_equal(rc, STORE_BUSY);
  assert_true(n >= 126);
  assert_non_null(strstr(store_errmsg(s, msg, sizeof msg), "store_read_begin"));
  /* Writers are not blocked by readers. */
  t = wbegin(s);
  assert_int_equal(store_set_game_time(t, 42), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);
  for (size_t i = 0; i < n; i++) store_abort(rs[i]);
  free(rs);
  /* Slots are free again. */
  t = rbegin(s);
  uint64_t gt;
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, 42);
  store_abort(t);
  store_close(s);
}

static void test_persistence_map_full_poisons_txn_only(void **state) {
  fixture *f = *state;
  store_options o = {.map_size = 1u << 20, .nosync = true};
  store *s = open_ok(f->sub, &o);
  store_txn *t = wbegin(s);
  assert_int_equal(store_set_game_time(t, 7), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);

  char *blob = calloc(1, 64 * 1024);
  assert_non_null(blob);
  t = wbegin(s);
  int rc = STORE_OK;
  uint64_t uid;
  for (uid = 1; uid < 1000 && rc == STORE_OK; uid++) rc = store_memory_put(t, uid, blob, 64 * 1024);
  assert_int_equal(rc, STORE_FULL);
  assert_non_null(strstr(store_txn_errmsg(t), "map_size"));
  /* The txn is poisoned: later calls fail, commit fails and frees it. */
  assert_int_equal(store_set_game_time(t, 8), STORE_BADTXN);
  assert_int_equal(store_commit(t), STORE_BADTXN);
  char msg[STORE_ERRMSG_MAX];
  assert_non_null(strstr(store_errmsg(s, msg, sizeof msg), "nothing was committed"));
  free(blob);

  /* The store itself is fine. */
  t = wbegin(s);
  uint64_t gt;
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, 7);
  const char *m;
  size_t ml;
  assert_int_equal(store_memory_get(t, 1, &m, &ml), STORE_NOTFOUND);
  assert_int_equal(store_set_game_time(t, 8), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);
}

/* ------------------------------------------------------------------ crash safety */

/* The child: commits ticks forever, each one setting the game time, the matching Memory
 * record and a world blob whose size depends on the tick (so commits touch several pages
 * and overflow pages come and go), and reports each commit on fd after it returned. */
static void crash_child(const char *dir, int fd) {
  store *s = NULL;
  if (store_create(&s) || store_open(s, dir, NULL)) _exit(2);
  store_txn *t;
  uint64_t tick = 0;
  if (store_read_begin(s, &t) || store_get_game_time(t, &tick)) _exit(3);
  store_abort(t);
  static char blob[40000];
  for (;;) {
    tick++;
    char mem[64];
    int n = snprintf(mem, sizeof mem, "{\"tick\":%" PRIu64 "}", tick);
    size_t bl = (size_t)(tick % 10) * 4000;
    memset(blob, (int)('a' + tick % 26), bl);
    if (store_write_begin(s, &t)) _exit(4);
    if (store_set_game_time(t, tick) || store_memory_put(t, 1, mem, (size_t)n) ||
        store_world_put(t, "room:W1N1", blob, bl))
      _exit(5);
    if (store_commit(t)) _exit(6);
    if (write(fd, &tick, sizeof tick) != (ssize_t)sizeof tick) _exit(7);
  }
}

static void test_persistence_crash_safety_kill9(void **state) {
  fixture *f = *state;
  if (getenv("ISOWORLD_TEST_NO_FORK")) skip();
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  srand(seed);
  uint64_t prev = 0;
  for (int round = 0; round < 6; round++) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      crash_child(f->sub, p[1]);
      _exit(1);
    }
    close(p[1]);
    /* Wait for a first commit, then kill at a random moment. */
    uint64_t last = 0, v;
    assert_int_equal(read(p[0], &last, sizeof last), (ssize_t)sizeof last);
    struct timespec ts = {0, (long)(rand() % 40000) * 1000L};
    nanosleep(&ts, NULL);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
      fail_msg("child exited by itself (status %d): its store calls failed", status);
    while (read(p[0], &v, sizeof v) == (ssize_t)sizeof v) last = v;
    close(p[0]);

    store *s = open_ok(f->sub, NULL);
    store_txn *t = rbegin(s);
    uint64_t gt;
    assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
    /* Every reported commit is there; at most one more finished before the report. */
    if (!(gt >= last && gt <= last + 1))
      fail_msg("seed %u round %d: game time %" PRIu64 ", last reported commit %" PRIu64, seed, round, gt, last);
    assert_true(gt > prev);
    const char *m;
    size_t ml;
    assert_int_equal(store_memory_get(t, 1, &m, &ml), STORE_OK);
    char want[64];
    int wl = snprintf(want, sizeof want, "{\"tick\":%" PRIu64 "}", gt);
    assert_int_equal(ml, (size_t)wl);
    assert_memory_equal(m, want, ml);
    const void *w;
    size_t wlen;
    assert_int_equal(store_world_get(t, "room:W1N1", &w, &wlen), STORE_OK);
    assert_int_equal(wlen, (size_t)(gt % 10) * 4000);
    for (size_t i = 0; i < wlen; i++)
      if (((const char *)w)[i] != (char)('a' + gt % 26)) fail_msg("world blob byte %zu is wrong", i);
    store_abort(t);
    store_close(s);
    if (getenv("ISOWORLD_TEST_VERBOSE"))
      fprintf(stderr, "round %d: killed at tick %" PRIu64 " (last reported %" PRIu64 ")\n", round, gt, last);
    prev = gt;
  }
}

/* ------------------------------------------------------------------ backup */

static void fill_sample(store *s, uint64_t tick) {
  store_txn *t = wbegin(s);
  assert_int_equal(store_set_game_time(t, tick), STORE_OK);
  for (uint64_t id = 1; id <= 20; id++) {
    char name[32];
    snprintf(name, sizeof name, "player%" PRIu64, id);
    store_user u = mkuser(id, name);
    assert_int_equal(store_user_put(t, &u), STORE_OK);
    char mem[64];
    int n = snprintf(mem, sizeof mem, "{\"id\":%" PRIu64 ",\"tick\":%" PRIu64 "}", id, tick);
    assert_int_equal(store_memory_put(t, id, mem, (size_t)n), STORE_OK);
    assert_int_equal(store_code_put_module(t, id, "default", "main", name, strlen(name), false), STORE_OK);
  }
  assert_int_equal(store_commit(t), STORE_OK);
}

static void check_sample(store *s, uint64_t tick) {
  store_txn *t = rbegin(s);
  uint64_t gt;
  assert_int_equal(store_get_game_time(t, &gt), STORE_OK);
  assert_int_equal(gt, tick);
  size_t n;
  assert_int_equal(store_user_count(t, &n), STORE_OK);
  assert_int_equal(n, 20);
  for (uint64_t id = 1; id <= 20; id++) {
    char name[32];
    snprintf(name, sizeof name, "PLAYER%" PRIu64, id);
    store_user u;
    assert_int_equal(store_user_find(t, name, &u), STORE_OK);
    assert_int_equal(u.id, id);
    const char *m;
    size_t ml;
    char want[64];
    int wl = snprintf(want, sizeof want, "{\"id\":%" PRIu64 ",\"tick\":%" PRIu64 "}", id, tick);
    assert_int_equal(store_memory_get(t, id, &m, &ml), STORE_OK);
    assert_int_equal(ml, (size_t)wl);
    assert_memory_equal(m, want, ml);
    store_code_module mod;
    assert_int_equal(store_code_get_module(t, id, "default", "main", &mod), STORE_OK);
  }
  store_abort(t);
}

static void test_persistence_backup_while_reading(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  fill_sample(s, 100);
  store_txn *reader = rbegin(s); /* held open through both backups */
  fill_sample(s, 101);

  char plain[400], compact[400], msg[STORE_ERRMSG_MAX];
  snprintf(plain, sizeof plain, "%s/backups/plain", f->dir);
  snprintf(compact, sizeof compact, "%s/backups/compact", f->dir);
  assert_int_equal(store_backup(s, plain, false), STORE_OK);
  assert_int_equal(store_backup(s, compact, true), STORE_OK);
  /* Never over an existing copy. */
  assert_int_equal(store_backup(s, plain, false), STORE_EXISTS);
  assert_non_null(strstr(store_errmsg(s, msg, sizeof msg), "already exists"));

  /* The reader still sees its snapshot; the store goes on. */
  uint64_t gt;
  assert_int_equal(store_get_game_time(reader, &gt), STORE_OK);
  assert_int_equal(gt, 100);
  store_abort(reader);
  fill_sample(s, 102);
  check_sample(s, 102);
  store_close(s);

  /* Both copies open as stores with the data of the last commit before the backup. */
  store *b = open_ok(plain, NULL);
  check_sample(b, 101);
  store_close(b);
  store_options ro = {.readonly = true};
  b = open_ok(compact, &ro);
  check_sample(b, 101);
  store_close(b);
}

/* ------------------------------------------------------------------ corruption */

static void test_persistence_corrupt_records_detected(void **state) {
  fixture *f = *state;
  store *s = open_ok(f->sub, NULL);
  store_txn *t = wbegin(s);
  store_user u = mkuser(5, "victim");
  assert_int_equal(store_user_put(t, &u), STORE_OK);
  store_user ok = mkuser(6, "bystander");
  assert_int_equal(store_user_put(t, &ok), STORE_OK);
  store_cpu c = {.limit = 1};
  assert_int_equal(store_cpu_put(t, 5, &c), STORE_OK);
  assert_int_equal(store_code_put_module(t, 5, "default", "main", "x", 1, false), STORE_OK);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);

  unsigned char key[8];
  be64(key, 5);
  unsigned char good[1024];
  long gl = raw_get(f->sub, "users", key, 8, good, sizeof good);
  assert_true(gl > 33);
  assert_memory_equal(good + 25, "\6\0victim", 8); /* the layout the targeted cases assume */

  /* Plain garbage under the user key. */
  raw_put(f->sub, "users", key, 8, "\xde\xad\xbe\xef garbage", 12);
  unsigned char cpu_bad[5] = {1, 2, 3, 4, 5};
  raw_put(f->sub, "cpu", key, 8, cpu_bad, sizeof cpu_bad);
  unsigned char ck[64];
  memcpy(ck, key, 8);
  memcpy(ck + 8, "default\0main", 12);
  raw_put(f->sub, "code", ck, 20, "\x80x", 2);

  s = open_ok(f->sub, NULL);
  t = rbegin(s);
  store_user got;
  assert_int_equal(store_user_get(t, 5, &got), STORE_CORRUPT);
  assert_non_null(strstr(store_txn_errmsg(t), "user 5"));
  char msg[STORE_ERRMSG_MAX];
  assert_non_null(strstr(store_errmsg(s, msg, sizeof msg), "user 5"));
  assert_int_equal(store_user_find(t, "victim", &got), STORE_CORRUPT);
  id_list l = {0};
  assert_int_equal(store_user_iter(t, collect_ids, &l), STORE_CORRUPT);
  assert_int_equal(l.n, 0);                               /* 5 comes first and stops the iteration */
  assert_int_equal(store_user_get(t, 6, &got), STORE_OK); /* others still readable */
  store_cpu cg;
  assert_int_equal(store_cpu_get(t, 5, &cg), STORE_CORRUPT);
  store_code_module m;
  assert_int_equal(store_code_get_module(t, 5, "default", "main", &m), STORE_CORRUPT);
  store_abort(t);

  /* Overwriting the damaged user repairs it, index included. */
  t = wbegin(s);
  u.cpu_limit = 77;
  snprintf(u.username, sizeof u.username, "renamed");
  assert_int_equal(store_user_put(t, &u), STORE_OK);
  assert_int_equal(store_user_find(t, "renamed", &got), STORE_OK);
  assert_int_equal(got.cpu_limit, 77);
  assert_int_equal(store_user_find(t, "victim", &got), STORE_NOTFOUND);
  assert_int_equal(store_commit(t), STORE_OK);
  store_close(s);

  /* Every truncation of a valid record, and random single-byte changes, decode to
   * STORE_CORRUPT or a valid user -- never a crash or an out-of-bounds read (valgrind and
   * ASan watch this). Truncations must all be refused. */
  srand(7);
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
  assert_int_equal(mdb_env_open(env, f->sub, 0, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "users", 0, &dbi), 0);
  uint64_t first_trunc = 1000, first_flip = 2000;
  for (long len = 0; len < gl; len++) {
    unsigned char k[8];
    be64(k, first_trunc + (uint64_t)len);
    unsigned char rec[1024];
    memcpy(rec, good, (size_t)gl);
    /* Keep the id consistent with the key so only the truncation is wrong. */
    for (int i = 0; i < 8; i++) rec[1 + i] = (unsigned char)((first_trunc + (uint64_t)len) >> (8 * i));
    MDB_val kv = {8, k}, vv = {(size_t)len, rec};
    assert_int_equal(mdb_put(txn, dbi, &kv, &vv, 0), 0);
  }
  for (int i = 0; i < 200; i++) {
    unsigned char k[8], rec[1024];
    be64(k, first_flip + (uint64_t)i);
    memcpy(rec, good, (size_t)gl);
    for (int j = 0; j < 8; j++) rec[1 + j] = (unsigned char)((first_flip + (uint64_t)i) >> (8 * j));
    size_t pos = (size_t)rand() % (size_t)gl;
    rec[pos] = (unsigned char)rand();
    MDB_val kv = {8, k}, vv = {(size_t)gl, rec};
    assert_int_equal(mdb_put(txn, dbi, &kv, &vv, 0), 0);
  }
  /* Targeted damage, each of which must be refused (layout in store_codec.c: version,
   * id, cpu_limit, flags, created_ms, then u16-length-prefixed strings from byte 25). */
  enum { N_TARGETED = 5 };
  uint64_t first_targeted = 3000;
  for (int i = 0; i < N_TARGETED; i++) {
    unsigned char k[8], rec[1100];
    uint64_t id = first_targeted + (uint64_t)i;
    be64(k, id);
    memcpy(rec, good, (size_t)gl);
    for (int j = 0; j < 8; j++) rec[1 + j] = (unsigned char)(id >> (8 * j));
    size_t len = (size_t)gl;
    switch (i) {
      case 0: rec[len++] = 0; break; /* a trailing byte */
      case 1: rec[0] = 2; break;     /* unknown record version */
      case 2:                        /* username "victim" replaced by 64 non-NUL bytes: one too many for the array */
        memcpy(rec + 27 + 64, good + 27 + 6, (size_t)gl - 33);
        memset(rec + 27, 'x', 64);
        rec[25] = 64, rec[26] = 0;
        len = (size_t)gl - 6 + 64;
        break;
      case 3: rec[29] = 0; break;                    /* "vi\0tim": NUL inside the username */
      case 4: rec[25] = 0xff, rec[26] = 0xff; break; /* length far past the end */
    }
    MDB_val kv = {8, k}, vv = {len, rec};
    assert_int_equal(mdb_put(txn, dbi, &kv, &vv, 0), 0);
  }
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);

  s = open_ok(f->sub, NULL);
  t = rbegin(s);
  for (int i = 0; i < N_TARGETED; i++) {
    int rc = store_user_get(t, first_targeted + (uint64_t)i, &got);
    if (rc != STORE_CORRUPT) fail_msg("targeted damage %d gave %s", i, store_strerror(rc));
  }
  for (long len = 0; len < gl; len++) {
    int rc = store_user_get(t, first_trunc + (uint64_t)len, &got);
    if (rc != STORE_CORRUPT) fail_msg("truncation to %ld bytes gave %s", len, store_strerror(rc));
  }
  int corrupt = 0;
  for (int i = 0; i < 200; i++) {
    int rc = store_user_get(t, first_flip + (uint64_t)i, &got);
    assert_true(rc == STORE_OK || rc == STORE_CORRUPT);
    if (rc == STORE_OK) {
      assert_non_null(memchr(got.username, '\0', sizeof got.username));
      assert_non_null(memchr(got.email, '\0', sizeof got.email));
    } else {
      corrupt++;
    }
  }
  assert_true(corrupt > 0);
  store_abort(t);
  store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_persistence_open_creates_dir_and_schema),
      T(test_persistence_reopen_keeps_data),
      T(test_persistence_game_time_roundtrip),
      T(test_persistence_schema_mismatch_refused),
      T(test_persistence_foreign_lmdb_env_refused),
      T(test_persistence_garbage_data_file_refused),
      T(test_persistence_lifecycle_edges),
      T(test_persistence_users_put_get_find),
      T(test_persistence_users_duplicate_username_refused),
      T(test_persistence_users_next_id_and_delete),
      T(test_persistence_code_branches_are_ranges),
      T(test_persistence_memory_and_cpu_roundtrip),
      T(test_persistence_world_prefix_iteration),
      T(test_persistence_abort_discards),
      T(test_persistence_threads_and_readers),
      T(test_persistence_map_full_poisons_txn_only),
      T(test_persistence_crash_safety_kill9),
      T(test_persistence_backup_while_reading),
      T(test_persistence_corrupt_records_detected),
      T(test_persistence_schema1_upgraded),
      T(test_persistence_users_email_index),
      T(test_persistence_branches),
      T(test_persistence_segments),
      T(test_persistence_console_queue),
      T(test_persistence_tokens_and_settings),
#undef T
  };
  return cmocka_run_group_tests_name("persistence", tests, NULL, NULL);
}
