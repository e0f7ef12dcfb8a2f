// The browser chat of the example API: rooms, messages and presence over wsgw-client.js.
import { WsgwClient } from "./lib/wsgw-client.js";

const $ = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
const stage = location.pathname.split("/")[1] || "dev";
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

function presence(members) {
  $("presence").replaceChildren(...members.map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    return li;
  }));
}

async function join() {
  const name = $("name").value.trim();
  room = $("room").value.trim() || "lobby";
  if (!name) { $("name").focus(); return; }
  if (!client) {
    client = new WsgwClient(wsUrl, { query: { name }, joinBody: { name } });
    client.on("open", () => { $("status").textContent = "connected"; });
    client.on("reconnecting", ({ delayMs }) => { $("status").textContent = `reconnecting in ${delayMs} ms`; });
    client.on("resumed", ({ answer }) => { if (answer?.members) presence(answer.members); });
    client.on("message", (data) => line(`${data.from}: ${data.text}`));
    client.on("joined", (data) => { line(`${data.name} joined`, "sys"); presence(data.members); });
    client.on("left", (data) => { line(`${data.name ?? "someone"} left`, "sys"); presence(data.members); });
    client.on("error", (data) => line(`error: ${data.message ?? data}`, "sys"));
    await client.connect();
  }
  const answer = await client.join(room);
  $("room-name").textContent = room;
  if (answer?.members) presence(answer.members);
  $("message").disabled = false;
  $("send").disabled = false;
  $("message").focus();
}

$("join").addEventListener("click", () => { join().catch((err) => line(`could not join: ${err.message}`, "sys")); });
$("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || !client) return;
  client.send("say", { room, text });
  $("message").value = "";
});
