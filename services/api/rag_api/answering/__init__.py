"""Answers to questions in conversations: retrieval, a provider, streamed events.

- `providers`: `extractive` (offline) and `openai` (OpenAI-compatible, streamed).
- `coalesce`: merges tokens into deltas so a long answer is tens of events.
- `kind`: the answer job on the shared job runtime, run inside the api processes.
"""
