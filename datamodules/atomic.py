"""Atomic writes: a file or a cache folder is either complete or absent, never half-written."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "manifest.json"


def is_complete(path: Path) -> bool:
    return (path / MANIFEST).exists()


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; when the block ends without error it is renamed to `path`.

    The block must write MANIFEST last. A leftover at `path` without a manifest (a killed older writer) is
    replaced; a complete one written meanwhile by a concurrent run is kept.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        yield tmp
        if not is_complete(tmp):
            raise RuntimeError(f"{tmp}: the writer did not finish with {MANIFEST}")
        if path.exists() and not is_complete(path):
            stale = Path(tempfile.mkdtemp(prefix=f".{path.name}-stale-", dir=path.parent))
            os.replace(path, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, path)
        except OSError:
            if not is_complete(path):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_file_atomically(path: Path, write: Callable[[str], object]) -> None:
    """write(temporary path beside `path`), then rename it over `path`: a failure leaves the old file as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
