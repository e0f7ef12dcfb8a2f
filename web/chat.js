// The browser chat of the example API: rooms, messages and presence over wsgw-client.js.
// Rooms are wsgw groups `room:<name>` (wsgw.yaml): messages arrive as envelopes {group, seq, data}, the room
// tells who joins and leaves, and after a reconnect the client joins again with the last seq it saw, so the
// gateway replays what this page missed. The server side is handlers/chat.py and handlers/rest.py.
import { WsgwClient } from "./lib/wsgw-client.js";

const $ = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
const stage = location.pathname.split("/")[1] || "dev";
const base = `${location.origin}/${stage}`;
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/${stage}`;
/** @type {WsgwClient | null} */ let client = null;
let room = "";

function line(text, kind = "") {
  const li = document.createElement("li");
  li.textContent = text;
  if (kind) li.className = kind;
  $("log").append(li);
  $("log").scrollTop = $("log").scrollHeight;
}

function presence(names) {
  $("presence").replaceChildren(...names.map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    return li;
  }));
}

/** Who is in the room now (GET /rooms/{name}: the gateway's presence, one name per user). */
async function refreshPresence() {
  const response = await fetch(`${base}/rooms/${encodeURIComponent(room)}`);
  if (response.ok) presence((await response.json()).names);
}

/** The client's joinGroup: this API's own join route (POST /rooms/{name}/members/{connectionId}?since=N). */
async function joinRoom(group, connectionId, since) {
  const name = group.replace(/^room:/, "");
  const query = since === null ? "" : `?since=${since}`;
  const response = await fetch(`${base}/rooms/${encodeURIComponent(name)}/members/${encodeURIComponent(connectionId)}${query}`,
    { method: "POST" });
  const body = await response.json();
  if (!response.ok) throw new Error(body?.message ?? `join: ${response.status}`);
  return body;
}

async function join() {
  const name = $("name").value.trim();
  const wanted = $("room").value.trim() || "lobby";
  if (!name) { $("name").focus(); return; }
  if (!client) {
    client = new WsgwClient(wsUrl, { query: { name }, joinGroup: joinRoom });
    client.on("open", () => { $("status").textContent = "connected"; });
    client.on("reconnecting", ({ delayMs }) => { $("status").textContent = `reconnecting in ${delayMs} ms`; });
    client.on("resumed", ({ group, answer }) => { if (group === `room:${room}` && answer?.names) presence(answer.names); });
    client.on("recovered", ({ group, recovered }) => {
      if (!recovered && group === `room:${room}`) line("(earlier messages are no longer kept)", "sys");
    });
    client.on("message", (data, envelope) => { if (envelope?.group === `room:${room}`) line(`${data.from}: ${data.text}`); });
    client.on("presence", (notice) => {
      if (notice.group !== `room:${room}`) return;
      const who = notice.principalId ?? "someone";
      line(notice.event === "join" ? `${who} joined` : `${who} left`, "sys");
      refreshPresence().catch(() => {});
    });
    client.on("error", (data) => line(`error: ${data.message ?? data}`, "sys"));
    await client.connect();
  }
  room = wanted;
  const group = `room:${room}`;
  // since 0 the first time: the room replays what it kept; again later: the seq this page is at
  const answer = /** @type {any} */ (await client.join(group, client.groups.has(group) ? {} : { since: 0 }));
  $("room-name").textContent = room;
  if (answer?.names) presence(answer.names);
  $("message").disabled = false;
  $("send").disabled = false;
  $("message").focus();
}

$("join").addEventListener("click", () => { join().catch((err) => line(`could not join: ${err.message}`, "sys")); });
$("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || !client) return;
  client.send("sendmessage", { room, text });
  $("message").value = "";
});
