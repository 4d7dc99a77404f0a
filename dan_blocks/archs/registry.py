"""dan-blocks' architecture registry (BasicSR's ``Registry`` interface, without BasicSR).

``import dan_blocks.basicsr`` mirrors every entry, present and future, into BasicSR's ``ARCH_REGISTRY``.
"""

from __future__ import annotations

from typing import TypeVar

from ..utils import Registry

__all__ = ["ARCH_REGISTRY", "register_arch"]

T = TypeVar("T")

#: every architecture dan-blocks (or a user) registers, by class name
ARCH_REGISTRY = Registry("arch")


def register_arch(obj: T) -> T:
    """Register ``obj`` under its ``__name__`` (idempotent); usable as a class decorator."""
    return ARCH_REGISTRY.register(obj)  # type: ignore[no-any-return]
