-- The trace context of each event: the W3C traceparent current when it was published (NULL
-- when tracing is off), so that whoever delivers the event can continue that trace
-- (docs/observability.md). Delivered frames do not carry it; the log and the NOTIFY do.
--
-- eventbus_publish gains the argument (one context per publishing transaction) and puts it
-- in the inline notification as "t". The old one-argument function is dropped, not left as
-- an overload: the new one's DEFAULT answers the old calls.

ALTER TABLE events ADD COLUMN IF NOT EXISTS traceparent text;

DROP FUNCTION IF EXISTS eventbus_publish(jsonb);

CREATE OR REPLACE FUNCTION eventbus_publish(p_events jsonb, p_traceparent text DEFAULT NULL)
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
        INSERT INTO events (user_id, id, type, payload, traceparent)
        SELECT r.user_id, a.last_id - r.total + r.n, r.type, r.payload, p_traceparent
        FROM recipients r JOIN allocated a ON a.user_id = r.user_id
        RETURNING events.user_id, events.id, events.type, events.payload
    )
    SELECT
        jsonb_build_object(
            'c', now(),
            'e', coalesce(jsonb_agg(jsonb_build_array(i.user_id, i.id, i.type, i.payload) ORDER BY i.user_id, i.id), '[]')
        ) || CASE WHEN p_traceparent IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('t', p_traceparent) END,
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
