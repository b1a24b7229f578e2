// isoworld:lib/worker — what every worker VM of the threads library has: exposeCallables
// ({...}) and isThread (its thread id).
const defineProperty = Object.defineProperty;
const g = globalThis;
defineProperty(g, 'exposeCallables', { value: core.exposeCallables, writable: true, configurable: true, enumerable: false });
lib.onAttach((h) => {
  defineProperty(g, 'isThread', { value: h.id(), writable: true, configurable: true, enumerable: false });
});
