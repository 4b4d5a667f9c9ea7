"""A bounded worker pool for the service: embedding runs off the event loop, and a full queue refuses at once."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class Busy(Exception):
    """Every worker is busy and the queue is full: the client should retry later (HTTP 503 with Retry-After)."""


def release_free_memory() -> None:
    """glibc keeps freed memory in its per-thread arenas; malloc_trim hands it back (elsewhere: nothing to do)."""
    if TRIM is not None:
        TRIM(0)


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


TRIM = _malloc_trim() if sys.platform.startswith("linux") else None


class WorkerPool:
    """`workers` threads run the jobs; at most `queue` more wait. A job beyond that raises Busy instead of piling up."""

    def __init__(self, workers: int = 2, queue: int = 16):
        if workers < 1 or queue < 0:
            raise ValueError(f"workers={workers} must be >= 1 and queue={queue} >= 0")
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metric-serve")
        self.capacity = workers + queue
        self.pending = 0
        self.lock = threading.Lock()

    async def run(self, job: Callable[..., Any], *args: Any) -> Any:
        with self.lock:
            if self.pending >= self.capacity:
                raise Busy(f"{self.pending} requests are being served or waiting; retry shortly.")
            self.pending += 1
        try:
            return await asyncio.wrap_future(self.executor.submit(job, *args))
        finally:
            with self.lock:
                self.pending -= 1
                idle = self.pending == 0
            if idle:  # the decoded images and bodies of a burst are freed: hand their pages back to the system
                release_free_memory()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
