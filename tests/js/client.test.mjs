// wsgw-client.js against a real wsgw node running the example API (spawned here, killed and restarted).
// Run by tests/test_js_client.py: node --experimental-websocket --test tests/js/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { WsgwClient } from "../../wsgw/static/wsgw-client.js";

const ROOT = process.env.WSGW_ROOT ?? path.resolve(import.meta.dirname, "../..");
const BIN = process.env.WSGW_BIN ?? path.join(ROOT, ".venv/bin/wsgw");
let port = 0;
/** @type {import("node:child_process").ChildProcess | null} */ let node = null;

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port: p } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(p));
    });
  });
}

async function until(condition, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function start() {
  node = spawn(BIN, ["run", "-c", "wsgw.yaml", "--port", String(port), "--log-level", "WARNING"],
    { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  await until(async () => {
    try { return (await fetch(`http://127.0.0.1:${port}/health`)).ok; } catch { return false; }
  }, "the node to answer /health");
}

function kill() {
  return new Promise((resolve) => { node.once("exit", resolve); node.kill("SIGKILL"); });
}

const url = () => `ws://127.0.0.1:${port}/dev`;
const fast = { initialBackoffMs: 50, maxBackoffMs: 300, heartbeatMs: 200, heartbeatTimeoutMs: 2000 };

function collect(client, type) {
  const seen = [];
  client.on(type, (data, envelope) => seen.push({ data, envelope }));
  return seen;
}

before(async () => { port = await freePort(); await start(); });
after(async () => { if (node && node.exitCode === null) await kill(); });

test("connects with query options, learns its id and sends actions", async () => {
  const client = new WsgwClient(url(), { ...fast, query: { name: "ada" } });
  const all = collect(client, "*");
  const id = await client.connect();
  assert.match(id, /.{8,}/);
  assert.equal(client.send("echo", { n: 1 }), true);
  await until(() => all.find((f) => f.data.action === "echo"), "the echo");
  assert.deepEqual(all.find((f) => f.data.action === "echo").data, { action: "echo", n: 1 });
  client.close();
});

test("a refused handshake rejects connect (the authorizer needs ?name=)", async () => {
  const client = new WsgwClient(url(), { ...fast, reconnect: false });
  await assert.rejects(client.connect());
});

test("two clients join a room, see presence and each other's messages as seq envelopes", async () => {
  const ada = new WsgwClient(url(), { ...fast, query: { name: "ada" }, joinBody: { name: "ada" } });
  const bob = new WsgwClient(url(), { ...fast, query: { name: "bob" }, joinBody: { name: "bob" } });
  const adaSees = collect(ada, "message");
  const joins = collect(ada, "joined");
  await ada.connect(); await bob.connect();
  await ada.join("js-room");
  const answer = await bob.join("js-room");
  assert.deepEqual(answer.members, ["ada", "bob"]);
  await until(() => joins.find((j) => j.data.name === "bob"), "bob's presence");
  bob.send("say", { room: "js-room", text: "hello ada" });
  const got = await until(() => adaSees[0], "the message");
  assert.equal(got.data.text, "hello ada");
  assert.equal(got.envelope.group, "js-room");
  assert.equal(got.envelope.seq, ada.groups.get("js-room"));
  ada.close(); bob.close();
});

test("after the server drops the socket, the client reconnects and resumes with since", async () => {
  const ada = new WsgwClient(url(), { ...fast, query: { name: "ada" }, joinBody: { name: "ada" } });
  const bob = new WsgwClient(url(), { ...fast, query: { name: "bob" }, joinBody: { name: "bob" } });
  const bobSees = collect(bob, "message");
  const resumed = collect(bob, "resumed");
  await ada.connect(); await bob.connect();
  await ada.join("resume-room"); await bob.join("resume-room");
  ada.send("say", { room: "resume-room", text: "one" });
  await until(() => bobSees.length === 1, "the first message");
  const before = bob.groups.get("resume-room");
  const oldId = bob.connectionId;
  let reconnecting = 0;
  bob.on("reconnecting", () => { reconnecting += 1; });
  bob.options.reconnect = false;        // hold bob off while ada talks
  const res = await fetch(`http://127.0.0.1:${port}/dev/@connections/${oldId}`, { method: "DELETE" });
  assert.equal(res.status, 204);
  await until(() => bob.socket === null, "bob's socket to close");
  ada.send("say", { room: "resume-room", text: "two (missed)" });
  ada.send("say", { room: "resume-room", text: "three (missed)" });
  await new Promise((r) => setTimeout(r, 100));
  bob.options.reconnect = true;
  await bob.connect();
  await until(() => resumed.find((r) => r.data.since === before && r.data.answer.replayed >= 2), "the resume");
  await until(() => bobSees.length === 3, "the missed messages");
  assert.deepEqual(bobSees.map((m) => m.data.text), ["one", "two (missed)", "three (missed)"]);
  assert.notEqual(bob.connectionId, oldId);
  assert.equal(reconnecting, 0);
  ada.close(); bob.close();
});

test("when the node is killed and restarted the client backs off, reconnects and joins again", async () => {
  const ada = new WsgwClient(url(), { ...fast, query: { name: "ada" }, joinBody: { name: "ada" } });
  const delays = [];
  ada.on("reconnecting", ({ delayMs }) => delays.push(delayMs));
  const resumed = collect(ada, "resumed");
  const opened = collect(ada, "open");
  await ada.connect();
  await ada.join("restart-room");
  await kill();
  await until(() => delays.length >= 3, "several reconnect attempts while the node is down");
  await start();
  await until(() => opened.length === 2, "the reconnection", 15000);
  await until(() => resumed.length === 2, "joining again");
  assert.equal(resumed[1].data.group, "restart-room");
  const bob = new WsgwClient(url(), { ...fast, query: { name: "bob" }, joinBody: { name: "bob" } });
  const adaSees = collect(ada, "message");
  await bob.connect(); await bob.join("restart-room");
  bob.send("say", { room: "restart-room", text: "after the restart" });
  await until(() => adaSees.length === 1, "a message after the restart");
  assert.ok(delays.every((d) => d >= 0 && d <= fast.maxBackoffMs));
  ada.close(); bob.close();
});

test("backoff grows exponentially with full jitter up to the cap", () => {
  const client = new WsgwClient("ws://x/dev", { initialBackoffMs: 100, maxBackoffMs: 1000 });
  const ceilings = [100, 200, 400, 800, 1000, 1000];
  for (const ceiling of ceilings) {
    const delay = client.nextDelay();
    assert.ok(delay >= 0 && delay <= ceiling, `${delay} <= ${ceiling}`);
  }
  const spread = new Set(Array.from({ length: 50 }, () => { client.attempt = 10; return client.nextDelay(); }));
  assert.ok(spread.size > 10, "jittered");
});

test("a heartbeat that gets no answer closes the socket so it reconnects", async () => {
  const client = new WsgwClient(url(), { ...fast, query: { name: "ada" }, heartbeatAction: "nosuchroute-silent",
    heartbeatMs: 100, heartbeatTimeoutMs: 300, reconnect: false });
  // the gateway answers unknown actions through $default, so make it silent: drop frames on the floor
  await client.connect();
  client._alive = () => {};           // frames no longer count as signs of life
  const closed = await until(() => client.socket === null && client, "the heartbeat timeout", 5000);
  assert.ok(closed);
});
