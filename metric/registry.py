"""Registries: the names a config, a checkpoint or a gallery stores, mapped to the classes that rebuild them.

A new component registers itself with one line (`@EMBEDDERS.register("name")` above its class, in its own file);
no central list is edited. Beside `metric.errors`, a shared leaf: every package may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from metric.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> classes for one kind of component (embedders, matchers, face front ends)."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind, self.hint = kind, hint
        self.entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")` above a class registers it under that name."""

        def add(entry: T) -> T:
            if name in self.entries and self.entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is registered twice: {self.entries[name]} and {entry}")
            self.entries[name] = entry
            return entry

        return add

    def __getitem__(self, name: str) -> T:
        if name not in self.entries:
            known = list(self.entries)
            raise ConfigError(
                f"{self.kind} {name!r} is not one this version has{did_you_mean(str(name), known)}; "
                f"it has: {', '.join(known)}.{' ' + self.hint if self.hint else ''}"
            )
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def names(self) -> list[str]:
        return list(self.entries)

    def items(self):
        return self.entries.items()
