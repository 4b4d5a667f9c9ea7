"""SQLite helpers for the gallery store and the service: one transaction, a table on a shared connection, times."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(db: sqlite3.Connection, lock: threading.RLock) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT under `lock` (shared by the threads of one connection), or ROLLBACK on any error:
    the block's writes all land, or none does; another writer is waited out up to the connection's timeout. A
    transaction opened inside another (an audit row written with the change it records) joins it and commits with it."""
    with lock:
        if db.in_transaction:  # called inside this thread's open transaction (the lock is held): join it
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class SharedTable:
    """One table of an open connection (isolation_level=None) that threads share under one lock: its SCHEMA
    (CREATE TABLE IF NOT EXISTS ...) is made, in one transaction, when it is opened."""

    SCHEMA: str = ""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock | None = None):
        self.db = db
        self.lock = lock if lock is not None else threading.RLock()  # pass GalleryStore.lock when sharing its db
        with transaction(db, self.lock):
            db.execute(self.SCHEMA)


def stored_time(at: float | None) -> str:
    """A stored epoch time as local ISO-8601 with its UTC offset (2026-12-06T19:20:26+00:00); '-' for none."""
    if not at:
        return "-"
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))
    return f"{text[:-2]}:{text[-2:]}"
