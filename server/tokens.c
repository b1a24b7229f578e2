/*
 * tokens.c — bearer tokens and password hashes (libsodium).
 *
 * Why session tokens are signed rather than stored: PROTOCOL.md rotates the token on
 * every authenticated response. A stored token would make every GET a database write —
 * on LMDB's single writer, which is the tick thread. An HMAC over (user, expiry, nonce)
 * with a server key (random, kept in LMDB, made at the first start) is checked with no
 * I/O, and the user record is still read on every request, so a banned or deleted user
 * is refused even while their token has not expired.
 *
 * Why long tokens are stored hashed: they do not expire by themselves, so they must be
 * revocable; a copy of the database then still does not hold usable tokens.
 *
 * Passwords: argon2id via crypto_pwhash_str with libsodium's interactive limits. Its
 * string carries its own salt and parameters, so they can be raised later.
 */
#include "players.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

#define SESSION_VERSION 1
#define LONG_VERSION 2
#define SESSION_BYTES 41 /* version, uid, expiry, nonce (8), mac (16) */
#define SESSION_SIGNED 25
#define LONG_BYTES 33 /* version, uid, 24 random bytes */

static void be64_put(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

static uint64_t be64_get(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

int64_t srv_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void session_mac(const unsigned char *key, const unsigned char *msg, unsigned char mac[16]) {
  unsigned char full[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, SRV_TOKEN_KEY_BYTES);
  crypto_auth_hmacsha256_update(&st, msg, SESSION_SIGNED);
  crypto_auth_hmacsha256_final(&st, full);
  memcpy(mac, full, 16);
  sodium_memzero(full, sizeof full);
}

static int encode(const unsigned char *bin, size_t n, char out[SRV_TOKEN_MAX]) {
  if (sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) > SRV_TOKEN_MAX) return -1;
  sodium_bin2base64(out, SRV_TOKEN_MAX, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return 0;
}

int srv_token_mint(const unsigned char key[SRV_TOKEN_KEY_BYTES], uint64_t uid, int64_t expires_ms,
                   char out[SRV_TOKEN_MAX]) {
  if (!key || !out || uid == 0) return -1;
  unsigned char b[SESSION_BYTES];
  b[0] = SESSION_VERSION;
  be64_put(b + 1, uid);
  be64_put(b + 9, (uint64_t)expires_ms);
  randombytes_buf(b + 17, 8);
  session_mac(key, b, b + SESSION_SIGNED);
  return encode(b, sizeof b, out);
}

int srv_token_long_new(uint64_t uid, char out[SRV_TOKEN_MAX], unsigned char hash[SRV_TOKEN_HASH_BYTES]) {
  if (!out || !hash || uid == 0) return -1;
  unsigned char b[LONG_BYTES];
  b[0] = LONG_VERSION;
  be64_put(b + 1, uid);
  randombytes_buf(b + 9, LONG_BYTES - 9);
  crypto_hash_sha256(hash, b, sizeof b);
  int rc = encode(b, sizeof b, out);
  sodium_memzero(b, sizeof b);
  return rc;
}

srv_token_kind srv_token_check(const unsigned char key[SRV_TOKEN_KEY_BYTES], const char *token, int64_t now_ms,
                               uint64_t *uid, int64_t *expires_ms, unsigned char hash[SRV_TOKEN_HASH_BYTES]) {
  unsigned char b[SESSION_BYTES + 8];
  size_t n = 0;
  if (!key || !token) return SRV_TOKEN_BAD;
  size_t tl = strlen(token);
  if (tl == 0 || tl >= SRV_TOKEN_MAX) return SRV_TOKEN_BAD;
  if (sodium_base642bin(b, sizeof b, token, tl, NULL, &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
    return SRV_TOKEN_BAD;
  if (n == SESSION_BYTES && b[0] == SESSION_VERSION) {
    unsigned char mac[16];
    session_mac(key, b, mac);
    if (sodium_memcmp(mac, b + SESSION_SIGNED, 16) != 0) return SRV_TOKEN_BAD;
    uint64_t id = be64_get(b + 1);
    int64_t exp = (int64_t)be64_get(b + 9);
    if (id == 0) return SRV_TOKEN_BAD;
    if (uid) *uid = id;
    if (expires_ms) *expires_ms = exp;
    return now_ms < exp ? SRV_TOKEN_SESSION : SRV_TOKEN_EXPIRED;
  }
  if (n == LONG_BYTES && b[0] == LONG_VERSION) {
    uint64_t id = be64_get(b + 1);
    if (id == 0) return SRV_TOKEN_BAD;
    if (uid) *uid = id;
    if (expires_ms) *expires_ms = 0;
    if (hash) crypto_hash_sha256(hash, b, LONG_BYTES);
    sodium_memzero(b, sizeof b);
    return SRV_TOKEN_LONG;
  }
  return SRV_TOKEN_BAD;
}

int srv_password_hash(const char *password, char out[128]) {
  if (!password) return -1;
  return crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                           crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
             ? 0
             : -1;
}

bool srv_password_verify(const char *hash, const char *password) {
  if (!hash || !*hash || !password) return false;
  return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}
