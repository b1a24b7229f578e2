/*
 * lib_console.c — the console library: console.log/info/warn/error/debug/logUnsafe
 * (sandbox/js/console.js) with the host's sink. The sink gets each line as it is written,
 * on the vm's thread: level, UTF-8 text, length. Without a sink, lines go into the run's
 * console buffer — the tick's capped lines (sbx_tick_out.lines: first and last 50 kept,
 * "[Omitted N lines]" between, repeats collapsed, 64 KiB) — which the general API's runs
 * drop. Formatting: arguments are String()-ed and joined with spaces (objects print as
 * [object Object], as on Screeps).
 */
#include "internal.h"

#include <stdlib.h>

typedef struct console_lib {
  sbx_library lib; /* first */
  sbx_console_options opt;
} console_lib;

static int console_attach(const sbx_library *lib, sbx_vm *vm, void **state) {
  const console_lib *c = (const console_lib *)lib;
  vm->sink = c->opt.sink;
  vm->sink_ud = c->opt.ud;
  *state = NULL;
  return 0;
}

static void console_free(sbx_library *lib) {
  free(lib);
}

int sbx_console_library_new(const sbx_console_options *o, sbx_library **out) {
  *out = NULL;
  console_lib *c = calloc(1, sizeof *c);
  if (!c) return SBX_NOMEM;
  if (o) c->opt = *o;
  c->lib.name = "console";
  c->lib.js = sbx__js_console;
  c->lib.attach = console_attach;
  c->lib.free = console_free;
  *out = &c->lib;
  return SBX_OK;
}
