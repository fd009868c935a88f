"""A local Redis server for tests and `make dev`: the distribution's `redis-server` (or
`valkey-server`) on a free loopback port, nothing persisted; and a local Redis Cluster of
such servers (`LocalRedisCluster`), for the broker's tests in cluster mode.

Not an imitation of Redis: the real server, found on the PATH (`make os-packages` installs
Debian's `redis-server`), started as a child process. `restart` keeps the port, so clients
reconnect to the same URL, as they would to a managed Redis after a failover.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from rag_devstack.postgres import free_port

# Looked up in this order: Redis, then its fork Valkey (the same protocol and commands).
SERVER_BINARIES = ("redis-server", "valkey-server")


def find_server_binary() -> str | None:
    """The path of a Redis-compatible server on the PATH, or None."""
    for name in SERVER_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class RedisServer:
    """One redis-server process on 127.0.0.1:`port`, its files under `directory`."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.binary = binary or find_server_binary()
        self.extra_args = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15) -> str:
        if self.binary is None:
            raise RuntimeError(
                "no redis-server or valkey-server on the PATH: run `make os-packages` "
                "(Debian's redis-server), or set TEST_REDIS_URL / REDIS_URL"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                # A throwaway server: no snapshot, no append-only file, no protected mode fuss.
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.binary} exited with {self._proc.returncode}: {tail}")
            if _answers_ping(self.port):
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """Stop the server at once (SIGKILL: a crash, and what a test of an outage wants)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, wait `down_seconds`, start again on the same port (every subscription drops)."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# Every hash slot of a Redis Cluster, spread over its primaries in contiguous ranges.
CLUSTER_SLOTS = 16384


class LocalRedisCluster:
    """`size` primaries, each with `replicas` replicas, forming one Redis Cluster on loopback ports.

    Each node is a `RedisServer` in cluster mode; `start` introduces them to each other
    (CLUSTER MEET), gives each primary an equal range of slots, attaches the replicas
    (CLUSTER REPLICATE) and waits for `cluster_state:ok`. `url` is one node's: a cluster
    client discovers the others from it, as it would from a managed cluster's configuration
    endpoint. `nodes[i].restart()` restarts a node (its id and slots survive in its nodes
    file); `fail_over(primary)` promotes one of its replicas, as a managed cluster does."""

    def __init__(self, directory: Path, size: int = 3, replicas: int = 0) -> None:
        total = size * (1 + replicas)
        # Each node's cluster bus on a port of its own: by default it is the port + 10,000,
        # which a free port above 55,535 cannot have.
        self.bus_ports = [free_port() for _ in range(total)]
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    str(bus_port),
                    # A restarted node is back well within this, so it is never marked failed.
                    "--cluster-node-timeout",
                    "15000",
                ],
            )
            for i, bus_port in enumerate(self.bus_ports)
        ]
        self.size = size
        # The replicas of primary i are nodes[size + i * replicas : size + (i + 1) * replicas].
        self.replicas = replicas

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 30) -> str:
        for node in self.nodes:
            node.start()
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            share = CLUSTER_SLOTS // self.size
            for i, client in enumerate(clients[: self.size]):
                last = CLUSTER_SLOTS - 1 if i == self.size - 1 else (i + 1) * share - 1
                client.cluster("ADDSLOTSRANGE", i * share, last)
            for client in clients[1:]:
                client.cluster("MEET", "127.0.0.1", self.nodes[0].port, self.bus_ports[0])
            deadline = time.monotonic() + timeout
            ids = [_node_id(c) for c in clients[: self.size]]
            for i, client in enumerate(clients[self.size :]):
                primary = ids[i // self.replicas]
                # A replica can follow its primary once the MEETs have told it of that node.
                while primary not in str(client.cluster("NODES")):
                    _wait_or_fail(deadline, timeout, self)
                client.cluster("REPLICATE", primary)
            while not all(_cluster_ok(c, len(self.nodes)) for c in clients):
                _wait_or_fail(deadline, timeout, self)
            # A replica that has not finished its first sync with its primary cannot take
            # over from it (a manual failover would wait, then give up).
            while not all(_replica_synced(c) for c in clients[self.size :]):
                _wait_or_fail(deadline, timeout, self)
        finally:
            for client in clients:
                client.close()
        return self.url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def fail_over(self, primary: RedisServer, timeout: float = 30) -> RedisServer:
        """Promote `primary`'s first replica in its place (CLUSTER FAILOVER on the replica,
        the manual failover a managed cluster runs for maintenance); the new primary, once
        every node's map says so."""
        index = self.nodes.index(primary)
        if index >= self.size or not self.replicas:
            raise ValueError("a primary of a cluster started with replicas")
        replica = self.nodes[self.size + index * self.replicas]
        with redis.Redis(port=replica.port) as client:
            client.cluster("FAILOVER")
        deadline = time.monotonic() + timeout
        slot = index * (CLUSTER_SLOTS // self.size)  # the first of its slots
        for node in self.nodes:
            with redis.Redis(port=node.port) as client:
                while _slot_owner_port(client, slot) != replica.port:
                    _wait_or_fail(deadline, timeout, None)
        return replica

    def owner_of(self, slot: int) -> RedisServer:
        """The primary that serves `slot` now (as the first node's map says)."""
        with redis.Redis(port=self.nodes[0].port) as client:
            for start, end, primary, *_replicas in client.cluster("SLOTS"):
                if start <= slot <= end:
                    return next(node for node in self.nodes if node.port == int(primary[1]))
        raise LookupError(f"no primary serves slot {slot}")

    def move_slot(self, slot: int, target: RedisServer, timeout: float = 15) -> None:
        """Give `slot` to `target` (a primary of a cluster without replicas), the way a
        resharding does (IMPORTING, MIGRATING, then NODE on both sides and the other primaries;
        pub/sub channels are not keys, so there is nothing to copy), and wait until every node
        agrees."""
        source = self.owner_of(slot)
        with redis.Redis(port=source.port) as src, redis.Redis(port=target.port) as dst:
            source_id, target_id = _node_id(src), _node_id(dst)
            dst.cluster("SETSLOT", slot, "IMPORTING", source_id)
            src.cluster("SETSLOT", slot, "MIGRATING", target_id)
            dst.cluster("SETSLOT", slot, "NODE", target_id)
            src.cluster("SETSLOT", slot, "NODE", target_id)
            # Its claim must outrank the old one everywhere: a fresh, unique config epoch.
            dst.cluster("BUMPEPOCH")
        # And every other primary, as redis-cli's resharding does: left to gossip alone, a
        # node can keep the old owner for a long while. Told again until it agrees.
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            with redis.Redis(port=node.port) as client:
                while _slot_owner_port(client, slot) != target.port:
                    if node in self.nodes[: self.size]:
                        client.cluster("SETSLOT", slot, "NODE", target_id)
                    _wait_or_fail(deadline, timeout, None)
                    time.sleep(0.2)


def _wait_or_fail(deadline: float, timeout: float, stop_on_failure: LocalRedisCluster | None) -> None:
    if time.monotonic() > deadline:
        if stop_on_failure is not None:
            stop_on_failure.stop()
        raise RuntimeError(f"the local Redis Cluster did not settle within {timeout}s")
    time.sleep(0.05)


def _replica_synced(client: redis.Redis) -> bool:
    info = client.info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def _cluster_ok(client: redis.Redis, size: int) -> bool:
    info = client.cluster("INFO")
    if not isinstance(info, dict):  # raw text when redis-py has no parser for it
        text = info.decode() if isinstance(info, bytes) else str(info)
        info = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return str(info.get("cluster_state")) == "ok" and int(info.get("cluster_known_nodes", 0)) == size


def _node_id(client: redis.Redis) -> str:
    found = client.cluster("MYID")
    return found.decode() if isinstance(found, bytes) else str(found)


def _slot_owner_port(client: redis.Redis, slot: int) -> int | None:
    for start, end, primary, *_replicas in client.cluster("SLOTS"):
        if start <= slot <= end:
            return int(primary[1])
    return None
