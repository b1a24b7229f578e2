/*
 * test_e2e_server.c — starts the real server binary on loopback and checks, over HTTP
 * and in its data directory, that it ticks, that kill -9 loses at most the tick in
 * progress, and that a restart goes on from the last committed tick.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static char bin[1024];

typedef struct server {
  pid_t pid;
  int port;
  int err_fd; /* the server's stderr */
  char log[16384];
  size_t log_len;
} server;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads what the server wrote to stderr so far (non-blocking). */
static void drain(server *s) {
  for (;;) {
    struct pollfd p = {s->err_fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return;
    ssize_t n = read(s->err_fd, s->log + s->log_len, sizeof s->log - 1 - s->log_len);
    if (n <= 0) return;
    s->log_len += (size_t)n;
    s->log[s->log_len] = 0;
    if (s->log_len >= sizeof s->log - 1) s->log_len = 0; /* keep the tail */
  }
}

static int start_server(server *s, const char *dir, const char *extra) {
  memset(s, 0, sizeof *s);
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    close(fds[0]);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "exec '%s' --data-dir '%s' --bind 127.0.0.1 --port 0 --tick-ms 20 --stats-every 0 --quiet %s", bin,
             dir, extra ? extra : "");
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  s->pid = pid;
  s->err_fd = fds[0];
  fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
  double t0 = now_s();
  while (now_s() - t0 < 30) {
    drain(s);
    const char *u = strstr(s->log, "http://127.0.0.1:");
    if (u && strchr(u, '/') && strchr(u + 17, '/')) {
      s->port = atoi(u + 17);
      return s->port > 0 ? 0 : -1;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      s->pid = 0;
      return -1;
    }
    sleep_ms(20);
  }
  return -1;
}

static int wait_exit(server *s, int timeout_s) {
  double t0 = now_s();
  while (now_s() - t0 < timeout_s) {
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      drain(s);
      close(s->err_fd);
      s->pid = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    sleep_ms(20);
  }
  return -1;
}

static void kill_server(server *s, int sig) {
  if (s->pid <= 0) return;
  kill(s->pid, sig);
  wait_exit(s, 30);
}

/* GET path on loopback; returns the body (static buffer) or NULL. */
static const char *http_get(int port, const char *path, int *status) {
  static char buf[65536];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return NULL;
  }
  size_t len = 0;
  ssize_t r;
  while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)r;
  close(fd);
  buf[len] = 0;
  if (status) *status = len > 12 ? atoi(buf + 9) : 0;
  char *body = strstr(buf, "\r\n\r\n");
  return body ? body + 4 : NULL;
}

static long long game_time(int port) {
  const char *b = http_get(port, "/api/game/time", NULL);
  const char *t = b ? strstr(b, "\"time\":") : NULL;
  return t ? atoll(t + 7) : -1;
}

static long long wait_time_at_least(int port, long long want, int timeout_s) {
  double t0 = now_s();
  long long t = -1;
  while (now_s() - t0 < timeout_s) {
    t = game_time(port);
    if (t >= want) return t;
    sleep_ms(10);
  }
  return t;
}

static char *make_dir(void) {
  char *d = strdup("/tmp/isoworld-e2e-XXXXXX");
  assert_non_null(mkdtemp(d));
  return d;
}

static void remove_dir(char *d) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  assert_int_equal(system(cmd), 0);
  free(d);
}

/* The committed game time, and alice's Memory.ticks (the demo player counts ticks). */
static void read_committed(const char *dir, uint64_t *t, long long *alice_ticks) {
  store *db;
  assert_int_equal(store_create(&db), STORE_OK);
  store_options o = {.readonly = true};
  assert_int_equal(store_open(db, dir, &o), STORE_OK);
  store_txn *txn;
  assert_int_equal(store_read_begin(db, &txn), STORE_OK);
  assert_int_equal(store_get_game_time(txn, t), STORE_OK);
  store_user u;
  assert_int_equal(store_user_find(txn, "alice", &u), STORE_OK);
  const char *mem;
  size_t len;
  *alice_ticks = -1;
  if (store_memory_get(txn, u.id, &mem, &len) == STORE_OK) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%.*s", (int)(len < 255 ? len : 255), mem);
    const char *k = strstr(tmp, "\"ticks\":");
    if (k) *alice_ticks = atoll(k + 8);
  }
  store_abort(txn);
  store_close(db);
}

static void test_e2e_server_ticks_and_answers(void **state) {
  (void)state;
  char *dir = make_dir();
  server s;
  assert_int_equal(start_server(&s, dir, NULL), 0);
  long long t1 = wait_time_at_least(s.port, 3, 20);
  assert_true(t1 >= 3);
  long long t2 = wait_time_at_least(s.port, t1 + 3, 20);
  assert_true(t2 > t1);
  int status;
  const char *v = http_get(s.port, "/api/version", &status);
  assert_int_equal(status, 200);
  assert_non_null(strstr(v, "\"protocol\":14"));
  assert_non_null(strstr(v, "\"users\":2"));
  const char *nf = http_get(s.port, "/api/no/such/thing", &status);
  assert_int_equal(status, 404);
  assert_non_null(strstr(nf, "\"error\""));
  kill_server(&s, SIGTERM);
  /* A clean stop commits what it published: alice counted every tick. */
  uint64_t t;
  long long ticks;
  read_committed(dir, &t, &ticks);
  assert_true((long long)t >= t2);
  assert_int_equal(ticks, (long long)t);
  remove_dir(dir);
}

static void test_e2e_server_kill9_loses_nothing_committed(void **state) {
  (void)state;
  char *dir = make_dir();
  srand((unsigned)time(NULL));
  long long last_seen = 0;
  for (int round = 0; round < 4; round++) {
    server s;
    assert_int_equal(start_server(&s, dir, NULL), 0);
    long long first = wait_time_at_least(s.port, 0, 20);
    /* It goes on from the last committed tick, never from before what was published. */
    assert_true(first >= last_seen);
    long long seen = wait_time_at_least(s.port, first + 3 + rand() % 5, 20);
    assert_true(seen > first);
    sleep_ms(rand() % 40); /* kill at some moment of a tick */
    last_seen = game_time(s.port);
    if (last_seen < seen) last_seen = seen;
    kill(s.pid, SIGKILL);
    wait_exit(&s, 30);
    uint64_t t;
    long long ticks;
    read_committed(dir, &t, &ticks);
    /* Everything published was committed; Memory and time were committed together. */
    assert_true((long long)t >= last_seen);
    assert_int_equal(ticks, (long long)t);
    last_seen = (long long)t;
  }
  remove_dir(dir);
}

static void test_e2e_server_refuses_damaged_data_dir(void **state) {
  (void)state;
  char *dir = make_dir();
  char path[1200];
  snprintf(path, sizeof path, "%s/data.mdb", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (int i = 0; i < 20000; i++) fputc(i * 7 & 0xff, f);
  fclose(f);
  server s;
  assert_int_not_equal(start_server(&s, dir, NULL), 0);
  drain(&s);
  assert_non_null(strstr(s.log, "data directory"));
  if (s.pid > 0) kill_server(&s, SIGKILL);
  remove_dir(dir);
}

static void test_e2e_server_bad_flags_exit_2(void **state) {
  (void)state;
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' --tick-ms banana >/dev/null 2>&1", bin);
  int st = system(cmd);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 2);
  snprintf(cmd, sizeof cmd, "'%s' --help | grep -q -- --tick-ms", bin);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const char *b = getenv("ISOWORLD_BIN_DIR");
  snprintf(bin, sizeof bin, "%s/isoworld", b ? b : "./bin");
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_e2e_server_ticks_and_answers),
      cmocka_unit_test(test_e2e_server_kill9_loses_nothing_committed),
      cmocka_unit_test(test_e2e_server_refuses_damaged_data_dir),
      cmocka_unit_test(test_e2e_server_bad_flags_exit_2),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
