// isoworld:lib/inject — constants and plain values (config.values, copied from the host
// into each new global), frozen deeply when config.freeze.
const defineProperty = Object.defineProperty;
const ObjectKeys = Object.keys;
const freeze = Object.freeze;
const g = globalThis;
function deepFreeze(v, depth) {
  if (v === null || typeof v !== 'object' || depth > 64) return v;
  const keys = ObjectKeys(v);
  for (let i = 0; i < keys.length; i++) deepFreeze(v[keys[i]], depth + 1);
  return freeze(v);
}
lib.onAttach((h, config) => {
  if (config === null || typeof config !== 'object') return;
  const values = config.values;
  const frozen = config.freeze === true;
  if (values === null || typeof values !== 'object') return;
  const keys = ObjectKeys(values);
  for (let i = 0; i < keys.length; i++) {
    const v = frozen ? deepFreeze(values[keys[i]], 0) : values[keys[i]];
    defineProperty(g, keys[i], { value: v, writable: !frozen, configurable: !frozen, enumerable: false });
  }
});
