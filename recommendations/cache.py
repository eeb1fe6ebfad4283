"""Django's Redis cache backend, keeping its Redis client between calls.

Django's ``RedisCache`` builds a ``redis.Redis`` for every call (the client copies its 170
response callbacks each time: about 60 µs), and a for-you list reads the cache two or three
times. Here each connection pool has one client, made once: the same connections, the same
commands. Set ``"BACKEND": "recommendations.cache.RedisCache"`` where Django's would go
(README, *Deploying at scale*).
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class KeptClientRedisCacheClient(RedisCacheClient):
    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients", {})
        client = clients.get(id(pool))
        if client is None:  # a redis.Redis is thread-safe: its pool hands each call a connection
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = KeptClientRedisCacheClient
