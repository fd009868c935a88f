"""What a claim does besides starting its jobs, written as SQL so the claim stays one statement.

A claim starts jobs, moves the kind's domain rows (a document becomes `parsing`) and
publishes the jobs' events, in one transaction. Sent statement by statement that was five
round trips (BEGIN, claim, domain update, publish, COMMIT), and psycopg's per-statement
cost on the worker's CPU was most of a wake-up (docs/jobs.md, "Round trips"). So a kind
states its claim effects as SQL over `started`, and the runtime composes them into the
claim's own statement (`queries.QueueSQL`), which runs in autocommit: one round trip.

The price is that the events a claim publishes are built by SQL, while the kind's other
transitions build theirs in Python. Each kind's tests compare the two for the same job
row, so the shapes cannot drift apart unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True, slots=True)
class ClaimEffects:
    """A kind's claim effects, as SQL fragments that read `started`: the rows the claim has
    just started, with every column of the job table (status `running`, the new attempt).

    - `update`: one data-modifying statement on the kind's own rows (`UPDATE documents ...
      FROM started ...`, without a RETURNING: the runtime adds its own), or None. It runs
      before the publish, as it did in a transaction (queries.AFTER_UPDATE).
    - `events`: a query of the events to publish, one row each, with columns `job_id`, `n`
      (the event's place among its job's events) and `event`, the jsonb `{"type",
      "audience", "payload"}` that `rag_eventbus.publish` stores; or None. They are
      published in (job_id, n) order, with the trace context the started jobs share.
    """

    update: sql.Composable | None = None
    events: sql.Composable | None = None


NO_EFFECTS = ClaimEffects()
