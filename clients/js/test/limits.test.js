// The per-user connection cap (WS_MAX_CONNECTIONS_PER_USER, WebSockets and SSE streams counted
// together): one connection too many is refused with 4429 (WebSocket) or 429 (SSE), and the
// client backs off long instead of retrying in a loop, then gets in once a place is free.

import assert from "node:assert/strict";
import { test } from "node:test";
import { newUser, recorded, waitFor } from "./support.js";

const CAP = Number(process.env.RAG_MAX_CONNECTIONS_PER_USER);

for (const transport of ["websocket", "sse"]) {
  test(`${transport}: one connection over the cap backs off (4429), then gets in`, async (t) => {
    assert.ok(CAP >= 1, "RAG_MAX_CONNECTIONS_PER_USER must be set");
    const user = newUser();
    const holders = [];
    for (let i = 0; i < CAP; i += 1) {
      const holder = recorded({ token: user.token, transport: i % 2 ? "sse" : "websocket" });
      t.after(() => holder.client.close());
      holder.client.start();
      holders.push(holder);
    }
    await waitFor(() => holders.every((h) => h.client.state === "live"), "the cap's connections live");

    const tooMany = 1500;
    const extra = recorded({ token: user.token, transport, tooManyBackoffMs: tooMany });
    t.after(() => extra.client.close());
    extra.client.start();
    await waitFor(() => extra.log.states.some((s) => s.code === 4429), "the refusal");
    const refusal = extra.log.states.find((s) => s.code === 4429);
    assert.equal(refusal.state, "reconnecting");
    assert.ok(refusal.delayMs >= tooMany / 2, `backed off ${refusal.delayMs} ms`);
    assert.equal(extra.log.ready.length, 0);
    assert.ok(holders.every((h) => h.client.state === "live"), "the others are untouched");

    holders[0].client.close();
    await waitFor(() => extra.client.state === "live", "in once a place is free");
    assert.equal(extra.log.ready.length, 1);
  });
}
