// isoworld:lib/guards — builtin guards (no host functions).
//
// Some builtins abort the whole process (a V8 CHECK on an array's length, not a
// catchable RangeError) when given a huge string, which `'x'.repeat(2 ** 27)` makes
// cheaply: split, match, matchAll, replace, replaceAll and their RegExp symbol methods.
// They refuse strings over 16 M characters; no bot needs more. Runs first, so every later
// library captures the guarded versions.
const defineProperty = Object.defineProperty;
const apply = Reflect.apply;
const push = Array.prototype.push;
const StringCtor = String;
const GUARD_MAX = 1 << 24;
const RangeErrorCtor = RangeError;
function tooLong(what, len) {
  return new RangeErrorCtor(what + ': string too long (' + len + ' characters; the limit is ' + GUARD_MAX + ')');
}
function guardThis(proto, name) {
  const orig = proto[name];
  if (typeof orig !== 'function') return;
  const f = function () {
    if (this === null || this === undefined) return apply(orig, this, arguments);
    const self = typeof this === 'string' ? this : StringCtor(this);
    if (self.length > GUARD_MAX) throw tooLong('String.prototype.' + name, self.length);
    return apply(orig, self, arguments);
  };
  defineProperty(f, 'name', { value: name });
  defineProperty(f, 'length', { value: orig.length });
  defineProperty(proto, name, { value: f, writable: true, configurable: true, enumerable: false });
}
function guardArg(proto, sym, label) {
  const orig = proto[sym];
  if (typeof orig !== 'function') return;
  const f = function (str) {
    const a = typeof str === 'string' ? str : StringCtor(str);
    if (a.length > GUARD_MAX) throw tooLong(label, a.length);
    const args = [a];
    for (let i = 1; i < arguments.length; i++) apply(push, args, [arguments[i]]);
    return apply(orig, this, args);
  };
  defineProperty(f, 'name', { value: '[' + label + ']' });
  defineProperty(f, 'length', { value: orig.length });
  defineProperty(proto, sym, { value: f, writable: true, configurable: true, enumerable: false });
}
for (const name of ['split', 'match', 'matchAll', 'replace', 'replaceAll']) guardThis(String.prototype, name);
guardArg(RegExp.prototype, Symbol.split, 'Symbol.split');
guardArg(RegExp.prototype, Symbol.match, 'Symbol.match');
guardArg(RegExp.prototype, Symbol.matchAll, 'Symbol.matchAll');
guardArg(RegExp.prototype, Symbol.replace, 'Symbol.replace');
