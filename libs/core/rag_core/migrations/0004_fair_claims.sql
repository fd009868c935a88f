-- Fair claims across workspaces (rag_jobqueue.queries.FAIR_CLAIM). The claim walks the
-- workspaces that have queued jobs (a skip scan of the first index), takes each one's
-- oldest due jobs (the same index, in order) and counts each one's running jobs (the
-- second index). Without them a claim would read every queued row.

CREATE INDEX parse_jobs_queued_workspace_idx ON parse_jobs (workspace_id, run_at, id) WHERE status = 'queued';
CREATE INDEX parse_jobs_running_workspace_idx ON parse_jobs (workspace_id) WHERE status = 'running';

CREATE INDEX ingest_jobs_queued_workspace_idx ON ingest_jobs (workspace_id, run_at, id) WHERE status = 'queued';
CREATE INDEX ingest_jobs_running_workspace_idx ON ingest_jobs (workspace_id) WHERE status = 'running';

CREATE INDEX answer_jobs_queued_workspace_idx ON answer_jobs (workspace_id, run_at, id) WHERE status = 'queued';
CREATE INDEX answer_jobs_running_workspace_idx ON answer_jobs (workspace_id) WHERE status = 'running';
