"""The sha256 of a file, memoised per path, size and modification time (each file is hashed once per change)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path


@cache
def _sha256(path: str, stamp: tuple[int, int]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The file's sha256 (hex): what model files, checkpoints and the weight store are checked by."""
    path = Path(path)
    stat = path.stat()
    return _sha256(str(path.resolve()), (stat.st_size, stat.st_mtime_ns))
