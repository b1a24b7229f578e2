// isoworld:lib/modules — require() over the player's modules (sbx_vm_set_code), with
// module names as Screeps players write them: "role.harvester", "./role.harvester",
// "lib/util.js". Each module is evaluated once per global; a failed evaluation is retried
// by the next require.
const defineProperty = Object.defineProperty;
const apply = Reflect.apply;
const MapCtor = Map;
const mapGet = Map.prototype.get;
const mapSet = Map.prototype.set;
const mapDelete = Map.prototype.delete;
const ErrorCtor = Error;
const str = core.str;
let host = null; // { compile(name) }
let cache = new MapCtor();
function normalize(name) {
  let n = str(name);
  if (n.length > 2 && n[0] === '.' && n[1] === '/') n = n.slice(2);
  else if (n.length > 1 && n[0] === '/') n = n.slice(1);
  if (n.length > 3 && n.slice(-3) === '.js') n = n.slice(0, -3);
  return n;
}
function require(name) {
  const n = normalize(name);
  let m = apply(mapGet, cache, [n]);
  if (m !== undefined) return m.exports;
  const fn = host.compile(n);
  if (fn === undefined) {
    const provided = core.modules[n];
    if (provided !== undefined) return provided;
    throw new ErrorCtor("Unknown module '" + n + "'");
  }
  if (typeof fn !== 'function') {
    m = { id: n, exports: fn, loaded: true };
    apply(mapSet, cache, [n, m]);
    return fn;
  }
  m = { id: n, exports: {}, loaded: false };
  apply(mapSet, cache, [n, m]);
  try {
    apply(fn, m.exports, [m, m.exports, require]);
  } catch (e) {
    apply(mapDelete, cache, [n]);
    throw e;
  }
  m.loaded = true;
  return m.exports;
}
defineProperty(globalThis, 'require', { value: require, writable: true, configurable: true, enumerable: false });
core.require = require;
core.forget = (n) => { apply(mapDelete, cache, [normalize(n)]); };
lib.onAttach((h) => { host = h; });
