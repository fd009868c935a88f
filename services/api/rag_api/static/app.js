// rag-engine console: plain JavaScript, no build step, no framework.
//
// REST for actions and initial state; the documents table and the conversation are then
// driven only by the realtime stream (docs/contract.md §5) through the official client
// (clients/js, served by the api as /rag-client.js): it reconnects with backoff, resumes with
// last_event_id and epoch, and says when to reload over REST (a fresh start, resync_required).
// All text from users or the server goes into the page through textContent, never innerHTML.
//
// One module of about 750 lines, on purpose: the page loads it with no bundler, and its
// sections (helpers, sign in, workspaces, documents, jobs, upload, search, conversations,
// realtime) share one `state`; each section is marked by a rule below.
import { RealtimeClient } from "./rag-client.js";

const TOKEN_KEY = "rag.token";
const WORKSPACE_KEY = "rag.workspace";
const CONVERSATION_KEY = "rag.conversation";
const DOC_PAGE = 200; // the api's max page size
const DOC_MAX_ROWS = 2000; // the table stops loading pages here

const state = {
  token: null,
  userId: null,
  workspaces: [],
  workspaceId: null,
  docs: new Map(), // document id -> {id, filename, status, error, job, updated}
  deleted: new Set(), // ids seen in document.deleted: later events about them are ignored
  jobsDocId: null, // the document whose jobs panel is open
  jobs: new Map(), // job id -> job, for the jobs panel
  loading: false, // a REST reload of the table is in flight: events wait in `pending`
  pending: [],
  loadSeq: 0,
  conversationId: null,
  messages: new Map(), // message id -> message, with `length`: its content in code points
  messagesLoading: null, // the conversation whose messages are being fetched over REST
  waitingDeltas: [], // streaming events that could not be placed until that fetch returns
  passages: new Map(), // chunk id -> search hit (for citations)
};

const rt = {
  client: null, // the RealtimeClient while connected
  lastEventId: null, // the position of the last client, for the next one to resume from
  epoch: null,
};

// ---------------------------------------------------------------- small helpers

const $ = (selector) => document.querySelector(selector);

// el("td", {className: "x", dataset: {id}}, "text", childNode): strings become text nodes.
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "onclick") node.addEventListener("click", value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function setText(selector, text) {
  $(selector).textContent = text;
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function notice(text) {
  setText("#notice-text", text);
  $("#notice").hidden = false;
}

function clearNotice() {
  $("#notice").hidden = true;
}

class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
  describe() {
    return `${this.message} (${this.code || "error"}, HTTP ${this.status})`;
  }
}

function describe(err) {
  return err instanceof ApiError ? err.describe() : `Network error: ${err.message || err}`;
}

// fetch() with the token; JSON in and out; a non-2xx answer throws ApiError with the
// api's {"error": {"code", "message"}} in words.
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  const init = { method, headers };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  if (response.status !== 204) {
    const text = await response.text();
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const err = new ApiError(response.status, error.code, error.message || `HTTP ${response.status}`, data);
    if (response.status === 401) signOut(`The server refused the token: ${err.message}`);
    throw err;
  }
  return data;
}

// Runs an action and reports its failure in words instead of throwing.
async function attempt(what, action) {
  try {
    return await action();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) notice(`${what} failed: ${describe(err)}`);
    return undefined;
  }
}

// ---------------------------------------------------------------- sign in

function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

function takeTokenFromUrl() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = fragment.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function showSignIn(reason) {
  $("#console").hidden = true;
  $("#signin").hidden = false;
  $("#sign-out").hidden = true;
  setText("#user", "");
  $("#signin-reason").hidden = !reason;
  setText("#signin-reason", reason || "");
}

function signIn(token) {
  const claims = tokenClaims(token);
  if (!claims || !claims.sub) {
    showSignIn("That is not a JWT with a `sub` claim (a user id).");
    return;
  }
  if (claims.exp && claims.exp * 1000 < Date.now()) {
    showSignIn(`That token expired at ${new Date(claims.exp * 1000).toLocaleString()}.`);
    return;
  }
  disconnect(); // first: it keeps the position of the connection it stops
  if (state.userId !== claims.sub) {
    rt.lastEventId = null; // another user: another event stream
    rt.epoch = null;
  }
  state.token = token;
  state.userId = claims.sub;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#signin").hidden = true;
  $("#console").hidden = false;
  $("#sign-out").hidden = false;
  const expires = claims.exp ? `, token expires ${new Date(claims.exp * 1000).toLocaleString()}` : "";
  setText("#user", `user ${claims.sub}${expires}`);
  clearNotice();
  connect();
  loadWorkspaces();
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  disconnect();
  setConnection("offline", "signed out");
  showSignIn(reason);
}

// ---------------------------------------------------------------- workspaces

async function loadWorkspaces(selectId) {
  const data = await attempt("Loading workspaces", () => api("GET", "/api/workspaces"));
  if (!data) return;
  state.workspaces = data.items;
  const select = $("#workspace-select");
  select.replaceChildren(
    el("option", { value: "", disabled: true }, state.workspaces.length ? "choose a workspace" : "no workspace yet: create one"),
    ...state.workspaces.map((w) => el("option", { value: w.id }, w.name)),
  );
  const wanted = selectId || state.workspaceId || sessionStorage.getItem(WORKSPACE_KEY);
  const found = state.workspaces.find((w) => w.id === wanted) || (state.workspaces.length === 1 ? state.workspaces[0] : null);
  selectWorkspace(found ? found.id : null);
}

function selectWorkspace(id) {
  const workspace = state.workspaces.find((w) => w.id === id) || null;
  state.workspaceId = workspace ? workspace.id : null;
  $("#workspace-select").value = state.workspaceId || "";
  setText("#workspace-role", workspace ? `your role: ${workspace.role}` : "");
  $("#workspace-body").hidden = !workspace;
  closeJobs();
  $("#search-results").replaceChildren();
  setText("#search-status", "");
  $("#upload-errors").replaceChildren();
  setText("#upload-status", "");
  state.loadSeq += 1; // a load still in flight belongs to the previous workspace
  state.loading = false;
  state.pending = [];
  state.docs = new Map();
  renderDocuments();
  if (!workspace) return;
  sessionStorage.setItem(WORKSPACE_KEY, workspace.id);
  reloadDocuments();
  loadConversations();
}

async function createWorkspace(name) {
  const workspace = await attempt("Creating the workspace", () => api("POST", "/api/workspaces", { name }));
  if (workspace) {
    $("#workspace-name").value = "";
    await loadWorkspaces(workspace.id);
  }
}

// ---------------------------------------------------------------- documents table

// Loads the table over REST. Events that arrive meanwhile wait and are applied after,
// in order, so the table ends at the newest state whatever the timing.
async function reloadDocuments() {
  const workspaceId = state.workspaceId;
  if (!workspaceId) return;
  const seq = ++state.loadSeq;
  state.loading = true;
  state.pending = [];
  const rows = new Map();
  let cursor = null;
  try {
    do {
      const query = new URLSearchParams({ limit: String(DOC_PAGE) });
      if (cursor) query.set("cursor", cursor);
      const page = await api("GET", `/api/workspaces/${workspaceId}/documents?${query}`);
      if (seq !== state.loadSeq) return; // a newer reload (or another workspace) took over
      for (const doc of page.items) rows.set(doc.id, { ...doc, job: null, updated: doc.updated_at });
      cursor = page.next_cursor;
    } while (cursor && rows.size < DOC_MAX_ROWS);
  } catch (err) {
    if (seq === state.loadSeq) {
      finishLoad(state.docs); // keep what we had, and apply what arrived meanwhile
      if (!(err instanceof ApiError && err.status === 401)) notice(`Loading documents failed: ${describe(err)}`);
    }
    return;
  }
  finishLoad(rows);
}

function finishLoad(rows) {
  state.docs = rows;
  state.deleted = new Set();
  state.loading = false;
  const pending = state.pending;
  state.pending = [];
  for (const event of pending) applyEvent(event);
  renderDocuments();
}

function docFromEvent(payload) {
  let doc = state.docs.get(payload.document_id);
  if (!doc) {
    doc = { id: payload.document_id, filename: payload.filename || "…", status: payload.status || "", error: null, job: null };
    state.docs.set(doc.id, doc);
    if (!payload.filename) fillFilename(doc.id); // we missed its creation (e.g. beyond the loaded pages)
  }
  return doc;
}

async function fillFilename(id) {
  try {
    const fresh = await api("GET", `/api/documents/${id}`);
    const doc = state.docs.get(id);
    if (doc) {
      doc.filename = fresh.filename;
      doc.size_bytes = fresh.size_bytes;
      doc.created_at = fresh.created_at;
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) state.docs.delete(id); // gone meanwhile
  }
  renderDocuments();
}

function jobSummary(job) {
  if (!job) return "";
  let text = `${job.job_type} ${job.status}, attempt ${job.attempt}/${job.max_attempts}`;
  if (job.progress && job.progress.total) text += `, ${job.progress.done}/${job.progress.total} chunks`;
  if (job.status === "queued" && job.error && job.run_at) text += `, retry at ${when(job.run_at)}`;
  return text;
}

function renderDocuments() {
  const body = $("#documents tbody");
  const created = (doc) => Date.parse(doc.created_at || "") || Number.MAX_SAFE_INTEGER; // unknown: on top
  const docs = [...state.docs.values()].sort((a, b) => created(b) - created(a));
  body.replaceChildren(
    ...docs.map((doc) => {
      const errorText = doc.error || (doc.job && doc.job.error) || "";
      return el(
        "tr",
        { dataset: { id: doc.id, filename: doc.filename, status: doc.status } },
        el("td", { className: "filename", title: doc.id }, doc.filename, el("div", { className: "muted" }, bytes(doc.size_bytes))),
        el("td", {}, el("span", { className: `status status-${doc.status}` }, doc.status)),
        el("td", { className: "job" }, jobSummary(doc.job), errorText ? el("div", { className: "error" }, errorText) : null),
        el("td", { className: "muted" }, when(doc.updated)),
        el(
          "td",
          { className: "actions" },
          el("button", { type: "button", className: "small", onclick: () => showJobs(doc.id) }, "jobs"),
          el("button", { type: "button", className: "small", onclick: () => reprocess(doc.id) }, "reprocess"),
          el("button", { type: "button", className: "small danger", onclick: () => deleteDocument(doc.id) }, "delete"),
        ),
      );
    }),
  );
  $("#documents-empty").hidden = docs.length > 0;
  setText("#doc-count", docs.length ? `(${docs.length})` : "");
}

async function reprocess(id) {
  const doc = state.docs.get(id);
  const done = await attempt(`Reprocessing ${doc ? doc.filename : id}`, () => api("POST", `/api/documents/${id}/reprocess`));
  if (done !== undefined) setText("#upload-status", `Reprocess queued for ${doc ? doc.filename : id}.`);
}

async function deleteDocument(id) {
  const doc = state.docs.get(id);
  if (!confirm(`Delete ${doc ? doc.filename : id}, its stored objects and its chunks?`)) return;
  await attempt(`Deleting ${doc ? doc.filename : id}`, () => api("DELETE", `/api/documents/${id}`));
  // the row goes away with the document.deleted event
}

// ---------------------------------------------------------------- jobs panel

async function showJobs(id) {
  const data = await attempt("Loading jobs", () => api("GET", `/api/documents/${id}/jobs`));
  if (!data) return;
  state.jobsDocId = id;
  state.jobs = new Map(data.items.map((job) => [job.id, job]));
  const doc = state.docs.get(id);
  setText("#jobs-filename", doc ? doc.filename : id);
  $("#jobs-panel").hidden = false;
  renderJobs();
}

function closeJobs() {
  state.jobsDocId = null;
  $("#jobs-panel").hidden = true;
}

function progressText(job) {
  return job.progress && job.progress.total ? ` (${job.progress.done}/${job.progress.total})` : "";
}

function renderJobs() {
  const jobs = [...state.jobs.values()];
  $("#jobs tbody").replaceChildren(
    ...jobs.map((job) =>
      el(
        "tr",
        { dataset: { id: job.id } },
        el("td", {}, job.job_type),
        el("td", {}, el("span", { className: `status status-${job.status}` }, job.status)),
        el("td", {}, `${job.attempt}/${job.max_attempts}`, progressText(job)),
        el("td", { className: "error" }, job.error || ""),
        el("td", {}, when(job.created_at)),
        el("td", {}, when(job.started_at)),
        el("td", {}, when(job.finished_at)),
      ),
    ),
  );
}

// ---------------------------------------------------------------- upload

async function upload(fileList) {
  const files = [...fileList];
  if (!files.length || !state.workspaceId) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const errors = $("#upload-errors");
  errors.replaceChildren();
  setText("#upload-status", `Uploading ${files.length} file${files.length > 1 ? "s" : ""}…`);
  let result;
  try {
    result = await api("POST", `/api/workspaces/${state.workspaceId}/documents/upload`, form);
  } catch (err) {
    // When every file is refused the body is {"error": first refusal, "errors": [all]}.
    result = err instanceof ApiError && err.body && Array.isArray(err.body.errors) ? { documents: [], errors: err.body.errors } : null;
    if (!result) {
      setText("#upload-status", "");
      if (!(err instanceof ApiError && err.status === 401)) notice(`Upload failed: ${describe(err)}`);
      return;
    }
  }
  const plural = (n) => `${n} file${n === 1 ? "" : "s"}`;
  const accepted = result.documents.filter((d) => !d.duplicate).length;
  const duplicates = result.documents.filter((d) => d.duplicate).map((d) => d.filename);
  const parts = [];
  if (accepted) parts.push(`Accepted ${plural(accepted)}`);
  if (duplicates.length) parts.push(`already in this workspace (not stored twice): ${duplicates.join(", ")}`);
  if (result.errors.length) parts.push(`refused ${plural(result.errors.length)}`);
  const status = parts.join("; ");
  setText("#upload-status", `${status.charAt(0).toUpperCase()}${status.slice(1)}.`);
  errors.replaceChildren(
    ...result.errors.map((e) => el("li", {}, el("strong", {}, e.filename || "(no name)"), `: ${e.message} (${e.code})`)),
  );
}

// ---------------------------------------------------------------- search

async function search(q) {
  if (!state.workspaceId) return;
  setText("#search-status", "Searching…");
  const query = new URLSearchParams({ q, k: "10" });
  const data = await attempt("Search", () => api("GET", `/api/workspaces/${state.workspaceId}/search?${query}`));
  if (!data) {
    setText("#search-status", "");
    return;
  }
  for (const hit of data.items) state.passages.set(hit.chunk_id, hit);
  setText("#search-status", data.items.length ? `${data.items.length} passage${data.items.length > 1 ? "s" : ""}` : "No passage matches.");
  $("#search-results").replaceChildren(
    ...data.items.map((hit) =>
      el(
        "li",
        { className: "hit", dataset: { documentId: hit.document_id, chunkId: String(hit.chunk_id) } },
        el(
          "div",
          {},
          el("strong", { className: "hit-filename" }, hit.filename),
          ` · passage ${hit.ordinal} · score ${Number(hit.score).toFixed(4)}`,
        ),
        el("div", { className: "passage" }, hit.text),
      ),
    ),
  );
}

// ---------------------------------------------------------------- conversations

async function loadConversations() {
  const workspaceId = state.workspaceId;
  state.conversationId = null;
  state.messages = new Map();
  renderMessages();
  const data = await attempt("Loading conversations", () => api("GET", `/api/workspaces/${workspaceId}/conversations`));
  if (!data || workspaceId !== state.workspaceId) return;
  const select = $("#conversation-select");
  select.replaceChildren(
    el("option", { value: "" }, data.items.length ? "choose a conversation" : "no conversation yet"),
    ...data.items.map((c) => el("option", { value: c.id }, c.title)),
  );
  const saved = sessionStorage.getItem(CONVERSATION_KEY);
  const found = data.items.find((c) => c.id === saved) || data.items[0];
  if (found) await selectConversation(found.id);
}

async function selectConversation(id) {
  state.conversationId = id || null;
  state.messages = new Map();
  state.messagesLoading = null;
  state.waitingDeltas = [];
  $("#conversation-select").value = id || "";
  $("#citation").hidden = true;
  renderMessages();
  if (!id) return;
  sessionStorage.setItem(CONVERSATION_KEY, id);
  await loadMessages();
}

// Fetches the conversation's messages (a streaming answer with its text so far), then
// places the deltas that were waiting for it. One fetch at a time per conversation.
async function loadMessages() {
  const id = state.conversationId;
  if (!id || state.messagesLoading === id) return;
  state.messagesLoading = id;
  const data = await attempt("Loading messages", () => api("GET", `/api/conversations/${id}/messages`));
  if (state.messagesLoading === id) state.messagesLoading = null;
  if (!data || state.conversationId !== id) return;
  for (const m of data.items) mergeMessage(m);
  const waiting = state.waitingDeltas;
  state.waitingDeltas = [];
  for (const update of waiting) applyDelta(update, false);
  renderMessages();
}

async function createConversation(title) {
  const conversation = await attempt("Creating the conversation", () =>
    api("POST", `/api/workspaces/${state.workspaceId}/conversations`, { title }),
  );
  if (!conversation) return null;
  const select = $("#conversation-select");
  select.insertBefore(el("option", { value: conversation.id }, conversation.title), select.options[1] || null);
  await selectConversation(conversation.id);
  return conversation;
}

async function ask(content) {
  if (!state.conversationId && !(await createConversation(content.slice(0, 200)))) return;
  const data = await attempt("Asking", () => api("POST", `/api/conversations/${state.conversationId}/messages`, { content }));
  if (!data) return;
  $("#ask-input").value = "";
  mergeMessage(data.message);
  mergeMessage(data.reply);
  renderMessages();
}

const MESSAGE_RANK = { pending: 0, streaming: 1, completed: 2, failed: 2 };

// Merges a whole message (REST, `message.created`, or a status event other than
// `streaming`, all of which carry the full `content`). A REST snapshot of a streaming
// answer that our deltas already went past does not shorten it.
function mergeMessage(update) {
  const id = update.id || update.message_id;
  const known = state.messages.get(id) || { id, citations: [], content: "", length: 0 };
  if (known.status && MESSAGE_RANK[update.status] < MESSAGE_RANK[known.status]) return;
  const content = update.content || "";
  const ahead = known.content.length > content.length && known.content.startsWith(content);
  if (known.status === "streaming" && update.status === "streaming" && ahead) return;
  Object.assign(known, update, { id, content, length: Array.from(content).length });
  if (!known.citations) known.citations = [];
  state.messages.set(id, known);
}

// A `streaming` event: `delta` starts at `offset` in the full text, both counted in Unicode
// code points as the server counts (a JS string counts UTF-16 units: an emoji is 2), so each
// message keeps its `length` in code points. What our text already holds is skipped; a delta
// past its end (we missed one) or of a message we have not loaded (we joined mid-stream)
// waits for the messages from REST (once: still out of place after them, it is older than
// what they hold, or the next delta asks again). An empty delta at offset 0 restarts the answer.
function applyDelta(update, canWait = true) {
  const known = state.messages.get(update.id);
  if (!known || update.offset > known.length) {
    if (canWait) {
      state.waitingDeltas.push(update);
      loadMessages();
    }
    return;
  }
  if (MESSAGE_RANK[known.status] > MESSAGE_RANK.streaming) return; // a late delta of a finished answer
  known.status = "streaming";
  if (update.offset === 0 && update.delta === "") {
    known.content = "";
    known.length = 0;
    return;
  }
  const points = Array.from(update.delta);
  const end = update.offset + points.length;
  if (end <= known.length) return;
  known.content += points.slice(known.length - update.offset).join("");
  known.length = end;
}

function renderMessages() {
  const box = $("#messages");
  const messages = [...state.messages.values()];
  box.replaceChildren(
    ...messages.map((m) => {
      const citations = (m.citations || []).map((c, i) =>
        el(
          "button",
          { type: "button", className: "small cite", onclick: () => showCitation(m, c) },
          `[${i + 1}] ${c.filename} #${c.ordinal}`,
        ),
      );
      return el(
        "div",
        { className: `message message-${m.role}`, dataset: { id: m.id, status: m.status || "" } },
        el("div", { className: "muted" }, m.role === "user" ? "you" : `answer (${m.status})`),
        el("div", { className: "content" }, m.content || (m.status === "pending" ? "…" : "")),
        m.error ? el("div", { className: "error" }, m.error) : null,
        citations.length ? el("div", { className: "citations" }, ...citations) : null,
      );
    }),
  );
  box.scrollTop = box.scrollHeight;
}

// Shows a citation; its passage text comes from search results (the question is searched
// within the cited document when the chunk was not seen yet: a follow-up's own words may not
// find it in the whole workspace).
async function showCitation(message, citation) {
  const box = $("#citation");
  box.hidden = false;
  const where = citation.page == null ? "" : ` · page ${citation.page}`;
  const head = el("div", {}, el("strong", {}, citation.filename), ` · passage ${citation.ordinal}${where}`);
  box.replaceChildren(head, el("div", { className: "muted" }, "looking for the passage…"));
  let hit = state.passages.get(citation.chunk_id);
  if (!hit) {
    const messages = [...state.messages.values()];
    const index = messages.indexOf(message);
    const question = messages.slice(0, index).reverse().find((m) => m.role === "user");
    if (question && question.content) {
      const query = new URLSearchParams({ q: question.content.slice(0, 1000), k: "50", document_id: citation.document_id });
      try {
        const data = await api("GET", `/api/workspaces/${message.workspace_id || state.workspaceId}/search?${query}`);
        for (const h of data.items) state.passages.set(h.chunk_id, h);
      } catch {
        // shown below as not found
      }
      hit = state.passages.get(citation.chunk_id);
    }
  }
  const passage = hit
    ? el("div", { className: "passage" }, hit.text)
    : el("div", { className: "muted" }, "The passage text was not found in search results.");
  box.replaceChildren(head, passage);
}

// ---------------------------------------------------------------- realtime

// The connection is the official client (clients/js, served as /rag-client.js): it connects,
// resumes, dedupes, resyncs and reconnects; the console only applies what it delivers.

function setConnection(kind, text) {
  const badge = $("#connection");
  badge.className = `conn conn-${kind}`;
  badge.textContent = text;
  badge.dataset.state = kind;
}

// The client's state changes, in the badge's words.
function showConnection(clientState, info) {
  if (clientState === "connecting") setConnection("connecting", "connecting…");
  else if (clientState === "live") setConnection("live", info.transport === "sse" ? "live (SSE)" : "live");
  else if (clientState === "reconnecting" && info.delayMs === undefined) {
    setConnection("connecting", `reconnecting (attempt ${info.attempt + 1})…`);
  } else if (clientState === "reconnecting") {
    const why = info.code === 4408 ? "too slow (4408)" : `closed (${info.code})`;
    setConnection("retrying", `${why}; reconnecting in ${(info.delayMs / 1000).toFixed(1)} s`);
  } else setConnection("offline", clientState === "unauthorized" ? "token refused" : "offline");
}

function connect() {
  disconnect();
  if (!state.token) return;
  rt.client = new RealtimeClient({
    token: () => state.token, // a pasted token cannot be refreshed: at 4401 the console signs out
    lastEventId: rt.lastEventId,
    epoch: rt.epoch,
    onState: showConnection,
    onReady: reloadState, // a fresh start: everything up to hello's id comes from REST
    // The history we lack is gone: the state comes from REST, the next event is the baseline.
    onResync: reloadState,
    onEvent: onEventFrame,
    onTokenExpiring: (payload) =>
      notice(`Your token expires at ${when(payload.expires_at)}: sign in with a new one to stay live.`),
    onUnauthorized: () => signOut("The server refused the token on the live connection (4401): sign in again."),
    onError: (error) => console.warn("realtime", error),
  });
  rt.client.start();
}

// Stops the connection; its position stays, so that connect() resumes from it.
function disconnect() {
  const client = rt.client;
  if (!client) return;
  rt.client = null;
  rt.lastEventId = client.lastEventId;
  rt.epoch = client.epoch;
  client.close();
}

function reloadState() {
  reloadDocuments();
  if (state.conversationId) selectConversation(state.conversationId);
}

// An event, delivered once and in order by the client.
function onEventFrame(frame) {
  const payload = frame.payload || {};
  if (onMembershipFrame(frame.type, payload)) return;
  if (payload.workspace_id !== state.workspaceId) return;
  const event = { type: frame.type, payload, at: frame.created_at };
  const tableEvent = frame.type.startsWith("document.") || frame.type.startsWith("job.");
  if (tableEvent && state.loading) {
    state.pending.push(event);
    return;
  }
  applyEvent(event);
  if (tableEvent) renderDocuments();
}

// Membership is live (docs/realtime.md): `event.redacted` (an event of a workspace we left)
// only advances the id; our own removal from a workspace drops it from the list. True when
// the frame is handled here.
function onMembershipFrame(type, payload) {
  if (type === "event.redacted") return true;
  if (type !== "workspace.member_removed" || payload.user_id !== state.userId) return false;
  const left = state.workspaces.find((w) => w.id === payload.workspace_id);
  notice(`You are no longer a member of ${left ? `"${left.name}"` : "a workspace"}.`);
  if (state.workspaceId === payload.workspace_id) selectWorkspace(null);
  loadWorkspaces();
  return true;
}

function applyEvent({ type, payload, at }) {
  if (payload.document_id && state.deleted.has(payload.document_id)) return;
  switch (type) {
    case "document.created": {
      const doc = docFromEvent(payload);
      doc.filename = payload.filename;
      doc.status = payload.status;
      doc.created_at = doc.created_at || at;
      doc.updated = at;
      break;
    }
    case "document.status_updated": {
      const doc = docFromEvent(payload);
      doc.status = payload.status;
      doc.error = payload.error || null;
      doc.updated = at;
      break;
    }
    case "document.deleted":
      state.docs.delete(payload.document_id);
      state.deleted.add(payload.document_id);
      if (state.jobsDocId === payload.document_id) closeJobs();
      break;
    case "job.status_updated": {
      const doc = docFromEvent(payload);
      doc.job = { ...payload, id: payload.job_id };
      doc.updated = at;
      if (state.jobsDocId === payload.document_id) {
        const known = state.jobs.get(payload.job_id) || { id: payload.job_id, created_at: at };
        Object.assign(known, doc.job);
        if (payload.status === "running" && !known.started_at) known.started_at = at;
        if (payload.status === "success" || payload.status === "failed") known.finished_at = at;
        state.jobs.set(known.id, known);
        renderJobs();
      }
      break;
    }
    case "message.created":
    case "message.status_updated":
      if (payload.conversation_id === state.conversationId) {
        const update = { ...payload, id: payload.message_id };
        if (type === "message.status_updated" && payload.status === "streaming") applyDelta(update);
        else mergeMessage(update);
        renderMessages();
      }
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("#signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("#token-input").value.trim());
  });
  $("#sign-out").addEventListener("click", () => signOut(""));
  $("#notice-close").addEventListener("click", clearNotice);
  $("#workspace-select").addEventListener("change", (e) => selectWorkspace(e.target.value));
  $("#workspace-form").addEventListener("submit", (e) => {
    e.preventDefault();
    createWorkspace($("#workspace-name").value.trim());
  });
  $("#file-input").addEventListener("change", (e) => {
    upload(e.target.files);
    e.target.value = "";
  });
  const zone = $("#dropzone");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    upload(e.dataTransfer.files);
  });
  $("#jobs-close").addEventListener("click", closeJobs);
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search($("#search-input").value.trim());
  });
  $("#conversation-select").addEventListener("change", (e) => selectConversation(e.target.value));
  $("#conversation-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await createConversation($("#conversation-title").value.trim())) $("#conversation-title").value = "";
  });
  $("#ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ask($("#ask-input").value.trim());
  });
}

function start() {
  wire();
  takeTokenFromUrl();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn("");
}

// For the browser tests and the devtools console: a module's names are not globals.
window.ragConsole = { state, rt, applyDelta, connect, disconnect, setConnection };

start();
