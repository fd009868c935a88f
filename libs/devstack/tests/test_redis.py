"""The local Redis the tests and `make dev` start: the real server, restartable on its port."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from rag_devstack.redis import RedisServer, find_server_binary

pytestmark = pytest.mark.integration  # it starts a process


def test_the_server_answers_and_a_restart_keeps_its_port(tmp_path: Path) -> None:
    assert find_server_binary() is not None, "make os-packages installs redis-server"
    server = RedisServer(tmp_path)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        url = server.url
        server.restart()
        # The same URL answers again; nothing was persisted (a throwaway server).
        assert server.url == url
        assert redis.Redis.from_url(url).get("k") is None
    finally:
        server.stop()
    assert not server.running


def test_without_a_binary_the_error_says_how_to_get_one(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, binary=None)
    server.binary = None  # as on a machine without either server
    with pytest.raises(RuntimeError, match="make os-packages"):
        server.start()
