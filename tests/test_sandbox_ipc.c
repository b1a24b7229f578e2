/*
 * test_sandbox_ipc.c — the IPC library, both ways: host functions the VM calls (each a
 * promise; values copied both ways; host errors become rejections; completions from
 * other threads; refusal once the VM is being disposed) and functions the VM exports
 * that the host calls (arguments, async results, exceptions, per-call timeouts, queued
 * calls, exposeCallables).
 */
#include "test_sandbox_util.h"

static int g_other_calls;

static void h_add(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_call_return_number(c, sbx_value_number(n > 0 ? &a[0] : NULL) + sbx_value_number(n > 1 ? &a[1] : NULL));
}

static void h_echo(sbx_call *c, const sbx_value *a, size_t n) {
  if (n > 0) sbx_call_return(c, &a[0]);
}

/* Describes what the host received: type names, keys and byte lengths. */
static void describe(const sbx_value *v, char *buf, size_t cap) {
  static const char *names[] = {"undefined", "null", "bool", "number", "string", "bytes", "array", "object"};
  size_t l = strlen(buf);
  snprintf(buf + l, cap - l, "%s%s%s", v->key ? v->key : "", v->key ? "=" : "", names[v->type]);
  l = strlen(buf);
  if (v->type == SBX_VAL_BYTES) snprintf(buf + l, cap - l, "(%zu)", v->len);
  if (v->type == SBX_VAL_ARRAY || v->type == SBX_VAL_OBJECT) {
    snprintf(buf + strlen(buf), cap - strlen(buf), "[");
    for (size_t i = 0; i < v->len; i++) {
      if (i) snprintf(buf + strlen(buf), cap - strlen(buf), ",");
      describe(&v->u.items[i], buf, cap);
    }
    snprintf(buf + strlen(buf), cap - strlen(buf), "]");
  }
}

static void h_describe(sbx_call *c, const sbx_value *a, size_t n) {
  char buf[1024] = "";
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(buf, " ");
    describe(&a[i], buf, sizeof buf);
  }
  sbx_call_return_string(c, buf, strlen(buf));
}

static void h_fail(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_call_throw(c, "boom %d", (int)sbx_value_number(n > 0 ? &a[0] : NULL));
}

/* Deferred: completed by a thread after a short sleep. */
typedef struct later {
  sbx_async *a;
  double x;
  bool reject;
  int ms;
} later;

static void *complete_later(void *arg) {
  later *l = arg;
  usleep((useconds_t)l->ms * 1000);
  if (l->reject)
    sbx_async_reject(l->a, "late failure");
  else {
    sbx_value v = sbx_number(l->x * 10);
    sbx_async_resolve(l->a, &v);
  }
  free(l);
  return NULL;
}

static void h_slow(sbx_call *c, const sbx_value *a, size_t n) {
  later *l = calloc(1, sizeof *l);
  l->a = sbx_call_defer(c);
  l->x = sbx_value_number(n > 0 ? &a[0] : NULL);
  l->reject = n > 1 && sbx_value_bool(&a[1]);
  l->ms = 30;
  assert_non_null(l->a);
  pthread_t t;
  pthread_create(&t, NULL, complete_later, l);
  pthread_detach(t);
}

/* Deferred and never completed by itself: the test completes it later. */
static sbx_async *g_parked;
static void h_park(sbx_call *c, const sbx_value *a, size_t n) {
  g_parked = sbx_call_defer(c);
}

static void h_dispose_me(sbx_call *c, const sbx_value *a, size_t n) {
  sbx_vm_dispose(sbx_call_vm(c));
}
static void h_other(sbx_call *c, const sbx_value *a, size_t n) {
  g_other_calls++;
}

static const sbx_host_fn_def g_fns[] = {
    {"add", h_add, 0, NULL},
    {"echo", h_echo, 0, NULL},
    {"describe", h_describe, 0, NULL},
    {"fail", h_fail, 0, NULL},
    {"slow", h_slow, 0, NULL},
    {"park", h_park, 0, NULL},
    {"disposeMe", h_dispose_me, 0, NULL},
    {"other", h_other, 0, NULL},
};

static sbx_vm *new_vm(const char *object) {
  sbx_library *ipc;
  sbx_ipc_options o = {g_fns, sizeof g_fns / sizeof g_fns[0], object};
  assert_int_equal(sbx_ipc_library_new(&o, &ipc), SBX_OK);
  const sbx_library *libs[] = {sbt_console(), ipc};
  sbx_vm_options vo = sbt_opts();
  sbx_vm *vm = NULL;
  char *err = NULL;
  int rc = sbx_vm_create(libs, 2, &vo, &vm, &err);
  if (rc != SBX_OK) fprintf(stderr, "sbx_vm_create: %s\n", err ? err : "?");
  free(err);
  assert_int_equal(rc, SBX_OK);
  /* the runtime copied what it needs into its snapshot, but the library itself must live
   * as long as the vm: keep it in the vm's userdata and free it after the vm */
  sbx_vm_set_userdata(vm, ipc);
  return vm;
}

static void free_vm(sbx_vm *vm) {
  sbx_library *ipc = sbx_vm_userdata(vm);
  sbx_vm_free(vm);
  sbx_library_free(ipc);
  sbt_lines_clear(NULL);
}

/* ------------------------------------------------------------------ isolate -> host */

static void test_sandbox_ipc_host_function_returns_promise(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL);
  sbt_run_ok(vm,
             "async function main() {\n"
             "  const p = add(2, 3);\n"
             "  return [p instanceof Promise, await p, typeof add, Object.keys(globalThis).includes('add')];\n"
             "}\n"
             "return { main };\n");
  sbt_call_json(vm, "main", "[true,5,\"function\",false]");
  free_vm(vm);
}

static void test_sandbox_ipc_values_copied_both_ways(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL);
  sbt_run_ok(
      vm,
      "const v = { n: 1.5, s: 'héllo', t: true, z: null, u: undefined, f() {},\n"
      "            a: [1, 'b', null, [2]], o: { deep: { x: 2 } }, b: new Uint8Array([1, 2, 255]),\n"
      "            d: new Date(0) };\n"
      "return {\n"
      "  async seen() { return await describe(v); },\n"
      "  async back() {\n"
      "    const r = await echo(v);\n"
      "    return [r !== v, r.n, r.s, r.t, r.z, 'u' in r, r.u, 'f' in r, r.a, r.o.deep.x,\n"
      "            r.b instanceof ArrayBuffer, Array.from(new Uint8Array(r.b)), r.d];\n"
      "  },\n"
      "  async bigint() { try { await echo(1n); return 'copied'; } catch (e) { return e.name + ': ' + e.message; } },\n"
      "  async cycle() { const c = {}; c.c = c; try { await echo(c); return 'copied'; } catch (e) { return e.message; "
      "} },\n"
      "};\n");
  sbt_call_json(vm, "seen",
                "\"object[n=number,s=string,t=bool,z=null,u=undefined,a=array[number,string,null,array[number]],"
                "o=object[deep=object[x=number]],b=bytes(3),d=string]\"");
  sbt_call_json(vm, "back",
                "[true,1.5,\"héllo\",true,null,true,null,false,[1,\"b\",null,[2]],2,true,[1,2,255],"
                "\"1970-01-01T00:00:00.000Z\"]");
  sbx_result r;
  sbx_vm_call(vm, "bigint", NULL, 0, 5000 * g_scale, &r);
  sbt_expect_status(&r, SBX_OK);
  sbt_expect_json(&r, "\"TypeError: echo(): an argument cannot be copied to the host: a BigInt cannot be copied\"");
  sbx_result_release(&r);
  sbx_vm_call(vm, "cycle", NULL, 0, 5000 * g_scale, &r);
  sbt_expect_status(&r, SBX_OK);
  assert_non_null(strstr(r.value->u.string, "nested too deep"));
  sbx_result_release(&r);
  free_vm(vm);
}

static void test_sandbox_ipc_host_error_rejects(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL);
  sbt_run_ok(vm,
             "return { async main() {\n"
             "  try { await fail(42); return 'no'; }\n"
             "  catch (e) { return [e instanceof Error, e.message]; }\n"
             "} };\n");
  sbt_call_json(vm, "main", "[true,\"boom 42\"]");
  free_vm(vm);
}

static void test_sandbox_ipc_completion_from_another_thread(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL);
  sbt_run_ok(vm,
             "return {\n"
             "  async ok(x) { return (await slow(x)) + 1; },\n"
             "  async bad() { try { await slow(1, true); } catch (e) { return e.message; } },\n"
             "  async both() { return await Promise.all([slow(1), slow(2), add(1, 1)]); },\n"
             "};\n");
  sbx_value arg = sbx_number(4);
  sbx_result r;
  sbx_vm_call(vm, "ok", &arg, 1, 5000 * g_scale, &r);
  sbt_expect_status(&r, SBX_OK);
  sbt_expect_json(&r, "41");
  sbx_result_release(&r);
  sbt_call_json(vm, "bad", "\"late failure\"");
  sbt_call_json(vm, "both", "[10,20,2]");
  /* grouped under one object */
  free_vm(vm);
  vm = new_vm("host");
  sbt_run_ok(vm,
             "return { async main() { return [typeof add, typeof host.add, await host.add(1, 2), "
             "Object.isFrozen(host)]; } };");
  sbt_call_json(vm, "main", "[\"undefined\",\"function\",3,true]");
  free_vm(vm);
}

/* A completion arriving after the VM was freed is dropped; calls made by a VM being
 * disposed are refused: the host function is not called, the run ends DISPOSED, and
 * everything later on that vm returns SBX_DISPOSED. */
static void test_sandbox_ipc_refused_while_disposing(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL);
  sbt_run_ok(vm,
             "return { async park() { return await park(); }, now() { disposeMe(); other(); other(); return 1; } };");
  sbx_value none;
  (void)none;
  /* a call awaiting a host function, given up on after its timeout */
  sbx_result r;
  g_parked = NULL;
  sbx_vm_call(vm, "park", NULL, 0, 100 * g_scale, &r);
  sbt_expect_status(&r, SBX_TIMEOUT);
  sbt_expect_error(&r, "timed out");
  sbx_result_release(&r);
  assert_non_null(g_parked);
  assert_true(sbx_vm_has_pending(vm));
  /* the host disposes the VM from inside one of its calls */
  g_other_calls = 0;
  sbx_vm_call(vm, "now", NULL, 0, 5000 * g_scale, &r);
  sbt_expect_status(&r, SBX_DISPOSED);
  sbx_result_release(&r);
  assert_int_equal(g_other_calls, 0);
  assert_true(sbx_vm_is_disposed(vm));
  assert_false(sbx_vm_has_pending(vm));
  assert_int_equal(sbx_vm_call(vm, "park", NULL, 0, 100, &r), SBX_DISPOSED);
  sbx_result_release(&r);
  assert_int_equal(sbx_vm_call_async(vm, "park", NULL, 0, NULL, NULL), SBX_DISPOSED);
  assert_int_equal(sbx_vm_run_pending(vm, 0, &r), SBX_DISPOSED);
  sbx_result_release(&r);
  free_vm(vm);
  /* the parked completion comes after the vm is gone: dropped, nothing crashes or leaks */
  sbx_value v = sbx_string("too late");
  sbx_async_resolve(g_parked, &v);
  g_parked = NULL;
}

/* ------------------------------------------------------------------ host -> isolate */

static void test_sandbox_ipc_call_arguments_and_results(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL);
  sbt_run_ok(vm,
             "return {\n"
             "  sum(a, b) { return { sum: a + b, args: arguments.length }; },\n"
             "  async later(s) { await null; await null; return s.toUpperCase(); },\n"
             "  bytes(b) { return [b instanceof ArrayBuffer, b.byteLength, new Uint8Array(b)[1]]; },\n"
             "  throws() { throw new TypeError('bad input'); },\n"
             "  async rejects() { await null; throw new Error('async bad'); },\n"
             "  unclonable() { return () => 1; },\n"
             "};\n");
  sbx_value args[2] = {sbx_number(1), sbx_number(2)};
  sbx_result r;
  assert_int_equal(sbx_vm_call(vm, "sum", args, 2, 5000 * g_scale, &r), SBX_OK);
  sbt_expect_json(&r, "{\"sum\":3,\"args\":2}");
  sbx_result_release(&r);
  sbx_value s = sbx_string("shout");
  assert_int_equal(sbx_vm_call(vm, "later", &s, 1, 5000 * g_scale, &r), SBX_OK);
  sbt_expect_json(&r, "\"SHOUT\"");
  sbx_result_release(&r);
  unsigned char raw[3] = {7, 8, 9};
  sbx_value b = sbx_bytes(raw, 3);
  assert_int_equal(sbx_vm_call(vm, "bytes", &b, 1, 5000 * g_scale, &r), SBX_OK);
  sbt_expect_json(&r, "[true,3,8]");
  sbx_result_release(&r);
  assert_int_equal(sbx_vm_call(vm, "throws", NULL, 0, 5000 * g_scale, &r), SBX_EXCEPTION);
  sbt_expect_error(&r, "TypeError: bad input");
  sbt_expect_error(&r, "main:5");
  assert_null(strstr(r.error, "isoworld:"));
  sbx_result_release(&r);
  assert_int_equal(sbx_vm_call(vm, "rejects", NULL, 0, 5000 * g_scale, &r), SBX_EXCEPTION);
  sbt_expect_error(&r, "Error: async bad");
  sbx_result_release(&r);
  assert_int_equal(sbx_vm_call(vm, "nothere", NULL, 0, 5000 * g_scale, &r), SBX_EXCEPTION);
  sbt_expect_error(&r, "'nothere' is not a function the VM exports");
  sbx_result_release(&r);
  assert_int_equal(sbx_vm_call(vm, "unclonable", NULL, 0, 5000 * g_scale, &r), SBX_OK);
  sbt_expect_json(&r, "null"); /* a function copies as undefined */
  assert_int_equal(r.value->type, SBX_VAL_UNDEFINED);
  sbx_result_release(&r);
  free_vm(vm);
}

/* A call that runs too long is terminated at its timeout; one whose promise never settles
 * returns at its timeout; the VM goes on. */
static void test_sandbox_ipc_call_timeout(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL);
  sbt_run_ok(vm,
             "let n = 0;\n"
             "return {\n"
             "  spin() { n++; for (;;) {} },\n"
             "  never() { n++; return new Promise(() => {}); },\n"
             "  count() { return n; },\n"
             "};\n");
  sbx_result r;
  double t0 = sbt_now_ms();
  assert_int_equal(sbx_vm_call(vm, "spin", NULL, 0, 150 * g_scale, &r), SBX_TIMEOUT);
  double took = sbt_now_ms() - t0;
  sbt_expect_error(&r, "the call of 'spin' timed out");
  assert_true(took >= 140 * g_scale && took < 2000 * g_scale);
  sbx_result_release(&r);
  t0 = sbt_now_ms();
  assert_int_equal(sbx_vm_call(vm, "never", NULL, 0, 100 * g_scale, &r), SBX_TIMEOUT);
  took = sbt_now_ms() - t0;
  assert_true(took >= 95 * g_scale && took < 2000 * g_scale);
  sbx_result_release(&r);
  sbt_call_json(vm, "count", "2");
  free_vm(vm);
}

typedef struct done_rec {
  int calls, status;
  char *json, *error;
} done_rec;

static void on_done(int status, const sbx_value *value, const char *error, void *ud) {
  done_rec *d = ud;
  d->calls++;
  d->status = status;
  d->json = value ? sbx_value_to_json(value) : NULL;
  d->error = error ? strdup(error) : NULL;
}

static void *queue_from_thread(void *arg) {
  sbx_vm *vm = arg;
  static done_rec d1;
  sbx_value a = sbx_number(20);
  sbx_vm_call_async(vm, "twice", &a, 1, on_done, &d1);
  return &d1;
}

/* Calls queued with sbx_vm_call_async (from another thread) run at the VM's next run;
 * exposeCallables adds callables; done fires once per call, DISPOSED ones at free. */
static void test_sandbox_ipc_call_async_and_expose(void **state) {
  (void)state;
  sbx_vm *vm = new_vm(NULL);
  sbt_run_ok(vm, "exposeCallables({ twice: async (x) => { await add(0, 0); return x * 2; }, notfn: 3 });");
  pthread_t t;
  pthread_create(&t, NULL, queue_from_thread, vm);
  void *ret;
  pthread_join(t, &ret);
  done_rec *d1 = ret;
  assert_true(sbx_vm_has_pending(vm));
  assert_int_equal(d1->calls, 0);
  sbx_result r;
  assert_int_equal(sbx_vm_run_pending(vm, 1000 * g_scale, &r), SBX_OK);
  sbx_result_release(&r);
  assert_int_equal(d1->calls, 1);
  assert_int_equal(d1->status, SBX_OK);
  assert_string_equal(d1->json, "40");
  free(d1->json);
  assert_false(sbx_vm_has_pending(vm));
  /* queued but never run: done(DISPOSED) at free */
  done_rec d2 = {0};
  assert_int_equal(sbx_vm_call_async(vm, "twice", NULL, 0, on_done, &d2), SBX_OK);
  free_vm(vm);
  assert_int_equal(d2.calls, 1);
  assert_int_equal(d2.status, SBX_DISPOSED);
  free(d2.error);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_ipc_host_function_returns_promise),
      cmocka_unit_test(test_sandbox_ipc_values_copied_both_ways),
      cmocka_unit_test(test_sandbox_ipc_host_error_rejects),
      cmocka_unit_test(test_sandbox_ipc_completion_from_another_thread),
      cmocka_unit_test(test_sandbox_ipc_refused_while_disposing),
      cmocka_unit_test(test_sandbox_ipc_call_arguments_and_results),
      cmocka_unit_test(test_sandbox_ipc_call_timeout),
      cmocka_unit_test(test_sandbox_ipc_call_async_and_expose),
  };
  int rc = cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
  sbx_library_free(g_console);
  return rc;
}
