"""Version counters for cache keys, safe on inference tensors (which have none)."""

from __future__ import annotations

from torch import Tensor

__all__ = ["tensor_version"]


def tensor_version(tensor: Tensor) -> int:
    """``tensor._version`` (bumped by every in-place change), or -1 for an inference tensor.

    Tensors created under ``torch.inference_mode()`` track no version: a cache keyed on them cannot see an
    in-place change made inside inference mode, so such caches must be short-lived or also keyed on identity.
    """
    return -1 if tensor.is_inference() else int(tensor._version)
