/*
 * http.c — the smallest HTTP/1.1 client that talks to isoworld's admin API.
 *
 * One request per connection (Connection: close), plain http:// only (the admin API is
 * meant for loopback; put TLS in front of it if it must travel), a deadline for the whole
 * exchange, bodies by Content-Length, chunked, or until the server closes. Anything that
 * prevents a complete answer is a transport failure (the CLI's exit code 3); any answer,
 * whatever its status, is the server's.
 */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
  return -1;
}

int http_parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap) {
  if (strncmp(url, "http://", 7) != 0) return -1;
  const char *h = url + 7, *end;
  if (*h == '[') {
    end = strchr(h, ']');
    if (!end || (size_t)(end - h - 1) >= hcap) return -1;
    memcpy(host, h + 1, (size_t)(end - h - 1));
    host[end - h - 1] = '\0';
    end++;
  } else {
    end = h + strcspn(h, ":/");
    if (end == h || (size_t)(end - h) >= hcap) return -1;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
  }
  if (*end == ':') {
    const char *p = end + 1;
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n >= pcap || (p[n] && p[n] != '/')) return -1;
    memcpy(port, p, n);
    port[n] = '\0';
  } else if (*end == '\0' || *end == '/') {
    snprintf(port, pcap, "80");
  } else {
    return -1;
  }
  return 0;
}

static int wait_fd(int fd, short ev, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, ev, 0};
    int r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
    if (r < 0 && errno == EINTR) return -1; /* let the caller see a signal (Ctrl-C) */
    if (r != 0) return r;
  }
}

static int connect_to(const char *host, const char *port, int64_t deadline, char *err, size_t cap) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int g = getaddrinfo(host, port, &hints, &res);
  if (g != 0) return fail(err, cap, "cannot resolve %s: %s", host, gai_strerror(g));
  int fd = -1, last = 0;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last = errno;
      continue;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = errno;
        close(fd);
        fd = -1;
        continue;
      }
      int r = wait_fd(fd, POLLOUT, deadline);
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (r <= 0) {
        last = r == 0 ? ETIMEDOUT : EINTR;
        close(fd);
        fd = -1;
        continue;
      }
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
        last = soerr ? soerr : errno;
        close(fd);
        fd = -1;
      }
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return fail(err, cap, "cannot connect to %s:%s: %s", host, port, strerror(last ? last : ECONNREFUSED));
  return fd;
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    if (wait_fd(fd, POLLOUT, deadline) <= 0) return -1;
  }
  return 0;
}

/* Decodes a chunked body in place; returns its length, or -1 if incomplete/malformed. */
static long dechunk(char *b, size_t n) {
  size_t in = 0, out = 0;
  for (;;) {
    char *nl = memchr(b + in, '\n', n - in);
    if (!nl) return -1;
    char *end;
    unsigned long sz = strtoul(b + in, &end, 16);
    if (end == b + in) return -1;
    in = (size_t)(nl - b) + 1;
    if (sz == 0) return (long)out;
    if (sz > n - in) return -1;
    memmove(b + out, b + in, sz);
    out += sz;
    in += sz;
    if (in < n && b[in] == '\r') in++;
    if (in < n && b[in] == '\n') in++;
  }
}

int http_request(const char *url, const char *method, const char *path, const char *const *headers, const char *body,
                 int timeout_ms, http_resp *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  char host[256], port[16];
  if (http_parse_url(url, host, sizeof host, port, sizeof port) != 0)
    return fail(err, errcap, "bad URL '%s': expected http://HOST:PORT", url);
  int64_t deadline = now_ms() + timeout_ms;
  int fd = connect_to(host, port, deadline, err, errcap);
  if (fd < 0) return -1;
  size_t blen = body ? strlen(body) : 0;
  size_t cap = 1024 + strlen(path) + blen;
  for (size_t i = 0; headers && headers[i]; i++) cap += strlen(headers[i]) + 2;
  char *req = malloc(cap);
  if (!req) {
    close(fd);
    return fail(err, errcap, "out of memory");
  }
  bool v6 = strchr(host, ':') != NULL;
  int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nConnection: close\r\nAccept: application/json\r\n",
                   method, path, v6 ? "[" : "", host, v6 ? "]" : "", port);
  for (size_t i = 0; headers && headers[i]; i++) n += snprintf(req + n, cap - (size_t)n, "%s\r\n", headers[i]);
  if (body) n += snprintf(req + n, cap - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
  n += snprintf(req + n, cap - (size_t)n, "\r\n");
  int rc = send_all(fd, req, (size_t)n, deadline);
  if (rc == 0 && blen) rc = send_all(fd, body, blen, deadline);
  free(req);
  if (rc != 0) {
    close(fd);
    return fail(err, errcap, "cannot send the request to %s:%s: %s", host, port, strerror(errno ? errno : EPIPE));
  }
  size_t len = 0, bcap = 16384;
  char *buf = malloc(bcap + 1);
  long hdr_end = -1, want = -1;
  bool chunked = false;
  while (buf) {
    if (hdr_end >= 0 && want >= 0 && len >= (size_t)hdr_end + (size_t)want) break;
    if (hdr_end >= 0 && chunked) {
      buf[len] = '\0';
      if (strstr(buf + hdr_end, "\n0\r\n\r\n") || strstr(buf + hdr_end, "\n0\n\n") ||
          (len - (size_t)hdr_end >= 5 && !strncmp(buf + hdr_end, "0\r\n\r\n", 5)))
        break;
    }
    if (len == bcap) {
      if (bcap > (256u << 20)) break;
      char *nb = realloc(buf, bcap * 2 + 1);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      bcap *= 2;
    }
    ssize_t r = recv(fd, buf + len, bcap - len, 0);
    if (r > 0) {
      len += (size_t)r;
      if (hdr_end < 0) {
        buf[len] = '\0';
        char *e = strstr(buf, "\r\n\r\n");
        if (e) {
          hdr_end = (long)(e - buf) + 4;
          *e = '\0';
          const char *cl = strcasestr(buf, "\r\ncontent-length:");
          if (cl) want = strtol(cl + 17, NULL, 10);
          const char *te = strcasestr(buf, "\r\ntransfer-encoding:");
          if (te && strcasestr(te, "chunked")) chunked = true, want = -1;
          *e = '\r';
        }
      }
      continue;
    }
    if (r == 0) break;
    if (errno == EINTR) {
      free(buf);
      close(fd);
      return fail(err, errcap, "interrupted");
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) break;
    int w = wait_fd(fd, POLLIN, deadline);
    if (w <= 0) {
      free(buf);
      close(fd);
      return fail(err, errcap, w == 0 ? "no answer from %s:%s within %d s" : "interrupted", host, port,
                  timeout_ms / 1000);
    }
  }
  close(fd);
  if (!buf) return fail(err, errcap, "out of memory");
  buf[len] = '\0';
  if (hdr_end < 0 || strncmp(buf, "HTTP/1.", 7) != 0) {
    free(buf);
    return fail(err, errcap, "%s:%s did not answer in HTTP (is it isoworld's admin port?)", host, port);
  }
  out->status = atoi(buf + 9);
  size_t blen2 = len - (size_t)hdr_end;
  if (want >= 0 && blen2 > (size_t)want) blen2 = (size_t)want;
  memmove(buf, buf + hdr_end, blen2);
  buf[blen2] = '\0';
  if (chunked) {
    long d = dechunk(buf, blen2);
    if (d < 0) {
      free(buf);
      return fail(err, errcap, "the answer from %s:%s was cut off", host, port);
    }
    blen2 = (size_t)d;
    buf[blen2] = '\0';
  } else if (want >= 0 && blen2 < (size_t)want) {
    free(buf);
    return fail(err, errcap, "the answer from %s:%s was cut off", host, port);
  }
  out->body = buf;
  out->len = blen2;
  return 0;
}

void http_resp_release(http_resp *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}
