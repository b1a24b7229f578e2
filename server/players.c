/*
 * players.c — the players in RAM, and the writes that create a user.
 *
 * The tick thread owns an array of players sorted by id (ids only grow, so a new user is
 * appended). Each is a write-through copy of committed state: loaded from a read txn at
 * start or when a user registers, then changed only by the tick (after its commit) and
 * by ops' apply callbacks (after theirs). Nothing here runs on the loop thread.
 *
 * Module names: stored escaped (names.c), given to the sandbox as players wrote them,
 * so require('role.harvester') finds the module uploaded as "role.harvester".
 */
#include "server.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

srv_player *srv_player_find(srv *s, uint64_t id) {
  size_t lo = 0, hi = s->n_players;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    uint64_t mid_id = s->players[mid]->id;
    if (mid_id == id) return s->players[mid];
    if (mid_id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* ------------------------------------------------------------------ code */

typedef struct code_acc {
  sbx_module *mods;
  size_t n, cap;
} code_acc;

static void code_acc_release(code_acc *a) {
  for (size_t i = 0; i < a->n; i++) free((char *)a->mods[i].name);
  free(a->mods);
  memset(a, 0, sizeof *a);
}

static int collect_module(const store_code_module *m, void *ud) {
  code_acc *a = ud;
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 8;
    sbx_module *p = realloc(a->mods, cap * sizeof *p);
    if (!p) return STORE_NOMEM;
    a->mods = p;
    a->cap = cap;
  }
  char name[STORE_MODULE_NAME_MAX];
  if (srv_module_unescape(m->name, name, sizeof name) != 0) return STORE_CORRUPT;
  char *copy = strdup(name);
  if (!copy) return STORE_NOMEM;
  /* Data borrowed until the read txn ends; sbx_vm_set_code copies it. */
  a->mods[a->n++] = (sbx_module){copy, m->data, m->len, m->binary};
  return 0;
}

int srv_player_set_code(srv_player *p, const sbx_module *mods, size_t n) {
  if (n == 0) {
    p->has_code = false;
    return 0;
  }
  if (sbx_vm_set_code(p->vm, mods, n) != SBX_OK) return STORE_NOMEM;
  p->has_code = true;
  return 0;
}

int srv_player_load_code(srv *s, store_txn *txn, srv_player *p) {
  (void)s;
  code_acc acc = {0};
  int rc = p->branch[0] ? store_code_iter_branch(txn, p->id, p->branch, collect_module, &acc) : STORE_OK;
  if (rc == STORE_OK) rc = srv_player_set_code(p, acc.mods, acc.n);
  code_acc_release(&acc);
  return rc;
}

/* ------------------------------------------------------------------ console queue */

int srv_player_push_cmd(srv_player *p, uint64_t seq, const char *expr) {
  if (p->n_cmds == p->cap_cmds) {
    size_t cap = p->cap_cmds ? p->cap_cmds * 2 : 4;
    srv_cmd *c = realloc(p->cmds, cap * sizeof *c);
    if (!c) return -1;
    p->cmds = c;
    p->cap_cmds = cap;
  }
  char *copy = strdup(expr);
  if (!copy) return -1;
  p->cmds[p->n_cmds++] = (srv_cmd){seq, copy};
  return 0;
}

void srv_player_drop_cmds(srv_player *p, uint64_t upto) {
  size_t k = 0;
  for (size_t i = 0; i < p->n_cmds; i++) {
    if (p->cmds[i].seq <= upto)
      free(p->cmds[i].expr);
    else
      p->cmds[k++] = p->cmds[i];
  }
  p->n_cmds = k;
}

static int load_cmd(uint64_t seq, const char *expr, size_t len, void *ud) {
  srv_player *p = ud;
  char *e = malloc(len + 1);
  if (!e) return STORE_NOMEM;
  memcpy(e, expr, len);
  e[len] = '\0';
  int rc = srv_player_push_cmd(p, seq, e);
  free(e);
  return rc ? STORE_NOMEM : 0;
}

/* ------------------------------------------------------------------ players */

void srv_player_free(srv_player *p) {
  if (!p) return;
  sbx_vm_free(p->vm);
  free(p->memory);
  for (size_t i = 0; i < p->n_cmds; i++) free(p->cmds[i].expr);
  free(p->cmds);
  free(p);
}

int srv_player_add(srv *s, store_txn *txn, const store_user *u) {
  if (s->n_players == s->cap_players) {
    size_t cap = s->cap_players ? s->cap_players * 2 : 16;
    srv_player **np = realloc(s->players, cap * sizeof *np);
    if (!np) return STORE_NOMEM;
    s->players = np;
    s->cap_players = cap;
  }
  if (s->n_players && s->players[s->n_players - 1]->id >= u->id) return STORE_INVALID; /* ids only grow */
  srv_player *p = calloc(1, sizeof *p);
  if (!p) return STORE_NOMEM;
  p->id = u->id;
  snprintf(p->name, sizeof p->name, "%s", u->username);
  p->flags = u->flags;
  snprintf(p->branch, sizeof p->branch, "%s", u->active_branch);
  p->cpu.limit = u->cpu_limit > 0 ? u->cpu_limit : s->cfg.cpu_limit;
  p->cpu.bucket = SIM_BUCKET_START;
  sbx_vm_options vo = {.heap_limit_mb = (size_t)s->cfg.heap_mb};
  int rc = sbx_vm_new(s->rt, &vo, &p->vm) == SBX_OK ? STORE_OK : STORE_NOMEM;
  if (rc == STORE_OK) {
    sbx_vm_set_userdata(p->vm, p);
    rc = store_code_get_stamp(txn, p->id, &p->code_stamp);
  }
  if (rc == STORE_OK) rc = srv_player_load_code(s, txn, p);
  if (rc == STORE_OK) {
    const char *mem;
    size_t len;
    rc = store_memory_get(txn, p->id, &mem, &len);
    if (rc == STORE_OK) {
      p->memory = malloc(len + 1);
      if (p->memory) {
        memcpy(p->memory, mem, len);
        p->memory[len] = 0;
        p->memory_len = len;
      } else {
        rc = STORE_NOMEM;
      }
    } else if (rc == STORE_NOTFOUND) {
      rc = STORE_OK;
    }
  }
  if (rc == STORE_OK) {
    store_cpu c;
    rc = store_cpu_get(txn, p->id, &c);
    if (rc == STORE_OK) {
      p->cpu.bucket = c.bucket;
      p->last_used_ms = c.last_used_ms;
      p->last_tick = c.last_tick;
    } else if (rc == STORE_NOTFOUND) {
      rc = STORE_OK;
    }
  }
  if (rc == STORE_OK) rc = store_console_iter(txn, p->id, load_cmd, p);
  if (rc == STORE_OK) {
    int ids[STORE_SEGMENTS_ACTIVE_MAX];
    size_t n = 0;
    rc = store_segments_get_active(txn, p->id, ids, STORE_SEGMENTS_ACTIVE_MAX, &n);
    for (size_t i = 0; rc == STORE_OK && i < n && p->n_active_segments < SBX_SEGMENTS_ACTIVE_MAX; i++)
      if (ids[i] >= 0 && ids[i] < SRV_SEGMENT_IDS) p->active_segments[p->n_active_segments++] = ids[i];
  }
  if (rc != STORE_OK) {
    srv_player_free(p);
    return rc;
  }
  s->players[s->n_players++] = p;
  return STORE_OK;
}

/* ------------------------------------------------------------------ creating users */

int srv_user_create(srv *s, store_txn *txn, store_user *u, const sbx_module *mods, size_t n) {
  int rc = store_next_user_id(txn, &u->id);
  if (rc != STORE_OK) return rc;
  snprintf(u->active_branch, sizeof u->active_branch, "default");
  if (u->cpu_limit <= 0) u->cpu_limit = s->cfg.cpu_limit;
  int64_t now = srv_now_ms();
  if (!u->created_ms) u->created_ms = now;
  if ((rc = store_user_put(txn, u)) != STORE_OK) return rc;
  store_branch b = {
      .name = "default", .flags = STORE_BRANCH_ACTIVE_WORLD | STORE_BRANCH_ACTIVE_SIM, .timestamp_ms = now};
  if ((rc = store_branch_put(txn, u->id, &b)) != STORE_OK) return rc;
  bool has_main = false;
  for (size_t i = 0; i < n; i++) {
    char esc[STORE_MODULE_NAME_MAX];
    if (srv_module_escape(mods[i].name, esc, sizeof esc) != 0) return STORE_INVALID;
    if (!strcmp(mods[i].name, "main")) has_main = true;
    rc = store_code_put_module(txn, u->id, "default", esc, mods[i].source, mods[i].len, mods[i].binary);
    if (rc != STORE_OK) return rc;
  }
  if (!has_main && (rc = store_code_put_module(txn, u->id, "default", "main", "", 0, false)) != STORE_OK) return rc;
  if ((rc = store_code_set_stamp(txn, u->id, (uint64_t)now)) != STORE_OK) return rc;
  if ((rc = store_memory_put(txn, u->id, "{}", 2)) != STORE_OK) return rc;
  store_cpu c = {u->cpu_limit, SIM_BUCKET_START, 0, 0};
  if ((rc = store_cpu_put(txn, u->id, &c)) != STORE_OK) return rc;
  /* A room and Spawn1 in the world, unless players choose with /api/game/place-spawn. */
  if (s->world && s->cfg.auto_spawn) {
    char room[16];
    int w = srv_world_join(s, txn, u->id, u->username, NULL, 0, 0, NULL, room);
    if (w == SIM_OK)
      srv_log("world: %s placed in %s", u->username, room);
    else if (w == SIM_NOROOM)
      srv_log("world: no free room for %s (isoworld-admin world generate makes more)", u->username);
    else
      return w == SIM_NOMEM ? STORE_NOMEM : STORE_INVALID;
  }
  return STORE_OK;
}

/* ------------------------------------------------------------------ schema-1 users */

typedef struct fix_ctx {
  srv *s;
  store_txn *txn;
  uint64_t *ids;
  size_t n, cap;
} fix_ctx;

static int note_user(const store_user *u, void *ud) {
  fix_ctx *f = ud;
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    uint64_t *p = realloc(f->ids, cap * sizeof *p);
    if (!p) return STORE_NOMEM;
    f->ids = p;
    f->cap = cap;
  }
  f->ids[f->n++] = u->id;
  return 0;
}

typedef struct name_list {
  char names[SRV_BRANCHES_MAX * 2][STORE_BRANCH_MAX];
  size_t n;
} name_list;

static int note_branch(const char *branch, void *ud) {
  name_list *l = ud;
  if (l->n < sizeof l->names / sizeof l->names[0]) snprintf(l->names[l->n++], STORE_BRANCH_MAX, "%s", branch);
  return 0;
}

int srv_players_fixup(srv *s, store_txn *txn) {
  fix_ctx f = {s, txn, NULL, 0, 0};
  int rc = store_user_iter(txn, note_user, &f);
  for (size_t i = 0; rc == STORE_OK && i < f.n; i++) {
    size_t nb = 0;
    if ((rc = store_branch_count(txn, f.ids[i], &nb)) != STORE_OK || nb > 0) continue;
    store_user u;
    if ((rc = store_user_get(txn, f.ids[i], &u)) != STORE_OK) break;
    name_list *l = calloc(1, sizeof *l);
    if (!l) {
      rc = STORE_NOMEM;
      break;
    }
    rc = store_code_iter_branches(txn, u.id, note_branch, l);
    if (rc == STORE_OK && l->n == 0) {
      snprintf(l->names[0], STORE_BRANCH_MAX, "default");
      l->n = 1;
      rc = store_code_put_module(txn, u.id, "default", "main", "", 0, false);
    }
    if (rc == STORE_OK && !u.active_branch[0]) {
      snprintf(u.active_branch, sizeof u.active_branch, "%s", l->names[0]);
      rc = store_user_put(txn, &u);
    }
    for (size_t k = 0; rc == STORE_OK && k < l->n; k++) {
      store_branch b = {.timestamp_ms = u.created_ms ? u.created_ms : srv_now_ms()};
      snprintf(b.name, sizeof b.name, "%s", l->names[k]);
      if (!strcmp(b.name, u.active_branch)) b.flags = STORE_BRANCH_ACTIVE_WORLD | STORE_BRANCH_ACTIVE_SIM;
      rc = store_branch_put(txn, u.id, &b);
    }
    free(l);
    if (rc == STORE_OK) srv_log("user %s: branch records created", u.username);
  }
  free(f.ids);
  return rc;
}
