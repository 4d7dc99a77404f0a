"""Idempotent registration into BasicSR's ARCH_REGISTRY."""

from __future__ import annotations

from typing import Any, TypeVar

from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ["ARCH_REGISTRY", "register_arch"]

T = TypeVar("T")


def register_arch(obj: T) -> T:
    """Register ``obj`` under its ``__name__`` unless that name is taken (BasicSR asserts on duplicates)."""
    name: Any = getattr(obj, "__name__")  # noqa: B009
    if name not in ARCH_REGISTRY:
        ARCH_REGISTRY.register(obj)
    return obj
