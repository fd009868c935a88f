// What the client tests share: the real api they run against (tests/e2e/test_js_client.py starts
// it and sets RAG_API_URL and RAG_JWT_SECRET), tokens minted like rag_core.tokens.mint_token,
// a TCP proxy that cuts, refuses or rewrites connections (fault injection on real sockets, the
// Node twin of rag_testing.faults.TcpProxy), and a recorder of what a RealtimeClient hands out.

import { createHmac, randomUUID } from "node:crypto";
import net from "node:net";
import { RagClient, RealtimeClient } from "../src/index.js";

export const API_URL = process.env.RAG_API_URL;
const SECRET = process.env.RAG_JWT_SECRET;
if (!API_URL || !SECRET) throw new Error("RAG_API_URL and RAG_JWT_SECRET must be set (tests/e2e/test_js_client.py does)");

const base64url = (data) => Buffer.from(data).toString("base64url");

/** An HS256 JWT for `userId`, valid `ttlSeconds` from now (negative: already expired). */
export function mintToken(userId, ttlSeconds = 3600, secret = SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = base64url(JSON.stringify({ sub: userId, iat: now, exp: now + ttlSeconds, jti: randomUUID().replace(/-/g, "") }));
  const signature = createHmac("sha256", secret).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${signature}`;
}

/** A new user with a token and a REST client. */
export function newUser() {
  const id = randomUUID();
  const token = mintToken(id);
  return { id, token, rest: new RagClient({ baseUrl: API_URL, token }) };
}

/** Uploads one small text file: without workers that publishes exactly two events to each
 * member (document.created, job.status_updated parse queued). */
export async function uploadOne(rest, workspaceId, name = `${randomUUID()}.txt`) {
  const result = await rest.upload(workspaceId, [{ name, data: `${name}: ${randomUUID()}\n`, type: "text/plain" }]);
  return result.documents[0];
}

export async function waitFor(predicate, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A RealtimeClient whose callbacks are recorded: `events` (frames), `states`, `frames`
 * (every frame received, control frames included), `ready`, `resyncs`, `unauthorized`. */
export function recorded(options) {
  const log = { events: [], states: [], frames: [], ready: [], resyncs: [], unauthorized: [], errors: [], authOk: [], expiring: [] };
  const client = new RealtimeClient({
    baseUrl: API_URL,
    onEvent: (frame) => log.events.push(frame),
    onState: (state, info) => log.states.push({ state, ...info }),
    onFrame: (frame) => log.frames.push(frame),
    onReady: (info) => log.ready.push(info),
    onResync: (payload) => log.resyncs.push(payload),
    onUnauthorized: (info) => log.unauthorized.push(info),
    onError: (err) => log.errors.push(err),
    onAuthOk: (payload) => log.authOk.push(payload),
    onTokenExpiring: (payload) => log.expiring.push(payload),
    ...options,
  });
  return { client, log, ids: () => log.events.map((e) => e.id) };
}

/** Asserts ids are consecutive and unique: every event exactly once, in order. */
export function consecutive(ids) {
  for (let i = 1; i < ids.length; i += 1) if (ids[i] !== ids[i - 1] + 1) return false;
  return true;
}

/**
 * A TCP proxy to the api on 127.0.0.1. `cut()` resets every connection and refuses new ones,
 * `restore()` listens again on the same port, `freeze()` silences the open connections. `refuseUpgrade`: a connection whose request asks
 * for a WebSocket is answered 501 and closed (a proxy that cannot pass WebSockets). `rewrite(text)`: applied to
 * what the client sends (latin1 text), e.g. to resume from an older id than the client asked.
 */
export async function startProxy({ refuseUpgrade = false, rewrite = null } = {}) {
  const target = new URL(API_URL);
  const sockets = new Set();
  const frozen = new WeakSet(); // connections that pass nothing any more, in either direction
  let server = null;
  let port = 0;
  const track = (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  };
  const onConnection = (client) => {
    track(client);
    const upstream = net.connect(Number(target.port), target.hostname);
    track(upstream);
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("data", (data) => {
      if (!frozen.has(client)) client.write(data);
    });
    client.on("data", (data) => {
      if (frozen.has(client)) return;
      let text = data.toString("latin1");
      if (refuseUpgrade && /^upgrade:\s*websocket/im.test(text)) {
        // What a proxy that cannot pass WebSockets answers.
        upstream.destroy();
        client.end("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      if (rewrite) text = rewrite(text);
      upstream.write(Buffer.from(text, "latin1"));
    });
  };
  const listen = () =>
    new Promise((resolve, reject) => {
      server = net.createServer(onConnection);
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        port = server.address().port;
        resolve();
      });
    });
  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get connections() {
      return sockets.size;
    },
    cut() {
      if (server) server.close();
      server = null;
      for (const socket of sockets) socket.resetAndDestroy ? socket.resetAndDestroy() : socket.destroy();
    },
    /** The open connections stay open but pass nothing more: a peer that vanished without a
     * FIN (a closed laptop, an expired NAT entry). New connections work. */
    freeze() {
      for (const socket of sockets) frozen.add(socket);
    },
    async restore() {
      if (!server) await listen();
    },
    stop() {
      this.cut();
    },
  };
}
