-- Who receives a product event: every member of its workspace. The event bus publishes
-- each event to an `audience` (rag_core.events.Event.audience, the workspace id) and
-- reads the audience's users from this view (rag_eventbus/migrations/0001_event_log.sql).
-- A plain view, so eventbus_publish's join is planned through workspace_members' primary
-- key (workspace_id, user_id) as when the function joined the table itself.

CREATE VIEW eventbus_recipients AS
    SELECT workspace_id AS audience, user_id FROM workspace_members;

-- The function of 0003, before the bus owned it.
DROP FUNCTION IF EXISTS rag_publish(jsonb);
