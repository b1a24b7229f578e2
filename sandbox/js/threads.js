// isoworld:lib/threads — startThread(path): a worker VM started from a file of this VM's
// tree, with its own heap, the libraries the host chose for workers, and exposeCallables
// ({...}) for what it offers. The returned object has one async method per callable, plus
// threadId, dispose() and isDisposed.
//
// Workers run on this VM's thread, at its drain points, inside its budget: what a worker
// uses is this VM's CPU (sandbox/lib_threads.c says why).
const defineProperty = Object.defineProperty;
const apply = Reflect.apply;
const push = Array.prototype.push;
const str = core.str;
const g = globalThis;
let host = null; // start(path) -> [id, names], call(id, name, args) -> promise, dispose(id), disposed(id)

function makeWorker(id, names) {
  const w = {};
  defineProperty(w, 'threadId', { value: id, enumerable: true });
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    w[name] = function () {
      const args = [];
      for (let k = 0; k < arguments.length; k++) apply(push, args, [arguments[k]]);
      return host.call(id, name, args);
    };
  }
  defineProperty(w, 'dispose', { value: function dispose() { host.dispose(id); }, enumerable: false });
  defineProperty(w, 'isDisposed', { get() { return host.disposed(id); }, enumerable: false });
  return w;
}
async function startThread(path) {
  const r = host.start(str(path));
  return makeWorker(r[0], r[1]);
}
defineProperty(g, 'startThread', { value: startThread, writable: true, configurable: true, enumerable: false });
lib.onAttach((h) => { host = h; });
