"""The one error type a user sees for bad configuration or input, and the plumbing that keeps it one line.

This is the shared leaf of the project: every package, `datamodules` included, may import it; it imports none.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """Raised before any training work when a config value or input file cannot work; the message says how to fix it."""


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """For entry points: a ConfigError becomes one `error: ...` line on stderr and exit code 2, never a trace."""
    from omegaconf.errors import MissingMandatoryValue

    try:
        yield
    except ConfigError as error:
        sys.exit(report_error(error))
    except MissingMandatoryValue as error:  # a required top-level key (`ckpt: ???`) read before anything is built
        key = getattr(error, "full_key", None) or "a required key"
        sys.exit(report_error(ConfigError(f"{key} is required: set {key}=<value> on the command line.")))


def report_error(error: Exception) -> int:
    """The user's one line for an error (`error: ...` on stderr) and the exit code every entry point gives it, 2."""
    print(f"error: {error}", file=sys.stderr)
    return 2


def did_you_mean(word: str, choices: list[str]) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def check_number(value: object, key: str, low: float, integer: bool = False, above: bool = False) -> float:
    """A numeric setting >= low (> low with `above`; an integer with `integer`), or one clear error."""
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < low or (above and value == low):
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{key}={value!r} must be {what} {'>' if above else '>='} {low:g}.")
    return value
