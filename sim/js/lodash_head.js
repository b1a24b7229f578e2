// lodash 3.10.1 (npm package lodash@3.10.1, sim/js/package.json) as the global `_` that
// Screeps players expect. The build puts the package's index.js between this and
// lodash_tail.js: lodash sees a CommonJS module and exports itself there.
(function () {
  const module = { exports: {} };
  (function (module, exports) {
