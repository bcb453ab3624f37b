"""Explicit, per-kind registries.

A :class:`Registry` maps names to factories (classes or functions). ``resolve`` passes instances
through unchanged, so an API can take either ``"nb201"`` or an already-built object. Unknown names
raise :class:`~nas.errors.RegistryError` listing the valid ones; registering a name twice raises too.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from nas.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to factories for one kind of component (spaces, proxies, cost models, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name`` (lower-case). Raises on a duplicate."""
        key = name.lower()

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if key in self._entries:
                raise RegistryError(
                    f"{self.kind} {key!r} is already registered (by {self._entries[key]!r})"
                )
            self._entries[key] = factory
            return factory

        return deco

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``."""
        key = name.lower()
        if key not in self._entries:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names()) or '(none)'}"
            )
        return self._entries[key]

    def resolve(self, name_or_instance: str | T, **kwargs: Any) -> T:
        """Build the component named ``name_or_instance`` with ``kwargs``; pass an instance through."""
        if isinstance(name_or_instance, str):
            return self.get(name_or_instance)(**kwargs)
        return name_or_instance

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style ``pattern``, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern.lower()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
