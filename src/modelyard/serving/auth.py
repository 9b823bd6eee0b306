"""API keys and per-key rate limits for the device API.

A key is ``my_`` + 43 URL-safe characters (256 random bits), shown once at creation; the
database keeps its sha256 (a random 256-bit secret needs no slow hash) and a prefix to
recognise it by. Lookups are cached for ``serve.cache_ttl_s`` seconds, so a revocation
takes effect within that time. Each key has a token bucket of ``rate_limit_burst`` tokens
refilled at ``rate_limit_per_s``; the buckets are per server process.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PREFIX = "my_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def shown_prefix(secret: str) -> str:
    return secret[: len(PREFIX) + 8]


@dataclass(frozen=True, kw_only=True)
class Key:
    id: Any
    customer_id: str
    scopes: frozenset[str]
    revoked: bool


class Keys:
    """Key lookups by hash, cached for ``ttl`` seconds (misses too, so a flood of bad keys
    does not reach the database more than once per ttl each)."""

    def __init__(self, lookup: Callable[[str], dict[str, Any] | None], ttl: float) -> None:
        self._lookup = lookup
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Key | None]] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str) -> tuple[bool, Key | None]:
        """(found in a fresh cache entry, the key) without touching the database."""
        hit = self._cache.get(key_hash(secret))
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return True, hit[1]
        return False, None

    def find(self, secret: str) -> Key | None:
        digest = key_hash(secret)
        row = self._lookup(digest)
        key = None
        if row is not None:
            key = Key(
                id=row["id"], customer_id=row["customer_id"], scopes=frozenset(row["scopes"]),
                revoked=row["revoked_at"] is not None,
            )  # fmt: skip
        with self._lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic(), key)
        return key


class RateLimiter:
    """A token bucket per key: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[Any, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: Any) -> float:
        """0 when the request may go ahead; else the seconds until it may (Retry-After)."""
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return math.inf if self.rate == 0 else (1.0 - tokens) / self.rate
