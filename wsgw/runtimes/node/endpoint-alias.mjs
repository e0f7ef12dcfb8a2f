// AWS's own endpoint for an API, `{apiId}.execute-api.{region}.amazonaws.com`, reaching this gateway from
// inside a runtime process, without /etc/hosts or DNS changes and without touching any other host name.
//
// WSGW_ENDPOINT_ALIASES lists `name=host:port` pairs (comma-separated). For exactly those names (compared
// case-insensitively, a trailing dot ignored):
//   - every TCP connection (net.Socket.prototype.connect, which net, tls, http, https, http2 and fetch/undici
//     all go through) goes to host:port instead, whatever port was asked for (the SDK asks for 443). The
//     caller's own options are left as they were, so TLS still sends the name as SNI and checks the
//     certificate against it: the gateway presents one from the local CA (NODE_EXTRA_CA_CERTS) naming it;
//   - dns.lookup and dns.promises.lookup answer host (for code that resolves the name itself).
// Every other name, address and socket is passed to Node's own functions untouched.

import dns from 'node:dns';
import net from 'node:net';
import { syncBuiltinESMExports } from 'node:module';

const aliases = new Map();        // lower-case name -> { host, port }
let installed = false;

function canonical(name) {
  return name.toLowerCase().replace(/\.$/, '');
}

export function parseAliases(text) {
  const out = new Map();
  for (const entry of (text ?? '').split(',')) {
    if (!entry.trim()) continue;
    const eq = entry.indexOf('=');
    const colon = entry.lastIndexOf(':');
    const name = canonical(entry.slice(0, eq).trim());
    const host = entry.slice(eq + 1, colon).trim().replace(/^\[|\]$/g, '');
    const port = Number(entry.slice(colon + 1));
    if (eq <= 0 || colon <= eq || !name || !host || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new Error(`WSGW_ENDPOINT_ALIASES: bad entry ${JSON.stringify(entry)} (want name=host:port)`);
    }
    out.set(name, { host, port });
  }
  return out;
}

export function aliasFor(name) {
  return typeof name === 'string' ? aliases.get(canonical(name)) : undefined;
}

function lookupAnswer(target, options) {
  const family = net.isIP(target.host) || 4;
  const all = typeof options === 'object' && options !== null && options.all;
  return all ? [{ address: target.host, family }] : { address: target.host, family };
}

function patch() {
  const { connect } = net.Socket.prototype;
  net.Socket.prototype.connect = function wsgwConnect(...args) {
    let options;
    let callback;
    if (Array.isArray(args[0])) [options, callback] = args[0];              // net.connect's normalised form
    else if (args[0] !== null && typeof args[0] === 'object') [options, callback] = args;
    else if (typeof args[1] === 'string') {                                 // connect(port, host[, callback])
      options = { port: args[0], host: args[1] };
      callback = args[2];
    }
    const target = options && !options.path ? aliasFor(options.host) : undefined;   // not for IPC paths
    if (target === undefined) return connect.apply(this, args);
    return connect.call(this, { ...options, host: target.host, port: target.port }, callback);
  };

  const { lookup } = dns;
  dns.lookup = function wsgwLookup(hostname, options, callback) {
    const target = aliasFor(hostname);
    if (target === undefined) return lookup.apply(this, arguments);       // eslint-disable-line prefer-rest-params
    const done = typeof options === 'function' ? options : callback;
    const answer = lookupAnswer(target, options);
    process.nextTick(() => (Array.isArray(answer) ? done(null, answer) : done(null, answer.address, answer.family)));
    return {};
  };
  const promised = dns.promises.lookup;
  dns.promises.lookup = function wsgwLookupPromise(hostname, options) {
    const target = aliasFor(hostname);
    if (target === undefined) return promised.apply(this, arguments);     // eslint-disable-line prefer-rest-params
    return Promise.resolve(lookupAnswer(target, options));
  };
  syncBuiltinESMExports();          // `import { lookup } from 'node:dns'` sees the wrapper too
}

export function installAliases(text) {
  for (const [name, target] of parseAliases(text)) aliases.set(name, target);
  if (aliases.size > 0 && !installed) {
    patch();
    installed = true;
  }
}
