/*
 * admin_backup.c — backups of a running world.
 *
 * POST /admin/backup {path, compact?, overwrite?} starts one (one at a time) and answers
 * at once; GET /admin/backup tells how far it is. The copy is LMDB's consistent copy
 * (store_backup_fd), which reads a snapshot while ticks go on committing. Its own thread
 * runs it, writing through a pipe that this thread drains into <path>.partial: counting
 * the bytes gives the progress, and the first byte tells that LMDB's snapshot exists.
 *
 * Why the hold: the backup reports the state hash of the world it copied, so the hash
 * must be computed from the same commit as the copy. The tick thread is parked between
 * two ticks (srv_time_wait) while this thread opens its own read snapshot and LMDB opens
 * the copy's; as soon as the copy's first byte arrives both snapshots exist, no commit
 * can have come between them, and the tick thread is released — a pause of milliseconds,
 * never in the middle of a tick. The hash is then computed from our snapshot while the
 * copy proceeds. Finally the written file is opened read-only and verified (every record
 * decodes, and its state hash equals the one computed), and only then renamed to `path`:
 * a file at `path` is always a complete, verified backup.
 */
#include "admin_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct admin_backup {
  srv_admin *a;
  uint64_t id;
  char path[PATH_MAX];
  char partial[PATH_MAX + 16];
  bool compact, overwrite;
  char who[STORE_ADMIN_WHO_MAX];
  pthread_t thread;
  bool started, joined;
  int64_t started_ms;
  /* under a->bk_mu */
  const char *phase; /* starting, copying, verifying, done, failed */
  uint64_t bytes, total;
  uint64_t game_time;
  unsigned char hash[STORE_STATE_HASH_BYTES];
  bool have_hash;
  char error[400];
  int64_t finished_ms;
};

static void fail(admin_backup *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(admin_backup *b, const char *fmt, ...) {
  pthread_mutex_lock(&b->a->bk_mu);
  if (b->error[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->error, sizeof b->error, fmt, ap);
    va_end(ap);
  }
  b->phase = "failed";
  b->finished_ms = srv_now_ms();
  pthread_mutex_unlock(&b->a->bk_mu);
}

/* ------------------------------------------------------------------ the hold */

/* Parks the tick thread between two ticks. true when it is parked. */
static bool hold(srv *s) {
  pthread_mutex_lock(&s->mu);
  s->hold = true;
  pthread_cond_signal(&s->cv);
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  time_t give_up = now.tv_sec + 120; /* a tick in progress may be long; it is never cut */
  /* (ops_closed: the tick thread has ended, also when it stopped by itself) */
  while (!s->held && !s->stop && !s->ops_closed) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec >= give_up) break;
    struct timespec ts = {now.tv_sec, now.tv_nsec + 100000000L};
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->hold_cv, &s->mu, &ts);
  }
  bool held = s->held && !s->stop && !s->ops_closed;
  if (!held) {
    s->hold = false;
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return held;
}

static void release(srv *s) {
  pthread_mutex_lock(&s->mu);
  s->hold = false;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ the copy */

typedef struct copier {
  store *db;
  int fd;
  bool compact;
  int rc;
  char err[STORE_ERRMSG_MAX];
} copier;

static void *copy_main(void *arg) {
  copier *c = arg;
  c->rc = store_backup_fd(c->db, c->fd, c->compact);
  if (c->rc != STORE_OK) store_errmsg(c->db, c->err, sizeof c->err);
  close(c->fd); /* EOF for the reader */
  return NULL;
}

static bool write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

static void fsync_dir_of(const char *path) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  int dfd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    if (fsync(dfd) != 0) {
      /* the rename is done; only its durability across a power cut is in question */
    }
    close(dfd);
  }
}

static void problem_note(const char *msg, void *ud) {
  admin_backup *b = ud;
  srv_log("backup %" PRIu64 ": verify: %s", b->id, msg);
}

static void *backup_main(void *arg) {
  admin_backup *b = arg;
  srv *s = b->a->s;
  store_txn *snap = NULL;
  int pfd[2] = {-1, -1};
  int out = open(b->partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) {
    fail(b, "cannot create %s: %s", b->partial, strerror(errno));
    goto done;
  }
  if (pipe2(pfd, O_CLOEXEC) != 0) {
    fail(b, "cannot make a pipe: %s", strerror(errno));
    goto done;
  }
  if (!hold(s)) {
    fail(b, "the tick thread did not stop between ticks for the backup (the server is stopping?)");
    goto done;
  }
  int rc = store_read_begin(s->db, &snap);
  store_info info;
  if (rc == STORE_OK) rc = store_get_info(snap, &info);
  if (rc != STORE_OK) {
    release(s);
    fail(b, "cannot open a snapshot: %s", store_strerror(rc));
    goto done;
  }
  uint64_t total = info.map_used;
  if (b->compact) {
    total = 3ull * info.page_size;
    for (size_t i = 0; i < info.n_dbs; i++) total += info.dbs[i].bytes;
  }
  pthread_mutex_lock(&b->a->bk_mu);
  b->total = total;
  b->game_time = info.game_time;
  b->phase = "copying";
  pthread_mutex_unlock(&b->a->bk_mu);

  copier c = {s->db, pfd[1], b->compact, 0, ""};
  pthread_t ct;
  if (pthread_create(&ct, NULL, copy_main, &c) != 0) {
    release(s);
    fail(b, "cannot start the copy thread");
    goto done;
  }
  pfd[1] = -1; /* the copier closes it */
  char *buf = malloc(1 << 16);
  if (!buf) {
    /* Without a buffer the pipe cannot be drained: let the copy end on a closed pipe. */
    close(pfd[0]);
    pfd[0] = -1;
    release(s);
    pthread_join(ct, NULL);
    fail(b, "out of memory");
    goto done;
  }
  bool held = true, ok = true;
  for (;;) {
    ssize_t n = read(pfd[0], buf, 1 << 16);
    if (n < 0 && errno == EINTR) continue;
    if (held) {
      /* LMDB wrote its first bytes (or gave up): its snapshot exists. */
      release(s);
      held = false;
    }
    if (n <= 0) break;
    if (ok && !write_all(out, buf, (size_t)n)) {
      ok = false;
      fail(b, "cannot write %s: %s", b->partial, strerror(errno));
      /* keep draining so the copy thread can finish */
    }
    pthread_mutex_lock(&b->a->bk_mu);
    b->bytes += (uint64_t)n;
    pthread_mutex_unlock(&b->a->bk_mu);
  }
  if (held) release(s);
  free(buf);
  pthread_join(ct, NULL);
  if (c.rc != STORE_OK) fail(b, "the copy failed: %s (%s)", store_strerror(c.rc), c.err);
  if (!ok || c.rc != STORE_OK) goto done;
  if (fsync(out) != 0) {
    fail(b, "cannot flush %s: %s", b->partial, strerror(errno));
    goto done;
  }
  close(out);
  out = -1;

  /* The hash of the world copied, from our snapshot of the same commit. */
  unsigned char hash[STORE_STATE_HASH_BYTES];
  uint64_t gt = 0;
  rc = store_state_hash(snap, hash, &gt);
  store_abort(snap);
  snap = NULL;
  if (rc != STORE_OK) {
    fail(b, "cannot hash the world: %s", store_strerror(rc));
    goto done;
  }
  pthread_mutex_lock(&b->a->bk_mu);
  memcpy(b->hash, hash, sizeof hash);
  b->have_hash = true;
  b->game_time = gt;
  b->phase = "verifying";
  pthread_mutex_unlock(&b->a->bk_mu);

  /* Read back what was written, as `isoworld-admin verify` and restore will. */
  store *copy = NULL;
  store_verify_report rep;
  rc = store_create(&copy);
  if (rc == STORE_OK) {
    store_options o = {.readonly = true, .nosubdir = true, .nolock = true};
    rc = store_open(copy, b->partial, &o);
  }
  store_txn *vt = NULL;
  if (rc == STORE_OK) rc = store_read_begin(copy, &vt);
  if (rc == STORE_OK) rc = store_verify(vt, &rep, problem_note, b);
  store_abort(vt);
  char emsg[STORE_ERRMSG_MAX] = "";
  if (rc != STORE_OK && copy) store_errmsg(copy, emsg, sizeof emsg);
  store_close(copy);
  if (rc != STORE_OK) {
    fail(b, "the backup does not open: %s (%s)", store_strerror(rc), emsg);
    goto done;
  }
  if (rep.problems) {
    fail(b, "the backup has %" PRIu64 " problems (see the server log)", rep.problems);
    goto done;
  }
  if (memcmp(rep.state_hash, hash, sizeof hash) != 0 || rep.game_time != gt) {
    fail(b, "the backup's state hash differs from the world's at the time of the copy");
    goto done;
  }
  if (rename(b->partial, b->path) != 0) {
    fail(b, "cannot rename %s to %s: %s", b->partial, b->path, strerror(errno));
    goto done;
  }
  fsync_dir_of(b->path);
  pthread_mutex_lock(&b->a->bk_mu);
  b->phase = "done";
  b->finished_ms = srv_now_ms();
  pthread_mutex_unlock(&b->a->bk_mu);
done:
  if (snap) store_abort(snap);
  if (pfd[0] >= 0) close(pfd[0]);
  if (pfd[1] >= 0) close(pfd[1]);
  if (out >= 0) close(out);
  pthread_mutex_lock(&b->a->bk_mu);
  bool failed = !strcmp(b->phase, "failed");
  char hex[2 * STORE_STATE_HASH_BYTES + 1] = "";
  for (size_t i = 0; b->have_hash && i < STORE_STATE_HASH_BYTES; i++) snprintf(hex + 2 * i, 3, "%02x", b->hash[i]);
  uint64_t bytes = b->bytes, gt2 = b->game_time;
  double secs = (double)(b->finished_ms - b->started_ms) / 1000.0;
  pthread_mutex_unlock(&b->a->bk_mu);
  if (failed) {
    unlink(b->partial);
    srv_log("admin %s: backup %" PRIu64 " to %s failed: %s", b->who, b->id, b->path, b->error);
  } else {
    srv_log("admin %s: backup %" PRIu64 " to %s: done, game time %" PRIu64 ", %" PRIu64 " bytes in %.1f s, state %s",
            b->who, b->id, b->path, gt2, bytes, secs, hex);
  }
  return NULL;
}

/* ------------------------------------------------------------------ routes */

static json_t *backup_json(srv_admin *a) {
  pthread_mutex_lock(&a->bk_mu);
  admin_backup *b = a->bk;
  json_t *j = NULL;
  if (b) {
    int64_t end = b->finished_ms ? b->finished_ms : srv_now_ms();
    j = json_pack("{s:I, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:f}", "id", (json_int_t)b->id, "path", b->path, "phase",
                  b->phase, "compact", b->compact, "bytes", (json_int_t)b->bytes, "total",
                  (json_int_t)(b->total > b->bytes ? b->total : b->bytes), "game_time", (json_int_t)b->game_time,
                  "started_ms", (json_int_t)b->started_ms, "elapsed_s", (double)(end - b->started_ms) / 1000.0);
    if (j && b->have_hash) json_object_set_new(j, "state_hash", admin_hex(b->hash, sizeof b->hash));
    if (j && b->error[0]) json_object_set_new(j, "error", json_string(b->error));
  }
  pthread_mutex_unlock(&a->bk_mu);
  return j;
}

static void h_backup_status(srv_admin *a, web_req *req, const char *who) {
  (void)who; /* a poll: not logged */
  json_t *j = backup_json(a);
  admin_ok(req, json_pack("{s:o}", "backup", j ? j : json_null()));
}

static bool running(srv_admin *a) {
  pthread_mutex_lock(&a->bk_mu);
  bool r = a->bk && a->bk->started && a->bk->finished_ms == 0;
  pthread_mutex_unlock(&a->bk_mu);
  return r;
}

static int backup_prepare(srv *s, store_txn *txn, admin_op *o) {
  (void)s;
  (void)txn;
  if (running(o->a)) return admin_refuse(o, 409, "busy", "a backup is already running");
  return 0;
}

static void backup_done(admin_op *o, int status) {
  srv_admin *a = o->a;
  if (status != 0) {
    admin_op_answer(o, status);
    return;
  }
  admin_backup *b = calloc(1, sizeof *b);
  if (!b || running(a)) {
    free(b);
    admin_fail(o->req, b ? 409 : 500, b ? "busy" : "internal", b ? "a backup is already running" : "out of memory");
    admin_op_free(o);
    return;
  }
  b->a = a;
  snprintf(b->path, sizeof b->path, "%s", o->text);
  snprintf(b->partial, sizeof b->partial, "%s.partial", b->path);
  b->compact = o->flag;
  snprintf(b->who, sizeof b->who, "%s", o->who);
  b->started_ms = srv_now_ms();
  b->phase = "starting";
  /* Join the previous one (finished) before it is replaced. */
  admin_backup_close(a);
  static uint64_t next_id;
  b->id = ++next_id;
  pthread_mutex_lock(&a->bk_mu);
  a->bk = b;
  b->started = pthread_create(&b->thread, NULL, backup_main, b) == 0;
  pthread_mutex_unlock(&a->bk_mu);
  if (!b->started) {
    fail(b, "cannot start the backup thread");
    admin_fail(o->req, 500, "internal", "cannot start the backup thread");
    admin_op_free(o);
    return;
  }
  admin_ok(o->req, json_pack("{s:o}", "backup", backup_json(a)));
  admin_op_free(o);
}

static void h_backup(srv_admin *a, web_req *req, const char *who) {
  json_t *body;
  if (!admin_body(req, &body)) return;
  char path[PATH_MAX];
  json_t *jc = json_object_get(body, "compact"), *jo = json_object_get(body, "overwrite");
  bool ok = admin_arg_str(req, body, "path", false, path, sizeof path - 16);
  json_decref(body);
  if (!ok) return;
  if (path[0] != '/') {
    admin_fail(req, 400, "bad_request", "'path' must be absolute (a file on the server's machine)");
    return;
  }
  if ((jc && !json_is_boolean(jc)) || (jo && !json_is_boolean(jo))) {
    admin_fail(req, 400, "bad_request", "'compact' and 'overwrite' must be true or false");
    return;
  }
  size_t n = strlen(path);
  if (path[n - 1] == '/') {
    admin_fail(req, 400, "bad_request", "'path' must name a file, not a directory");
    return;
  }
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  struct stat st;
  if (stat(dirname(dir), &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(dir, sizeof dir, "%s", path);
    admin_fail(req, 400, "bad_request", "the directory %s does not exist", dirname(dir));
    return;
  }
  /* Where backups may go: anywhere the server may write, for a loopback admin (who is the
   * server's user anyway); only under --backup-dir when one is set, and by default only
   * under <data-dir>/backups when the admin API answers remote clients, so a token that
   * travels does not let its holder write files all over the server's account. */
  char root[PATH_MAX] = "";
  if (a->s->cfg.backup_dir[0])
    snprintf(root, sizeof root, "%s", a->s->cfg.backup_dir);
  else if (a->s->cfg.admin_remote) {
    snprintf(root, sizeof root, "%s/backups", a->s->cfg.data_dir);
    mkdir(root, 0700);
  }
  if (root[0]) {
    char real_root[PATH_MAX], real_parent[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    size_t rl = realpath(root, real_root) ? strlen(real_root) : 0;
    if (!rl || !realpath(dirname(dir), real_parent) || strncmp(real_parent, real_root, rl) != 0 ||
        (real_parent[rl] != '\0' && real_parent[rl] != '/')) {
      admin_fail(req, 403, "forbidden", "backups go under %s on this server", root);
      return;
    }
  }
  if (lstat(path, &st) == 0) {
    if (!json_is_true(jo) || !S_ISREG(st.st_mode)) {
      admin_fail(req, 409, "exists", "%s already exists%s", path,
                 S_ISREG(st.st_mode) ? " (isoworld-admin backup --force replaces it)" : "");
      return;
    }
    /* --force replaces a backup, never some other file. */
    store *old = NULL;
    store_options ro = {.readonly = true, .nosubdir = true, .nolock = true};
    int orc = store_create(&old);
    if (orc == STORE_OK) orc = store_open(old, path, &ro);
    store_close(old);
    if (orc != STORE_OK) {
      admin_fail(req, 409, "exists", "%s exists and is not an isoworld backup: refusing to replace it", path);
      return;
    }
  }
  /* Never over the live store's own files. */
  char real_dir[PATH_MAX], real_data[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  if (realpath(dirname(dir), real_dir) && realpath(a->s->cfg.data_dir, real_data) && !strcmp(real_dir, real_data)) {
    snprintf(dir, sizeof dir, "%s", path);
    const char *base = basename(dir);
    if (!strcmp(base, "data.mdb") || !strcmp(base, "lock.mdb") || !strcmp(base, "admin.token") ||
        !strcmp(base, "admin.json") || !strcmp(base, "isoworld.lock")) {
      admin_fail(req, 400, "bad_request", "%s is one of the data directory's own files", path);
      return;
    }
  }
  if (running(a)) {
    admin_fail(req, 409, "busy", "a backup is already running");
    return;
  }
  admin_op *o = admin_op_new(a, req, who, "backup %s%s", path, jc && json_is_false(jc) ? " --no-compact" : "");
  if (!o) return;
  snprintf(o->text, sizeof o->text, "%s", path);
  if (strlen(path) >= sizeof o->text) {
    admin_fail(req, 400, "bad_request", "'path' is too long (at most %zu bytes)", sizeof o->text - 1);
    admin_op_free(o);
    return;
  }
  o->flag = !(jc && json_is_false(jc));
  o->prepare = backup_prepare;
  o->done = backup_done;
  admin_op_submit(o);
}

void admin_backup_close(srv_admin *a) {
  pthread_mutex_lock(&a->bk_mu);
  admin_backup *b = a->bk;
  a->bk = NULL;
  pthread_mutex_unlock(&a->bk_mu);
  if (!b) return;
  if (b->started && !b->joined) {
    pthread_mutex_lock(&a->bk_mu);
    bool busy = !b->finished_ms;
    pthread_mutex_unlock(&a->bk_mu);
    if (busy) srv_log("waiting for backup %" PRIu64 " to %s to finish", b->id, b->path);
    pthread_join(b->thread, NULL);
  }
  free(b);
}

int admin_backup_install(srv_admin *a) {
  int rc;
  if ((rc = admin_route(a, "POST", "/admin/backup", h_backup)) ||
      (rc = admin_route(a, "GET", "/admin/backup", h_backup_status)))
    return rc;
  return 0;
}
