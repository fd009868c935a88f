-- Core tables: workspaces, documents, their files, the two job queues and chunks.
-- (The per-user event log the realtime bus numbers and replays is the bus's own:
-- rag_eventbus/migrations/0001_event_log.sql, applied before this file.)

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'member')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE TABLE documents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    filename        text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type    text NOT NULL,
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'parsing', 'parsed', 'ingesting', 'ingested', 'error')),
    error           text,
    chunk_count     integer NOT NULL DEFAULT 0,
    page_count      integer,
    embedding_model text,
    embedding_dim   integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- One live document per content per workspace: the upload dedupe relies on it.
CREATE UNIQUE INDEX documents_workspace_sha256_key ON documents (workspace_id, sha256);
CREATE INDEX documents_workspace_created_idx ON documents (workspace_id, created_at DESC, id DESC);

CREATE TABLE files (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id  uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('original', 'parsed')),
    bucket       text NOT NULL,
    object_key   text NOT NULL,
    size_bytes   bigint NOT NULL,
    content_type text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, kind)
);

-- parse_jobs and ingest_jobs share one shape so that one job runtime serves both.
CREATE TABLE parse_jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id  uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'success', 'failed')),
    attempt      integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_at       timestamptz NOT NULL DEFAULT now(),
    locked_by    text,
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parse_jobs_queued_idx ON parse_jobs (run_at, id) WHERE status = 'queued';
CREATE INDEX parse_jobs_lease_idx ON parse_jobs (locked_until) WHERE status = 'running';
CREATE INDEX parse_jobs_document_idx ON parse_jobs (document_id, created_at);

CREATE TABLE ingest_jobs (LIKE parse_jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE ingest_jobs ADD PRIMARY KEY (id);
ALTER TABLE ingest_jobs ADD FOREIGN KEY (document_id) REFERENCES documents (id) ON DELETE CASCADE;
ALTER TABLE ingest_jobs ADD FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;
CREATE INDEX ingest_jobs_queued_idx ON ingest_jobs (run_at, id) WHERE status = 'queued';
CREATE INDEX ingest_jobs_lease_idx ON ingest_jobs (locked_until) WHERE status = 'running';
CREATE INDEX ingest_jobs_document_idx ON ingest_jobs (document_id, created_at);

CREATE TABLE chunks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    ordinal         integer NOT NULL,
    text            text NOT NULL,
    char_start      integer NOT NULL,
    char_end        integer NOT NULL,
    page            integer,
    embedding_model text NOT NULL,
    embedding_dim   integer NOT NULL,
    embedding       vector(384) NOT NULL,
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_workspace_idx ON chunks (workspace_id);
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
