// The REST helpers against the real api: what a user of the library checks (the workspace they
// created is listed, the upload is there, a refusal says why, in the contract's words).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { ApiError, RagClient, VERSION } from "../src/index.js";
import { API_URL, mintToken, newUser } from "./support.js";

test("the version is 0.1.0, as in package.json", async () => {
  const { readFile } = await import("node:fs/promises");
  const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(VERSION, "0.1.0");
  assert.equal(pkg.version, VERSION);
});

test("workspace, upload, documents, jobs: created, listed, read back", async () => {
  const { rest } = newUser();
  const workspace = await rest.createWorkspace("js client");
  assert.equal(workspace.name, "js client");
  assert.equal(workspace.role, "owner");
  const listed = await rest.listWorkspaces();
  assert.deepEqual(
    listed.items.map((w) => w.id),
    [workspace.id],
  );

  const uploaded = await rest.upload(workspace.id, [
    { name: "notes.txt", data: "The quartermaster counted every xylophone.\n", type: "text/plain" },
    { name: "guide.md", data: new TextEncoder().encode("# Guide\n\nAlign the mirror.\n") },
  ]);
  assert.deepEqual(uploaded.errors, []);
  assert.deepEqual(uploaded.documents.map((d) => d.filename).sort(), ["guide.md", "notes.txt"]);
  assert.ok(uploaded.documents.every((d) => d.status === "queued" && d.parse_job_id));

  const documents = await rest.listDocuments(workspace.id, { limit: 1 });
  assert.equal(documents.items.length, 1);
  assert.ok(documents.next_cursor, "a second page exists");
  const rest2 = await rest.listDocuments(workspace.id, { limit: 1, cursor: documents.next_cursor });
  assert.deepEqual(
    [documents.items[0].id, rest2.items[0].id].sort(),
    uploaded.documents.map((d) => d.id).sort(),
  );

  const notes = uploaded.documents.find((d) => d.filename === "notes.txt");
  const fetched = await rest.getDocument(notes.id);
  assert.equal(fetched.content_type, "text/plain");
  const jobs = await rest.listJobs(notes.id);
  assert.deepEqual(
    jobs.items.map((j) => [j.job_type, j.status]),
    [["parse", "queued"]],
  );
  assert.equal(await rest.deleteDocument(notes.id), undefined);
  await assert.rejects(rest.getDocument(notes.id), (err) => err instanceof ApiError && err.status === 404);
});

test("errors carry status, code, message and the extra fields", async () => {
  const { rest } = newUser();
  const workspace = await rest.createWorkspace("errors");

  // Every file refused: the status of the first refusal, and every refusal in details.errors.
  const refused = await rest.upload(workspace.id, [{ name: "empty.txt", data: "" }]).catch((err) => err);
  assert.ok(refused instanceof ApiError, String(refused));
  assert.equal(refused.status, 400);
  assert.equal(refused.code, "empty_file");
  assert.match(refused.message, /\S/);
  assert.deepEqual(
    refused.details.errors.map((e) => [e.filename, e.code]),
    [["empty.txt", "empty_file"]],
  );

  const notFound = await rest.getDocument(randomUUID()).catch((err) => err);
  assert.equal(notFound.status, 404);
  assert.equal(notFound.code, "not_found");

  const badK = await rest.search(workspace.id, "mirror", { k: 0 }).catch((err) => err);
  assert.equal(badK.status, 400);
  assert.equal(badK.code, "invalid_parameter");
  // Filters travel as repeated parameters: two ids are accepted, a bad type is refused.
  const filtered = await rest.search(workspace.id, "mirror", {
    filters: { document_id: [randomUUID(), randomUUID()], content_type: ["text/plain", "application/pdf"] },
  });
  assert.deepEqual(filtered.items, []);
  const badType = await rest.search(workspace.id, "mirror", { filters: { content_type: ["image/gif"] } }).catch((err) => err);
  assert.equal(badType.status, 400);
  assert.equal(badType.code, "invalid_parameter");
  const conversation = await rest.createConversation(workspace.id, "filters");
  const badWindow = await rest
    .postMessage(conversation.id, "why?", { filters: { created_after: "2026-02-01T00:00:00Z", created_before: "2026-01-01T00:00:00Z" } })
    .catch((err) => err);
  assert.equal(badWindow.status, 400);
  assert.equal(badWindow.code, "invalid_parameter");

  // A stranger's workspace is a 404, exactly like one that does not exist.
  const stranger = newUser();
  const hidden = await stranger.rest.listDocuments(workspace.id).catch((err) => err);
  assert.equal(hidden.status, 404);

  // A REST resync from another epoch: 409 with oldest_event_id and the stream's epoch.
  const events = await rest.listEvents({ after: 0 });
  assert.match(events.epoch, /^[0-9a-f]+$/);
  const resync = await rest.listEvents({ after: 0, epoch: "0".repeat(20) }).catch((err) => err);
  assert.equal(resync.status, 409);
  assert.equal(resync.code, "resync_required");
  assert.equal(resync.details.epoch, events.epoch);
  assert.equal(typeof resync.details.oldest_event_id, "number");
});

test("a bad token is a 401 unauthorized; the token may come from an async provider", async () => {
  const id = randomUUID();
  const expired = new RagClient({ baseUrl: API_URL, token: mintToken(id, -10) });
  const err = await expired.listWorkspaces().catch((e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 401);
  assert.equal(err.code, "unauthorized");

  let calls = 0;
  const provided = new RagClient({
    baseUrl: API_URL,
    token: async () => {
      calls += 1;
      return mintToken(id);
    },
  });
  const created = await provided.createWorkspace("provided");
  assert.equal((await provided.listWorkspaces()).items[0].id, created.id);
  assert.equal(calls, 2, "asked once per request");
});
