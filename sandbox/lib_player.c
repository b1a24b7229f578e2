/*
 * lib_player.c — the game server's player API as sandbox libraries: guards, console
 * (into the tick's lines), modules (require over sbx_vm_set_code), memory (Memory,
 * RawMemory, segments) and game (Game and the tick), bundled as sbx_player_library().
 * Their JavaScript is sandbox/js/<name>.js; the host functions they need are the shim's
 * (SBX__FN_BUILTIN), because they read the run's tick input directly.
 *
 * Also the generic library helpers: sbx_library_free and groups.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define BUILTIN(name, id) \
  { name, NULL, SBX__FN_BUILTIN, (void *)(uintptr_t)(id) }

static const sbx_library guards_lib = {.name = "guards", .js = sbx__js_guards};

static const sbx__lib_ext console_ext = {.kind = SBX__LIB_CONSOLE};
static const sbx_library player_console_lib = {.name = "console", .js = sbx__js_console, .internal = &console_ext};

static const sbx_host_fn_def modules_fns[] = {BUILTIN("compile", SBX__B_COMPILE)};
static const sbx_library modules_lib = {.name = "modules", .js = sbx__js_modules, .fns = modules_fns, .n_fns = 1};

static const sbx_host_fn_def memory_fns[] = {BUILTIN("memory", SBX__B_MEMORY), BUILTIN("segments", SBX__B_SEGMENTS),
                                             BUILTIN("out", SBX__B_MEMORY_OUT)};
static const sbx_library memory_lib = {.name = "memory", .js = sbx__js_memory, .fns = memory_fns, .n_fns = 3};

static const sbx_host_fn_def game_fns[] = {BUILTIN("cpu", SBX__B_CPU), BUILTIN("heap", SBX__B_HEAP),
                                           BUILTIN("halt", SBX__B_HALT)};
static const sbx_library game_lib = {.name = "game", .js = sbx__js_game, .fns = game_fns, .n_fns = 3};

static const sbx_library *const player_members[] = {&guards_lib, &player_console_lib, &modules_lib, &memory_lib,
                                                    &game_lib};
static const sbx_library player_lib = {.name = "player", .group = player_members, .n_group = 5};

const sbx_library *sbx_player_library(void) {
  return &player_lib;
}
const sbx_library *sbx_guards_library(void) {
  return &guards_lib;
}
const sbx_library *sbx_modules_library(void) {
  return &modules_lib;
}
const sbx_library *sbx_memory_library(void) {
  return &memory_lib;
}
const sbx_library *sbx_game_library(void) {
  return &game_lib;
}

/* ------------------------------------------------------------------ helpers */

void sbx_library_free(sbx_library *lib) {
  if (lib && lib->free) lib->free(lib);
}

typedef struct group_lib {
  sbx_library lib; /* first */
  char *name;
  const sbx_library **members;
} group_lib;

static void group_free(sbx_library *lib) {
  group_lib *g = (group_lib *)lib;
  free(g->name);
  free(g->members);
  free(g);
}

int sbx_library_group_new(const char *name, const sbx_library *const *libs, size_t n, sbx_library **out) {
  *out = NULL;
  if (!libs && n) return SBX_INVALID;
  group_lib *g = calloc(1, sizeof *g);
  if (!g) return SBX_NOMEM;
  g->name = strdup(name ? name : "group");
  g->members = calloc(n ? n : 1, sizeof *g->members);
  if (!g->name || !g->members) {
    group_free(&g->lib);
    return SBX_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    if (!libs[i]) {
      group_free(&g->lib);
      return SBX_INVALID;
    }
    g->members[i] = libs[i];
  }
  g->lib.name = g->name;
  g->lib.group = g->members;
  g->lib.n_group = n;
  g->lib.free = group_free;
  *out = &g->lib;
  return SBX_OK;
}
