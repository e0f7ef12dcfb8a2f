// wsgw-client.js against real wsgw nodes running the example API (spawned here, killed and restarted): one on
// the in-memory registry, and one on Redis (WSGW_TEST_REDIS_URL, given by tests/test_js_client.py) whose group
// history outlives the node.
// Run by tests/test_js_client.py: node --experimental-websocket --test tests/js/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { WsgwClient } from "../../wsgw/static/wsgw-client.js";

const ROOT = process.env.WSGW_ROOT ?? path.resolve(import.meta.dirname, "../..");
const BIN = process.env.WSGW_BIN ?? path.join(ROOT, ".venv/bin/wsgw");
const REDIS = process.env.WSGW_TEST_REDIS_URL;

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

/** `wsgw run -c wsgw.yaml` on a port of its own, killed with SIGKILL and started again on the same port. */
class Node {
  constructor(extra = []) { this.extra = extra; this.port = 0; this.process = null; }

  async start() {
    if (!this.port) this.port = await freePort();
    this.process = spawn(BIN, ["run", "-c", "wsgw.yaml", "--port", String(this.port), "--log-level", "WARNING",
      ...this.extra], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
    await until(async () => {
      try { return (await fetch(`http://127.0.0.1:${this.port}/health`)).ok; } catch { return false; }
    }, "the node to answer /health", 30000);   // two nodes start at once: >10 s when the 2 cores carry load 8
  }

  kill() {
    return new Promise((resolve) => {
      if (!this.process || this.process.exitCode !== null) { resolve(); return; }
      this.process.once("exit", resolve);
      this.process.kill("SIGKILL");
    });
  }

  get url() { return `ws://127.0.0.1:${this.port}/dev`; }
  get http() { return `http://127.0.0.1:${this.port}/dev`; }
}

const memory = new Node();
const redis = REDIS ? new Node(["--redis", REDIS]) : null;
const fast = { initialBackoffMs: 50, maxBackoffMs: 300, heartbeatMs: 200, heartbeatTimeoutMs: 2000 };

/** The example API's join route (handlers/rest.py), as web/chat.js asks it: group room:<name>. */
function roomJoin(node) {
  return async (group, connectionId, since) => {
    const query = since === null ? "" : `?since=${since}`;
    const name = encodeURIComponent(group.replace(/^room:/, ""));
    const response = await fetch(`${node.http}/rooms/${name}/members/${encodeURIComponent(connectionId)}${query}`,
      { method: "POST" });
    const body = await response.json();
    if (!response.ok) throw new Error(`join ${group}: ${response.status} ${body.message}`);
    return body;
  };
}

function chatter(node, name, options = {}) {
  return new WsgwClient(node.url, { ...fast, query: { name }, joinGroup: roomJoin(node), ...options });
}

function collect(client, type) {
  const seen = [];
  client.on(type, (data, envelope) => seen.push({ data, envelope }));
  return seen;
}

before(async () => { await Promise.all([memory.start(), redis?.start()]); });
after(async () => { await Promise.all([memory.kill(), redis?.kill()]); });

test("connects with query options, learns its id and sends actions", async () => {
  const client = chatter(memory, "ada");
  const all = collect(client, "*");
  const id = await client.connect();
  assert.match(id, /.{8,}/);
  assert.equal(client.send("echo", { n: 1 }), true);
  await until(() => all.find((f) => f.data.action === "echo"), "the echo");
  assert.deepEqual(all.find((f) => f.data.action === "echo").data, { action: "echo", n: 1 });
  client.close();
});

test("a refused handshake rejects connect (the authorizer needs ?name=)", async () => {
  const client = new WsgwClient(memory.url, { ...fast, reconnect: false });
  await assert.rejects(client.connect());
});

test("two clients join a room's group, see presence and each other's messages as seq envelopes", async () => {
  const ada = chatter(memory, "ada");
  const bob = chatter(memory, "bob");
  const adaSees = collect(ada, "message");
  const notices = collect(ada, "presence");
  await ada.connect(); await bob.connect();
  await ada.join("room:js-room");
  const answer = await bob.join("room:js-room");
  assert.equal(answer.joined, true);
  assert.deepEqual(answer.names, ["ada", "bob"]);
  const notice = await until(() => notices.find((n) => n.data.principalId === "bob"), "bob's join notice");
  assert.deepEqual(notice.data, { group: "room:js-room", event: "join", connectionId: bob.connectionId,
    principalId: "bob" });
  bob.send("sendmessage", { room: "js-room", text: "hello ada" });
  const got = await until(() => adaSees[0], "the message");
  assert.deepEqual(got.data, { type: "message", room: "js-room", from: "bob", text: "hello ada" });
  assert.equal(got.envelope.group, "room:js-room");
  assert.equal(got.envelope.seq, ada.groups.get("room:js-room"));
  bob.close();
  const left = await until(() => notices.find((n) => n.data.event === "leave"), "bob's leave notice");
  assert.equal(left.data.principalId, "bob");
  ada.close();
});

test("after the server drops the socket, the client reconnects and resumes with since", async () => {
  const ada = chatter(memory, "ada");
  const bob = chatter(memory, "bob");
  const bobSees = collect(bob, "message");
  const resumed = collect(bob, "resumed");
  const recovered = collect(bob, "recovered");
  await ada.connect(); await bob.connect();
  await ada.join("room:resume-room"); await bob.join("room:resume-room");
  ada.send("sendmessage", { room: "resume-room", text: "one" });
  await until(() => bobSees.length === 1, "the first message");
  const seen = bob.groups.get("room:resume-room");
  assert.equal(seen, bobSees[0].envelope.seq);
  const oldId = bob.connectionId;
  bob.options.reconnect = false;        // hold bob off while ada talks
  const res = await fetch(`${memory.http}/@connections/${oldId}`, { method: "DELETE" });
  assert.equal(res.status, 204);
  await until(() => bob.socket === null, "bob's socket to close");
  for (const text of ["two (missed)", "three (missed)"]) {
    ada.send("sendmessage", { room: "resume-room", text });
  }
  await until(async () => (await (await fetch(`${memory.http}/rooms/resume-room`)).json()).names.length === 1,
    "bob out of the room");
  await until(() => ada.groups.get("room:resume-room") === seen + 2, "ada's copies of her messages");
  bob.options.reconnect = true;
  await bob.connect();
  const answer = await until(() => resumed.find((r) => r.data.since === seen), "the resume");
  assert.equal(answer.data.answer.recovered, true);
  assert.equal(answer.data.answer.replayed, 2);
  await until(() => bobSees.length === 3, "the missed messages");
  assert.deepEqual(bobSees.map((m) => m.data.text), ["one", "two (missed)", "three (missed)"]);
  assert.deepEqual(bobSees.map((m) => m.envelope.seq), [seen, seen + 1, seen + 2]);
  assert.deepEqual(recovered.map((r) => r.data), [{ group: "room:resume-room", recovered: true, replayed: 2 }]);
  assert.notEqual(bob.connectionId, oldId);
  ada.close(); bob.close();
});

test("the in-memory registry forgets on a restart: recovered false, then the client follows the new seqs",
  async () => {
    const ada = chatter(memory, "ada");
    const delays = [];
    ada.on("reconnecting", ({ delayMs }) => delays.push(delayMs));
    const resumed = collect(ada, "resumed");
    const recovered = collect(ada, "recovered");
    const adaSees = collect(ada, "message");
    await ada.connect();
    await ada.join("room:restart-room");
    ada.send("sendmessage", { room: "restart-room", text: "before" });
    ada.send("sendmessage", { room: "restart-room", text: "before, again" });
    await until(() => adaSees.length === 2, "ada's own messages");
    assert.equal(ada.groups.get("room:restart-room"), 2);
    await memory.kill();
    await until(() => delays.length >= 3, "several reconnect attempts while the node is down");
    await memory.start();
    await until(() => resumed.length === 2, "joining again", 15000);
    assert.equal(resumed[1].data.since, 2);
    assert.equal(resumed[1].data.answer.recovered, false);        // the new node never had seq 2
    await until(() => recovered.length === 1, "the recovery frame");
    const bob = chatter(memory, "bob");
    await bob.connect(); await bob.join("room:restart-room");
    bob.send("sendmessage", { room: "restart-room", text: "after the restart" });
    await until(() => adaSees.length === 3, "a message after the restart");
    assert.equal(adaSees[2].envelope.seq, 1);
    assert.equal(ada.groups.get("room:restart-room"), 1);           // so the next resume asks since=1
    assert.ok(delays.every((d) => d >= 0 && d <= fast.maxBackoffMs));
    ada.close(); bob.close();
  });

test("on Redis the history outlives the node: a restarted node replays what the client missed", { skip: !redis },
  async () => {
    const node = /** @type {Node} */ (redis);
    const ada = chatter(node, "ada");
    const adaSees = collect(ada, "message");
    const resumed = collect(ada, "resumed");
    await ada.connect();
    await ada.join("room:redis-room", { since: 0 });
    ada.send("sendmessage", { room: "redis-room", text: "before" });
    await until(() => adaSees.length === 1, "ada's own message");
    const seen = ada.groups.get("room:redis-room");
    ada.options.reconnect = false;      // ada stays away until bob has talked
    await node.kill();
    await until(() => ada.socket === null, "ada's socket to close");
    await node.start();
    const bob = chatter(node, "bob");
    await bob.connect(); await bob.join("room:redis-room");
    bob.send("sendmessage", { room: "redis-room", text: "while ada was away" });
    bob.send("sendmessage", { room: "redis-room", text: "still away" });
    const bobSees = collect(bob, "message");
    await until(() => bobSees.length === 2, "bob's own copies");
    ada.options.reconnect = true;
    await ada.connect();
    await until(() => resumed.length === 2, "ada's resume");
    assert.equal(resumed[1].data.since, seen);
    assert.equal(resumed[1].data.answer.recovered, true);
    await until(() => adaSees.length === 3, "the missed messages");
    assert.deepEqual(adaSees.map((m) => m.data.text), ["before", "while ada was away", "still away"]);
    assert.deepEqual(adaSees.map((m) => m.envelope.seq), [seen, seen + 1, seen + 2]);
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

test("without joinGroup the client joins through the management API (a caller within allowFrom)", async () => {
  const client = new WsgwClient(memory.url, { ...fast, query: { name: "ops" } });
  await client.connect();
  const answer = await client.join("ops:tail");
  assert.deepEqual(answer, { joined: true });
  const presence = await (await fetch(`${memory.http}/@groups/ops:tail`)).json();
  assert.deepEqual(presence.members.map((m) => m.principalId), ["ops"]);
  client.close();
});

test("a heartbeat that gets no answer closes the socket so it reconnects", async () => {
  const client = new WsgwClient(memory.url, { ...fast, query: { name: "ada" }, heartbeatAction: "nosuchroute-silent",
    heartbeatMs: 100, heartbeatTimeoutMs: 300, reconnect: false });
  await client.connect();
  client._alive = () => {};           // frames no longer count as signs of life
  const closed = await until(() => client.socket === null && client, "the heartbeat timeout", 5000);
  assert.ok(closed);
});
