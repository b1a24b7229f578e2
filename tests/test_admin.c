/*
 * test_admin.c — what persistence/ gives world administration: the state hash, the full
 * check of a store (store_verify), the admin log, the data directory lock, backups to a
 * file descriptor and the refusal of a truncated copy.
 *
 * Each test gets a fresh directory under /tmp, removed afterwards. The lock test forks a
 * child that holds the lock and kills it with SIGKILL: a dead holder leaves no lock.
 * The end-to-end behaviour (the admin API and isoworld-admin against the real server) is
 * in tests/e2e/admin_cli.test.mjs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  char dir[256];
  char a[320], b[320], file[320];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/isoworld-test-admin-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->a, sizeof f->a, "%s/a", f->dir);
  snprintf(f->b, sizeof f->b, "%s/b", f->dir);
  snprintf(f->file, sizeof f->file, "%s/backup.mdb", f->dir);
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

static store *open_store(const char *dir, const store_options *o) {
  store *s = NULL;
  assert_int_equal(store_create(&s), STORE_OK);
  int rc = store_open(s, dir, o);
  if (rc != STORE_OK) {
    char msg[STORE_ERRMSG_MAX];
    fprintf(stderr, "store_open(%s): %s\n", dir, store_errmsg(s, msg, sizeof msg));
  }
  assert_int_equal(rc, STORE_OK);
  return s;
}

/* A small world: users 1 and 2 with code, Memory, a segment, CPU, a console command, a
 * token and a world record; game time t. */
static void populate(store *s, uint64_t t, const char *memory) {
  store_txn *x;
  assert_int_equal(store_write_begin(s, &x), STORE_OK);
  for (uint64_t id = 1; id <= 2; id++) {
    store_user u = {.id = id, .cpu_limit = 100, .created_ms = 1000};
    snprintf(u.username, sizeof u.username, "user%llu", (unsigned long long)id);
    snprintf(u.email, sizeof u.email, "user%llu@example.org", (unsigned long long)id);
    snprintf(u.active_branch, sizeof u.active_branch, "default");
    assert_int_equal(store_user_put(x, &u), STORE_OK);
    store_branch b = {.name = "default", .flags = STORE_BRANCH_ACTIVE_WORLD, .timestamp_ms = 5};
    assert_int_equal(store_branch_put(x, id, &b), STORE_OK);
    assert_int_equal(store_code_put_module(x, id, "default", "main", "loop", 4, false), STORE_OK);
    assert_int_equal(store_code_set_stamp(x, id, 7), STORE_OK);
    assert_int_equal(store_memory_put(x, id, memory, strlen(memory)), STORE_OK);
    assert_int_equal(store_segment_put(x, id, 3, "seg", 3), STORE_OK);
    int active[] = {3};
    assert_int_equal(store_segments_set_active(x, id, active, 1), STORE_OK);
    store_cpu c = {100, 9000, 3, t};
    assert_int_equal(store_cpu_put(x, id, &c), STORE_OK);
    assert_int_equal(store_console_push(x, id, "1+1", 3, NULL), STORE_OK);
    unsigned char h[STORE_TOKEN_HASH_BYTES];
    memset(h, (int)id, sizeof h);
    store_token tok = {.created_ms = 1, .expires_ms = 0, .label = "ci"};
    assert_int_equal(store_token_put(x, id, h, &tok), STORE_OK);
  }
  uint64_t next;
  assert_int_equal(store_next_user_id(x, &next), STORE_OK);
  assert_int_equal(store_world_put(x, "room:W1N1", "terrain", 7), STORE_OK);
  assert_int_equal(store_set_game_time(x, t), STORE_OK);
  assert_int_equal(store_commit(x), STORE_OK);
}

static void hash_of(store *s, unsigned char out[STORE_STATE_HASH_BYTES], uint64_t *gt) {
  store_txn *t;
  assert_int_equal(store_read_begin(s, &t), STORE_OK);
  assert_int_equal(store_state_hash(t, out, gt), STORE_OK);
  store_abort(t);
}

typedef struct problems {
  int n;
  char last[STORE_ERRMSG_MAX];
} problems;

static void note(const char *msg, void *ud) {
  problems *p = ud;
  p->n++;
  snprintf(p->last, sizeof p->last, "%s", msg);
}

static store_verify_report verify(store *s, problems *p) {
  store_txn *t;
  store_verify_report r;
  assert_int_equal(store_read_begin(s, &t), STORE_OK);
  assert_int_equal(store_verify(t, &r, note, p), STORE_OK);
  store_abort(t);
  return r;
}

/* ------------------------------------------------------------------ the state hash */

static void test_admin_state_hash_is_deterministic(void **state) {
  fixture *f = *state;
  store *a = open_store(f->a, NULL), *b = open_store(f->b, NULL);
  populate(a, 42, "{\"x\":1}");
  populate(b, 42, "{\"x\":1}");
  unsigned char ha[STORE_STATE_HASH_BYTES], hb[STORE_STATE_HASH_BYTES];
  uint64_t ga, gb;
  hash_of(a, ha, &ga);
  hash_of(b, hb, &gb);
  assert_int_equal(ga, 42);
  assert_int_equal(gb, 42);
  assert_memory_equal(ha, hb, sizeof ha);

  /* Settings and the admin log are not part of the world. */
  store_txn *x;
  assert_int_equal(store_write_begin(b, &x), STORE_OK);
  assert_int_equal(store_setting_put(x, "paused", "1", 1), STORE_OK);
  store_admin_entry e = {.time_ms = 1, .who = "me@127.0.0.1", .what = "world pause"};
  assert_int_equal(store_admin_log_append(x, &e), STORE_OK);
  assert_int_equal(store_commit(x), STORE_OK);
  hash_of(b, hb, NULL);
  assert_memory_equal(ha, hb, sizeof ha);

  /* Any change of the world does change it: Memory, then the game time. */
  assert_int_equal(store_write_begin(b, &x), STORE_OK);
  assert_int_equal(store_memory_put(x, 2, "{\"x\":2}", 7), STORE_OK);
  assert_int_equal(store_commit(x), STORE_OK);
  hash_of(b, hb, NULL);
  assert_memory_not_equal(ha, hb, sizeof ha);
  assert_int_equal(store_write_begin(b, &x), STORE_OK);
  assert_int_equal(store_memory_put(x, 2, "{\"x\":1}", 7), STORE_OK);
  assert_int_equal(store_commit(x), STORE_OK);
  hash_of(b, hb, NULL);
  assert_memory_equal(ha, hb, sizeof ha);
  assert_int_equal(store_write_begin(b, &x), STORE_OK);
  assert_int_equal(store_set_game_time(x, 43), STORE_OK);
  assert_int_equal(store_commit(x), STORE_OK);
  hash_of(b, hb, NULL);
  assert_memory_not_equal(ha, hb, sizeof ha);
  store_close(a);
  store_close(b);
}

/* ------------------------------------------------------------------ backups */

static void backup_roundtrip(fixture *f, bool compact) {
  store *a = open_store(f->a, NULL);
  populate(a, 9, "{\"big\":\"................................................................\"}");
  unlink(f->file);
  int fd = open(f->file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(store_backup_fd(a, fd, compact), STORE_OK);
  close(fd);
  unsigned char ha[STORE_STATE_HASH_BYTES], hb[STORE_STATE_HASH_BYTES];
  hash_of(a, ha, NULL);
  /* Writes after the copy do not reach it. */
  store_txn *x;
  assert_int_equal(store_write_begin(a, &x), STORE_OK);
  assert_int_equal(store_set_game_time(x, 10), STORE_OK);
  assert_int_equal(store_commit(x), STORE_OK);
  store_close(a);

  store_options o = {.readonly = true, .nosubdir = true, .nolock = true};
  store *b = open_store(f->file, &o);
  uint64_t gt;
  hash_of(b, hb, &gt);
  assert_int_equal(gt, 9);
  assert_memory_equal(ha, hb, sizeof ha);
  problems p = {0};
  store_verify_report r = verify(b, &p);
  if (p.n) fprintf(stderr, "problem: %s\n", p.last);
  assert_int_equal(r.problems, 0);
  assert_memory_equal(r.state_hash, ha, sizeof ha);
  store_close(b);
  /* Nothing was written beside the backup. */
  char lock[400];
  snprintf(lock, sizeof lock, "%s-lock", f->file);
  assert_int_not_equal(access(lock, F_OK), 0);
}

static void test_admin_backup_fd_has_the_same_hash(void **state) {
  backup_roundtrip(*state, false);
}

static void test_admin_backup_fd_compact_has_the_same_hash(void **state) {
  backup_roundtrip(*state, true);
}

static void test_admin_truncated_copy_is_refused(void **state) {
  fixture *f = *state;
  backup_roundtrip(f, false);
  struct stat st;
  assert_int_equal(stat(f->file, &st), 0);
  assert_int_equal(truncate(f->file, st.st_size - 4096), 0);
  store *s = NULL;
  assert_int_equal(store_create(&s), STORE_OK);
  store_options o = {.readonly = true, .nosubdir = true, .nolock = true};
  assert_int_equal(store_open(s, f->file, &o), STORE_CORRUPT);
  char msg[STORE_ERRMSG_MAX];
  assert_non_null(strstr(store_errmsg(s, msg, sizeof msg), "truncated"));
  store_close(s);
  /* nolock without readonly makes no sense (it would let two writers in). */
  assert_int_equal(store_create(&s), STORE_OK);
  store_options w = {.nolock = true};
  assert_int_equal(store_open(s, f->a, &w), STORE_INVALID);
  store_close(s);
}

/* ------------------------------------------------------------------ verify */

static void test_admin_verify_counts_every_kind(void **state) {
  fixture *f = *state;
  store *a = open_store(f->a, NULL);
  populate(a, 5, "{}");
  problems p = {0};
  store_verify_report r = verify(a, &p);
  if (p.n) fprintf(stderr, "problem: %s\n", p.last);
  assert_int_equal(r.problems, 0);
  assert_int_equal(r.schema_version, STORE_SCHEMA_VERSION);
  assert_int_equal(r.game_time, 5);
  assert_int_equal(r.users, 2);
  assert_int_equal(r.branches, 2);
  assert_int_equal(r.modules, 2);
  assert_int_equal(r.memories, 2);
  assert_int_equal(r.segments, 2);
  assert_int_equal(r.console, 2);
  assert_int_equal(r.tokens, 2);
  assert_int_equal(r.cpu, 2);
  assert_int_equal(r.world, 1);
  assert_true(r.records > 20);
  store_close(a);
}

static void test_admin_verify_finds_orphans(void **state) {
  fixture *f = *state;
  store *a = open_store(f->a, NULL);
  populate(a, 5, "{}");
  store_txn *x;
  assert_int_equal(store_write_begin(a, &x), STORE_OK);
  assert_int_equal(store_memory_put(x, 99, "{}", 2), STORE_OK); /* no user 99 */
  assert_int_equal(store_code_put_module(x, 1, "nobranch", "main", "", 0, false), STORE_OK);
  assert_int_equal(store_commit(x), STORE_OK);
  problems p = {0};
  store_verify_report r = verify(a, &p);
  assert_int_equal(r.problems, 2);
  assert_int_equal(p.n, 2);
  assert_non_null(strstr(p.last, "user 99"));
  store_close(a);
}

/* ------------------------------------------------------------------ the admin log */

typedef struct collected {
  uint64_t seq[8];
  int n;
  uint64_t count, first;
} collected;

static int collect(const store_admin_entry *e, void *ud) {
  collected *c = ud;
  if (c->count == 0) c->first = e->seq;
  c->count++;
  if (c->n < 8) c->seq[c->n++] = e->seq;
  return 0;
}

static void test_admin_log_appends_and_keeps_the_newest(void **state) {
  fixture *f = *state;
  store *a = open_store(f->a, NULL);
  store_txn *x;
  assert_int_equal(store_write_begin(a, &x), STORE_OK);
  for (int i = 0; i < 3; i++) {
    store_admin_entry e = {.time_ms = 100 + i, .who = "admin@127.0.0.1"};
    snprintf(e.what, sizeof e.what, "action %d", i);
    assert_int_equal(store_admin_log_append(x, &e), STORE_OK);
    assert_int_equal(e.seq, (uint64_t)i + 1);
  }
  assert_int_equal(store_commit(x), STORE_OK);
  store_txn *t;
  collected c = {0};
  assert_int_equal(store_read_begin(a, &t), STORE_OK);
  assert_int_equal(store_admin_log_iter(t, false, collect, &c), STORE_OK);
  assert_int_equal(c.n, 3);
  assert_int_equal(c.seq[0], 1);
  assert_int_equal(c.seq[2], 3);
  c = (collected){0};
  assert_int_equal(store_admin_log_iter(t, true, collect, &c), STORE_OK);
  assert_int_equal(c.seq[0], 3);
  assert_int_equal(c.seq[2], 1);
  store_abort(t);

  /* Only the newest STORE_ADMIN_LOG_KEEP survive. */
  assert_int_equal(store_write_begin(a, &x), STORE_OK);
  for (int i = 0; i < STORE_ADMIN_LOG_KEEP + 5; i++) {
    store_admin_entry e = {.time_ms = 1, .who = "w", .what = "x"};
    assert_int_equal(store_admin_log_append(x, &e), STORE_OK);
  }
  assert_int_equal(store_commit(x), STORE_OK);
  c = (collected){0};
  assert_int_equal(store_read_begin(a, &t), STORE_OK);
  assert_int_equal(store_admin_log_iter(t, false, collect, &c), STORE_OK);
  assert_int_equal(c.count, STORE_ADMIN_LOG_KEEP);
  assert_int_equal(c.first, 3 + 5 + 1);
  store_abort(t);
  problems p = {0};
  store_verify_report r = verify(a, &p);
  assert_int_equal(r.problems, 0);
  assert_int_equal(r.admin_log, STORE_ADMIN_LOG_KEEP);
  store_close(a);
}

/* ------------------------------------------------------------------ the directory lock */

static void test_admin_dir_lock_is_exclusive_and_dies_with_its_holder(void **state) {
  fixture *f = *state;
  store_dir_lock *l1 = NULL, *l2 = NULL;
  long pid = -1;
  char who[64];
  assert_int_equal(store_dir_lock_take(f->a, "server", &l1, &pid, who, sizeof who), STORE_OK);
  assert_int_equal(store_dir_lock_take(f->a, "restore", &l2, &pid, who, sizeof who), STORE_BUSY);
  assert_null(l2);
  assert_int_equal(pid, getpid());
  assert_string_equal(who, "server");
  store_dir_lock_release(l1);
  assert_int_equal(store_dir_lock_take(f->a, "restore", &l2, NULL, NULL, 0), STORE_OK);
  store_dir_lock_release(l2);

  /* A holder killed with SIGKILL leaves nothing behind. */
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    store_dir_lock *l = NULL;
    if (store_dir_lock_take(f->a, "server", &l, NULL, NULL, 0) != STORE_OK) _exit(1);
    if (write(p[1], "x", 1) != 1) _exit(1);
    for (;;) pause();
  }
  char c;
  assert_int_equal(read(p[0], &c, 1), 1);
  assert_int_equal(store_dir_lock_take(f->a, "restore", &l2, &pid, who, sizeof who), STORE_BUSY);
  assert_int_equal(pid, child);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  assert_int_equal(store_dir_lock_take(f->a, "restore", &l2, NULL, NULL, 0), STORE_OK);
  store_dir_lock_release(l2);
  close(p[0]);
  close(p[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_admin_state_hash_is_deterministic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admin_backup_fd_has_the_same_hash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admin_backup_fd_compact_has_the_same_hash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admin_truncated_copy_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admin_verify_counts_every_kind, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admin_verify_finds_orphans, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admin_log_appends_and_keeps_the_newest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admin_dir_lock_is_exclusive_and_dies_with_its_holder, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
