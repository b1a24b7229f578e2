/*
 * players.h — the rules of player accounts, code, Memory and tokens, as pure functions.
 *
 * Everything here is testable without a running server: no thread, no LMDB, no V8, no
 * HTTP. The HTTP handlers (api_*.c) and the tick thread call these to decide what is
 * allowed and to transform values; tests/test_players.c checks them one by one.
 *
 * The limits are the ones players know from Screeps (PROTOCOL.md); lengths called
 * "characters" are JavaScript string lengths (UTF-16 code units), as Screeps measures them.
 */
#ifndef ISOWORLD_PLAYERS_H
#define ISOWORLD_PLAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* ------------------------------------------------------------------ limits */

#define SRV_BRANCHES_MAX 30                /* branches per player */
#define SRV_BRANCH_NAME_MAX 30             /* characters */
#define SRV_CODE_MAX (5 * 1024 * 1024)     /* JSON of the modules of one upload, bytes */
#define SRV_MEMORY_MAX (2 * 1024 * 1024)   /* Memory string, characters */
#define SRV_MEMORY_VALUE_MAX (1024 * 1024) /* one POST /api/user/memory value, characters */
#define SRV_SEGMENT_IDS 100                /* segment ids 0..99 */
#define SRV_SEGMENT_MAX (100 * 1024)       /* one segment, characters */
#define SRV_CONSOLE_EXPR_MAX 1024          /* one console expression, characters */
#define SRV_CONSOLE_QUEUE_MAX 100          /* expressions waiting for one player */
#define SRV_USERNAME_MIN 3
#define SRV_USERNAME_MAX 30
#define SRV_PASSWORD_MIN 8
#define SRV_PASSWORD_MAX 256

/* User record flags (store_user.flags). */
#define SRV_USER_BANNED 0x1u /* refused at sign-in and on every request; never runs */

/* ------------------------------------------------------------------ names */

/* Length of UTF-8 text `s` (len bytes) as a JavaScript string (UTF-16 code units). */
size_t srv_utf16_length(const char *s, size_t len);

/* Module names are stored with '.', '/' and '\\' escaped as $DOT$, $SLASH$ and
 * $BACKSLASH$ (the Screeps database form). escape: 0, or -1 when the name is empty,
 * holds a NUL or a control character, already contains one of the escape sequences
 * (it could not come back unchanged), or does not fit out[cap]. unescape: 0, or -1 when
 * it does not fit. */
int srv_module_escape(const char *name, char *out, size_t cap);
int srv_module_unescape(const char *stored, char *out, size_t cap);

/* A branch name: 1..30 characters and at most 63 bytes of UTF-8, no control character,
 * not starting with '$' (that selects a branch by flag: $activeWorld, $activeSim). */
bool srv_branch_name_is_valid(const char *name);
/* A username: 3..30 of [A-Za-z0-9_-]. */
bool srv_username_is_valid(const char *name);
/* An email: one '@' with text on both sides and a dot after it, no spaces, < 128 bytes. */
bool srv_email_is_valid(const char *email);

/* ------------------------------------------------------------------ Memory */

/* Parses Memory text as Screeps would (JSON.parse): numbers too big for an integer are
 * read as doubles. NULL if the text is not JSON. Empty text is {}. */
json_t *srv_memory_parse(const char *text, size_t len);

/* Serialises a Memory value compactly (a new malloc'd string, *len its length; NULL on
 * out of memory). */
char *srv_memory_dump(const json_t *v, size_t *len);

typedef enum {
  SRV_PATH_FOUND = 0,     /* *out is the value (borrowed from root) */
  SRV_PATH_UNDEFINED = 1, /* the path leads to nothing */
  SRV_PATH_INCORRECT = 2, /* the path goes through undefined/null (Screeps throws) */
} srv_path_result;

/* Follows a dot path ("a.b.0") from root like `Memory.a.b[0]` in JavaScript: object
 * keys, array indexes and `length`, string `length` and indexes (a string result is
 * returned as a new reference in *owned, which the caller decrefs). "" or NULL: root. */
srv_path_result srv_memory_path_get(json_t *root, const char *path, json_t **out, json_t **owned);

/* Sets (value non-NULL; the reference is stolen) or deletes (value NULL) the value at a
 * dot path. Missing objects on the way are created (Screeps would throw there); going
 * through a non-object fails. Path "" or NULL replaces the whole root: *root becomes the
 * value if it is an object, {} otherwise (Screeps: clear Memory, then copy the value's
 * own keys). Returns 0, or -1 with a message in err. */
int srv_memory_path_set(json_t **root, const char *path, json_t *value, char *err, size_t errcap);

/* "gz:" + base64 of the gzip (RFC 1952) of data: the form of GET /api/user/memory.
 * malloc'd; NULL on out of memory. */
char *srv_gz_base64(const void *data, size_t len);

/* ------------------------------------------------------------------ tokens */

/* Two kinds of bearer token, both URL-safe base64 without padding:
 *   session  minted on sign-in and on every authenticated response; self-contained and
 *            authenticated: version 1 | user id | expiry (ms) | 8 random bytes | the
 *            first 16 bytes of HMAC-SHA-256 with the server's key. Verifying needs no
 *            database read, so rotating one on every response costs no write. Valid
 *            until its own expiry; all die together when the server key is replaced.
 *   long     for tools (uploaders, CI): version 2 | user id | 24 random bytes. Only a
 *            SHA-256 of it is stored (tokens database), where it can be revoked. */
#define SRV_TOKEN_KEY_BYTES 32
#define SRV_TOKEN_MAX 64 /* buffer size for any token, NUL included */
#define SRV_TOKEN_HASH_BYTES 32

typedef enum {
  SRV_TOKEN_SESSION = 0, /* valid session token: *uid, *expires_ms set */
  SRV_TOKEN_LONG = 1,    /* well-formed long token: *uid and hash set; look it up */
  SRV_TOKEN_EXPIRED = 2, /* authentic session token past its expiry */
  SRV_TOKEN_BAD = 3,     /* anything else */
} srv_token_kind;

/* Mints a session token for uid expiring at expires_ms. 0, or -1 (bad arguments). */
int srv_token_mint(const unsigned char key[SRV_TOKEN_KEY_BYTES], uint64_t uid, int64_t expires_ms,
                   char out[SRV_TOKEN_MAX]);
/* Makes a new long token for uid and its hash. 0 or -1. */
int srv_token_long_new(uint64_t uid, char out[SRV_TOKEN_MAX], unsigned char hash[SRV_TOKEN_HASH_BYTES]);
/* Classifies and checks a token. For SRV_TOKEN_LONG, `hash` (may be NULL) receives the
 * hash to look up. */
srv_token_kind srv_token_check(const unsigned char key[SRV_TOKEN_KEY_BYTES], const char *token, int64_t now_ms,
                               uint64_t *uid, int64_t *expires_ms, unsigned char hash[SRV_TOKEN_HASH_BYTES]);

/* Password hashing with argon2id (libsodium's crypto_pwhash_str, interactive limits:
 * tens of milliseconds and 64 MiB — never call these on the loop thread). hash: 0, or -1
 * (out of memory). verify: true when the password matches a stored hash. */
int srv_password_hash(const char *password, char out[128]);
bool srv_password_verify(const char *hash, const char *password);

/* Unix time in milliseconds. */
int64_t srv_now_ms(void);

#endif
