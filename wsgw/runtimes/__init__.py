"""Lambda runtimes other than in-process Python: execution environments driven through the Lambda Runtime API.

`runtime_api` serves the HTTP interface runtime clients poll (docs/lambda-runtime-api.md); `environments` runs a
function's runtime processes against it; `node/bootstrap.mjs` is the Node.js runtime side.
"""
