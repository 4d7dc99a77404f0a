"""Version counters for cache keys, safe on inference tensors (which have none)."""

from __future__ import annotations

from torch import Tensor

__all__ = ["tensor_state", "tensor_version"]


def tensor_version(tensor: Tensor) -> int:
    """``tensor._version`` (bumped by every in-place change), or -1 for an inference tensor.

    Tensors created under ``torch.inference_mode()`` track no version: a cache keyed on them cannot see an
    in-place change made inside inference mode, so such caches must be short-lived or also keyed on identity.
    """
    return -1 if tensor.is_inference() else int(tensor._version)


def tensor_state(tensor: Tensor) -> tuple[object, ...]:
    """What a cache keyed on ``tensor``'s values must compare: identity, storage, version, dtype, device; for an
    inference tensor (no version counter) a content fingerprint (sum and sum of squares in float64) instead,
    so that an in-place change made inside ``torch.inference_mode()`` is seen too."""
    head = (id(tensor), tensor.data_ptr(), tensor.dtype, tensor.device)
    if not tensor.is_inference():
        return (*head, int(tensor._version))
    flat = tensor.detach().double()
    return (*head, float(flat.sum()), float((flat * flat).sum()))
