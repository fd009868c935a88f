-- Two changes to 0004, neither visible to a reader of the log:
--
-- 1. `eventbus_runs`: where each run of a user's ids ends, written once. A run covers the
--    user's ids from its first_id up to the next run's first_id - 1, the last run up to the
--    stream's last_id. The `events` view and `eventbus_prune` each spelled that out.
-- 2. `eventbus_publish` runs its statements on generic plans. They are key lookups and
--    inserts whose best plan does not depend on the arrays they are given, but PL/pgSQL's
--    plan cache kept planning the third statement afresh on most calls (its generic plan's
--    estimate, made without the arrays' lengths, looked dearer than the custom one), and
--    planning it cost more than running it: measured, the function took about 40 % less
--    time per call with generic plans (docs/benchmarks.md, "Publish cost by workspace size").

CREATE VIEW eventbus_runs AS
    SELECT u.user_id, u.first_id,
           coalesce(lead(u.first_id) OVER w - 1, s.last_id) AS last_id,
           lead(u.first_id) OVER w IS NULL AS latest,
           u.audience, u.first_seq
    FROM user_runs u JOIN user_streams s ON s.user_id = u.user_id
    WINDOW w AS (PARTITION BY u.user_id ORDER BY u.first_id);

CREATE OR REPLACE VIEW events AS
    SELECT r.user_id, r.first_id + (e.seq - r.first_seq) AS id,
           e.type, e.payload, e.created_at, e.traceparent
    FROM eventbus_runs r
    JOIN audience_events e
      ON e.audience = r.audience AND e.seq BETWEEN r.first_seq AND r.first_seq + (r.last_id - r.first_id);

ALTER FUNCTION eventbus_publish(jsonb, text) SET plan_cache_mode = force_generic_plan;

-- eventbus_prune as in 0004, its runs read from eventbus_runs.
CREATE OR REPLACE FUNCTION eventbus_prune(p_max_age_seconds double precision, p_max_count bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_removed bigint;
BEGIN
    WITH doomed AS (
        SELECT e.audience, max(e.seq) AS upto
        FROM audience_events e JOIN audience_streams a ON a.audience = e.audience
        WHERE e.created_at < now() - make_interval(secs => p_max_age_seconds)
           OR e.seq <= a.last_seq - p_max_count
        GROUP BY e.audience
    ), bumped AS (
        UPDATE audience_streams a SET pruned_through = greatest(a.pruned_through, d.upto)
        FROM doomed d WHERE a.audience = d.audience
        RETURNING a.audience, a.pruned_through
    ), removed AS (
        DELETE FROM audience_events e USING bumped b
        WHERE e.audience = b.audience AND e.seq <= b.pruned_through
        RETURNING 1
    )
    SELECT count(*) INTO v_removed FROM removed;

    WITH by_audience AS (
        SELECT r.user_id, max(least(r.last_id, r.first_id + a.pruned_through - r.first_seq)) AS upto
        FROM eventbus_runs r JOIN audience_streams a ON a.audience = r.audience
        WHERE a.pruned_through >= r.first_seq
        GROUP BY r.user_id
    ), gone AS (
        SELECT s.user_id, greatest(s.last_id - p_max_count, coalesce(b.upto, 0)) AS upto
        FROM user_streams s LEFT JOIN by_audience b ON b.user_id = s.user_id
    )
    UPDATE user_streams s SET pruned_through = g.upto
    FROM gone g WHERE s.user_id = g.user_id AND g.upto > s.pruned_through;

    DELETE FROM user_runs u
    USING eventbus_runs r, user_streams s
    WHERE u.user_id = r.user_id AND u.first_id = r.first_id AND s.user_id = u.user_id
      AND NOT r.latest AND r.last_id <= s.pruned_through;

    RETURN v_removed;
END;
$$;
