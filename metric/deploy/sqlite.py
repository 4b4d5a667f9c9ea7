"""The one SQLite transaction of the deploy room: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error, under a lock
shared by the threads that use one connection (the gallery store, the service's keys and audit log); and how the
times those tables store (epoch seconds) read on the command line."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(db: sqlite3.Connection, lock: threading.RLock) -> Iterator[sqlite3.Connection]:
    """Nothing half-written: the block's writes all land, or none does; another writer is waited out up to the
    connection's timeout. A transaction opened inside another (an audit row written with the change it records)
    joins it and commits with it."""
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


def stored_time(at: float | None) -> str:
    """A stored epoch time as local ISO-8601 with its UTC offset (2026-12-06T19:20:26+00:00); '-' for none."""
    if not at:
        return "-"
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))
    return f"{text[:-2]}:{text[-2:]}"
