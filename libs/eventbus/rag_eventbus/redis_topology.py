"""Where the Redis broker's channels live: one Redis server, or the primaries of a Redis Cluster.

`REDIS_URL` names either a standalone server (or a managed service's single endpoint) or
any node of a Redis Cluster; which one is asked of the server itself (`INFO cluster`), so
the same setting serves both. In a cluster each user's channel lives on the primary that
owns its hash slot (sharded pub/sub: SPUBLISH and SSUBSCRIBE are answered there and
nowhere else), so a replica subscribes on every primary that owns one of its users' slots.

The cluster's map comes from redis-py's own cluster client (its slot cache), read once per
subscription; a map that changes later (a failover, a resharding) shows as an error or a
server-sent unsubscribe on some connection, and the subscriber then reads the map again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError, ResponseError

# What a Redis client raises when the server, the network or the cluster's map fails: redis-py's
# cluster errors (a slot nobody serves, say) are not RedisErrors.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)


@dataclass(frozen=True)
class Topology:
    """The servers to subscribe on (standalone: one), and which serves which channel."""

    # (host, port) of each server; the index is the server's number below.
    servers: list[tuple[str, int]]
    # A cluster's slot to server number; None: one standalone server holds every channel.
    owners: dict[int, int] | None

    @property
    def cluster(self) -> bool:
        return self.owners is not None

    def server_of(self, channel: str | bytes) -> int:
        """The number of the server that serves `channel` (a slot nobody owns: the first,
        whose refusal then makes the subscriber read the map again)."""
        if self.owners is None:
            return 0
        name = channel.encode() if isinstance(channel, str) else channel
        return self.owners.get(key_slot(name), 0)

    def batches(self, channels: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
        """(server, channels) to subscribe in one command each: a cluster refuses a
        SSUBSCRIBE whose channels are in different slots (CROSSSLOT), a standalone server
        takes them all at once."""
        groups: dict[tuple[int, int], list[str]] = {}
        for channel in channels:
            slot = key_slot(channel.encode()) if self.owners is not None else 0
            groups.setdefault((self.server_of(channel), slot), []).append(channel)
        for (server, _slot), group in groups.items():
            yield server, group


async def is_cluster_node(pool: ConnectionPool) -> bool:
    """Whether the server behind `pool` is one node of a Redis Cluster (`INFO cluster`)."""
    try:
        info = await Redis(connection_pool=pool).info("cluster")
    except ResponseError:  # a service that refuses INFO (ACLs, some proxies) is not a cluster's node
        return False
    return bool(info.get("cluster_enabled"))


async def discover(url: str, pool: ConnectionPool) -> Topology:
    """The servers behind `pool` (made from `url`): that one, or a cluster's map of primaries
    and slots."""
    if not await is_cluster_node(pool):
        kwargs = pool.connection_kwargs
        return Topology(servers=[(str(kwargs["host"]), int(kwargs["port"]))], owners=None)
    cluster = cluster_client(url, socket_connect_timeout=pool.connection_kwargs.get("socket_connect_timeout"))
    try:
        await cluster.initialize()
        primaries = cluster.get_primaries()
        number = {node.name: i for i, node in enumerate(primaries)}
        owners = {
            slot: number[nodes[0].name]
            for slot, nodes in cluster.nodes_manager.slots_cache.items()
            if nodes and nodes[0].name in number
        }
        return Topology(servers=[(node.host, int(node.port)) for node in primaries], owners=owners)
    finally:
        await cluster.aclose()


def server_pool(pool: ConnectionPool, server: tuple[str, int]) -> ConnectionPool:
    """A pool like `pool` (credentials, TLS, timeouts, retries) for another server of the cluster."""
    host, port = server
    kwargs = {**pool.connection_kwargs, "host": host, "port": port}
    return ConnectionPool(connection_class=pool.connection_class, **kwargs)


def cluster_client(url: str, **options: Any) -> RedisCluster:
    """redis-py's cluster client: it routes each SPUBLISH to its slot's primary and follows
    MOVED and failovers itself (the relay's publishing side)."""
    return RedisCluster.from_url(url, **options)
