// Compiled by `npm run check` (tsc --noEmit), never run: the types of src/index.d.ts used as an
// application would use them. A wrong declaration fails the check; so do the @ts-expect-error
// lines if the types stop refusing what the library refuses.

import { ApiError, CloseCode, RagClient, RealtimeClient, VERSION, type EventFrame } from "../src/index.js";

const version: "0.1.0" = VERSION;
const rest = new RagClient({ baseUrl: "http://127.0.0.1:8000", token: async () => "jwt" });

async function app(): Promise<void> {
  const workspace = await rest.createWorkspace("w");
  const uploaded = await rest.upload(workspace.id, [{ name: "a.txt", data: "text" }, new Blob(["x"])]);
  const first: string = uploaded.documents[0].id;
  const page = await rest.listDocuments(workspace.id, { limit: 10 });
  const cursor: string | null = page.next_cursor;
  const hits = await rest.search(workspace.id, "q", { k: 5, filters: { content_type: ["application/pdf"], created_after: "2026-01-01T00:00:00Z" } });
  // @ts-expect-error document_id is an array of ids, even for one
  await rest.search(workspace.id, "q", { filters: { document_id: "one" } });
  const score: number = hits.items[0].score;
  const where: [number | null, number, number] = [hits.items[0].page, hits.items[0].char_start, hits.items[0].char_end];
  const { reply } = await rest.postMessage((await rest.createConversation(workspace.id, "t")).id, "why?", { filters: { document_id: [first] } });
  const status: "pending" | "streaming" | "completed" | "failed" = reply.status;
  const citedPage: number | null | undefined = reply.citations[0]?.page;
  try {
    await rest.listEvents({ after: 0, epoch: "e" });
  } catch (err) {
    if (err instanceof ApiError && err.code === "resync_required") {
      const oldest = err.details.oldest_event_id as number;
      void oldest;
    }
  }
  void [first, cursor, score, where, status, citedPage, version];
}

const seen: EventFrame[] = [];
const realtime = new RealtimeClient({
  token: "jwt",
  transport: "sse",
  onEvent: (event) => {
    seen.push(event);
    const id: number = event.id;
    void id;
  },
  onReady: ({ lastEventId }) => void lastEventId,
  onResync: ({ epoch, oldest_event_id }) => void [epoch, oldest_event_id],
  onState: (state, info) => void [state === "live", info.transport],
  onUnauthorized: ({ reason }) => void reason,
});
realtime.start().close();
const position: number | null = realtime.lastEventId;
const code: 4401 = CloseCode.UNAUTHORIZED;
const shared = rest.realtime({ transport: "websocket" });

// @ts-expect-error a transport the client does not have
new RealtimeClient({ token: "jwt", transport: "long-polling" });
// @ts-expect-error the token is required
new RealtimeClient({});

void [app, position, code, shared];
