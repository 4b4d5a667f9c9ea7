"""Registries: the names a config, a checkpoint or a gallery stores, mapped to the classes that rebuild them.

A new component registers itself with one line (`@EMBEDDERS.register` above its class, in its own file), under the
name its class already states (an embedder's `kind`, a matcher's or a front end's `name`); no central list is
edited. Beside `metric.errors`, a shared leaf: every package may import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from metric.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> classes for one kind of component (embedders, matchers, face front ends)."""

    def __init__(self, kind: str, key: str):
        self.kind, self.key = kind, key
        self.entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Decorator: `@REGISTRY.register` above a class registers it under its own `key` attribute."""
        name = getattr(entry, self.key)
        if name in self.entries and self.entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice: {self.entries[name]} and {entry}")
        self.entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        if name not in self.entries:
            known = list(self.entries)
            raise ConfigError(
                f"{self.kind} {name!r} is not one this version has{did_you_mean(str(name), known)}; "
                f"it has: {', '.join(known)}. A file made by a newer or extended version needs that version "
                "(upgrade metric-faces, or import the module that registers it)."
            )
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)
