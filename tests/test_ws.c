/*
 * test_ws.c — unit tests of web's websocket protocol (web/ws.c) over real sockets.
 *
 * Each test gets a fresh fixture: a libuv loop in its own thread, a web on an ephemeral
 * port of 127.0.0.1 with a fake backend (token "good-<n>" is user n and rotates to
 * "fresh-<n>"; user:<n>/... channels only for user n; "deny" for nobody), and a small
 * websocket client written here (masked frames, fragments, pings) on the test thread.
 * Publishing and statistics run on the loop thread through run_on_loop(), as web is
 * loop-thread only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zlib.h>

#include "web.h"

#define IO_MS 10000

/* ------------------------------------------------------------------------------------------ */
/* fixture                                                                                     */

typedef struct fixture fixture;
typedef void (*loop_fn)(fixture *f, void *arg);

struct fixture {
  uv_loop_t loop;
  uv_async_t call;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  loop_fn call_fn;
  void *call_arg;
  bool call_done, loop_returned;
  pthread_t thread;
  web *w;
  int port;
  /* backend observations (loop thread) */
  int opened, closed;
  char last_open[128], last_close[128];
};

static void on_call(uv_async_t *a) {
  fixture *f = a->data;
  pthread_mutex_lock(&f->mu);
  loop_fn fn = f->call_fn;
  void *arg = f->call_arg;
  pthread_mutex_unlock(&f->mu);
  if (!fn) return;
  fn(f, arg);
  pthread_mutex_lock(&f->mu);
  f->call_fn = NULL;
  f->call_done = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

static void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static void run_on_loop(fixture *f, loop_fn fn, void *arg) {
  struct timespec ts;
  int rc = 0;
  pthread_mutex_lock(&f->mu);
  f->call_fn = fn;
  f->call_arg = arg;
  f->call_done = false;
  pthread_mutex_unlock(&f->mu);
  assert_int_equal(uv_async_send(&f->call), 0);
  deadline_in(&ts, IO_MS);
  pthread_mutex_lock(&f->mu);
  while (!f->call_done && rc == 0) rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
  pthread_mutex_unlock(&f->mu);
  assert_true(f->call_done);
}

static void *loop_main(void *p) {
  fixture *f = p;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  pthread_mutex_lock(&f->mu);
  f->loop_returned = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

/* ---- fake backend ---- */

static int be_auth(void *ud, const char *token, uint64_t *user, char *fresh, size_t cap) {
  unsigned long long n;
  char tail;
  (void)ud;
  if (sscanf(token, "good-%llu%c", &n, &tail) != 1 || !n) return -1;
  *user = n;
  snprintf(fresh, cap, "fresh-%llu", n);
  return 0;
}

static bool be_may(void *ud, uint64_t user, const char *channel) {
  unsigned long long n;
  (void)ud;
  if (!strcmp(channel, "deny")) return false;
  if (sscanf(channel, "user:%llu/", &n) == 1) return user && n == user;
  return true;
}

static void be_subscribed(void *ud, web_ws *c, uint64_t user, const char *channel) {
  (void)ud;
  (void)user;
  if (!strcmp(channel, "hello")) web_ws_send(c, "[\"hello\",\"first\"]", 17);
}

static void be_open(void *ud, const char *channel) {
  fixture *f = ud;
  f->opened++;
  snprintf(f->last_open, sizeof f->last_open, "%s", channel);
}

static void be_close(void *ud, const char *channel) {
  fixture *f = ud;
  f->closed++;
  snprintf(f->last_close, sizeof f->last_close, "%s", channel);
}

static fixture *fixture_new(const web_ws_options *opt) {
  fixture *f = calloc(1, sizeof *f);
  web_options wo;
  web_ws_backend be = {be_auth, be_may, be_subscribed, be_open, be_close};
  assert_non_null(f);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(uv_async_init(&f->loop, &f->call, on_call), 0);
  f->call.data = f;
  memset(&wo, 0, sizeof wo);
  wo.bind_addr = "127.0.0.1";
  assert_int_equal(web_new(&f->loop, &wo, &f->w), 0);
  f->port = web_port(f->w);
  assert_int_equal(web_ws_setup(f->w, &be, f, opt), 0);
  assert_int_equal(pthread_create(&f->thread, NULL, loop_main, f), 0);
  return f;
}

static int setup(void **state) {
  *state = fixture_new(NULL);
  return 0;
}

static void shutdown_on_loop(fixture *f, void *arg) {
  (void)arg;
  web_free(f->w);
  f->w = NULL;
  uv_close((uv_handle_t *)&f->call, NULL);
}

static int teardown(void **state) {
  fixture *f = *state;
  struct timespec ts;
  int rc = 0;
  run_on_loop(f, shutdown_on_loop, NULL);
  deadline_in(&ts, IO_MS);
  pthread_mutex_lock(&f->mu);
  while (!f->loop_returned && rc == 0) rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
  pthread_mutex_unlock(&f->mu);
  assert_true(f->loop_returned);
  pthread_join(f->thread, NULL);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
  free(f);
  return 0;
}

/* ---- loop-thread helpers ---- */

typedef struct pub_arg {
  const char *channel; /* NULL: broadcast */
  const char *text;
  size_t len;
  int count; /* repeat */
  int result;
} pub_arg;

static void publish_on_loop(fixture *f, void *p) {
  pub_arg *a = p;
  for (int i = 0; i < (a->count ? a->count : 1); i++)
    a->result =
        a->channel ? web_ws_publish(f->w, a->channel, a->text, a->len) : web_ws_broadcast(f->w, a->text, a->len);
}

static int publish(fixture *f, const char *channel, const char *text) {
  pub_arg a = {channel, text, strlen(text), 1, 0};
  run_on_loop(f, publish_on_loop, &a);
  return a.result;
}

static void stats_on_loop(fixture *f, void *p) {
  web_ws_get_stats(f->w, p);
}

static web_ws_stats stats(fixture *f) {
  web_ws_stats st;
  run_on_loop(f, stats_on_loop, &st);
  return st;
}

typedef struct subs_arg {
  const char *channel;
  size_t n;
} subs_arg;

static void subs_on_loop(fixture *f, void *p) {
  subs_arg *a = p;
  a->n = web_ws_subscribers(f->w, a->channel);
}

static size_t subscribers(fixture *f, const char *channel) {
  subs_arg a = {channel, 0};
  run_on_loop(f, subs_on_loop, &a);
  return a.n;
}

/* Waits until `channel` has n subscribers (commands are asynchronous). */
static void wait_subscribers(fixture *f, const char *channel, size_t n) {
  for (int i = 0; i < IO_MS / 5; i++) {
    if (subscribers(f, channel) == n) return;
    usleep(5000);
  }
  fail_msg("channel %s never had %zu subscribers", channel, n);
}

/* ------------------------------------------------------------------------------------------ */
/* a websocket client                                                                          */

typedef struct client {
  int fd;
  unsigned char *buf;
  size_t len, cap;
  bool eof;
} client;

typedef struct frame {
  int opcode;
  bool fin;
  char *data; /* NUL-terminated */
  size_t len;
} frame;

static void client_sendall(client *c, const void *p, size_t n) {
  const char *s = p;
  while (n) {
    ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
    assert_true(w > 0);
    s += w;
    n -= (size_t)w;
  }
}

/* Reads more bytes (waiting up to ms). False on timeout; sets eof on a closed socket. */
static bool client_fill(client *c, int ms) {
  struct pollfd pfd = {c->fd, POLLIN, 0};
  ssize_t n;
  if (c->eof || poll(&pfd, 1, ms) <= 0) return false;
  if (c->cap - c->len < 65536) {
    c->cap = c->cap ? c->cap * 2 : 131072;
    c->buf = realloc(c->buf, c->cap);
    assert_non_null(c->buf);
  }
  n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
  if (n <= 0) {
    c->eof = true;
    return false;
  }
  c->len += (size_t)n;
  return true;
}

static void client_open_path(client *c, int port, const char *path, int rcvbuf) {
  struct sockaddr_in a = {0};
  char req[512];
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(c->fd >= 0);
  if (rcvbuf) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
  snprintf(req, sizeof req,
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
           path);
  client_sendall(c, req, strlen(req));
  for (;;) {
    unsigned char *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (end) {
      size_t hl = (size_t)(end - c->buf) + 4;
      assert_memory_equal(c->buf, "HTTP/1.1 101", 12);
      memmove(c->buf, c->buf + hl, c->len - hl);
      c->len -= hl;
      return;
    }
    assert_true(client_fill(c, IO_MS));
  }
}

static void client_open(client *c, int port) {
  client_open_path(c, port, "/socket/websocket", 0);
}

static void client_close(client *c) {
  close(c->fd);
  free(c->buf);
  memset(c, 0, sizeof *c);
}

/* Sends one frame (masked, as clients must). fin false: more fragments follow. */
static void client_send_frame(client *c, int opcode, bool fin, const char *data, size_t n) {
  unsigned char hdr[14], mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t hl = 2;
  char *masked = malloc(n + 1);
  assert_non_null(masked);
  hdr[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
  if (n < 126) {
    hdr[1] = (unsigned char)(0x80 | n);
  } else if (n < 65536) {
    hdr[1] = 0x80 | 126;
    hdr[2] = (unsigned char)(n >> 8);
    hdr[3] = (unsigned char)n;
    hl = 4;
  } else {
    hdr[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) hdr[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  memcpy(hdr + hl, mask, 4);
  hl += 4;
  for (size_t i = 0; i < n; i++) masked[i] = (char)(data[i] ^ mask[i & 3]);
  client_sendall(c, hdr, hl);
  client_sendall(c, masked, n);
  free(masked);
}

static void client_send(client *c, const char *text) {
  client_send_frame(c, 1, true, text, strlen(text));
}

/* The next frame, waiting up to ms. False on timeout or close. */
static bool client_read(client *c, frame *fr, int ms) {
  for (;;) {
    if (c->len >= 2) {
      size_t hl = 2, n = c->buf[1] & 0x7f;
      if (n == 126 && c->len >= 4) {
        n = ((size_t)c->buf[2] << 8) | c->buf[3];
        hl = 4;
      } else if (n == 127 && c->len >= 10) {
        n = 0;
        for (int i = 0; i < 8; i++) n = (n << 8) | c->buf[2 + i];
        hl = 10;
      } else if (n >= 126) {
        hl = 0;
      }
      if (hl && c->len >= hl + n) {
        assert_int_equal(c->buf[1] & 0x80, 0); /* server frames are not masked */
        fr->opcode = c->buf[0] & 0x0f;
        fr->fin = (c->buf[0] & 0x80) != 0;
        fr->len = n;
        fr->data = malloc(n + 1);
        assert_non_null(fr->data);
        memcpy(fr->data, c->buf + hl, n);
        fr->data[n] = '\0';
        memmove(c->buf, c->buf + hl + n, c->len - hl - n);
        c->len -= hl + n;
        return true;
      }
    }
    if (!client_fill(c, ms)) return false;
  }
}

/* The next text frame's text (malloc'd), failing the test if none comes. */
static char *expect_text(client *c) {
  frame fr;
  if (!client_read(c, &fr, IO_MS)) fail_msg("no frame arrived");
  assert_int_equal(fr.opcode, 1);
  assert_true(fr.fin);
  return fr.data;
}

static void expect_eq(client *c, const char *want) {
  char *got = expect_text(c);
  assert_string_equal(got, want);
  free(got);
}

/* Asserts that no frame arrives within ms. */
static void expect_nothing(client *c, int ms) {
  frame fr;
  if (client_read(c, &fr, ms)) fail_msg("unexpected frame: %.200s", fr.data);
}

static void skip_greeting(client *c) {
  char *t = expect_text(c);
  assert_int_equal(strncmp(t, "time ", 5), 0);
  free(t);
  expect_eq(c, "protocol 14");
}

/* ------------------------------------------------------------------------------------------ */
/* tests                                                                                       */

static void test_ws_greeting_and_auth(void **state) {
  fixture *f = *state;
  client c;
  client_open(&c, f->port);
  char *t = expect_text(&c);
  long long ms;
  assert_int_equal(sscanf(t, "time %lld", &ms), 1);
  assert_true(ms > 1600000000000ll);
  free(t);
  expect_eq(&c, "protocol 14");
  client_send(&c, "auth nonsense");
  expect_eq(&c, "auth failed");
  client_send(&c, "auth good-7");
  expect_eq(&c, "auth ok fresh-7");
  /* surrounding whitespace and a trailing newline are tolerated */
  client_send(&c, "  auth good-8\r\n");
  expect_eq(&c, "auth ok fresh-8");
  client_send(&c, "bogus command");
  client_send(&c, "auth");
  expect_eq(&c, "auth failed");
  client_close(&c);
}

static void test_ws_subscribe_and_publish(void **state) {
  fixture *f = *state;
  client c;
  client_open(&c, f->port);
  skip_greeting(&c);
  /* not authenticated: user channels are refused, public ones accepted */
  client_send(&c, "subscribe user:7/console");
  client_send(&c, "subscribe public");
  wait_subscribers(f, "public", 1);
  assert_int_equal(subscribers(f, "user:7/console"), 0);
  assert_int_equal(publish(f, "user:7/console", "[\"user:7/console\",1]"), 0);
  assert_int_equal(publish(f, "public", "[\"public\",1]"), 1);
  expect_eq(&c, "[\"public\",1]");
  assert_int_equal(f->opened, 1);
  assert_string_equal(f->last_open, "public");

  client_send(&c, "auth good-7");
  expect_eq(&c, "auth ok fresh-7");
  client_send(&c, "subscribe user:7/console");
  client_send(&c, "subscribe user:8/console"); /* another user's: refused */
  client_send(&c, "subscribe deny");
  client_send(&c, "subscribe bad\"name");
  client_send(&c, "subscribe user:7/console"); /* twice: one subscription */
  wait_subscribers(f, "user:7/console", 1);
  assert_int_equal(subscribers(f, "user:8/console"), 0);
  assert_int_equal(subscribers(f, "deny"), 0);
  assert_int_equal(publish(f, "user:7/console", "[\"user:7/console\",2]"), 1);
  expect_eq(&c, "[\"user:7/console\",2]");

  /* the subscribed callback may send a first frame */
  client_send(&c, "subscribe hello");
  expect_eq(&c, "[\"hello\",\"first\"]");

  client_send(&c, "unsubscribe public");
  wait_subscribers(f, "public", 0);
  assert_int_equal(f->closed, 1);
  assert_string_equal(f->last_close, "public");
  assert_int_equal(publish(f, "public", "[\"public\",3]"), 0);
  expect_nothing(&c, 200);
  /* broadcast reaches every connection */
  assert_int_equal(publish(f, NULL, "[\"server-message\",\"hi\"]"), 1);
  expect_eq(&c, "[\"server-message\",\"hi\"]");

  /* closing the connection closes its channels */
  client_close(&c);
  wait_subscribers(f, "user:7/console", 0);
  wait_subscribers(f, "hello", 0);
  assert_int_equal(f->closed, 3);
}

static void test_ws_reauth_as_other_user_drops_subscriptions(void **state) {
  fixture *f = *state;
  client c;
  client_open(&c, f->port);
  skip_greeting(&c);
  client_send(&c, "auth good-7");
  expect_eq(&c, "auth ok fresh-7");
  client_send(&c, "subscribe user:7/cpu");
  client_send(&c, "subscribe public");
  wait_subscribers(f, "user:7/cpu", 1);
  client_send(&c, "auth good-9");
  expect_eq(&c, "auth ok fresh-9");
  wait_subscribers(f, "user:7/cpu", 0);
  assert_int_equal(subscribers(f, "public"), 1);
  client_close(&c);
}

static void test_ws_many_subscribers_share_one_frame(void **state) {
  fixture *f = *state;
  enum { N = 300 };
  client *cs = calloc(N, sizeof *cs);
  assert_non_null(cs);
  for (int i = 0; i < N; i++) {
    client_open(&cs[i], f->port);
    skip_greeting(&cs[i]);
    client_send(&cs[i], "subscribe room:W1N1");
  }
  wait_subscribers(f, "room:W1N1", N);
  web_ws_stats before = stats(f);
  assert_int_equal(before.connections, N);
  assert_int_equal(publish(f, "room:W1N1", "[\"room:W1N1\",{\"gameTime\":5}]"), N);
  for (int i = 0; i < N; i++) expect_eq(&cs[i], "[\"room:W1N1\",{\"gameTime\":5}]");
  web_ws_stats after = stats(f);
  assert_int_equal(after.frames_sent - before.frames_sent, N);
  assert_int_equal(after.queued_bytes, 0);
  for (int i = 0; i < N; i++) client_close(&cs[i]);
  free(cs);
  wait_subscribers(f, "room:W1N1", 0);
}

/* Inflates "gz:<base64>" (zlib, RFC 1950) into a malloc'd string. */
static char *gunz(const char *gz) {
  size_t bl = strlen(gz + 3), zl = 0;
  unsigned char *z = malloc(bl);
  uLongf out_len = 1 << 20;
  char *out = malloc(out_len + 1);
  assert_non_null(z);
  assert_non_null(out);
  assert_int_equal(sodium_base642bin(z, bl, gz + 3, bl, NULL, &zl, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
  assert_int_equal(uncompress((Bytef *)out, &out_len, z, zl), Z_OK);
  out[out_len] = '\0';
  free(z);
  return out;
}

static void test_ws_gzip(void **state) {
  fixture *f = *state;
  client plain, gz;
  char big[4096];
  int n = snprintf(big, sizeof big, "[\"public\",\"");
  while (n < 3000) n += snprintf(big + n, sizeof big - (size_t)n, "the same words again and again ");
  snprintf(big + n, sizeof big - (size_t)n, "\"]");
  client_open(&plain, f->port);
  client_open(&gz, f->port);
  skip_greeting(&plain);
  skip_greeting(&gz);
  client_send(&gz, "gzip on");
  client_send(&gz, "subscribe public");
  client_send(&plain, "subscribe public");
  wait_subscribers(f, "public", 2);
  assert_int_equal(publish(f, "public", big), 2);
  expect_eq(&plain, big);
  char *t = expect_text(&gz);
  assert_int_equal(strncmp(t, "gz:", 3), 0);
  assert_true(strlen(t) < strlen(big));
  char *inflated = gunz(t);
  assert_string_equal(inflated, big);
  free(inflated);
  free(t);
  /* a short frame is not shorter compressed: sent as it is */
  assert_int_equal(publish(f, "public", "[\"public\",1]"), 2);
  expect_eq(&plain, "[\"public\",1]");
  expect_eq(&gz, "[\"public\",1]");
  client_send(&gz, "gzip off");
  client_send(&gz, "subscribe hello"); /* a marker: gzip off is processed by then */
  expect_eq(&gz, "[\"hello\",\"first\"]");
  assert_int_equal(publish(f, "public", big), 2);
  expect_eq(&gz, big);
  expect_eq(&plain, big);
  client_close(&plain);
  client_close(&gz);
}

static void test_ws_ping_is_answered(void **state) {
  fixture *f = *state;
  client c;
  frame fr;
  client_open(&c, f->port);
  skip_greeting(&c);
  client_send_frame(&c, 9, true, "are you there", 13);
  assert_true(client_read(&c, &fr, IO_MS));
  assert_int_equal(fr.opcode, 10); /* pong */
  assert_string_equal(fr.data, "are you there");
  free(fr.data);
  client_close(&c);
}

static void test_ws_fragmented_and_long_commands(void **state) {
  fixture *f = *state;
  client c;
  client_open(&c, f->port);
  skip_greeting(&c);
  /* one command in three fragments (text, continuation, final continuation) */
  client_send_frame(&c, 1, false, "subs", 4);
  client_send_frame(&c, 0, false, "cribe pub", 9);
  client_send_frame(&c, 0, true, "lic", 3);
  wait_subscribers(f, "public", 1);
  /* a message over the limit is ignored, and the connection goes on */
  static char huge[40001];
  memcpy(huge, "subscribe ", 10);
  memset(huge + 10, 'x', sizeof huge - 11);
  huge[sizeof huge - 1] = '\0';
  client_send(&c, huge);
  client_send(&c, "subscribe hello");
  expect_eq(&c, "[\"hello\",\"first\"]");
  web_ws_stats st = stats(f);
  assert_int_equal(st.subscriptions, 2);
  client_close(&c);
}

static void test_ws_sockjs(void **state) {
  fixture *f = *state;
  client c;
  /* the info request SockJS clients make first */
  {
    client h;
    struct sockaddr_in a = {0};
    const char *req = "GET /socket/info?t=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    memset(&h, 0, sizeof h);
    h.fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)f->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(h.fd, (struct sockaddr *)&a, sizeof a), 0);
    client_sendall(&h, req, strlen(req));
    while (client_fill(&h, IO_MS)) {
    }
    h.buf[h.len] = '\0';
    assert_non_null(strstr((char *)h.buf, "200"));
    assert_non_null(strstr((char *)h.buf, "\"websocket\":true"));
    client_close(&h);
  }
  client_open_path(&c, f->port, "/socket/123/abcdefgh/websocket", 0);
  expect_eq(&c, "o");
  char *t = expect_text(&c);
  assert_int_equal(strncmp(t, "a[\"time ", 8), 0);
  free(t);
  expect_eq(&c, "a[\"protocol 14\"]");
  client_send(&c, "[\"auth good-7\",\"subscribe user:7/console\"]");
  expect_eq(&c, "a[\"auth ok fresh-7\"]");
  wait_subscribers(f, "user:7/console", 1);
  assert_int_equal(publish(f, "user:7/console", "[\"user:7/console\",{\"a\":\"x\\\"y\"}]"), 1);
  expect_eq(&c, "a[\"[\\\"user:7/console\\\",{\\\"a\\\":\\\"x\\\\\\\"y\\\"}]\"]");
  /* a single JSON string works too */
  client_send(&c, "\"subscribe hello\"");
  expect_eq(&c, "a[\"[\\\"hello\\\",\\\"first\\\"]\"]");
  client_close(&c);
  /* other paths under /socket/ are not websocket endpoints */
  {
    client b;
    struct sockaddr_in a = {0};
    const char *req =
        "GET /socket/123/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    memset(&b, 0, sizeof b);
    b.fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)f->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(b.fd, (struct sockaddr *)&a, sizeof a), 0);
    client_sendall(&b, req, strlen(req));
    if (client_fill(&b, IO_MS)) assert_int_not_equal(memcmp(b.buf, "HTTP/1.1 101", 12), 0);
    client_close(&b);
  }
}

/*
 * A client that stops reading: its queue fills, the oldest frames go, and it is told how
 * many before the frames that were kept; while it stalls, the others get everything; after
 * stall_close_ms of no progress with frames being dropped, it is closed.
 */
static void test_ws_slow_client_drops_then_closes(void **state) {
  fixture *f = *state;
  client slow, fast;
  enum { FRAMES = 400, SIZE = 16 * 1024 };
  char *text = malloc(SIZE + 64);
  assert_non_null(text);
  (void)state;
  teardown(state);
  web_ws_options opt = {.queue_max_messages = 20, .queue_max_bytes = 1 << 20, .stall_close_ms = 1500};
  *state = f = fixture_new(&opt);

  client_open_path(&slow, f->port, "/socket/websocket", 4096);
  client_open(&fast, f->port);
  skip_greeting(&slow);
  skip_greeting(&fast);
  client_send(&slow, "subscribe public");
  client_send(&fast, "subscribe public");
  wait_subscribers(f, "public", 2);
  for (int i = 0; i < FRAMES; i++) {
    int n = snprintf(text, SIZE + 64, "[\"public\",%d,\"", i);
    memset(text + n, 'a' + i % 26, SIZE);
    snprintf(text + n + SIZE, 64, "\"]");
    assert_int_equal(publish(f, "public", text), 2);
    /* the fast client reads everything, in order */
    char *got = expect_text(&fast);
    int seq = -1;
    assert_int_equal(sscanf(got, "[\"public\",%d,", &seq), 1);
    assert_int_equal(seq, i);
    free(got);
  }
  web_ws_stats st = stats(f);
  assert_true(st.frames_dropped > 0);
  assert_int_equal(st.closed_slow, 0);
  /* the slow client now reads: some frames, then "dropped N", then the newest ones */
  int last = -1, received = 0;
  unsigned long long dropped = 0;
  for (;;) {
    frame fr;
    if (!client_read(&slow, &fr, 500)) break;
    int seq;
    if (sscanf(fr.data, "dropped %llu", &dropped) == 1) {
      free(fr.data);
      continue;
    }
    assert_int_equal(sscanf(fr.data, "[\"public\",%d,", &seq), 1);
    assert_true(seq > last);
    last = seq;
    received++;
    free(fr.data);
  }
  assert_true(dropped > 0);
  assert_int_equal(last, FRAMES - 1); /* the newest frame arrived */
  assert_true((unsigned long long)received + dropped <= FRAMES);

  /* now it stalls for good: frames keep coming, it is closed after stall_close_ms */
  uint64_t t0 = (uint64_t)time(NULL);
  for (int i = 0; stats(f).closed_slow == 0; i++) {
    int n = snprintf(text, SIZE + 64, "[\"public\",%d,\"", FRAMES + i);
    memset(text + n, 'z', SIZE);
    snprintf(text + n + SIZE, 64, "\"]");
    publish(f, "public", text);
    char *got = expect_text(&fast);
    free(got);
    usleep(20000);
    assert_true((uint64_t)time(NULL) - t0 < 20);
  }
  /* it is really gone: the server closes the socket */
  while (!slow.eof) {
    frame fr;
    if (client_read(&slow, &fr, IO_MS))
      free(fr.data);
    else
      assert_true(slow.eof);
  }
  wait_subscribers(f, "public", 1);
  client_close(&slow);
  client_close(&fast);
  free(text);
}

/* The unread frames of every connection together are bounded by total_max_bytes. */
static void test_ws_total_budget(void **state) {
  fixture *f = *state;
  enum { N = 8, SIZE = 64 * 1024 };
  client cs[N];
  char *text = malloc(SIZE + 64);
  assert_non_null(text);
  teardown(state);
  web_ws_options opt = {
      .queue_max_messages = 1000, .queue_max_bytes = 64 << 20, .total_max_bytes = 1 << 20, .stall_close_ms = 60000};
  *state = f = fixture_new(&opt);
  for (int i = 0; i < N; i++) {
    client_open_path(&cs[i], f->port, "/socket/websocket", 4096);
    skip_greeting(&cs[i]);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "subscribe own%d", i);
    client_send(&cs[i], cmd);
    snprintf(cmd, sizeof cmd, "own%d", i);
    wait_subscribers(f, cmd, 1);
  }
  size_t peak = 0;
  for (int k = 0; k < 100; k++) {
    for (int i = 0; i < N; i++) {
      char ch[16];
      snprintf(ch, sizeof ch, "own%d", i);
      int n = snprintf(text, SIZE + 64, "[\"%s\",\"", ch);
      memset(text + n, 'q', SIZE);
      snprintf(text + n + SIZE, 64, "\"]");
      publish(f, ch, text);
    }
    web_ws_stats st = stats(f);
    if (st.queued_bytes > peak) peak = st.queued_bytes;
  }
  /* at most one frame over the budget per connection */
  assert_true(peak <= (1 << 20) + (size_t)N * (SIZE + 64));
  assert_true(stats(f).frames_dropped > 0);
  for (int i = 0; i < N; i++) client_close(&cs[i]);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ws_greeting_and_auth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_subscribe_and_publish, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_reauth_as_other_user_drops_subscriptions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_many_subscribers_share_one_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_gzip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_ping_is_answered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_fragmented_and_long_commands, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_sockjs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_slow_client_drops_then_closes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ws_total_budget, setup, teardown),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
