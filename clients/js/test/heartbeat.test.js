// Dead and idle connections: the client answers the server's pings (the server closes a socket
// that sent nothing for two heartbeats, 50 s, with 4408), and its watchdog replaces a
// connection that went silent without closing, on both transports, losing nothing.

import assert from "node:assert/strict";
import { test } from "node:test";
import { newUser, recorded, startProxy, uploadOne, waitFor } from "./support.js";

test("an idle WebSocket stays open past two heartbeats: the client answers pings", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("idle");
  const { client, log, ids } = recorded({ token: user.token, transport: "websocket" });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  await new Promise((resolve) => setTimeout(resolve, 57000)); // the server pings at 25 s and 50 s
  assert.ok(log.frames.filter((f) => f.type === "ping").length >= 2, "the server pinged twice");
  assert.equal(log.frames.filter((f) => f.type === "hello").length, 1, "never closed for silence (4408)");
  assert.equal(client.state, "live");
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "events on the same socket");
  assert.deepEqual(ids(), [2, 3]);
});

for (const transport of ["websocket", "sse"]) {
  test(`${transport}: a connection that goes silent without closing is replaced, nothing lost`, async (t) => {
    const user = newUser();
    const workspace = await user.rest.createWorkspace("silent");
    const proxy = await startProxy();
    t.after(() => proxy.stop());
    // Heartbeats of 1 s as far as the watchdog knows: 2.5 s of silence is death. The server
    // still pings every 25 s, so only a frozen connection is that quiet while events flow.
    const options = transport === "sse" ? { sseKeepaliveMs: 1000 } : { heartbeatMs: 1000 };
    const { client, log, ids } = recorded({ token: user.token, baseUrl: proxy.url, transport, backoffFirstMs: 100, ...options });
    t.after(() => client.close());
    client.start();
    await waitFor(() => client.state === "live", "live");
    proxy.freeze();
    await uploadOne(user.rest, workspace.id); // sent into the frozen connection: never arrives there
    await waitFor(() => log.events.length === 2, "the events, through a new connection", 20000);
    assert.deepEqual(ids(), [2, 3]);
    assert.ok(log.states.some((s) => s.state === "reconnecting" && s.reason === "silent"), JSON.stringify(log.states));
    assert.equal(log.frames.filter((f) => f.type === "hello").length, 2);
    assert.equal(log.ready.length, 1, "resumed, not restarted");
  });
}
