// wsgw-client.js: a browser (and Node >= 22, or 20 with --experimental-websocket) client for a wsgw
// WebSocket API. A plain ES module: no build step; types are JSDoc (editors and `tsc --checkJs` read them).
//
//   import { WsgwClient } from "/dev/lib/wsgw-client.js";
//   const client = new WsgwClient("ws://127.0.0.1:8080/dev", { query: { name: "ada" }, joinGroup });
//   client.on("message", (data, envelope) => ...);   // `data.type`, or "*" for every frame
//   client.on("presence", (notice) => ...);           // {group, event: "join"|"leave", connectionId, principalId}
//   await client.connect();
//   await client.join("room:lobby");                  // joinGroup asks the app; resumed after reconnects
//   client.send("sendmessage", { room: "lobby", text: "hi" });
//
// Groups are wsgw's (docs/groups.md): a group with `envelope: true` delivers {"group", "seq", "data"}; the
// client remembers the last seq of each group it joined and, after a reconnect, joins again with
// `since` = that seq so the gateway replays what was missed (in order, before live frames, without
// duplicates), then says {"group", "recovered": true|false}. recovered false: the history no longer reaches
// back (trimmed, expired, or the node restarted on the in-memory registry, whose numbering starts again at 1);
// the client then simply follows the seqs it receives from there on, and the app reloads what it shows.
// Reconnects with exponential backoff and full jitter. An application-level heartbeat (`{"action": "ping"}`
// by default) finds dead connections that TCP does not.

/**
 * @typedef {object} ClientOptions
 * @property {string} [token] credential sent as `?{tokenParam}=` (browsers cannot set headers on a WebSocket)
 * @property {string} [tokenParam] query parameter for the token (default "token")
 * @property {Record<string, string>} [query] other query parameters (e.g. { name: "ada" })
 * @property {string[]} [protocols] WebSocket subprotocols to offer
 * @property {(group: string, connectionId: string, since: number | null) => Promise<unknown>} [joinGroup]
 *   adds this connection to a group, replaying after `since` when it is a number; resolves with the join's
 *   answer. Browsers give a route of their own API here (management paths are for servers); the default
 *   is the management API itself, `PUT {httpBase}/@groups/{group}/members/{connectionId}?since=N`, which
 *   answers only callers within the API's management.allowFrom (a service on the same host or network)
 * @property {string} [helloAction] action whose route answers `{"type":"hello","connectionId":...}` ("hello")
 * @property {string} [heartbeatAction] action sent as heartbeat ("ping"); null disables it
 * @property {number} [heartbeatMs] heartbeat interval (25000)
 * @property {number} [heartbeatTimeoutMs] no frame for this long after a heartbeat: reconnect (10000)
 * @property {number} [initialBackoffMs] first reconnect delay (250)
 * @property {number} [maxBackoffMs] cap of the delay (10000)
 * @property {boolean} [reconnect] reconnect after an unexpected close (true)
 * @property {typeof WebSocket} [WebSocket] WebSocket implementation (globalThis.WebSocket)
 * @property {typeof fetch} [fetch] fetch implementation (globalThis.fetch)
 */

/** @typedef {{group: string, seq: number, data: any}} Envelope */

export class WsgwClient {
  /**
   * @param {string} url ws:// or wss:// URL of the stage, e.g. ws://127.0.0.1:8080/dev
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = {
      tokenParam: "token", helloAction: "hello", heartbeatAction: "ping", heartbeatMs: 25000,
      heartbeatTimeoutMs: 10000, initialBackoffMs: 250, maxBackoffMs: 10000, reconnect: true, ...options,
    };
    /** @type {WebSocket | null} */ this.socket = null;
    /** @type {string | null} */ this.connectionId = null;
    /** @type {Map<string, number | null>} group -> last seq seen (null: none yet) */ this.groups = new Map();
    /** @type {Map<string, Set<Function>>} */ this.handlers = new Map();
    this.attempt = 0;
    this.closedByUser = false;
    /** @type {any} */ this.heartbeatTimer = null;
    /** @type {any} */ this.deadTimer = null;
    /** @type {any} */ this.retryTimer = null;
    /** @type {((id: string) => void) | null} */ this._helloWaiter = null;
  }

  /**
   * Subscribe: `open` (connectionId), `close` ({code, reason}), `reconnecting` ({attempt, delayMs}),
   * `resumed` ({group, since, answer}: a join, first or after a reconnect, was answered), `presence` (a
   * group's join/leave notice), `recovered` ({group, recovered, replayed?}: what a join with since replayed),
   * a `data.type` such as `message` (the data of an envelope, or a bare frame), or `*` for every frame.
   * @param {string} type
   * @param {Function} fn called with (data, envelope | null)
   * @returns {() => void} unsubscribe
   */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    /** @type {Set<Function>} */ (this.handlers.get(type)).add(fn);
    return () => this.handlers.get(type)?.delete(fn);
  }

  /** @param {string} type @param {...any} args */
  emit(type, ...args) {
    for (const fn of this.handlers.get(type) ?? []) {
      try { fn(...args); } catch (err) { console.error(`wsgw-client: ${type} handler failed`, err); }
    }
  }

  /** The URL with the token and query parameters. */
  socketUrl() {
    const url = new URL(this.url);
    for (const [k, v] of Object.entries(this.options.query ?? {})) url.searchParams.set(k, v);
    if (this.options.token) url.searchParams.set(this.options.tokenParam, this.options.token);
    return url.toString();
  }

  /** http(s) base of the stage, for the default join. */
  httpBase() {
    return this.url.replace(/^ws/, "http").replace(/[?#].*$/, "").replace(/\/$/, "");
  }

  /**
   * Open the socket; resolves with the connection id once the server said hello.
   * @returns {Promise<string>}
   */
  connect() {
    this.closedByUser = false;
    return new Promise((resolve, reject) => {
      const Impl = this.options.WebSocket ?? globalThis.WebSocket;
      const socket = new Impl(this.socketUrl(), this.options.protocols);
      this.socket = socket;
      let opened = false;
      this._helloWaiter = (id) => { opened = true; resolve(id); };
      socket.onopen = () => {
        this.attempt = 0;
        this._beat();
        this._raw({ action: this.options.helloAction });
      };
      socket.onmessage = (event) => this._received(event.data);
      let ended = false;
      /** @param {number} code @param {string} reason */
      const end = (code, reason) => {        // once per socket: some runtimes send only `error` on a refusal
        if (ended) return;
        ended = true;
        this._stopTimers();
        if (this.socket === socket) this.socket = null;
        this.emit("close", { code, reason });
        if (!opened) reject(new Error(`connection refused or lost (code ${code})`));
        if (!this.closedByUser && this.options.reconnect) this._scheduleReconnect();
      };
      socket.onclose = (event) => end(event.code, event.reason);
      socket.onerror = () => { if (socket.readyState !== 1) end(1006, "error"); };
    });
  }

  /**
   * Send `{action, ...payload}`.
   * @param {string} action route key
   * @param {Record<string, unknown>} [payload]
   * @returns {boolean} false when not connected (nothing is queued)
   */
  send(action, payload = {}) {
    return this._raw({ ...payload, action });
  }

  /**
   * Join a group; remembered and resumed (with since = the last seq seen) after reconnects.
   * @param {string} group the group's name, e.g. "room:lobby"
   * @param {{since?: number}} [options] since: replay what the group kept after this seq (0: all it kept)
   * @returns {Promise<unknown>} the join's answer (null when not connected yet: joined on connect)
   */
  async join(group, options = {}) {
    if (!this.groups.has(group) || typeof options.since === "number") this.groups.set(group, options.since ?? null);
    if (!this.connectionId) return null;
    return this._join(group, this.groups.get(group) ?? null);
  }

  /** Close for good (no reconnect). */
  close(code = 1000, reason = "") {
    this.closedByUser = true;
    clearTimeout(this.retryTimer);
    this._stopTimers();
    this.socket?.close(code, reason);
  }

  // ----- internals ---------------------------------------------------------------------------------

  /** @param {object} message */
  _raw(message) {
    const socket = this.socket;
    if (!socket || socket.readyState !== 1) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  /** @param {string} group @param {number | null} since */
  async _join(group, since) {
    const id = /** @type {string} */ (this.connectionId);
    const ask = this.options.joinGroup ?? ((g, c, s) => this._managementJoin(g, c, s));
    const answer = await ask(group, id, since);
    this.emit("resumed", { group, since, answer });
    return answer;
  }

  /** @param {string} group @param {string} id @param {number | null} since */
  async _managementJoin(group, id, since) {
    const doFetch = this.options.fetch ?? globalThis.fetch;
    const url = `${this.httpBase()}/@groups/${encodeURIComponent(group)}/members/${encodeURIComponent(id)}` +
      (since === null ? "" : `?since=${since}`);
    const response = await doFetch(url, { method: "PUT" });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error(`join ${group}: ${response.status} ${body?.message ?? ""}`);
    return body;
  }

  /** @param {any} raw */
  _received(raw) {
    this._alive();
    let data;
    try { data = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw)); }
    catch { this.emit("*", raw, null); this.emit("text", raw, null); return; }
    if (data && data.type === "hello" && typeof data.connectionId === "string") {
      this.connectionId = data.connectionId;
      const waiter = this._helloWaiter;
      this._helloWaiter = null;
      this.emit("open", data.connectionId);
      for (const [group, seq] of this.groups) {
        this._join(group, seq).catch((err) => this.emit("error", err));
      }
      if (waiter) waiter(data.connectionId);
      return;
    }
    if (data && data.action === "pong") return;
    if (data && typeof data.group === "string") {
      if (typeof data.seq === "number" && "data" in data) {          // an envelope: its seq is where we are
        const envelope = /** @type {Envelope} */ (data);
        if (this.groups.has(envelope.group)) this.groups.set(envelope.group, envelope.seq);
        this._dispatch(envelope.data, envelope);
        return;
      }
      if (typeof data.recovered === "boolean") { this.emit("recovered", data); return; }
      if (data.event === "join" || data.event === "leave") { this.emit("presence", data); return; }
    }
    this._dispatch(data, null);
  }

  /** @param {any} data @param {Envelope | null} envelope */
  _dispatch(data, envelope) {
    this.emit("*", data, envelope);
    if (data && typeof data.type === "string") this.emit(data.type, data, envelope);
  }

  _beat() {
    const { heartbeatAction, heartbeatMs } = this.options;
    if (!heartbeatAction) return;
    this.heartbeatTimer = setInterval(() => {
      if (this._raw({ action: heartbeatAction }) && !this.deadTimer) {
        this.deadTimer = setTimeout(() => this.socket?.close(4000, "heartbeat timeout"),
          this.options.heartbeatTimeoutMs);
      }
    }, heartbeatMs);
  }

  _alive() {
    clearTimeout(this.deadTimer);
    this.deadTimer = null;
  }

  _stopTimers() {
    clearInterval(this.heartbeatTimer);
    this._alive();
  }

  /** Exponential backoff with full jitter: a random delay in [0, min(max, initial * 2^attempt)]. */
  nextDelay() {
    const { initialBackoffMs, maxBackoffMs } = this.options;
    const ceiling = Math.min(maxBackoffMs, initialBackoffMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(Math.random() * ceiling);
  }

  _scheduleReconnect() {
    const delayMs = this.nextDelay();
    this.emit("reconnecting", { attempt: this.attempt, delayMs });
    this.connectionId = null;
    this.retryTimer = setTimeout(() => {
      this.connect().catch(() => {});        // a failed attempt closes, which schedules the next one
    }, delayMs);
  }
}
