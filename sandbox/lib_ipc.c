/*
 * lib_ipc.c — the IPC library, both directions.
 *
 * Isolate -> host: the host's functions, each an SBX_FN_ASYNC host function, exposed as
 * globals (or under one global object) by sandbox/js/ipc.js. A call copies its arguments
 * out (JSON-compatible values and binary buffers, sbx_value), runs the host function on
 * the vm's thread, and returns a promise that settles with a copy of the result, or
 * rejects with an Error carrying the host's message (sbx_call_throw / sbx_async_reject).
 * A deferred call completed from another thread settles at the vm's next drain. Calls
 * made once the vm is being disposed reject with "the VM is being disposed"; completions
 * that arrive after sbx_vm_free are dropped (the mailbox outlives the vm until the last
 * handle is completed).
 *
 * Host -> isolate: sbx_vm_call / sbx_vm_call_async (vm.c) call what the VM exports:
 * `return {...}` of sbx_vm_run's code, module.exports of the entry, or what the VM
 * passed to exposeCallables({...}) (defined here). Arguments and results are copied the
 * same way; a per-call timeout terminates the call and returns SBX_TIMEOUT.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct ipc_lib {
  sbx_library lib; /* first */
  sbx_host_fn_def *fns;
  size_t n;
  sbx_value *config;
} ipc_lib;

static void ipc_free(sbx_library *lib) {
  ipc_lib *l = (ipc_lib *)lib;
  for (size_t i = 0; i < l->n; i++) free((char *)l->fns[i].name);
  free(l->fns);
  sbx_value_free(l->config);
  free(l);
}

int sbx_ipc_library_new(const sbx_ipc_options *o, sbx_library **out) {
  *out = NULL;
  if (!o || (o->n_fns && !o->fns)) return SBX_INVALID;
  for (size_t i = 0; i < o->n_fns; i++)
    if (!o->fns[i].name || !o->fns[i].fn || !o->fns[i].name[0]) return SBX_INVALID;
  ipc_lib *l = calloc(1, sizeof *l);
  if (!l) return SBX_NOMEM;
  l->fns = calloc(o->n_fns ? o->n_fns : 1, sizeof *l->fns);
  if (!l->fns) goto fail;
  for (size_t i = 0; i < o->n_fns; i++) {
    l->fns[i] = o->fns[i];
    l->fns[i].flags |= SBX_FN_ASYNC;
    l->fns[i].name = strdup(o->fns[i].name);
    if (!l->fns[i].name) goto fail;
    l->n = i + 1;
  }
  if (o->object) {
    sbx_value m = sbx_member("object", sbx_string(o->object));
    sbx_value cfg = sbx_object(&m, 1);
    if (!(l->config = sbx_value_dup(&cfg))) goto fail;
  }
  l->lib.name = "ipc";
  l->lib.js = sbx__js_ipc;
  l->lib.fns = l->fns;
  l->lib.n_fns = o->n_fns;
  l->lib.config = l->config;
  l->lib.free = ipc_free;
  *out = &l->lib;
  return SBX_OK;
fail:
  ipc_free(&l->lib);
  return SBX_NOMEM;
}
