/*
 * lib_crypto.c — the example library: a custom sandbox library written with nothing but
 * the public API of sandbox.h, as any embedder would write one. JavaScript
 * (sandbox/js/crypto.js, embedded) wraps three host functions:
 *   sha256(data)       sync: returns the hex digest at once;
 *   sha256Async(data)  async and deferred: the digest is computed on a host thread and
 *                      the promise settles at the vm's next drain (how a host function
 *                      that waits for I/O would work);
 *   randomBytes(n)     sync: n bytes from libsodium's CSPRNG, n <= 65536.
 * Every argument is checked: it comes from untrusted code.
 */
#include "sandbox_crypto.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

extern const char sbx__js_crypto[];

#define MAX_RANDOM 65536

/* data as bytes: a string (UTF-8) or bytes; false for anything else. */
static bool data_arg(const sbx_value *args, size_t n, const unsigned char **p, size_t *len) {
  if (n < 1) return false;
  if (args[0].type == SBX_VAL_STRING) {
    *p = (const unsigned char *)args[0].u.string;
    *len = args[0].len;
    return true;
  }
  if (args[0].type == SBX_VAL_BYTES) {
    *p = args[0].u.bytes;
    *len = args[0].len;
    return true;
  }
  return false;
}

static void hex_digest(const unsigned char *p, size_t len, char out[2 * crypto_hash_sha256_BYTES + 1]) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, p, len);
  sodium_bin2hex(out, 2 * crypto_hash_sha256_BYTES + 1, h, sizeof h);
}

static void fn_sha256(sbx_call *c, const sbx_value *args, size_t n) {
  const unsigned char *p;
  size_t len;
  if (!data_arg(args, n, &p, &len)) {
    sbx_call_throw(c, "crypto.sha256 expects a string or bytes");
    return;
  }
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  hex_digest(p, len, hex);
  sbx_call_return_string(c, hex, strlen(hex));
}

typedef struct job {
  sbx_async *done;
  unsigned char *data;
  size_t len;
} job;

static void *hash_thread(void *arg) {
  job *j = arg;
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  hex_digest(j->data, j->len, hex);
  sbx_value v = sbx_string(hex);
  sbx_async_resolve(j->done, &v); /* from this thread: the vm settles it at its next drain */
  free(j->data);
  free(j);
  return NULL;
}

static void fn_sha256_async(sbx_call *c, const sbx_value *args, size_t n) {
  const unsigned char *p;
  size_t len;
  if (!data_arg(args, n, &p, &len)) {
    sbx_call_throw(c, "crypto.sha256Async expects a string or bytes");
    return;
  }
  job *j = calloc(1, sizeof *j);
  if (j) j->data = malloc(len ? len : 1);
  if (!j || !j->data) {
    if (j) free(j);
    sbx_call_throw(c, "out of memory");
    return;
  }
  memcpy(j->data, p, len); /* args are only valid during this call */
  j->len = len;
  j->done = sbx_call_defer(c);
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (!j->done || pthread_create(&t, &at, hash_thread, j) != 0) {
    if (j->done)
      sbx_async_reject(j->done, "could not start a hashing thread");
    else
      sbx_call_throw(c, "out of memory");
    free(j->data);
    free(j);
  }
  pthread_attr_destroy(&at);
}

static void fn_random_bytes(sbx_call *c, const sbx_value *args, size_t n) {
  double want = n >= 1 ? sbx_value_number(&args[0]) : -1;
  if (!(want >= 0 && want <= MAX_RANDOM) || want != (double)(size_t)want) {
    sbx_call_throw(c, "crypto.randomBytes expects an integer from 0 to %d", MAX_RANDOM);
    return;
  }
  unsigned char buf[MAX_RANDOM];
  randombytes_buf(buf, (size_t)want);
  sbx_value v = sbx_bytes(buf, (size_t)want);
  sbx_call_return(c, &v);
}

static const sbx_host_fn_def crypto_fns[] = {
    {"sha256", fn_sha256, 0, NULL},
    {"sha256Async", fn_sha256_async, SBX_FN_ASYNC, NULL},
    {"randomBytes", fn_random_bytes, 0, NULL},
};

static void crypto_free(sbx_library *lib) {
  free(lib);
}

int sbx_crypto_library_new(sbx_library **out) {
  *out = NULL;
  if (sodium_init() < 0) return SBX_ENGINE;
  sbx_library *lib = calloc(1, sizeof *lib);
  if (!lib) return SBX_NOMEM;
  lib->name = "crypto";
  lib->js = sbx__js_crypto;
  lib->fns = crypto_fns;
  lib->n_fns = sizeof crypto_fns / sizeof crypto_fns[0];
  lib->free = crypto_free;
  *out = lib;
  return SBX_OK;
}
