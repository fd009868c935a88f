"""Every statement the bus sends, by name. The schema they run on is migrations/*.sql."""

from __future__ import annotations

# The whole publish (recipients, ids, rows, NOTIFY) is one server-side function: one
# round trip inside the caller's transaction (migrations/0004_audience_streams.sql; its
# statements on generic plans since 0005_run_spans_generic_plans.sql).
PUBLISH = "SELECT user_id, first_id, last_id FROM eventbus_publish(%s::jsonb, %s::text)"

# The same publish as a part of the caller's own statement (`publish.publish_within`):
# `{events}` is an expression of the jsonb array PUBLISH takes, `{traceparent}` one of text.
PUBLISH_WITHIN = "SELECT count(*) AS users FROM eventbus_publish({events}, {traceparent})"

# A user's events with lo <= id <= hi, oldest first, through the user's runs
# (migrations/0004_audience_streams.sql). The caller bounds hi by the stream's last id, so
# every id in the range is committed: the runs needed are the one that holds lo and those
# starting up to hi, each ending where the next begins (the last at hi); each is one range
# scan of its audience's events.
SELECT_AFTER = """
WITH runs AS (
    (SELECT u.first_id, u.audience, u.first_seq FROM user_runs u
     WHERE u.user_id = %(user_id)s AND u.first_id <= %(lo)s ORDER BY u.first_id DESC LIMIT 1)
    UNION ALL
    (SELECT u.first_id, u.audience, u.first_seq FROM user_runs u
     WHERE u.user_id = %(user_id)s AND u.first_id > %(lo)s AND u.first_id <= %(hi)s)
), spans AS (
    SELECT r.audience, r.first_seq - r.first_id AS shift,
           greatest(r.first_id, %(lo)s) AS from_id,
           coalesce(lead(r.first_id) OVER (ORDER BY r.first_id) - 1, %(hi)s) AS to_id
    FROM runs r
)
SELECT e.seq - sp.shift AS id, e.type, e.payload, e.created_at, e.traceparent
FROM spans sp
JOIN audience_events e
  ON e.audience = sp.audience AND e.seq BETWEEN sp.from_id + sp.shift AND sp.to_id + sp.shift
ORDER BY id
"""

# (last_id, oldest retained id, epoch); creates the row when missing (migrations/0002_stream_epoch.sql).
SELECT_STREAM = "SELECT last_id, oldest_id, epoch FROM eventbus_stream(%s)"

# The same for many users at once (the api's catch-up after its listener reconnects): the
# lineage is read once; users without a stream row are left out (nothing to catch up on).
SELECT_STREAMS = """
WITH lineage AS MATERIALIZED (SELECT eventbus_lineage() AS value)
SELECT s.user_id, s.last_id, s.pruned_through + 1, eventbus_epoch(lineage.value, s.generation)
FROM user_streams s, lineage
WHERE s.user_id = ANY(%s)
"""

# Age and count limits (migrations/0004_audience_streams.sql, reading run spans from 0005's
# eventbus_runs view): how many audience events went.
PRUNE = "SELECT eventbus_prune(%(max_age)s, %(max_per_user)s)"

# A job's doorbell: (channel, job id).
NOTIFY_JOB = "SELECT pg_notify(%s, %s)"
