/*
 * lib_inject.c — the inject library: constants and plain values (numbers, strings,
 * booleans, null, nested objects and arrays, bytes) given by the host once, copied into
 * every new global as globals (sandbox/js/inject.js), deeply frozen and read-only when
 * asked. The values travel as the library's config: a copy is made at creation, so the
 * host's value may go away at once.
 */
#include "internal.h"

#include <stdlib.h>

typedef struct inject_lib {
  sbx_library lib;   /* first */
  sbx_value *config; /* {values, freeze} (one allocation) */
} inject_lib;

static void inject_free(sbx_library *lib) {
  inject_lib *l = (inject_lib *)lib;
  sbx_value_free(l->config);
  free(l);
}

int sbx_inject_library_new(const sbx_value *values, bool freeze, sbx_library **out) {
  *out = NULL;
  if (!values || values->type != SBX_VAL_OBJECT) return SBX_INVALID;
  inject_lib *l = calloc(1, sizeof *l);
  if (!l) return SBX_NOMEM;
  sbx_value members[2] = {sbx_member("values", *values), sbx_member("freeze", sbx_bool(freeze))};
  sbx_value cfg = sbx_object(members, 2);
  l->config = sbx_value_dup(&cfg);
  if (!l->config) {
    free(l);
    return SBX_NOMEM;
  }
  l->lib.name = "inject";
  l->lib.js = sbx__js_inject;
  l->lib.config = l->config;
  l->lib.free = inject_free;
  *out = &l->lib;
  return SBX_OK;
}
