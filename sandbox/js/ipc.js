// isoworld:lib/ipc — the host's functions (sbx_ipc_options.fns), each returning a
// promise, as globals (or grouped under one global object, config.object), and
// exposeCallables({...}) to give the host functions to call (sbx_vm_call).
const defineProperty = Object.defineProperty;
const ObjectKeys = Object.keys;
const freeze = Object.freeze;
const g = globalThis;
defineProperty(g, 'exposeCallables', { value: core.exposeCallables, writable: true, configurable: true, enumerable: false });
lib.onAttach((h, config) => {
  const names = ObjectKeys(h);
  const target = config !== null && typeof config === 'object' && typeof config.object === 'string' ? {} : null;
  for (let i = 0; i < names.length; i++) {
    if (target !== null) target[names[i]] = h[names[i]];
    else defineProperty(g, names[i], { value: h[names[i]], writable: true, configurable: true, enumerable: false });
  }
  if (target !== null) defineProperty(g, config.object, { value: freeze(target), writable: true, configurable: true, enumerable: false });
});
