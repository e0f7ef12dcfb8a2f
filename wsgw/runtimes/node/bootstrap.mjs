// The Node.js side of wsgw's Lambda runtimes: what Lambda's Node.js runtime does, on Node's built-ins only.
//
// Loads `_HANDLER` (`dir/module.export`) from LAMBDA_TASK_ROOT (`.js`, `.mjs`, `.cjs`; ES modules and
// CommonJS), then loops on the Runtime API at AWS_LAMBDA_RUNTIME_API: GET /invocation/next, call the
// handler (async, or with a callback), POST /response or /error. console.* lines carry the request id as
// on Lambda (`<ISO time>\t<requestId>\t<LEVEL>\t<message>`). Load failures go to /init/error. Any failure of
// the Runtime API itself ends the process: the gateway that ran it is gone.
//
// Before the handler loads: `@aws-sdk/*` resolves from wsgw's own node_modules when the handler's folders lack
// it (NODE_PATH for `require`, resolve-hooks.mjs for `import`), and the API's AWS host names reach the gateway
// (endpoint-alias.mjs, from WSGW_ENDPOINT_ALIASES).

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import nodeModule, { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { installAliases } from './endpoint-alias.mjs';

const API = process.env.AWS_LAMBDA_RUNTIME_API;
const [HOST, PORT] = API.split(':');
const BASE = '/2018-06-01/runtime';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });   // idle keep-alive sockets are unref'd

installAliases(process.env.WSGW_ENDPOINT_ALIASES);
delete process.env.WSGW_ENDPOINT_ALIASES;                            // wsgw's, not part of Lambda's environment
if (typeof nodeModule.register === 'function') {                     // Node 18.19+, 20.6+
  nodeModule.register('./resolve-hooks.mjs', import.meta.url, { data: { fallbackParent: import.meta.url } });
}

// -- the Runtime API ----------------------------------------------------------------------------------------

function call(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(body);
    const req = http.request({
      host: HOST, port: Number(PORT), method, path: BASE + urlPath, agent,
      headers: data === undefined ? headers : { ...headers, 'Content-Length': data.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

function apiGone(err) {
  process.stderr.write(`wsgw runtime: the Runtime API at ${API} is unreachable (${err.message}); exiting\n`);
  process.exit(1);
}

// -- logging as Lambda's Node runtime does it -----------------------------------------------------------------

let currentRequestId;            // undefined during init, as on Lambda
const write = (level, args) => {
  const message = util.format(...args).replace(/\n/g, '\r');   // one log event per call, as CloudWatch shows it
  process.stdout.write(`${new Date().toISOString()}\t${currentRequestId}\t${level}\t${message}\n`);
};
for (const [name, level] of [['log', 'INFO'], ['info', 'INFO'], ['warn', 'WARN'], ['error', 'ERROR'],
  ['debug', 'DEBUG'], ['trace', 'TRACE'], ['fatal', 'FATAL']]) {
  console[name] = (...args) => write(level, args);
}

// -- errors in AWS's shape -----------------------------------------------------------------------------------

function errorBody(err, fallbackType = 'Error') {
  if (err instanceof Error) {
    return {
      errorType: err.name || fallbackType,
      errorMessage: err.message,
      trace: typeof err.stack === 'string' ? err.stack.split('\n') : [],
    };
  }
  if (err === undefined || err === null) return { errorType: fallbackType, errorMessage: String(err), trace: [] };
  return { errorType: typeof err, errorMessage: String(err), trace: [] };
}

class ImportModuleError extends Error { constructor(m) { super(m); this.name = 'Runtime.ImportModuleError'; } }
class HandlerNotFound extends Error { constructor(m) { super(m); this.name = 'Runtime.HandlerNotFound'; } }
class MalformedHandlerName extends Error { constructor(m) { super(m); this.name = 'Runtime.MalformedHandlerName'; } }
class UserCodeSyntaxError extends Error { constructor(m) { super(m); this.name = 'Runtime.UserCodeSyntaxError'; } }

// -- loading the handler -----------------------------------------------------------------------------------

function packageType(dir, root) {
  for (let d = dir; ; d = path.dirname(d)) {
    const file = path.join(d, 'package.json');
    if (fs.existsSync(file)) {
      try { return JSON.parse(fs.readFileSync(file, 'utf8')).type === 'module' ? 'module' : 'commonjs'; }
      catch { return 'commonjs'; }
    }
    if (d === root || d === path.dirname(d)) return 'commonjs';
  }
}

async function loadHandler() {
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const spec = process.env._HANDLER || '';
  const slash = spec.lastIndexOf('/');
  const dir = spec.slice(0, slash + 1);
  const rest = spec.slice(slash + 1);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) throw new MalformedHandlerName(`Bad handler ${spec}`);
  const moduleName = rest.slice(0, dot);
  const exportPath = rest.slice(dot + 1).split('.');
  const base = path.resolve(root, dir, moduleName);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => fs.existsSync(f));
  if (!file) throw new ImportModuleError(`Error: Cannot find module '${moduleName}'`);
  let mod;
  try {
    const esm = file.endsWith('.mjs') || (file.endsWith('.js') && packageType(path.dirname(file), root) === 'module');
    if (esm) {
      mod = await import(pathToFileURL(file).href);
    } else {
      try {
        mod = createRequire(file)(file);
      } catch (err) {
        if (err?.code !== 'ERR_REQUIRE_ESM') throw err;
        mod = await import(pathToFileURL(file).href);
      }
    }
  } catch (err) {
    if (err instanceof SyntaxError) throw new UserCodeSyntaxError(`${err.name}: ${err.message}`);
    if (err?.code === 'MODULE_NOT_FOUND' || err?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new ImportModuleError(`${err.name}: ${err.message}`);
    }
    throw err;
  }
  let fn = mod;
  for (const key of exportPath) fn = fn?.[key];
  if (fn === undefined && mod?.default !== undefined) {         // CommonJS seen through import(): module.exports
    fn = mod.default;
    for (const key of exportPath) fn = fn?.[key];
  }
  if (fn === undefined) throw new HandlerNotFound(`${rest} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${rest} is not a function`);
  return fn;
}

// -- one invocation ----------------------------------------------------------------------------------------

const env = process.env;
let answer = null;         // settles the invocation in flight; null between invocations

function context(headers, deadline) {
  let waits = true;
  const ctx = {
    get callbackWaitsForEmptyEventLoop() { return waits; },
    set callbackWaitsForEmptyEventLoop(value) { waits = Boolean(value); },
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseOptional(headers['lambda-runtime-client-context']),
    identity: parseOptional(headers['lambda-runtime-cognito-identity']),
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    succeed: (result) => answer?.('result', result, false),
    fail: (err) => answer?.('error', err, false),
    done: (err, result) => answer?.(err ? 'error' : 'result', err ?? result, false),
  };
  return ctx;
}

function parseOptional(text) {
  if (text === undefined) return undefined;
  try { return JSON.parse(text); } catch { return undefined; }
}

function runHandler(handler, event, ctx) {
  return new Promise((resolve) => {
    let settled = false;
    let emptyLoopWait = null;
    const finish = (kind, value) => {
      if (settled) return;
      settled = true;
      if (emptyLoopWait) process.removeListener('beforeExit', emptyLoopWait);
      resolve({ kind, value });
    };
    answer = (kind, value, waitForLoop) => {
      if (settled || emptyLoopWait) return;
      if (!waitForLoop) { finish(kind, value); return; }
      // callbackWaitsForEmptyEventLoop: answer once the handler's own pending work is done, as Lambda does.
      emptyLoopWait = () => finish(kind, value);
      process.once('beforeExit', emptyLoopWait);
    };
    const callback = (err, result) => {
      if (err !== undefined && err !== null) answer('error', err, ctx.callbackWaitsForEmptyEventLoop);
      else answer('result', result, ctx.callbackWaitsForEmptyEventLoop);
    };
    let returned;
    try {
      returned = handler(event, ctx, callback);
    } catch (err) {
      answer('error', err, false);
      return;
    }
    if (returned && typeof returned.then === 'function') {
      returned.then((result) => answer('result', result, false), (err) => answer('error', err, false));
    } else if (handler.length < 3) {
      // A synchronous handler that takes no callback: its answer is null once the event loop is empty.
      answer('result', returned ?? null, true);
    }
  });
}

async function post(requestId, kind, value) {
  if (kind === 'error') {
    const body = errorBody(value);
    write('ERROR', [`Invoke Error \t${JSON.stringify(body)}`]);
    return call('POST', `/invocation/${requestId}/error`, JSON.stringify(body),
      { 'Content-Type': 'application/json', 'Lambda-Runtime-Function-Error-Type': body.errorType });
  }
  let text;
  try {
    text = value === undefined ? 'null' : JSON.stringify(value);
  } catch (err) {
    return post(requestId, 'error', err);
  }
  const res = await call('POST', `/invocation/${requestId}/response`, text ?? 'null',
    { 'Content-Type': 'application/json' });
  if (res.status === 413) {
    write('ERROR', [`Invoke Error \tresponse too large: ${res.body.toString()}`]);
  }
  return res;
}

// A crash in the handler's own callbacks: report it for the invocation in flight, then exit as Lambda does.
async function fatal(err, errorType) {
  const body = errorBody(err);
  if (errorType) body.errorType = errorType;
  try {
    if (currentRequestId !== undefined) {
      write('ERROR', [`${errorType ?? 'Uncaught Exception'} \t${JSON.stringify(body)}`]);
      await call('POST', `/invocation/${currentRequestId}/error`, JSON.stringify(body),
        { 'Content-Type': 'application/json', 'Lambda-Runtime-Function-Error-Type': body.errorType });
    } else {
      await call('POST', '/init/error', JSON.stringify(body),
        { 'Content-Type': 'application/json', 'Lambda-Runtime-Function-Error-Type': body.errorType });
    }
  } finally {
    process.exit(129);
  }
}
process.on('uncaughtException', (err) => { fatal(err); });
process.on('unhandledRejection', (reason) => {
  const err = reason instanceof Error ? reason : new Error(String(reason));
  fatal(err, 'Runtime.UnhandledPromiseRejection');
});

// -- main --------------------------------------------------------------------------------------------------

let handler;
try {
  handler = await loadHandler();
} catch (err) {
  const body = errorBody(err);
  write('ERROR', [`Init Error \t${JSON.stringify(body)}`]);
  try {
    await call('POST', '/init/error', JSON.stringify(body),
      { 'Content-Type': 'application/json', 'Lambda-Runtime-Function-Error-Type': body.errorType });
  } catch (e) { apiGone(e); }
  process.exit(129);
}

for (;;) {
  let next;
  try {
    next = await call('GET', '/invocation/next');
  } catch (err) { apiGone(err); }
  if (next.status !== 200) apiGone(new Error(`GET /invocation/next answered ${next.status}`));
  const headers = next.headers;
  const requestId = headers['lambda-runtime-aws-request-id'];
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  if (headers['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
  else delete process.env._X_AMZN_TRACE_ID;
  currentRequestId = requestId;
  let outcome;
  try {
    const event = JSON.parse(next.body.toString('utf8') || 'null');
    outcome = await runHandler(handler, event, context(headers, deadline));
  } catch (err) {
    outcome = { kind: 'error', value: err };
  }
  answer = null;
  try {
    await post(requestId, outcome.kind, outcome.value);
  } catch (err) { apiGone(err); }
}
