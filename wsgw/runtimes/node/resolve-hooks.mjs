// ES module resolution hooks (registered by bootstrap.mjs with module.register): a bare specifier the
// handler's own folders cannot resolve is resolved again from wsgw's runtime folder, whose node_modules holds
// the AWS SDK for JavaScript v3 (`make node-runtime`). Lambda's Node.js runtimes ship the SDK the same way,
// outside the function's code; `import '@aws-sdk/...'` ignores NODE_PATH, which serves `require` only.
// The handler's own node_modules always wins: the fallback runs only after the normal resolution failed.

let fallbackParent;

export function initialize(data) {
  fallbackParent = data?.fallbackParent;
}

function bare(specifier) {
  return !(specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('#')
    || /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(specifier));
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (fallbackParent === undefined || err?.code !== 'ERR_MODULE_NOT_FOUND' || !bare(specifier)
      || context.parentURL === fallbackParent) {
      throw err;
    }
    try {
      return await nextResolve(specifier, { ...context, parentURL: fallbackParent });
    } catch {
      throw err;                  // report the miss as the handler's folders saw it
    }
  }
}
