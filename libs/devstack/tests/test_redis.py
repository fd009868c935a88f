"""The local Redis the tests and `make dev` start: the real server, restartable on its port;
and the local Redis Cluster of such servers the broker's cluster tests use."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from rag_devstack.redis import LocalRedisCluster, RedisServer, find_server_binary

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


def test_a_local_cluster_forms_serves_every_slot_and_moves_one(tmp_path: Path) -> None:
    cluster = LocalRedisCluster(tmp_path, size=3)
    cluster.start()
    try:
        client = redis.RedisCluster.from_url(cluster.url)
        # Keys land on every primary, and each primary answers for its own slots only.
        for i in range(30):
            client.set(f"key{i}", str(i))
        assert [client.get(f"key{i}") for i in range(30)] == [str(i).encode() for i in range(30)]
        assert {cluster.owner_of(key_slot(f"key{i}".encode())).port for i in range(30)} == {
            node.port for node in cluster.nodes
        }
        slot = key_slot(b"moving")
        home = cluster.owner_of(slot)
        target = next(node for node in cluster.nodes if node is not home)
        cluster.move_slot(slot, target)
        assert cluster.owner_of(slot) is target
        client.close()
    finally:
        cluster.stop()


def test_a_cluster_with_replicas_fails_over_a_primary_to_its_replica(tmp_path: Path) -> None:
    cluster = LocalRedisCluster(tmp_path, size=3, replicas=1)
    cluster.start()
    try:
        slot = 0  # the first primary's
        old = cluster.owner_of(slot)
        assert old is cluster.nodes[0]
        new = cluster.fail_over(old)
        assert new is not old and cluster.owner_of(slot) is new
        client = redis.RedisCluster.from_url(cluster.url)
        client.set("{slot0}", "v")  # the cluster still serves every slot
        assert client.get("{slot0}") == b"v"
        client.close()
    finally:
        cluster.stop()
