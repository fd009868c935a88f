-- MAX_WORKSPACES_PER_USER: the api counts the workspaces a user created on every create
-- (rag_api/workspaces.py COUNT_CREATED). Fair claims share the workers per workspace, so
-- without a cap one user with a thousand workspaces would take a thousand shares.

CREATE INDEX workspaces_created_by_idx ON workspaces (created_by);
