"""A few database connections shared by a server's worker threads, one per call at a time;
a connection whose statement failed is closed, never handed out again."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from modelyard.db import connection
from modelyard.db.connection import Connection
from modelyard.errors import DatabaseError


class Pool:
    def __init__(self, url: str, size: int = 4) -> None:
        self.url = url
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue(maxsize=size)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = connection.connect(self.url)
        try:
            yield conn
        except psycopg.Error as exc:
            conn.close()
            raise DatabaseError(f"database error: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if conn.closed or conn.broken:
            return
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
