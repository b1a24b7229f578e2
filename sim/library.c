/*
 * library.c — a game's player API as a sandbox library (sim.h, "the player API in the
 * sandbox").
 *
 * The library is a group: one classic script per sim_game.js_sources entry, then the glue
 * (library.js), whose host functions are
 *   begin()        [user id, username, world size, view count] of this run, or undefined
 *                  when the run has no world data (a vm ticked without a world)
 *   view(i)        the text of the i-th visible room's view: a string over the shared blob
 *   intents(text)  the run's intents, kept in the vm's state until the server takes them
 *   <the game's host functions>, arguments copied to sim_arg, results back as a string,
 *                  a number or undefined
 * Everything player code passes is checked here; the game's functions check the rest.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

extern const char sim_js_library[];

#define SIM_HOST_ARGS_MAX 16

typedef struct sim_lib {
  sbx_library group; /* first: what sim_library_new returns */
  sbx_library glue;
  sbx_library *scripts;
  const sbx_library **members;
  sbx_host_fn_def *fns;
  char **script_names;
  size_t n_scripts;
  const sim_game *game;
} sim_lib;

/* Per vm: the intents of its last run. */
typedef struct lib_state {
  char *intents;
  size_t len;
} lib_state;

static const sim_run *run_of(sbx_call *c, const sbx_lib_data **d) {
  *d = sbx_call_data(c);
  return *d ? (const sim_run *)(*d)->ptr : NULL;
}

static void fn_begin(sbx_call *c, const sbx_value *a, size_t n) {
  (void)a, (void)n;
  if (sbx_call_expired(c)) return;
  const sbx_lib_data *d;
  const sim_run *r = run_of(c, &d);
  if (!r || !r->world) return; /* undefined: no world this run */
  char id[24];
  snprintf(id, sizeof id, "%llu", (unsigned long long)r->player);
  sbx_value items[4] = {sbx_string(id), sbx_string(r->username ? r->username : ""),
                        sbx_number((double)r->world_size), sbx_number((double)d->n_blobs)};
  sbx_value arr = sbx_array(items, 4);
  sbx_call_return(c, &arr);
}

static void fn_view(sbx_call *c, const sbx_value *a, size_t n) {
  const sbx_lib_data *d;
  if (!run_of(c, &d) || n < 1) return;
  double i = sbx_value_number(&a[0]);
  if (!(i >= 0) || i >= (double)d->n_blobs || i != (double)(size_t)i) return;
  sbx_call_return_blob(c, d->blobs[(size_t)i], true);
}

static void fn_intents(sbx_call *c, const sbx_value *a, size_t n) {
  lib_state *st = sbx_call_state(c);
  if (!st || n < 1 || a[0].type != SBX_VAL_STRING) return;
  if (a[0].len > SIM_INTENTS_MAX_BYTES) {
    sbx_call_throw(c, "intents: %zu bytes, at most %u a tick", a[0].len, (unsigned)SIM_INTENTS_MAX_BYTES);
    return;
  }
  char *copy = malloc(a[0].len + 1);
  if (!copy) return;
  memcpy(copy, a[0].u.string, a[0].len);
  copy[a[0].len] = '\0';
  free(st->intents);
  st->intents = copy;
  st->len = a[0].len;
}

/* A game's host function: fn_ud is its sim_host_fn. */
static void fn_game(sbx_call *c, const sbx_value *a, size_t n) {
  /* A run past its deadline touches the world — and the run data the server lent it — no
   * more: a run the pool gave up on may wake up ticks later, when both have changed. */
  if (sbx_call_expired(c)) return;
  const sbx_lib_data *d;
  const sim_run *r = run_of(c, &d);
  sim_host_fn fn = (sim_host_fn)(uintptr_t)sbx_call_fn_ud(c);
  if (!r || !r->world || !fn) return;
  sim_arg args[SIM_HOST_ARGS_MAX];
  size_t k = n < SIM_HOST_ARGS_MAX ? n : SIM_HOST_ARGS_MAX;
  for (size_t i = 0; i < k; i++) {
    memset(&args[i], 0, sizeof args[i]);
    if (a[i].type == SBX_VAL_NUMBER) {
      args[i].kind = SIM_ARG_NUMBER;
      args[i].num = a[i].u.number;
    } else if (a[i].type == SBX_VAL_STRING) {
      args[i].kind = SIM_ARG_STRING;
      args[i].str = a[i].u.string;
      args[i].len = a[i].len;
    }
  }
  sim_host_ctx ctx = {r->world, r->player, sbx_call_deadline(c)};
  sim_buf out;
  sim_buf_init(&out);
  double num = 0;
  int rc = fn(&ctx, args, k, &out, &num);
  if (rc == 1)
    sbx_call_return_string(c, out.data ? out.data : "", out.len);
  else if (rc == 0)
    sbx_call_return_number(c, num);
  sim_buf_release(&out);
}

static int lib_attach(const sbx_library *lib, sbx_vm *vm, void **state) {
  (void)lib, (void)vm;
  *state = calloc(1, sizeof(lib_state));
  return *state ? 0 : -1;
}

static void lib_dispose(const sbx_library *lib, sbx_vm *vm, void *state) {
  (void)lib, (void)vm;
  lib_state *st = state;
  if (st) free(st->intents);
  free(st);
}

static void lib_run_begin(const sbx_library *lib, sbx_vm *vm, void *state, const sbx_lib_data *data) {
  (void)lib, (void)vm, (void)data;
  lib_state *st = state;
  free(st->intents); /* a run's intents are its own: none left from a run not taken */
  st->intents = NULL;
  st->len = 0;
}

static void lib_free(sbx_library *group) {
  sim_lib *l = (sim_lib *)group;
  for (size_t i = 0; l->script_names && i < l->n_scripts; i++) free(l->script_names[i]);
  free(l->script_names);
  free(l->scripts);
  free(l->members);
  free(l->fns);
  free(l);
}

int sim_library_new(const sim_game *g, sbx_library **out) {
  *out = NULL;
  if (!g || (g->n_js_sources && !g->js_sources)) return SIM_INVALID;
  sim_lib *l = calloc(1, sizeof *l);
  if (!l) return SIM_NOMEM;
  l->game = g;
  l->n_scripts = g->n_js_sources;
  l->scripts = calloc(l->n_scripts + 1, sizeof *l->scripts);
  l->script_names = calloc(l->n_scripts + 1, sizeof *l->script_names);
  l->members = calloc(l->n_scripts + 1, sizeof *l->members);
  l->fns = calloc(3 + g->n_host_fns, sizeof *l->fns);
  if (!l->scripts || !l->script_names || !l->members || !l->fns) goto nomem;
  for (size_t i = 0; i < l->n_scripts; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s/%zu", g->name ? g->name : "game", i);
    if (!(l->script_names[i] = strdup(name))) goto nomem;
    l->scripts[i] = (sbx_library){.name = l->script_names[i], .js = g->js_sources[i], .flags = SBX_LIB_SCRIPT};
    l->members[i] = &l->scripts[i];
  }
  size_t nf = 0;
  l->fns[nf++] = (sbx_host_fn_def){"begin", fn_begin, 0, NULL};
  l->fns[nf++] = (sbx_host_fn_def){"view", fn_view, 0, NULL};
  l->fns[nf++] = (sbx_host_fn_def){"intents", fn_intents, 0, NULL};
  for (size_t i = 0; i < g->n_host_fns; i++) {
    const sim_host_fn_def *h = &g->host_fns[i];
    if (!h->name || !h->fn || !strcmp(h->name, "begin") || !strcmp(h->name, "view") || !strcmp(h->name, "intents")) {
      lib_free(&l->group);
      return SIM_INVALID;
    }
    l->fns[nf++] = (sbx_host_fn_def){h->name, fn_game, 0, (void *)(uintptr_t)h->fn};
  }
  l->glue = (sbx_library){.name = "world",
                          .js = sim_js_library,
                          .fns = l->fns,
                          .n_fns = nf,
                          .attach = lib_attach,
                          .run_begin = lib_run_begin,
                          .dispose = lib_dispose};
  l->members[l->n_scripts] = &l->glue;
  l->group = (sbx_library){.name = "game", .group = l->members, .n_group = l->n_scripts + 1, .free = lib_free};
  *out = &l->group;
  return SIM_OK;
nomem:
  lib_free(&l->group);
  return SIM_NOMEM;
}

void sim_library_run_data(const sbx_library *lib, const sim_run *run, sbx_blob *const *views, size_t n_views,
                          sbx_lib_data *out) {
  const sim_lib *l = (const sim_lib *)lib;
  *out = (sbx_lib_data){&l->glue, (void *)run, views, n_views};
}

char *sim_library_take_intents(const sbx_library *lib, sbx_vm *vm, size_t *len) {
  const sim_lib *l = (const sim_lib *)lib;
  lib_state *st = sbx_vm_library_state(vm, &l->glue);
  *len = 0;
  if (!st || !st->intents) return NULL;
  char *t = st->intents;
  *len = st->len;
  st->intents = NULL;
  st->len = 0;
  return t;
}
