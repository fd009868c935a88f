"""The bus on objects of its own: a database with only its migrations, and test audiences.

The application provides `eventbus_recipients (audience, user_id)`; here it is a view over
`test_audience_members`, shaped like the product's (a primary key led by the audience).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
import pytest

from rag_eventbus.schema import install

TEST_RECIPIENTS = """
CREATE TABLE test_audience_members (
    audience uuid NOT NULL,
    user_id  uuid NOT NULL,
    PRIMARY KEY (audience, user_id)
);
CREATE VIEW eventbus_recipients AS SELECT audience, user_id FROM test_audience_members;
"""


@dataclass(frozen=True, slots=True)
class TestEvent:
    """A `Publishable` of the tests' own."""

    __test__ = False  # not a test class, whatever its name

    audience: UUID
    type: str = "test.happened"
    payload: Mapping[str, Any] = field(default_factory=dict)


@pytest.fixture
def bus_database_url(empty_database_url: str) -> str:
    """An empty database with the bus's migrations and the test recipients view."""
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        install(conn, TEST_RECIPIENTS)
    return empty_database_url


def make_audience(dsn: str, users: list[UUID]) -> UUID:
    """A new audience whose recipients are `users`."""
    audience = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for user in users:
            conn.execute("INSERT INTO test_audience_members VALUES (%s, %s)", (audience, user))
    return audience


def user_event_ids(dsn: str, user_id: UUID) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM events WHERE user_id=%s ORDER BY id", (user_id,))]
