// Realtime over the WebSocket against the real api: hello and live events, resume after the
// connection is cut (nothing lost, nothing twice), dedupe when an intermediary replays older
// events, resync on a foreign epoch, token refresh in place, and 4401 with no better token.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { RagClient } from "../src/index.js";
import { API_URL, consecutive, mintToken, newUser, recorded, startProxy, uploadOne, waitFor } from "./support.js";

test("hello, then live events in order; onReady once", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("live");
  const { client, log, ids } = recorded({ token: user.token, transport: "websocket" });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  assert.equal(client.transport, "websocket");
  assert.equal(log.ready.length, 1);
  assert.equal(log.ready[0].lastEventId, 1, "the workspace's member_added is the user's first event");
  assert.match(client.epoch, /^[0-9a-f]{20}$/);

  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "two events");
  assert.deepEqual(ids(), [2, 3]);
  assert.deepEqual(
    log.events.map((e) => e.type),
    ["document.created", "job.status_updated"],
  );
  assert.equal(log.events[0].payload.workspace_id, workspace.id);
  assert.equal(client.lastEventId, 3);
});

test("the connection is cut: the client resumes with its last id, no gap, no duplicate", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("resume");
  const proxy = await startProxy();
  t.after(() => proxy.stop());
  const { client, log, ids } = recorded({ token: user.token, baseUrl: proxy.url, transport: "websocket", backoffFirstMs: 200 });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "two live events");

  proxy.cut();
  await waitFor(() => client.state === "reconnecting", "the client noticing the cut");
  for (let i = 0; i < 3; i += 1) await uploadOne(user.rest, workspace.id); // published while it is away
  await proxy.restore();
  await waitFor(() => log.events.length === 8, "the six events of the outage");
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 10, "live again");
  assert.deepEqual(ids(), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(log.ready.length, 1, "a resume is not a fresh start: no REST reload asked");
  assert.ok(log.states.filter((s) => s.state === "live").length >= 2);
});

test("an intermediary that replays older events: each id is still delivered once", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("dedupe");
  // Resumes are sent to the api from three ids further back than the client asked.
  const proxy = await startProxy({ rewrite: (text) => text.replace(/([?&]last_event_id=)(\d+)/, (_, k, n) => k + Math.max(0, Number(n) - 3)) });
  t.after(() => proxy.stop());
  const { client, log, ids } = recorded({ token: user.token, baseUrl: proxy.url, transport: "websocket", backoffFirstMs: 100 });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  await uploadOne(user.rest, workspace.id);
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 4, "four live events");
  const before = log.frames.filter((f) => typeof f.id === "number").length;
  proxy.cut();
  await waitFor(() => client.state === "reconnecting", "the cut");
  await uploadOne(user.rest, workspace.id);
  await proxy.restore();
  await waitFor(() => log.events.length === 6, "the two new events");
  const received = log.frames.filter((f) => typeof f.id === "number").map((f) => f.id);
  assert.deepEqual(received.slice(before), [3, 4, 5, 6, 7], "the api replayed from 2: three old ids came again");
  assert.deepEqual(ids(), [2, 3, 4, 5, 6, 7], "delivered once each, in order");
});

test("a resume from another epoch: resync callback, the new epoch, a new baseline", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("epoch");
  const foreign = "0".repeat(20);
  const { client, log, ids } = recorded({ token: user.token, transport: "websocket", lastEventId: 1, epoch: foreign });
  t.after(() => client.close());
  client.start();
  await waitFor(() => log.resyncs.length === 1, "resync_required");
  assert.notEqual(log.resyncs[0].epoch, foreign);
  assert.equal(client.epoch, log.resyncs[0].epoch);
  assert.equal(client.lastEventId, null, "the old position means nothing in this stream");
  assert.equal(log.ready.length, 0, "not a fresh start: the resync callback is the reload");
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "live events after the resync");
  assert.deepEqual(ids(), [2, 3]);
  assert.equal(client.lastEventId, 3);
});

test("token_expiring: the provider's fresh token goes in an auth frame, the socket stays", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("refresh");
  const tokens = [mintToken(user.id, 4), mintToken(user.id, 3600)];
  let calls = 0;
  const provider = async () => tokens[Math.min(calls++, tokens.length - 1)];
  const { client, log, ids } = recorded({ token: provider, transport: "websocket" });
  t.after(() => client.close());
  client.start();
  await waitFor(() => log.authOk.length === 1, "auth_ok");
  assert.equal(log.expiring.length, 1, "less than 60 s left: token_expiring at once");
  // Past the first token's exp the same socket still delivers.
  await new Promise((resolve) => setTimeout(resolve, 5000));
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "events after the first token expired");
  assert.deepEqual(ids(), [2, 3]);
  assert.equal(log.frames.filter((f) => f.type === "hello").length, 1, "one connection all along");
  assert.equal(client.state, "live");
  assert.equal(calls, 2);
});

test("4401 and a provider with no better token: the client stops, unauthorized", async (t) => {
  const user = newUser();
  const shortLived = mintToken(user.id, 3);
  let calls = 0;
  const { client, log } = recorded({
    token: () => {
      calls += 1;
      return shortLived;
    },
    transport: "websocket",
  });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  await waitFor(() => log.unauthorized.length === 1, "unauthorized", 20000);
  assert.equal(client.state, "unauthorized");
  assert.equal(log.frames.filter((f) => f.type === "hello").length, 1);
  const hellos = log.states.length;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(log.states.length, hellos, "no reconnect after it stopped");
  assert.equal(calls, 3, "asked to connect, at token_expiring, and once after the 4401");

  // A token that was never valid (another secret): stopped at the handshake.
  const forged = recorded({ token: mintToken(user.id, 3600, "not-the-secret-" + randomUUID()), transport: "websocket" });
  t.after(() => forged.client.close());
  forged.client.start();
  await waitFor(() => forged.log.unauthorized.length === 1, "unauthorized at the handshake");
  assert.equal(forged.log.frames.length, 0, "no frame at all");
});

test("close() stops everything: no reconnect, no event", async () => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("close");
  const { client, log } = recorded({ token: user.token, transport: "websocket" });
  client.start();
  await waitFor(() => client.state === "live", "live");
  client.close();
  assert.equal(client.state, "closed");
  await uploadOne(user.rest, workspace.id);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(log.events.length, 0);
});

test("RagClient.realtime shares the base URL and the token", async (t) => {
  const user = newUser();
  const rest = new RagClient({ baseUrl: API_URL, token: user.token });
  const workspace = await rest.createWorkspace("shared");
  const events = [];
  const client = rest.realtime({ transport: "websocket", onEvent: (e) => events.push(e) });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  await uploadOne(rest, workspace.id);
  await waitFor(() => events.length === 2, "events");
  assert.ok(consecutive(events.map((e) => e.id)));
});

test("a gap (an intermediary skipped events): the client resumes from its last id, in order", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("gap");
  // The first resume is sent to the api two ids further on than the client asked: it would
  // skip two events; later resumes pass unchanged.
  let skipped = false;
  const proxy = await startProxy({
    rewrite: (text) =>
      text.replace(/([?&]last_event_id=)(\d+)/, (all, k, n) => {
        if (skipped) return all;
        skipped = true;
        return k + (Number(n) + 2);
      }),
  });
  t.after(() => proxy.stop());
  const { client, log, ids } = recorded({ token: user.token, baseUrl: proxy.url, transport: "websocket", backoffFirstMs: 100 });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 2, "two live events");
  proxy.cut();
  await waitFor(() => client.state === "reconnecting", "the cut");
  await uploadOne(user.rest, workspace.id);
  await uploadOne(user.rest, workspace.id);
  await proxy.restore();
  await waitFor(() => log.events.length === 6, "the four events of the outage");
  assert.ok(skipped);
  assert.deepEqual(ids(), [2, 3, 4, 5, 6, 7]);
  const received = log.frames.filter((f) => typeof f.id === "number").map((f) => f.id);
  assert.equal(received[2], 6, "the skipping resume's first event, which was not delivered");
  assert.equal(log.frames.filter((f) => f.type === "hello").length, 3, "first, skipped resume, real resume");
});

for (const transport of ["websocket", "sse"]) {
  test(`${transport}: a provider that keeps minting refused tokens stops the client, no loop`, async (t) => {
    const user = newUser();
    let calls = 0;
    const { client, log } = recorded({
      token: () => {
        calls += 1;
        return mintToken(user.id, 3600, `wrong-secret-${randomUUID()}`); // a new, invalid token each time
      },
      transport,
    });
    t.after(() => client.close());
    client.start();
    await waitFor(() => log.unauthorized.length === 1, "unauthorized");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(calls, 2, "the first token, and one more after its 4401");
    assert.equal(client.state, "unauthorized");
    assert.equal(log.frames.length, 0);
  });
}

test("4401 mid-connection with a provider that has a fresh token: reconnect and resume", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("reauth");
  // The first token expires in 3 s; the provider only has the fresh one from its third call on
  // (connect, token_expiring: the same short token, so no auth frame; after the 4401: fresh).
  const short = mintToken(user.id, 3);
  const fresh = mintToken(user.id, 3600);
  let calls = 0;
  const { client, log, ids } = recorded({ token: () => (++calls >= 3 ? fresh : short), transport: "websocket" });
  t.after(() => client.close());
  client.start();
  await waitFor(() => client.state === "live", "live");
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.frames.filter((f) => f.type === "hello").length === 2, "the reconnect after the 4401", 20000);
  await waitFor(() => client.state === "live", "live again");
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => log.events.length === 4, "events before and after");
  assert.deepEqual(ids(), [2, 3, 4, 5]);
  assert.equal(log.unauthorized.length, 0);
  assert.equal(log.ready.length, 1, "resumed with the new token, not restarted");
});
