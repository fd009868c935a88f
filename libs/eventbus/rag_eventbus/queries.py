"""Every statement the bus sends, by name. The schema they run on is migrations/*.sql."""

from __future__ import annotations

# The whole publish (recipients, ids, rows, NOTIFY) is one server-side function: one
# round trip inside the caller's transaction (migrations/0001_event_log.sql; its trace
# context argument: 0003_event_traceparent.sql).
PUBLISH = "SELECT user_id, first_id, last_id FROM eventbus_publish(%s::jsonb, %s::text)"

# A user's events in (after, upto], oldest first.
SELECT_AFTER = """
SELECT id, type, payload, created_at, traceparent FROM events
WHERE user_id = %(user_id)s AND id > %(after)s AND (%(upto)s::bigint IS NULL OR id <= %(upto)s)
ORDER BY id
LIMIT %(limit)s
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

# Age and count limits, applied per user; pruned_through records what is gone.
PRUNE = """
WITH doomed AS (
    SELECT e.user_id, max(e.id) AS upto
    FROM events e
    JOIN user_streams s USING (user_id)
    WHERE e.created_at < now() - make_interval(secs => %(max_age)s)
       OR e.id <= s.last_id - %(max_per_user)s
    GROUP BY e.user_id
), bumped AS (
    UPDATE user_streams s SET pruned_through = greatest(s.pruned_through, d.upto)
    FROM doomed d WHERE s.user_id = d.user_id
    RETURNING s.user_id, s.pruned_through
)
DELETE FROM events e USING bumped b
WHERE e.user_id = b.user_id AND e.id <= b.pruned_through
"""

# A job's doorbell: (channel, job id).
NOTIFY_JOB = "SELECT pg_notify(%s, %s)"
