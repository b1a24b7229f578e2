
  }).call(globalThis, module, module.exports);
  Object.defineProperty(globalThis, '_', { value: module.exports, writable: true, configurable: true, enumerable: false });
})();
