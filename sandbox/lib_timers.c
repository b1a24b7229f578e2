/*
 * lib_timers.c — the timers library: setTimeout, setInterval, clearTimeout,
 * clearInterval (sandbox/js/timers.js), at most max_timers live per vm (default 100; one
 * more throws a RangeError). Timers live in the VM; the host learns only the earliest
 * due time (the io slot SBX__IO_TIMER), so a vm without timers costs one comparison per
 * run. Due timers fire in the drain of whatever run comes next (a tick, a call, or
 * sbx_vm_run_pending, which sleeps until the earliest one is due), inside that run's CPU
 * budget; their exceptions are reported (console error line, on_error) and do not stop
 * the other timers. A delay of 0 (or not a number) makes a timeout due at once: it fires
 * at the next drain point, in a tick before the tick ends; an interval waits at least
 * 1 ms, rescheduled from the time its callback starts.
 */
#include "internal.h"

#include <stdlib.h>

typedef struct timers_lib {
  sbx_library lib; /* first */
  sbx_value *config;
} timers_lib;

static void timers_free(sbx_library *lib) {
  timers_lib *l = (timers_lib *)lib;
  sbx_value_free(l->config);
  free(l);
}

int sbx_timers_library_new(const sbx_timers_options *o, sbx_library **out) {
  *out = NULL;
  timers_lib *l = calloc(1, sizeof *l);
  if (!l) return SBX_NOMEM;
  size_t max = o && o->max_timers ? o->max_timers : 100;
  sbx_value m = sbx_member("max", sbx_number((double)max));
  sbx_value cfg = sbx_object(&m, 1);
  l->config = sbx_value_dup(&cfg);
  if (!l->config) {
    free(l);
    return SBX_NOMEM;
  }
  l->lib.name = "timers";
  l->lib.js = sbx__js_timers;
  l->lib.config = l->config;
  l->lib.free = timers_free;
  *out = &l->lib;
  return SBX_OK;
}
