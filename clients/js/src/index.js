// @rag-engine/client: the official JavaScript client of rag-engine (docs/contract.md, docs/realtime.md).
//
// One dependency-free ES module, no build step, for browsers and Node 20+. The rag-engine console
// imports this very file (the api serves it as /rag-client.js), so the console and every other
// client share one copy of the realtime rules:
//
// - events are delivered exactly once, in id order (duplicates dropped, a gap resumes instead of
//   skipping ahead); a reconnect resumes with `last_event_id` and `epoch`;
// - `resync_required` and a fresh start tell the app to load its state over REST;
// - tokens come from a provider that is asked before every connection and when the server says
//   the token is expiring (WebSocket: an `auth` frame; SSE: a reconnect that loses nothing);
// - close codes decide what happens next (4401 re-authenticates once, 4408 resumes at once,
//   4429 backs off long, anything else backs off exponentially with equal jitter);
// - the WebSocket comes first; Server-Sent Events (GET /api/events/stream) are the fallback.

export const VERSION = "0.1.0";

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30000;
const TOO_MANY_BACKOFF_MS = 60000; // 4429: another socket of this user must go first; retrying soon is pointless
const WS_HEARTBEAT_MS = 25000; // the server's ping interval on the WebSocket
const SSE_KEEPALIVE_MS = 15000; // the server's `: keepalive` comment interval on SSE
const SILENCE_FACTOR = 2.5; // that many heartbeats without a byte: the connection is dead
const WS_FAILURES_BEFORE_SSE = 2;
const CONNECT_TIMEOUT_MS = 15000; // no hello by then: the connection is not going to work

// Close codes (docs/realtime.md "Close codes"); CLOSE_CLIENT is what this client uses when it
// drops a connection itself (a gap, silence, a refresh on SSE).
export const CloseCode = Object.freeze({
  UNAUTHORIZED: 4401,
  TOO_SLOW: 4408,
  TOO_MANY_CONNECTIONS: 4429,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  SERVER_ERROR: 1011,
  CLIENT: 4000,
});

// ---------------------------------------------------------------- errors

/** A non-2xx answer of the api: its status, the contract's `error.code` and `error.message`,
 * and the fields beside `error` (`oldest_event_id` and `epoch` of a 409, `errors` of an upload
 * that refused every file) in `details`. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = body && typeof body === "object" && body.error && typeof body.error === "object" ? body.error : {};
    super(typeof error.message === "string" ? error.message : `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = typeof error.code === "string" ? error.code : null;
    this.body = body;
    const details = {};
    if (body && typeof body === "object" && !Array.isArray(body)) {
      for (const [key, value] of Object.entries(body)) if (key !== "error") details[key] = value;
    }
    this.details = details;
  }
}

// ---------------------------------------------------------------- shared helpers

function defaultBaseUrl() {
  // In a page served by the api the same origin is the api; elsewhere the caller must say.
  if (typeof location !== "undefined" && location.origin && location.origin !== "null") return location.origin;
  throw new TypeError("baseUrl is required outside a browser page");
}

function trimBase(baseUrl) {
  return (baseUrl || defaultBaseUrl()).replace(/\/+$/, "");
}

// A token option is a string or a provider (sync or async); either way callers get a function.
function tokenProvider(token) {
  if (typeof token === "function") return async () => token();
  return async () => token;
}

const inBrowser = typeof window !== "undefined" && typeof document !== "undefined";

// ---------------------------------------------------------------- REST

/** Thin wrappers over the routes of docs/contract.md §4. Every method resolves with the
 * decoded JSON body (undefined for 204) or rejects with an ApiError. */
export class RagClient {
  /**
   * @param {object} options
   * @param {string} [options.baseUrl] the api's origin (default: the page's origin)
   * @param {string | (() => string | Promise<string>)} options.token a JWT or a provider of the current one
   * @param {typeof fetch} [options.fetch]
   */
  constructor(options = {}) {
    this.baseUrl = trimBase(options.baseUrl);
    this.token = options.token;
    this._tokenOf = tokenProvider(options.token);
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
  }

  /** Any route: `body` is sent as JSON, or as is when it is FormData. */
  async request(method, path, body, query) {
    const token = await this._tokenOf();
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const init = { method, headers };
    if (typeof FormData !== "undefined" && body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await this._fetch(this.baseUrl + path + queryString(query), init);
    let data;
    if (response.status !== 204) {
      const text = await response.text();
      try {
        data = text ? JSON.parse(text) : undefined;
      } catch {
        data = undefined;
      }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  createWorkspace(name) {
    return this.request("POST", "/api/workspaces", { name });
  }
  listWorkspaces() {
    return this.request("GET", "/api/workspaces");
  }
  addMember(workspaceId, userId, role = "member") {
    return this.request("POST", `/api/workspaces/${seg(workspaceId)}/members`, { user_id: userId, role });
  }
  removeMember(workspaceId, userId) {
    return this.request("DELETE", `/api/workspaces/${seg(workspaceId)}/members/${seg(userId)}`);
  }

  /** `files`: File/Blob objects (a Blob is named "blob" unless it has a name), or
   * `{name, data, type}` with data a string, ArrayBuffer, typed array or Blob. */
  upload(workspaceId, files) {
    const form = new FormData();
    for (const file of files) {
      if (typeof Blob !== "undefined" && file instanceof Blob) form.append("files", file, file.name || "blob");
      else {
        const blob = file.data instanceof Blob ? file.data : new Blob([file.data], { type: file.type || "application/octet-stream" });
        form.append("files", blob, file.name);
      }
    }
    return this.request("POST", `/api/workspaces/${seg(workspaceId)}/documents/upload`, form);
  }
  listDocuments(workspaceId, { status, limit, cursor } = {}) {
    return this.request("GET", `/api/workspaces/${seg(workspaceId)}/documents`, undefined, { status, limit, cursor });
  }
  getDocument(documentId) {
    return this.request("GET", `/api/documents/${seg(documentId)}`);
  }
  listJobs(documentId) {
    return this.request("GET", `/api/documents/${seg(documentId)}/jobs`);
  }
  reprocess(documentId) {
    return this.request("POST", `/api/documents/${seg(documentId)}/reprocess`);
  }
  deleteDocument(documentId) {
    return this.request("DELETE", `/api/documents/${seg(documentId)}`);
  }
  /** `filters`: `{document_id?: string[], content_type?: string[], created_after?, created_before?}`
   * (docs/api.md "Search"); the arrays become repeated parameters. */
  search(workspaceId, q, { k, filters } = {}) {
    return this.request("GET", `/api/workspaces/${seg(workspaceId)}/search`, undefined, { q, k, ...filters });
  }
  createConversation(workspaceId, title) {
    return this.request("POST", `/api/workspaces/${seg(workspaceId)}/conversations`, { title });
  }
  listConversations(workspaceId) {
    return this.request("GET", `/api/workspaces/${seg(workspaceId)}/conversations`);
  }
  listMessages(conversationId) {
    return this.request("GET", `/api/conversations/${seg(conversationId)}/messages`);
  }
  /** `filters`: the passages the answer may use, as the search's. */
  postMessage(conversationId, content, { filters } = {}) {
    const body = filters === undefined ? { content } : { content, filters };
    return this.request("POST", `/api/conversations/${seg(conversationId)}/messages`, body);
  }
  /** REST resync: the caller's events after `after`; a 409 (`resync_required`) carries
   * `oldest_event_id` and `epoch` in the error's `details`. */
  listEvents({ after, limit, epoch } = {}) {
    return this.request("GET", "/api/events", undefined, { after, limit, epoch });
  }

  /** A realtime connection with this client's base URL, token and fetch; `start()` it. */
  realtime(options = {}) {
    return new RealtimeClient({ baseUrl: this.baseUrl, token: this.token, fetch: this._fetch, ...options });
  }
}

function seg(value) {
  return encodeURIComponent(String(value));
}

function queryString(query) {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (Array.isArray(value)) for (const item of value) params.append(key, String(item));
    else if (value !== undefined && value !== null) params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

// ---------------------------------------------------------------- realtime

/**
 * The user's event stream over the WebSocket /api/ws, or Server-Sent Events /api/events/stream.
 *
 * States (`onState(state, info)`): "connecting", "live" (hello received), "reconnecting" (a
 * timer runs; `info.delayMs`, `info.code`), "unauthorized" (stopped: the token provider had no
 * better token), "closed" (close() was called).
 */
export class RealtimeClient {
  constructor(options = {}) {
    this.baseUrl = trimBase(options.baseUrl);
    this._tokenOf = tokenProvider(options.token);
    this._fetch = options.fetch || (globalThis.fetch && globalThis.fetch.bind(globalThis));
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    // Browsers cannot set headers on a WebSocket; elsewhere the header keeps tokens out of URLs.
    this._tokenInQuery = options.tokenInQuery ?? inBrowser;
    this._mode = options.transport || "auto"; // "auto" | "websocket" | "sse"
    this._fallbackAfter = options.fallbackAfter ?? WS_FAILURES_BEFORE_SSE;
    this._heartbeatMs = options.heartbeatMs ?? WS_HEARTBEAT_MS;
    this._keepaliveMs = options.sseKeepaliveMs ?? SSE_KEEPALIVE_MS;
    this._connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    this._backoffFirstMs = options.backoffFirstMs ?? BACKOFF_FIRST_MS;
    this._backoffMaxMs = options.backoffMaxMs ?? BACKOFF_MAX_MS;
    this._tooManyBackoffMs = options.tooManyBackoffMs ?? TOO_MANY_BACKOFF_MS;
    this._on = {
      event: options.onEvent,
      ready: options.onReady,
      resync: options.onResync,
      state: options.onState,
      tokenExpiring: options.onTokenExpiring,
      authOk: options.onAuthOk,
      unauthorized: options.onUnauthorized,
      error: options.onError,
      frame: options.onFrame,
    };
    /** The id of the last event delivered (null: none yet, or forgotten at a resync). */
    this.lastEventId = options.lastEventId ?? null;
    /** The stream's epoch from the last hello or resync_required. */
    this.epoch = options.epoch ?? null;
    /** "websocket" or "sse": what the current (or next) connection uses. */
    // Without any WebSocket implementation (Node 20 without the flag), "auto" starts on SSE.
    this.transport = this._mode === "sse" || (this._mode === "auto" && !this._WebSocket) ? "sse" : "websocket";
    this.state = "idle";
    this._stopped = true;
    this._generation = 0; // bumped for every connection: callbacks of an older one are ignored
    this._conn = null;
    this._token = null; // the token of the current connection
    this._attempt = 0; // reconnects since the last hello
    this._wsFailures = 0; // WebSocket connections in a row that ended before a hello
    this._reauthenticating = false; // connecting with the provider's answer to a 4401, no hello yet
    this._timer = null;
    this._watchdog = null;
    this._lastLifeAt = 0;
  }

  /** Opens the stream (and keeps it open until close()). */
  start() {
    if (!this._stopped) return this;
    this._stopped = false;
    this._attempt = 0;
    this._reauthenticating = false;
    this._connect();
    return this;
  }

  /** Stops everything: the connection, timers, reconnects. */
  close() {
    this._stopped = true;
    this._generation += 1;
    clearTimeout(this._timer);
    this._stopWatchdog();
    this._dropConnection(1000, "bye");
    this._setState("closed", {});
  }

  // -------------------------------------------------------------- connecting

  async _connect(token) {
    if (this._stopped) return;
    const generation = ++this._generation;
    this._setState(this._attempt ? "reconnecting" : "connecting", { attempt: this._attempt, transport: this.transport });
    if (token === undefined) {
      try {
        token = await this._tokenOf();
      } catch (err) {
        this._report(err);
        if (generation === this._generation) this._closed(generation, CloseCode.SERVER_ERROR, "token provider failed");
        return;
      }
    }
    if (generation !== this._generation || this._stopped) return;
    if (!token) {
      this._unauthorized("the token provider gave no token");
      return;
    }
    this._token = token;
    if (this.transport === "sse") this._openSse(generation, token);
    else this._openWebSocket(generation, token);
  }

  _query(token) {
    const query = new URLSearchParams();
    if (token) query.set("token", token);
    if (this.lastEventId !== null) {
      query.set("last_event_id", String(this.lastEventId));
      if (this.epoch !== null) query.set("epoch", this.epoch);
    }
    const text = query.toString();
    return text ? `?${text}` : "";
  }

  _openWebSocket(generation, token) {
    const url = `${this.baseUrl.replace(/^http/, "ws")}/api/ws${this._query(this._tokenInQuery ? token : null)}`;
    const conn = { kind: "websocket", helloSeen: false, send: () => {}, close: () => {} };
    this._conn = conn;
    this._startWatchdog(generation, this._heartbeatMs);
    let ws;
    try {
      if (!this._WebSocket) throw new Error("no WebSocket implementation (pass the WebSocket option)");
      // `{headers}` as the second argument: Node's WebSocket (undici) and the `ws` package take it.
      ws = this._tokenInQuery ? new this._WebSocket(url) : new this._WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
    } catch (err) {
      this._report(err);
      setTimeout(() => this._closed(generation, CloseCode.ABNORMAL, "cannot open a WebSocket"), 0);
      return;
    }
    conn.send = (frame) => {
      if (ws.readyState === 1) ws.send(JSON.stringify(frame));
    };
    conn.close = (code, reason) => {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    };
    ws.onmessage = (message) => {
      if (generation !== this._generation) return;
      this._lastLifeAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this._onFrame(generation, conn, frame);
    };
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    // After an open socket's error a close event follows with the code. A handshake that fails
    // is over at its error: Node's WebSocket (undici) fires no close then and stays CONNECTING.
    ws.onerror = () => {
      if (!opened) {
        this._closed(generation, CloseCode.ABNORMAL, "cannot open the WebSocket");
        conn.close(CloseCode.CLIENT, "failed");
      }
    };
    ws.onclose = (event) => this._closed(generation, event.code, event.reason);
  }

  // SSE over fetch streaming in browsers too, not the native EventSource: fetch can send the
  // token in the Authorization header (EventSource can only put it in the URL), shows the status
  // and JSON error of a refused stream (EventSource only fires "error", so a 401 and a 429 look
  // the same), and leaves reconnecting to this client, which must change the URL on the way (a
  // new epoch after resync_required, a new token) where EventSource keeps its URL.
  async _openSse(generation, token) {
    const controller = new AbortController();
    const conn = { kind: "sse", helloSeen: false, send: () => {}, close: () => controller.abort() };
    this._conn = conn;
    this._startWatchdog(generation, this._keepaliveMs);
    let response;
    try {
      if (!this._fetch) throw new Error("no fetch implementation (pass the fetch option)");
      response = await this._fetch(`${this.baseUrl}/api/events/stream${this._query(null)}`, {
        headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
        signal: controller.signal,
        cache: "no-store",
      });
    } catch {
      this._closed(generation, CloseCode.ABNORMAL, "cannot open the event stream");
      return;
    }
    if (generation !== this._generation) {
      controller.abort();
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => undefined);
      const error = new ApiError(response.status, body);
      this._closed(generation, ...this._refusal(error));
      return;
    }
    this._lastLifeAt = Date.now();
    let ended = [CloseCode.ABNORMAL, "the event stream ended"];
    try {
      for await (const message of sseMessages(response.body, () => (this._lastLifeAt = Date.now()))) {
        if (generation !== this._generation) break;
        let frame;
        try {
          frame = JSON.parse(message.data);
        } catch {
          continue;
        }
        if (frame.type === "close") {
          const payload = frame.payload || {};
          ended = [payload.code ?? CloseCode.ABNORMAL, payload.reason || ""];
          break;
        }
        this._onFrame(generation, conn, frame);
      }
    } catch {
      // a cut connection: reconnect as after a dropped socket
    }
    controller.abort();
    this._closed(generation, ...ended);
  }

  // What an HTTP refusal of the event stream means, as the WebSocket's close code.
  _refusal(error) {
    if (error.status === 401) return [CloseCode.UNAUTHORIZED, error.message];
    if (error.status === 429) return [CloseCode.TOO_MANY_CONNECTIONS, error.message];
    if (error.status === 400) {
      // Our resume position was refused: start over fresh (hello gives a new baseline).
      this._report(error);
      this.lastEventId = null;
      this.epoch = null;
    }
    return [CloseCode.SERVER_ERROR, error.message];
  }

  // -------------------------------------------------------------- frames

  _onFrame(generation, conn, frame) {
    if (this._on.frame) this._call("frame", frame);
    if (generation !== this._generation) return;
    switch (frame.type) {
      case "hello": {
        const payload = frame.payload || {};
        conn.helloSeen = true;
        this._reauthenticating = false;
        this._attempt = 0;
        this._wsFailures = 0;
        this.epoch = payload.epoch ?? this.epoch;
        const fresh = this.lastEventId === null;
        // Everything after hello's id arrives live; REST holds the state up to it.
        if (fresh) this.lastEventId = payload.last_event_id;
        this._setState("live", { transport: conn.kind });
        if (fresh) this._call("ready", { lastEventId: this.lastEventId, epoch: this.epoch });
        return;
      }
      case "ping":
        conn.send({ type: "pong" });
        return;
      case "pong":
        return;
      case "resync_required": {
        // The history we lack is gone (or belongs to another epoch): the server continues live
        // from a position we do not know, so the next event's id becomes the baseline.
        const payload = frame.payload || {};
        this.lastEventId = null;
        this.epoch = payload.epoch ?? this.epoch;
        this._call("resync", payload);
        return;
      }
      case "token_expiring":
        this._call("tokenExpiring", frame.payload || {});
        this._refresh(generation, conn);
        return;
      case "auth_ok":
        this._call("authOk", frame.payload || {});
        return;
      case "error":
        this._call("error", frame.payload || {});
        return;
      default:
        break;
    }
    if (typeof frame.id !== "number") return;
    if (this.lastEventId !== null && frame.id <= this.lastEventId) return; // delivered already
    if (this.lastEventId !== null && frame.id > this.lastEventId + 1) {
      // Ids are consecutive per user: a gap means something broke on the way. Resume from our
      // last id rather than deliver out of order.
      this._restart(CloseCode.CLIENT, "gap");
      return;
    }
    this.lastEventId = frame.id;
    this._call("event", frame);
  }

  // token_expiring: a fresh token goes in an auth frame (WebSocket) or a reconnect (SSE); the
  // same token again: nothing until the server closes with 4401.
  async _refresh(generation, conn) {
    let token;
    try {
      token = await this._tokenOf();
    } catch (err) {
      this._report(err);
      return;
    }
    if (generation !== this._generation || this._stopped || !token || token === this._token) return;
    this._token = token;
    if (conn.kind === "websocket") conn.send({ type: "auth", payload: { token } });
    else this._restart(1000, "token refresh", token);
  }

  // -------------------------------------------------------------- closing and reconnecting

  // Drops the current connection on purpose and connects again at once, resuming.
  _restart(code, reason, token) {
    this._generation += 1;
    this._stopWatchdog();
    this._dropConnection(code, reason);
    this._connect(token);
  }

  _dropConnection(code, reason) {
    const conn = this._conn;
    this._conn = null;
    if (conn) conn.close(code, reason);
  }

  _closed(generation, code, reason) {
    if (generation !== this._generation) return;
    const conn = this._conn;
    this._conn = null;
    this._stopWatchdog();
    this._generation += 1;
    if (this._stopped) return;
    if (code === CloseCode.UNAUTHORIZED) {
      this._reauthenticate(reason);
      return;
    }
    const failedToOpen = !(conn && conn.helloSeen) && code !== CloseCode.TOO_MANY_CONNECTIONS;
    if (failedToOpen && this._mode === "auto" && this.transport === "websocket") {
      this._wsFailures += 1;
      if (this._wsFailures >= this._fallbackAfter) {
        // The WebSocket cannot be opened from here (a proxy that strips Upgrade, a blocked
        // port): try the same stream over plain HTTP.
        this._wsFailures = 0;
        this.transport = "sse";
        this._schedule(0, code, reason);
        return;
      }
    } else if (failedToOpen && this._mode === "auto" && this._WebSocket) {
      // SSE failed too: the api is unreachable (down, restarting), not only its WebSocket.
      // Back to the WebSocket, the first choice, so that a server that comes back is not
      // held on SSE for good: tries go WebSocket, WebSocket, SSE, ... until one says hello.
      this.transport = "websocket";
    }
    let delay;
    if (code === CloseCode.TOO_SLOW) delay = 0;
    else if (code === CloseCode.TOO_MANY_CONNECTIONS) delay = this._tooManyBackoffMs * (0.5 + Math.random() / 2);
    else delay = this._backoff();
    this._schedule(delay, code, reason);
  }

  // Exponential backoff with "equal jitter": half the step is fixed, half random, so clients
  // that lost the same replica spread out but none retries at once.
  _backoff() {
    const step = Math.min(this._backoffMaxMs, this._backoffFirstMs * 2 ** this._attempt);
    return step / 2 + Math.random() * (step / 2);
  }

  _schedule(delayMs, code, reason) {
    this._attempt += 1;
    this._setState("reconnecting", { code, reason, delayMs, attempt: this._attempt, transport: this.transport });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._connect(), delayMs);
  }

  // 4401: one more token from the provider; a different one reconnects, the same one stops,
  // and so does a refusal of that new token before its hello (a provider that keeps minting
  // tokens the server refuses must not become a reconnect loop).
  async _reauthenticate(reason) {
    if (this._reauthenticating) {
      this._unauthorized(reason);
      return;
    }
    const refused = this._token;
    let token = null;
    try {
      token = await this._tokenOf();
    } catch (err) {
      this._report(err);
    }
    if (this._stopped) return;
    if (token && token !== refused) {
      this._reauthenticating = true;
      this._connect(token);
    } else this._unauthorized(reason);
  }

  _unauthorized(reason) {
    this._stopped = true;
    this._generation += 1;
    clearTimeout(this._timer);
    this._stopWatchdog();
    this._dropConnection(1000, "unauthorized");
    this._setState("unauthorized", { reason });
    this._call("unauthorized", { reason: reason || "unauthorized" });
  }

  // A connection silent for 2.5 heartbeats is dead (a vanished peer sends no FIN), and one with
  // no hello after connectTimeoutMs is not going to open (a proxy that holds the upgrade): both
  // end as a dropped connection (before a hello, a WebSocket failure that counts to the fallback).
  _startWatchdog(generation, heartbeatMs) {
    this._stopWatchdog();
    this._lastLifeAt = Date.now();
    const startedAt = this._lastLifeAt;
    const silenceMs = heartbeatMs * SILENCE_FACTOR;
    this._watchdog = setInterval(
      () => {
        if (generation !== this._generation) return;
        const conn = this._conn;
        const opening = conn && !conn.helloSeen && Date.now() - startedAt > this._connectTimeoutMs;
        if (opening || Date.now() - this._lastLifeAt > silenceMs) {
          this._closed(generation, CloseCode.ABNORMAL, opening ? "no hello" : "silent"); // from here its events are ignored
          if (conn) conn.close(CloseCode.CLIENT, "silent");
        }
      },
      Math.max(50, Math.min(1000, silenceMs / 5)),
    );
  }

  _stopWatchdog() {
    clearInterval(this._watchdog);
    this._watchdog = null;
  }

  // -------------------------------------------------------------- callbacks

  _setState(state, info) {
    this.state = state;
    this._call("state", state, { transport: this.transport, ...info });
  }

  // A callback that throws must not break the stream: its error goes to onError.
  _call(name, ...args) {
    const callback = this._on[name];
    if (!callback) return;
    try {
      const result = callback(...args);
      if (result && typeof result.catch === "function") result.catch((err) => this._report(err));
    } catch (err) {
      if (name === "error") console.error(err);
      else this._report(err);
    }
  }

  _report(err) {
    if (this._on.error) this._call("error", err);
  }
}

// ---------------------------------------------------------------- SSE parsing

/** The messages of a text/event-stream body (the WHATWG rules: `field: value` lines, a blank
 * line ends a message, lines starting with ":" are comments). `onBytes` is called for every
 * chunk read, comments included, which is how a keepalive counts as life. */
export async function* sseMessages(body, onBytes = () => {}) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let message = { event: "", data: [], id: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onBytes();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (message.data.length) yield { event: message.event || "message", data: message.data.join("\n"), id: message.id };
          message = { event: "", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") message.data.push(value);
        else if (field === "event") message.event = value;
        else if (field === "id") message.id = value;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
