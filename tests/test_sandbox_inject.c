/*
 * test_sandbox_inject.c — the inject library: constants and plain values (numbers,
 * strings, booleans, null, nested objects, arrays, bytes) appear as globals, copied into
 * every new global (a VM's changes never reach the host's value, another VM, or its own
 * next global), deeply frozen and read-only on request.
 */
#include "test_sandbox_util.h"

static sbx_library *make(bool freeze) {
  static const unsigned char raw[] = {1, 2, 3};
  sbx_value list[3] = {sbx_number(1), sbx_string("two"), sbx_null()};
  sbx_value inner[1] = {sbx_member("depth", sbx_number(2))};
  sbx_value cfg[3] = {sbx_member("retries", sbx_number(3)), sbx_member("nested", sbx_object(inner, 1)),
                      sbx_member("list", sbx_array(list, 3))};
  sbx_value values[5] = {sbx_member("API_URL", sbx_string("https://example.com")),
                         sbx_member("MAX_ITEMS", sbx_number(1000)), sbx_member("config", sbx_object(cfg, 3)),
                         sbx_member("blob", sbx_bytes(raw, 3)), sbx_member("flag", sbx_bool(true))};
  sbx_value obj = sbx_object(values, 5);
  sbx_library *lib;
  assert_int_equal(sbx_inject_library_new(&obj, freeze, &lib), SBX_OK);
  return lib; /* the host's values above are gone now: the library holds a copy */
}

static const char CHECK[] =
    "return {\n"
    "  read: () => [API_URL, MAX_ITEMS, config.retries, config.nested.depth, config.list, flag,\n"
    "               new Uint8Array(blob)[2], typeof API_URL],\n"
    "  mutate: () => { 'use strict'; const r = [];\n"
    "    for (const f of [() => { config.retries = 9; }, () => { config.nested.depth = 9; }, () => { "
    "config.list.push(4); },\n"
    "                     () => { MAX_ITEMS = 1; }, () => { delete globalThis.API_URL; }])\n"
    "      try { f(); r.push('ok'); } catch (e) { r.push(e.name); }\n"
    "    return [r, config.retries, config.nested.depth, MAX_ITEMS, Object.isFrozen(config.nested), typeof API_URL]; "
    "},\n"
    "};\n";

static void test_sandbox_inject_frozen_values(void **state) {
  (void)state;
  sbx_library *inj = make(true);
  const sbx_library *libs[] = {inj};
  sbx_vm_options o = sbt_opts();
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 1, &o, &vm, NULL), SBX_OK);
  sbt_run_ok(vm, CHECK);
  sbt_call_json(vm, "read", "[\"https://example.com\",1000,3,2,[1,\"two\",null],true,3,\"string\"]");
  sbt_call_json(vm, "mutate",
                "[[\"TypeError\",\"TypeError\",\"TypeError\",\"TypeError\",\"TypeError\"],3,2,1000,true,\"string\"]");
  sbx_vm_free(vm);
  sbx_library_free(inj);
}

static void test_sandbox_inject_copies_not_frozen(void **state) {
  (void)state;
  sbx_library *inj = make(false);
  const sbx_library *libs[] = {inj};
  sbx_runtime *rt;
  assert_int_equal(sbx_runtime_new_libs(libs, 1, &rt, NULL), SBX_OK);
  sbx_vm_options o = sbt_opts();
  sbx_vm *a, *b;
  assert_int_equal(sbx_vm_new(rt, &o, &a), SBX_OK);
  assert_int_equal(sbx_vm_new(rt, &o, &b), SBX_OK);
  sbt_run_ok(a, CHECK);
  sbt_call_json(a, "mutate", "[[\"ok\",\"ok\",\"ok\",\"ok\",\"ok\"],9,9,1,false,\"undefined\"]");
  /* another vm, and a fresh global of the same vm, see the original values */
  sbt_run_ok(b, CHECK);
  sbt_call_json(b, "read", "[\"https://example.com\",1000,3,2,[1,\"two\",null],true,3,\"string\"]");
  sbx_vm_reset(a);
  sbt_run_ok(a, CHECK);
  sbt_call_json(a, "read", "[\"https://example.com\",1000,3,2,[1,\"two\",null],true,3,\"string\"]");
  sbx_vm_free(a);
  sbx_vm_free(b);
  sbx_runtime_free(rt);
  sbx_library_free(inj);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_inject_frozen_values),
      cmocka_unit_test(test_sandbox_inject_copies_not_frozen),
  };
  return cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
}
