"""Progress over a long pass through files: a bar on a terminal, and off one (a logged run) a line every so often
with the count, the rate and the time left, so that a run written to a file never sits silent for minutes."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

LINE_EVERY_S = 30.0  # off a terminal: at most one line per this many seconds, plus the last one
MIN_ITEMS = 200  # passes shorter than this show nothing off a terminal


def duration(seconds: float) -> str:
    """12s, 3m05s or 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_lines(
    items: list[T], desc: str, unit: str, stream: TextIO, every_s: float = LINE_EVERY_S, clock=time.monotonic
) -> Iterator[T]:
    """Yield the items; write `desc: done/total (pct), rate unit/s, ETA` to stream at most every `every_s` seconds
    and once at the end."""
    total, start = len(items), clock()
    last = start
    for done, item in enumerate(items, 1):
        yield item
        now = clock()
        if now - last >= every_s or done == total:
            last = now
            rate = done / max(now - start, 1e-9)
            tail = f"ETA {duration((total - done) / rate)}" if done < total else f"done in {duration(now - start)}"
            print(
                f"{desc}: {done}/{total} ({100 * done / total:.0f}%), {rate:.1f} {unit}/s, {tail}",
                file=stream,
                flush=True,
            )


def progress(items: Iterable[T], desc: str, unit: str = "img", stream: TextIO | None = None) -> Iterable[T]:
    """The items under a tqdm bar on a terminal, or under progress_lines off one (short passes: no lines)."""
    stream = stream or sys.stderr
    items = list(items)
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit=unit, file=stream)
    if len(items) < MIN_ITEMS:
        return items
    return progress_lines(items, desc, unit, stream)
