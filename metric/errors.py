"""The one error type a user sees for bad configuration or bad input: a message naming the key and the fix."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """Raised before any training work when a config value or input file cannot work; the message says how to fix it."""


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """For entry points: a ConfigError becomes one `error: ...` line on stderr and exit code 2, never a trace."""
    try:
        yield
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
