/*
 * test_sandbox_crypto.c — the example library (sandbox/lib_crypto.c, libsodium), written
 * with the public library API only: a sync host function (sha256), an async one settled
 * from a host thread (sha256Async), binary results (randomBytes, getRandomValues), and
 * argument checks.
 */
#include "test_sandbox_util.h"

#include "sandbox_crypto.h"

static void test_sandbox_crypto_functions(void **state) {
  (void)state;
  sbx_library *crypto;
  assert_int_equal(sbx_crypto_library_new(&crypto), SBX_OK);
  const sbx_library *libs[] = {crypto};
  sbx_vm_options o = sbt_opts();
  sbx_vm *vm;
  assert_int_equal(sbx_vm_create(libs, 1, &o, &vm, NULL), SBX_OK);
  sbt_run_ok(
      vm,
      "function err(f) { try { f(); return 'no error'; } catch (e) { return e.message; } }\n"
      "return {\n"
      "  hashes: () => [crypto.sha256('abc'), crypto.sha256(new Uint8Array([0x61, 0x62, 0x63])), crypto.sha256('')],\n"
      "  async later() { return [await crypto.sha256Async('abc'), crypto.sha256Async('x') instanceof Promise]; },\n"
      "  random() { const a = crypto.randomBytes(32), b = crypto.randomBytes(32);\n"
      "    const v = crypto.getRandomValues(new Uint32Array(8));\n"
      "    return [a instanceof Uint8Array, a.length, a.some((x, i) => x !== b[i]), v.length, v.some(x => x !== 0),\n"
      "            crypto.randomBytes(0).length]; },\n"
      "  errors: () => [err(() => crypto.sha256(42)), err(() => crypto.randomBytes(-1)), err(() => "
      "crypto.randomBytes(1e6)),\n"
      "                 err(() => crypto.randomBytes(1.5)), err(() => crypto.getRandomValues([1, 2]))],\n"
      "};\n");
  static const char ABC[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  static const char EMPTY[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  char want[400];
  snprintf(want, sizeof want, "[\"%s\",\"%s\",\"%s\"]", ABC, ABC, EMPTY);
  sbt_call_json(vm, "hashes", want);
  snprintf(want, sizeof want, "[\"%s\",true]", ABC);
  sbt_call_json(vm, "later", want);
  sbt_call_json(vm, "random", "[true,32,true,8,true,0]");
  sbt_call_json(
      vm, "errors",
      "[\"crypto.sha256 expects a string or bytes\",\"crypto.randomBytes expects an integer from 0 to 65536\","
      "\"crypto.randomBytes expects an integer from 0 to 65536\",\"crypto.randomBytes expects an integer from 0 to "
      "65536\",\"getRandomValues expects a typed array\"]");
  sbt_drain_all(vm, 2000 * g_scale); /* the second sha256Async */
  sbx_vm_free(vm);
  sbx_library_free(crypto);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sandbox_crypto_functions),
  };
  return cmocka_run_group_tests(tests, sbt_setup, sbt_teardown);
}
