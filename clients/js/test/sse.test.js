// Realtime over Server-Sent Events (GET /api/events/stream) against the real api: asked for
// explicitly, resumed after a cut, refreshed by reconnecting, and chosen by itself when the
// WebSocket cannot be opened (a proxy that refuses upgrades).

import assert from "node:assert/strict";
import { test } from "node:test";
import { mintToken, newUser, recorded, startProxy, uploadOne, waitFor } from "./support.js";

test("transport sse: hello, live events, resume after a cut", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("sse");
  const proxy = await startProxy({ refuseUpgrade: true }); // so a WebSocket could not be what delivers
  t.after(() => proxy.stop());
  const { client, log, ids } = recorded({ token: user.token, baseUrl: proxy.url, transport: "sse", backoffFirstMs: 200 });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  assert.equal(client.transport, "sse");
  assert.equal(log.ready.length, 1);
  assert.equal(log.ready[0].lastEventId, 1);
  assert.match(client.epoch, /^[0-9a-f]{20}$/);

  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "two live events");
  assert.deepEqual(
    log.events.map((e) => e.type),
    ["document.created", "job.status_updated"],
  );

  proxy.cut();
  await waitFor(() => client.state === "reconnecting", "the client noticing the cut");
  for (let i = 0; i < 2; i += 1) await uploadOne(user.rest, workspace.id);
  await proxy.restore();
  await waitFor(() => log.events.length === 6, "the events of the outage");
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 8, "live again");
  assert.deepEqual(ids(), [2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(log.ready.length, 1, "resumed, not restarted");
  assert.equal(client.transport, "sse");
});

test("sse: token_expiring makes the client reconnect with the fresh token, losing nothing", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("sse refresh");
  const tokens = [mintToken(user.id, 4), mintToken(user.id, 3600)];
  let calls = 0;
  const { client, log, ids } = recorded({ token: async () => tokens[Math.min(calls++, 1)], transport: "sse" });
  t.after(() => client.close());
  client.start();
  await waitFor(() => log.frames.filter((f) => f.type === "hello").length === 2, "the second stream's hello");
  assert.equal(log.expiring.length, 1, "only the short token's stream says it expires");
  await new Promise((resolve) => setTimeout(resolve, 5000)); // past the first token's exp
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "events on the refreshed stream");
  assert.deepEqual(ids(), [2, 3]);
  assert.equal(client.state, "live");
  assert.equal(log.unauthorized.length, 0);
  assert.equal(log.ready.length, 1);
});

test("sse: a stream refused with 401 and no better token stops the client", async (t) => {
  const user = newUser();
  const expired = mintToken(user.id, -5);
  const { client, log } = recorded({ token: expired, transport: "sse" });
  t.after(() => client.close());
  client.start();
  await waitFor(() => log.unauthorized.length === 1, "unauthorized");
  assert.equal(client.state, "unauthorized");
  assert.equal(log.frames.length, 0);
});

test("fallback: the WebSocket cannot be opened, so the same stream comes over SSE", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("fallback");
  const proxy = await startProxy({ refuseUpgrade: true });
  t.after(() => proxy.stop());
  const { client, log, ids } = recorded({ token: user.token, baseUrl: proxy.url, backoffFirstMs: 100 });
  t.after(() => client.close());
  assert.equal(client.transport, "websocket", "the WebSocket comes first");
  client.start();
  await waitFor(() => client.state === "live", "live", 30000).catch((err) => {
    throw new Error(`${err.message}; states: ${JSON.stringify(log.states)}; errors: ${log.errors}`);
  });
  assert.equal(client.transport, "sse");
  const failures = log.states.filter((s) => s.state === "reconnecting" && s.transport === "websocket");
  assert.ok(failures.length >= 1, JSON.stringify(log.states));
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "live events over SSE");
  assert.deepEqual(ids(), [2, 3]);
  assert.equal(log.ready.length, 1);
});

test("auto: while the api is unreachable the tries go back to the WebSocket after SSE fails", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("outage");
  const proxy = await startProxy();
  t.after(() => proxy.stop());
  const { client, log, ids } = recorded({ token: user.token, baseUrl: proxy.url, backoffFirstMs: 50, backoffMaxMs: 400 });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  assert.equal(client.transport, "websocket");
  proxy.cut();
  const tried = () => log.states.filter((s) => s.state === "reconnecting" && s.delayMs !== undefined).map((s) => s.transport);
  await waitFor(() => tried().lastIndexOf("websocket") > tried().indexOf("sse") && tried().includes("sse"), "a WebSocket try after an SSE one");
  await uploadOne(user.rest, workspace.id);
  await proxy.restore();
  await waitFor(() => log.events.length === 2, "the outage's events once the api is reachable");
  assert.deepEqual(ids(), [2, 3]);
  assert.equal(log.ready.length, 1);
});
