-- Each event is stored once, in its audience's stream; users' streams reference it.
--
-- Before, an event of an audience of n users was stored n times (one `events` row per
-- user, payload included): publish cost and WAL grew with the team, ~650 bytes of WAL per
-- member per event (docs/benchmarks.md, "Publish cost by workspace size"). Now:
--
-- * `audience_streams` / `audience_events`: an audience's events, numbered by `seq`,
--   consecutive and in commit order under the audience row's lock, each stored once.
-- * A user's stream keeps its own consecutive ids (`user_streams.last_id`, bumped under the
--   user row's lock as before, the only per-member write left) and maps them onto audience
--   events by **runs**: a `user_runs` row (first_id, audience, first_seq) says that user ids
--   first_id, first_id+1, ... are the audience's events first_seq, first_seq+1, ... up to the
--   next run. A user who receives every event of one workspace stays in one run, so a new run
--   row is written only when a user's events switch audience (another workspace, or a gap
--   in the audience's seqs: the user joined, left or rejoined). A run is never updated.
-- * `events` becomes a view of the same columns, for readers of the log (tests, operators).
--
-- Existing rows move as they are: each user's old stream becomes an audience of its own
-- (audience = the user's id, which no workspace has) with seq = id, in one run from id 1.

CREATE TABLE audience_streams (
    audience       uuid PRIMARY KEY,
    last_seq       bigint NOT NULL DEFAULT 0,
    pruned_through bigint NOT NULL DEFAULT 0
);

CREATE TABLE audience_events (
    audience    uuid NOT NULL,
    seq         bigint NOT NULL,
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    traceparent text,
    PRIMARY KEY (audience, seq)
);
CREATE INDEX audience_events_created_idx ON audience_events (created_at);

CREATE TABLE user_runs (
    user_id   uuid NOT NULL REFERENCES user_streams (user_id) ON DELETE CASCADE,
    first_id  bigint NOT NULL,
    audience  uuid NOT NULL,
    first_seq bigint NOT NULL,
    PRIMARY KEY (user_id, first_id)
);

INSERT INTO audience_streams (audience, last_seq, pruned_through)
SELECT s.user_id, s.last_id, s.pruned_through FROM user_streams s WHERE s.last_id > 0;
INSERT INTO audience_events (audience, seq, type, payload, created_at, traceparent)
SELECT e.user_id, e.id, e.type, e.payload, e.created_at, e.traceparent FROM events e;
INSERT INTO user_runs (user_id, first_id, audience, first_seq)
SELECT s.user_id, 1, s.user_id, 1 FROM user_streams s WHERE s.last_id > 0;
DROP TABLE events;

-- A user's events: each run's ids up to the next run's first id (the last run: the stream's
-- last_id), joined to the audience events they stand for. Pruned events are absent.
CREATE VIEW events AS
    SELECT r.user_id, r.first_id + (e.seq - r.first_seq) AS id,
           e.type, e.payload, e.created_at, e.traceparent
    FROM (
        SELECT u.user_id, u.first_id, u.audience, u.first_seq,
               coalesce(lead(u.first_id) OVER (PARTITION BY u.user_id ORDER BY u.first_id) - 1, s.last_id) AS last_id
        FROM user_runs u JOIN user_streams s ON s.user_id = u.user_id
    ) r
    JOIN audience_events e
      ON e.audience = r.audience AND e.seq BETWEEN r.first_seq AND r.first_seq + (r.last_id - r.first_id);

-- eventbus_publish(events, traceparent): the bus's publish in one round trip.
--
-- events is a JSON array of {"type", "audience", "payload"} in publishing order. Three
-- statements, each seeing what committed before it (READ COMMITTED, one snapshot each):
-- 1. number the events in their audiences' streams (audience rows locked in sorted order,
--    held to commit) and store each once;
-- 2. give every recipient the next ids of their stream (user rows locked in sorted order,
--    held to commit: ids consecutive and in commit order, concurrent publishers never
--    deadlock, as before);
-- 3. only now, with the locks held, read each recipient's latest run: a publisher that held
--    a user's lock before us has committed its runs, so the statement's fresh snapshot sees
--    them. An event continues the run when it has the run's audience and keeps its
--    seq - id offset; otherwise it opens a run.
-- Then one NOTIFY on rag_realtime as before: the numbered events inline when the payload
-- stays under 7000 bytes (not even built when an estimate says it cannot), otherwise per-user id ranges (at most 100 users per notification)
-- that the listeners read back from the log. Returns (user_id, first_id, last_id).
CREATE OR REPLACE FUNCTION eventbus_publish(p_events jsonb, p_traceparent text DEFAULT NULL)
RETURNS TABLE (user_id uuid, first_id bigint, last_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_audiences uuid[];
    v_seqs bigint[];
    v_sizes int[];
    v_users uuid[];
    v_ords int[];
    v_ids bigint[];
    v_inline jsonb;
    v_text text;
    v_batch jsonb;
    v_small boolean;
BEGIN
    WITH ev AS (
        SELECT e.ord, e.value->>'type' AS type, e.value->'payload' AS payload,
               (e.value->>'audience')::uuid AS audience
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(value, ord)
    ), counted AS (
        SELECT ev.audience, count(*) AS n FROM ev GROUP BY ev.audience
    ), allocated AS (
        INSERT INTO audience_streams AS a (audience, last_seq)
        SELECT c.audience, c.n FROM counted c ORDER BY c.audience
        ON CONFLICT ON CONSTRAINT audience_streams_pkey DO UPDATE SET last_seq = a.last_seq + excluded.last_seq
        RETURNING a.audience, a.last_seq
    ), numbered AS (
        SELECT ev.ord, ev.audience, ev.type, ev.payload,
               al.last_seq - c.n + row_number() OVER (PARTITION BY ev.audience ORDER BY ev.ord) AS seq
        FROM ev JOIN allocated al ON al.audience = ev.audience JOIN counted c ON c.audience = ev.audience
    ), stored AS (
        INSERT INTO audience_events (audience, seq, type, payload, traceparent)
        SELECT n.audience, n.seq, n.type, n.payload, p_traceparent FROM numbered n
    )
    SELECT array_agg(n.audience ORDER BY n.ord), array_agg(n.seq ORDER BY n.ord),
           array_agg(octet_length(n.type) + octet_length(n.payload::text) ORDER BY n.ord)
    INTO v_audiences, v_seqs, v_sizes
    FROM numbered n;

    WITH recipients AS (
        SELECT m.user_id, ev.ord::int AS ord,
               row_number() OVER (PARTITION BY m.user_id ORDER BY ev.ord) AS n,
               count(*) OVER (PARTITION BY m.user_id) AS total
        FROM unnest(v_audiences) WITH ORDINALITY AS ev(audience, ord)
        JOIN eventbus_recipients m ON m.audience = ev.audience
    ), allocated AS (
        INSERT INTO user_streams AS s (user_id, last_id)
        SELECT DISTINCT r.user_id, r.total FROM recipients r ORDER BY r.user_id
        ON CONFLICT ON CONSTRAINT user_streams_pkey DO UPDATE SET last_id = s.last_id + excluded.last_id
        RETURNING s.user_id, s.last_id
    )
    -- v_small: whether the events can travel inline, estimated (~80 bytes per event besides
    -- its type and payload) before building it: a workspace of 1,000 members never fits.
    SELECT array_agg(r.user_id ORDER BY r.user_id, r.n), array_agg(r.ord ORDER BY r.user_id, r.n),
           array_agg(a.last_id - r.total + r.n ORDER BY r.user_id, r.n),
           sum(v_sizes[r.ord] + 80) <= 7000
    INTO v_users, v_ords, v_ids, v_small
    FROM recipients r JOIN allocated a ON a.user_id = r.user_id;

    IF v_users IS NULL THEN
        RETURN;
    END IF;

    WITH received AS (
        SELECT p.user_id, p.id, p.ord, v_audiences[p.ord] AS audience, v_seqs[p.ord] AS seq
        FROM unnest(v_users, v_ords, v_ids) AS p(user_id, ord, id)
    ), judged AS (
        SELECT r.*,
               coalesce(
                   lag(r.audience) OVER w = r.audience AND lag(r.seq - r.id) OVER w = r.seq - r.id,
                   latest.audience = r.audience AND latest.first_seq - latest.first_id = r.seq - r.id,
                   false
               ) AS continues
        FROM received r
        LEFT JOIN LATERAL (
            SELECT u.audience, u.first_id, u.first_seq FROM user_runs u
            WHERE u.user_id = r.user_id ORDER BY u.first_id DESC LIMIT 1
        ) latest ON true
        WINDOW w AS (PARTITION BY r.user_id ORDER BY r.id)
    ), opened AS (
        INSERT INTO user_runs (user_id, first_id, audience, first_seq)
        SELECT j.user_id, j.id, j.audience, j.seq FROM judged j WHERE NOT j.continues
    )
    SELECT
        jsonb_build_object(
            'c', now(),
            'e', jsonb_agg(
                jsonb_build_array(j.user_id, j.id, p_events->(j.ord - 1)->>'type', p_events->(j.ord - 1)->'payload')
                ORDER BY j.user_id, j.id
            )
        ) || CASE WHEN p_traceparent IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('t', p_traceparent) END
    INTO v_inline
    FROM judged j
    WHERE v_small;

    v_text := v_inline::text;
    IF v_small AND octet_length(v_text) <= 7000 THEN
        PERFORM pg_notify('rag_realtime', v_text);
    ELSE
        FOR v_batch IN
            WITH ranges AS (
                SELECT p.user_id, min(p.id) AS first_id, max(p.id) AS last_id,
                       row_number() OVER (ORDER BY p.user_id) AS k
                FROM unnest(v_users, v_ids) AS p(user_id, id)
                GROUP BY p.user_id
            )
            SELECT jsonb_agg(jsonb_build_array(r.user_id, r.first_id, r.last_id) ORDER BY r.k)
            FROM ranges r
            GROUP BY (r.k - 1) / 100
            ORDER BY min(r.k)
        LOOP
            PERFORM pg_notify('rag_realtime', jsonb_build_object('r', v_batch)::text);
        END LOOP;
    END IF;
    RETURN QUERY
        SELECT p.user_id, min(p.id), max(p.id)
        FROM unnest(v_users, v_ids) AS p(user_id, id)
        GROUP BY p.user_id;
END;
$$;

-- eventbus_prune(max_age_seconds, max_count): retention; returns how many audience events went.
--
-- 1. An audience's events older than max_age or more than max_count behind its newest go;
--    audience_streams.pruned_through records what is gone.
-- 2. A user's stream: ids of runs whose audience events went, and ids more than max_count
--    behind the user's newest (the per-user limit, as before), are gone: pruned_through rises
--    to the highest of them (a resume below it must resync; a hole anywhere below counts).
-- 3. Runs wholly at or below a user's pruned_through are deleted, never a user's latest.
CREATE FUNCTION eventbus_prune(p_max_age_seconds double precision, p_max_count bigint)
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

    WITH runs AS (
        SELECT u.user_id, u.first_id, u.first_seq, a.pruned_through AS audience_pruned,
               coalesce(lead(u.first_id) OVER (PARTITION BY u.user_id ORDER BY u.first_id) - 1, s.last_id) AS last_id
        FROM user_runs u
        JOIN user_streams s ON s.user_id = u.user_id
        JOIN audience_streams a ON a.audience = u.audience
    ), by_audience AS (
        SELECT r.user_id, max(least(r.last_id, r.first_id + r.audience_pruned - r.first_seq)) AS upto
        FROM runs r WHERE r.audience_pruned >= r.first_seq
        GROUP BY r.user_id
    ), gone AS (
        SELECT s.user_id, greatest(s.last_id - p_max_count, coalesce(b.upto, 0)) AS upto
        FROM user_streams s LEFT JOIN by_audience b ON b.user_id = s.user_id
    )
    UPDATE user_streams s SET pruned_through = g.upto
    FROM gone g WHERE s.user_id = g.user_id AND g.upto > s.pruned_through;

    DELETE FROM user_runs u
    USING (
        SELECT r.user_id, r.first_id, lead(r.first_id) OVER (PARTITION BY r.user_id ORDER BY r.first_id) AS next_first
        FROM user_runs r
    ) n, user_streams s
    WHERE u.user_id = n.user_id AND u.first_id = n.first_id AND s.user_id = u.user_id
      AND n.next_first - 1 <= s.pruned_through;

    RETURN v_removed;
END;
$$;
