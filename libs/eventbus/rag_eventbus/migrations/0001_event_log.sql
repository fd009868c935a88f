-- The event bus's objects: the per-user event log and eventbus_publish().
--
-- Written to be safe on a database where the product's migrations created the two
-- tables before this package owned them: the definitions are identical, so a fresh
-- database and an upgraded one end with the same schema.
--
-- Recipients are not known here. The application provides the view
--     eventbus_recipients (audience uuid, user_id uuid)
-- naming the users of each audience (a group: the product's is the workspace). Keep it a
-- plain view over an indexed table: it is inlined into the publish query below.

-- Each user has a stream row whose last_id is bumped under its row lock inside the
-- publishing transaction: ids are consecutive and in commit order.
-- pruned_through is the highest id removed by retention (a resume below it must resync).
CREATE TABLE IF NOT EXISTS user_streams (
    user_id        uuid PRIMARY KEY,
    last_id        bigint NOT NULL DEFAULT 0,
    pruned_through bigint NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS events (
    user_id    uuid NOT NULL,
    id         bigint NOT NULL,
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);
CREATE INDEX IF NOT EXISTS events_created_idx ON events (created_at);

-- eventbus_publish(events): the bus's publish in ONE round trip (see rag_eventbus.publish).
--
-- events is a JSON array of {"type", "audience", "payload"} in publishing order. For each
-- recipient of each event's audience the function takes the next ids of that user's
-- stream (INSERT .. ON CONFLICT DO UPDATE on user_streams, users in sorted order so that
-- concurrent publishers never deadlock; the row lock is held to commit, so ids are
-- consecutive and in commit order), stores the events, and NOTIFYs rag_realtime once:
-- the numbered events inline when the payload stays under 7000 bytes, otherwise per-user
-- id ranges (at most 100 users per notification) that the listeners read back from the
-- log. Returns (user_id, first_id, last_id).
CREATE OR REPLACE FUNCTION eventbus_publish(p_events jsonb)
RETURNS TABLE (user_id uuid, first_id bigint, last_id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_inline jsonb;
    v_ranges jsonb;
    v_text text;
    v_batch jsonb;
BEGIN
    WITH ev AS (
        SELECT e.ord, e.value->>'type' AS type, e.value->'payload' AS payload,
               (e.value->>'audience')::uuid AS audience
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(value, ord)
    ), recipients AS (
        SELECT m.user_id, ev.ord, ev.type, ev.payload,
               row_number() OVER (PARTITION BY m.user_id ORDER BY ev.ord) AS n,
               count(*) OVER (PARTITION BY m.user_id) AS total
        FROM ev JOIN eventbus_recipients m ON m.audience = ev.audience
    ), allocated AS (
        INSERT INTO user_streams AS s (user_id, last_id)
        SELECT DISTINCT r.user_id, r.total FROM recipients r ORDER BY r.user_id
        ON CONFLICT ON CONSTRAINT user_streams_pkey DO UPDATE SET last_id = s.last_id + excluded.last_id
        RETURNING s.user_id, s.last_id
    ), inserted AS (
        INSERT INTO events (user_id, id, type, payload)
        SELECT r.user_id, a.last_id - r.total + r.n, r.type, r.payload
        FROM recipients r JOIN allocated a ON a.user_id = r.user_id
        RETURNING events.user_id, events.id, events.type, events.payload
    )
    SELECT
        jsonb_build_object(
            'c', now(),
            'e', coalesce(jsonb_agg(jsonb_build_array(i.user_id, i.id, i.type, i.payload) ORDER BY i.user_id, i.id), '[]')
        ),
        (SELECT coalesce(jsonb_agg(jsonb_build_array(g.user_id, g.first_id, g.last_id) ORDER BY g.user_id), '[]')
         FROM (SELECT i2.user_id, min(i2.id) AS first_id, max(i2.id) AS last_id FROM inserted i2 GROUP BY i2.user_id) g)
    INTO v_inline, v_ranges
    FROM inserted i;

    IF jsonb_array_length(v_ranges) = 0 THEN
        RETURN;
    END IF;
    v_text := v_inline::text;
    IF octet_length(v_text) <= 7000 THEN
        PERFORM pg_notify('rag_realtime', v_text);
    ELSE
        FOR v_batch IN
            SELECT jsonb_agg(r.value ORDER BY r.ord)
            FROM jsonb_array_elements(v_ranges) WITH ORDINALITY AS r(value, ord)
            GROUP BY (r.ord - 1) / 100
            ORDER BY min(r.ord)
        LOOP
            PERFORM pg_notify('rag_realtime', jsonb_build_object('r', v_batch)::text);
        END LOOP;
    END IF;
    RETURN QUERY
        SELECT (r.value->>0)::uuid, (r.value->>1)::bigint, (r.value->>2)::bigint
        FROM jsonb_array_elements(v_ranges) AS r(value);
END;
$$;
