// Node without a global WebSocket (Node 20's default; --no-experimental-websocket elsewhere):
// the client still works out of the box, over SSE, with the token in the Authorization header.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { API_URL, newUser, uploadOne, waitFor } from "./support.js";

const CLIENT = fileURLToPath(new URL("../src/index.js", import.meta.url));

// Runs in the child: prints its transport and each event id as JSON lines.
const CHILD = `
const { RealtimeClient } = await import(${JSON.stringify(CLIENT)});
const client = new RealtimeClient({
  baseUrl: process.env.API, token: process.env.TOKEN,
  onState: (state, info) => state === "live" && console.log(JSON.stringify({ live: info.transport, ws: typeof WebSocket })),
  onEvent: (event) => console.log(JSON.stringify({ id: event.id })),
});
client.start();
`;

test("no WebSocket in this Node: auto starts on SSE and delivers events", async (t) => {
  const user = newUser();
  const workspace = await user.rest.createWorkspace("no websocket");
  const child = spawn(process.execPath, ["--no-experimental-websocket", "--input-type=module", "-e", CHILD], {
    env: { ...process.env, API: API_URL, TOKEN: user.token },
    stdio: ["ignore", "pipe", "pipe"],
  });
  t.after(() => child.kill());
  const lines = [];
  let stderr = "";
  let buffer = "";
  child.stdout.on("data", (data) => {
    buffer += data;
    const parts = buffer.split("\n");
    buffer = parts.pop();
    lines.push(...parts.filter(Boolean).map((line) => JSON.parse(line)));
  });
  child.stderr.on("data", (data) => (stderr += data));
  await waitFor(() => lines.some((l) => l.live), `live (stderr: ${stderr})`);
  assert.deepEqual(lines[0], { live: "sse", ws: "undefined" });
  await uploadOne(user.rest, workspace.id);
  await waitFor(() => lines.filter((l) => l.id).length === 2, "two events in the child");
  assert.deepEqual(
    lines.filter((l) => l.id).map((l) => l.id),
    [2, 3],
  );
});
