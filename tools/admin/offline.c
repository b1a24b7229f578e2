/*
 * offline.c — verify and restore: the commands that work on files, with no server.
 *
 * verify opens a data directory or a backup file read-only and runs store_verify on one
 * snapshot. A directory is opened with LMDB's lock file, so it is safe while a server
 * runs there (it is then one more reader); a backup file is opened with no lock file at
 * all, so nothing is written next to it.
 *
 * restore replaces <data-dir>/data.mdb with a backup. The data directory's lock
 * (store_dir_lock_take, the flock every server holds while it runs) makes it exclusive:
 * a running server makes restore refuse, and a server started during a restore refuses
 * to start. The backup is verified before anything is touched, copied beside the live
 * file, flushed, and renamed over it, so the directory holds either the old world or the
 * new one, never half of either; the old world is kept unless --discard-old.
 */
#include "admin.h"

#include "sim.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct vstate {
  adm *a;
  json_t *problems;
  bool print;
} vstate;

static void on_problem(const char *msg, void *ud) {
  vstate *v = ud;
  if (v->problems) json_array_append_new(v->problems, json_string(msg));
  if (v->print) fprintf(stderr, "  %sproblem:%s %s\n", adm_c(v->a, true, "red"), adm_c(v->a, true, "reset"), msg);
}

/* The world's records, decoded by the game (sim_world_load checks every byte and the
 * invariants its rules rely on) and checked against the store's game time. */
static int take_world(const char *key, const void *data, size_t len, void *ud) {
  return sim_record_list_add(ud, key, data, len) == SIM_OK ? 0 : STORE_NOMEM;
}

static void verify_world(store_txn *t, store_verify_report *rep, vstate *v) {
  sim_record_list w = {0};
  char msg[SIM_ERRMSG_MAX + 128], err[SIM_ERRMSG_MAX] = "";
  int rc = store_world_iter(t, NULL, take_world, &w);
  if (rc != STORE_OK) {
    rep->problems++;
    on_problem("world: its records could not be read", v);
  } else if (w.n) {
    sim_world *world = NULL;
    int lrc = sim_world_load(sim_default_game(), w.r, w.n, &world, err);
    if (lrc != SIM_OK) {
      snprintf(msg, sizeof msg, "world: the %zu world records do not load: %s%s%s", w.n, sim_strerror(lrc),
               err[0] ? ": " : "", err);
      rep->problems++;
      on_problem(msg, v);
    } else if (sim_world_time(world) != rep->game_time) {
      snprintf(msg, sizeof msg, "world: its time %llu is not the game time %llu",
               (unsigned long long)sim_world_time(world), (unsigned long long)rep->game_time);
      rep->problems++;
      on_problem(msg, v);
    }
    sim_world_free(world);
  }
  sim_record_list_release(&w);
}

static void hex(const unsigned char *b, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Opens `path` (a directory or a backup file) read-only and verifies it. EXIT_OK with
 * *rep filled (problems counted there), or an exit code after a message. */
static int verify_path(adm *a, const char *path, store_verify_report *rep, json_t *problems, bool print) {
  struct stat st;
  if (stat(path, &st) != 0) return adm_fail(a, EXIT_REFUSED, "%s: %s", path, strerror(errno));
  store_options o = {.readonly = true};
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  if (S_ISREG(st.st_mode)) {
    /* data.mdb of a directory: open the directory (with its lock file: a server may run). */
    size_t n = strlen(dir);
    char lock[PATH_MAX + 16];
    if (n >= 9 && !strcmp(dir + n - 9, "/data.mdb")) {
      dir[n - 9] = '\0';
      snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
      if (stat(lock, &st) != 0) {
        snprintf(dir, sizeof dir, "%s", path);
        o.nosubdir = o.nolock = true;
      }
    } else {
      o.nosubdir = o.nolock = true;
    }
  } else if (S_ISDIR(st.st_mode)) {
    char data[PATH_MAX + 16];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    if (stat(data, &st) != 0) return adm_fail(a, EXIT_REFUSED, "%s holds no isoworld data (no data.mdb)", path);
  } else {
    return adm_fail(a, EXIT_REFUSED, "%s is neither a data directory nor a backup file", path);
  }
  store *s = NULL;
  int rc = store_create(&s);
  if (rc == STORE_OK) rc = store_open(s, dir, &o);
  store_txn *t = NULL;
  if (rc == STORE_OK) rc = store_read_begin(s, &t);
  vstate v = {a, problems, print};
  if (rc == STORE_OK) rc = store_verify(t, rep, on_problem, &v);
  if (rc == STORE_OK) verify_world(t, rep, &v);
  store_abort(t);
  char msg[STORE_ERRMSG_MAX] = "";
  if (rc != STORE_OK && s) store_errmsg(s, msg, sizeof msg);
  store_close(s);
  if (rc != STORE_OK)
    return adm_fail(a, EXIT_REFUSED, "%s cannot be read: %s%s%s", path, store_strerror(rc), msg[0] ? ": " : "", msg);
  return EXIT_OK;
}

static json_t *report_json(const char *path, const store_verify_report *r, json_t *problems) {
  char h[2 * STORE_STATE_HASH_BYTES + 1];
  hex(r->state_hash, sizeof r->state_hash, h);
  return json_pack(
      "{s:i, s:s, s:b, s:i, s:I, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:o}", "ok",
      r->problems ? 0 : 1, "path", path, "valid", r->problems == 0, "schema_version", (int)r->schema_version,
      "game_time", (json_int_t)r->game_time, "state_hash", h, "records", (json_int_t)r->records, "bytes",
      (json_int_t)r->bytes, "problem_count", (json_int_t)r->problems, "counts", "users", (json_int_t)r->users,
      "branches", (json_int_t)r->branches, "modules", (json_int_t)r->modules, "memories", (json_int_t)r->memories,
      "segments", (json_int_t)r->segments, "console", (json_int_t)r->console, "tokens", (json_int_t)r->tokens, "cpu",
      (json_int_t)r->cpu, "world", (json_int_t)r->world, "admin_log", (json_int_t)r->admin_log, "problems",
      problems ? problems : json_array());
}

static void print_report(adm *a, const char *path, const store_verify_report *r) {
  const char *b = adm_c(a, false, "bold"), *x = adm_c(a, false, "reset");
  char h[2 * STORE_STATE_HASH_BYTES + 1], size[32];
  hex(r->state_hash, sizeof r->state_hash, h);
  adm_bytes(r->bytes, size, sizeof size);
  printf("%s%s%s: %s%s%s\n", b, path, x, adm_c(a, false, r->problems ? "red" : "green"),
         r->problems ? "PROBLEMS" : "ok", x);
  if (r->problems) printf("%sproblems%s        %llu (listed above)\n", b, x, (unsigned long long)r->problems);
  printf("%sschema version%s  %u\n", b, x, r->schema_version);
  printf("%sgame time%s       %llu\n", b, x, (unsigned long long)r->game_time);
  printf("%srecords%s         %llu (%s)\n", b, x, (unsigned long long)r->records, size);
  printf(
      "%scounts%s          %llu users, %llu branches, %llu modules, %llu Memory, %llu segments,\n"
      "                %llu console commands, %llu tokens, %llu CPU accounts, %llu world records,\n"
      "                %llu admin log entries\n",
      b, x, (unsigned long long)r->users, (unsigned long long)r->branches, (unsigned long long)r->modules,
      (unsigned long long)r->memories, (unsigned long long)r->segments, (unsigned long long)r->console,
      (unsigned long long)r->tokens, (unsigned long long)r->cpu, (unsigned long long)r->world,
      (unsigned long long)r->admin_log);
  printf("%sstate hash%s      %s\n", b, x, h);
}

int cmd_verify(adm *a) {
  const char *path = a->n_pos ? a->pos[0] : a->data_dir;
  store_verify_report r;
  json_t *problems = a->json ? json_array() : NULL;
  int rc = verify_path(a, path, &r, problems, !a->json);
  if (rc != EXIT_OK) {
    json_decref(problems);
    return rc;
  }
  if (a->json)
    adm_print_json(report_json(path, &r, problems));
  else
    print_report(a, path, &r);
  return r.problems ? EXIT_REFUSED : EXIT_OK;
}

/* ------------------------------------------------------------------ restore */

static int copy_file(adm *a, const char *from, const char *to, uint64_t total) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0) return adm_fail(a, EXIT_REFUSED, "restore: cannot open %s: %s", from, strerror(errno));
  unlink(to); /* a leftover of an interrupted restore */
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    close(in);
    return adm_fail(a, EXIT_REFUSED, "restore: cannot create %s: %s", to, strerror(errno));
  }
  char *buf = malloc(1 << 20);
  uint64_t done = 0;
  int rc = buf ? EXIT_OK : adm_fail(a, EXIT_REFUSED, "restore: out of memory");
  struct timespec last = {0, 0};
  while (rc == EXIT_OK) {
    ssize_t n = read(in, buf, 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = adm_fail(a, EXIT_REFUSED, "restore: cannot read %s: %s", from, strerror(errno));
    if (n <= 0) break;
    for (ssize_t off = 0; rc == EXIT_OK && off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        rc = adm_fail(a, EXIT_REFUSED, "restore: cannot write %s: %s", to, strerror(errno));
      else
        off += w;
    }
    done += (uint64_t)n;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 > 100) {
      adm_progress(a, "restore", done, total, false);
      last = now;
    }
  }
  free(buf);
  close(in);
  if (rc == EXIT_OK && fsync(out) != 0)
    rc = adm_fail(a, EXIT_REFUSED, "restore: cannot flush %s: %s", to, strerror(errno));
  if (close(out) != 0 && rc == EXIT_OK)
    rc = adm_fail(a, EXIT_REFUSED, "restore: cannot write %s: %s", to, strerror(errno));
  if (rc == EXIT_OK)
    adm_progress(a, "restore", done, total, true);
  else
    unlink(to);
  return rc;
}

static void fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  if (fsync(fd) != 0) {
    /* the renames are done; only their durability across a power cut is in question */
  }
  close(fd);
}

int cmd_restore(adm *a) {
  const char *file = a->pos[0], *dir = a->data_dir;
  struct stat st;
  if (stat(file, &st) != 0) return adm_fail(a, EXIT_REFUSED, "restore: %s: %s", file, strerror(errno));
  if (!S_ISREG(st.st_mode)) return adm_fail(a, EXIT_REFUSED, "restore: %s is not a backup file", file);
  uint64_t size = (uint64_t)st.st_size;

  /* 1. The data directory must be ours alone. */
  store_dir_lock *lock = NULL;
  long pid = 0;
  char holder[64];
  int rc = store_dir_lock_take(dir, "restore", &lock, &pid, holder, sizeof holder);
  if (rc == STORE_BUSY)
    return adm_fail(a, EXIT_REFUSED, "restore: refused: %s (pid %ld) is using %s; stop it first",
                    !strcmp(holder, "restore") ? "another restore" : "a server", pid, dir);
  if (rc != STORE_OK) return adm_fail(a, EXIT_REFUSED, "restore: cannot lock %s: %s", dir, store_strerror(rc));

  char data[PATH_MAX], tmp[PATH_MAX + 32], lockmdb[PATH_MAX + 16], real_file[PATH_MAX], real_data[PATH_MAX];
  snprintf(data, sizeof data, "%s/data.mdb", dir);
  snprintf(tmp, sizeof tmp, "%s/data.mdb.restoring", dir);
  snprintf(lockmdb, sizeof lockmdb, "%s/lock.mdb", dir);
  if (realpath(file, real_file) && realpath(data, real_data) && !strcmp(real_file, real_data)) {
    store_dir_lock_release(lock);
    return adm_fail(a, EXIT_REFUSED, "restore: %s is the data directory's own file", file);
  }

  /* 2. The backup must be whole and readable by this build. */
  store_verify_report want;
  json_t *problems = a->json ? json_array() : NULL;
  rc = verify_path(a, file, &want, problems, !a->json);
  if (rc != EXIT_OK) {
    json_decref(problems);
    store_dir_lock_release(lock);
    return rc;
  }
  if (want.problems) {
    json_decref(problems);
    store_dir_lock_release(lock);
    return adm_fail(a, EXIT_REFUSED, "restore: refused: %s has %llu problems (isoworld-admin verify lists them)", file,
                    (unsigned long long)want.problems);
  }
  json_decref(problems);

  /* 3. Say what is replaced. */
  bool had = stat(data, &st) == 0;
  if (had) {
    char now[128] = "a world that cannot be read";
    store *s = NULL;
    store_txn *t = NULL;
    store_options o = {.readonly = true};
    uint64_t gt;
    if (store_create(&s) == STORE_OK && store_open(s, dir, &o) == STORE_OK && store_read_begin(s, &t) == STORE_OK &&
        store_get_game_time(t, &gt) == STORE_OK)
      snprintf(now, sizeof now, "the world at game time %llu", (unsigned long long)gt);
    store_abort(t);
    store_close(s);
    if (!adm_confirm(a, &rc, "Replace %s in %s with the backup (game time %llu)?", now, dir,
                     (unsigned long long)want.game_time)) {
      store_dir_lock_release(lock);
      return rc;
    }
  }

  /* 4. Copy beside, flush, keep or drop the old file, rename into place. */
  rc = copy_file(a, file, tmp, size);
  if (rc != EXIT_OK) {
    store_dir_lock_release(lock);
    return rc;
  }
  char kept[PATH_MAX + 64] = "";
  if (had) {
    if (adm_has(a, "discard-old")) {
      /* dropped by the rename below */
    } else {
      char stamp[32];
      time_t t = time(NULL);
      struct tm tm;
      localtime_r(&t, &tm);
      strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
      snprintf(kept, sizeof kept, "%s/data.mdb.before-restore-%s", dir, stamp);
      if (rename(data, kept) != 0) {
        int e = errno;
        unlink(tmp);
        store_dir_lock_release(lock);
        return adm_fail(a, EXIT_REFUSED, "restore: cannot keep the old world as %s: %s", kept, strerror(e));
      }
    }
  }
  if (rename(tmp, data) != 0) {
    int e = errno;
    bool back = !kept[0] || rename(kept, data) == 0;
    unlink(tmp);
    store_dir_lock_release(lock);
    return adm_fail(a, EXIT_REFUSED, "restore: cannot put the backup in place: %s%s%s", strerror(e),
                    back ? "" : "; the old world is in ", back ? "" : kept);
  }
  /* LMDB's lock file describes readers of the old file: a fresh one is made at the next open. */
  unlink(lockmdb);
  fsync_dir(dir);

  /* 5. Read it back. */
  store_verify_report got;
  rc = verify_path(a, dir, &got, NULL, !a->json);
  store_dir_lock_release(lock);
  if (rc != EXIT_OK) return rc;
  if (got.problems || memcmp(got.state_hash, want.state_hash, sizeof got.state_hash) != 0)
    return adm_fail(a, EXIT_REFUSED, "restore: the restored data does not read back as the backup (%s)",
                    got.problems ? "problems found" : "different state hash");
  char h[2 * STORE_STATE_HASH_BYTES + 1];
  hex(got.state_hash, sizeof got.state_hash, h);
  if (a->json) {
    adm_print_json(json_pack("{s:i, s:s, s:s, s:I, s:s, s:s?}", "ok", 1, "data_dir", dir, "from", file, "game_time",
                             (json_int_t)got.game_time, "state_hash", h, "kept", kept[0] ? kept : NULL));
  } else {
    printf("restored %s into %s: game time %llu, state hash %s\n", file, dir, (unsigned long long)got.game_time, h);
    if (kept[0]) printf("the previous world is kept as %s (delete it when you no longer need it)\n", kept);
  }
  return EXIT_OK;
}
