/*
 * store_data.c — the records of players and the world: users (with the case-insensitive
 * username index), code modules and their per-user stamp, Memory, CPU state, world blobs.
 *
 * Each function maps one public call onto LMDB gets, puts and cursor scans in the named
 * databases opened by store.c, and decodes through store_codec.c. It must not keep state
 * between calls, and must not hand out pointers that outlive the rules of store.h (LMDB
 * data is valid until the txn ends, or in a write txn until the next write).
 *
 * Why the keys look the way they do: every per-user key begins with the user id in big
 * endian, so "everything of user 42" is one contiguous range (store_user_delete uses
 * that), and a code key puts a NUL between branch and module so the modules of branch "a"
 * form a range that does not include those of branch "ab" ("a\0..." < "ab...").
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define DBI(t, id) ((t)->s->dbi[STORE__DB_##id])

/* The code key: u64 uid | branch | '\0' | module. */
#define CODE_KEY_MAX (8 + STORE_BRANCH_MAX + STORE_MODULE_NAME_MAX)

long store__name_len(const char *s, size_t max) {
  if (!s) return -1;
  size_t n = 0;
  while (n < max && s[n]) n++;
  if (n == 0 || n >= max) return -1;
  return (long)n;
}
#define name_len store__name_len

/* Builds the code key (module NULL: the branch prefix, through the NUL) into buf. */
static int code_key(store_txn *t, const char *fn, uint64_t uid, const char *branch, const char *module,
                    unsigned char *buf, size_t *klen) {
  long bl = name_len(branch, STORE_BRANCH_MAX);
  if (bl < 0) return store__fail(NULL, t, STORE_INVALID, "%s: branch must be 1..%d bytes", fn, STORE_BRANCH_MAX - 1);
  long ml = 0;
  if (module) {
    ml = name_len(module, STORE_MODULE_NAME_MAX);
    if (ml < 0)
      return store__fail(NULL, t, STORE_INVALID, "%s: module name must be 1..%d bytes", fn, STORE_MODULE_NAME_MAX - 1);
  }
  store__be64_put(buf, uid);
  memcpy(buf + 8, branch, (size_t)bl);
  buf[8 + bl] = '\0';
  if (module) memcpy(buf + 9 + bl, module, (size_t)ml);
  *klen = 9 + (size_t)bl + (size_t)ml;
  return STORE_OK;
}

bool store__has_prefix(const MDB_val *k, const void *prefix, size_t plen) {
  if (plen == 0) return true;
  return k->mv_size >= plen && memcmp(k->mv_data, prefix, plen) == 0;
}
#define has_prefix store__has_prefix

int store__each(store_txn *t, MDB_dbi dbi, const void *prefix, size_t plen, const char *fn,
                int (*visit)(store_txn *t, const MDB_val *k, const MDB_val *v, void *ud), void *ud) {
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, dbi, &c);
  if (rc) return store__fail_mdb(t, rc, fn);
  MDB_val k = {plen, (void *)prefix}, v;
  int st = 0;
  rc = plen ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
  while (rc == 0 && has_prefix(&k, prefix, plen)) {
    if ((st = visit(t, &k, &v, ud)) != 0) break;
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (st) return st;
  return (rc == 0 || rc == MDB_NOTFOUND) ? STORE_OK : store__fail_mdb(t, rc, fn);
}

int store__del_prefix(store_txn *t, MDB_dbi dbi, const void *prefix, size_t plen, size_t *n, const char *fn) {
  MDB_cursor *c;
  size_t count = 0;
  int rc = mdb_cursor_open(t->txn, dbi, &c);
  if (rc) return store__fail_mdb(t, rc, fn);
  for (;;) {
    MDB_val k = {plen, (void *)prefix}, v;
    /* Re-seek after each delete: simple, and immune to where LMDB leaves the cursor. */
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND || (rc == 0 && !has_prefix(&k, prefix, plen))) {
      rc = 0;
      break;
    }
    if (rc) break;
    rc = mdb_cursor_del(c, 0);
    if (rc) break;
    count++;
  }
  mdb_cursor_close(c);
  if (n) *n = count;
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}
#define del_prefix store__del_prefix

int store__del_key(store_txn *t, MDB_dbi dbi, const void *key, size_t klen, const char *fn) {
  MDB_val k = {klen, (void *)key};
  int rc = mdb_del(t->txn, dbi, &k, NULL);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}
#define del_key store__del_key

/* ------------------------------------------------------------------ users */

static int user_decode(store_txn *t, const char *fn, uint64_t id, const MDB_val *v, store_user *out) {
  const char *why = NULL;
  int st = store__user_decode(v->mv_data, v->mv_size, out, &why);
  if (!st && out->id != id) why = "the record's id differs from its key", st = STORE_CORRUPT;
  if (st)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": corrupt record (%zu bytes): %s", fn, id,
                       v->mv_size, why);
  return STORE_OK;
}

static int user_get(store_txn *t, uint64_t id, store_user *out, const char *fn) {
  unsigned char kb[8];
  store__be64_put(kb, id);
  MDB_val k = {8, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, USERS), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  return user_decode(t, fn, id, &v, out);
}

/* Removes every entry of an index (usernames, emails) pointing at id except `keep` (may
 * be NULL): the repair path when a user's own record cannot tell us its old keys. */
static int drop_index_of(store_txn *t, MDB_dbi dbi, uint64_t id, const char *keep, const char *fn) {
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, dbi, &c);
  if (rc) return store__fail_mdb(t, rc, fn);
  MDB_val k, v;
  rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
  while (rc == 0) {
    bool match = v.mv_size == 8 && store__be64_get(v.mv_data) == id;
    bool kept = keep && k.mv_size == strlen(keep) && memcmp(k.mv_data, keep, k.mv_size) == 0;
    if (match && !kept) {
      char seek[STORE_EMAIL_MAX + 8];
      size_t sl = k.mv_size < sizeof seek ? k.mv_size : sizeof seek;
      memcpy(seek, k.mv_data, sl);
      rc = mdb_cursor_del(c, 0);
      if (rc) break;
      k = (MDB_val){sl, seek}; /* the next entry is the first one after the deleted key */
      rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
      continue;
    }
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  return rc == MDB_NOTFOUND ? STORE_OK : store__fail_mdb(t, rc, fn);
}

/* STORE_OK when index key `lkey` is free or already points at id; STORE_EXISTS when
 * another user holds it. `what` names the index in the detail. */
static int index_check_free(store_txn *t, MDB_dbi dbi, const char *lkey, int klen, uint64_t id, const char *shown,
                            const char *what, const char *fn) {
  MDB_val nk = {(size_t)klen, (void *)lkey}, nv;
  int rc = mdb_get(t->txn, dbi, &nk, &nv);
  if (rc == MDB_NOTFOUND) return STORE_OK;
  if (rc) return store__fail_mdb(t, rc, fn);
  if (nv.mv_size != 8)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: %s index entry '%s' has %zu bytes", fn, what, lkey, nv.mv_size);
  uint64_t owner = store__be64_get(nv.mv_data);
  if (owner != id)
    return store__fail(NULL, t, STORE_EXISTS, "%s: %s '%s' is taken by user %" PRIu64, fn, what, shown, owner);
  return STORE_OK;
}

int store_user_put(store_txn *t, const store_user *u) {
  const char *fn = "store_user_put";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  const char *why;
  if (store__user_validate(u, &why)) return store__fail(NULL, t, STORE_INVALID, "%s: %s", fn, why);
  char lname[STORE_USERNAME_MAX], lmail[STORE_EMAIL_MAX];
  int ln = store__username_fold(u->username, lname);
  if (ln < 0) return store__fail(NULL, t, STORE_INVALID, "%s: bad username", fn);
  int lm = store__email_fold(u->email, lmail); /* -1: no email, no index entry */

  /* Who holds the name and the email now? Check before changing anything, so EXISTS
   * leaves the txn as it was. */
  if ((st = index_check_free(t, DBI(t, USERNAMES), lname, ln, u->id, u->username, "username", fn)) != 0) return st;
  if (lm > 0 && (st = index_check_free(t, DBI(t, EMAILS), lmail, lm, u->id, u->email, "email", fn)) != 0) return st;

  store_user old;
  st = user_get(t, u->id, &old, fn);
  if (st == STORE_OK) {
    char oldl[STORE_USERNAME_MAX], oldm[STORE_EMAIL_MAX];
    int ol = store__username_fold(old.username, oldl);
    if (ol > 0 && strcmp(oldl, lname) != 0) {
      st = del_key(t, DBI(t, USERNAMES), oldl, (size_t)ol, fn);
      if (st && st != STORE_NOTFOUND) return st;
    }
    int om = store__email_fold(old.email, oldm);
    if (om > 0 && (lm < 0 || strcmp(oldm, lmail) != 0)) {
      st = del_key(t, DBI(t, EMAILS), oldm, (size_t)om, fn);
      if (st && st != STORE_NOTFOUND) return st;
    }
  } else if (st == STORE_CORRUPT) {
    /* Overwriting a damaged record: find its index entries the slow way. */
    if ((st = drop_index_of(t, DBI(t, USERNAMES), u->id, lname, fn)) != 0) return st;
    if ((st = drop_index_of(t, DBI(t, EMAILS), u->id, lm > 0 ? lmail : NULL, fn)) != 0) return st;
  } else if (st != STORE_NOTFOUND) {
    return st;
  }

  unsigned char idb[8];
  store__be64_put(idb, u->id);
  MDB_val nk = {(size_t)ln, lname}, nv = {8, idb};
  int rc = mdb_put(t->txn, DBI(t, USERNAMES), &nk, &nv, 0);
  if (rc) return store__fail_mdb(t, rc, fn);
  if (lm > 0) {
    MDB_val mk = {(size_t)lm, lmail}, mv = {8, idb};
    rc = mdb_put(t->txn, DBI(t, EMAILS), &mk, &mv, 0);
    if (rc) return store__fail_mdb(t, rc, fn);
  }

  unsigned char rec[STORE__USER_REC_MAX];
  MDB_val k = {8, idb}, v = {store__user_encode(u, rec), rec};
  rc = mdb_put(t->txn, DBI(t, USERS), &k, &v, 0);
  if (rc) return store__fail_mdb(t, rc, fn);

  /* Keep store_next_user_id from ever handing out an id that is in use. */
  uint64_t next;
  if ((st = store__meta_get_u64(t, "next_user_id", 1, &next, fn)) != 0) return st;
  if (next <= u->id && u->id < UINT64_MAX)
    if ((st = store__meta_put_u64(t, "next_user_id", u->id + 1, fn)) != 0) return st;
  return STORE_OK;
}

int store_user_get(store_txn *t, uint64_t id, store_user *out) {
  int st = store__check_txn(t, false, "store_user_get");
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "store_user_get: out is NULL");
  return user_get(t, id, out, "store_user_get");
}

/* Looks `lkey` up in an index and loads the user it points at. */
static int find_by_index(store_txn *t, MDB_dbi dbi, const char *lkey, int klen, store_user *out, const char *what,
                         const char *fn) {
  MDB_val k = {(size_t)klen, (void *)lkey}, v;
  int rc = mdb_get(t->txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  if (v.mv_size != 8)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: %s index entry '%s' has %zu bytes", fn, what, lkey, v.mv_size);
  uint64_t id = store__be64_get(v.mv_data);
  int st = user_get(t, id, out, fn);
  if (st == STORE_NOTFOUND)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: %s '%s' points at missing user %" PRIu64, fn, what, lkey, id);
  return st;
}

int store_user_find(store_txn *t, const char *username, store_user *out) {
  const char *fn = "store_user_find";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  char lname[STORE_USERNAME_MAX];
  int ln = store__username_fold(username, lname);
  if (ln < 0 || !out)
    return store__fail(NULL, t, STORE_INVALID, "%s: username must be 1..%d bytes and out non-NULL", fn,
                       STORE_USERNAME_MAX - 1);
  if ((st = find_by_index(t, DBI(t, USERNAMES), lname, ln, out, "username", fn)) != 0) return st;
  char got[STORE_USERNAME_MAX];
  if (store__username_fold(out->username, got) < 0 || strcmp(got, lname) != 0)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: username '%s' points at user %" PRIu64 " named '%s'", fn, lname,
                       out->id, out->username);
  return STORE_OK;
}

int store_user_find_email(store_txn *t, const char *email, store_user *out) {
  const char *fn = "store_user_find_email";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  char lmail[STORE_EMAIL_MAX];
  int lm = store__email_fold(email, lmail);
  if (lm < 0 || !out)
    return store__fail(NULL, t, STORE_INVALID, "%s: email must be 1..%d bytes and out non-NULL", fn,
                       STORE_EMAIL_MAX - 1);
  if ((st = find_by_index(t, DBI(t, EMAILS), lmail, lm, out, "email", fn)) != 0) return st;
  char got[STORE_EMAIL_MAX];
  if (store__email_fold(out->email, got) < 0 || strcmp(got, lmail) != 0)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: email '%s' points at user %" PRIu64 " whose email is '%s'", fn,
                       lmail, out->id, out->email);
  return STORE_OK;
}

int store__rebuild_email_index(MDB_txn *txn, const MDB_dbi *dbi, const char **why) {
  MDB_cursor *c;
  int rc = mdb_drop(txn, dbi[STORE__DB_EMAILS], 0);
  if (rc) return *why = "cannot empty the email index", rc;
  rc = mdb_cursor_open(txn, dbi[STORE__DB_USERS], &c);
  if (rc) return *why = "cannot read the users", rc;
  MDB_val k, v;
  rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
  while (rc == 0) {
    store_user u;
    const char *w;
    char lmail[STORE_EMAIL_MAX];
    /* A record that does not decode keeps its damage: store_user_get reports it. */
    if (k.mv_size == 8 && store__user_decode(v.mv_data, v.mv_size, &u, &w) == STORE_OK) {
      int lm = store__email_fold(u.email, lmail);
      if (lm > 0) {
        unsigned char idb[8];
        store__be64_put(idb, u.id);
        MDB_val mk = {(size_t)lm, lmail}, mv = {8, idb};
        /* Two users with one email (possible before the index): the first keeps it. */
        rc = mdb_put(txn, dbi[STORE__DB_EMAILS], &mk, &mv, MDB_NOOVERWRITE);
        if (rc && rc != MDB_KEYEXIST) break;
      }
    }
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (rc == MDB_NOTFOUND) return 0;
  *why = "cannot index the users' emails";
  return rc;
}

int store_user_delete(store_txn *t, uint64_t id) {
  const char *fn = "store_user_delete";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  store_user old;
  st = user_get(t, id, &old, fn);
  if (st == STORE_NOTFOUND) return STORE_NOTFOUND;
  if (st == STORE_OK) {
    char lname[STORE_USERNAME_MAX], lmail[STORE_EMAIL_MAX];
    int ln = store__username_fold(old.username, lname);
    st = ln > 0 ? del_key(t, DBI(t, USERNAMES), lname, (size_t)ln, fn) : STORE_OK;
    if (st && st != STORE_NOTFOUND) return st;
    int lm = store__email_fold(old.email, lmail);
    st = lm > 0 ? del_key(t, DBI(t, EMAILS), lmail, (size_t)lm, fn) : STORE_OK;
    if (st && st != STORE_NOTFOUND) return st;
  } else if (st == STORE_CORRUPT) {
    if ((st = drop_index_of(t, DBI(t, USERNAMES), id, NULL, fn)) != 0) return st;
    if ((st = drop_index_of(t, DBI(t, EMAILS), id, NULL, fn)) != 0) return st;
  } else {
    return st;
  }
  unsigned char kb[8];
  store__be64_put(kb, id);
  if ((st = del_key(t, DBI(t, USERS), kb, 8, fn)) != 0) return st;
  /* Everything keyed by the user: one range each. */
  static const int ranges[] = {STORE__DB_CODE, STORE__DB_BRANCHES, STORE__DB_SEGMENTS, STORE__DB_CONSOLE,
                               STORE__DB_TOKENS};
  for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
    if ((st = del_prefix(t, t->s->dbi[ranges[i]], kb, 8, NULL, fn)) != 0) return st;
  static const int per_user[] = {STORE__DB_CODE_STAMP, STORE__DB_MEMORY, STORE__DB_CPU};
  for (size_t i = 0; i < sizeof per_user / sizeof per_user[0]; i++) {
    st = del_key(t, t->s->dbi[per_user[i]], kb, 8, fn);
    if (st && st != STORE_NOTFOUND) return st;
  }
  return STORE_OK;
}

int store_user_count(store_txn *t, size_t *out) {
  int st = store__check_txn(t, false, "store_user_count");
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "store_user_count: out is NULL");
  MDB_stat ms;
  int rc = mdb_stat(t->txn, DBI(t, USERS), &ms);
  if (rc) return store__fail_mdb(t, rc, "store_user_count");
  *out = ms.ms_entries;
  return STORE_OK;
}

int store_user_iter(store_txn *t, int (*fn)(const store_user *u, void *ud), void *ud) {
  const char *name = "store_user_iter";
  int st = store__check_txn(t, false, name);
  if (st) return st;
  if (!fn) return store__fail(NULL, t, STORE_INVALID, "%s: fn is NULL", name);
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, DBI(t, USERS), &c);
  if (rc) return store__fail_mdb(t, rc, name);
  MDB_val k, v;
  rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
  while (rc == 0) {
    if (k.mv_size != 8) {
      st = store__fail(NULL, t, STORE_CORRUPT, "%s: a users key has %zu bytes, expected 8", name, k.mv_size);
      break;
    }
    store_user u;
    if ((st = user_decode(t, name, store__be64_get(k.mv_data), &v, &u)) != 0) break;
    if ((st = fn(&u, ud)) != 0) break;
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (st) return st;
  return rc == MDB_NOTFOUND ? STORE_OK : store__fail_mdb(t, rc, name);
}

/* ------------------------------------------------------------------ code */

static int module_decode(store_txn *t, const char *fn, const MDB_val *v, store_code_module *m) {
  const unsigned char *p = v->mv_data;
  if (v->mv_size < 1 || (p[0] & ~1u) != 0)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: module record of %zu bytes has a bad header", fn, v->mv_size);
  m->binary = p[0] & 1u;
  m->data = p + 1;
  m->len = v->mv_size - 1;
  return STORE_OK;
}

int store_code_put_module(store_txn *t, uint64_t uid, const char *branch, const char *module, const void *data,
                          size_t len, bool binary) {
  const char *fn = "store_code_put_module";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  unsigned char kb[CODE_KEY_MAX];
  size_t kl;
  if ((st = code_key(t, fn, uid, branch, module, kb, &kl)) != 0) return st;
  if (!data && len) return store__fail(NULL, t, STORE_INVALID, "%s: data is NULL", fn);
  MDB_val k = {kl, kb}, v = {len + 1, NULL};
  int rc = mdb_put(t->txn, DBI(t, CODE), &k, &v, MDB_RESERVE);
  if (rc) return store__fail_mdb(t, rc, fn);
  unsigned char *p = v.mv_data;
  p[0] = binary ? 1 : 0;
  if (len) memcpy(p + 1, data, len);
  return STORE_OK;
}

int store_code_get_module(store_txn *t, uint64_t uid, const char *branch, const char *module, store_code_module *out) {
  const char *fn = "store_code_get_module";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "%s: out is NULL", fn);
  unsigned char kb[CODE_KEY_MAX];
  size_t kl;
  if ((st = code_key(t, fn, uid, branch, module, kb, &kl)) != 0) return st;
  MDB_val k = {kl, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, CODE), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  out->name = module;
  return module_decode(t, fn, &v, out);
}

int store_code_delete_module(store_txn *t, uint64_t uid, const char *branch, const char *module) {
  const char *fn = "store_code_delete_module";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  unsigned char kb[CODE_KEY_MAX];
  size_t kl;
  if ((st = code_key(t, fn, uid, branch, module, kb, &kl)) != 0) return st;
  return del_key(t, DBI(t, CODE), kb, kl, fn);
}

typedef struct module_visit {
  const char *branch;
  uint64_t uid;
  size_t pl;
  int (*fn)(const store_code_module *m, void *ud);
  void *ud;
} module_visit;

static int visit_module(store_txn *t, const MDB_val *k, const MDB_val *v, void *ud) {
  const module_visit *mv = ud;
  const char *name = "store_code_iter_branch";
  size_t nl = k->mv_size - mv->pl;
  const char *np = (const char *)k->mv_data + mv->pl;
  if (nl == 0 || nl >= STORE_MODULE_NAME_MAX || memchr(np, '\0', nl))
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 " branch '%s': bad module key of %zu bytes", name,
                       mv->uid, mv->branch, k->mv_size);
  char mname[STORE_MODULE_NAME_MAX];
  memcpy(mname, np, nl);
  mname[nl] = '\0';
  store_code_module m = {.name = mname};
  int st = module_decode(t, name, v, &m);
  return st ? st : mv->fn(&m, mv->ud);
}

int store_code_iter_branch(store_txn *t, uint64_t uid, const char *branch,
                           int (*fn)(const store_code_module *m, void *ud), void *ud) {
  const char *name = "store_code_iter_branch";
  int st = store__check_txn(t, false, name);
  if (st) return st;
  if (!fn) return store__fail(NULL, t, STORE_INVALID, "%s: fn is NULL", name);
  unsigned char pre[CODE_KEY_MAX];
  size_t pl;
  if ((st = code_key(t, name, uid, branch, NULL, pre, &pl)) != 0) return st;
  module_visit mv = {branch, uid, pl, fn, ud};
  return store__each(t, DBI(t, CODE), pre, pl, name, visit_module, &mv);
}

int store_code_iter_branches(store_txn *t, uint64_t uid, int (*fn)(const char *branch, void *ud), void *ud) {
  const char *name = "store_code_iter_branches";
  int st = store__check_txn(t, false, name);
  if (st) return st;
  if (!fn) return store__fail(NULL, t, STORE_INVALID, "%s: fn is NULL", name);
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, DBI(t, CODE), &c);
  if (rc) return store__fail_mdb(t, rc, name);
  unsigned char seek[8 + STORE_BRANCH_MAX + 1];
  store__be64_put(seek, uid);
  MDB_val k = {8, seek}, v;
  rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && has_prefix(&k, seek, 8)) {
    const char *bp = (const char *)k.mv_data + 8;
    const char *nul = memchr(bp, '\0', k.mv_size - 8);
    size_t bl = nul ? (size_t)(nul - bp) : 0;
    if (!nul || bl == 0 || bl >= STORE_BRANCH_MAX) {
      st = store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": bad code key of %zu bytes", name, uid, k.mv_size);
      break;
    }
    char branch[STORE_BRANCH_MAX];
    memcpy(branch, bp, bl);
    branch[bl] = '\0';
    if ((st = fn(branch, ud)) != 0) break;
    /* Skip the rest of this branch: the first key after uid|branch|'\0'... is at or after
     * uid|branch|'\1'. */
    memcpy(seek + 8, branch, bl);
    seek[8 + bl] = '\1';
    k = (MDB_val){9 + bl, seek};
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  }
  mdb_cursor_close(c);
  if (st) return st;
  return (rc == 0 || rc == MDB_NOTFOUND) ? STORE_OK : store__fail_mdb(t, rc, name);
}

int store_code_delete_branch(store_txn *t, uint64_t uid, const char *branch) {
  const char *fn = "store_code_delete_branch";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  unsigned char pre[CODE_KEY_MAX];
  size_t pl, n;
  if ((st = code_key(t, fn, uid, branch, NULL, pre, &pl)) != 0) return st;
  if ((st = del_prefix(t, DBI(t, CODE), pre, pl, &n, fn)) != 0) return st;
  return n ? STORE_OK : STORE_NOTFOUND;
}

int store_code_set_stamp(store_txn *t, uint64_t uid, uint64_t stamp) {
  const char *fn = "store_code_set_stamp";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  unsigned char kb[8], vb[8];
  store__be64_put(kb, uid);
  store__le64_put(vb, stamp);
  MDB_val k = {8, kb}, v = {8, vb};
  int rc = mdb_put(t->txn, DBI(t, CODE_STAMP), &k, &v, 0);
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}

int store_code_get_stamp(store_txn *t, uint64_t uid, uint64_t *out) {
  const char *fn = "store_code_get_stamp";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "%s: out is NULL", fn);
  unsigned char kb[8];
  store__be64_put(kb, uid);
  MDB_val k = {8, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, CODE_STAMP), &k, &v);
  if (rc == MDB_NOTFOUND) {
    *out = 0;
    return STORE_OK;
  }
  if (rc) return store__fail_mdb(t, rc, fn);
  if (v.mv_size != 8)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": stamp has %zu bytes", fn, uid, v.mv_size);
  *out = store__le64_get(v.mv_data);
  return STORE_OK;
}

/* ------------------------------------------------------------------ memory */

#define MEMORY_RAW 0

int store_memory_put(store_txn *t, uint64_t uid, const void *data, size_t len) {
  const char *fn = "store_memory_put";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  if (!data && len) return store__fail(NULL, t, STORE_INVALID, "%s: data is NULL", fn);
  unsigned char kb[8];
  store__be64_put(kb, uid);
  MDB_val k = {8, kb}, v = {len + 1, NULL};
  int rc = mdb_put(t->txn, DBI(t, MEMORY), &k, &v, MDB_RESERVE);
  if (rc) return store__fail_mdb(t, rc, fn);
  unsigned char *p = v.mv_data;
  p[0] = MEMORY_RAW;
  if (len) memcpy(p + 1, data, len);
  return STORE_OK;
}

int store_memory_get(store_txn *t, uint64_t uid, const char **data, size_t *len) {
  const char *fn = "store_memory_get";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!data || !len) return store__fail(NULL, t, STORE_INVALID, "%s: data or len is NULL", fn);
  unsigned char kb[8];
  store__be64_put(kb, uid);
  MDB_val k = {8, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, MEMORY), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  const unsigned char *p = v.mv_data;
  if (v.mv_size < 1 || p[0] != MEMORY_RAW)
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": unknown memory encoding", fn, uid);
  *data = (const char *)p + 1;
  *len = v.mv_size - 1;
  return STORE_OK;
}

int store_memory_delete(store_txn *t, uint64_t uid) {
  const char *fn = "store_memory_delete";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  unsigned char kb[8];
  store__be64_put(kb, uid);
  return del_key(t, DBI(t, MEMORY), kb, 8, fn);
}

/* ------------------------------------------------------------------ cpu */

int store_cpu_put(store_txn *t, uint64_t uid, const store_cpu *cpu) {
  const char *fn = "store_cpu_put";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  if (!cpu) return store__fail(NULL, t, STORE_INVALID, "%s: cpu is NULL", fn);
  unsigned char kb[8], vb[STORE__CPU_REC_SIZE];
  store__be64_put(kb, uid);
  store__cpu_encode(cpu, vb);
  MDB_val k = {8, kb}, v = {sizeof vb, vb};
  int rc = mdb_put(t->txn, DBI(t, CPU), &k, &v, 0);
  return rc ? store__fail_mdb(t, rc, fn) : STORE_OK;
}

int store_cpu_get(store_txn *t, uint64_t uid, store_cpu *out) {
  const char *fn = "store_cpu_get";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  if (!out) return store__fail(NULL, t, STORE_INVALID, "%s: out is NULL", fn);
  unsigned char kb[8];
  store__be64_put(kb, uid);
  MDB_val k = {8, kb}, v;
  int rc = mdb_get(t->txn, DBI(t, CPU), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  const char *why;
  if (store__cpu_decode(v.mv_data, v.mv_size, out, &why))
    return store__fail(NULL, t, STORE_CORRUPT, "%s: user %" PRIu64 ": %s", fn, uid, why);
  return STORE_OK;
}

/* ------------------------------------------------------------------ world */

static int world_key(store_txn *t, const char *fn, const char *key, size_t *klen) {
  long n = name_len(key, STORE_WORLD_KEY_MAX);
  if (n < 0) return store__fail(NULL, t, STORE_INVALID, "%s: key must be 1..%d bytes", fn, STORE_WORLD_KEY_MAX - 1);
  *klen = (size_t)n;
  return STORE_OK;
}

int store_world_put(store_txn *t, const char *key, const void *data, size_t len) {
  const char *fn = "store_world_put";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  size_t kl;
  if ((st = world_key(t, fn, key, &kl)) != 0) return st;
  if (!data && len) return store__fail(NULL, t, STORE_INVALID, "%s: data is NULL", fn);
  MDB_val k = {kl, (void *)key}, v = {len, NULL};
  int rc = mdb_put(t->txn, DBI(t, WORLD), &k, &v, MDB_RESERVE);
  if (rc) return store__fail_mdb(t, rc, fn);
  if (len) memcpy(v.mv_data, data, len);
  return STORE_OK;
}

int store_world_get(store_txn *t, const char *key, const void **data, size_t *len) {
  const char *fn = "store_world_get";
  int st = store__check_txn(t, false, fn);
  if (st) return st;
  size_t kl;
  if ((st = world_key(t, fn, key, &kl)) != 0) return st;
  if (!data || !len) return store__fail(NULL, t, STORE_INVALID, "%s: data or len is NULL", fn);
  MDB_val k = {kl, (void *)key}, v;
  int rc = mdb_get(t->txn, DBI(t, WORLD), &k, &v);
  if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
  if (rc) return store__fail_mdb(t, rc, fn);
  *data = v.mv_data;
  *len = v.mv_size;
  return STORE_OK;
}

int store_world_delete(store_txn *t, const char *key) {
  const char *fn = "store_world_delete";
  int st = store__check_txn(t, true, fn);
  if (st) return st;
  size_t kl;
  if ((st = world_key(t, fn, key, &kl)) != 0) return st;
  return del_key(t, DBI(t, WORLD), key, kl, fn);
}

typedef struct world_visit {
  int (*fn)(const char *key, const void *data, size_t len, void *ud);
  void *ud;
} world_visit;

static int visit_world(store_txn *t, const MDB_val *k, const MDB_val *v, void *ud) {
  const world_visit *w = ud;
  if (k->mv_size == 0 || k->mv_size >= STORE_WORLD_KEY_MAX || memchr(k->mv_data, '\0', k->mv_size))
    return store__fail(NULL, t, STORE_CORRUPT, "store_world_iter: bad world key of %zu bytes", k->mv_size);
  char key[STORE_WORLD_KEY_MAX];
  memcpy(key, k->mv_data, k->mv_size);
  key[k->mv_size] = '\0';
  return w->fn(key, v->mv_data, v->mv_size, w->ud);
}

int store_world_iter(store_txn *t, const char *prefix,
                     int (*fn)(const char *key, const void *data, size_t len, void *ud), void *ud) {
  const char *name = "store_world_iter";
  int st = store__check_txn(t, false, name);
  if (st) return st;
  if (!fn) return store__fail(NULL, t, STORE_INVALID, "%s: fn is NULL", name);
  size_t pl = prefix ? strlen(prefix) : 0;
  if (pl >= STORE_WORLD_KEY_MAX) return store__fail(NULL, t, STORE_INVALID, "%s: prefix longer than any key", name);
  world_visit w = {fn, ud};
  return store__each(t, DBI(t, WORLD), prefix, pl, name, visit_world, &w);
}
