-- QUESTIONS_PER_MINUTE: the api counts a user's questions of the last minute on every post
-- (rag_api/conversations.py RECENT_QUESTIONS). Without this index that count scans every
-- message of every conversation; with it, it reads the user's few newest questions.

CREATE INDEX messages_user_questions_idx ON messages (created_by, created_at) WHERE role = 'user';
