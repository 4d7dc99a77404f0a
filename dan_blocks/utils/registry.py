"""A name -> object registry with BasicSR's ``Registry`` interface, without BasicSR.

dan-blocks keeps its own registries (architectures, degradations) so that the core needs nothing above torch;
`dan_blocks.basicsr` mirrors the architecture registry into BasicSR's ``ARCH_REGISTRY`` through
`Registry.add_listener()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .options import did_you_mean

__all__ = ["Registry"]

T = TypeVar("T")


class Registry:
    """Objects by name, registered idempotently (a second registration of the same object is a no-op).

    Args:
        name: what the registry holds, used in messages (``"arch"``, ``"degradation"``).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: dict[str, Any] = {}
        self._listeners: list[Callable[[str, Any], None]] = []

    def register(self, obj: T | None = None, name: str | None = None) -> Any:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as ``@registry.register``.

        Raises:
            ValueError: another object already holds the name.
        """
        if obj is None:
            return lambda o: self.register(o, name)
        key = name or getattr(obj, "__name__")  # noqa: B009
        held = self._obj_map.get(key)
        if held is not None and held is not obj:
            raise ValueError(f"{self._name} registry: the name {key!r} is already taken by {held!r}")
        if held is None:
            self._obj_map[key] = obj
            try:
                for listener in self._listeners:
                    listener(key, obj)
            except Exception:  # a mirror refused the name: registered nowhere rather than half-way
                del self._obj_map[key]
                raise
        return obj

    def get(self, name: str) -> Any:
        """The object registered as ``name``.

        Raises:
            KeyError: nothing is registered under ``name`` (the message lists close names).
        """
        if name not in self._obj_map:
            hint = did_you_mean(name, self._obj_map)
            raise KeyError(
                f"no {self._name} named {name!r} is registered{hint}; registered: {', '.join(sorted(self._obj_map))}"
            )
        return self._obj_map[name]

    def add_listener(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(name, obj)`` for every entry now and for every later registration."""
        self._listeners.append(listener)
        for key, obj in list(self._obj_map.items()):
            listener(key, obj)

    def __contains__(self, name: object) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._obj_map.items()))

    def keys(self) -> list[str]:
        return list(self._obj_map)

    def __repr__(self) -> str:
        return f"Registry({self._name!r}, {len(self._obj_map)} entries)"
