/*
 * test_players.c — the player rules (names, tokens, Memory paths and limits) as pure
 * functions, then the op queue and the tick's handling of players (console commands,
 * Memory limit, empty bucket) on an in-process server without HTTP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "players.h"
#include "server.h"

/* ------------------------------------------------------------------ names */

static void test_players_module_name_escaping(void **state) {
  (void)state;
  char out[256], back[256];
  assert_int_equal(srv_module_escape("main", out, sizeof out), 0);
  assert_string_equal(out, "main");
  assert_int_equal(srv_module_escape("role.harvester", out, sizeof out), 0);
  assert_string_equal(out, "role$DOT$harvester");
  assert_int_equal(srv_module_escape("lib/util.js", out, sizeof out), 0);
  assert_string_equal(out, "lib$SLASH$util$DOT$js");
  assert_int_equal(srv_module_escape("a\\b", out, sizeof out), 0);
  assert_string_equal(out, "a$BACKSLASH$b");
  assert_int_equal(srv_module_unescape("lib$SLASH$util$DOT$js", back, sizeof back), 0);
  assert_string_equal(back, "lib/util.js");
  /* Round trip of every name that escapes. */
  const char *names[] = {"x", "a.b.c", "./rel", "deep/er/path.min.js", "blob.wasm", "$money", "uni.ć.ü", "a$b"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    assert_int_equal(srv_module_escape(names[i], out, sizeof out), 0);
    assert_null(strchr(out, '.'));
    assert_null(strchr(out, '/'));
    assert_int_equal(srv_module_unescape(out, back, sizeof back), 0);
    assert_string_equal(back, names[i]);
  }
  /* Names that could not come back unchanged, or are not names. */
  assert_int_equal(srv_module_escape("a$DOT$b", out, sizeof out), -1);
  assert_int_equal(srv_module_escape("x$SLASH$", out, sizeof out), -1);
  assert_int_equal(srv_module_escape("", out, sizeof out), -1);
  assert_int_equal(srv_module_escape("tab\there", out, sizeof out), -1);
  /* Capacity: the escaped form must fit with its NUL. */
  assert_int_equal(srv_module_escape("a.b", out, 8), 0); /* "a$DOT$b" is 7 */
  assert_int_equal(srv_module_escape("a.b", out, 7), -1);
  assert_int_equal(srv_module_unescape("a$DOT$b", back, 4), 0);
  assert_int_equal(srv_module_unescape("abcd", back, 4), -1);
}

static void test_players_branch_rules(void **state) {
  (void)state;
  assert_true(srv_branch_name_is_valid("default"));
  assert_true(srv_branch_name_is_valid("feature/x-1"));
  assert_true(srv_branch_name_is_valid("123456789012345678901234567890"));   /* 30 */
  assert_false(srv_branch_name_is_valid("1234567890123456789012345678901")); /* 31 */
  assert_false(srv_branch_name_is_valid(""));
  assert_false(srv_branch_name_is_valid(NULL));
  assert_false(srv_branch_name_is_valid("$activeWorld"));
  assert_false(srv_branch_name_is_valid("bad\nname"));
  /* 30 characters of two bytes each: 60 bytes, fine; 16 emoji are 32 characters. */
  char two[128] = "";
  for (int i = 0; i < 30; i++) strcat(two, "\xc3\xa9");
  assert_true(srv_branch_name_is_valid(two));
  char four[128] = "";
  for (int i = 0; i < 16; i++) strcat(four, "\xf0\x9f\x98\x80");
  assert_false(srv_branch_name_is_valid(four));
  assert_true(srv_username_is_valid("alice"));
  assert_true(srv_username_is_valid("Bob_the-2nd"));
  assert_false(srv_username_is_valid("al"));
  assert_false(srv_username_is_valid("has space"));
  assert_false(srv_username_is_valid("1234567890123456789012345678901"));
  assert_false(srv_username_is_valid("émile"));
  assert_true(srv_email_is_valid("a@b.co"));
  assert_false(srv_email_is_valid("a@b"));
  assert_false(srv_email_is_valid("@b.co"));
  assert_false(srv_email_is_valid("a b@c.de"));
  assert_false(srv_email_is_valid("a@@c.de"));
}

static void test_players_utf16_length(void **state) {
  (void)state;
  assert_int_equal(srv_utf16_length("abc", 3), 3);
  assert_int_equal(srv_utf16_length("\xc3\xa9", 2), 1);         /* é */
  assert_int_equal(srv_utf16_length("\xe2\x82\xac", 3), 1);     /* € */
  assert_int_equal(srv_utf16_length("\xf0\x9f\x98\x80", 4), 2); /* 😀 is a surrogate pair */
  assert_int_equal(srv_utf16_length("", 0), 0);
}

/* ------------------------------------------------------------------ tokens */

static void test_players_token_mint_and_verify(void **state) {
  (void)state;
  unsigned char key[SRV_TOKEN_KEY_BYTES], other[SRV_TOKEN_KEY_BYTES];
  randombytes_buf(key, sizeof key);
  randombytes_buf(other, sizeof other);
  char tok[SRV_TOKEN_MAX];
  int64_t now = 1700000000000;
  assert_int_equal(srv_token_mint(key, 42, now + 60000, tok), 0);
  /* URL- and header-safe: [A-Za-z0-9_-] only. */
  for (const char *p = tok; *p; p++)
    assert_true((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                *p == '_');
  uint64_t uid = 0;
  int64_t exp = 0;
  assert_int_equal(srv_token_check(key, tok, now, &uid, &exp, NULL), SRV_TOKEN_SESSION);
  assert_int_equal(uid, 42);
  assert_int_equal(exp, now + 60000);
  /* Another server's key, a changed character, garbage, a truncated token: refused. */
  assert_int_equal(srv_token_check(other, tok, now, &uid, NULL, NULL), SRV_TOKEN_BAD);
  for (size_t i = 0; i < strlen(tok); i++) {
    char bad[SRV_TOKEN_MAX];
    strcpy(bad, tok);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    assert_int_not_equal(srv_token_check(key, bad, now, &uid, NULL, NULL), SRV_TOKEN_SESSION);
  }
  char cut[SRV_TOKEN_MAX];
  snprintf(cut, sizeof cut, "%.*s", (int)strlen(tok) - 2, tok);
  assert_int_equal(srv_token_check(key, cut, now, &uid, NULL, NULL), SRV_TOKEN_BAD);
  assert_int_equal(srv_token_check(key, "not a token", now, &uid, NULL, NULL), SRV_TOKEN_BAD);
  assert_int_equal(srv_token_check(key, "", now, &uid, NULL, NULL), SRV_TOKEN_BAD);
  assert_int_equal(srv_token_mint(key, 0, now, tok), -1);
}

static void test_players_token_rotation_and_expiry(void **state) {
  (void)state;
  unsigned char key[SRV_TOKEN_KEY_BYTES];
  randombytes_buf(key, sizeof key);
  int64_t now = 1700000000000, ttl = 60000;
  char t1[SRV_TOKEN_MAX], t2[SRV_TOKEN_MAX];
  /* Each response gets a fresh token: two minted in the same millisecond differ. */
  assert_int_equal(srv_token_mint(key, 7, now + ttl, t1), 0);
  assert_int_equal(srv_token_mint(key, 7, now + ttl, t2), 0);
  assert_string_not_equal(t1, t2);
  /* A rotated-out token stays valid until its own expiry, then expires. */
  char t3[SRV_TOKEN_MAX];
  assert_int_equal(srv_token_mint(key, 7, now + 1000 + ttl, t3), 0);
  assert_int_equal(srv_token_check(key, t1, now + ttl - 1, NULL, NULL, NULL), SRV_TOKEN_SESSION);
  assert_int_equal(srv_token_check(key, t1, now + ttl, NULL, NULL, NULL), SRV_TOKEN_EXPIRED);
  assert_int_equal(srv_token_check(key, t3, now + ttl, NULL, NULL, NULL), SRV_TOKEN_SESSION);
  assert_int_equal(srv_token_check(key, t3, now + ttl + 1000, NULL, NULL, NULL), SRV_TOKEN_EXPIRED);
}

static void test_players_long_tokens(void **state) {
  (void)state;
  unsigned char key[SRV_TOKEN_KEY_BYTES];
  randombytes_buf(key, sizeof key);
  char tok[SRV_TOKEN_MAX], tok2[SRV_TOKEN_MAX];
  unsigned char h[SRV_TOKEN_HASH_BYTES], h2[SRV_TOKEN_HASH_BYTES], got[SRV_TOKEN_HASH_BYTES];
  assert_int_equal(srv_token_long_new(9, tok, h), 0);
  assert_int_equal(srv_token_long_new(9, tok2, h2), 0);
  assert_string_not_equal(tok, tok2);
  assert_memory_not_equal(h, h2, sizeof h);
  uint64_t uid = 0;
  /* Any key: long tokens are checked against the store, by hash. */
  assert_int_equal(srv_token_check(key, tok, 0, &uid, NULL, got), SRV_TOKEN_LONG);
  assert_int_equal(uid, 9);
  assert_memory_equal(got, h, sizeof h);
  /* The store keeps the hash: it does not verify as a token. */
  char hex[2 * SRV_TOKEN_HASH_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  assert_int_equal(srv_token_check(key, hex, 0, &uid, NULL, got), SRV_TOKEN_BAD);
}

static void test_players_password_hash(void **state) {
  (void)state;
  char hash[128];
  assert_int_equal(srv_password_hash("correct horse", hash), 0);
  assert_non_null(strstr(hash, "$argon2id$"));
  assert_null(strstr(hash, "correct horse"));
  assert_true(srv_password_verify(hash, "correct horse"));
  assert_false(srv_password_verify(hash, "correct horsf"));
  assert_false(srv_password_verify("", "x"));
  char hash2[128];
  assert_int_equal(srv_password_hash("correct horse", hash2), 0);
  assert_string_not_equal(hash, hash2); /* salted */
}

/* ------------------------------------------------------------------ Memory */

static char *dump(const json_t *v) {
  size_t n;
  return srv_memory_dump(v, &n);
}

static void test_players_memory_path_get(void **state) {
  (void)state;
  const char *text = "{\"a\":{\"b\":[10,{\"c\":\"x\"}],\"s\":\"h\\u00e9llo\",\"n\":5,\"z\":null}}";
  json_t *root = srv_memory_parse(text, strlen(text));
  assert_non_null(root);
  json_t *v, *owned;
  assert_int_equal(srv_memory_path_get(root, "a.b.0", &v, &owned), SRV_PATH_FOUND);
  assert_int_equal(json_integer_value(v), 10);
  assert_int_equal(srv_memory_path_get(root, "a.b.1.c", &v, &owned), SRV_PATH_FOUND);
  assert_string_equal(json_string_value(v), "x");
  assert_int_equal(srv_memory_path_get(root, "a.b.length", &v, &owned), SRV_PATH_FOUND);
  assert_int_equal(json_integer_value(v), 2);
  json_decref(owned);
  assert_int_equal(srv_memory_path_get(root, "a.s.length", &v, &owned), SRV_PATH_FOUND);
  assert_int_equal(json_integer_value(v), 5);
  json_decref(owned);
  assert_int_equal(srv_memory_path_get(root, "a.s.1", &v, &owned), SRV_PATH_FOUND);
  assert_string_equal(json_string_value(v), "\xc3\xa9");
  json_decref(owned);
  assert_int_equal(srv_memory_path_get(root, "", &v, &owned), SRV_PATH_FOUND);
  assert_ptr_equal(v, root);
  /* Missing at the end: undefined; through undefined or null: Screeps throws. */
  assert_int_equal(srv_memory_path_get(root, "a.nope", &v, &owned), SRV_PATH_UNDEFINED);
  assert_int_equal(srv_memory_path_get(root, "a.n.x", &v, &owned), SRV_PATH_UNDEFINED);
  assert_int_equal(srv_memory_path_get(root, "a.nope.x", &v, &owned), SRV_PATH_INCORRECT);
  assert_int_equal(srv_memory_path_get(root, "a.z.x", &v, &owned), SRV_PATH_INCORRECT);
  assert_int_equal(srv_memory_path_get(root, "a.b.01", &v, &owned), SRV_PATH_UNDEFINED);
  assert_null(owned);
  json_decref(root);
}

static void test_players_memory_path_set(void **state) {
  (void)state;
  char err[200];
  json_t *root = srv_memory_parse("{\"keep\":1,\"a\":{\"n\":5}}", 22);
  assert_non_null(root);
  assert_int_equal(srv_memory_path_set(&root, "a.b.c", json_integer(3), err, sizeof err), 0);
  assert_int_equal(srv_memory_path_set(&root, "list", json_pack("[i]", 1), err, sizeof err), 0);
  assert_int_equal(srv_memory_path_set(&root, "list.2", json_true(), err, sizeof err), 0);
  char *s = dump(root);
  assert_string_equal(s, "{\"keep\":1,\"a\":{\"n\":5,\"b\":{\"c\":3}},\"list\":[1,null,true]}");
  free(s);
  /* Through a number: refused, nothing changed. */
  assert_int_equal(srv_memory_path_set(&root, "a.n.x", json_integer(1), err, sizeof err), -1);
  assert_non_null(strstr(err, "a.n"));
  assert_int_equal(srv_memory_path_set(&root, "list.x", json_integer(1), err, sizeof err), -1);
  /* Delete, including what is not there. */
  assert_int_equal(srv_memory_path_set(&root, "a.b", NULL, err, sizeof err), 0);
  assert_int_equal(srv_memory_path_set(&root, "no.such.thing", NULL, err, sizeof err), 0);
  s = dump(root);
  assert_string_equal(s, "{\"keep\":1,\"a\":{\"n\":5},\"list\":[1,null,true]}");
  free(s);
  /* The whole Memory: an object replaces it, anything else clears it. */
  assert_int_equal(srv_memory_path_set(&root, "", json_pack("{s:i}", "x", 1), err, sizeof err), 0);
  s = dump(root);
  assert_string_equal(s, "{\"x\":1}");
  free(s);
  assert_int_equal(srv_memory_path_set(&root, NULL, json_integer(5), err, sizeof err), 0);
  s = dump(root);
  assert_string_equal(s, "{}");
  free(s);
  assert_int_equal(srv_memory_path_set(&root, NULL, json_pack("[s,s]", "a", "b"), err, sizeof err), 0);
  s = dump(root);
  assert_string_equal(s, "{\"0\":\"a\",\"1\":\"b\"}");
  free(s);
  json_decref(root);
}

static void test_players_memory_parse_like_javascript(void **state) {
  (void)state;
  /* JSON.stringify can write integers no int64 holds: they are read as doubles. */
  const char *big = "{\"id\":123456789012345678901234,\"f\":0.1,\"n\":-7}";
  json_t *v = srv_memory_parse(big, strlen(big));
  assert_non_null(v);
  assert_true(json_is_real(json_object_get(v, "id")));
  /* Doubles written back read as the same double. */
  char *s = dump(json_object_get(v, "f"));
  assert_true(strtod(s, NULL) == 0.1);
  free(s);
  json_decref(v);
  v = srv_memory_parse("  ", 2);
  assert_true(json_is_object(v) && json_object_size(v) == 0);
  json_decref(v);
  assert_null(srv_memory_parse("{nope", 5));
}

static void test_players_gz_base64(void **state) {
  (void)state;
  const char *text = "{\"hello\":\"world\",\"n\":[1,2,3]}";
  char *gz = srv_gz_base64(text, strlen(text));
  assert_non_null(gz);
  assert_memory_equal(gz, "gz:", 3);
  unsigned char bin[512];
  size_t bl;
  assert_int_equal(
      sodium_base642bin(bin, sizeof bin, gz + 3, strlen(gz + 3), NULL, &bl, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
  assert_int_equal(bin[0], 0x1f); /* gzip magic: RFC 1952, not a bare zlib stream */
  assert_int_equal(bin[1], 0x8b);
  z_stream zs = {0};
  assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
  char out[512];
  zs.next_in = bin;
  zs.avail_in = (uInt)bl;
  zs.next_out = (Bytef *)out;
  zs.avail_out = sizeof out;
  assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
  assert_int_equal(zs.total_out, strlen(text));
  assert_memory_equal(out, text, strlen(text));
  inflateEnd(&zs);
  free(gz);
}

/* ------------------------------------------------------------------ an in-process server */

typedef struct harness {
  srv s;
  uv_loop_t loop;
  char dir[256];
} harness;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static harness *h_open(bool tick) {
  harness *h = calloc(1, sizeof *h);
  snprintf(h->dir, sizeof h->dir, "/tmp/isoworld-test-players-XXXXXX");
  assert_non_null(mkdtemp(h->dir));
  char *argv[] = {"isoworld", "--data-dir",    h->dir, "--tick-ms", "5", "--no-demo",
                  "--quiet",  "--stats-every", "0",    "--workers", "1", NULL};
  assert_int_equal(srv_config_load(&h->s.cfg, 11, argv), 0);
  assert_int_equal(srv_open(&h->s), 0);
  assert_int_equal(uv_loop_init(&h->loop), 0);
  assert_int_equal(srv_ops_init(&h->s, &h->loop), 0);
  if (tick) assert_int_equal(srv_start_ticking(&h->s), 0);
  return h;
}

static void h_close(harness *h, bool ticking) {
  if (ticking) srv_stop_ticking(&h->s);
  srv_ops_close(&h->s);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&h->loop), 0);
  srv_close(&h->s);
  nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(h);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

typedef struct op_state {
  int status;
  bool done, applied, committed_at_done;
  const char *key;
  int refuse; /* prepare's answer after its write */
  store *db;
  /* player ops */
  const char *username, *code, *command;
  int64_t bucket;
  int cpu_limit;
  uint64_t uid, game_time_at_apply;
} op_state;

static bool key_committed(store *db, const char *key) {
  store_txn *t;
  assert_int_equal(store_read_begin(db, &t), STORE_OK);
  const void *d;
  size_t len;
  bool found = store_world_get(t, key, &d, &len) == STORE_OK;
  store_abort(t);
  return found;
}

static int world_prepare(srv *s, store_txn *txn, void *ud) {
  (void)s;
  op_state *o = ud;
  assert_int_equal(store_world_put(txn, o->key, "v", 1), STORE_OK);
  return o->refuse;
}
static void world_apply(srv *s, void *ud) {
  (void)s;
  op_state *o = ud;
  o->applied = true;
  /* apply runs after the commit */
  assert_true(key_committed(o->db, o->key));
}
static void op_done(srv *s, int status, void *ud) {
  (void)s;
  op_state *o = ud;
  o->status = status;
  o->done = true;
  if (o->key) o->committed_at_done = key_committed(o->db, o->key);
}

static void wait_done(harness *h, op_state *o) {
  for (int i = 0; i < 2000 && !o->done; i++) {
    uv_run(&h->loop, UV_RUN_NOWAIT);
    if (!o->done) sleep_ms(2);
  }
  assert_true(o->done);
}

static void test_players_op_queue(void **state) {
  (void)state;
  harness *h = h_open(true);
  op_state a = {.key = "op:a", .db = h->s.db}, b = {.key = "op:b", .refuse = 1, .db = h->s.db};
  assert_int_equal(srv_op_submit(&h->s, world_prepare, world_apply, op_done, &a), 0);
  assert_int_equal(srv_op_submit(&h->s, world_prepare, world_apply, op_done, &b), 0);
  wait_done(h, &a);
  wait_done(h, &b);
  /* Committed before done; a refused op wrote nothing and was not applied. */
  assert_int_equal(a.status, 0);
  assert_true(a.applied);
  assert_true(a.committed_at_done);
  assert_int_equal(b.status, 1);
  assert_false(b.applied);
  assert_false(b.committed_at_done);
  /* Once the tick thread is gone, submit refuses. */
  srv_stop_ticking(&h->s);
  op_state c = {.key = "op:c", .db = h->s.db};
  assert_int_equal(srv_op_submit(&h->s, world_prepare, world_apply, op_done, &c), SRV_OP_STOPPED);
  assert_false(c.done);
  h_close(h, false);

  /* An op queued while nothing runs them is completed by close, as stopped. */
  h = h_open(false);
  op_state d = {.key = "op:d", .db = h->s.db};
  assert_int_equal(srv_op_submit(&h->s, world_prepare, world_apply, op_done, &d), 0);
  srv_ops_close(&h->s);
  assert_true(d.done);
  assert_int_equal(d.status, SRV_OP_STOPPED);
  assert_false(d.applied);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&h->loop), 0);
  srv_close(&h->s);
  nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(h);
}

/* Creates a user with one module `main` (and a CPU account when o->cpu_limit). */
static int user_prepare(srv *s, store_txn *txn, void *ud) {
  op_state *o = ud;
  store_user u;
  memset(&u, 0, sizeof u);
  snprintf(u.username, sizeof u.username, "%s", o->username);
  u.cpu_limit = o->cpu_limit;
  sbx_module m = {"main", o->code, strlen(o->code), false};
  int rc = srv_user_create(s, txn, &u, &m, 1);
  o->uid = u.id;
  if (rc == STORE_OK && o->cpu_limit) {
    store_cpu c = {o->cpu_limit, o->bucket, 0, 0};
    rc = store_cpu_put(txn, u.id, &c);
  }
  return rc;
}
static void user_apply(srv *s, void *ud) {
  op_state *o = ud;
  store_txn *txn;
  assert_int_equal(store_read_begin(s->db, &txn), STORE_OK);
  store_user u;
  assert_int_equal(store_user_get(txn, o->uid, &u), STORE_OK);
  assert_int_equal(srv_player_add(s, txn, &u), STORE_OK);
  store_abort(txn);
  o->game_time_at_apply = s->game_time;
  o->applied = true;
}

static int cmd_prepare(srv *s, store_txn *txn, void *ud) {
  (void)s;
  op_state *o = ud;
  uint64_t seq;
  int rc = store_console_push(txn, o->uid, o->command, strlen(o->command), &seq);
  o->game_time_at_apply = seq; /* reused: the sequence number */
  return rc;
}
static void cmd_apply(srv *s, void *ud) {
  op_state *o = ud;
  assert_int_equal(srv_player_push_cmd(srv_player_find(s, o->uid), o->game_time_at_apply, o->command), 0);
}

static void run_op(harness *h, srv_op_prepare_fn prepare, srv_op_apply_fn apply, op_state *o) {
  o->done = false;
  assert_int_equal(srv_op_submit(&h->s, prepare, apply, op_done, o), 0);
  wait_done(h, o);
  assert_int_equal(o->status, 0);
}

/* The player's committed Memory, as a new string ("" if none). */
static char *committed_memory(harness *h, uint64_t uid) {
  store_txn *t;
  assert_int_equal(store_read_begin(h->s.db, &t), STORE_OK);
  const char *d = "";
  size_t len = 0;
  store_memory_get(t, uid, &d, &len);
  char *s = strndup(d, len);
  store_abort(t);
  return s;
}

static int count_cmd(uint64_t seq, const char *expr, size_t len, void *ud) {
  (void)seq;
  (void)expr;
  (void)len;
  (*(int *)ud)++;
  return 0;
}

static int queued_commands(harness *h, uint64_t uid) {
  store_txn *t;
  assert_int_equal(store_read_begin(h->s.db, &t), STORE_OK);
  int n = 0;
  assert_int_equal(store_console_iter(t, uid, count_cmd, &n), STORE_OK);
  store_abort(t);
  return n;
}

static void wait_ticks(harness *h, uint64_t n) {
  uint64_t until = atomic_load(&h->s.pub_game_time) + n;
  for (int i = 0; i < 5000 && atomic_load(&h->s.pub_game_time) < until; i++) {
    uv_run(&h->loop, UV_RUN_NOWAIT);
    sleep_ms(2);
  }
  assert_true(atomic_load(&h->s.pub_game_time) >= until);
}

static void test_players_console_runs_when_loop_throws(void **state) {
  (void)state;
  harness *h = h_open(true);
  op_state u = {.username = "thrower", .code = "module.exports.loop = function () { throw new Error('boom'); };"};
  run_op(h, user_prepare, user_apply, &u);
  op_state c = {.uid = u.uid, .command = "Memory.fromConsole = Game.time; 'done'"};
  run_op(h, cmd_prepare, cmd_apply, &c);
  /* (its durability before it runs: test_players_state_survives_reopen) */
  wait_ticks(h, 3);
  char *mem = committed_memory(h, u.uid);
  assert_non_null(strstr(mem, "\"fromConsole\":"));
  free(mem);
  assert_int_equal(queued_commands(h, u.uid), 0); /* ran: gone from the queue */
  assert_int_equal(srv_player_find(&h->s, u.uid)->n_cmds, 0);
  h_close(h, true);
}

static void test_players_memory_over_limit_keeps_previous(void **state) {
  (void)state;
  harness *h = h_open(true);
  op_state u = {.username = "hoarder",
                .code =
                    "module.exports.loop = function () {\n"
                    "  if (!Memory.first) { Memory.first = Game.time; return; }\n"
                    "  Memory.big = 'x'.repeat(2 * 1024 * 1024);\n"
                    "};"};
  run_op(h, user_prepare, user_apply, &u);
  wait_ticks(h, 4);
  char *mem = committed_memory(h, u.uid);
  assert_non_null(strstr(mem, "\"first\":"));
  assert_null(strstr(mem, "big"));
  assert_true(strlen(mem) < 100);
  free(mem);
  h_close(h, true);
}

static void test_players_empty_bucket_is_skipped(void **state) {
  (void)state;
  harness *h = h_open(true);
  op_state u = {.username = "broke",
                .cpu_limit = 20,
                .bucket = -45,
                .code = "module.exports.loop = function () { if (!Memory.first) Memory.first = Game.time; };"};
  run_op(h, user_prepare, user_apply, &u);
  wait_ticks(h, 6);
  /* -45 -> -25 -> -5 -> 15: three ticks skipped (each earns the limit), the 4th runs. */
  char *mem = committed_memory(h, u.uid);
  char want[64];
  snprintf(want, sizeof want, "\"first\":%" PRIu64, u.game_time_at_apply + 4);
  assert_non_null(strstr(mem, want));
  free(mem);
  store_txn *t;
  assert_int_equal(store_read_begin(h->s.db, &t), STORE_OK);
  store_cpu cpu;
  assert_int_equal(store_cpu_get(t, u.uid, &cpu), STORE_OK);
  assert_int_equal(cpu.limit, 20);
  assert_true(cpu.bucket > 15 && cpu.bucket <= SIM_BUCKET_MAX);
  store_abort(t);
  h_close(h, true);
}

/* Commands survive a restart; the game time and players come back from the store. */
static void test_players_state_survives_reopen(void **state) {
  (void)state;
  harness *h = h_open(false);
  op_state u = {.username = "keeper", .code = "module.exports.loop = function () {};"};
  /* No tick thread: run the ops by hand, as the tick thread would. */
  assert_int_equal(srv_op_submit(&h->s, user_prepare, user_apply, op_done, &u), 0);
  assert_true(srv_ops_run_pending(&h->s));
  op_state c = {.uid = 0, .command = "Memory.later = 1"};
  uv_run(&h->loop, UV_RUN_NOWAIT);
  c.uid = u.uid;
  assert_int_equal(srv_op_submit(&h->s, cmd_prepare, cmd_apply, op_done, &c), 0);
  assert_true(srv_ops_run_pending(&h->s));
  for (int i = 0; i < 100 && !(u.done && c.done); i++) uv_run(&h->loop, UV_RUN_NOWAIT), sleep_ms(1);
  assert_true(u.done && c.done);
  char dir[256];
  snprintf(dir, sizeof dir, "%s", h->dir);
  srv_ops_close(&h->s);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  uv_loop_close(&h->loop);
  srv_close(&h->s);
  free(h);

  harness *h2 = calloc(1, sizeof *h2);
  snprintf(h2->dir, sizeof h2->dir, "%s", dir);
  char *argv[] = {"isoworld", "--data-dir", h2->dir, "--no-demo", "--quiet", NULL};
  assert_int_equal(srv_config_load(&h2->s.cfg, 5, argv), 0);
  assert_int_equal(srv_open(&h2->s), 0);
  srv_player *p = srv_player_find(&h2->s, u.uid);
  assert_non_null(p);
  assert_string_equal(p->name, "keeper");
  assert_string_equal(p->branch, "default");
  assert_true(p->has_code);
  assert_int_equal(p->n_cmds, 1);
  assert_string_equal(p->cmds[0].expr, "Memory.later = 1");
  srv_close(&h2->s);
  nftw(h2->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(h2);
}

static int group_setup(void **state) {
  (void)state;
  if (sodium_init() < 0) return -1;
  return sbx_engine_start(NULL) == SBX_OK ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  sbx_engine_stop();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_players_module_name_escaping),
      cmocka_unit_test(test_players_branch_rules),
      cmocka_unit_test(test_players_utf16_length),
      cmocka_unit_test(test_players_token_mint_and_verify),
      cmocka_unit_test(test_players_token_rotation_and_expiry),
      cmocka_unit_test(test_players_long_tokens),
      cmocka_unit_test(test_players_password_hash),
      cmocka_unit_test(test_players_memory_path_get),
      cmocka_unit_test(test_players_memory_path_set),
      cmocka_unit_test(test_players_memory_parse_like_javascript),
      cmocka_unit_test(test_players_gz_base64),
      cmocka_unit_test(test_players_op_queue),
      cmocka_unit_test(test_players_console_runs_when_loop_throws),
      cmocka_unit_test(test_players_memory_over_limit_keeps_previous),
      cmocka_unit_test(test_players_empty_bucket_is_skipped),
      cmocka_unit_test(test_players_state_survives_reopen),
  };
  return cmocka_run_group_tests_name("players", tests, group_setup, group_teardown);
}
