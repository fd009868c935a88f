// Types of @rag-engine/client (hand-written; the module itself is plain JavaScript).

export declare const VERSION: "0.1.0";

export declare const CloseCode: Readonly<{
  UNAUTHORIZED: 4401;
  TOO_SLOW: 4408;
  TOO_MANY_CONNECTIONS: 4429;
  GOING_AWAY: 1001;
  ABNORMAL: 1006;
  SERVER_ERROR: 1011;
  CLIENT: 4000;
}>;

/** A JWT, or a function (sync or async) that returns the current one. */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

/** The contract's error body: `{"error": {"code", "message"}, ...extra}`. */
export interface ErrorBody {
  error: { code: string; message: string };
  [extra: string]: unknown;
}

/** A non-2xx answer of the api. */
export declare class ApiError extends Error {
  constructor(status: number, body: unknown);
  readonly name: "ApiError";
  readonly status: number;
  /** `error.code` of the body (null when the body had none, e.g. a proxy's HTML page). */
  readonly code: string | null;
  /** The decoded body as received (undefined when it was not JSON). */
  readonly body: unknown;
  /** Every field of the body beside `error`: `oldest_event_id` and `epoch` of a 409
   * `resync_required`, `errors` of an upload that refused every file. */
  readonly details: Record<string, unknown>;
}

export type Role = "owner" | "member";
export type DocumentStatus = "queued" | "parsing" | "parsed" | "ingesting" | "ingested" | "error";
export type JobStatus = "queued" | "running" | "success" | "failed";
export type MessageStatus = "pending" | "streaming" | "completed" | "failed";

export interface Workspace {
  id: string;
  name: string;
  role: Role;
  created_at: string;
}
export interface Member {
  workspace_id: string;
  user_id: string;
  role: Role;
}
export interface RagDocument {
  id: string;
  workspace_id: string;
  filename: string;
  content_type: string;
  size_bytes: number;
  sha256: string;
  status: DocumentStatus;
  error: string | null;
  chunk_count: number | null;
  created_at: string;
  updated_at: string;
}
export interface UploadedDocument extends RagDocument {
  parse_job_id?: string;
  duplicate?: boolean;
}
export interface UploadRefusal {
  filename: string | null;
  code: string;
  message: string;
}
export interface UploadResult {
  documents: UploadedDocument[];
  errors: UploadRefusal[];
}
export interface Job {
  id: string;
  job_type: "parse" | "ingest";
  document_id: string;
  status: JobStatus;
  attempt: number;
  max_attempts: number;
  error: string | null;
  run_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  progress?: { done: number; total: number };
}
export interface SearchHit {
  chunk_id: number;
  document_id: string;
  filename: string;
  ordinal: number;
  text: string;
  score: number;
  /** The passage's first page (1-based); null for a document without pages. */
  page: number | null;
  /** The passage's range in the document's parsed text, in code points. */
  char_start: number;
  char_end: number;
}
/** Search filters (docs/api.md "Search"): the search's repeatable query parameters and a
 * question's `filters`. `created_after` is inclusive, `created_before` exclusive (RFC 3339). */
export interface SearchFilters {
  document_id?: string[];
  content_type?: string[];
  created_after?: string;
  created_before?: string;
}
export interface Conversation {
  id: string;
  workspace_id: string;
  title: string;
  created_by: string;
  created_at: string;
}
export interface Citation {
  document_id: string;
  chunk_id: number;
  filename: string;
  ordinal: number;
  /** The passage's first page (1-based); null for a document without pages. */
  page: number | null;
  /** The passage's range in the document's parsed text, in code points. */
  char_start: number;
  char_end: number;
}
export interface Message {
  id: string;
  conversation_id: string;
  workspace_id: string;
  role: "user" | "assistant";
  status: MessageStatus;
  content: string;
  citations: Citation[];
  error: string | null;
  created_at: string;
  updated_at: string;
}

/** An event frame (docs/contract.md §5): ids are consecutive per user. */
export interface EventFrame<P = Record<string, unknown>> {
  id: number;
  type: string;
  payload: P & { workspace_id?: string };
  created_at: string;
}
export interface EventsPage {
  items: EventFrame[];
  last_event_id: number;
  has_more: boolean;
  epoch: string;
}
export interface Page<T> {
  items: T[];
}
export interface DocumentsPage extends Page<RagDocument> {
  next_cursor: string | null;
}

/** A file for upload: a File/Blob, or a name with its bytes. */
export type UploadFile = Blob | { name: string; data: string | ArrayBuffer | ArrayBufferView | Blob; type?: string };

export interface RagClientOptions {
  /** The api's origin, e.g. "https://rag.example.com" (default in a page: the page's origin). */
  baseUrl?: string;
  token: TokenSource;
  fetch?: typeof fetch;
}

export declare class RagClient {
  constructor(options: RagClientOptions);
  readonly baseUrl: string;
  /** Any route; `body` is sent as JSON (FormData as is); resolves with the decoded body. */
  request<T = unknown>(method: string, path: string, body?: unknown, query?: Record<string, string | number | null | undefined>): Promise<T>;
  createWorkspace(name: string): Promise<Workspace>;
  listWorkspaces(): Promise<Page<Workspace>>;
  addMember(workspaceId: string, userId: string, role?: Role): Promise<Member>;
  removeMember(workspaceId: string, userId: string): Promise<undefined>;
  upload(workspaceId: string, files: UploadFile[]): Promise<UploadResult>;
  listDocuments(workspaceId: string, options?: { status?: DocumentStatus; limit?: number; cursor?: string }): Promise<DocumentsPage>;
  getDocument(documentId: string): Promise<RagDocument>;
  listJobs(documentId: string): Promise<Page<Job>>;
  reprocess(documentId: string): Promise<unknown>;
  deleteDocument(documentId: string): Promise<undefined>;
  search(workspaceId: string, q: string, options?: { k?: number; filters?: SearchFilters }): Promise<Page<SearchHit>>;
  createConversation(workspaceId: string, title: string): Promise<Conversation>;
  listConversations(workspaceId: string): Promise<Page<Conversation>>;
  listMessages(conversationId: string): Promise<Page<Message>>;
  postMessage(conversationId: string, content: string, options?: { filters?: SearchFilters }): Promise<{ message: Message; reply: Message }>;
  listEvents(options?: { after?: number; limit?: number; epoch?: string }): Promise<EventsPage>;
  realtime(options?: Omit<RealtimeOptions, "baseUrl" | "token" | "fetch"> & Partial<Pick<RealtimeOptions, "baseUrl" | "token" | "fetch">>): RealtimeClient;
}

export type Transport = "websocket" | "sse";
export type ConnectionState = "idle" | "connecting" | "live" | "reconnecting" | "unauthorized" | "closed";

export interface StateInfo {
  transport: Transport;
  attempt?: number;
  /** Close code of the connection that ended (reconnecting). */
  code?: number;
  reason?: string;
  /** When the next connection opens (reconnecting). */
  delayMs?: number;
}

export interface ServerErrorPayload {
  code: string;
  message: string;
}

export interface RealtimeOptions {
  baseUrl?: string;
  token: TokenSource;
  /** "auto" (default): WebSocket first, SSE after `fallbackAfter` WebSocket failures before any hello. */
  transport?: "auto" | Transport;
  /** Each event frame, exactly once, in id order. */
  onEvent?: (event: EventFrame) => void | Promise<void>;
  /** A fresh start (no last id): load your state over REST now; events after `lastEventId` follow. */
  onReady?: (info: { lastEventId: number; epoch: string | null }) => void | Promise<void>;
  /** `resync_required`: the history is gone or of another epoch; reload your state over REST. */
  onResync?: (payload: { oldest_event_id: number; epoch: string }) => void | Promise<void>;
  onState?: (state: ConnectionState, info: StateInfo) => void;
  onTokenExpiring?: (payload: { expires_at: string }) => void;
  onAuthOk?: (payload: { expires_at: string }) => void;
  /** The server refused the token and the provider had no other one: the client stopped. */
  onUnauthorized?: (info: { reason: string }) => void;
  /** An `error` frame of the server, or an exception (a callback that threw, a provider that failed). */
  onError?: (error: ServerErrorPayload | Error) => void;
  /** Every frame received, control frames included (for diagnostics). */
  onFrame?: (frame: Record<string, unknown>) => void;
  /** Resume from here (with `epoch`), e.g. a position saved by the app. */
  lastEventId?: number | null;
  epoch?: string | null;
  /** A WebSocket constructor (default: globalThis.WebSocket; Node 20 needs --experimental-websocket or the `ws` package). */
  WebSocket?: unknown;
  fetch?: typeof fetch;
  /** Token in the WebSocket URL instead of the Authorization header (default: true in browsers, which cannot set the header). */
  tokenInQuery?: boolean;
  /** WebSocket failures before any hello, in a row, after which "auto" switches to SSE (default 2). */
  fallbackAfter?: number;
  /** The server's WebSocket ping interval (default 25000); silence for 2.5 times it reconnects. */
  heartbeatMs?: number;
  /** The server's SSE keepalive interval (default 15000); silence for 2.5 times it reconnects. */
  sseKeepaliveMs?: number;
  /** A connection with no hello after this long is dropped (default 15000); before a hello that counts as a WebSocket failure. */
  connectTimeoutMs?: number;
  backoffFirstMs?: number;
  backoffMaxMs?: number;
  /** Delay after 4429 too many connections (default 60000, with jitter). */
  tooManyBackoffMs?: number;
}

export declare class RealtimeClient {
  constructor(options: RealtimeOptions);
  readonly baseUrl: string;
  /** The id of the last event delivered; null before the first hello and after a resync. */
  readonly lastEventId: number | null;
  readonly epoch: string | null;
  readonly transport: Transport;
  readonly state: ConnectionState;
  start(): this;
  /** Stops everything: the connection, timers and reconnects. */
  close(): void;
}

/** The messages of a text/event-stream body; `onBytes` is called for each chunk read. */
export declare function sseMessages(
  body: ReadableStream<Uint8Array>,
  onBytes?: () => void,
): AsyncGenerator<{ event: string; data: string; id: string | null }, void, undefined>;
