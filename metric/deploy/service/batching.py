"""Micro-batching for the service: concurrent embed calls from worker threads coalesce into one forward pass."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np


class EmbedBatcher:
    """Callable like `embed(images) -> embeddings`: each call waits while one thread embeds every call queued within
    `wait_s` of the first (up to `max_batch` images) in one pass, then splits the result back."""

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray], max_batch: int = 16, wait_s: float = 0.002):
        self.embed = embed
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.pending: queue.Queue = queue.Queue()
        threading.Thread(target=self.serve, name="metric-serve-batcher", daemon=True).start()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        done: Future = Future()
        self.pending.put((images, done))
        return done.result()

    def gather(self) -> list[tuple[np.ndarray, Future]]:
        batch = [self.pending.get()]
        deadline = time.monotonic() + self.wait_s
        while sum(len(images) for images, _ in batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                batch.append(self.pending.get(timeout=left) if left > 0 else self.pending.get_nowait())
            except queue.Empty:
                break
        return batch

    def serve(self) -> None:
        while True:
            batch = self.gather()
            try:
                embeddings = self.embed(np.concatenate([images for images, _ in batch]))
            except BaseException as error:  # every waiting call gets the failure
                for _, done in batch:
                    done.set_exception(error)
                continue
            start = 0
            for images, done in batch:
                done.set_result(embeddings[start : start + len(images)])
                start += len(images)
