-- Stream epochs: an opaque string per user stream that changes whenever its ids could repeat.
--
-- A client resumes with (epoch, last_event_id); ids are only comparable within one epoch.
-- The epoch is derived, never stored, from two things:
--
-- * the database lineage, read from what Postgres itself exposes, so that nobody has to
--   remember to bump anything:
--     - the cluster's system identifier (pg_control_system()): a new cluster (initdb,
--       pg_dump into another server) has another one;
--     - the current WAL timeline, from the name of the WAL file being written
--       (pg_walfile_name(pg_current_wal_lsn())): a promoted replica or a point-in-time
--       restore ends recovery on a new timeline, and the insert timeline changes at the
--       promotion itself, whereas pg_control_checkpoint() shows it only after the next
--       checkpoint;
--     - the database's oid: a dump restored into a new database, or a copy made with
--       CREATE DATABASE ... TEMPLATE, gets another one.
-- * the stream row's generation: a random uuid drawn when the row is created, so a stream
--   that is deleted and created again (ids restarting at 1) has a new epoch. A restore
--   that brings the row back with its old generation is also a new lineage.
--
-- Safe on existing data: the volatile default gives every existing row a generation of
-- its own (one table rewrite; user_streams has one row per user).

ALTER TABLE user_streams ADD COLUMN IF NOT EXISTS generation uuid NOT NULL DEFAULT gen_random_uuid();

-- The lineage of the database this session writes to. Fails on a server in recovery
-- (pg_current_wal_lsn()), which cannot publish either.
CREATE OR REPLACE FUNCTION eventbus_lineage() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT c.system_identifier::text
        || '/' || left(pg_walfile_name(pg_current_wal_lsn()), 8)
        || '/' || d.oid::text
    FROM pg_control_system() AS c, pg_database AS d
    WHERE d.datname = current_database()
$$;

-- The epoch of a stream of `p_lineage` whose row has `p_generation`: opaque, 20 hex digits.
CREATE OR REPLACE FUNCTION eventbus_epoch(p_lineage text, p_generation uuid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(encode(sha256(convert_to(p_lineage || '/' || p_generation::text, 'UTF8')), 'hex'), 20)
$$;

-- eventbus_stream(user): (last_id, oldest retained id, epoch) of the user's stream.
--
-- The row is created when missing, so that the epoch a client is given for an empty
-- stream is the one its first event is published under (publish would otherwise draw
-- the generation later, and the client's first resume would be a needless resync).
-- Two statements in plpgsql: the SELECT sees a row a concurrent publisher committed
-- while the INSERT waited for it.
CREATE OR REPLACE FUNCTION eventbus_stream(p_user uuid)
RETURNS TABLE (last_id bigint, oldest_id bigint, epoch text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    INSERT INTO user_streams (user_id) VALUES (p_user) ON CONFLICT DO NOTHING;
    RETURN QUERY
        SELECT s.last_id, s.pruned_through + 1, eventbus_epoch(eventbus_lineage(), s.generation)
        FROM user_streams s WHERE s.user_id = p_user;
END;
$$;
