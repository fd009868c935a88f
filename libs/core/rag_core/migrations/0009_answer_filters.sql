-- The search filters a question was asked with (docs/api.md "Search"), applied by its answer
-- job's retrieval: {"document_id": [...], "content_type": [...], "created_after",
-- "created_before"}, already validated by the api. NULL: no filter.
ALTER TABLE answer_jobs ADD COLUMN filters jsonb;
