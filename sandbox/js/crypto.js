// isoworld:lib/crypto — the example library (sandbox/lib_crypto.c, libsodium):
// crypto.sha256(data) -> hex, crypto.randomBytes(n) -> Uint8Array,
// crypto.getRandomValues(typedArray), crypto.sha256Async(data) -> Promise<hex>.
const defineProperty = Object.defineProperty;
const freeze = Object.freeze;
const Uint8ArrayCtor = Uint8Array;
const isView = ArrayBuffer.isView;
const TypeErrorCtor = TypeError;
const g = globalThis;
lib.onAttach((h) => {
  const crypto = {
    sha256: function sha256(data) { return h.sha256(data); },
    sha256Async: function sha256Async(data) { return h.sha256Async(data); },
    randomBytes: function randomBytes(n) { return new Uint8ArrayCtor(h.randomBytes(n)); },
    getRandomValues: function getRandomValues(view) {
      if (!isView(view)) throw new TypeErrorCtor('getRandomValues expects a typed array');
      const bytes = new Uint8ArrayCtor(h.randomBytes(view.byteLength));
      new Uint8ArrayCtor(view.buffer, view.byteOffset, view.byteLength).set(bytes);
      return view;
    },
  };
  defineProperty(g, 'crypto', { value: freeze(crypto), writable: true, configurable: true, enumerable: false });
});
