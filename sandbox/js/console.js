// isoworld:lib/console — console.log/info/warn/error/debug (+ logUnsafe for HTML the
// game's client shows as is). Lines go to the console sink of the VM if the host set one
// (sbx_console_options), else into the run's console buffer (sbx_tick_out.lines).
const defineProperty = Object.defineProperty;
const apply = Reflect.apply;
const push = Array.prototype.push;
const join = Array.prototype.join;
const str = core.str;
function format(args) {
  if (args.length === 1) return str(args[0]);
  const parts = [];
  for (let i = 0; i < args.length; i++) apply(push, parts, [str(args[i])]);
  return apply(join, parts, [' ']);
}
const makeLog = (level, unsafe) => function () { core.log(level, format(arguments), unsafe); };
const console = {
  log: makeLog(0, false),
  info: makeLog(1, false),
  warn: makeLog(2, false),
  error: makeLog(3, false),
  debug: makeLog(4, false),
  logUnsafe: makeLog(0, true),
};
defineProperty(globalThis, 'console', { value: console, writable: true, configurable: true, enumerable: false });
